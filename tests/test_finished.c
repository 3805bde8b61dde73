/* SPDX-License-Identifier: MIT */
/*
 * test_finished.c - the finished watermark (tq_finished_below): it follows
 * acks and deaths exactly in one process, holds below every task a killed
 * holder or a killed mover left, and, with producers and consumers running
 * in separate processes, never passes a task whose ack was not yet asked.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "lanefix.h"

#define FW_SEC 1000000000ull

static tq_queue *fw_create(const char *test, uint32_t cap, uint32_t max_attempts)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(lf_qname, test);
	tq_destroy(lf_qname); /* a leftover of an earlier run with our pid */
	tq_config_init(&c);
	c.capacity = cap;
	c.max_payload = 64;
	c.max_attempts = max_attempts;
	c.lease_ns = 60 * FW_SEC;
	c.backoff_base_ns = 1000000ull; /* 1 ms */
	c.backoff_max_ns = 2000000ull;
	int rc = tq_create(lf_qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", lf_qname, tq_strerror(rc));
	lf_q = q;
	return q;
}

static uint64_t fw_below(tq_queue *q)
{
	uint64_t w = 0;
	int rc = tq_finished_below(q, &w);
	cr_assert_eq(rc, 0, "tq_finished_below: %d (%s)", rc, tq_strerror(rc));
	return w;
}

/* Pushes integers lo..lo+n-1 in one call; returns the first id. */
static uint64_t fw_push(tq_queue *q, uint64_t lo, uint32_t n)
{
	tq_task t[64];
	cr_assert_leq(n, 64);
	memset(t, 0, sizeof t);
	for (uint32_t i = 0; i < n; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = lo + i;
	}
	int k = tq_push(q, t, n, FW_SEC);
	cr_assert_eq(k, (int)n, "tq_push: %d (%s)", k, k < 0 ? tq_strerror(k) : "count");
	return t[0].id;
}

/* Takes exactly n tasks (several calls if need be), the oldest first. */
static void fw_take(tq_queue *q, tq_task *t, int n)
{
	int got = 0;
	while (got < n) {
		int k = tq_take(q, t + got, (size_t)(n - got), 5 * FW_SEC);
		cr_assert_gt(k, 0, "tq_take: %d (%s) after %d of %d", k, tq_strerror(k), got, n);
		got += k;
	}
}

Test(finished, follows_acks_and_deaths, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = fw_create("fwexact", 256, 2);
	tq_task t[64], r;
	uint64_t w;

	cr_expect_eq(tq_finished_below(NULL, &w), TQ_EINVAL);
	cr_expect_eq(tq_finished_below(q, NULL), TQ_EINVAL);
	cr_expect_eq(fw_below(q), 1, "nothing pushed: every id from 1 on is still to come");

	uint64_t id0 = fw_push(q, 100, 10);
	cr_assert_eq(id0, 1);
	cr_expect_eq(fw_below(q), 1, "ten ready");
	fw_take(q, t, 10);
	cr_expect_eq(fw_below(q), 1, "ten leased");
	cr_assert_eq(tq_ack(q, t, 4), 0);
	cr_expect_eq(fw_below(q), 5, "1..4 acked");

	/* 5 fails: a retry, DELAYED in a slot, holds the mark at 5. */
	cr_assert_eq(tq_fail(q, &t[4], 1, 7, "once"), 0);
	cr_expect_eq(fw_below(q), 5, "5 delayed for its retry");
	cr_assert_eq(tq_ack(q, &t[5], 5), 0);
	cr_expect_eq(fw_below(q), 5, "6..10 acked, 5 still delayed");
	fw_take(q, &r, 1);
	cr_assert_eq(r.id, 5);
	cr_expect_eq(fw_below(q), 5, "5 leased again");
	cr_assert_eq(tq_fail(q, &r, 1, 7, "twice"), 0);
	cr_expect_eq(fw_below(q), 11, "5 dead (its last attempt): finished, so is everything below 11");

	/* A mixed batch goes through the slots. */
	tq_task m[2];
	memset(m, 0, sizeof m);
	m[0].kind = TQ_KIND_INT;
	m[0].value = 1;
	m[1].kind = TQ_KIND_STRING;
	m[1].data = "eleven";
	m[1].len = 6;
	cr_assert_eq(tq_push(q, m, 2, FW_SEC), 2);
	cr_assert_eq(m[0].id, 11);
	cr_expect_eq(fw_below(q), 11, "11 and 12 ready in slots");
	fw_take(q, t, 2);
	cr_assert_eq(tq_ack(q, &t[1], 1), 0);
	cr_expect_eq(fw_below(q), 11, "12 acked, 11 leased");
	cr_assert_eq(tq_ack(q, t, 1), 0);
	cr_expect_eq(fw_below(q), 13, "both acked");

	/* A dead task kicked back is unfinished again. */
	cr_assert_eq(tq_dead_kick(q, 5), 1);
	cr_expect_eq(fw_below(q), 5, "5 kicked back to ready");
	fw_take(q, &r, 1);
	cr_assert_eq(r.id, 5);
	cr_assert_eq(tq_ack(q, &r, 1), 0);
	cr_expect_eq(fw_below(q), 13, "all finished");
}

/* ===================================== a holder and a mover killed */

struct fw_ctx {
	char msg[200];
	int acked;
};

/* Takes 20 (one claim: ids 1..20), acks 1..10, and fails 11 with the
 * move-out armed to die once its fate bit is claimed: 11 is then only in
 * the move journal (its slot WRITING), 12..20 in the claim. */
static int child_hold_and_die(void *arg)
{
	struct fw_ctx *c = arg;
	tq_task t[20];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int got = 0;
	while (got < 20) {
		int k = tq_take(q, t + got, (size_t)(20 - got), 5 * FW_SEC);
		if (k <= 0) {
			snprintf(c->msg, sizeof c->msg, "child tq_take: %d (%s)", k, tq_strerror(k));
			return 3;
		}
		got += k;
	}
	int rc = tq_ack(q, t, 10);
	if (rc != 0) {
		snprintf(c->msg, sizeof c->msg, "child tq_ack: %d (%s)", rc, tq_strerror(rc));
		return 4;
	}
	c->acked = 10;
	tq_fault_arm("move.claimed", 1);
	rc = tq_fail(q, &t[10], 1, 9, "dies moving it");
	snprintf(c->msg, sizeof c->msg, "tq_fail returned %d: the point was not reached", rc);
	return 5;
}

Test(finished, holds_below_a_dead_holder_and_a_dead_mover, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = fw_create("fwkilled", 256, 5);
	struct fw_ctx *c = tqt_shared(sizeof *c);
	tq_task t[64];

	cr_assert_eq(fw_push(q, 0, 40), 1); /* ids 1..40 */
	pid_t pid = lf_spawn(child_hold_and_die, c);
	int st = tqt_wait(pid, 20000);
	lf_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL, "the child should die at move.claimed: status %d, '%s'", st, c->msg);
	cr_assert_eq(c->acked, 10);

	/* 1..10 acked; 11 only in the dead mover's journal; 12..20 in the dead
	 * holder's claim; 21..40 ready. */
	cr_expect_eq(fw_below(q), 11, "with the journal and the claim left by the dead child");
	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	cr_expect_eq(fw_below(q), 11, "after recovery: 11..20 ready in slots, 21..40 in the lane");

	fw_take(q, t, 30);
	cr_expect_eq(fw_below(q), 11, "30 leased");
	for (int i = 0; i < 30; i++)
		cr_assert(t[i].id >= 11 && t[i].id <= 40, "id %llu", (unsigned long long)t[i].id);
	cr_assert_eq(tq_ack(q, t, 30), 0);
	cr_expect_eq(fw_below(q), 41, "all finished");
}

/* ===================================== live: never past an unasked ack */

#define LV_PRODUCERS 2
#define LV_CONSUMERS 2
#define LV_PER_PROD 20000u
#define LV_IDS (LV_PRODUCERS * LV_PER_PROD + 1)

struct lv_ctx {
	char msg[200];
	int said;
	int failed;
	uint64_t acked; /* tasks acked by the consumers */
	uint64_t rounds;
	uint64_t checked;
};

static struct lv_ctx *lv;

/* The first child's report wins (later ones are its consequences). */
#define lv_say(...)                                                                   \
	do {                                                                          \
		int zero_ = 0;                                                        \
		if (__atomic_compare_exchange_n(&lv->said, &zero_, 1, 0, __ATOMIC_SEQ_CST, \
						__ATOMIC_SEQ_CST))                    \
			snprintf(lv->msg, sizeof lv->msg, __VA_ARGS__);               \
	} while (0)
static tqt_bitmap lv_returned; /* id: its tq_push returned */
static tqt_bitmap lv_acking;   /* id: tq_ack was called with it */

static int lv_producer(void *arg)
{
	int p = (int)(intptr_t)arg;
	tq_task t[64];
	tq_queue *q = lf_child_open(lv->msg, sizeof lv->msg);
	if (!q)
		return 2;
	static const char js[] = "{\"n\":1}";
	for (uint32_t done = 0; done < LV_PER_PROD;) {
		uint32_t n = (done / 64 + (uint32_t)p) % 7 + 1; /* batches of 1..7 */
		if (n > LV_PER_PROD - done)
			n = LV_PER_PROD - done;
		memset(t, 0, sizeof t);
		for (uint32_t i = 0; i < n; i++) {
			/* integers and JSON, in separate batches (lanes) and
			 * now and then in one (slots) */
			bool payload = ((done + i) / 64) % 3 == 1 || (n == 5 && i == 2);
			t[i].kind = payload ? TQ_KIND_JSON : TQ_KIND_INT;
			t[i].value = done + i;
			t[i].data = payload ? js : NULL;
			t[i].len = payload ? (uint32_t)(sizeof js - 1) : 0;
		}
		int k = tq_push(q, t, n, 10 * FW_SEC);
		if (__atomic_load_n(&lv->failed, __ATOMIC_SEQ_CST))
			return 0;
		if (k <= 0) {
			lv_say("producer tq_push: %d (%s)", k, tq_strerror(k));
			return 3;
		}
		for (int i = 0; i < k; i++)
			tqt_bitmap_set(lv_returned, t[i].id);
		done += (uint32_t)k;
	}
	return 0;
}

static int lv_consumer(void *arg)
{
	(void)arg;
	tq_task t[32];
	tq_queue *q = lf_child_open(lv->msg, sizeof lv->msg);
	if (!q)
		return 2;
	for (;;) {
		int k = tq_take(q, t, 1 + (size_t)(__atomic_load_n(&lv->acked, __ATOMIC_RELAXED) % 32), 200000000ull);
		if (k == TQ_ETIMEDOUT) {
			if (__atomic_load_n(&lv->acked, __ATOMIC_SEQ_CST) >= LV_PRODUCERS * LV_PER_PROD)
				return 0;
			continue;
		}
		if (__atomic_load_n(&lv->failed, __ATOMIC_SEQ_CST))
			return 0;
		if (k <= 0) {
			lv_say("consumer tq_take: %d (%s)", k, tq_strerror(k));
			return 3;
		}
		/* Held a while before the ack is asked for: the mark must stay
		 * below them meanwhile (busy, not a sleep: the holder runs). */
		uint64_t until = tqt_now_ms() + 1;
		while (tqt_now_ms() < until)
			;
		for (int i = 0; i < k; i++)
			tqt_bitmap_set(lv_acking, t[i].id);
		/* acked in two calls, the second half a little later */
		int h = k / 2;
		if (h && tq_ack(q, t, (size_t)h) != 0)
			return 4;
		if (tq_ack(q, t + h, (size_t)(k - h)) != 0)
			return 4;
		__atomic_fetch_add(&lv->acked, (uint64_t)k, __ATOMIC_SEQ_CST);
	}
}

/* Reads which pushes returned, then the mark: every id below it whose push
 * had returned must have had its ack asked for. */
static int lv_checker(void *arg)
{
	(void)arg;
	tq_queue *q = lf_child_open(lv->msg, sizeof lv->msg);
	static uint8_t snap[LV_IDS];
	if (!q)
		return 2;
	uint64_t lo = 1;
	while (__atomic_load_n(&lv->acked, __ATOMIC_SEQ_CST) < LV_PRODUCERS * LV_PER_PROD &&
	       !__atomic_load_n(&lv->failed, __ATOMIC_SEQ_CST)) {
		uint64_t hi = lo + 4096 < LV_IDS ? lo + 4096 : LV_IDS;
		for (uint64_t id = lo; id < hi; id++)
			snap[id] = (uint8_t)tqt_bitmap_test(lv_returned, id);
		uint64_t w = 0;
		if (tq_finished_below(q, &w) != 0)
			return 3;
		uint64_t id = lo;
		for (; id < hi && id < w; id++) {
			if (!snap[id])
				break; /* not yet returned when the mark was read: next round */
			if (!tqt_bitmap_test(lv_acking, id)) {
				lv_say("id %llu is below the mark %llu, its push had returned, and no ack was asked for it",
				       (unsigned long long)id, (unsigned long long)w);
				__atomic_store_n(&lv->failed, 1, __ATOMIC_SEQ_CST);
				return 4;
			}
			lv->checked++;
		}
		lo = id;
		lv->rounds++;
	}
	return 0;
}

Test(finished, never_passes_an_unfinished_task, .timeout = 120, .fini = lf_fini)
{
	fw_create("fwlive", 1024, 5);
	lv = tqt_shared(sizeof *lv);
	lv_returned = tqt_bitmap_new(LV_IDS);
	lv_acking = tqt_bitmap_new(LV_IDS);

	pid_t pids[LV_PRODUCERS + LV_CONSUMERS + 1];
	int n = 0;
	pids[n++] = lf_spawn(lv_checker, NULL);
	for (int i = 0; i < LV_CONSUMERS; i++)
		pids[n++] = lf_spawn(lv_consumer, NULL);
	for (int i = 0; i < LV_PRODUCERS; i++)
		pids[n++] = lf_spawn(lv_producer, (void *)(intptr_t)i);
	for (int i = 0; i < n; i++) {
		int st = tqt_wait(pids[i], 100000);
		lf_forget(pids[i]);
		cr_expect_eq(st, 0, "child %d exited %d: %s", i, st, lv->msg);
	}
	cr_assert_eq(lv->failed, 0, "%s", lv->msg);
	cr_assert_eq(lv->acked, (uint64_t)LV_PRODUCERS * LV_PER_PROD);
	cr_expect_gt(lv->rounds, 0);
	cr_expect_gt(lv->checked, 0, "the checker checked no id (rounds %llu)", (unsigned long long)lv->rounds);
	cr_expect_eq(fw_below(lf_q), (uint64_t)LV_IDS, "all finished at the end");
	cr_log_info("finished watermark: %llu rounds, %llu ids checked below the mark",
		    (unsigned long long)lv->rounds, (unsigned long long)lv->checked);
}
