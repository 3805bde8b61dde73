/* SPDX-License-Identifier: MIT */
/*
 * test_lanes.c - the lane path for fresh integer tasks (suite "lanes"):
 * crashes and stops at its fault points, and the lease entries of one
 * handle (docs/design.md, section 17).
 *
 *   move_claimed_repair           recovery-lock holder dies mid move-out
 *                                 (tq_fail); the next holder repairs it
 *   settle_mid                    an acker dies after the settle mark
 *   take_popped_claim_is_recorded a taker dies between its claim CAS and
 *                                 its entry becoming ACTIVE (recovery,
 *                                 and helping by the next taker)
 *   stopped_producer_blocks_nobody
 *   stopped_taker_blocks_nobody   stopped (SIGSTOP) inside push / take:
 *                                 nobody else waits for them
 *   stopped_taker_of_the_last_tasks  as above, when nobody takes from that
 *                                 lane after it (so nobody helps)
 *   many_claims_one_handle        more claims than lease entries
 *   stale_ack_after_reuse         a lease entry reused with a new generation
 *   stats_beside_a_taker_...      stats read while another process takes:
 *                                 no task missing, none shown acked
 *   producer_killed_after_its_batch_record / _record_count
 *                                 a producer dies between an integer lane's
 *                                 batch record and its tail: the next one
 *                                 writes over the leftover (layout 11);
 *                                 push_ints_... the same through tq_push_ints
 *   ids_from_batch_records        every task's id and push time from its
 *                                 batch record, found by walking or by search
 *   record_search_while_the_producer_pushes
 *                                 a search that meets records written over
 *   positions_past_2_48           records keep a position's low 48 bits
 *   mover_killed_after_claiming_the_second_fate_word / _before_...
 *                                 a claim of 64 moves out in two moves, one
 *                                 per fate word; the mover dies in the second
 *   other_fate_word_acked_while_the_mover_is_stopped
 *                                 the holder acks word 1 while the mover of
 *                                 word 0 is stopped, then killed
 *   both_fate_words_acked_at_once_settle
 *                                 two threads ack a claim's two words at once:
 *                                 one of them settles it
 *
 * Every task is accounted for: each value pushed is delivered and acked
 * exactly once (or, where a lease was lost, at least once and acked once),
 * and the queue ends empty with every slot free. Children never use
 * Criterion asserts: they report through shared memory and their exit code.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "fault.h"  /* the test build: crash and stop points */
#include "layout.h" /* lane owner and tail words, read from the segment */
#include "taskq.h"
#include "util.h"
#include "lanefix.h"

#define LN_CHILD_MS 20000u
#define LN_BASE 0x1a4e000000ull /* values are LN_BASE + index */
#define LN_MAXV 12000u

/* What a child tells the parent. */
struct ln_ctx {
	char msg[200];
	int taken;          /* tasks its tq_take calls returned */
	uint64_t vals[256]; /* their values, in order */
	int nvals;
};

static int ln_err(struct ln_ctx *c, int code, const char *what, int rc)
{
	snprintf(c->msg, sizeof c->msg, "%s: %d (%s)", what, rc, tq_strerror(rc));
	return code;
}

/* ------------------------------------------------------------ the queue */

static tq_queue *ln_create(const char *test, uint32_t cap, uint64_t lease_ns)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(lf_qname, test);
	tq_destroy(lf_qname); /* a leftover of an earlier run with our pid */
	tq_config_init(&c);
	c.capacity = cap;
	c.max_payload = 64;
	c.max_attempts = 5;
	c.lease_ns = lease_ns;
	c.backoff_base_ns = 1000000ull; /* 1 ms */
	c.backoff_max_ns = 8000000ull;
	int rc = tq_create(lf_qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", lf_qname, tq_strerror(rc));
	lf_q = q;
	return q;
}

/* Pushes values [lo, lo + n) in one tq_push; every one must be accepted. */
static void ln_push(tq_queue *q, uint32_t lo, uint32_t n)
{
	tq_task t[256];

	cr_assert_leq(n, 256);
	memset(t, 0, sizeof t);
	for (uint32_t i = 0; i < n; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = LN_BASE + lo + i;
	}
	int k = tq_push(q, t, n, 2000000000ull);
	cr_assert_eq(k, (int)n, "tq_push of %u: %d (%s)", n, k, k < 0 ? tq_strerror(k) : "count");
}

/* The index of a delivered value (asserting it is one of ours). */
static uint32_t ln_index(const tq_task *t, uint32_t nv)
{
	cr_assert_eq(t->kind, TQ_KIND_INT, "kind %u", t->kind);
	cr_assert(t->value >= LN_BASE && t->value < LN_BASE + nv, "garbage value %#llx (id %llu)",
		  (unsigned long long)t->value, (unsigned long long)t->id);
	return (uint32_t)(t->value - LN_BASE);
}

static void ln_stats(tq_queue *q, tq_stats *s)
{
	memset(s, 0, sizeof *s);
	int rc = tq_stats_get(q, s);
	cr_assert_eq(rc, 0, "tq_stats_get: %s", tq_strerror(rc));
}

/* Per value: deliveries to the parent, successful acks, first attempt. */
struct ln_seen {
	uint32_t delivered[LN_MAXV];
	uint32_t acked[LN_MAXV];
	uint16_t attempt[LN_MAXV]; /* of the last delivery */
};

static void ln_note(struct ln_seen *s, const tq_task *t, uint32_t nv)
{
	uint32_t v = ln_index(t, nv);
	s->delivered[v]++;
	s->attempt[v] = t->attempt;
}

/* Takes and acks everything ready or due (retries after their backoff)
 * until the queue holds nothing, with a deadline. */
static void ln_drain(tq_queue *q, struct ln_seen *s, uint32_t nv)
{
	tq_task t[64];
	uint64_t deadline = tqt_now_ms() + 20000;

	for (;;) {
		int n = tq_take(q, t, 64, 0);
		if (n == TQ_EAGAIN) {
			tq_stats st;
			ln_stats(q, &st);
			if (st.ready == 0 && st.delayed == 0 && st.leased == 0)
				return;
			cr_assert(tqt_now_ms() < deadline, "drain stalled: ready %u leased %u delayed %u", st.ready,
				  st.leased, st.delayed);
			n = tq_take(q, t, 64, 20000000ull);
			if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
				continue;
		}
		cr_assert(n > 0 && n <= 64, "drain: tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++)
			ln_note(s, &t[i], nv);
		int rc = tq_ack(q, t, (size_t)n);
		cr_assert_eq(rc, 0, "drain: tq_ack: %s", tq_strerror(rc));
		for (int i = 0; i < n; i++)
			s->acked[ln_index(&t[i], nv)]++;
	}
}

/* The queue is empty and every slot free; nothing more to take. */
static void ln_expect_clean(tq_queue *q)
{
	tq_stats s;
	tq_task t;

	ln_stats(q, &s);
	cr_expect_eq(s.ready, 0, "ready %u", s.ready);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.delayed, 0, "delayed %u", s.delayed);
	cr_expect_eq(s.dead, 0, "dead %u", s.dead);
	cr_expect_eq(s.free_slots, s.slots, "free %u of %u", s.free_slots, s.slots);
	int rc = tq_take(q, &t, 1, 0);
	cr_expect_eq(rc, TQ_EAGAIN, "take on the drained queue: %d (%s)", rc, tq_strerror(rc));
}

/* ------------------------------------------------------------- children */


/* The child must die by SIGKILL (at its fault point). */
static void ln_expect_killed(struct ln_ctx *c, pid_t pid, const char *what)
{
	int st = tqt_wait(pid, LN_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL,
		     "%s: the child should have died by SIGKILL at its fault point; status %d "
		     "(-1 = still running, killed) message '%s'",
		     what, st, c->msg);
}

/* The child must stop (SIGSTOP at its fault point). */
static void ln_expect_stopped(struct ln_ctx *c, pid_t pid, const char *what)
{
	int st = 0;
	pid_t r;
	uint64_t deadline = tqt_now_ms() + LN_CHILD_MS;

	while ((r = waitpid(pid, &st, WNOHANG | WUNTRACED)) == 0 && tqt_now_ms() < deadline)
		tqt_sleep_ms(2);
	cr_assert(r == pid && WIFSTOPPED(st),
		  "%s: the child should be stopped at its fault point (waitpid %d, status %#x, message '%s')",
		  what, (int)r, st, c->msg);
}

/* Kills a stopped child and reaps it. */
static void ln_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	int st = tqt_wait(pid, LN_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL, "the stopped child: status %d", st);
}

/* A child's tq_take of exactly n tasks (in as many calls as it takes). */
static int ln_child_take(struct ln_ctx *c, tq_queue *q, tq_task *t, int n)
{
	int got = 0;
	while (got < n) {
		int k = tq_take(q, t + got, (size_t)(n - got), 2000000000ull);
		if (k <= 0)
			return k;
		for (int i = 0; i < k; i++)
			if (c->nvals < 256)
				c->vals[c->nvals++] = t[got + i].value;
		got += k;
		c->taken = got;
	}
	return got;
}

/* ================================================== move.claimed repair */

#define MC_N 100u
#define MC_FAIL 10 /* tasks the child fails, one move-out each */
#define MC_HIT 3   /* it dies in the third: two moved out whole, one half */

static int child_take_fail_armed(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t[MC_N];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int n = ln_child_take(c, q, t, (int)MC_N);
	if (n != (int)MC_N)
		return ln_err(c, 3, "child tq_take", n);
	tq_fault_arm("move.claimed", MC_HIT);
	int rc = tq_fail(q, t, MC_FAIL, 7, "lanes test failure");
	return ln_err(c, 4, "tq_fail returned (the point was not reached)", rc);
}

Test(lanes, move_claimed_repair, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("mvclaimed", 256, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, MC_N);
	ln_expect_killed(c, lf_spawn(child_take_fail_armed, c), "move.claimed in tq_fail");
	cr_assert_eq(c->taken, (int)MC_N, "the child took %d of %u", c->taken, MC_N);

	/* The lock is taken over from the dead holder: the journal is
	 * repaired, then the dead child's other claims are returned. */
	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready + s.delayed, MC_N,
		     "ready %u + delayed %u after recovery, expected all %u (a task lost in the "
		     "interrupted move-out?)",
		     s.ready, s.delayed, MC_N);
	cr_assert_eq(s.ready + s.delayed + s.free_slots, s.slots, "ready %u + delayed %u + free %u != %u",
		     s.ready, s.delayed, s.free_slots, s.slots);

	ln_drain(q, &seen, MC_N);
	for (uint32_t v = 0; v < MC_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times after the crash", v,
			     seen.delivered[v]);
		cr_expect_eq(seen.attempt[v], 2, "value %u: attempt %u (the child's delivery was the first)", v,
			     seen.attempt[v]);
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, MC_N, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, MC_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.taken, 2 * MC_N, "taken %llu", (unsigned long long)s.total.taken);
	cr_expect_eq(s.total.failed, MC_HIT, "failed %llu: two moved out, one claimed by the journal",
		     (unsigned long long)s.total.failed);
	cr_expect_eq(s.total.recovered, MC_N - MC_HIT, "recovered %llu", (unsigned long long)s.total.recovered);
	cr_expect_eq(s.total.dead, 0);
	ln_expect_clean(q);
}

/* ================================================== move.journal repair */

/* An expiry's mover dies after writing its journal, before it claims the
 * fate bits; meanwhile the holder, late but alive, acks every task. The
 * repair must see that the move never claimed them: acked exactly once,
 * nothing delivered again. */
#define MJ_N 20u
#define MJ_LEASE_MS 100u

/* A child whose sweep (tq_recover) moves expired claims out, armed at
 * hit `sweep_hit` of `sweep_point`: killed there, or stopped if
 * sweep_sig is SIGSTOP. Armed before the open: its own sweep may be the one. */
static const char *sweep_point;
static unsigned sweep_hit;
static int sweep_sig;

static void sweep_arm(const char *point, unsigned hit, int sig)
{
	sweep_point = point;
	sweep_hit = hit;
	sweep_sig = sig;
}

static int child_expire_armed(void *arg)
{
	struct ln_ctx *c = arg;
	if (sweep_sig)
		tq_fault_arm_signal(sweep_point, sweep_hit, sweep_sig);
	else
		tq_fault_arm(sweep_point, sweep_hit);
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int rc = tq_recover(q);
	return ln_err(c, 4, "tq_recover returned (the point was not reached)", rc);
}

Test(lanes, move_journal_repair_keeps_acks, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("mvjournal", 256, (uint64_t)MJ_LEASE_MS * 1000000ull);
	sweep_arm("move.journal", 1, 0);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	tq_task t[MJ_N];
	tq_stats s;

	ln_push(q, 0, MJ_N);
	int n = tq_take(q, t, MJ_N, 0);
	cr_assert_eq(n, (int)MJ_N, "one claim of %u: %d (%s)", MJ_N, n, n < 0 ? tq_strerror(n) : "count");
	/* Past the lease's end (a deadline, not a race): the child's sweep
	 * moves the claim out as expired, and dies at the journal. Nothing
	 * here runs a sweep of its own until the ack. */
	tqt_sleep_ms(MJ_LEASE_MS + 50);
	ln_expect_killed(c, lf_spawn(child_expire_armed, c), "move.journal in an expiry");

	/* The holder acks all: its bits are set, the settle is left to the
	 * (dead) mover's journal. */
	int rc = tq_ack(q, t, MJ_N);
	cr_assert_eq(rc, 0, "tq_ack after the mover died before its claim: %d (%s)", rc, tq_strerror(rc));
	rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));

	ln_stats(q, &s);
	cr_expect_eq(s.ready, 0, "ready %u: the repair copied acked tasks back", s.ready);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.delayed, 0, "delayed %u", s.delayed);
	cr_expect_eq(s.free_slots, s.slots, "free %u of %u: the journal's slots not released", s.free_slots,
		     s.slots);
	cr_expect_eq(s.total.acked, MJ_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.expired, 0, "expired %llu: the move never claimed a task",
		     (unsigned long long)s.total.expired);
	cr_expect_eq(s.total.taken, MJ_N, "taken %llu", (unsigned long long)s.total.taken);
	n = tq_take(q, t, MJ_N, 0);
	cr_expect_eq(n, TQ_EAGAIN, "a take after the repair: %d (%s); acked tasks delivered again?", n,
		     n < 0 ? tq_strerror(n) : "count");
	ln_expect_clean(q);
}

/* ======================================================== lane.settle.mid */

#define SM_N 100u

static int child_ack_settle_armed(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task a[32], b[10];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int n = ln_child_take(c, q, a, 32); /* one claim of 32 */
	if (n != 32)
		return ln_err(c, 3, "child tq_take 32", n);
	n = ln_child_take(c, q, b, 10); /* a second claim, left leased */
	if (n != 10)
		return ln_err(c, 3, "child tq_take 10", n);
	tq_fault_arm("lane.settle.mid", 1);
	int rc = tq_ack(q, a, 32);
	return ln_err(c, 4, "tq_ack returned (the point was not reached)", rc);
}

Test(lanes, settle_mid, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("settlemid", 256, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, SM_N);
	ln_expect_killed(c, lf_spawn(child_ack_settle_armed, c), "lane.settle.mid in tq_ack");
	cr_assert_eq(c->nvals, 42);
	bool in_ack[SM_N] = {false}, in_held[SM_N] = {false};
	for (int i = 0; i < 42; i++) {
		cr_assert(c->vals[i] >= LN_BASE && c->vals[i] < LN_BASE + SM_N);
		if (i < 32)
			in_ack[c->vals[i] - LN_BASE] = true;
		else
			in_held[c->vals[i] - LN_BASE] = true;
	}

	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, SM_N - 32, "ready %u after recovery: the 32 acked are done, the rest ready",
		     s.ready);
	cr_assert_eq(s.ready + s.free_slots, s.slots, "ready %u + free %u != %u", s.ready, s.free_slots,
		     s.slots);

	ln_drain(q, &seen, SM_N);
	for (uint32_t v = 0; v < SM_N; v++) {
		if (in_ack[v]) {
			cr_expect_eq(seen.delivered[v], 0, "value %u was acked (the claim's last bit set) but "
				     "delivered again", v);
		} else {
			cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
			cr_expect_eq(seen.attempt[v], in_held[v] ? 2 : 1, "value %u: attempt %u", v, seen.attempt[v]);
		}
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, SM_N, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, SM_N, "acked %llu: 32 by the child, the rest by the parent",
		     (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.recovered, 10, "recovered %llu: the child's second claim",
		     (unsigned long long)s.total.recovered);
	cr_expect_eq(s.total.taken, SM_N + 10, "taken %llu", (unsigned long long)s.total.taken);
	ln_expect_clean(q);
	/* The settled claim's positions are reusable: the lane fills again
	 * to the capacity. */
	for (uint32_t lo = 0; lo < 256; lo += 128)
		ln_push(q, lo, 128);
	memset(&seen, 0, sizeof seen);
	ln_drain(q, &seen, 256);
	for (uint32_t v = 0; v < 256; v++)
		cr_expect_eq(seen.delivered[v], 1, "refill: value %u delivered %u times", v, seen.delivered[v]);
	ln_expect_clean(q);
}

/* ============================================================ take.popped */

#define TP_N 100u

static int child_take_armed(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t[32];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	tq_fault_arm("take.popped", 1);
	int n = tq_take(q, t, 32, 2000000000ull);
	c->taken = n;
	return ln_err(c, 4, "tq_take returned (the point was not reached)", n);
}

Test(lanes, take_popped_claim_is_recorded, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("takepopped", 256, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_task t[32];
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, TP_N); /* one lane, positions 0..99 */

	/* 1. The claim of 0..31 is recorded by recovery: head still names
	 * the dead child's PENDING entry. */
	ln_expect_killed(c, lf_spawn(child_take_armed, c), "take.popped (recovered)");
	cr_assert_eq(c->taken, 0);
	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, TP_N, "ready %u after recovery, expected all %u (the claim lost?)", s.ready, TP_N);
	int n = tq_take(q, t, 32, 0);
	cr_assert_eq(n, 32, "the 32 the child claimed, first: %d (%s)", n, tq_strerror(n));
	for (int i = 0; i < n; i++) {
		uint32_t v = ln_index(&t[i], TP_N);
		cr_expect_lt(v, 32, "value %u: not one of the dead child's claim 0..31", v);
		cr_expect_eq(t[i].attempt, 2, "value %u: attempt %u", v, t[i].attempt);
		ln_note(&seen, &t[i], TP_N);
	}
	cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	for (int i = 0; i < n; i++)
		seen.acked[ln_index(&t[i], TP_N)]++;

	/* 2. The next claim, 32..63, is recorded by the next taker (the
	 * parent helps it on its way past), then recovered. */
	memset(c, 0, sizeof *c);
	ln_expect_killed(c, lf_spawn(child_take_armed, c), "take.popped (helped)");
	n = tq_take(q, t, 8, 0);
	cr_assert_eq(n, 8, "the parent's take after the dead claim: %d (%s)", n, tq_strerror(n));
	for (int i = 0; i < n; i++) {
		uint32_t v = ln_index(&t[i], TP_N);
		cr_expect(v >= 64 && v < 72, "value %u: expected 64..71 (the next positions)", v);
		cr_expect_eq(t[i].attempt, 1);
		ln_note(&seen, &t[i], TP_N);
	}
	cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	for (int i = 0; i < n; i++)
		seen.acked[ln_index(&t[i], TP_N)]++;
	rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_assert_eq(s.recoveries, 2, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, TP_N - 40, "ready %u after recovery, expected %u (the helped claim lost?)", s.ready,
		     TP_N - 40);

	ln_drain(q, &seen, TP_N);
	for (uint32_t v = 0; v < TP_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
		cr_expect_eq(seen.attempt[v], v < 64 ? 2 : 1, "value %u: attempt %u", v, seen.attempt[v]);
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, TP_N, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, TP_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.recovered, 64, "recovered %llu: two claims of 32",
		     (unsigned long long)s.total.recovered);
	cr_expect_eq(s.total.taken, TP_N + 64, "taken %llu", (unsigned long long)s.total.taken);
	ln_expect_clean(q);
}

/* ====================================================== stopped producer */

#define SP_N 10000u
#define SP_A 50u /* the stopped producer's batch: values SP_N .. SP_N + SP_A - 1 */

static int child_push_stop(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t[SP_A];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	memset(t, 0, sizeof t);
	for (uint32_t i = 0; i < SP_A; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = LN_BASE + SP_N + i;
	}
	tq_fault_arm_signal("push.written", 1, SIGSTOP);
	int k = tq_push(q, t, SP_A, 2000000000ull);
	return ln_err(c, 4, "tq_push returned (the point was not reached)", k);
}

Test(lanes, stopped_producer_blocks_nobody, .timeout = 90, .fini = lf_fini)
{
	tq_queue *q = ln_create("stoppedpush", 1024, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_task t[100];
	tq_stats s;
	size_t size;

	memset(&seen, 0, sizeof seen);
	pid_t a = lf_spawn(child_push_stop, c);
	ln_expect_stopped(c, a, "push.written");

	/* A holds one lane, its batch written and not published. */
	const uint8_t *seg = lf_map(&size);
	int held = -1;
	for (uint32_t l = 0; l < TQ_LANES; l++)
		if (lf_lane_word(seg, l, offsetof(struct tq_lane, owner)) != 0) {
			cr_assert_eq(held, -1, "lanes %d and %u both held", held, l);
			held = (int)l;
		}
	cr_assert_neq(held, -1, "the stopped producer holds no lane");
	uint64_t held_tail = lf_lane_word(seg, (uint32_t)held, offsetof(struct tq_lane, tail));

	/* Everyone else goes on: every call succeeds within its timeout. */
	for (uint32_t lo = 0; lo < SP_N; lo += 100) {
		ln_push(q, lo, 100);
		uint32_t got = 0;
		while (got < 100) {
			int n = tq_take(q, t, 100 - got, 2000000000ull);
			cr_assert(n > 0, "tq_take with a producer stopped: %d (%s)", n, tq_strerror(n));
			for (int i = 0; i < n; i++)
				ln_note(&seen, &t[i], SP_N + SP_A);
			int rc = tq_ack(q, t, (size_t)n);
			cr_assert_eq(rc, 0, "tq_ack with a producer stopped: %d (%s)", rc, tq_strerror(rc));
			for (int i = 0; i < n; i++)
				seen.acked[ln_index(&t[i], SP_N + SP_A)]++;
			got += (uint32_t)n;
		}
	}
	cr_assert_eq(lf_lane_word(seg, (uint32_t)held, offsetof(struct tq_lane, tail)), held_tail,
		     "the stopped producer's lane was published to");
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, SP_N, "pushed %llu with the batch unpublished",
		     (unsigned long long)s.total.pushed);

	/* A dies; recovery releases its lane, and the batch was never accepted. */
	ln_kill(a);
	int rc = tq_recover(q);
	cr_assert_eq(rc, 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	for (uint32_t l = 0; l < TQ_LANES; l++)
		cr_expect_eq(lf_lane_word(seg, l, offsetof(struct tq_lane, owner)), 0,
			     "lane %u still held after recovery", l);
	ln_expect_clean(q);

	/* The lane works again: a fresh handle starts at lane 0. */
	cr_assert_eq(tq_open(lf_qname, &lf_q2), 0);
	for (uint32_t i = 0; i < TQ_LANES; i++) {
		uint64_t before = lf_lane_word(seg, (uint32_t)held, offsetof(struct tq_lane, tail));
		tq_task one = {.kind = TQ_KIND_INT, .value = LN_BASE + SP_N + SP_A + i};
		cr_assert_eq(tq_push(lf_q2, &one, 1, 0), 1);
		if (lf_lane_word(seg, (uint32_t)held, offsetof(struct tq_lane, tail)) != before)
			break;
		/* another lane was preferred: try once per lane */
		if (i == TQ_LANES - 1)
			cr_expect_fail("no push went to the released lane %d", held);
	}
	ln_drain(q, &seen, SP_N + SP_A + TQ_LANES);
	for (uint32_t v = 0; v < SP_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
		if (seen.delivered[v] != 1)
			break;
	}
	for (uint32_t v = SP_N; v < SP_N + SP_A; v++)
		cr_expect_eq(seen.delivered[v], 0, "value %u of the unpublished batch was delivered", v);
	munmap((void *)seg, size);
	ln_expect_clean(q);
}

/* ======================================================= stopped takers */

#define ST_N 2000u
#define ST_B 8 /* the stopped taker's claim: values 0..7 */

static int child_take_stop(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t[ST_B];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	tq_fault_arm_signal("take.popped", 1, SIGSTOP);
	int n = tq_take(q, t, ST_B, 2000000000ull);
	c->taken = n;
	return ln_err(c, 4, "tq_take returned (the point was not reached)", n);
}

/* Takes and acks (one at a time, so that each ack's result is known) until
 * every value below nv is acked once, calling tq_recover whenever a take
 * finds nothing; values *next .. upto - 1 are pushed on the way, 100 per
 * round. Returns when done or at the deadline. */
static void ln_take_all(tq_queue *q, struct ln_seen *seen, uint32_t nv, uint32_t *next, uint32_t upto,
			uint64_t deadline_ms)
{
	tq_task t[64];
	uint32_t done = 0;

	for (uint32_t v = 0; v < nv; v++)
		done += seen->acked[v] != 0;
	while (done < nv && tqt_now_ms() < deadline_ms) {
		if (*next < upto) {
			uint32_t k = upto - *next < 100 ? upto - *next : 100;
			ln_push(q, *next, k);
			*next += k;
		}
		int n = tq_take(q, t, 64, 50000000ull);
		if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN) {
			int rc = tq_recover(q);
			cr_assert_geq(rc, 0, "tq_recover: %d (%s)", rc, tq_strerror(rc));
			continue;
		}
		cr_assert(n > 0, "tq_take with a taker stopped: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			uint32_t v = ln_index(&t[i], nv);
			ln_note(seen, &t[i], nv);
			int rc = tq_ack(q, &t[i], 1);
			/* at least once: a lease of 50 ms may expire under us */
			cr_assert(rc == 0 || rc == TQ_ELOST, "tq_ack with a taker stopped: %d (%s)", rc,
				  tq_strerror(rc));
			if (rc == 0 && seen->acked[v]++ == 0)
				done++;
		}
	}
}

Test(lanes, stopped_taker_blocks_nobody, .timeout = 90, .fini = lf_fini)
{
	tq_queue *q = ln_create("stoppedtake", 1024, 50ull * 1000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, 20);
	pid_t b = lf_spawn(child_take_stop, c);
	ln_expect_stopped(c, b, "take.popped");
	cr_assert_eq(c->taken, 0);

	/* The parent pushes more behind B's claim and takes everything; its
	 * first take records B's claim on its way past, and B's tasks come
	 * back when that lease expires. */
	uint32_t next = 20;
	ln_take_all(q, &seen, ST_N, &next, ST_N, tqt_now_ms() + 30000);
	uint32_t missing = 0;
	for (uint32_t v = 0; v < ST_N; v++)
		missing += seen.acked[v] == 0;
	cr_assert_eq(missing, 0, "%u values never acked while B is stopped (first: B's claim 0..%d acked %u)",
		     missing, ST_B - 1, seen.acked[0]);
	for (uint32_t v = 0; v < (uint32_t)ST_B; v++)
		cr_expect_geq(seen.attempt[v], 2, "value %u, claimed by B: attempt %u", v, seen.attempt[v]);

	ln_kill(b);
	int rc = tq_recover(q);
	cr_assert_eq(rc, 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_drain(q, &seen, ST_N);
	for (uint32_t v = 0; v < ST_N; v++) {
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
		cr_expect_geq(seen.delivered[v], 1, "value %u never delivered", v);
		if (seen.acked[v] != 1)
			break;
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, ST_N, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, ST_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_geq(s.total.expired, (uint64_t)ST_B, "expired %llu", (unsigned long long)s.total.expired);
	ln_expect_clean(q);
}

/* The same, when B's claim takes the last tasks of its lane: no later
 * taker passes it, so nobody helps it to ACTIVE. Its lease must still end
 * ("a stopped holder cannot delay an expiry"). */
Test(lanes, stopped_taker_of_the_last_tasks, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("stoppedlast", 1024, 50ull * 1000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, ST_B);
	pid_t b = lf_spawn(child_take_stop, c);
	ln_expect_stopped(c, b, "take.popped");

	/* 5 s: a hundred lease lengths. */
	uint32_t next = ST_B;
	ln_take_all(q, &seen, ST_B, &next, ST_B, tqt_now_ms() + 5000);
	uint32_t back = 0;
	for (uint32_t v = 0; v < (uint32_t)ST_B; v++)
		back += seen.acked[v] != 0;
	ln_stats(q, &s);
	cr_expect_eq(back, (uint32_t)ST_B,
		     "only %u of the %d tasks claimed by the stopped taker came back within 5 s "
		     "(lease 50 ms; stats: ready %u leased %u, expired %llu)",
		     back, ST_B, s.ready, s.leased, (unsigned long long)s.total.expired);

	/* Whatever happened, B's death returns what it still holds. */
	ln_kill(b);
	int rc = tq_recover(q);
	cr_assert_eq(rc, 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_drain(q, &seen, ST_B);
	for (uint32_t v = 0; v < (uint32_t)ST_B; v++)
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, (uint64_t)ST_B);
	cr_expect_eq(s.total.acked, (uint64_t)ST_B, "acked %llu", (unsigned long long)s.total.acked);
	ln_expect_clean(q);
}

/* ============================================ more claims than entries */

#define MC2_N 200u

Test(lanes, many_claims_one_handle, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("manyclaims", 256, 60ull * 1000000000ull);
	static tq_task held[MC2_N];
	static struct ln_seen seen;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, 100);
	ln_push(q, 100, 100);
	/* One claim per take: 63 in lease entries, the rest through the
	 * spare entry into slots leased to this handle. */
	for (uint32_t i = 0; i < MC2_N; i++) {
		int n = tq_take(q, &held[i], 1, 0);
		cr_assert_eq(n, 1, "take %u of %u (one at a time, none acked): %d (%s)", i + 1, MC2_N, n,
			     tq_strerror(n));
		uint32_t v = ln_index(&held[i], MC2_N);
		ln_note(&seen, &held[i], MC2_N);
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered twice", v);
		cr_expect_eq(held[i].attempt, 1, "take %u: attempt %u", i, held[i].attempt);
	}
	tq_task none;
	cr_assert_eq(tq_take(q, &none, 1, 0), TQ_EAGAIN, "more than the %u pushed", MC2_N);
	ln_stats(q, &s);
	cr_expect_eq(s.leased, MC2_N, "leased %u while holding %u", s.leased, MC2_N);
	cr_expect_eq(s.ready, 0, "ready %u", s.ready);
	tq_proc_info pi[4];
	int np = tq_procs(q, pi, 4);
	cr_assert_eq(np, 1);
	cr_expect_eq(pi[0].leased, MC2_N, "tq_procs: leased %u", pi[0].leased);
	cr_expect_eq(tq_touch(q, held, MC2_N, 0), 0, "every lease still held");

	/* Acked one at a time, from the last taken back (slots first). */
	for (uint32_t i = MC2_N; i-- > 0;) {
		int rc = tq_ack(q, &held[i], 1);
		cr_expect_eq(rc, 0, "ack of take %u: %d (%s)", i, rc, tq_strerror(rc));
		if (rc == 0)
			seen.acked[ln_index(&held[i], MC2_N)]++;
	}
	for (uint32_t v = 0; v < MC2_N; v++)
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, MC2_N, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.taken, MC2_N, "taken %llu", (unsigned long long)s.total.taken);
	cr_expect_eq(s.total.acked, MC2_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.lost, 0, "lost %llu", (unsigned long long)s.total.lost);
	ln_expect_clean(q);

	/* And again, acked in one call, in the order taken. */
	ln_push(q, 0, 100);
	ln_push(q, 100, 100);
	memset(&seen, 0, sizeof seen);
	for (uint32_t i = 0; i < MC2_N; i++) {
		cr_assert_eq(tq_take(q, &held[i], 1, 0), 1, "second round, take %u", i);
		ln_note(&seen, &held[i], MC2_N);
	}
	cr_expect_eq(tq_ack(q, held, MC2_N), 0, "one ack of all %u", MC2_N);
	for (uint32_t v = 0; v < MC2_N; v++)
		cr_expect_eq(seen.delivered[v], 1, "second round: value %u delivered %u times", v,
			     seen.delivered[v]);
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, 2 * MC2_N, "acked %llu", (unsigned long long)s.total.acked);
	ln_expect_clean(q);
}

/* ================================================ stale ack after reuse */

#define SA_N 200u
#define SA_ROUNDS 130u /* two turns of the 63 lease entries */

Test(lanes, stale_ack_after_reuse, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("staleack", 256, 60ull * 1000000000ull);
	static struct ln_seen seen;
	tq_task first, cur;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, 100);
	ln_push(q, 100, 100);
	cr_assert_eq(tq_take(q, &first, 1, 0), 1);
	ln_note(&seen, &first, SA_N);
	cr_assert_eq(tq_ack(q, &first, 1), 0);
	seen.acked[ln_index(&first, SA_N)]++;

	/* Every later take gets the next entry; after 63 the first entry
	 * again, with the next generation. The first delivery's ack, touch
	 * and fail must name none of them. */
	for (uint32_t r = 0; r < SA_ROUNDS; r++) {
		cr_assert_eq(tq_take(q, &cur, 1, 0), 1, "round %u", r);
		ln_note(&seen, &cur, SA_N);
		int rc = tq_ack(q, &first, 1);
		cr_assert_eq(rc, TQ_ELOST, "round %u: the acked delivery acked again: %d (%s)", r, rc,
			     tq_strerror(rc));
		rc = tq_touch(q, &first, 1, 0);
		cr_assert_eq(rc, TQ_ELOST, "round %u: touch of the acked delivery: %d (%s)", r, rc,
			     tq_strerror(rc));
		rc = tq_fail(q, &first, 1, 5, "stale");
		cr_assert_eq(rc, TQ_ELOST, "round %u: fail of the acked delivery: %d (%s)", r, rc,
			     tq_strerror(rc));
		rc = tq_ack(q, &cur, 1);
		cr_assert_eq(rc, 0, "round %u: the current delivery's ack after a stale one: %d (%s)", r, rc,
			     tq_strerror(rc));
		seen.acked[ln_index(&cur, SA_N)]++;
		rc = tq_ack(q, &cur, 1);
		cr_assert_eq(rc, TQ_ELOST, "round %u: acked twice: %d (%s)", r, rc, tq_strerror(rc));
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, 1 + SA_ROUNDS, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.failed, 0, "failed %llu: only stale fails", (unsigned long long)s.total.failed);
	cr_expect_eq(s.total.lost, 4 * SA_ROUNDS, "lost %llu", (unsigned long long)s.total.lost);
	cr_expect_eq(s.delayed, 0);

	ln_drain(q, &seen, SA_N);
	for (uint32_t v = 0; v < SA_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
		cr_expect_eq(seen.attempt[v], 1, "value %u: attempt %u", v, seen.attempt[v]);
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.pushed, SA_N);
	cr_expect_eq(s.total.acked, SA_N, "acked %llu", (unsigned long long)s.total.acked);
	ln_expect_clean(q);
}

/* An ack of a stale task (its claim settled, its lease entry reused by a
 * later claim) together with a task of that later claim, in either order:
 * the stale one is lost and acts on nothing, the fresh one is acked. The
 * two name the same entry and differ only in the claim's generation. */
static void stale_fresh_ack(bool stale_first)
{
	tq_queue *q = ln_create(stale_first ? "ackstale1" : "ackstale2", 1000, 60ull * 1000000000ull);
	tq_task a[4], b[4], two[2];

	for (int round = 0; round < 2; round++) {
		tq_task *t = round ? b : a;
		for (int i = 0; i < 4; i++)
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = LN_BASE + (uint64_t)(4 * round + i)};
		cr_assert_eq(tq_push(q, t, 4, 0), 4);
		cr_assert_eq(tq_take(q, t, 4, 0), 4);
		if (round == 0)
			cr_assert_eq(tq_ack(q, a, 4), 0); /* the claim settled, its entry free */
	}
	cr_assert_eq((a[3].priv[0] >> 8) & 0x3f, (b[0].priv[0] >> 8) & 0x3f,
		     "the second claim did not reuse the first one's lease entry");
	cr_assert_neq(a[3].priv[1], b[0].priv[1]);
	two[stale_first ? 0 : 1] = a[3];
	two[stale_first ? 1 : 0] = b[0];
	int rc = tq_ack(q, two, 2);
	cr_assert_eq(rc, TQ_ELOST, "the ack of a stale and a fresh task: %d (%s)", rc, tq_strerror(rc));
	rc = tq_ack(q, &b[0], 1);
	cr_assert_eq(rc, TQ_ELOST, "the fresh task was not acked by the first call: %d (%s)", rc, tq_strerror(rc));
	cr_assert_eq(tq_ack(q, b + 1, 3), 0, "the stale task acted on the fresh claim");
	ln_expect_clean(q);
}

Test(lanes, stale_task_first_in_an_ack, .timeout = 60, .fini = lf_fini)
{
	stale_fresh_ack(true);
}

Test(lanes, stale_task_last_in_an_ack, .timeout = 60, .fini = lf_fini)
{
	stale_fresh_ack(false);
}

/* A lane task names the handle that took it: handed to another handle's
 * ack, fail or touch, it is refused (TQ_EINVAL) and does not act on that
 * handle's lease entry of the same index and generation. */
Test(lanes, task_of_another_handle_is_refused, .timeout = 60, .fini = lf_fini)
{
	tq_queue *a = ln_create("otherhandle", 64, 60ull * 1000000000ull);
	tq_queue *b = NULL;
	tq_task ta, tb;
	tq_stats s;

	cr_assert_eq(tq_open(lf_qname, &b), 0);
	lf_q2 = b;
	ln_push(a, 0, 2);
	/* Each handle's first claim: entry 0, generation 0, in both records. */
	cr_assert_eq(tq_take(a, &ta, 1, 0), 1);
	cr_assert_eq(tq_take(b, &tb, 1, 0), 1);
	cr_assert_eq(tq_ack(b, &ta, 1), TQ_EINVAL, "b acked a's task");
	cr_assert_eq(tq_fail(b, &ta, 1, 1, "not mine"), TQ_EINVAL, "b failed a's task");
	cr_assert_eq(tq_touch(b, &ta, 1, 0), TQ_EINVAL, "b touched a's task");
	ln_stats(b, &s);
	cr_assert_eq(s.leased, 2, "leased %u after the refused calls", s.leased);
	cr_assert_eq(s.total.acked, 0);
	cr_assert_eq(tq_ack(b, &tb, 1), 0);
	cr_assert_eq(tq_ack(a, &ta, 1), 0);
	ln_stats(a, &s);
	cr_assert_eq(s.total.acked, 2);
	cr_assert_eq(s.leased, 0);
	cr_assert_eq(s.free_slots, s.slots);
}

/* ------------------------------------------ stats beside a busy taker */

#define SR_N 1024u

struct sr_ctx {
	char msg[200];
	int taken; /* written by the child as it goes */
	int done;  /* 1: it holds all SR_N, and waits to be killed */
};

/* Takes every task, a few at a time, and holds them all. */
static int child_take_hold(void *arg)
{
	struct sr_ctx *c = arg;
	tq_task t[3];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	uint64_t deadline = tqt_now_ms() + LN_CHILD_MS;
	while (__atomic_load_n(&c->taken, __ATOMIC_RELAXED) < (int)SR_N && tqt_now_ms() < deadline) {
		int want = 1 + __atomic_load_n(&c->taken, __ATOMIC_RELAXED) % 3;
		int n = tq_take(q, t, (uint32_t)want, 100000000ull);
		if (n < 0 && n != TQ_ETIMEDOUT && n != TQ_EAGAIN) {
			snprintf(c->msg, sizeof c->msg, "tq_take: %d (%s)", n, tq_strerror(n));
			return 3;
		}
		if (n > 0)
			__atomic_add_fetch(&c->taken, n, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

/* tq_stats_get read over and over while another process takes: a take
 * between its reads is never missing from both ready and leased, and
 * never shows as acked (nothing is acked here). */
Test(lanes, stats_beside_a_taker_lose_nothing_and_ack_nothing, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("statsrace", 4096, 60ull * 1000000000ull);
	struct sr_ctx *c = tqt_shared(sizeof *c);
	tq_stats s;
	uint64_t reads = 0;

	for (uint32_t i = 0; i < SR_N; i += 256)
		ln_push(q, i, 256);
	pid_t b = lf_spawn(child_take_hold, c);
	int done;
	do {
		done = __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
		ln_stats(q, &s);
		reads++;
		cr_assert_eq(s.total.acked, 0, "read %llu: acked %llu while nothing was acked (%d taken)",
			     (unsigned long long)reads, (unsigned long long)s.total.acked, c->taken);
		cr_assert_geq((uint64_t)s.ready + s.leased, SR_N, "read %llu: ready %u + leased %u of %u (%d taken)",
			      (unsigned long long)reads, s.ready, s.leased, SR_N, c->taken);
		int st;
		if (!done && waitpid(b, &st, WNOHANG) == b) {
			lf_forget(b);
			cr_assert_fail("the taker ended early (%d): %s", st, c->msg);
		}
	} while (!done);
	cr_expect_eq(c->taken, (int)SR_N, "%s", c->msg);
	ln_stats(q, &s);
	cr_expect_eq(s.leased, SR_N, "leased %u with all held", s.leased);
	cr_expect_eq(s.ready, 0, "ready %u with all held", s.ready);
	ln_kill(b);
	int rc = tq_recover(q);
	cr_assert_eq(rc, 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_expect_eq(s.ready, SR_N, "ready %u after the taker's death", s.ready);
	cr_expect_eq(s.total.acked, 0);
}

/* ================================= batch records (layout 11) */

/* An integer lane's batch record i, read from the segment. */
static struct tq_ibatch br_record(const uint8_t *seg, uint32_t lane, uint64_t i)
{
	struct tq_ibatch r;
	uint64_t lsize = lf_hdr32(seg, offsetof(struct tq_hdr, lane_size));
	memcpy(&r, seg + lf_hdr64(seg, offsetof(struct tq_hdr, off_ibatches)) +
			   (lane * lsize + (i & (lsize - 1))) * sizeof(struct tq_ibatch),
	       sizeof r);
	return r;
}

#define BR_A 40u  /* the first child's published batch: values 0..39 */
#define BR_K 24u  /* its killed batch: 40..63; the next child's 24 single pushes: 64..87 */
#define BR_NV (BR_A + 2 * BR_K)

struct br_ctx {
	char msg[200];
	uint64_t ids[BR_NV]; /* the id tq_push gave each value */
};

static const char *br_point;
static bool br_ints; /* the killed batch pushed with tq_push_ints */

/* Pushes values [lo, lo + n) in calls of `per` tasks, noting their ids. */
static int br_push(struct br_ctx *c, tq_queue *q, uint32_t lo, uint32_t n, uint32_t per)
{
	tq_task t[BR_NV];
	for (uint32_t at = lo; at < lo + n; at += per) {
		memset(t, 0, sizeof t);
		for (uint32_t i = 0; i < per; i++) {
			t[i].kind = TQ_KIND_INT;
			t[i].value = LN_BASE + at + i;
		}
		int k = tq_push(q, t, per, 2000000000ull);
		if (k != (int)per) {
			snprintf(c->msg, sizeof c->msg, "tq_push of %u: %d (%s)", per, k, k < 0 ? tq_strerror(k) : "");
			return 3;
		}
		for (uint32_t i = 0; i < per; i++)
			c->ids[at + i] = t[i].id;
	}
	return 0;
}

static int child_push_record_killed(void *arg)
{
	struct br_ctx *c = arg;
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int rc = br_push(c, q, 0, BR_A, BR_A);
	if (rc)
		return rc;
	tq_fault_arm(br_point, 1);
	if (br_ints) {
		uint64_t v[BR_K];
		for (uint32_t i = 0; i < BR_K; i++)
			v[i] = LN_BASE + BR_A + i;
		rc = tq_push_ints(q, v, BR_K, 2000000000ull);
	} else {
		rc = br_push(c, q, BR_A, BR_K, BR_K);
	}
	snprintf(c->msg, sizeof c->msg, "the killed push returned %d (the point was not reached)", rc);
	return 4;
}

static int child_push_singles(void *arg)
{
	struct br_ctx *c = arg;
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int rc = br_push(c, q, BR_A + BR_K, BR_K, 1);
	tq_close(q);
	return rc;
}

/* Takes and acks all that is ready, in push order, each with the id its
 * push returned, none of the killed batch; counts them in delivered[] and
 * *n. */
static void br_drain(tq_queue *q, const struct br_ctx *c, uint32_t *delivered, uint32_t *n, uint64_t *last)
{
	tq_task t[7];
	for (;;) {
		int k = tq_take(q, t, 7, 0);
		if (k == TQ_EAGAIN)
			break;
		cr_assert(k > 0, "tq_take: %d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++) {
			uint32_t v = ln_index(&t[i], BR_NV);
			cr_assert(v < BR_A || v >= BR_A + BR_K, "value %u of the killed batch delivered", v);
			cr_assert_eq(t[i].id, c->ids[v], "value %u: id %llu, pushed as %llu", v,
				     (unsigned long long)t[i].id, (unsigned long long)c->ids[v]);
			cr_assert_gt(t[i].id, *last, "out of push order");
			cr_assert_neq(t[i].enqueued_ns, 0);
			*last = t[i].id;
			delivered[v]++;
			(*n)++;
		}
		cr_assert_eq(tq_ack(q, t, (size_t)k), 0);
	}
}

/*
 * A producer killed after writing its batch record (push.record), or after
 * raising the record count as well (push.written), before its tail store:
 * nothing of that batch is delivered, and the next producer of that lane
 * writes its records over the leftover, contiguous with the published ones,
 * so that every task delivered carries the id its push returned. With
 * `join`, every write that may join the last record does (design.md, 17,
 * B4): the killed batch raised the first record's count beyond the tail
 * (push.joined), and the next producer cuts it back before its own record,
 * which its later single pushes join; without, none does.
 */
static void br_killed_test(const char *name, const char *point, uint64_t count_after_kill, bool ints, bool join)
{
	tq_queue *q = ln_create(name, 1000, 60ull * 1000000000ull);
	struct br_ctx *c = tqt_shared(sizeof *c);
	size_t size;

	tq__set_join_ns(join ? UINT64_MAX : 0); /* the children are forked: theirs too */
	br_point = point;
	br_ints = ints;
	pid_t pid = lf_spawn(child_push_record_killed, c);
	int st = tqt_wait(pid, LN_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL, "%s: the child should die at its point; status %d, '%s'", point, st, c->msg);

	const uint8_t *seg = lf_map(&size);
	int lane = -1;
	for (uint32_t l = 0; l < TQ_INT_LANES; l++)
		if (lf_lane_word(seg, l, offsetof(struct tq_lane, tail))) {
			cr_assert_eq(lane, -1, "integer lanes %d and %u both pushed to", lane, l);
			lane = (int)l;
		}
	cr_assert_neq(lane, -1, "no integer lane has the first batch");
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, tail)), BR_A);
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, batches)), count_after_kill,
		     "%s: the record count", point);
	struct tq_ibatch r0 = br_record(seg, (uint32_t)lane, 0), r1 = br_record(seg, (uint32_t)lane, 1);
	cr_assert_eq(r0.id, c->ids[0]);
	if (join) {
		cr_assert_eq(r0.span, IB_SPAN(0, 0, BR_A + BR_K),
			     "the killed batch joined the first record, its count beyond the tail: span %#llx",
			     (unsigned long long)r0.span);
	} else {
		cr_assert_eq(r0.span, IB_SPAN(0, 0, BR_A), "the first batch's record: span %#llx",
			     (unsigned long long)r0.span);
		cr_assert_eq(r1.span, IB_SPAN(BR_A, 0, BR_K),
			     "the killed batch's record, written beyond the tail: span %#llx",
			     (unsigned long long)r1.span);
	}
	munmap((void *)seg, size);

	/* Taken before anyone writes there again (a record, or a count,
	 * beyond the tail): the first batch alone. */
	uint32_t delivered[BR_NV] = {0}, n = 0;
	uint64_t last = 0;
	br_drain(q, c, delivered, &n, &last);
	cr_assert_eq(n, BR_A, "%u delivered before the next push", n);

	/* The dead producer's lane freed, its record free for the next. */
	int rc = tq_recover(q);
	cr_assert_eq(rc, 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pid = lf_spawn(child_push_singles, c);
	st = tqt_wait(pid, LN_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 0, "the second producer: status %d, '%s'", st, c->msg);

	seg = lf_map(&size);
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, tail)), BR_A + BR_K,
		     "the second producer did not push into the dead one's lane %d", lane);
	if (join) {
		/* Cut back to the tail; the singles' ids follow the dead
		 * batch's skipped ones: a record of their own, which the
		 * other 23 joined. */
		struct tq_ibatch c0 = br_record(seg, (uint32_t)lane, 0), c1 = br_record(seg, (uint32_t)lane, 1);
		cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, batches)), 2);
		cr_assert_eq(c0.span, IB_SPAN(0, 0, BR_A), "the first record not cut back to the tail: span %#llx",
			     (unsigned long long)c0.span);
		cr_assert_eq(c1.span, IB_SPAN(BR_A, 0, BR_K), "the singles' record: span %#llx",
			     (unsigned long long)c1.span);
		cr_assert_eq(c1.id, c->ids[BR_A + BR_K]);
	}
	cr_assert(join || lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, batches)) == 1 + BR_K,
		  "the leftover record was not written over");
	for (uint64_t i = 1; !join && i <= BR_K; i++) {
		struct tq_ibatch r = br_record(seg, (uint32_t)lane, i), p = br_record(seg, (uint32_t)lane, i - 1);
		cr_assert_eq(IB_FIRST48(r.span), IB_FIRST48(p.span) + IB_COUNT(p.span), "record %llu not contiguous",
			     (unsigned long long)i);
		cr_assert_eq(IB_COUNT(r.span), 1);
		cr_assert_eq(r.id, c->ids[BR_A + BR_K + i - 1]);
	}
	munmap((void *)seg, size);

	/* The singles, in push order, each with the id its push returned. */
	br_drain(q, c, delivered, &n, &last);
	cr_assert_eq(n, BR_A + BR_K, "%u delivered", n);
	for (uint32_t v = 0; v < BR_NV; v++)
		cr_assert_eq(delivered[v], v >= BR_A && v < BR_A + BR_K ? 0u : 1u, "value %u delivered %u times", v,
			     delivered[v]);
	ln_expect_clean(q);
}

Test(lanes, producer_killed_after_its_batch_record, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("brrecord", "push.record", 1, false, false);
}

Test(lanes, producer_killed_after_its_record_count, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("brcount", "push.written", 2, false, false);
}

Test(lanes, producer_killed_after_a_join, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("brjoin", "push.joined", 1, false, true);
}

/* The same, the killed batch pushed with tq_push_ints. */
Test(lanes, push_ints_producer_killed_after_its_batch_record, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("brirecord", "push.record", 1, true, false);
}

Test(lanes, push_ints_producer_killed_after_its_record_count, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("bricount", "push.written", 2, true, false);
}

Test(lanes, push_ints_producer_killed_after_a_join, .timeout = 60, .fini = lf_fini)
{
	br_killed_test("brijoin", "push.joined", 1, true, true);
}

#define BI_NV 40000u

/*
 * Every task taken carries the id and push time its push gave it, however
 * its batch is found: one producer's batches of 1 to 89 tasks into one
 * lane, with a second producer taking ids in between (so batches' ids are
 * not consecutive across batches), through more than two laps of the
 * lane's 1,024 batch records; taken by two handles in turns of very
 * different sizes, so that one of them finds its hint a lap or more behind
 * (the binary search) and the other walks forward from it; and through
 * tq_take_ints with tq_batch_task.
 */
Test(lanes, ids_from_batch_records, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("brids", 1000, 60ull * 1000000000ull);
	tq_queue *other = NULL, *c1 = NULL, *c2 = NULL;
	static const uint32_t sizes[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 1, 1, 1, 1, 4};
	static uint64_t ids[BI_NV], pushed_ns[BI_NV];
	static uint8_t seen[BI_NV];
	uint64_t vals[256];
	tq_task t[256];
	tq_batch b;
	uint32_t pushed = 0, taken = 0, si = 0, turn = 0;

	/* Every batch is pushed after another handle's id: none may join
	 * the record before it (design.md, 17, B4), however close in time. */
	tq__set_join_ns(UINT64_MAX);
	cr_assert_eq(tq_open(lf_qname, &other), 0);
	cr_assert_eq(tq_open(lf_qname, &c1), 0);
	cr_assert_eq(tq_open(lf_qname, &c2), 0);
	while (taken < BI_NV) {
		/* Push while there is room for the next batch. */
		tq_stats s;
		ln_stats(q, &s);
		uint32_t n = sizes[si % (sizeof sizes / sizeof sizes[0])];
		if (n > BI_NV - pushed)
			n = BI_NV - pushed;
		if (n && s.ready + n + 1 < 900) {
			memset(t, 0, n * sizeof t[0]);
			uint64_t before = tq_now_ns();
			for (uint32_t i = 0; i < n; i++)
				t[i] = (tq_task){.kind = TQ_KIND_INT, .value = LN_BASE + pushed + i};
			cr_assert_eq(tq_push(q, t, n, 0), (int)n);
			for (uint32_t i = 0; i < n; i++) {
				ids[pushed + i] = t[i].id;
				pushed_ns[pushed + i] = before;
			}
			pushed += n;
			si++;
			tq_task x = {.kind = TQ_KIND_INT, .value = 7};
			cr_assert_eq(tq_push(other, &x, 1, 0), 1); /* an id between batches */
			continue;
		}
		/* Take: c1 a few, c2 many, every third turn through tq_take_ints. */
		tq_queue *c = turn % 12 == 11 ? c1 : c2;
		size_t want = c == c1 ? 3 : 250;
		int k;
		if (turn % 3 == 2) {
			k = tq_take_ints(c, vals, want, &b, 0);
			cr_assert(k > 0 || k == TQ_EAGAIN, "tq_take_ints: %d (%s)", k, tq_strerror(k));
			for (int i = 0; i < k; i++) {
				if (vals[i] == 7) {
					cr_assert_eq(tq_batch_task(c, &b, (size_t)i, &t[0]), 0);
					cr_assert_eq(tq_ack(c, &t[0], 1), 0);
					continue;
				}
				cr_assert(vals[i] >= LN_BASE && vals[i] < LN_BASE + pushed, "value %#llx",
					  (unsigned long long)vals[i]);
				uint32_t v = (uint32_t)(vals[i] - LN_BASE);
				if (i % 5 == 0) { /* turned into a tq_task: its id from its record */
					cr_assert_eq(tq_batch_task(c, &b, (size_t)i, &t[0]), 0);
					cr_assert_eq(t[0].id, ids[v], "value %u: tq_batch_task id %llu, pushed as %llu", v,
						     (unsigned long long)t[0].id, (unsigned long long)ids[v]);
					cr_assert_geq(t[0].enqueued_ns, pushed_ns[v]);
					cr_assert_eq(tq_ack(c, &t[0], 1), 0);
				}
				cr_assert_eq(seen[v]++, 0, "value %u twice", v);
				taken++;
			}
			if (k > 0)
				cr_assert_eq(tq_batch_ack(c, &b), 0);
		} else {
			k = tq_take(c, t, want, 0);
			cr_assert(k > 0 || k == TQ_EAGAIN, "tq_take: %d (%s)", k, tq_strerror(k));
			for (int i = 0; i < k; i++) {
				if (t[i].value == 7)
					continue;
				uint32_t v = ln_index(&t[i], pushed);
				cr_assert_eq(t[i].id, ids[v], "value %u: id %llu, pushed as %llu", v,
					     (unsigned long long)t[i].id, (unsigned long long)ids[v]);
				cr_assert_geq(t[i].enqueued_ns, pushed_ns[v]);
				cr_assert_eq(seen[v]++, 0, "value %u twice", v);
				taken++;
			}
			if (k > 0)
				cr_assert_eq(tq_ack(c, t, (size_t)k), 0);
		}
		turn++;
		cr_assert_lt(turn, 1000000u, "no progress: pushed %u taken %u", pushed, taken);
	}
	tq_close(other);
	tq_close(c1);
	tq_close(c2);
	/* Only the other producer's tasks are left. */
	for (;;) {
		int k = tq_take(q, t, 256, 0);
		if (k == TQ_EAGAIN)
			break;
		cr_assert(k > 0);
		for (int i = 0; i < k; i++)
			cr_assert_eq(t[i].value, 7u);
		cr_assert_eq(tq_ack(q, t, (size_t)k), 0);
	}
	ln_expect_clean(q);
}

/* ---------------------------------------------- a search during pushes */

/* A writable word of lane `lane`'s header lines. */
static uint64_t *br_lane_word(uint8_t *seg, uint32_t lane, size_t field)
{
	return (uint64_t *)(void *)(seg + offsetof(struct tq_hdr, lanes) + lane * sizeof(struct tq_lane) + field);
}

static void br_push1(tq_queue *q, uint64_t v, uint64_t *id)
{
	tq_task t = {.kind = TQ_KIND_INT, .value = LN_BASE + v};
	cr_assert_eq(tq_push(q, &t, 1, 0), 1, "push of %llu", (unsigned long long)v);
	if (id)
		*id = t.id;
}

/*
 * A holder's lookup of its claim's record by binary search while the
 * producer pushes on over settled records just before it: the search
 * must go past records written over by later ones. Emulated: the search
 * sees the record count read before five pushes (the count is set back
 * while it runs), and the holder's hint is one of the records written
 * over. Then tq_batch_task must find the claim's id, and a tq_fail must
 * move the task out with it (and the finished watermark stay below it).
 */
Test(lanes, record_search_while_the_producer_pushes, .timeout = 60, .fini = lf_fini)
{
	tq_queue *p = ln_create("brsearch", 64, 60ull * 1000000000ull), *c = NULL;
	uint64_t ids[69], vals[1], w;
	tq_task t[64];
	tq_batch b;
	size_t size;

	tq__set_join_ns(0); /* a record per push */
	cr_assert_eq(tq_open(lf_qname, &c), 0);
	for (uint32_t v = 0; v < 5; v++)
		br_push1(p, v, &ids[v]);
	cr_assert_eq(tq_take(c, t, 5, 0), 5); /* c's hint: record 4 */
	cr_assert_eq(tq_ack(c, t, 5), 0);
	for (uint32_t v = 5; v < 64; v++)
		br_push1(p, v, &ids[v]);
	cr_assert_eq(tq_take_ints(c, vals, 1, &b, 0), 1);
	cr_assert_eq(vals[0], LN_BASE + 5);

	uint8_t *seg = tqt_segment_map(lf_qname, true, &size);
	cr_assert_not_null(seg);
	int lane = -1;
	for (uint32_t l = 0; l < TQ_INT_LANES; l++)
		if (*br_lane_word(seg, l, offsetof(struct tq_lane, tail)))
			lane = (int)l;
	cr_assert_neq(lane, -1);
	uint64_t *batches = br_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, batches));
	uint64_t before = __atomic_load_n(batches, __ATOMIC_ACQUIRE);
	cr_assert_eq(before, 64);
	for (uint32_t v = 64; v < 69; v++) /* records 64..68 over 0..4: their tasks are settled */
		br_push1(p, v, &ids[v]);
	uint64_t after = __atomic_load_n(batches, __ATOMIC_ACQUIRE);
	cr_assert_eq(after, 69);

	__atomic_store_n(batches, before, __ATOMIC_RELEASE);
	tq_task x;
	int rc = tq_batch_task(c, &b, 0, &x);
	cr_expect_eq(rc, 0, "tq_batch_task of a held claim: %d (%s)", rc, tq_strerror(rc));
	cr_expect_eq(x.id, ids[5], "id %llu, pushed as %llu", (unsigned long long)x.id, (unsigned long long)ids[5]);
	rc = tq_fail(c, &x, 1, -5, "moved out during the search");
	__atomic_store_n(batches, after, __ATOMIC_RELEASE);
	munmap(seg, size);
	cr_assert_eq(rc, 0, "tq_fail: %d (%s)", rc, tq_strerror(rc));
	cr_assert_eq(tq_finished_below(p, &w), 0);
	cr_expect_leq(w, ids[5], "finished below %llu, while task %llu waits for its retry", (unsigned long long)w,
		      (unsigned long long)ids[5]);

	/* Everything comes out once, the retry with its own id. */
	uint32_t seen[69] = {0}, n = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (n < 64) {
		int k = tq_take(c, t, 64, 100000000ull);
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN) {
			cr_assert_lt(tqt_now_ms(), deadline, "%u of 64 taken", n);
			continue;
		}
		cr_assert(k > 0, "tq_take: %d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++) {
			uint32_t v = ln_index(&t[i], 69);
			cr_assert_eq(t[i].id, ids[v], "value %u: id %llu, pushed as %llu", v,
				     (unsigned long long)t[i].id, (unsigned long long)ids[v]);
			cr_assert_eq(seen[v]++, 0, "value %u twice", v);
			n++;
		}
		cr_assert_eq(tq_ack(c, t, (size_t)k), 0);
	}
	for (uint32_t v = 5; v < 69; v++)
		cr_assert_eq(seen[v], 1, "value %u", v);
	tq_close(c);
	ln_expect_clean(p);
}

#define JR_NV 3000u
#define JR_CHUNK 256u /* TQ_CHUNK (src/internal.h): the most tasks a record holds */

/*
 * Joins (design.md, 17, B4) while takers hold parts of the record being
 * joined: one producer pushes 1 to 3 tasks at a time with every possible
 * join made (64-task queue), and two handles take 1, 2 or 5 at a time in
 * between, through tq_take and tq_take_ints with tq_batch_task, one of
 * them failing a task now and then (a move-out reads the record of a task
 * in a joined run). With `other`, a second handle pushes a task after
 * every fourth push of the first, which ends the first's run (its ids no
 * longer follow on): records of joined runs then go round the lane's
 * record ring many times (their laps, and records written over);
 * without, runs end only at 256 tasks (TQ_CHUNK). Every task comes out
 * once with the id its push returned and a push time no later than its
 * push's end; the records are far fewer than the pushes; none holds more
 * than 256 tasks, and without `other` some hold exactly 256.
 */
static void jr_test(const char *name, bool other)
{
	tq_queue *q = ln_create(name, 64, 60ull * 1000000000ull), *c1 = NULL, *c2 = NULL, *o = NULL;
	static uint64_t ids[JR_NV], done_ns[JR_NV];
	static uint8_t seen[JR_NV];
	uint64_t vals[8], start = tq_now_ns();
	tq_task t[8];
	tq_batch b;
	uint32_t pushed = 0, taken = 0, pushes = 0, opushes = 0, otaken = 0, turn = 0, failed = 0, again = 0;
	size_t size;

	tq__set_join_ns(UINT64_MAX);
	cr_assert_eq(tq_open(lf_qname, &c1), 0);
	cr_assert_eq(tq_open(lf_qname, &c2), 0);
	cr_assert_eq(tq_open(lf_qname, &o), 0);
	uint64_t deadline = tqt_now_ms() + 30000;
	while (taken < JR_NV || again < failed || otaken < opushes) {
		tq_stats st;
		ln_stats(q, &st);
		uint32_t n = 1 + pushes % 3;
		if (n > JR_NV - pushed)
			n = JR_NV - pushed;
		if (n && st.ready + n < 48 && turn % 4 != 3) {
			if (other && pushes % 4 == 3 && opushes < pushes / 4) {
				tq_task x = {.kind = TQ_KIND_INT, .value = 7};
				int ok = tq_push(o, &x, 1, 0);
				cr_assert(ok == 1 || ok == TQ_EAGAIN, "the other push: %d (%s)", ok, tq_strerror(ok));
				opushes += ok == 1;
				turn++;
				continue;
			}
			for (uint32_t i = 0; i < n; i++)
				t[i] = (tq_task){.kind = TQ_KIND_INT, .value = LN_BASE + pushed + i};
			int k = tq_push(q, t, n, 0); /* TQ_EAGAIN: room not yet given back (it is, lazily) */
			cr_assert(k > 0 || k == TQ_EAGAIN, "tq_push: %d (%s)", k, tq_strerror(k));
			uint64_t end = tq_now_ns();
			for (int i = 0; i < k; i++) {
				ids[pushed + (uint32_t)i] = t[i].id;
				done_ns[pushed + (uint32_t)i] = end;
			}
			turn++;
			if (k > 0) {
				pushed += (uint32_t)k;
				pushes++;
				continue;
			}
		}
		tq_queue *c = turn % 2 ? c1 : c2;
		size_t want = turn % 3 == 0 ? 1 : turn % 3 == 1 ? 2 : 5;
		int k;
		if (c == c1 && turn % 5 == 0) {
			k = tq_take_ints(c, vals, want, &b, 0);
			/* 0: a retry is older (tq_take's) */
			cr_assert(k >= 0 || k == TQ_EAGAIN, "tq_take_ints: %d (%s)", k, tq_strerror(k));
			for (int i = 0; i < k; i++) {
				cr_assert_eq(tq_batch_task(c, &b, (size_t)i, &t[i]), 0);
				cr_assert_eq(t[i].value, vals[i]);
			}
		} else {
			k = tq_take(c, t, want, 0);
			cr_assert(k > 0 || k == TQ_EAGAIN, "tq_take: %d (%s)", k, tq_strerror(k));
		}
		bool fail_first = k > 0 && c == c2 && turn % 7 == 0 && t[0].attempt == 1 && t[0].value != 7;
		for (int i = 0; i < k; i++) {
			if (t[i].value == 7) {
				otaken++;
				continue;
			}
			uint32_t v = ln_index(&t[i], pushed);
			cr_assert_eq(t[i].id, ids[v], "value %u: id %llu, pushed as %llu", v, (unsigned long long)t[i].id,
				     (unsigned long long)ids[v]);
			cr_assert(t[i].enqueued_ns >= start && t[i].enqueued_ns <= done_ns[v],
				  "value %u: push time %llu outside [%llu, %llu]", v, (unsigned long long)t[i].enqueued_ns,
				  (unsigned long long)start, (unsigned long long)done_ns[v]);
			if (t[i].attempt == 1) {
				cr_assert_eq(seen[v]++, 0, "value %u delivered twice", v);
				taken++;
			} else {
				cr_assert_eq(t[i].attempt, 2, "value %u: attempt %u", v, t[i].attempt);
				again++;
			}
		}
		if (fail_first) {
			/* Moved out to a slot: delivered again after its backoff
			 * (1-2 ms), attempt 2. */
			cr_assert_eq(tq_fail(c, &t[0], 1, -1, "again"), 0);
			failed++;
			if (k > 1)
				cr_assert_eq(tq_ack(c, t + 1, (size_t)k - 1), 0);
		} else if (k > 0) {
			cr_assert_eq(tq_ack(c, t, (size_t)k), 0);
		}
		turn++;
		cr_assert_lt(tqt_now_ms(), deadline, "no progress: pushed %u taken %u, %u of %u retries, %u of %u others",
			     pushed, taken, again, failed, otaken, opushes);
	}
	for (uint32_t v = 0; v < JR_NV; v++)
		cr_assert_eq(seen[v], 1, "value %u seen %u times", v, seen[v]);
	cr_assert_gt(failed, 0);

	/* The records: how many, their counts (the last lane_size of each
	 * lane are still there). */
	const uint8_t *seg = lf_map(&size);
	uint64_t records = 0, lsize = lf_hdr32(seg, offsetof(struct tq_hdr, lane_size)), most = 0;
	for (uint32_t l = 0; l < TQ_INT_LANES; l++) {
		uint64_t nb = lf_lane_word(seg, l, offsetof(struct tq_lane, batches));
		records += nb;
		for (uint64_t i = nb > lsize ? nb - lsize : 0; i < nb; i++) {
			struct tq_ibatch r = br_record(seg, l, i);
			uint64_t cnt = IB_COUNT(r.span);
			cr_assert(cnt >= 1 && cnt <= JR_CHUNK, "lane %u record %llu: count %llu", l,
				  (unsigned long long)i, (unsigned long long)cnt);
			if (cnt > most)
				most = cnt;
		}
	}
	munmap((void *)seg, size);
	if (other) {
		/* 4 pushes joined, then the other's: about 2 records per 5 */
		cr_assert_gt(records, 2 * lsize, "%llu records: the ring of %llu not gone round",
			     (unsigned long long)records, (unsigned long long)lsize);
		cr_assert_lt(records * 2, pushes + opushes, "%llu records for %u pushes: few joins",
			     (unsigned long long)records, pushes + opushes);
	} else {
		cr_assert_eq(most, JR_CHUNK, "the longest run %llu", (unsigned long long)most);
		cr_assert_lt(records * 4, pushes, "%llu records for %u pushes: few joins", (unsigned long long)records,
			     pushes);
	}
	tq_close(c1);
	tq_close(c2);
	tq_close(o);
	ln_expect_clean(q);
}

Test(lanes, joined_records_under_takers, .timeout = 60, .fini = lf_fini)
{
	jr_test("brjoined", false);
}

Test(lanes, joined_records_round_the_record_ring, .timeout = 60, .fini = lf_fini)
{
	jr_test("brjoinlaps", true);
}

/*
 * Positions past 2^48 (the span keeps a first position's low 48 bits):
 * every lane starts just below, and tasks pushed across it come out with
 * their ids, the finished watermark moving past them.
 */
Test(lanes, positions_past_2_48, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("brwrap", 64, 60ull * 1000000000ull);
	uint64_t start = (1ull << 48) - 6, w;
	size_t size;

	uint8_t *seg = tqt_segment_map(lf_qname, true, &size);
	cr_assert_not_null(seg);
	for (uint32_t l = 0; l < TQ_INT_LANES; l++) {
		*br_lane_word(seg, l, offsetof(struct tq_lane, tail)) = start;
		*br_lane_word(seg, l, offsetof(struct tq_lane, reuse)) = start;
		*br_lane_word(seg, l, offsetof(struct tq_lane, head)) = head_make(start, 0, 0);
	}
	munmap(seg, size);
	for (uint32_t round = 0; round < 6; round++) {
		tq_task t[8];
		uint64_t ids[8];
		for (uint32_t i = 0; i < 4; i++)
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = LN_BASE + 4 * round + i};
		cr_assert_eq(tq_push(q, t, 4, 0), 4);
		for (uint32_t i = 0; i < 4; i++)
			ids[i] = t[i].id;
		int k = tq_take(q, t, 8, 0);
		cr_assert_eq(k, 4, "round %u: tq_take %d (%s)", round, k, k < 0 ? tq_strerror(k) : "");
		for (uint32_t i = 0; i < 4; i++) {
			cr_assert_eq(t[i].value, LN_BASE + 4 * round + i);
			cr_assert_eq(t[i].id, ids[i], "round %u: id %llu, pushed as %llu", round,
				     (unsigned long long)t[i].id, (unsigned long long)ids[i]);
		}
		cr_assert_eq(tq_finished_below(q, &w), 0);
		cr_assert_leq(w, ids[0], "round %u: finished below %llu with %llu leased", round,
			      (unsigned long long)w, (unsigned long long)ids[0]);
		cr_assert_eq(tq_ack(q, t, 4), 0);
		cr_assert_eq(tq_finished_below(q, &w), 0);
		cr_assert_gt(w, ids[3], "round %u: finished below %llu after acking %llu", round,
			     (unsigned long long)w, (unsigned long long)ids[3]);
	}
	ln_expect_clean(q);
}

/* ==================================== claims of 64: two fate words (C1-C3) */

/* An expiry's mover dies inside the second of the two moves a claim of 64
 * needs (one per fate word): after claiming the second word's bits
 * (move.claimed, its second hit) or after journaling that move but before
 * its claim (move.journal, second hit). The first word's move is whole
 * either way; the repair finishes or undoes the second, and the tasks the
 * second move never claimed stay leased until the sweep moves them. Every
 * task comes back once, as expired; the holder's late acks are all lost. */
#define FW_N 64u
#define FW_LEASE_MS 100u

static void fw_killed_in_second_move(const char *name, const char *point)
{
	tq_queue *q = ln_create(name, 256, (uint64_t)FW_LEASE_MS * 1000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_task t[FW_N];
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	sweep_arm(point, 2, 0);
	ln_push(q, 0, FW_N);
	int n = tq_take(q, t, FW_N, 0);
	cr_assert_eq(n, (int)FW_N, "one claim of %u: %d (%s)", FW_N, n, n < 0 ? tq_strerror(n) : "count");
	cr_assert_eq(t[0].priv[1], t[FW_N - 1].priv[1], "one claim: one generation");
	cr_assert_eq(t[0].priv[0] >> 8 & 0x3f, t[FW_N - 1].priv[0] >> 8 & 0x3f, "one claim: one entry");
	/* Past the lease's end (a deadline, not a race): the child's sweep
	 * moves the claim out as expired, in two moves, and dies in the second. */
	tqt_sleep_ms(FW_LEASE_MS + 50);
	ln_expect_killed(c, lf_spawn(child_expire_armed, c), point);

	int rc = tq_recover(q); /* the journal repaired; the sweep moves what is left */
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_expect_eq(s.leased, 0, "leased %u after the repair and the sweep", s.leased);
	cr_expect_eq(s.ready, FW_N, "ready %u of %u: a task lost between the two moves?", s.ready, FW_N);
	cr_expect_eq(s.total.expired, FW_N, "expired %llu", (unsigned long long)s.total.expired);
	cr_expect_eq(s.ready + s.free_slots, s.slots, "ready %u + free %u != %u slots", s.ready, s.free_slots,
		     s.slots);
	rc = tq_ack(q, t, FW_N);
	cr_expect_eq(rc, TQ_ELOST, "the holder's late ack of moved tasks: %d (%s)", rc, tq_strerror(rc));

	ln_drain(q, &seen, FW_N);
	for (uint32_t v = 0; v < FW_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times after the crash", v,
			     seen.delivered[v]);
		cr_expect_eq(seen.attempt[v], 2, "value %u: attempt %u", v, seen.attempt[v]);
	}
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, FW_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.lost, FW_N, "lost %llu: the holder's acks", (unsigned long long)s.total.lost);
	ln_expect_clean(q);
}

Test(lanes, mover_killed_after_claiming_the_second_fate_word, .timeout = 60, .fini = lf_fini)
{
	fw_killed_in_second_move("fwclaimed", "move.claimed");
}

Test(lanes, mover_killed_before_claiming_the_second_fate_word, .timeout = 60, .fini = lf_fini)
{
	fw_killed_in_second_move("fwjournal", "move.journal");
}

/* The mover of an expiry stops inside its first move (word 0: journaled,
 * not yet claimed) while the holder, late but alive, acks the tasks of
 * the other word; then the mover is killed. Its repair finds word 0's move
 * never claimed anything and releases its slots; the sweep then moves
 * word 0's tasks out as expired. The holder's acks stand: word 1's tasks
 * are acked once and never delivered again. */
Test(lanes, other_fate_word_acked_while_the_mover_is_stopped, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("fwstopped", 256, (uint64_t)FW_LEASE_MS * 1000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;
	tq_task t[FW_N];
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, FW_N);
	int n = tq_take(q, t, FW_N, 0);
	cr_assert_eq(n, (int)FW_N, "one claim of %u: %d (%s)", FW_N, n, n < 0 ? tq_strerror(n) : "count");
	tqt_sleep_ms(FW_LEASE_MS + 50); /* past the lease's end: a deadline, not a race */
	sweep_arm("move.journal", 1, SIGSTOP); /* its first move: word 0's */
	pid_t pid = lf_spawn(child_expire_armed, c);
	ln_expect_stopped(c, pid, "move.journal of word 0 in an expiry");

	int rc = tq_ack(q, t + FW_N / 2, FW_N / 2);
	cr_assert_eq(rc, 0, "ack of word 1's tasks beside the stopped mover: %d (%s)", rc, tq_strerror(rc));
	ln_kill(pid);
	rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ln_stats(q, &s);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.ready, FW_N / 2, "ready %u: word 0's tasks, expired", s.ready);
	cr_expect_eq(s.total.acked, FW_N / 2, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.expired, FW_N / 2, "expired %llu", (unsigned long long)s.total.expired);
	cr_expect_eq(s.ready + s.free_slots, s.slots, "ready %u + free %u != %u slots", s.ready, s.free_slots,
		     s.slots);
	rc = tq_ack(q, t, FW_N / 2);
	cr_expect_eq(rc, TQ_ELOST, "the holder's late ack of word 0's moved tasks: %d (%s)", rc, tq_strerror(rc));

	ln_drain(q, &seen, FW_N);
	for (uint32_t v = 0; v < FW_N; v++)
		cr_expect_eq(seen.delivered[v], v < FW_N / 2 ? 1u : 0u, "value %u delivered %u times after the crash", v,
			     seen.delivered[v]);
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, FW_N, "acked %llu", (unsigned long long)s.total.acked);
	ln_expect_clean(q);
}

/* Two threads ack the two halves of one claim of 64 at once, each the
 * tasks of one fate word: one of them must see the claim complete and
 * settle it (C1), or the lane's positions are never reused. The queue
 * holds four claims: a settle missed in any round makes the push of a
 * later round find no room (timeout 0). The two acks start together from
 * a spin on one word, so that their compare-and-swaps often meet. */
#define TH_ROUNDS 20000
struct fw_acker {
	tq_queue *q;
	tq_task *t;
	_Atomic int go;   /* round + 1 to start */
	_Atomic int done; /* rounds finished */
	int bad_round, bad_rc;
};

static void *fw_ack_half(void *arg)
{
	struct fw_acker *a = arg;
	for (int r = 0; r < TH_ROUNDS; r++) {
		for (int spin = 0; atomic_load(&a->go) != r + 1; spin++)
			if (spin > 2000)
				sched_yield(); /* the other thread was descheduled */
		int rc = tq_ack(a->q, a->t + FW_N / 2, FW_N / 2);
		if (rc != 0 && !a->bad_rc) {
			a->bad_round = r;
			a->bad_rc = rc;
		}
		atomic_store(&a->done, r + 1);
	}
	return NULL;
}

Test(lanes, both_fate_words_acked_at_once_settle, .timeout = 120, .fini = lf_fini)
{
	tq_queue *q = ln_create("fwthreads", 4 * FW_N, 60ull * 1000000000ull);
	static tq_task t[FW_N];
	static struct fw_acker hi;
	pthread_t th;
	tq_stats s;
	tq_task in[FW_N];

	memset(in, 0, sizeof in);
	for (uint32_t i = 0; i < FW_N; i++) {
		in[i].kind = TQ_KIND_INT;
		in[i].value = LN_BASE + i;
	}
	hi = (struct fw_acker){.q = q, .t = t};
	cr_assert_eq(pthread_create(&th, NULL, fw_ack_half, &hi), 0);
	for (int r = 0; r < TH_ROUNDS; r++) {
		int k = tq_push(q, in, FW_N, 0);
		cr_assert_eq(k, (int)FW_N, "round %d: tq_push: %d (%s): an earlier claim never settled?", r, k,
			     k < 0 ? tq_strerror(k) : "count");
		k = tq_take(q, t, FW_N, 0);
		cr_assert_eq(k, (int)FW_N, "round %d: tq_take: %d (%s)", r, k, k < 0 ? tq_strerror(k) : "count");
		cr_assert_eq(t[0].priv[1], t[FW_N - 1].priv[1], "round %d: one claim", r);
		atomic_store(&hi.go, r + 1);
		int rc = tq_ack(q, t, FW_N / 2); /* tasks 0..31, beside the thread's 32..63 */
		cr_assert_eq(rc, 0, "round %d: ack of tasks 0..31: %s", r, tq_strerror(rc));
		for (int spin = 0; atomic_load(&hi.done) != r + 1; spin++)
			if (spin > 2000)
				sched_yield();
		cr_assert_eq(hi.bad_rc, 0, "round %d: ack of tasks 32..63: %s", hi.bad_round, tq_strerror(hi.bad_rc));
	}
	cr_assert_eq(pthread_join(th, NULL), 0);
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, (uint64_t)TH_ROUNDS * FW_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.lost, 0, "lost %llu", (unsigned long long)s.total.lost);
	ln_expect_clean(q);
}

/* A task bit beyond its claim's count (a forged or garbled tq_task) names
 * no task: acks and touches of it are lost, and set nothing. */
Test(lanes, task_bit_beyond_the_claim_is_refused, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("fwforged", 256, 60ull * 1000000000ull);
	tq_task t, forged;
	tq_stats s;

	ln_push(q, 0, 1);
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	for (uint64_t bit = 1; bit < 64; bit += 13) {
		forged = t;
		forged.priv[0] = (t.priv[0] & ~0xffull) | bit;
		cr_assert_eq(tq_touch(q, &forged, 1, 0), TQ_ELOST, "touch of task bit %llu of a claim of 1",
			     (unsigned long long)bit);
		cr_assert_eq(tq_ack(q, &forged, 1), TQ_ELOST, "ack of task bit %llu of a claim of 1",
			     (unsigned long long)bit);
	}
	cr_assert_eq(tq_ack(q, &t, 1), 0, "the real task is still leased");
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, 1, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.lost, 10, "lost %llu: the forged acks and touches", (unsigned long long)s.total.lost);
	ln_expect_clean(q);
}

/* ============================================================ take-ahead */

#define TA_N 200u

/* One task per call with take-ahead 64: every task once, in push order;
 * the claim's other tasks are held (leased) by the handle, not ready, and
 * not taken by another handle. */
Test(lanes, take_ahead_one_at_a_time, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadone", 256, 60ull * 1000000000ull);
	static struct ln_seen seen;
	tq_task t, other;
	tq_stats s;

	memset(&seen, 0, sizeof seen);
	cr_assert_eq(tq_set_take_ahead(q, TQ_TAKE_AHEAD_MAX + 1), TQ_EINVAL);
	cr_assert_eq(tq_set_take_ahead(NULL, 8), TQ_EINVAL);
	tq_queue *obs = NULL;
	cr_assert_eq(tq_open_observer(lf_qname, &obs), 0);
	cr_expect_eq(tq_set_take_ahead(obs, 8), TQ_EOBSERVER);
	tq_close(obs);
	cr_assert_eq(tq_open(lf_qname, &lf_q2), 0);

	ln_push(q, 0, 100);
	ln_push(q, 100, 100);
	cr_assert_eq(tq_set_take_ahead(q, TQ_TAKE_AHEAD_MAX), 0);
	for (uint32_t i = 0; i < TA_N; i++) {
		int n = tq_take(q, &t, 1, 0);
		cr_assert_eq(n, 1, "take %u: %d (%s)", i, n, tq_strerror(n));
		cr_assert_eq(ln_index(&t, TA_N), i, "take %u: value %u, out of push order", i, ln_index(&t, TA_N));
		ln_note(&seen, &t, TA_N);
		cr_expect_eq(t.attempt, 1, "take %u: attempt %u", i, t.attempt);
		if (i == 0) {
			/* One claim of 64: the other 63 held, leased to q. */
			ln_stats(q, &s);
			cr_expect_eq(s.leased, 64, "leased %u after the first take", s.leased);
			cr_expect_eq(s.ready, TA_N - 64, "ready %u after the first take", s.ready);
			/* Another handle takes from what is ready, not the held. */
			n = tq_take(lf_q2, &other, 1, 0);
			cr_assert_eq(n, 1, "the other handle: %d (%s)", n, tq_strerror(n));
			cr_expect_geq(ln_index(&other, TA_N), 64, "the other handle got held value %u",
				      ln_index(&other, TA_N));
			cr_expect_eq(tq_touch(q, &other, 1, 0), TQ_EINVAL, "its task on our handle");
			/* Given back by its close, not counted as an attempt. */
			cr_assert_eq(tq_close(lf_q2), 0);
			lf_q2 = NULL;
		}
		int rc = tq_ack(q, &t, 1);
		cr_assert_eq(rc, 0, "ack %u: %d (%s)", i, rc, tq_strerror(rc));
		seen.acked[i]++;
	}
	cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	for (uint32_t v = 0; v < TA_N; v++)
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, TA_N, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.lost, 0, "lost %llu", (unsigned long long)s.total.lost);
	ln_expect_clean(q);
}

/* A child's handle with take-ahead n; NULL with the reason in c->msg. */
static tq_queue *ta_child_open(struct ln_ctx *c, unsigned n)
{
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return NULL;
	int rc = tq_set_take_ahead(q, n);
	if (rc) {
		ln_err(c, 3, "tq_set_take_ahead", rc);
		return NULL;
	}
	return q;
}

/* Drains n tasks after a take-ahead child that claimed `claimed` of them
 * died having handed over the first alone: each delivered once, the first
 * at its second attempt, the others (kept, or never taken) at their first. */
static void ta_drain_first_handed(tq_queue *q, struct ln_seen *seen, uint32_t n, uint32_t claimed)
{
	ln_drain(q, seen, n);
	for (uint32_t v = 0; v < n; v++) {
		cr_expect_eq(seen->delivered[v], 1, "value %u delivered %u times", v, seen->delivered[v]);
		cr_expect_eq(seen->attempt[v], v == 0 ? 2 : 1, "value %u (%s): attempt %u", v,
			     v == 0 ? "handed over" : v < claimed ? "kept" : "never taken", seen->attempt[v]);
	}
}

/* A holder killed with tasks held and never handed over: recovery gives
 * every unacked task back; the one handed over counts an attempt, the held
 * ones do not (their claim's handed marker). */
#define TK_N 100u

static int child_take_ahead_then_die(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t[3];
	tq_queue *q = ta_child_open(c, 64);
	if (!q)
		return 2;
	int rc;
	for (int i = 0; i < 3; i++) {
		int k = tq_take(q, &t[i], 1, 2000000000ull);
		if (k != 1)
			return ln_err(c, 4, "tq_take", k);
		c->vals[c->nvals++] = t[i].value;
		c->taken++;
	}
	/* The first two acked, the third held unacked with 61 never handed. */
	if ((rc = tq_ack(q, t, 2)) != 0)
		return ln_err(c, 5, "tq_ack", rc);
	raise(SIGKILL);
	return 6;
}

Test(lanes, take_ahead_holder_killed, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadkill", 256, 60ull * 1000000000ull);
	static struct ln_seen seen;
	struct ln_ctx *c = tqt_shared(sizeof *c);

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, TK_N);
	pid_t pid = lf_spawn(child_take_ahead_then_die, c);
	ln_expect_killed(c, pid, "take-ahead holder");
	cr_assert_eq(c->taken, 3, "the child took %d: %s", c->taken, c->msg);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(c->vals[i], LN_BASE + (uint64_t)i, "child take %d: %#llx", i,
			     (unsigned long long)c->vals[i]);
	seen.acked[0] = seen.acked[1] = 1;
	cr_assert_geq(tq_recover(q), 1, "the dead holder recovered");
	ln_drain(q, &seen, TK_N);
	cr_expect_eq(seen.delivered[0] + seen.delivered[1], 0, "an acked task delivered again");
	cr_expect_eq(seen.attempt[2], 2, "the task handed over and not acked: attempt %u", seen.attempt[2]);
	for (uint32_t v = 3; v < TK_N; v++)
		cr_expect_eq(seen.attempt[v], 1, "value %u (%s): attempt %u", v,
			     v < 64 ? "held, never handed over" : "never taken", seen.attempt[v]);
	for (uint32_t v = 0; v < TK_N; v++)
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
	tq_stats s;
	ln_stats(q, &s);
	cr_expect_eq(s.total.acked, TK_N, "acked %llu", (unsigned long long)s.total.acked);
	ln_expect_clean(q);
	munmap(c, sizeof *c);
}

/* Held tasks whose lease expires go back to the queue (no attempt counted)
 * and are not handed over from the handle any more; the next take claims
 * anew. */
Test(lanes, take_ahead_held_tasks_expire, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadexp", 64, 300000000ull); /* a lease of 300 ms */
	static struct ln_seen seen;
	tq_task first, t;

	memset(&seen, 0, sizeof seen);
	cr_assert_eq(tq_open(lf_qname, &lf_q2), 0);
	cr_assert_eq(tq_set_take_ahead(lf_q2, 8), 0);
	ln_push(q, 0, 8);
	cr_assert_eq(tq_take(lf_q2, &first, 1, 0), 1);
	cr_assert_eq(ln_index(&first, 8), 0);
	tqt_sleep_ms(400); /* past the claim's deadline: the sweep below takes it */
	cr_assert_eq(tq_recover(q), 0);
	tq_stats s;
	ln_stats(q, &s);
	cr_expect_eq(s.leased, 0, "leased %u after the expiry", s.leased);
	cr_expect_eq(s.ready, 8, "ready %u after the expiry", s.ready);
	cr_expect_eq(tq_ack(lf_q2, &first, 1), TQ_ELOST, "the expired delivery");
	/* What lf_q2 kept is gone: it takes the copies, oldest first. */
	for (uint32_t i = 0; i < 8; i++) {
		int n = tq_take(lf_q2, &t, 1, 0);
		cr_assert_eq(n, 1, "take %u after the expiry: %d (%s)", i, n, tq_strerror(n));
		uint32_t v = ln_index(&t, 8);
		cr_expect_eq(v, i, "take %u: value %u", i, v);
		ln_note(&seen, &t, 8);
		cr_expect_eq(t.attempt, v == 0 ? 2 : 1, "value %u: attempt %u", v, t.attempt);
		cr_assert_eq(tq_ack(lf_q2, &t, 1), 0);
		seen.acked[v]++;
	}
	for (uint32_t v = 0; v < 8; v++)
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
	ln_expect_clean(q);
}

/* A held task's lease starts again when it is handed over: taken at 2.4 s
 * into a 4 s lease, it (and its claim) still holds at 4.8 s. The margins
 * are 1.6 s either side; a run stalled past one of them (the hand-over
 * after the first deadline, or the ack after the renewed one) proves
 * nothing and is skipped rather than failed. */
Test(lanes, take_ahead_renews_the_lease_on_hand_over, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadrenew", 64, 4000000000ull);
	tq_task t[2];

	cr_assert_eq(tq_set_take_ahead(q, 2), 0);
	ln_push(q, 0, 2);
	uint64_t t0 = tqt_now_ms();
	cr_assert_eq(tq_take(q, &t[0], 1, 0), 1);
	tqt_sleep_ms(2400);
	uint64_t t1a = tqt_now_ms();
	cr_assert_eq(tq_take(q, &t[1], 1, 0), 1);
	uint64_t t1 = tqt_now_ms();
	uint64_t at = t0 + 4800;
	if (tqt_now_ms() < at)
		tqt_sleep_ms((unsigned)(at - tqt_now_ms()));
	cr_assert_eq(tq_recover(q), 0); /* a sweep past the first deadline */
	uint64_t t2 = tqt_now_ms();
	int rc = tq_ack(q, t, 2);
	uint64_t t3 = tqt_now_ms();
	if (rc != 0 && (t1 - t0 >= 4000 || t3 - t1a >= 4000))
		cr_skip_test("stalled past the lease: hand-over at %llu ms, ack at %llu ms",
			     (unsigned long long)(t1 - t0), (unsigned long long)(t3 - t0));
	cr_expect_eq(t2 - t0 > 4000, true, "the sweep ran past the first deadline");
	cr_expect_eq(rc, 0, "both acked, the lease renewed at %llu ms (ack at %llu ms): %d (%s)",
		     (unsigned long long)(t1 - t0), (unsigned long long)(t3 - t0), rc, tq_strerror(rc));
	ln_expect_clean(q);
}

/* Threads of one handle with take-ahead: the one holding the buffer hands
 * over from it, the others take as without it; every task once. */
#define TT_THREADS 4
#define TT_N 4000u

struct tt_arg {
	tq_queue *q;
	uint32_t *delivered; /* atomically */
	int err;
};

static void *tt_worker(void *p)
{
	struct tt_arg *a = p;
	tq_task t;
	for (;;) {
		int n = tq_take(a->q, &t, 1, 0);
		if (n == TQ_EAGAIN)
			return NULL;
		if (n != 1 || t.kind != TQ_KIND_INT || t.value < LN_BASE || t.value >= LN_BASE + TT_N) {
			a->err = n == 1 ? -1000 : n;
			return NULL;
		}
		__atomic_fetch_add(&a->delivered[t.value - LN_BASE], 1, __ATOMIC_RELAXED);
		int rc = tq_ack(a->q, &t, 1);
		if (rc) {
			a->err = rc;
			return NULL;
		}
	}
}

Test(lanes, take_ahead_threads_of_one_handle, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadthreads", TT_N, 60ull * 1000000000ull);
	static uint32_t delivered[TT_N];
	struct tt_arg a[TT_THREADS];
	pthread_t th[TT_THREADS];

	memset(delivered, 0, sizeof delivered);
	for (uint32_t v = 0; v < TT_N; v += 200)
		ln_push(q, v, 200);
	cr_assert_eq(tq_set_take_ahead(q, 16), 0);
	for (int i = 0; i < TT_THREADS; i++) {
		a[i] = (struct tt_arg){.q = q, .delivered = delivered};
		cr_assert_eq(pthread_create(&th[i], NULL, tt_worker, &a[i]), 0);
	}
	for (int i = 0; i < TT_THREADS; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(a[i].err, 0, "thread %d: %d (%s)", i, a[i].err, tq_strerror(a[i].err));
	}
	/* A thread that found the queue empty while another held tasks ends
	 * early; what is left is taken here. */
	a[0].err = 0;
	tt_worker(&a[0]);
	cr_expect_eq(a[0].err, 0);
	for (uint32_t v = 0; v < TT_N; v++)
		cr_expect_eq(delivered[v], 1, "value %u delivered %u times", v, delivered[v]);
	ln_expect_clean(q);
}

/* Another thread touches a task of the claim this one is handing over,
 * all the while: both move the claim's one deadline, and neither may take
 * the other's CAS for a lost lease (a kept task dropped so would stay
 * leased to nobody). The taker keeps each claim's first task unacked
 * while it takes the other 63 (the pushes fill one lane, all ready before
 * the first take, so claims are 64 tasks from position 0). */
#define TR_N 3008u /* 47 claims of 64 */

struct tr_shared {
	pthread_mutex_t mu;
	tq_task cur; /* the claim's first task, held (kind 0: none yet) */
	int stop;
	int err;
	uint64_t touches;
};

static void *tr_toucher(void *p)
{
	struct tr_shared *sh = p;
	for (;;) {
		pthread_mutex_lock(&sh->mu);
		tq_task t = sh->cur;
		int stop = sh->stop;
		pthread_mutex_unlock(&sh->mu);
		if (stop)
			return NULL;
		for (int k = 0; t.kind != 0 && k < 64; k++) {
			int rc = tq_touch(lf_q, &t, 1, 0);
			if (rc != 0 && rc != TQ_ELOST) { /* acked meanwhile: TQ_ELOST */
				__atomic_store_n(&sh->err, rc, __ATOMIC_RELAXED);
				return NULL;
			}
			__atomic_fetch_add(&sh->touches, 1, __ATOMIC_RELAXED);
		}
	}
}

static void tr_stop(struct tr_shared *sh, pthread_t th)
{
	pthread_mutex_lock(&sh->mu);
	sh->stop = 1;
	pthread_mutex_unlock(&sh->mu);
	pthread_join(th, NULL);
}

Test(lanes, take_ahead_beside_a_toucher, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadtouch", TR_N, 60ull * 1000000000ull);
	static struct ln_seen seen;
	static struct tr_shared sh;
	pthread_t th;
	tq_task t, pinned;

	memset(&seen, 0, sizeof seen);
	memset(&sh, 0, sizeof sh);
	pthread_mutex_init(&sh.mu, NULL);
	for (uint32_t v = 0; v < TR_N; v += 188)
		ln_push(q, v, 188);
	cr_assert_eq(tq_set_take_ahead(q, 64), 0);
	cr_assert_eq(pthread_create(&th, NULL, tr_toucher, &sh), 0);
	for (uint32_t i = 0; i < TR_N; i++) {
		int n = tq_take(q, &t, 1, 0);
		if (n != 1) {
			tr_stop(&sh, th);
			tq_stats s;
			ln_stats(q, &s);
			cr_assert_fail("take %u of %u: %d (%s); ready %u leased %u", i, TR_N, n, tq_strerror(n), s.ready,
				       s.leased);
		}
		ln_note(&seen, &t, TR_N);
		if (i % 64 == 0) { /* a claim's first: held while its others go by */
			pinned = t;
			pthread_mutex_lock(&sh.mu);
			sh.cur = t;
			uint64_t before = __atomic_load_n(&sh.touches, __ATOMIC_RELAXED);
			pthread_mutex_unlock(&sh.mu);
			/* The toucher at work on this claim before its others go by. */
			while (__atomic_load_n(&sh.touches, __ATOMIC_RELAXED) < before + 2 &&
			       !__atomic_load_n(&sh.err, __ATOMIC_RELAXED))
				sched_yield();
			continue;
		}
		int rc = tq_ack(q, &t, 1);
		cr_assert_eq(rc, 0, "ack %u: %d (%s)", i, rc, tq_strerror(rc));
		seen.acked[ln_index(&t, TR_N)]++;
		if (i % 64 == 63) {
			rc = tq_ack(q, &pinned, 1);
			cr_assert_eq(rc, 0, "ack of the claim's first, at %u: %d (%s)", i, rc, tq_strerror(rc));
			seen.acked[ln_index(&pinned, TR_N)]++;
		}
	}
	tr_stop(&sh, th);
	cr_expect_eq(sh.err, 0, "tq_touch: %d (%s)", sh.err, tq_strerror(sh.err));
	for (uint32_t v = 0; v < TR_N; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
		cr_expect_eq(seen.acked[v], 1, "value %u acked %u times", v, seen.acked[v]);
	}
	ln_expect_clean(q);
}

/* One take-ahead take that claims from two lanes (two producers): the
 * first claim hands over one task and keeps the rest, the second keeps
 * all of its tasks; the holder dies. Each claim's marker was written
 * before it was made: only the task handed over counts an attempt. */
static int child_take_ahead_two_claims(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t;
	tq_stats s;
	tq_queue *q = ta_child_open(c, 64);
	if (!q)
		return 2;
	int rc;
	int k = tq_take(q, &t, 1, 2000000000ull);
	if (k != 1)
		return ln_err(c, 4, "tq_take", k);
	c->vals[c->nvals++] = t.value;
	c->taken = 1;
	if ((rc = tq_stats_get(q, &s)) != 0)
		return ln_err(c, 5, "tq_stats_get", rc);
	c->vals[c->nvals++] = s.leased;
	raise(SIGKILL);
	return 6;
}

Test(lanes, take_ahead_two_claims_holder_killed, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadtwo", 256, 60ull * 1000000000ull);
	static struct ln_seen seen;
	struct ln_ctx *c = tqt_shared(sizeof *c);

	memset(&seen, 0, sizeof seen);
	cr_assert_eq(tq_open(lf_qname, &lf_q2), 0);
	ln_push(q, 0, 10);     /* one lane */
	ln_push(lf_q2, 10, 10); /* another: each handle pushes into its own */
	pid_t pid = lf_spawn(child_take_ahead_two_claims, c);
	ln_expect_killed(c, pid, "take-ahead holder of two claims");
	cr_assert_eq(c->taken, 1, "%s", c->msg);
	cr_assert_eq(c->vals[1], 20, "leased %llu after one take: both lanes claimed",
		     (unsigned long long)c->vals[1]);
	uint32_t handed = (uint32_t)(c->vals[0] - LN_BASE);
	cr_assert(handed == 0 || handed == 10, "the first task handed over: value %u", handed);
	cr_assert_geq(tq_recover(q), 1);
	ln_drain(q, &seen, 20);
	for (uint32_t v = 0; v < 20; v++) {
		cr_expect_eq(seen.delivered[v], 1, "value %u delivered %u times", v, seen.delivered[v]);
		cr_expect_eq(seen.attempt[v], v == handed ? 2 : 1, "value %u (%s): attempt %u", v,
			     v == handed ? "handed over" : "kept", seen.attempt[v]);
	}
	ln_expect_clean(q);
	munmap(c, sizeof *c);
}

/* A take-ahead taker killed right after its claim's CAS (take.popped),
 * before the claim is ACTIVE and before tq_take returns: the marker was
 * written with the claim, so recovery counts an attempt for the one task
 * the call was to hand over, none for the 63 it was to keep. */
static int child_take_ahead_armed(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t;
	tq_queue *q = ta_child_open(c, 64);
	if (!q)
		return 2;
	tq_fault_arm("take.popped", 1);
	int k = tq_take(q, &t, 1, 2000000000ull);
	return ln_err(c, 4, "tq_take returned (the point was not reached)", k);
}

Test(lanes, take_ahead_taker_killed_at_its_claim, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadpopped", 256, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, 100);
	ln_expect_killed(c, lf_spawn(child_take_ahead_armed, c), "take.popped with take-ahead 64");
	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ta_drain_first_handed(q, &seen, 100, 64);
	ln_expect_clean(q);
	munmap(c, sizeof *c);
}

/* A take-ahead holder dies with 7 tasks kept, and the process that moves
 * its claim out dies in that move, its fate bits claimed (move.claimed):
 * the repair of the move counts attempts as the move would have, one for
 * the task handed over, none for the 7 kept. */
static int child_take_one_ahead_then_die(void *arg)
{
	struct ln_ctx *c = arg;
	tq_task t;
	tq_queue *q = ta_child_open(c, 8);
	if (!q)
		return 2;
	int k = tq_take(q, &t, 1, 2000000000ull);
	if (k != 1)
		return ln_err(c, 4, "tq_take", k);
	c->vals[c->nvals++] = t.value;
	c->taken++;
	raise(SIGKILL);
	return 6;
}

static int child_recover_armed(void *arg)
{
	struct ln_ctx *c = arg;
	tq_fault_arm("move.claimed", 1);
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int rc = tq_recover(q);
	return ln_err(c, 4, "tq_recover returned (the point was not reached)", rc);
}

Test(lanes, take_ahead_mover_of_a_dead_holder_killed, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = ln_create("aheadmover", 256, 60ull * 1000000000ull);
	struct ln_ctx *c = tqt_shared(sizeof *c);
	static struct ln_seen seen;

	memset(&seen, 0, sizeof seen);
	ln_push(q, 0, 100);
	ln_expect_killed(c, lf_spawn(child_take_one_ahead_then_die, c), "take-ahead holder");
	cr_assert_eq(c->taken, 1, "the holder took %d: %s", c->taken, c->msg);
	cr_assert_eq(c->vals[0], LN_BASE, "the holder took %#llx", (unsigned long long)c->vals[0]);
	ln_expect_killed(c, lf_spawn(child_recover_armed, c), "move.claimed in the dead holder's recovery");
	int rc = tq_recover(q); /* the holder and the mover, both dead */
	cr_assert_eq(rc, 2, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	ta_drain_first_handed(q, &seen, 100, 8);
	ln_expect_clean(q);
	munmap(c, sizeof *c);
}
