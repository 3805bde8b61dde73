/* SPDX-License-Identifier: MIT */
/*
 * ring.c - the free ring and the ready ring: u32 slot indices in shared
 * memory, each side under a lock (lock.c), each side with a redo journal.
 *
 * Invariant, whenever a side's lock is free: a slot is in the ready ring
 * exactly when its state is READY, and in the free ring exactly when it is
 * FREE. A pop or push changes the cells, the states and the position
 * together; the journal makes that change atomic with respect to a crash:
 *
 *   pop:  journal = {head, n, new state, counter before}, phase 1
 *         state[cell] = new state, for each popped cell
 *         head += n                                   <- commit
 *         counter = before + n; phase 0
 *   push: cells[tail + i] = idx[i]
 *         journal = {tail, n, new state, counter before}, phase 1
 *         state[idx] = new state, for each
 *         tail += n                                   <- commit
 *         counter = before + n; phase 0
 *
 * The counter (pushed, taken or acked of the holder's record) is only ever
 * written under this lock, so setting it to before + n is right whether or
 * not the dead holder had already done so.
 *
 * The next locker of a side whose holder died (it takes the lock over) rolls a journal
 * in phase 1 forward: it rewrites the states and sets the position. Both
 * are idempotent, so a repairer that dies is repaired in turn. A push that
 * died before phase 1 changed nothing shared: its cells lie beyond the tail
 * and its slots are still in owner states, which recovery of the dead
 * owner resolves. Recovery of a dead process first takes and releases
 * every ring lock, so every journal it left is settled before its slots
 * are examined.
 *
 * The rings never overflow: there are `capacity` slots and `ring_size >=
 * capacity` cells, and a slot index is in at most one ring at a time.
 */
#include "fault.h"
#include "internal.h"

static inline uint64_t pop_state(uint64_t stbase, bool gen_from_pos, uint64_t pos)
{
	return gen_from_pos ? (stbase | (pos << 32)) : stbase;
}

static void settle_counter(tq_queue *q, const struct tq_journal *j)
{
	if (j->cnt_id < C__COUNT && j->cnt_rec < TQ_MAX_PROCS)
		store_rlx(&q->procs[j->cnt_rec].c[j->cnt_id], j->cnt_before + j->n);
}

/* Begins a journaled operation: everything a repairer needs, then phase 1. */
static void journal_begin(tq_queue *q, struct tq_journal *j, uint64_t pos, uint32_t n,
			  uint64_t stbase, enum tq_counter counter)
{
	j->pos = pos;
	j->n = n;
	j->stbase = stbase;
	j->cnt_id = counter;
	j->cnt_rec = q->rec;
	j->cnt_before = counter < C__COUNT ? load_rlx(&q->me->c[counter]) : 0;
	store_rel(&j->phase, 1);
}

/* Ends it: the counter, then phase 0. */
static void journal_end(tq_queue *q, struct tq_journal *j)
{
	settle_counter(q, j);
	store_rel(&j->phase, 0);
}

/* Settles a pop journal left by a dead holder: roll forward. */
static void repair_pop(tq_queue *q, struct tq_ringd *rd)
{
	struct tq_ring_side *s = &rd->r->pop;
	uint64_t pos = s->j.pos;
	uint32_t n = s->j.n;

	if (load_acq(&s->j.phase) != 1)
		return;
	if (n > rd->mask + 1 || load_rlx(&s->pos) != pos) {
		if (n <= rd->mask + 1 && load_rlx(&s->pos) == pos + n)
			settle_counter(q, &s->j); /* committed; the count may not be */
		store_rel(&s->j.phase, 0);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = rd->cells[(pos + i) & rd->mask];
		if (idx < q->nslots)
			store_rel(&q->st[idx], pop_state(s->j.stbase, (s->j.stbase & 0xff) == ST_LEASED, pos + i));
	}
	store_rel(&s->pos, pos + n);
	settle_counter(q, &s->j);
	store_rel(&s->j.phase, 0);
}

/* Settles a push journal left by a dead holder: roll forward. */
static void repair_push(tq_queue *q, struct tq_ringd *rd)
{
	struct tq_ring_side *s = &rd->r->push;
	uint64_t pos = s->j.pos;
	uint32_t n = s->j.n;

	if (load_acq(&s->j.phase) != 1)
		return;
	if (n > rd->mask + 1 || load_rlx(&s->pos) != pos) {
		if (n <= rd->mask + 1 && load_rlx(&s->pos) == pos + n)
			settle_counter(q, &s->j); /* committed; the count may not be */
		store_rel(&s->j.phase, 0);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = rd->cells[(pos + i) & rd->mask];
		if (idx < q->nslots)
			store_rel(&q->st[idx], s->j.stbase);
	}
	store_rel(&s->pos, pos + n);
	settle_counter(q, &s->j);
	store_rel(&s->j.phase, 0);
}

static int lock_side(tq_queue *q, struct tq_ringd *rd, bool pop_side)
{
	struct tq_lock *m = pop_side ? &rd->r->pop.lock : &rd->r->push.lock;
	bool died;
	int rc = tq__lock(q, m, &died);

	if (rc || !died)
		return rc;
	if (pop_side)
		repair_pop(q, rd);
	else
		repair_push(q, rd);
	return 0;
}

/*
 * Pops up to `want` indices into out[], writing `stbase` (with the ring
 * position as lease generation when gen_from_pos) into each slot's state.
 * Returns the number popped (0 when empty), or a negative error.
 */
int tq__ring_pop(tq_queue *q, struct tq_ringd *rd, uint32_t *out, uint32_t want,
		 uint64_t stbase, bool gen_from_pos, uint64_t *first_pos, enum tq_counter counter)
{
	struct tq_ring_side *s = &rd->r->pop;
	int rc = lock_side(q, rd, true);

	if (rc)
		return rc;
	uint64_t h = load_rlx(&s->pos);
	uint64_t t = load_acq(&rd->r->push.pos);
	uint64_t avail = t - h;
	if (avail > (uint64_t)rd->mask + 1) {
		tq__unlock(&s->lock);
		return TQ_EBADQUEUE;
	}
	uint32_t n = avail < want ? (uint32_t)avail : want;
	if (n == 0) {
		tq__unlock(&s->lock);
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = rd->cells[(h + i) & rd->mask];
		if (idx >= q->nslots) {
			tq__unlock(&s->lock);
			return TQ_EBADQUEUE;
		}
		out[i] = idx;
	}
	journal_begin(q, &s->j, h, n, stbase, counter);
	for (uint32_t i = 0; i < n; i++) {
		store_rel(&q->st[out[i]], pop_state(stbase, gen_from_pos, h + i));
		if (i == n / 2)
			TQ_FAULT("ring.pop.mid");
	}
	store_rel(&s->pos, h + n);
	journal_end(q, &s->j);
	tq__unlock(&s->lock);
	if (first_pos)
		*first_pos = h;
	return (int)n;
}

/*
 * Pushes n indices (slots the caller owns) and writes `stbase` into their
 * states. Cannot run out of room (see the top of this file).
 */
int tq__ring_push(tq_queue *q, struct tq_ringd *rd, const uint32_t *idx, uint32_t n,
		  uint64_t stbase, enum tq_counter counter)
{
	struct tq_ring_side *s = &rd->r->push;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = lock_side(q, rd, false)))
		return rc;
	uint64_t t = load_rlx(&s->pos);
	if (t + n - load_acq(&rd->r->pop.pos) > (uint64_t)rd->mask + 1) {
		tq__unlock(&s->lock);
		return TQ_EBADQUEUE;
	}
	for (uint32_t i = 0; i < n; i++)
		__atomic_store_n(&rd->cells[(t + i) & rd->mask], idx[i], __ATOMIC_RELAXED); /* racy readers: stats */
	journal_begin(q, &s->j, t, n, stbase, counter);
	for (uint32_t i = 0; i < n; i++) {
		store_rel(&q->st[idx[i]], stbase);
		if (i == n / 2)
			TQ_FAULT("ring.push.mid");
	}
	store_rel(&s->pos, t + n);
	journal_end(q, &s->j);
	tq__unlock(&s->lock);
	return 0;
}

/* The push side's lock alone, for writers of the counter it guards that
 * move no cells (a delayed push: push.c). */
int tq__ring_lock_push_side(tq_queue *q, struct tq_ringd *rd)
{
	return lock_side(q, rd, false);
}

void tq__ring_unlock_push_side(struct tq_ringd *rd)
{
	tq__unlock(&rd->r->push.lock);
}

/* Takes and releases both locks of a ring, settling any journal a dead
 * holder left. */
int tq__ring_touch_locks(tq_queue *q, struct tq_ringd *rd)
{
	int rc = lock_side(q, rd, true);

	if (rc)
		return rc;
	tq__unlock(&rd->r->pop.lock);
	if ((rc = lock_side(q, rd, false)))
		return rc;
	tq__unlock(&rd->r->push.lock);
	return 0;
}
