/* SPDX-License-Identifier: MIT */
/*
 * events.c - the recent-events ring in shared memory: deaths detected,
 * recoveries, dead letters, state changes. Fixed size; the oldest entries
 * are overwritten. Appends and reads take the ring's lock briefly;
 * events are rare (never per task on the success path).
 */
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int lock_events(tq_queue *q)
{
	bool died;
	/* A writer that died mid-entry left it with seq 0: readers skip it,
	 * so taking the lock over needs no repair. */
	return tq__lock(q, &q->h->event_lock, &died);
}

void tq__event(tq_queue *q, enum tq_event_type type, uint64_t a, uint64_t b, const char *msg)
{
	if (lock_events(q))
		return; /* an event is not worth failing an operation for */
	struct tq_hdr *h = q->h;
	uint64_t n = h->event_next++;
	struct tq_event *e = &h->events[n % TQ_EVENTS];
	e->seq = 0;
	e->t_ns = tq_now_ns();
	e->pid = (int32_t)getpid();
	e->type = (uint32_t)type;
	e->a = a;
	e->b = b;
	size_t len = msg ? tq__utf8_cut(msg, sizeof(e->msg)) : 0;
	memset(e->msg, 0, sizeof(e->msg));
	if (len)
		memcpy(e->msg, msg, len);
	e->seq = n + 1;
	tq__unlock(&h->event_lock);
}

TQ_API int tq_events(tq_queue *q, uint64_t after_seq, tq_event_info *out, size_t max)
{
	size_t k = 0;

	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out && max)
		return TQ_EINVAL;
	int rc = lock_events(q);
	if (rc)
		return rc;
	uint64_t next = q->h->event_next;
	uint64_t first = next > TQ_EVENTS ? next - TQ_EVENTS : 0;
	if (first < after_seq)
		first = after_seq;
	for (uint64_t n = first; n < next && k < max; n++) {
		const struct tq_event *e = &q->h->events[n % TQ_EVENTS];
		if (e->seq != n + 1)
			continue;
		tq_event_info *o = &out[k++];
		o->seq = e->seq;
		o->t_ns = e->t_ns;
		o->pid = e->pid;
		o->type = (int)e->type;
		o->a = e->a;
		o->b = e->b;
		memcpy(o->msg, e->msg, sizeof(o->msg));
		o->msg[sizeof(o->msg) - 1] = '\0';
	}
	tq__unlock(&q->h->event_lock);
	return (int)k;
}

TQ_API const char *tq_event_name(int type)
{
	switch (type) {
	case TQ_EV_CREATED: return "created";
	case TQ_EV_PROC_DIED: return "process_died";
	case TQ_EV_DEAD: return "task_dead";
	case TQ_EV_DEAD_FULL: return "dead_full";
	case TQ_EV_EXPIRED: return "leases_expired";
	case TQ_EV_STATE: return "state_changed";
	case TQ_EV_KICKED: return "dead_kicked";
	case TQ_EV_PURGED: return "dead_purged";
	default: return "unknown";
	}
}
