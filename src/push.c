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

static void write_task(tq_queue *q, uint32_t idx, tq_task *t, uint64_t id, uint64_t now)
{
	struct tq_slot *s = &q->slots[idx];

	s->id = id;
	s->kind = t->kind;
	store_rlx(&s->enq_ns, now);
	s->attempts = 0;
	s->last_err = 0;
	s->flags = 0;
	s->taken_ns = 0;
	store_rlx(&s->deadline_ns, UINT64_MAX);
	if (t->kind == TQ_KIND_INT) {
		s->value = t->value;
		s->len = 0;
	} else {
		s->value = 0;
		s->len = t->len;
		if (t->len)
			memcpy(tq__payload(q, idx), t->data, t->len);
	}
	t->id = id;
}

TQ_API int tq_push(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns)
{
	uint32_t idx[TQ_CHUNK];
	size_t done = 0;
	int rc = 0;

	if (!q || !tasks || n == 0 || n > (size_t)INT32_MAX)
		return TQ_EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((rc = validate_task(q, &tasks[i])))
			return rc;
	uint64_t now = tq_now_ns();
	uint64_t until = tq__deadline_after(now, timeout_ns);
	bool waited = false;
	tq__maybe_maintain(q, now);

	while (done < n) {
		if (tq__stopping(q)) {
			rc = TQ_ESTOPPED;
			break;
		}
		uint32_t want = n - done < TQ_CHUNK ? (uint32_t)(n - done) : TQ_CHUNK;
		uint64_t pos = 0;
		int got = tq__ring_pop(q, &q->freer, idx, want, st_make(ST_WRITING, q->owner, 0), false,
				       &pos, C__COUNT);
		if (got < 0) {
			rc = got;
			break;
		}
		if (got == 0) {
			if (timeout_ns == 0) {
				rc = TQ_EAGAIN;
				break;
			}
			now = tq_now_ns();
			if (now >= until) {
				rc = TQ_ETIMEDOUT;
				break;
			}
			tq__maybe_maintain(q, now);
			tq__bell_wait(q, &q->h->free_ring.bell, &q->freer, until);
			waited = true;
			continue;
		}
		TQ_FAULT("push.claimed");
		if (waited) /* one clock read per call unless it had to wait */
			now = tq_now_ns();
		waited = false;
		for (int i = 0; i < got; i++)
			write_task(q, idx[i], &tasks[done + i], pos + i + 1, now);
		TQ_FAULT("push.written");
		if ((rc = tq__ring_push(q, &q->readyr, idx, (uint32_t)got, st_make(ST_READY, 0, 0), C_PUSHED))) {
			(void)tq__release_owned(q, idx, (uint32_t)got, C__COUNT); /* not accepted */
			break;
		}
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
		done += (size_t)got;
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
