/* SPDX-License-Identifier: MIT */
/*
 * recover.c - liveness, recovery of dead processes, lease expiry, retries.
 *
 * All of it runs under the recovery lock (a lock in the header, lock.c), by
 * whichever attached process gets there first: on open, on explicit
 * tq_recover(), and every TQ_MAINT_PERIOD_NS from the push/take paths and
 * their sleeps. A process that dies in here leaves the lock owner-dead; the
 * next holder repairs the counter fold (the only multi-word update made
 * under this lock alone) and simply runs recovery again: every step below
 * is a compare-and-swap on a slot state or a ring operation with its own
 * journal, so repeating it is safe.
 */
#include <errno.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

/* Batches slots taken over by this process and sends them on their way. */
struct mover {
	tq_queue *q;
	uint32_t req[TQ_CHUNK];
	uint32_t rel[TQ_CHUNK];
	uint32_t nreq, nrel;
};

int tq__requeue_owned(tq_queue *q, const uint32_t *idx, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		store_rel(&q->slots[idx[i]].deadline_ns, UINT64_MAX);
	int rc = tq__ring_push(q, &q->readyr, idx, n, st_make(ST_READY, 0, 0), C__COUNT);
	if (rc == 0)
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	return rc;
}

int tq__release_owned(tq_queue *q, const uint32_t *idx, uint32_t n, enum tq_counter counter)
{
	/* Payload units first (design.md, 19): a slot is never FREE with a
	 * unit still its task's. A death in between leaves the slot in its
	 * owner state, and recovery releases it again. */
	for (uint32_t i = 0; i < n; i++)
		tq__units_give(q, idx[i]);
	int rc = tq__ring_push(q, &q->freer, idx, n, st_make(ST_FREE, 0, 0), counter);
	if (rc == 0)
		tq__bell_ring_if_waiting(&q->h->free_ring.bell);
	return rc;
}

static void mover_flush(struct mover *m)
{
	if (m->nreq)
		(void)tq__requeue_owned(m->q, m->req, m->nreq);
	if (m->nrel)
		(void)tq__release_owned(m->q, m->rel, m->nrel, C__COUNT);
	m->nreq = m->nrel = 0;
}

static void mover_requeue(struct mover *m, uint32_t idx)
{
	m->req[m->nreq++] = idx;
	if (m->nreq == TQ_CHUNK)
		mover_flush(m);
}

static void mover_release(struct mover *m, uint32_t idx)
{
	m->rel[m->nrel++] = idx;
	if (m->nrel == TQ_CHUNK)
		mover_flush(m);
}

/* A lease taken back from its holder (dead, or overdue): retry or bury. */
static void lease_returned(struct mover *m, uint32_t idx, const char *why, uint64_t now)
{
	tq_queue *q = m->q;

	if (q->slots[idx].attempts >= q->max_attempts) {
		tq__make_dead(q, idx, TQ_ELOST, why, now, true);
	} else {
		mover_requeue(m, idx);
	}
}

/* Settles the fail journal of record p (owner id `owner`): a failure whose
 * slot was claimed counts exactly once. Claimed means the journal says so,
 * or the slot is still in the owner's REQUEUE state (claimed, then died). */
static void settle_fail(tq_queue *q, struct tq_proc *p, uint32_t owner)
{
	uint64_t fs = load_acq(&p->fail_slot);
	uint64_t ix = (fs & ~FAIL_CLAIMED) - 1;

	if (!fs || ix >= q->nslots)
		return;
	uint64_t s = load_acq(&q->st[ix]);
	if ((fs & FAIL_CLAIMED) || (st_state(s) == ST_REQUEUE && st_owner(s) == owner))
		store_rlx(&p->c[C_FAILED], load_rlx(&p->fail_before) + 1);
	store_rel(&p->fail_slot, 0);
}

/* Settles the delayed-push journal of record p: a slot that is no longer
 * WRITING(owner) was made DELAYED (only its writer moves it out of
 * WRITING), so it was pushed: count it once. */
static void settle_dpush(tq_queue *q, struct tq_proc *p, uint32_t owner)
{
	uint64_t ds = load_acq(&p->dpush_slot);
	uint64_t ix = ds - 1;

	if (!ds || ix >= q->nslots)
		return;
	uint64_t s = load_acq(&q->st[ix]);
	if (!(st_state(s) == ST_WRITING && st_owner(s) == owner)) {
		store_rlx(&p->c[C_PUSHED], load_rlx(&p->dpush_before) + 1);
		/* Its due time may not have reached the hint: lower it (the
		 * delayed gauge is left to the sweep's recount). */
		if (st_state(s) == ST_DELAYED) {
			tq__due_repair(q, (uint32_t)ix); /* it may have died before its bit */
			(void)tq__due_hint(q, load_rlx(&q->slots[ix].deadline_ns));
		}
	}
	store_rel(&p->dpush_slot, 0);
}

/* A task its dead owner was moving: ready again, or dead if out of attempts
 * (keeping the failure it was given, if its owner got that far). */
static void requeue_or_bury(struct mover *m, uint32_t idx, uint64_t now)
{
	tq_queue *q = m->q;

	if (q->slots[idx].attempts < q->max_attempts) {
		mover_requeue(m, idx);
		return;
	}
	tq__make_dead_kept(q, idx, "the process holding it died", now);
}

/* --------------------------------------------------------------- counters */

static void fold_apply(tq_queue *q)
{
	struct tq_fold_journal *f = &q->h->fold;

	for (int c = 0; c < TQ_METRICS; c++)
		q->h->retired[c] = f->after[c];
	TQ_FAULT("fold.mid");
	if (f->rec < TQ_MAX_PROCS)
		for (int c = 0; c < TQ_METRICS; c++)
			store_rlx(&q->procs[f->rec].c[c], 0);
	store_rel(&f->active, 0);
}

/* Adds record rec's counters to the retired totals, exactly once even if
 * this process dies half way (the journal holds the totals to reach). */
void tq__fold_counters(tq_queue *q, uint32_t rec)
{
	struct tq_fold_journal *f = &q->h->fold;

	for (int c = 0; c < TQ_METRICS; c++)
		f->after[c] = q->h->retired[c] + load_rlx(&q->procs[rec].c[c]);
	f->rec = rec;
	store_rel(&f->active, 1);
	fold_apply(q);
}

void tq__fold_repair(tq_queue *q)
{
	if (load_acq(&q->h->fold.active) == 1)
		fold_apply(q);
}

/* -------------------------------------------------------------- recovery */

/*
 * Returns everything record `rec` owned and frees the record. The caller
 * holds the recovery lock and rec's liveness lock. `died`: its holder died
 * (rather than closing, or being this very handle about to reuse it).
 */
int tq__recover_locked(tq_queue *q, uint32_t rec, bool died)
{
	struct tq_proc *p = &q->procs[rec];
	struct mover m = {.q = q};
	uint32_t owner = rec + 1, mine = st_make(0, q->owner, 0);
	uint64_t now = tq_now_ns(), returned = 0;
	int32_t pid = p->pid;
	int rc;

	/* Settle any ring operation the dead holder was inside. */
	if ((rc = tq__ring_touch_locks(q, &q->freer)) || (rc = tq__ring_touch_locks(q, &q->readyr)))
		return rc;

	settle_fail(q, p, owner);
	settle_dpush(q, p, owner);
	for (uint32_t i = 0; i < q->nslots; i++) {
		if (i == q->nslots / 2) {
			mover_flush(&m); /* some returned, some not */
			TQ_FAULT("recover.mid");
		}
		uint64_t s = load_acq(&q->st[i]);
		if (st_owner(s) != owner)
			continue;
		switch (st_state(s)) {
		case ST_WRITING:
		case ST_RELEASING:
			if (cas64(&q->st[i], s, st_make(ST_RELEASING, 0, 0) | mine))
				mover_release(&m, i);
			break;
		case ST_ACKED:
			/* An ack that had not reached the free ring: complete it, and
			 * count it with the record that acked (folded below). */
			if (cas64(&q->st[i], s, st_make(ST_RELEASING, 0, 0) | mine)) {
				add_rlx(&p->c[C_ACKED], 1);
				mover_release(&m, i);
			}
			break;
		case ST_LEASED:
			if (!cas64(&q->st[i], s, st_make(ST_REQUEUE, 0, 0) | mine))
				break;
			returned++;
			if (died) {
				tq__count(q, C_RECOVERED, 1);
				lease_returned(&m, i, "the process holding its lease died", now);
			} else {
				/* Handed back by tq_close: not an attempt that failed. */
				if (q->slots[i].attempts)
					q->slots[i].attempts--;
				mover_requeue(&m, i);
			}
			break;
		case ST_REQUEUE:
			/* Mid-fail, mid-bury or mid-return: the attempt count still
			 * decides, so a task out of attempts is buried, not retried. */
			if (cas64(&q->st[i], s, st_make(ST_REQUEUE, 0, 0) | mine))
				requeue_or_bury(&m, i, now);
			break;
		default:
			break;
		}
	}
	mover_flush(&m);
	/* Its lane and its lane claims; a claim that finds no free slot to move
	 * to keeps the record for a later pass. */
	if ((rc = tq__lanes_recover_rec(q, rec, died, &returned)))
		return rc;

	/* Counted as takers spinning on the ready bell when it died: no longer. */
	uint32_t spun = load_rlx(&p->spinning);
	if (spun && died)
		tq__spinners_drop(&q->h->ready_ring.bell, spun > TQ_MAX_PROCS * 64u ? TQ_MAX_PROCS * 64u : spun);
	store_rlx(&p->spinning, 0);
	uint32_t w = load_rlx(&p->waiting);
	if (w == 1 && died && load_rlx(&q->h->ready_ring.bell.waiters))
		sub_rlx(&q->h->ready_ring.bell.waiters, 1);
	else if (w == 2 && died && load_rlx(&q->h->free_ring.bell.waiters))
		sub_rlx(&q->h->free_ring.bell.waiters, 1);
	store_rlx(&p->waiting, 0);

	tq__fold_counters(q, rec);
	if (died) {
		add_rlx(&q->h->recoveries, 1);
		tq__event(q, TQ_EV_PROC_DIED, (uint64_t)pid, returned, NULL);
	}
	store_rel(&p->state, PROC_FREE);
	return 0;
}

/*
 * The delayed bitmap (design.md, 10). A due DELAYED slot is taken with its
 * bit cleared first; should the CAS lose, the bit is set again if the slot
 * is DELAYED. A stale bit is cleared, then set again if the slot became
 * DELAYED meanwhile. Either way no DELAYED slot is left without its bit.
 * due_keep_if_delayed is that second look, after a clear.
 */
static bool due_keep_if_delayed(tq_queue *q, uint32_t i)
{
	if (st_state(atomic_load(&q->st[i])) != ST_DELAYED)
		return false;
	tq__due_mark(q, i);
	return true;
}

static bool due_take(tq_queue *q, uint32_t i, uint64_t s, uint64_t mine)
{
	atomic_fetch_and(&q->due_bits[i >> 6], ~(1ull << (i & 63)));
	TQ_FAULT("due.cleared");
	if (cas64(&q->st[i], s, mine))
		return true;
	(void)due_keep_if_delayed(q, i);
	return false;
}

/* A due slot taken by due_take: out of the delayed gauge, to ready. */
static void due_requeue(struct mover *m, uint32_t i)
{
	if (load_rlx(&m->q->h->delayed_count))
		sub_rlx(&m->q->h->delayed_count, 1);
	mover_requeue(m, i);
}

/* Moves the due DELAYED slots to ready, reading the delayed bitmap: what
 * a passed due time runs, at most once a millisecond. */
static void due_sweep(tq_queue *q, uint64_t now)
{
	struct mover m = {.q = q};
	uint64_t mine = st_make(ST_REQUEUE, q->owner, 0), next_due = UINT64_MAX;
	uint32_t words = (q->nslots + 63) / 64;

	/* Reset before the pass, as in sweep(): a slot delayed after this
	 * store lowers the hint itself, after setting its bit; one delayed
	 * before it has its bit set before it, which the pass reads. */
	atomic_store(&q->h->next_due_ns, UINT64_MAX);
	for (uint32_t w = 0; w < words; w++) {
		for (uint64_t bits = load_acq(&q->due_bits[w]); bits; bits &= bits - 1) {
			uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
			if (i >= q->nslots) { /* past the last slot: never set by us */
				atomic_fetch_and(&q->due_bits[w], ~(1ull << (i & 63)));
				continue;
			}
			uint64_t s = atomic_load(&q->st[i]);
			uint64_t due = load_acq(&q->slots[i].deadline_ns);
			if (st_state(s) == ST_DELAYED) {
				if (due > now) {
					if (due < next_due)
						next_due = due;
				} else if (due_take(q, i, s, mine)) {
					due_requeue(&m, i);
				}
				continue;
			}
			atomic_fetch_and(&q->due_bits[w], ~(1ull << (i & 63))); /* stale */
			if (due_keep_if_delayed(q, i)) {
				due = load_acq(&q->slots[i].deadline_ns);
				if (due < next_due)
					next_due = due;
			}
		}
	}
	mover_flush(&m);
	(void)tq__due_hint(q, next_due);
	/* A lane task's failure that tq_fail could not move out at once set
	 * the hint to its time too: moved out here, not a full sweep later. */
	tq__lanes_move_failures(q, now);
}

/* Expires overdue leases and moves due retries to ready. */
static void sweep(tq_queue *q, uint64_t now)
{
	struct mover m = {.q = q};
	uint64_t mine = st_make(ST_REQUEUE, q->owner, 0), expired = 0;
	uint32_t delayed = 0, dead = 0;
	uint64_t next_due = UINT64_MAX;

	/* Reset before the scan: a slot delayed after this store lowers the
	 * hint itself, and one delayed before it is seen by the scan. */
	atomic_store(&q->h->next_due_ns, UINT64_MAX);

	for (uint32_t i = 0; i < q->nslots; i++) {
		uint64_t s = load_acq(&q->st[i]);
		unsigned state = st_state(s);
		if (state == ST_DEAD)
			dead++; /* the dead count, in this same pass */
		if (state != ST_LEASED && state != ST_DELAYED)
			continue;
		uint64_t due = load_acq(&q->slots[i].deadline_ns);
		if (due > now) {
			if (state == ST_DELAYED) {
				delayed++;
				if (due < next_due)
					next_due = due;
				tq__due_repair(q, i);
			}
			continue;
		}
		if (state == ST_DELAYED ? !due_take(q, i, s, mine) : !cas64(&q->st[i], s, mine)) {
			delayed += state == ST_DELAYED;
			continue; /* changed under us: its new owner hints if it delays it */
		}
		if (state == ST_LEASED) {
			expired++;
			lease_returned(&m, i, "its lease expired", now);
			dead += st_state(load_acq(&q->st[i])) == ST_DEAD; /* buried here */
		} else {
			due_requeue(&m, i);
		}
	}
	mover_flush(&m);
	/* Exact under the lock already (design.md, 10); the count of this
	 * pass corrects a bury made without it (a fail whose lock stayed
	 * busy). Set before the lanes' expiry, whose burials count from it. */
	store_rlx(&q->h->dead_count, dead);
	/* Exact: every change of a DELAYED state and its count happens under
	 * the recovery lock, as this pass does (but for a fail or delayed push
	 * that could not get the lock in 10 s, which this recount corrects).
	 * Set before the lanes' expiry too: the failures it moves out add
	 * to it. */
	store_rlx(&q->h->delayed_count, delayed);
	uint64_t lane_expired = tq__lanes_expire(q, now);
	(void)tq__due_hint(q, next_due);
	tq__count(q, C_EXPIRED, expired);
	tq__count(q, C_LEXPIRED, lane_expired);
	expired += lane_expired;
	if (expired)
		tq__event(q, TQ_EV_EXPIRED, expired, 0, NULL);
}

/* Records the totals now, for rates over recent windows. */
static void take_sample(tq_queue *q, uint64_t now)
{
	struct tq_hdr *h = q->h;
	uint64_t pushed = h->retired[C_PUSHED] + h->retired[C_LPUSHED];
	uint64_t acked = h->retired[C_ACKED] + h->retired[C_LACKED];
	uint64_t failed = h->retired[C_FAILED] + h->retired[C_LFAILED];

	for (uint32_t r = 0; r < tq__procs_hi(q); r++) {
		struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE)
			continue;
		uint64_t a = load_rlx(&p->c[C_ACKED]) + load_rlx(&p->c[C_LACKED]), then = load_rlx(&p->rate_ns);
		pushed += load_rlx(&p->c[C_PUSHED]) + load_rlx(&p->c[C_LPUSHED]);
		acked += a;
		failed += load_rlx(&p->c[C_FAILED]) + load_rlx(&p->c[C_LFAILED]);
		/* Per-process done/s; a record reused since (rate_ns before it
		 * attached) starts over. */
		if (then > p->attached_ns && now > then && a >= load_rlx(&p->rate_acked)) {
			double rt = (double)(a - load_rlx(&p->rate_acked)) * 1e12 / (double)(now - then);
			store_rlx(&p->rate_milli, rt < 1.8e19 ? (uint64_t)rt : UINT64_MAX);
		}
		store_rlx(&p->rate_acked, a);
		store_rlx(&p->rate_ns, now);
	}
	uint32_t n = load_rlx(&h->sample_next);
	h->samples[n % TQ_SAMPLES] = (struct tq_sample){now, pushed, acked, failed};
	store_rel(&h->sample_next, n + 1);
}

/* How often a passed due time may trigger a due sweep: a pass reads the
 * delayed bitmap (slots / 64 words) and the slots it names. */
#define DUE_PERIOD_NS 1000000ull

static uint64_t sweep_period(const tq_queue *q)
{
	/* A pass reads one word per slot: keep it under ~1% of one core. */
	uint64_t p = (uint64_t)q->nslots * 1000ull;
	return p < TQ_MAINT_PERIOD_NS ? TQ_MAINT_PERIOD_NS : p;
}

/* force: run every step now; wait: wait for a live holder of the lock
 * (bounded) rather than leave the work to it. */
static int maintain(tq_queue *q, bool force, bool wait)
{
	struct tq_hdr *h = q->h;
	uint64_t now = tq_now_ns();
	int recovered = 0;

	/* A due time passed: a due sweep now (at most once a millisecond), so
	 * that delayed tasks become ready within about a millisecond of it. */
	bool due = false;
	if (now >= load_rlx(&h->next_due_ns)) {
		uint64_t next = load_rlx(&h->next_due_sweep_ns);
		due = now >= next && cas64(&h->next_due_sweep_ns, next, now + DUE_PERIOD_NS);
	}
	bool full = force; /* the whole pass: dead processes, samples, sweep */
	if (force) {
		store_rlx(&h->next_maint_ns, now + TQ_MAINT_PERIOD_NS);
	} else {
		uint64_t next = load_rlx(&h->next_maint_ns);
		full = now >= next && cas64(&h->next_maint_ns, next, now + TQ_MAINT_PERIOD_NS);
		if (!full && !due)
			return 0;
	}
	int rc = wait ? tq__lock_recovery(q) : tq__trylock_recovery(q);
	if (rc)
		return wait ? rc : 0;
	for (uint32_t r = 0; full && r < tq__procs_hi(q); r++) {
		if (r == q->rec || load_acq(&q->procs[r].state) != PROC_ACTIVE)
			continue;
		if (tq__ofd_trylock(q->fd, r) != 0)
			continue; /* alive */
		if (load_acq(&q->procs[r].state) == PROC_ACTIVE && tq__recover_locked(q, r, true) == 0)
			recovered++;
		tq__ofd_unlock(q->fd, r);
	}
	if (full && now >= load_rlx(&h->next_sample_ns)) {
		store_rlx(&h->next_sample_ns, now + 1000000000ull);
		take_sample(q, now);
	}
	if (force || (full && now >= load_rlx(&h->next_sweep_ns))) {
		store_rlx(&h->next_sweep_ns, now + sweep_period(q));
		sweep(q, now);
	} else if (due) {
		due_sweep(q, now);
	}
	tq__unlock(&h->recovery_lock);
	return recovered;
}

int tq__maintain(tq_queue *q, bool force)
{
	return maintain(q, force, force);
}

int tq__maintain_nowait(tq_queue *q)
{
	return maintain(q, true, false);
}

void tq__maybe_maintain(tq_queue *q, uint64_t now)
{
	store_rlx(&q->me->last_seen_ns, now);
	if (now >= load_rlx(&q->h->next_maint_ns) || now >= load_rlx(&q->h->next_due_ns))
		(void)tq__maintain(q, false);
}

TQ_API int tq_recover(tq_queue *q)
{
	if (tq__usable(q))
		return tq__usable(q);
	return tq__maintain(q, true);
}
