/* SPDX-License-Identifier: MIT */
/*
 * take.c - tq_take: ready tasks leased to this handle, oldest first
 * (docs/design.md, sections 3 and 9).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

/* Waits while taking is not allowed: a bounded sleep, not a spin. */
static void paused_wait(uint64_t until)
{
	uint64_t now = tq_now_ns(), d = 10000000ull;

	if (until - now < d)
		d = until - now;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};
	nanosleep(&ts, NULL);
}

/* Nothing taken: TQ_EAGAIN (no wait asked for), TQ_ETIMEDOUT, or 0 after
 * waiting for a task (or for the pause to end), *now then read again. */
static int take_wait(tq_queue *q, bool allowed, uint64_t timeout_ns, uint64_t until, uint64_t *now)
{
	/* Nothing ready: the acks kept for later go now (tq_ack_later). */
	tq__ack_later_due(q, *now, true);
	if (timeout_ns == 0)
		return TQ_EAGAIN;
	*now = tq_now_ns();
	if (*now >= until)
		return TQ_ETIMEDOUT;
	tq__maybe_maintain(q, *now);
	if (allowed)
		tq__bell_wait(q, &q->h->ready_ring.bell, tq__can_take, until);
	else
		paused_wait(until);
	*now = tq_now_ns();
	return 0;
}

/* Fills t from a slot just leased. The lease deadline is published last:
 * until then it is UINT64_MAX and no sweep can take the slot back, so the
 * fields read here belong to this delivery. */
static void fill_taken(tq_queue *q, tq_task *t, uint32_t idx, uint64_t lease, uint64_t now, uint64_t end)
{
	struct tq_slot *s = &q->slots[idx];
	uint16_t a = (uint16_t)(s->attempts + 1);

	s->attempts = a;
	s->taken_ns = now;
	t->id = s->id;
	t->kind = s->kind;
	t->attempt = a;
	t->enqueued_ns = load_rlx(&s->enq_ns);
	if (s->kind == TQ_KIND_INT) {
		t->value = s->value;
		t->data = NULL;
		t->len = 0;
	} else {
		t->value = 0;
		t->data = tq__payload(q, idx, &t->len);
	}
	t->priv[0] = idx | ((uint64_t)q->tag << 32);
	t->priv[1] = lease;
	store_rel(&s->deadline_ns, end);
}

/* Slot tasks (retries, payloads, returned leases) from the ready ring. */
static int take_slots(tq_queue *q, tq_task *out, uint32_t want, uint64_t now)
{
	uint32_t idx[TQ_CHUNK];
	uint64_t pos = 0;
	uint64_t lease = st_make(ST_LEASED, q->owner, 0);
	int got = tq__ring_pop(q, &q->readyr, idx, want, lease, true, &pos, C_TAKEN);

	if (got <= 0)
		return got;
	TQ_FAULT("take.popped");
	uint64_t end = tq__deadline_after(now, q->lease_ns);
	for (int i = 0; i < got; i++)
		__builtin_prefetch(&q->slots[idx[i]], 1);
	for (int i = 0; i < got; i++)
		fill_taken(q, &out[i], idx[i], lease | ((pos + (uint64_t)i) << 32), now, end);
	return got;
}

/* The id of the slot task at the ready ring's head; 0 if none. */
uint64_t tq__ring_head_id(tq_queue *q)
{
	uint64_t h = load_acq(&q->readyr.r->pop.pos);
	if (h == load_acq(&q->readyr.r->push.pos))
		return 0;
	uint32_t idx = __atomic_load_n(&q->readyr.cells[h & q->readyr.mask], __ATOMIC_RELAXED);
	return idx < q->nslots ? __atomic_load_n(&q->slots[idx].id, __ATOMIC_RELAXED) : 0;
}

/* How many of the ready ring's first tasks (up to max) have ids below
 * stop: they are taken before a lane task with id stop. A hint read
 * racily, like tq__ring_head_id: the pop that follows takes what is there. */
static uint32_t ring_count_before(tq_queue *q, uint64_t stop, uint32_t max)
{
	uint64_t h = load_acq(&q->readyr.r->pop.pos), t = load_acq(&q->readyr.r->push.pos);
	uint32_t n = 0;

	while (n < max && h + n < t) {
		uint32_t idx = __atomic_load_n(&q->readyr.cells[(h + n) & q->readyr.mask], __ATOMIC_RELAXED);
		if (idx >= q->nslots || __atomic_load_n(&q->slots[idx].id, __ATOMIC_RELAXED) >= stop)
			break;
		n++;
	}
	return n;
}

/* From whichever source holds the task pushed first (ids grow in push
 * order): the lanes (fresh tasks, up to want) or the ready ring (everything
 * else, up to slot_max: a take-ahead keeps lane tasks only), and from it
 * only tasks older than the other's first. Reading the lanes' heads costs
 * a few lines, so only when the ring has anything. */
static int take_some(tq_queue *q, struct tq_take_sink *sk, uint32_t want, uint32_t slot_max, uint64_t now,
		     bool *fresh)
{
	uint64_t stop = 0;
	tq_task *out = sk->out;

	*fresh = false;
	if (tq__ring_count(&q->readyr)) {
		uint64_t lane_oldest = 0, ring_oldest = tq__ring_head_id(q);
		tq__lanes_ready(q, &lane_oldest, NULL);
		if (!lane_oldest || ring_oldest < lane_oldest) {
			uint32_t n = lane_oldest ? ring_count_before(q, lane_oldest, slot_max) : slot_max;
			int got = take_slots(q, out, n ? n : 1, now);
			if (got)
				return got;
		} else if (ring_oldest) {
			stop = ring_oldest;
		}
	}
	int got = tq__lane_take(q, sk, want, stop, now);
	if (got != TQ_EBUSY) {
		*fresh = true; /* lane tasks: first deliveries all */
		return got;
	}
	/* Every lease entry in use: the claim goes into slots. */
	uint32_t idx[TQ_CLAIM_MAX];
	got = tq__lane_take_to_slots(q, idx, slot_max, now);
	if (got <= 0)
		return got;
	uint64_t end = tq__deadline_after(now, q->lease_ns);
	for (int i = 0; i < got; i++) {
		fill_taken(q, &out[i], idx[i], tq__slot_lease(q, idx[i]), now, end);
	}
	return got;
}

/* Hands over up to max kept tasks (take-ahead), each leased anew from now:
 * the count; a kept task whose lease has ended is dropped (it went back
 * to the queue). The caller holds ahead_busy. */
static int ahead_serve(tq_queue *q, tq_task *out, size_t max, uint64_t now)
{
	uint64_t end = tq__deadline_after(now, q->lease_ns);
	int k = 0;

	if (end == UINT64_MAX)
		end = UINT64_MAX - 1;
	while ((size_t)k < max && q->ahead_i < q->ahead_n) {
		const tq_task *t = &q->ahead[q->ahead_i++];
		/* Marked handed over before the lease is checked (the check
		 * after touch's CAS, lane.c): a move-out that wins the race
		 * counts the attempt; one that loses finds the marker. Only
		 * lane tasks are kept (take_some). */
		tq__lane_mark_handed(q, t, tq__task_bit(t) + 1, now);
		if (tq__touch_one(q, t, end) == 0)
			out[k++] = *t;
	}
	store_rlx(&q->ahead_left, q->ahead_n - q->ahead_i);
	return k;
}

/* tq_take with the take-ahead buffer held (ahead) or not. */
static int take(tq_queue *q, tq_task *out, size_t max, uint64_t timeout_ns, bool ahead)
{
	uint32_t want = max < TQ_CHUNK ? (uint32_t)max : TQ_CHUNK, slot_max = want;
	uint32_t amax = ahead ? load_rlx(&q->ahead_max) : 0; /* read once: it may change meanwhile */
	int got = 0;
	bool fresh = false, kept = false;
	tq_task *buf = out;
	struct tq_take_sink sk = {.out = out};

	uint64_t now = tq_now_ns();
	uint64_t until = tq__deadline_after(now, timeout_ns);
	tq__maybe_maintain(q, now);
	tq__ack_later_due(q, now, false);
	for (;;) {
		if (tq__stopping(q))
			return TQ_ESTOPPED;
		bool allowed = load_rlx(&q->h->run_state) != TQ_PAUSED;
		if (allowed && ahead && q->ahead_i < q->ahead_n) {
			got = ahead_serve(q, out, max, now);
			if (got) {
				kept = true;
				break;
			}
		}
		if (allowed) {
			if (ahead && amax > want) {
				/* Claim up to amax, hand over want, keep the rest. */
				sk = (struct tq_take_sink){.out = q->ahead, .hand = want};
				buf = q->ahead;
				got = take_some(q, &sk, amax, slot_max, now, &fresh);
			} else {
				got = take_some(q, &sk, want, slot_max, now, &fresh);
			}
			if (got)
				break;
		}
		int rc = take_wait(q, allowed, timeout_ns, until, &now);
		if (rc)
			return rc;
	}
	if (got < 0)
		return got;
	if (buf != out) {
		/* Each claim said how many of its tasks it hands over (claim_into,
		 * from sk.hand) before it was made. */
		size_t n = (size_t)got < max ? (size_t)got : max;
		memcpy(out, buf, n * sizeof *out);
		q->ahead_i = (uint32_t)n;
		q->ahead_n = (uint32_t)got;
		store_rlx(&q->ahead_left, q->ahead_n - q->ahead_i);
		got = (int)n;
	}
	/* The wait (push to hand-over) of the tasks handed over now: kept
	 * tasks are sampled when they are handed over. */
	bool all_first = fresh && !kept;
	uint64_t firsts = all_first ? (uint64_t)got : 0, first_enq = out[0].enqueued_ns;
	for (int i = 0; !all_first && i < got; i++)
		if (out[i].attempt == 1 && firsts++ == 0)
			first_enq = out[i].enqueued_ns;
	/* One sample per batch, weighted by its first deliveries: the wait of
	 * a batch's tasks differs by the time it took to push them. */
	if (firsts && tq__hist_due(q, H_WAIT, firsts))
		tq__hist_sample(q, H_WAIT, now > first_enq ? now - first_enq : 0);
	/* More left and someone asleep: pass the wake-up on. */
	if (load_rlx(&q->h->ready_ring.bell.waiters) && tq__can_take(q, false))
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	return got;
}

TQ_API int tq_take(tq_queue *q, tq_task *out, size_t max, uint64_t timeout_ns)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!out || max == 0)
		return TQ_EINVAL;
	/* The kept tasks are this thread's while it holds ahead_busy. */
	uint32_t idle = 0;
	bool ahead = (load_rlx(&q->ahead_max) > 1 || load_rlx(&q->ahead_left)) &&
		     atomic_compare_exchange_strong(&q->ahead_busy, &idle, 1);
	rc = take(q, out, max, timeout_ns, ahead);
	if (ahead)
		store_rel(&q->ahead_busy, 0);
	return rc;
}

TQ_API int tq_set_take_ahead(tq_queue *q, unsigned n)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (n > TQ_TAKE_AHEAD_MAX)
		return TQ_EINVAL;
	store_rlx(&q->ahead_max, n);
	return 0;
}

/*
 * tq_take_ints: fresh integers from the integer lanes into values, their
 * claims into the batch. No integer younger than the oldest task only
 * tq_take takes (the ready ring's first, the payload lanes' firsts) is
 * taken: then it returns 0 at once (taskq.h).
 */
TQ_API int tq_take_ints(tq_queue *q, uint64_t *values, size_t max, tq_batch *b, uint64_t timeout_ns)
{
	int got = 0, rc = tq__usable(q);

	if (rc)
		return rc;
	if (!values || !b || max == 0)
		return TQ_EINVAL;
	uint32_t want = max < TQ_BATCH_TASKS ? (uint32_t)max : TQ_BATCH_TASKS;
	/* The claims are written as they are made (tq__lane_take). */
	b->n = b->nclaims = 0;
	b->priv[TQ__B_PREFIX] = q->lane_prefix;
	b->priv[TQ__B_PREFIX + 1] = 0;
	memset(b->priv + TQ__B_HANDED, 0, TQ_BATCH_TASKS / 8);
	uint64_t now = tq_now_ns();
	uint64_t until = tq__deadline_after(now, timeout_ns);
	tq__maybe_maintain(q, now);
	struct tq_take_sink sk = {.vals = values, .claims = b->priv + TQ__B_CLAIMS, .maxclaims = TQ_BATCH_CLAIMS};
	for (;;) {
		if (tq__stopping(q))
			return TQ_ESTOPPED;
		bool allowed = load_rlx(&q->h->run_state) != TQ_PAUSED;
		if (allowed) {
			uint32_t pair = 0;
			uint64_t stop = tq__payload_lanes_oldest(q, &pair), r = 0;
			if (tq__ring_count(&q->readyr)) {
				r = tq__ring_head_id(q);
				if (r && (!stop || r < stop))
					stop = r;
			}
			sk.blocked = false;
			got = tq__lane_take(q, &sk, want, stop, now);
			if (got != 0)
				break;
			if (stop || sk.blocked) {
				/* An older task for tq_take. If it is a payload task,
				 * this handle's next tq_take starts at its pair (it
				 * keeps order within a pair only). */
				if (sk.blocked && (!stop || sk.blocked_id < stop)) {
					stop = sk.blocked_id;
					pair = sk.blocked_pair;
				}
				if (stop != r)
					store_rlx(&q->take_lane, pair);
				return 0;
			}
		}
		rc = take_wait(q, allowed, timeout_ns, until, &now);
		if (rc)
			return rc;
	}
	if (got < 0)
		return got;
	b->n = (uint32_t)got;
	b->nclaims = sk.nclaims;
	if (tq__hist_due(q, H_WAIT, (uint64_t)got)) {
		uint64_t enq = tq__lane_claim_enq(q, (uint32_t)(b->priv[TQ__B_CLAIMS + 1] & 0xffu));
		tq__hist_sample(q, H_WAIT, now > enq ? now - enq : 0);
	}
	if (load_rlx(&q->h->ready_ring.bell.waiters) && tq__can_take(q, false))
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	return got;
}
