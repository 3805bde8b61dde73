/* SPDX-License-Identifier: MIT */
/*
 * lease.c - what a lease holder does with its tasks: ack, fail (retry with
 * backoff, or bury), touch (docs/design.md, sections 10 and 12).
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

/* A task handed back by the caller: does it name a lease of this handle? */
static int check_lease(const tq_queue *q, const tq_task *t)
{
	if ((t->priv[0] >> 32) != q->tag || (uint32_t)t->priv[0] >= q->nslots ||
	    st_state(t->priv[1]) != ST_LEASED ||
	    st_owner(t->priv[1]) != q->owner)
		return TQ_EINVAL;
	return 0;
}

bool tq__lease_held(tq_queue *q, const tq_task *t)
{
	if (tq__is_lane_task(t))
		return tq__lane_held(q, t);
	return check_lease(q, t) == 0 && load_acq(&q->st[(uint32_t)t->priv[0]]) == t->priv[1];
}

/* Every task names a lease of this handle; *kinds gets KIND_LANE and/or
 * KIND_SLOT for what the batch holds. One pass. */
enum { KIND_LANE = 1, KIND_SLOT = 2 };

/* A batch of lane tasks only, at most TQ_CHUNK: checked and grouped by
 * claim in one pass (the common ack: what one tq_take returned). Returns
 * TQ_EAGAIN, having looked at nothing else, when the batch is not that. */
static int check_lane_batch(const tq_queue *q, const tq_task *t, size_t n, struct tq_lane_group *gr, size_t *ng)
{
	size_t k = 0;
	struct tq_lane_group cur = {.e = UINT32_MAX};

	if (n > TQ_CHUNK)
		return TQ_EAGAIN;
	/* The most common of all: the tasks of one claim. The first is
	 * checked as any lane task; every task's lease words are then compared
	 * with the first's (all but the task bit) without a branch per task.
	 * Anything else (a slot task first, several claims) goes the general
	 * way, below. */
	if (tq__lane_check(q, &t[0]) == 0) {
		uint64_t head = t[0].priv[0] & ~0x3full, g = t[0].priv[1], diff = 0, mask = 0;
		uint32_t twice = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t a = t[i].priv[0], b = 1ull << (a & 0x3f);
			diff |= ((a & ~0x3full) ^ head) | (t[i].priv[1] ^ g);
			twice += (mask & b) != 0;
			mask |= b;
		}
		if (diff == 0) {
			gr[0] = (struct tq_lane_group){.e = tq__task_entry(&t[0]), .g = g, .mask = mask, .twice = twice};
			*ng = 1;
			return 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!tq__is_lane_task(&t[i]))
			return TQ_EAGAIN;
		if (tq__lane_check(q, &t[i]))
			return TQ_EINVAL;
		tq__lane_group_add(gr, &k, &cur, &t[i]);
	}
	tq__lane_group_end(gr, &k, &cur);
	*ng = k;
	return 0;
}

static int check_leases(const tq_queue *q, const tq_task *tasks, size_t n, unsigned *kinds)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!tasks || n == 0)
		return TQ_EINVAL;
	unsigned k = 0;
	for (size_t i = 0; i < n; i++) {
		if (tq__is_lane_task(&tasks[i])) {
			if (tq__lane_check(q, &tasks[i]))
				return TQ_EINVAL;
			k |= KIND_LANE;
		} else {
			if (check_lease(q, &tasks[i]))
				return TQ_EINVAL;
			k |= KIND_SLOT;
		}
	}
	if (kinds)
		*kinds = k;
	return 0;
}

/*
 * Processing time (take to ack) for the histogram. Small acks read the
 * clock on one call in 8 and count the others at this handle's last
 * measured time, so that the count stays exact and acking one task at a
 * time does not pay a clock read per task.
 */
static void record_processing(tq_queue *q, uint64_t taken_ns, uint64_t k)
{
	if (!tq__hist_due(q, H_PROC, k))
		return;
	uint64_t now = tq_now_ns();
	tq__hist_sample(q, H_PROC, now > taken_ns ? now - taken_ns : 0);
}

/*
 * Claims each acked slot by compare-and-swap, LEASED(p, g) to ACKED(p). A
 * lease can change hands three ways while its owner lives: this handle acks
 * or fails it (from any thread), or the lease-expiry sweep takes it (another
 * process, by CAS too). One CAS per task decides every such race by itself:
 * a task given twice in one batch, acked by two threads, or taken by the
 * sweep finds the word changed and counts as lost. No other process has to
 * wait for or respect an acker, so an acker stopped at any instruction
 * cannot keep its leases past their deadline.
 */
static uint32_t ack_claim(tq_queue *q, const tq_task *t, uint32_t n, uint32_t *idx, uint64_t *lost)
{
	uint64_t acked = st_make(ST_ACKED, q->owner, 0);
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t ix = (uint32_t)t[i].priv[0];
		if (tq__is_lane_task(&t[i]))
			continue; /* acked by tq__lane_ack */
		/* ACKED(p): recovery completes the ack, and counts it */
		if (cas64(&q->st[ix], t[i].priv[1], acked))
			idx[k++] = ix;
		else
			(*lost)++;
		if (i == n / 2)
			TQ_FAULT("ack.mid");
	}
	return k;
}

TQ_API int tq_ack(tq_queue *q, const tq_task *tasks, size_t n)
{
	uint64_t lost = 0;
	return tq__ack(q, tasks, n, &lost);
}

/* ------------------------------------------------------- acks later */

/* Kept acks this old (since the take before the first) go at the next
 * take. The test build can change it (tq__set_ack_later_age_ns). */
TQ_TEST_TUNABLE(later_age_ns, tq__set_ack_later_age_ns, 1000000ull)

/* Acks the kept tasks; the caller holds later_busy. */
static int later_apply(tq_queue *q)
{
	uint32_t n = load_rlx(&q->later_n);
	uint64_t lost = 0;

	if (n == 0)
		return 0;
	int rc = tq__ack(q, q->later, n, &lost);
	store_rlx(&q->later_n, 0);
	return rc;
}

/* rc, or the unreported result of an ack a tq_take made if rc is 0;
 * clears the latter. */
static int later_report(tq_queue *q, int rc)
{
	int taken = atomic_load_explicit(&q->later_lost, memory_order_relaxed);
	if (taken)
		taken = atomic_exchange(&q->later_lost, 0);
	return rc ? rc : taken;
}

TQ_API int tq_ack_later(tq_queue *q, const tq_task *tasks, size_t n)
{
	int rc = check_leases(q, tasks, n, NULL);

	if (rc)
		return rc;
	uint32_t idle = 0;
	if (n > TQ_ACK_LATER_MAX || !atomic_compare_exchange_strong(&q->later_busy, &idle, 1))
		return tq_ack(q, tasks, n);
	uint32_t k = load_rlx(&q->later_n);
	if (k + n > TQ_ACK_LATER_MAX) {
		rc = later_apply(q);
		k = 0;
	}
	if (k == 0)
		store_rlx(&q->later_since, load_rlx(&q->last_take_ns));
	for (size_t i = 0; i < n; i++)
		q->later[k + i] = tasks[i]; /* not memcpy: a call of one task is the common one */
	store_rlx(&q->later_n, k + (uint32_t)n);
	if (k + n == TQ_ACK_LATER_MAX) {
		int a = later_apply(q);
		rc = rc ? rc : a;
	}
	rc = later_report(q, rc);
	store_rel(&q->later_busy, 0);
	return rc;
}

TQ_API int tq_ack_flush(tq_queue *q)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	for (;;) {
		uint32_t idle = 0;
		if (atomic_compare_exchange_strong(&q->later_busy, &idle, 1))
			break;
		sched_yield(); /* another thread of this process keeps acks: a few instructions */
	}
	rc = later_report(q, later_apply(q));
	store_rel(&q->later_busy, 0);
	return rc;
}

void tq__ack_later_due(tq_queue *q, uint64_t now, bool empty)
{
	store_rlx(&q->last_take_ns, now);
	if (load_rlx(&q->later_n) == 0)
		return;
	if (!empty && (later_age_ns == UINT64_MAX || now - load_rlx(&q->later_since) < later_age_ns))
		return;
	uint32_t idle = 0;
	if (!atomic_compare_exchange_strong(&q->later_busy, &idle, 1))
		return; /* another thread keeps or acks them */
	int rc = later_apply(q);
	if (rc) {
		int none = 0;
		(void)atomic_compare_exchange_strong(&q->later_lost, &none, rc); /* the first until reported */
	}
	store_rel(&q->later_busy, 0);
}

int tq__ack(tq_queue *q, const tq_task *tasks, size_t n, uint64_t *lost_out)
{
	uint32_t idx[TQ_CHUNK];
	uint64_t lost = 0;
	unsigned kinds = 0;
	struct tq_lane_group gr[TQ_CHUNK];
	size_t ng = 0;
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!tasks || n == 0)
		return TQ_EINVAL;
	rc = check_lane_batch(q, tasks, n, gr, &ng);
	if (rc == 0) {
		uint64_t acked = 0, taken_ns = 0;
		tq__lane_ack_groups(q, gr, ng, &acked, &lost, &taken_ns);
		if (acked) {
			tq__count(q, C_LACKED, acked);
			record_processing(q, taken_ns, acked);
		}
		goto out;
	}
	if (rc != TQ_EAGAIN)
		return rc;
	rc = check_leases(q, tasks, n, &kinds);
	if (rc)
		return rc;
	bool slots = kinds & KIND_SLOT, lanes = kinds & KIND_LANE;
	uint64_t lane_acked = 0, taken_ns = 0;
	if (lanes) {
		tq__lane_ack(q, tasks, n, &lane_acked, &lost, &taken_ns);
		if (lane_acked) {
			tq__count(q, C_LACKED, lane_acked);
			record_processing(q, taken_ns, lane_acked);
		}
	}
	if (!slots)
		goto out;
	/* Every chunk is claimed, whatever happens to the releases: a claimed
	 * (ACKED) slot is done, and one whose release failed is freed and
	 * counted when this handle closes or its process dies (recovery). After
	 * the first failed release, the rest are not tried (they would wait
	 * for the same lock). */
	for (size_t done = 0; done < n;) {
		uint32_t chunk = n - done < TQ_CHUNK ? (uint32_t)(n - done) : TQ_CHUNK;
		uint32_t k = ack_claim(q, tasks + done, chunk, idx, &lost);
		if (k)
			record_processing(q, q->slots[idx[0]].taken_ns, k);
		if (rc == 0)
			rc = tq__release_owned(q, idx, k, C_ACKED);
		done += chunk;
	}
out:
	tq__count(q, C_LOST, lost);
	*lost_out = lost;
	return rc ? rc : lost ? TQ_ELOST : 0;
}

static uint64_t next_rand(tq_queue *q)
{
	/* xorshift64*, per handle; jitter only, no security needed. */
	uint64_t x = load_rlx(&q->rng);
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	store_rlx(&q->rng, x);
	return x * 0x2545F4914F6CDD1Dull;
}

uint64_t tq__backoff_ns(tq_queue *q, unsigned attempt)
{
	uint64_t d = q->backoff_base_ns, cap = q->backoff_max_ns;

	for (unsigned i = 1; i < attempt && d < cap; i++)
		d = d > cap / 2 ? cap : d * 2;
	if (d > cap)
		d = cap;
	return d / 2 + (d / 2 ? next_rand(q) % (d / 2 + 1) : 0);
}

TQ_API int tq_fail(tq_queue *q, const tq_task *tasks, size_t n, int err, const char *msg)
{
	uint64_t lost = 0;
	int rc = check_leases(q, tasks, n, NULL);

	if (rc)
		return rc;
	uint64_t mine = st_make(ST_REQUEUE, q->owner, 0), now = tq_now_ns();
	/* Under the recovery lock, the delayed and dead-letter gauges change
	 * with the slots' states as one step against the sweep, which recounts
	 * them (recover.c). Failing is not on the fast path; if a live process
	 * holds the lock past its bound, the failures still happen, and the
	 * gauges are set right by the next sweep. */
	pthread_mutex_lock(&q->fail_mu); /* one fail journal per handle */
	bool locked = tq__lock_recovery(q) == 0;
	for (size_t i = 0; i < n; i++) {
		const tq_task *t = &tasks[i];
		uint32_t ix = (uint32_t)t->priv[0];
		if (tq__is_lane_task(t)) {
			int lrc = tq__lane_fail(q, t, err, msg, locked, &lost);
			if (lrc && !rc)
				rc = lrc;
			continue;
		}
		/* Journal: recovery counts this failure exactly once if the
		 * process dies between claiming the slot and counting it. */
		uint64_t before = load_rlx(&q->me->c[C_FAILED]);
		store_rlx(&q->me->fail_before, before);
		store_rel(&q->me->fail_slot, (uint64_t)ix + 1);
		if (!cas64(&q->st[ix], t->priv[1], mine)) {
			store_rel(&q->me->fail_slot, 0);
			lost++;
			continue;
		}
		if (i == 0)
			TQ_FAULT("fail.claimed");
		store_rel(&q->me->fail_slot, ((uint64_t)ix + 1) | FAIL_CLAIMED);
		store_rlx(&q->me->c[C_FAILED], before + 1);
		struct tq_slot *s = &q->slots[ix];
		if (s->attempts >= q->max_attempts) {
			tq__make_dead(q, ix, err, msg, now, locked);
		} else {
			s->last_err = err;
			tq__aux_msg(q, ix, msg);
			tq__delay_slot(q, ix, now + tq__backoff_ns(q, s->attempts));
			tq__count(q, C_RETRIED, 1);
		}
		store_rel(&q->me->fail_slot, 0);
		if (i == n / 2)
			TQ_FAULT("fail.mid");
	}
	if (locked)
		tq__unlock(&q->h->recovery_lock);
	pthread_mutex_unlock(&q->fail_mu);
	tq__count(q, C_LOST, lost);
	return rc ? rc : lost ? TQ_ELOST : 0;
}

/* Moves the deadline of t, a lease of this handle (checked), to end: 0,
 * or 1 if the lease has been lost. */
uint64_t tq__touch_one(tq_queue *q, const tq_task *t, uint64_t end)
{
	uint32_t ix = (uint32_t)t->priv[0];

	if (tq__is_lane_task(t))
		return tq__lane_touch(q, t, end);
	/* Read the deadline before checking the lease, and move it only if
	 * it is unchanged: a lease lost and given to another delivery in
	 * between has another deadline, which this never overwrites. A CAS
	 * lost to another thread's touch of the same task looks again. */
	for (;;) {
		uint64_t d = load_acq(&q->slots[ix].deadline_ns);
		if (load_acq(&q->st[ix]) != t->priv[1])
			return 1;
		if (cas64(&q->slots[ix].deadline_ns, d, end))
			break;
	}
	return load_acq(&q->st[ix]) != t->priv[1];
}

TQ_API int tq_touch(tq_queue *q, const tq_task *tasks, size_t n, uint64_t extend_ns)
{
	uint64_t lost = 0;
	int rc = check_leases(q, tasks, n, NULL);

	if (rc)
		return rc;
	uint64_t end = tq__deadline_after(tq_now_ns(), extend_ns ? extend_ns : q->lease_ns);
	if (end == UINT64_MAX)
		end = UINT64_MAX - 1;
	for (size_t i = 0; i < n; i++)
		lost += tq__touch_one(q, &tasks[i], end);
	tq__count(q, C_LOST, lost);
	return lost ? TQ_ELOST : 0;
}

/* ------------------------------------------------- batches of integers */

/* Claim c of a batch: its entry, generation, task count and first index. */
static inline void batch_claim(const tq_batch *b, uint32_t c, uint32_t *e, uint64_t *g, uint32_t *count,
			       uint32_t *first)
{
	uint64_t w = b->priv[TQ__B_CLAIMS + 2 * c + 1];
	*g = b->priv[TQ__B_CLAIMS + 2 * c];
	*e = (uint32_t)(w & 0xffu);
	*count = (uint32_t)((w >> 8) & 0xffu);
	*first = (uint32_t)((w >> 16) & 0xffffu);
}

/* A batch from tq_take_ints on this handle, its claims consistent: they
 * cover 0..n in order, each 1..TQ_CLAIM_MAX tasks of an entry lanes use. What they
 * name is then checked against the entries themselves (fate_set), as a
 * tq_task's lease is. */
static int batch_check(const tq_queue *q, const tq_batch *b)
{
	uint32_t sum = 0;

	if (b->priv[TQ__B_PREFIX] != q->lane_prefix || b->n == 0 || b->n > TQ_BATCH_TASKS || b->nclaims == 0 ||
	    b->nclaims > TQ_BATCH_CLAIMS)
		return TQ_EINVAL;
	for (uint32_t c = 0; c < b->nclaims; c++) {
		uint32_t e, count, first;
		uint64_t g;
		batch_claim(b, c, &e, &g, &count, &first);
		if (e >= TQ_LEASES - 1 || count == 0 || count > TQ_CLAIM_MAX || first != sum || g >= (1ull << 56))
			return TQ_EINVAL;
		sum += count;
	}
	return sum == b->n ? 0 : TQ_EINVAL;
}

/* The handed-out bits of tasks first..first+count-1 (count <= TQ_CLAIM_MAX). */
static uint64_t batch_handed(const tq_batch *b, uint32_t first, uint32_t count)
{
	const uint64_t *w = b->priv + TQ__B_HANDED;
	uint32_t i = first / 64, s = first % 64;
	uint64_t bits = w[i] >> s;

	if (s + count > 64 && i + 1 < TQ_BATCH_TASKS / 64)
		bits |= w[i + 1] << (64 - s);
	return bits & tq__claim_full(count);
}

TQ_API int tq_batch_ack(tq_queue *q, tq_batch *b)
{
	struct tq_lane_group gr[TQ_BATCH_CLAIMS];
	size_t ng = 0;
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!b || (rc = batch_check(q, b)) != 0)
		return rc ? rc : TQ_EINVAL;
	for (uint32_t c = 0; c < b->nclaims; c++) {
		uint32_t e, count, first;
		uint64_t g;
		batch_claim(b, c, &e, &g, &count, &first);
		uint64_t mask = tq__claim_full(count) & ~batch_handed(b, first, count);
		if (mask)
			gr[ng++] = (struct tq_lane_group){.e = e, .g = g, .mask = mask};
	}
	b->n = 0;
	b->nclaims = 0;
	uint64_t acked = 0, lost = 0, taken_ns = 0;
	tq__lane_ack_groups(q, gr, ng, &acked, &lost, &taken_ns);
	if (acked) {
		tq__count(q, C_LACKED, acked);
		record_processing(q, taken_ns, acked);
	}
	tq__count(q, C_LOST, lost);
	return lost ? TQ_ELOST : 0;
}

TQ_API int tq_batch_task(tq_queue *q, tq_batch *b, size_t i, tq_task *t)
{
	int rc = tq__usable(q);

	if (rc)
		return rc;
	if (!b || !t || (rc = batch_check(q, b)) != 0 || i >= b->n)
		return rc ? rc : TQ_EINVAL;
	for (uint32_t c = 0; c < b->nclaims; c++) {
		uint32_t e, count, first;
		uint64_t g;
		batch_claim(b, c, &e, &g, &count, &first);
		if (i >= first + count)
			continue;
		b->priv[TQ__B_HANDED + i / 64] |= 1ull << (i % 64);
		return tq__lane_claim_task(q, e, g, (uint32_t)(i - first), t);
	}
	return TQ_EINVAL; /* not reached: the claims cover 0..n */
}
