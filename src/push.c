/* SPDX-License-Identifier: MIT */
/*
 * push.c - tq_push: free slots to WRITING, tasks written, then published
 * to the ready ring (docs/design.md, sections 3-5).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

static int validate_task(const tq_queue *q, const tq_task *t)
{
	switch (t->kind) {
	case TQ_KIND_INT:
		return 0;
	case TQ_KIND_STRING:
	case TQ_KIND_JSON:
		if (t->len && !t->data)
			return TQ_EINVAL;
		return t->len > q->max_payload ? TQ_E2BIG : 0;
	default:
		return TQ_EINVAL;
	}
}

/* Writes task t into slot idx (WRITING, the caller's). A payload first
 * takes its units (design.md, 19): TQ_EAGAIN if there is no run free. */
static int write_task(tq_queue *q, uint32_t idx, tq_task *t, uint64_t id, uint64_t now)
{
	struct tq_slot *s = &q->slots[idx];

	if (t->kind == TQ_KIND_INT) {
		__atomic_store_n(&s->id, id, __ATOMIC_RELAXED); /* read racily by takers (take.c) */
		s->kind = t->kind;
		s->value = t->value;
		s->len = 0;
	} else {
		uint64_t first;
		int rc = tq__units_take(q, idx, id, (uint16_t)t->kind, t->len, &first);
		if (rc)
			return rc;
		if (t->len)
			memcpy(q->units + first * 64, t->data, t->len);
	}
	store_rlx(&s->enq_ns, now);
	s->attempts = 0;
	s->last_err = 0;
	s->flags = 0;
	s->taken_ns = 0;
	store_rlx(&s->deadline_ns, UINT64_MAX);
	t->id = id;
	return 0;
}

/*
 * Delayed tasks go straight from WRITING(p) to DELAYED with their due time,
 * one by one under a journal in the record ({slot + 1, pushed before}): a
 * slot no longer WRITING(p) when p is found dead was made DELAYED, so
 * recovery counts it as pushed exactly once (recover.c, settle_dpush).
 * The pushed counter is written under the ready ring's push-side lock, as
 * every write of it is (ring.c). Due times are kept as a hint in the
 * header; the sweep makes the tasks READY.
 */
static int publish_delayed(tq_queue *q, const uint32_t *idx, uint32_t n, uint64_t due)
{
	/* The recovery lock first (the order recovery takes them in): the
	 * delayed gauge then changes with the states as one step against the
	 * sweep that recounts it, as in tq_fail; if a live process holds it
	 * past its bound, the gauge is set right by the next sweep. */
	bool locked = tq__lock_recovery(q) == 0;
	int rc = tq__ring_lock_push_side(q, &q->readyr);

	if (rc) {
		if (locked)
			tq__unlock(&q->h->recovery_lock);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t before = load_rlx(&q->me->c[C_PUSHED]);
		store_rlx(&q->me->dpush_before, before);
		store_rel(&q->me->dpush_slot, (uint64_t)idx[i] + 1);
		store_rel(&q->slots[idx[i]].deadline_ns, due);
		store_rel(&q->st[idx[i]], st_make(ST_DELAYED, 0, 0));
		if (i == 0)
			TQ_FAULT("push.delayed");
		tq__due_mark(q, idx[i]);
		store_rlx(&q->me->c[C_PUSHED], before + 1);
		store_rel(&q->me->dpush_slot, 0);
		add_rlx(&q->h->delayed_count, 1);
	}
	tq__ring_unlock_push_side(&q->readyr);
	if (tq__due_hint(q, due)) /* takers asleep set their alarm by the old one */
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	if (locked)
		tq__unlock(&q->h->recovery_lock);
	return 0;
}

_Thread_local bool tq__delay_push;
_Thread_local uint64_t tq__units_wait;

/* A full queue: TQ_EAGAIN (timeout 0) or TQ_ETIMEDOUT (until passed), or
 * 0 after waiting for room (for a while: the caller looks again). */
int tq__push_wait(tq_queue *q, uint64_t timeout_ns, uint64_t until)
{
	if (timeout_ns == 0)
		return TQ_EAGAIN;
	uint64_t now = tq_now_ns();
	if (now >= until)
		return TQ_ETIMEDOUT;
	tq__maybe_maintain(q, now);
	tq__bell_wait(q, &q->h->free_ring.bell, tq__can_push, until);
	return 0;
}

/* tq__push_wait for a push through slots: `delayed` counts the delay
 * area's room too; units_wait (1 + the units_given it read) waits for
 * payload units instead of slots. */
static int wait_room(tq_queue *q, uint64_t timeout_ns, uint64_t until, bool delayed, uint64_t units_wait)
{
	tq__delay_push = delayed;
	tq__units_wait = units_wait;
	int rc = tq__push_wait(q, timeout_ns, until);
	tq__delay_push = false;
	tq__units_wait = 0;
	return rc;
}

/* Pushes tasks[0..n) through slots (a mixed batch, a delayed push, what
 * overflows a lane), continuing the caller's clock read (*now_io, read
 * again after a wait and handed back) and deadline: the count accepted,
 * or an error if none was. */
static int push_slots(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns, uint64_t delay_ns,
		      uint64_t *now_io, uint64_t until)
{
	uint64_t now = *now_io;
	uint32_t idx[TQ_CHUNK];
	size_t done = 0;
	int rc = 0;
	bool waited = false;

	while (done < n) {
		if (tq__stopping(q)) {
			rc = TQ_ESTOPPED;
			break;
		}
		uint32_t want = n - done < TQ_CHUNK ? (uint32_t)(n - done) : TQ_CHUNK;
		/* Lanes and slots share the capacity; delayed tasks first fill
		 * the delay area, which takes none of it. */
		uint64_t room = (delay_ns ? tq__delay_room(q) : 0) + tq__room(q), pos = 0;
		if (room < want)
			want = (uint32_t)room;
		int got = want == 0 ? 0 : tq__ring_pop(q, &q->freer, idx, want, st_make(ST_WRITING, q->owner, 0), false,
				       &pos, C__COUNT);
		if (got < 0) {
			rc = got;
			break;
		}
		if (got == 0) {
			if ((rc = wait_room(q, timeout_ns, until, delay_ns != 0, 0)))
				break;
			waited = true;
			continue;
		}
		TQ_FAULT("push.claimed");
		if (waited) /* one clock read per call unless it had to wait */
			now = tq_now_ns();
		waited = false;
		uint64_t id0 = tq__take_ids(q, (uint64_t)got);
		/* Read before the units are looked for: a run given back
		 * after a failed search changes it, and wakes the wait below. */
		uint64_t given = load_acq(&q->h->units_given);
		int w = 0;
		while (w < got && (rc = write_task(q, idx[w], &tasks[done + w], id0 + (uint64_t)w, now)) == 0)
			w++;
		if (w < got) { /* no payload units free for task w: the rest are not accepted */
			(void)tq__release_owned(q, idx + w, (uint32_t)(got - w), C__COUNT);
			got = w;
		}
		TQ_FAULT("push.written");
		int pub = 0;
		if (got && delay_ns)
			pub = publish_delayed(q, idx, (uint32_t)got, tq__deadline_after(now, delay_ns));
		else if (got)
			pub = tq__ring_push(q, &q->readyr, idx, (uint32_t)got, st_make(ST_READY, 0, 0), C_PUSHED);
		if (pub) {
			(void)tq__release_owned(q, idx, (uint32_t)got, C__COUNT); /* not accepted */
			rc = pub;
			break;
		}
		if (got && !delay_ns)
			tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
		done += (size_t)got;
		if (rc == TQ_EAGAIN) { /* payload units full: wait as on a full queue */
			if ((rc = wait_room(q, timeout_ns, until, delay_ns != 0, given + 1)))
				break;
			waited = true;
		} else if (rc) {
			break;
		}
	}
	*now_io = waited ? tq_now_ns() : now;
	return done ? (int)done : rc;
}

static int push(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns, uint64_t delay_ns)
{
	size_t done = 0;
	int rc = 0;

	if ((rc = tq__usable(q)))
		return rc;
	if (!tasks || n == 0 || n > (size_t)INT32_MAX)
		return TQ_EINVAL;
	bool ints = delay_ns == 0, payloads = delay_ns == 0;
	for (size_t i = 0; i < n; i++) {
		if ((rc = validate_task(q, &tasks[i])))
			return rc;
		ints = ints && tasks[i].kind == TQ_KIND_INT;
		payloads = payloads && tasks[i].kind != TQ_KIND_INT;
	}
	uint64_t now = tq_now_ns();
	uint64_t until = tq__deadline_after(now, timeout_ns);
	tq__maybe_maintain(q, now);
	/* Fresh integers, or fresh payloads, go through the lanes of their
	 * class (design.md, 17); a batch that mixes them through slots. */
	if (ints || payloads) {
		bool overflow = false;
		rc = tq__lane_push(q, tasks, NULL, n, timeout_ns, now, until, &overflow);
		if (!overflow)
			return rc;
		done = rc > 0 ? (size_t)rc : 0; /* the rest through slots, below */
	}
	rc = push_slots(q, tasks + done, n - done, timeout_ns, delay_ns, &now, until);
	return done ? (int)done + (rc > 0 ? rc : 0) : rc;
}

TQ_API int tq_push(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns)
{
	return push(q, tasks, n, timeout_ns, 0);
}

TQ_API int tq_push_delayed(tq_queue *q, tq_task *tasks, size_t n, uint64_t delay_ns, uint64_t timeout_ns)
{
	if (delay_ns > TQ_TIME_MAX_NS)
		return TQ_EINVAL;
	return push(q, tasks, n, timeout_ns, delay_ns);
}

/* The integer lanes' own path (design.md, 17): no tq_task to read or to
 * give ids back to. What overflows a lane goes through slots as tq_push's
 * does, a chunk of tasks at a time. */
TQ_API int tq_push_ints(tq_queue *q, const uint64_t *values, size_t n, uint64_t timeout_ns)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!values || n == 0 || n > (size_t)INT32_MAX)
		return TQ_EINVAL;
	uint64_t now = tq_now_ns();
	uint64_t until = tq__deadline_after(now, timeout_ns);
	tq__maybe_maintain(q, now);
	bool overflow = false;
	rc = tq__lane_push(q, NULL, values, n, timeout_ns, now, until, &overflow);
	if (!overflow)
		return rc;
	size_t done = rc > 0 ? (size_t)rc : 0;
	tq_task chunk[64];
	memset(chunk, 0, sizeof chunk);
	while (done < n) {
		size_t m = n - done < 64 ? n - done : 64;
		for (size_t i = 0; i < m; i++) {
			chunk[i].kind = TQ_KIND_INT;
			chunk[i].value = values[done + i];
		}
		rc = push_slots(q, chunk, m, timeout_ns, 0, &now, until); /* now: read again after a wait */
		if (rc <= 0)
			break;
		done += (size_t)rc;
		if ((size_t)rc < m)
			break; /* the next call reports why */
	}
	return done ? (int)done : rc;
}

TQ_API int tq_push_int(tq_queue *q, uint64_t value, uint64_t timeout_ns)
{
	tq_task t = {.kind = TQ_KIND_INT, .value = value};
	int rc = tq_push(q, &t, 1, timeout_ns);
	return rc < 0 ? rc : 0;
}

TQ_API int tq_push_data(tq_queue *q, uint16_t kind, const void *data, uint32_t len, uint64_t timeout_ns)
{
	if (kind != TQ_KIND_STRING && kind != TQ_KIND_JSON)
		return TQ_EINVAL;
	tq_task t = {.kind = kind, .data = data, .len = len};
	int rc = tq_push(q, &t, 1, timeout_ns);
	return rc < 0 ? rc : 0;
}
