/* SPDX-License-Identifier: MIT */
/*
 * finished.c - the finished watermark (tq_finished_below): the id below
 * which every accepted task is finished, derived from what shared memory
 * holds, so that a caller (a bridge, a monitor) can learn when the tasks
 * it pushed are done without any record kept per task (docs/design.md,
 * section 18).
 */
#include "internal.h"

TQ_API int tq_finished_below(tq_queue *q, uint64_t *below)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!below)
		return TQ_EINVAL;
	/* Every task a push that returned before now holds is below this. */
	uint64_t min = load_acq(&q->h->next_id) + 1;

	/* Lanes, claims and the move journal first, then the slots: a task
	 * moves only that way (a lane, a claim, a move-out, a slot), and
	 * appears in the next place before it leaves the one before. */
	min = tq__lanes_unfinished_min(q, min);
	for (uint32_t i = 0; i < q->nslots; i++) {
		switch (st_state(load_acq(&q->st[i]))) {
		case ST_READY:
		case ST_LEASED:
		case ST_REQUEUE:
		case ST_DELAYED: {
			uint64_t id = __atomic_load_n(&q->slots[i].id, __ATOMIC_RELAXED);
			if (id && id < min)
				min = id;
			break;
		}
		default:
			break; /* free, finished (acked, dead), or not yet accepted */
		}
	}
	*below = min;
	return 0;
}
