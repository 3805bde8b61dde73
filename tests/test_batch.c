/* SPDX-License-Identifier: MIT */
/*
 * test_batch.c - batches of integers: tq_take_ints, tq_batch_ack,
 * tq_batch_task (suite "batch"; include/taskq.h).
 *
 *   every_value_once                 thousands of integers from two producer
 *                                    processes through tq_take_ints batches
 *                                    of every size: each value delivered and
 *                                    acked exactly once, counters exact
 *   older_payload_goes_first         a payload pushed before integers: 0
 *                                    (take it with tq_take), then the
 *                                    integers
 *   older_payload_of_another_pair    the same, the payload pushed by another
 *                                    handle (another pair of lanes) than a
 *                                    long stream of integers: the tq_take
 *                                    after the 0 takes the payload first
 *   older_retry_goes_first           a failed integer's retry, ready and
 *                                    older than fresh integers: 0 until
 *                                    tq_take has taken it
 *   handed_out_tasks_are_left_out    tq_batch_task hands tasks over: one
 *                                    failed for good, one acked alone; the
 *                                    batch ack acks the rest, none lost
 *   claim_across_a_word              handed-out tasks on both sides of
 *                                    index 64, in one claim: left out
 *   lease_entries_run_out            63 batches held unacked: TQ_EBUSY, and
 *                                    tq_take still takes
 *   expired_batch_is_lost            a batch acked after its lease expired
 *                                    and was taken back: TQ_ELOST, and the
 *                                    tasks are delivered again
 *   holder_killed_with_a_batch       a worker killed (SIGKILL) holding a
 *                                    batch: recovery returns every task,
 *                                    each acked once in the end
 *   forged_batches_are_refused       a batch zeroed, from another handle,
 *                                    with its claims altered, or acked
 *                                    twice: TQ_EINVAL, nothing acked
 *   push_ints_in_order               tq_push_ints (batches of 1 to 300,
 *                                    across the lane's end) beside tq_push
 *                                    from another process: every value once,
 *                                    each producer's in push order, ids
 *                                    unique and growing with it
 *   push_ints_beyond_a_lane          one tq_push_ints of more than a lane
 *                                    holds: the rest through slots, every
 *                                    value once and in order
 *   push_ints_errors                 bad arguments, an observer, a full
 *                                    queue: the errors of tq_push, a part
 *                                    accepted reported as such
 *   push_ints_times_after_a_wait     tasks pushed through slots after the
 *                                    push waited for room carry a push
 *                                    time after the wait, every chunk
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "taskq.h"
#include "util.h"

#define MS 1000000ull
#define BT_BASE 0xba7c000000ull

static char qname[TQT_NAME_LEN];

static void fini(void)
{
	if (qname[0])
		(void)tq_destroy(qname);
}

static tq_queue *make(const char *test, uint32_t capacity, uint64_t lease_ns, uint32_t max_attempts)
{
	tq_config c;
	tq_queue *q = NULL;

	tq_config_init(&c);
	c.capacity = capacity;
	c.max_payload = 64;
	if (lease_ns)
		c.lease_ns = lease_ns;
	c.max_attempts = max_attempts;
	c.backoff_base_ns = 0;
	tqt_name(qname, test);
	int rc = tq_create(qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create: %d (%s)", rc, tq_strerror(rc));
	return q;
}

static void push_ints(tq_queue *q, uint64_t from, uint64_t n)
{
	tq_task t[64];

	while (n) {
		size_t k = n < 64 ? (size_t)n : 64;
		for (size_t i = 0; i < k; i++)
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = BT_BASE + from + i};
		int rc = tq_push(q, t, k, 5000 * MS);
		cr_assert_eq(rc, (int)k, "tq_push: %d (%s)", rc, tq_strerror(rc));
		from += k;
		n -= k;
	}
}

static void expect_empty(tq_queue *q)
{
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.ready, 0, "ready %u", s.ready);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.delayed, 0, "delayed %u", s.delayed);
}

/* Every one of `total` tasks pushed and acked, none lost, none left. */
static void expect_all_acked(tq_queue *q, uint64_t total)
{
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.pushed, total);
	cr_expect_eq(s.total.acked, total);
	cr_expect_eq(s.total.lost, 0);
	expect_empty(q);
}

/* Takes and acks `left` more integers, batches of up to max. */
static void drain_ints(tq_queue *q, uint64_t left, size_t max)
{
	uint64_t vals[TQ_BATCH_TASKS];
	tq_batch b;

	while (left) {
		int n = tq_take_ints(q, vals, max, &b, 0);
		cr_assert_gt(n, 0, "tq_take_ints: %d (%s)", n, tq_strerror(n));
		cr_assert_leq((uint64_t)n, left, "more than were pushed");
		cr_assert_eq(tq_batch_ack(q, &b), 0);
		left -= (uint64_t)n;
	}
}

/* ------------------------------------------------------------- tests */

#define EV_PER 6000u
#define EV_PRODUCERS 2u

static int ev_producer(void *arg)
{
	uint64_t p = (uint64_t)(uintptr_t)arg;
	tq_queue *q = NULL;
	tq_task t[100];

	if (tq_open(qname, &q) != 0)
		return 2;
	/* Batches of 1..100 integers: claims end at push boundaries too. */
	for (uint64_t s = 0, k = 1; s < EV_PER; s += k, k = k % 100 + 1) {
		if (k > EV_PER - s)
			k = EV_PER - s;
		for (uint64_t i = 0; i < k; i++)
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = BT_BASE + p * EV_PER + s + i};
		if (tq_push(q, t, (size_t)k, 10000 * MS) != (int)k)
			return 3;
	}
	tq_close(q);
	return 0;
}

Test(batch, every_value_once, .timeout = 60, .fini = fini)
{
	tq_queue *q = make("bt_every", 1000, 0, 3);
	pid_t pids[EV_PRODUCERS];
	for (uint64_t p = 0; p < EV_PRODUCERS; p++)
		pids[p] = tqt_fork(ev_producer, (void *)(uintptr_t)p);

	const uint64_t total = (uint64_t)EV_PER * EV_PRODUCERS;
	uint8_t *seen = calloc(total, 1);
	uint64_t vals[TQ_BATCH_TASKS], got = 0, zeros = 0;
	size_t max = 1;
	tq_batch b;
	while (got < total) {
		int n = tq_take_ints(q, vals, max, &b, 10000 * MS);
		cr_assert_geq(n, 0, "tq_take_ints: %d (%s)", n, tq_strerror(n));
		if (n == 0) {
			/* Only integers were pushed: nothing is ever older. */
			zeros++;
			continue;
		}
		cr_assert_leq((size_t)n, max);
		cr_assert_eq(b.n, (uint32_t)n);
		for (int i = 0; i < n; i++) {
			uint64_t v = vals[i] - BT_BASE;
			cr_assert_lt(v, total, "value %#llx not pushed", (unsigned long long)vals[i]);
			cr_assert_eq(seen[v], 0, "value %llu delivered twice", (unsigned long long)v);
			seen[v] = 1;
		}
		int rc = tq_batch_ack(q, &b);
		cr_assert_eq(rc, 0, "tq_batch_ack: %d (%s)", rc, tq_strerror(rc));
		cr_assert_eq(b.n, 0, "an acked batch is empty");
		got += (uint64_t)n;
		max = max % TQ_BATCH_TASKS + 1 + (max > 64 ? 37 : 0);
		if (max > TQ_BATCH_TASKS)
			max = TQ_BATCH_TASKS;
	}
	cr_assert_eq(tqt_wait_all(pids, EV_PRODUCERS, 20000), 0, "a producer failed");
	cr_expect_eq(zeros, 0, "tq_take_ints returned 0 %llu times with only integers pushed",
		     (unsigned long long)zeros);
	free(seen);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.taken, total);
	expect_all_acked(q, total);
	tq_close(q);
}

Test(batch, older_payload_goes_first, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_payload", 100, 0, 3);
	tq_task p = {.kind = TQ_KIND_STRING, .data = "first", .len = 5};
	cr_assert_eq(tq_push(q, &p, 1, 0), 1);
	push_ints(q, 0, 10);

	uint64_t vals[16];
	tq_batch b;
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 1000 * MS), 0, "the payload is older: 0, at once");
	cr_assert_eq(b.n, 0);
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(t.kind, TQ_KIND_STRING);
	cr_assert_eq(t.len, 5);
	cr_assert_eq(memcmp(t.data, "first", 5), 0);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 0), 10);
	for (int i = 0; i < 10; i++)
		cr_expect_eq(vals[i], BT_BASE + (uint64_t)i, "in push order");
	cr_assert_eq(tq_batch_ack(q, &b), 0);
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 0), TQ_EAGAIN, "empty");
	expect_empty(q);
	tq_close(q);
}

Test(batch, older_payload_of_another_pair, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_pairs", 4000, 0, 3);
	/* Handles of records 1 and 2 push into pairs 1 and 2 (their home
	 * indexes); this one, record 0, takes. */
	tq_queue *a = NULL, *b2 = NULL;
	cr_assert_eq(tq_open(qname, &a), 0);
	cr_assert_eq(tq_open(qname, &b2), 0);
	/* First this handle takes from pair 2: its tq_take starts there. */
	tq_task t[64];
	push_ints(b2, 5000, 3);
	cr_assert_eq(tq_take(q, t, 64, 0), 3);
	cr_assert_eq(tq_ack(q, t, 3), 0);
	tq_task p = {.kind = TQ_KIND_JSON, .data = "{}", .len = 2};
	cr_assert_eq(tq_push(a, &p, 1, 0), 1);
	push_ints(b2, 0, 2000);
	uint64_t vals[64];
	tq_batch b;
	cr_assert_eq(tq_take_ints(q, vals, 64, &b, 0), 0, "the payload is older");
	int n = tq_take(q, t, 64, 0);
	cr_assert_gt(n, 0, "tq_take: %d (%s)", n, tq_strerror(n));
	cr_assert_eq(t[0].kind, TQ_KIND_JSON, "the tq_take after the 0 takes the payload first");
	cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	drain_ints(q, 2000 - (uint64_t)(n - 1), 64);
	expect_empty(q);
	tq_close(a);
	tq_close(b2);
	tq_close(q);
}

Test(batch, older_retry_goes_first, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_retry", 100, 0, 3);
	push_ints(q, 0, 4);
	uint64_t vals[16];
	tq_batch b;
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 0), 4);
	tq_task t;
	cr_assert_eq(tq_batch_task(q, &b, 1, &t), 0);
	cr_assert_eq(t.value, BT_BASE + 1);
	cr_assert_eq(t.attempt, 1);
	cr_assert_neq(t.id, 0);
	uint64_t id = t.id;
	cr_assert_eq(tq_fail(q, &t, 1, 5, "again"), 0);
	cr_assert_eq(tq_batch_ack(q, &b), 0, "the three not handed out");
	/* No backoff: recovery's pass makes the retry ready. */
	cr_assert_geq(tq_recover(q), 0);
	push_ints(q, 100, 5);

	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 1000 * MS), 0, "the retry is older: 0");
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(t.id, id, "the retry keeps its id");
	cr_assert_eq(t.value, BT_BASE + 1);
	cr_assert_eq(t.attempt, 2);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 0), 5);
	cr_assert_eq(vals[0], BT_BASE + 100);
	cr_assert_eq(tq_batch_ack(q, &b), 0);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 9);
	cr_expect_eq(s.total.failed, 1);
	cr_expect_eq(s.total.retried, 1);
	expect_empty(q);
	tq_close(q);
}

Test(batch, handed_out_tasks_are_left_out, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_handed", 200, 0, 1);
	push_ints(q, 0, 100);
	uint64_t vals[TQ_BATCH_TASKS];
	tq_batch b;
	int n = tq_take_ints(q, vals, TQ_BATCH_TASKS, &b, 0);
	cr_assert_gt(n, 70, "claims of 64: more than one in the batch (%d)", n);
	cr_assert_gt(b.nclaims, 1);

	tq_task dead, alone;
	cr_assert_eq(tq_batch_task(q, &b, 65, &dead), 0);
	cr_assert_eq(dead.value, vals[65]);
	cr_assert_eq(tq_batch_task(q, &b, 0, &alone), 0);
	cr_assert_eq(alone.value, vals[0]);
	cr_assert_lt(alone.id, dead.id, "ids grow in push order");
	cr_assert_eq(tq_batch_task(q, &b, (size_t)n, &alone), TQ_EINVAL, "out of range");
	cr_assert_eq(tq_batch_task(q, &b, 0, &alone), 0, "the same task again");
	cr_assert_eq(tq_fail(q, &dead, 1, 7, "for good"), 0);
	cr_assert_eq(tq_ack(q, &alone, 1), 0);
	cr_assert_eq(tq_batch_ack(q, &b), 0, "the rest acked, none lost");
	cr_assert_eq(tq_ack(q, &alone, 1), TQ_ELOST, "acked already");

	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, (uint64_t)n - 1);
	cr_expect_eq(s.total.dead, 1);
	cr_expect_eq(s.total.lost, 1, "the second ack of the task acked alone");
	tq_dead_info d[2];
	int k = tq_dead_list(q, d, 2, NULL, 0);
	cr_assert_eq(k, 1, "tq_dead_list: %d", k);
	cr_expect_eq(d[0].value, vals[65]);
	cr_expect_eq(d[0].last_err, 7);
	/* The rest of the queue, by batches. */
	push_ints(q, 100, 50);
	cr_assert_lt(n, 150);
	drain_ints(q, 150 - (uint64_t)n, TQ_BATCH_TASKS);
	expect_empty(q);
	tq_close(q);
}

Test(batch, claim_across_a_word, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_word", 200, 0, 3);
	/* Two lanes of 40: two claims of 40 (each in both of its entry's fate
	 * words) - the second covers the batch's indexes 40..79, across the
	 * batch's first word of handed-out bits. */
	tq_queue *a = NULL, *a2 = NULL;
	cr_assert_eq(tq_open(qname, &a), 0);
	cr_assert_eq(tq_open(qname, &a2), 0);
	push_ints(a, 0, 40);
	push_ints(a2, 1000, 40);
	uint64_t vals[TQ_BATCH_TASKS];
	tq_batch b;
	int n = tq_take_ints(q, vals, TQ_BATCH_TASKS, &b, 0);
	cr_assert_eq(n, 80, "tq_take_ints: %d", n);
	cr_assert_eq(b.nclaims, 2);
	tq_task t63, t64;
	cr_assert_eq(tq_batch_task(q, &b, 63, &t63), 0);
	cr_assert_eq(tq_batch_task(q, &b, 64, &t64), 0);
	cr_assert_eq(t63.value, vals[63]);
	cr_assert_eq(t64.value, vals[64]);
	cr_assert_eq(t63.priv[1], t64.priv[1], "one claim");
	cr_assert_eq(tq_ack(q, &t63, 1), 0);
	cr_assert_eq(tq_ack(q, &t64, 1), 0);
	cr_assert_eq(tq_batch_ack(q, &b), 0, "the other 78, none lost");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 80);
	cr_expect_eq(s.total.lost, 0);
	expect_empty(q);
	tq_close(a);
	tq_close(a2);
	tq_close(q);
}

Test(batch, lease_entries_run_out, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_busy", 200, 0, 3);
	push_ints(q, 0, 70);
	static tq_batch held[63];
	uint64_t v;
	for (int i = 0; i < 63; i++) {
		int n = tq_take_ints(q, &v, 1, &held[i], 0);
		cr_assert_eq(n, 1, "batch %d: %d (%s)", i, n, tq_strerror(n));
		cr_assert_eq(v, BT_BASE + (uint64_t)i);
	}
	tq_batch b;
	cr_assert_eq(tq_take_ints(q, &v, 1, &b, 0), TQ_EBUSY, "every lease entry in use");
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1, "tq_take still takes (through a slot)");
	cr_assert_eq(t.value, BT_BASE + 63);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	for (int i = 0; i < 63; i++)
		cr_assert_eq(tq_batch_ack(q, &held[i]), 0);
	uint64_t vals[16];
	cr_assert_eq(tq_take_ints(q, vals, 16, &b, 0), 6);
	cr_assert_eq(vals[0], BT_BASE + 64);
	cr_assert_eq(tq_batch_ack(q, &b), 0);
	expect_empty(q);
	tq_close(q);
}

Test(batch, expired_batch_is_lost, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_expired", 100, 2 * MS, 5);
	push_ints(q, 0, 20);
	uint64_t vals[32];
	tq_batch b;
	cr_assert_eq(tq_take_ints(q, vals, 32, &b, 0), 20);
	uint64_t until = tqt_now_ms() + 10;
	while (tqt_now_ms() < until) /* the lease's deadline, passed for sure */
		tqt_sleep_ms(2);
	cr_assert_geq(tq_recover(q), 0, "its pass expires the overdue lease");
	tq_task t;
	cr_assert_eq(tq_batch_task(q, &b, 3, &t), TQ_ELOST, "the lease has ended");
	cr_assert_eq(tq_batch_ack(q, &b), TQ_ELOST);

	/* Every task comes back, each once, as a second delivery. */
	tq_task out[32];
	int n = tq_take(q, out, 32, 0);
	cr_assert_eq(n, 20, "tq_take: %d (%s)", n, tq_strerror(n));
	for (int i = 0; i < n; i++) {
		cr_expect_eq(out[i].attempt, 2);
		cr_expect_eq(out[i].value, BT_BASE + (uint64_t)i);
	}
	cr_assert_eq(tq_ack(q, out, (size_t)n), 0);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.expired, 20);
	cr_expect_eq(s.total.acked, 20);
	cr_expect_eq(s.total.lost, 19, "the batch's 20 less the one handed out");
	expect_empty(q);
	tq_close(q);
}

struct kill_ctx {
	int taken;
	uint64_t vals[64];
};

static int holder(void *arg)
{
	struct kill_ctx *c = arg;
	tq_queue *q = NULL;
	tq_batch b;

	if (tq_open(qname, &q) != 0)
		return 2;
	int n = tq_take_ints(q, c->vals, 64, &b, 5000 * MS);
	if (n <= 0)
		return 3;
	c->taken = n;
	raise(SIGKILL); /* holding the batch */
	return 4;
}

Test(batch, holder_killed_with_a_batch, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_killed", 200, 0, 5);
	push_ints(q, 0, 100);
	struct kill_ctx *c = tqt_shared(sizeof *c);
	pid_t pid = tqt_fork(holder, c);
	int st = tqt_wait(pid, 20000);
	cr_assert_eq(st, 128 + SIGKILL, "the holder should die by SIGKILL: %d", st);
	cr_assert_gt(c->taken, 0);
	cr_assert_eq(tq_recover(q), 1, "one dead process recovered");

	uint8_t seen[100] = {0};
	int again = 0, total = 0;
	for (;;) {
		uint64_t vals[TQ_BATCH_TASKS];
		tq_batch b;
		int n = tq_take_ints(q, vals, TQ_BATCH_TASKS, &b, 0);
		if (n == TQ_EAGAIN)
			break;
		cr_assert_geq(n, 0, "tq_take_ints: %d (%s)", n, tq_strerror(n));
		if (n > 0) {
			for (int i = 0; i < n; i++) {
				uint64_t v = vals[i] - BT_BASE;
				cr_assert_lt(v, 100);
				cr_assert_eq(seen[v]++, 0, "value %llu twice", (unsigned long long)v);
			}
			cr_assert_eq(tq_batch_ack(q, &b), 0);
			total += n;
			continue;
		}
		/* The dead holder's tasks, given back: older, through tq_take. */
		tq_task t[64];
		n = tq_take(q, t, 64, 0);
		cr_assert_gt(n, 0, "tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			uint64_t v = t[i].value - BT_BASE;
			cr_assert_lt(v, 100);
			cr_assert_eq(seen[v]++, 0, "value %llu twice", (unsigned long long)v);
			cr_expect_eq(t[i].attempt, 2, "a second delivery");
			again++;
		}
		cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
		total += n;
	}
	cr_expect_eq(total, 100);
	cr_expect_eq(again, c->taken, "the holder's tasks came back");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 100);
	cr_expect_eq(s.total.recovered, (uint64_t)c->taken);
	expect_empty(q);
	tq_close(q);
}

Test(batch, forged_batches_are_refused, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_forged", 100, 0, 5);
	push_ints(q, 0, 40);
	uint64_t vals[64];
	tq_batch b, z, bad;
	tq_task t;

	cr_assert_eq(tq_take_ints(q, NULL, 8, &b, 0), TQ_EINVAL);
	cr_assert_eq(tq_take_ints(q, vals, 8, NULL, 0), TQ_EINVAL);
	cr_assert_eq(tq_take_ints(q, vals, 0, &b, 0), TQ_EINVAL);
	cr_assert_eq(tq_take_ints(NULL, vals, 8, &b, 0), TQ_EINVAL);
	cr_assert_eq(tq_batch_ack(q, NULL), TQ_EINVAL);
	memset(&z, 0, sizeof z);
	cr_assert_eq(tq_batch_ack(q, &z), TQ_EINVAL, "a zeroed batch");

	int n = tq_take_ints(q, vals, 64, &b, 0);
	cr_assert_eq(n, 40);
	cr_assert_eq(tq_batch_task(q, &b, 0, NULL), TQ_EINVAL);
	/* Claims altered: counts not covering n, an entry out of range, a
	 * count over 32, the batch's n changed. */
	bad = b;
	bad.priv[3] += 1 << 8;
	cr_assert_eq(tq_batch_ack(q, &bad), TQ_EINVAL, "a claim's count changed");
	bad = b;
	bad.priv[3] = (bad.priv[3] & ~0xffull) | 63;
	cr_assert_eq(tq_batch_ack(q, &bad), TQ_EINVAL, "the spare entry");
	bad = b;
	bad.n = 39;
	cr_assert_eq(tq_batch_ack(q, &bad), TQ_EINVAL, "n changed");
	bad = b;
	bad.nclaims = TQ_BATCH_CLAIMS + 1;
	cr_assert_eq(tq_batch_ack(q, &bad), TQ_EINVAL, "too many claims");
	/* Another handle's batch. */
	tq_queue *q2 = NULL;
	cr_assert_eq(tq_open(qname, &q2), 0);
	cr_assert_eq(tq_batch_ack(q2, &b), TQ_EINVAL, "not this handle's");
	cr_assert_eq(tq_batch_task(q2, &b, 0, &t), TQ_EINVAL);
	tq_close(q2);

	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 0, "nothing acked by a refused batch");
	cr_expect_eq(s.leased, 40);
	bad = b;
	cr_assert_eq(tq_batch_ack(q, &b), 0);
	cr_assert_eq(tq_batch_ack(q, &b), TQ_EINVAL, "acked: empty");
	cr_assert_eq(tq_batch_ack(q, &bad), TQ_ELOST, "a copy acked a second time: every task lost");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 40);
	cr_expect_eq(s.total.lost, 40);
	expect_empty(q);
	tq_close(q);
}

/* ------------------------------------------------------- tq_push_ints */

#define PI_PER 20000u

/* Producer 0 pushes with tq_push_ints, producer 1 with tq_push, both in
 * batches of 1 to 300 (over TQ_CHUNK: more than one lane write). */
static int pi_producer(void *arg)
{
	uint64_t p = (uint64_t)(uintptr_t)arg;
	tq_queue *q = NULL;
	uint64_t v[300];
	tq_task t[300];

	if (tq_open(qname, &q) != 0)
		return 2;
	for (uint64_t s = 0, k = 1; s < PI_PER; s += k, k = k % 300 + 1) {
		if (k > PI_PER - s)
			k = PI_PER - s;
		for (uint64_t i = 0; i < k; i++) {
			v[i] = BT_BASE + p * PI_PER + s + i;
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = v[i]};
		}
		int rc = p == 0 ? tq_push_ints(q, v, (size_t)k, 10000 * MS) : tq_push(q, t, (size_t)k, 10000 * MS);
		if (rc != (int)k)
			return 3;
	}
	tq_close(q);
	return 0;
}

Test(batch, push_ints_in_order, .timeout = 60, .fini = fini)
{
	/* 1000 tasks: lanes of 1024 cells, wrapped about 20 times. */
	tq_queue *q = make("bt_pushints", 1000, 0, 3);
	pid_t pids[2];
	for (uint64_t p = 0; p < 2; p++)
		pids[p] = tqt_fork(pi_producer, (void *)(uintptr_t)p);

	const uint64_t total = 2ull * PI_PER;
	uint8_t *seen = calloc(total, 1);
	uint64_t last_val[2] = {0, 0}, last_id[2] = {0, 0}, got = 0;
	bool any[2] = {false, false};
	tq_task out[64];
	while (got < total) {
		int n = tq_take(q, out, 64, 10000 * MS);
		cr_assert_gt(n, 0, "tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			cr_assert_eq(out[i].kind, TQ_KIND_INT);
			uint64_t v = out[i].value - BT_BASE;
			cr_assert_lt(v, total, "value %#llx not pushed", (unsigned long long)out[i].value);
			cr_assert_eq(seen[v], 0, "value %llu delivered twice", (unsigned long long)v);
			seen[v] = 1;
			unsigned p = (unsigned)(v / PI_PER);
			cr_assert_neq(out[i].id, 0, "a task without an id");
			if (any[p]) {
				cr_assert_gt(v, last_val[p], "producer %u's values out of order", p);
				cr_assert_gt(out[i].id, last_id[p], "producer %u's ids not growing", p);
			}
			any[p] = true;
			last_val[p] = v;
			last_id[p] = out[i].id;
		}
		cr_assert_eq(tq_ack(q, out, (size_t)n), 0);
		got += (uint64_t)n;
	}
	cr_assert_eq(tqt_wait_all(pids, 2, 20000), 0, "a producer failed");
	free(seen);
	expect_all_acked(q, total);
	tq_close(q);
}

Test(batch, push_ints_beyond_a_lane, .timeout = 60, .fini = fini)
{
	/* A queue over 65,536 tasks: lanes of 65,536 cells, fewer than the
	 * capacity (design.md, 17, "Lanes smaller than the queue"). */
	const uint64_t n = 100000;
	tq_queue *q = make("bt_pushbig", 120000, 0, 3);
	uint64_t *v = malloc(n * sizeof *v);
	cr_assert_not_null(v);
	for (uint64_t i = 0; i < n; i++)
		v[i] = BT_BASE + i;
	int rc = tq_push_ints(q, v, (size_t)n, 0);
	cr_assert_eq(rc, (int)n, "tq_push_ints: %d (%s)", rc, tq_strerror(rc));
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.pushed, n);
	cr_expect_eq(s.ready, n);

	uint64_t vals[TQ_BATCH_TASKS], next = 0, ring = 0;
	tq_task out[64];
	tq_batch b;
	while (next < n) {
		int k = tq_take_ints(q, vals, TQ_BATCH_TASKS, &b, 0);
		if (k == 0) {
			/* The rest went through slots: tq_take takes those. */
			k = tq_take(q, out, 64, 0);
			cr_assert_gt(k, 0, "tq_take: %d (%s)", k, tq_strerror(k));
			for (int i = 0; i < k; i++, next++)
				cr_assert_eq(out[i].value, BT_BASE + next, "value %llu out of order",
					     (unsigned long long)(out[i].value - BT_BASE));
			cr_assert_eq(tq_ack(q, out, (size_t)k), 0);
			ring += (uint64_t)k;
			continue;
		}
		cr_assert_gt(k, 0, "tq_take_ints: %d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++, next++)
			cr_assert_eq(vals[i], BT_BASE + next, "value %llu out of order",
				     (unsigned long long)(vals[i] - BT_BASE));
		cr_assert_eq(tq_batch_ack(q, &b), 0);
	}
	cr_expect_eq(ring, n - 65536, "the lane took 65,536, the slots the rest");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, n);
	cr_expect_eq(s.total.lost, 0);
	expect_empty(q);
	free(v);
	tq_close(q);
}

Test(batch, push_ints_errors, .timeout = 30, .fini = fini)
{
	tq_queue *q = make("bt_pusherr", 64, 0, 3);
	uint64_t v[100];
	for (int i = 0; i < 100; i++)
		v[i] = BT_BASE + (uint64_t)i;

	cr_assert_eq(tq_push_ints(NULL, v, 1, 0), TQ_EINVAL);
	cr_assert_eq(tq_push_ints(q, NULL, 1, 0), TQ_EINVAL);
	cr_assert_eq(tq_push_ints(q, v, 0, 0), TQ_EINVAL);
	tq_queue *obs = NULL;
	cr_assert_eq(tq_open_observer(qname, &obs), 0);
	cr_assert_eq(tq_push_ints(obs, v, 1, 0), TQ_EOBSERVER);
	tq_close(obs);
	/* 100 into a queue of 64: the first 64 accepted, then full. */
	cr_assert_eq(tq_push_ints(q, v, 100, 0), 64);
	cr_assert_eq(tq_push_ints(q, v + 64, 36, 0), TQ_EAGAIN);
	cr_assert_eq(tq_push_ints(q, v + 64, 36, 20 * MS), TQ_ETIMEDOUT);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.pushed, 64, "what was refused is not in the queue");
	drain_ints(q, 64, 64);
	cr_assert_eq(tq_set_run_state(q, TQ_DRAINING), 0);
	cr_assert_eq(tq_push_ints(q, v, 1, 0), TQ_ESTOPPED);
	expect_empty(q);
	tq_close(q);
}

/* Frees room once the pusher (the other handle's record) sleeps waiting
 * for it: takes and acks every task of the queue but the last `keep`. */
struct tw_ctx {
	uint64_t freed_ns;
	_Atomic int done;
	int rc;
};

static void *tw_freer(void *arg)
{
	struct tw_ctx *c = arg;
	tq_queue *q = NULL;
	tq_proc_info pi[8];
	tq_task out[64];

	if (tq_open(qname, &q) != 0) {
		c->rc = 1;
		return NULL;
	}
	for (bool asleep = false; !asleep;) {
		int n = tq_procs(q, pi, 8);
		for (int i = 0; i < n; i++)
			asleep = asleep || pi[i].waiting == 2;
		if (!asleep)
			sched_yield();
	}
	c->freed_ns = tq_now_ns();
	for (int freed = 0; freed < 2048;) {
		int n = tq_take(q, out, 64, 0);
		if (n <= 0 || tq_ack(q, out, (size_t)n) != 0) {
			c->rc = 2;
			break;
		}
		freed += n;
	}
	tq_close(q);
	return NULL;
}

Test(batch, push_ints_times_after_a_wait, .timeout = 60, .fini = fini)
{
	/* Lanes of 65,536 in a queue of 70,000: the lane full, the slots 10
	 * short of full, then 200 pushed (in chunks of 64 through slots). */
	tq_queue *q = make("bt_pushwait", 70000, 0, 3);
	uint64_t *v = malloc(70000 * sizeof *v);
	cr_assert_not_null(v);
	for (uint64_t i = 0; i < 70000; i++)
		v[i] = BT_BASE + i;
	cr_assert_eq(tq_push_ints(q, v, 65536, 0), 65536);
	cr_assert_eq(tq_push_ints(q, v + 65536, 70000 - 65536 - 10, 0), 70000 - 65536 - 10);
	struct tw_ctx c = {0};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, tw_freer, &c), 0);
	uint64_t w[200];
	for (uint64_t i = 0; i < 200; i++)
		w[i] = BT_BASE + 100000 + i;
	int rc = tq_push_ints(q, w, 200, 30000000000ull);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(c.rc, 0, "the freer failed: %d", c.rc);
	cr_assert_eq(rc, 200, "tq_push_ints: %d (%s)", rc, tq_strerror(rc));
	tq_task out[64];
	uint32_t seen = 0;
	for (;;) {
		int n = tq_take(q, out, 64, 0);
		if (n == TQ_EAGAIN)
			break;
		cr_assert_gt(n, 0, "tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			if (out[i].value < BT_BASE + 100000)
				continue;
			uint64_t k = out[i].value - BT_BASE - 100000;
			seen++;
			/* The first 10 went in before the wait. */
			if (k >= 10)
				cr_assert_geq(out[i].enqueued_ns, c.freed_ns,
					      "task %llu of the push: pushed %lld ns before the room it waited for",
					      (unsigned long long)k, (long long)(c.freed_ns - out[i].enqueued_ns));
		}
		cr_assert_eq(tq_ack(q, out, (size_t)n), 0);
	}
	cr_assert_eq(seen, 200);
	free(v);
	tq_close(q);
}
