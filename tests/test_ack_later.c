/* SPDX-License-Identifier: MIT */
/*
 * tq_ack_later and tq_ack_flush: acks kept in the handle and applied
 * together, at TQ_ACK_LATER_MAX, at a tq_take that finds nothing ready, at
 * a flush and at close; a process killed with acks kept loses nothing.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "fault.h" /* the test build: the age at which a take acks what is kept */
#include "taskq.h"
#include "util.h"

static tq_queue *open_new(char name[TQT_NAME_LEN], const char *test, uint32_t capacity)
{
	tq_config cfg;
	tq_queue *q;

	tqt_name(name, test);
	tq_config_init(&cfg);
	cfg.capacity = capacity;
	cr_assert_eq(tq_create(name, &cfg, &q), 0);
	return q;
}

static void push_ints(tq_queue *q, uint64_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(tq_push_int(q, first + i, 0), 0, "push %u", i);
}

static tq_stats stats(tq_queue *q)
{
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	return s;
}

/* Take one at a time (take-ahead 64), ack each later: nothing is acked
 * before the 64th; the 64th acks all 64; a flush acks the rest. */
Test(ack_later, acked_in_groups_of_the_max, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alg", 1000);
	uint32_t n = 2 * TQ_ACK_LATER_MAX + 10;
	bool seen[2 * TQ_ACK_LATER_MAX + 10] = {0};

	push_ints(q, 0, n);
	cr_assert_eq(tq_set_take_ahead(q, 64), 0);
	tq__set_ack_later_age_ns(UINT64_MAX); /* however slow the build: only the count */
	for (uint32_t i = 0; i < n; i++) {
		tq_task t;
		cr_assert_eq(tq_take(q, &t, 1, 0), 1, "take %u", i);
		cr_assert_lt(t.value, n);
		cr_assert_not(seen[t.value], "value %llu twice", (unsigned long long)t.value);
		seen[t.value] = true;
		cr_assert_eq(tq_ack_later(q, &t, 1), 0, "ack_later %u", i);
		uint64_t acked = stats(q).total.acked;
		cr_assert_eq(acked, (i + 1) / TQ_ACK_LATER_MAX * TQ_ACK_LATER_MAX, "after %u: acked %llu", i + 1,
			     (unsigned long long)acked);
	}
	tq_stats s = stats(q);
	cr_assert_eq(s.leased, 10, "the kept ones are still leased: %u", s.leased);
	cr_assert_eq(tq_ack_flush(q), 0);
	s = stats(q);
	cr_assert_eq(s.total.acked, n);
	cr_assert_eq(s.leased, 0);
	cr_assert_eq(s.ready, 0);
	cr_assert_eq(s.total.lost, 0);
	cr_assert_eq(tq_ack_flush(q), 0, "nothing kept: nothing to report");
	tq_close(q);
	tq_destroy(name);
}

/* A tq_take that finds nothing ready acks what is kept, before it
 * returns TQ_EAGAIN (or waits). */
Test(ack_later, acked_by_a_take_that_finds_nothing, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alt", 100);
	tq_task t;

	push_ints(q, 0, 3);
	tq__set_ack_later_age_ns(UINT64_MAX); /* however slow the build: only an empty take */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(tq_take(q, &t, 1, 0), 1);
		cr_assert_eq(tq_ack_later(q, &t, 1), 0);
	}
	cr_assert_eq(stats(q).total.acked, 0);
	cr_assert_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	cr_assert_eq(stats(q).total.acked, 3);
	cr_assert_eq(stats(q).leased, 0);
	/* The same with a wait: acked before it sleeps. */
	push_ints(q, 10, 1);
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(tq_ack_later(q, &t, 1), 0);
	cr_assert_eq(tq_take(q, &t, 1, 20000000ull), TQ_ETIMEDOUT);
	cr_assert_eq(stats(q).total.acked, 4);
	cr_assert_eq(tq_ack_flush(q), 0);
	tq_close(q);
	tq_destroy(name);
}

/* Kept acks as old as the age go at the next take, even one that finds
 * a task ready (age 0: every take). */
Test(ack_later, acked_by_a_take_after_the_age, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "ala", 100);
	tq_task t;

	push_ints(q, 0, 10);
	tq__set_ack_later_age_ns(0);
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(tq_take(q, &t, 1, 0), 1);
		cr_assert_eq(stats(q).total.acked, i, "the take acked the one kept before it");
		cr_assert_eq(tq_ack_later(q, &t, 1), 0);
	}
	cr_assert_eq(tq_ack_flush(q), 0);
	cr_assert_eq(stats(q).total.acked, 10);
	tq_close(q);
	tq_destroy(name);
}

/* tq_close acks what is kept: the tasks do not come back. */
Test(ack_later, acked_at_close, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alc", 100);
	tq_task t[5];

	push_ints(q, 0, 5);
	cr_assert_eq(tq_take(q, t, 5, 0), 5);
	cr_assert_eq(tq_ack_later(q, t, 5), 0);
	cr_assert_eq(stats(q).total.acked, 0);
	cr_assert_eq(tq_close(q), 0);
	cr_assert_eq(tq_open(name, &q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.acked, 5);
	cr_assert_eq(s.ready, 0);
	cr_assert_eq(s.leased, 0);
	tq_close(q);
	tq_destroy(name);
}

/* A task kept twice, or one acked already: the ack that applies them
 * reports TQ_ELOST, once, and acks the others. */
Test(ack_later, lost_leases_reported_once, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "all", 100);
	tq_task t[3];

	push_ints(q, 0, 3);
	cr_assert_eq(tq_take(q, t, 3, 0), 3);
	cr_assert_eq(tq_ack(q, &t[0], 1), 0);
	cr_assert_eq(tq_ack_later(q, &t[0], 1), 0, "kept: its check comes with the ack");
	cr_assert_eq(tq_ack_later(q, &t[1], 1), 0);
	cr_assert_eq(tq_ack_later(q, &t[1], 1), 0);
	cr_assert_eq(tq_ack_later(q, &t[2], 1), 0);
	cr_assert_eq(tq_ack_flush(q), TQ_ELOST);
	cr_assert_eq(tq_ack_flush(q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.acked, 3);
	cr_assert_eq(s.total.lost, 2);
	cr_assert_eq(s.leased, 0);

	/* Applied by a take: reported by the next call that reports. */
	push_ints(q, 10, 1);
	cr_assert_eq(tq_take(q, t, 1, 0), 1);
	cr_assert_eq(tq_ack(q, t, 1), 0);
	cr_assert_eq(tq_ack_later(q, t, 1), 0);
	cr_assert_eq(tq_take(q, t, 1, 0), TQ_EAGAIN);
	cr_assert_eq(stats(q).total.lost, 3);
	cr_assert_eq(tq_ack_flush(q), TQ_ELOST);
	cr_assert_eq(tq_ack_flush(q), 0);
	tq_close(q);
	tq_destroy(name);
}

/* Bad input keeps nothing; more than TQ_ACK_LATER_MAX are acked at once. */
Test(ack_later, bad_input_and_large_batches, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alb", 1000);
	tq_task t[TQ_ACK_LATER_MAX + 1];

	cr_assert_eq(tq_ack_later(NULL, t, 1), TQ_EINVAL);
	cr_assert_eq(tq_ack_later(q, NULL, 1), TQ_EINVAL);
	cr_assert_eq(tq_ack_later(q, t, 0), TQ_EINVAL);
	cr_assert_eq(tq_ack_flush(NULL), TQ_EINVAL);
	push_ints(q, 0, TQ_ACK_LATER_MAX + 1);
	cr_assert_eq(tq_take(q, t, TQ_ACK_LATER_MAX + 1, 0), (int)TQ_ACK_LATER_MAX + 1);
	tq_task forged = t[0];
	forged.priv[0] ^= 1ull << 62;
	cr_assert_eq(tq_ack_later(q, &forged, 1), TQ_EINVAL);
	tq_task two[2] = {t[0], forged};
	cr_assert_eq(tq_ack_later(q, two, 2), TQ_EINVAL, "one bad task: nothing kept");
	cr_assert_eq(tq_ack_flush(q), 0);
	cr_assert_eq(stats(q).total.acked, 0);
	cr_assert_eq(tq_ack_later(q, t, TQ_ACK_LATER_MAX + 1), 0);
	cr_assert_eq(stats(q).total.acked, TQ_ACK_LATER_MAX + 1, "acked at once");
	tq_close(q);
	tq_destroy(name);
}

/* A consumer killed with acks kept: its tasks are delivered again, none
 * lost, none acked twice. */
#define KILLED_N 40u

static int killed_child(void *arg)
{
	const char *name = arg;
	tq_queue *q;
	if (tq_open(name, &q) != 0 || tq_set_take_ahead(q, 64) != 0)
		return 2;
	for (uint32_t i = 0; i < KILLED_N; i++) {
		tq_task t;
		if (tq_take(q, &t, 1, 0) != 1 || tq_ack_later(q, &t, 1) != 0)
			return 3;
	}
	raise(SIGKILL);
	return 4;
}

Test(ack_later, consumer_killed_with_acks_kept, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alk", 1000);
	bool seen[KILLED_N] = {0};

	push_ints(q, 0, KILLED_N);
	tq__set_ack_later_age_ns(UINT64_MAX); /* the child keeps all of them, however slow the build */
	pid_t pid = tqt_fork(killed_child, name);
	cr_assert_eq(tqt_wait(pid, 30000), 128 + SIGKILL);
	cr_assert_eq(stats(q).total.acked, 0, "nothing was acked before the kill");
	cr_assert_geq(tq_recover(q), 0);
	tq_task t[KILLED_N];
	int n = tq_take(q, t, KILLED_N, 0);
	cr_assert_eq(n, (int)KILLED_N, "taken again: %d", n);
	for (int i = 0; i < n; i++) {
		cr_assert_lt(t[i].value, KILLED_N);
		cr_assert_not(seen[t[i].value]);
		seen[t[i].value] = true;
	}
	cr_assert_eq(tq_ack_later(q, t, (size_t)n), 0);
	cr_assert_eq(tq_ack_flush(q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.acked, KILLED_N);
	cr_assert_eq(s.total.lost, 0);
	cr_assert_eq(s.ready + s.leased + s.delayed + s.dead, 0);
	tq_close(q);
	tq_destroy(name);
}

/* Threads of one handle: each task acked once, whichever thread keeps or
 * applies it (run under TSan in CI). */
#define THREADS 3
#define PER_THREAD 3000u

struct tctx {
	tq_queue *q;
	_Atomic uint32_t *taken;
	_Atomic int *bad;
};

static void *worker(void *arg)
{
	struct tctx *c = arg;
	for (;;) {
		tq_task t;
		int k = tq_take(c->q, &t, 1, 0);
		if (k == TQ_EAGAIN) {
			if (atomic_load(c->taken) >= THREADS * PER_THREAD)
				break;
			continue;
		}
		if (k != 1 || tq_ack_later(c->q, &t, 1) != 0) {
			atomic_fetch_add(c->bad, 1);
			break;
		}
		atomic_fetch_add(c->taken, 1);
	}
	return NULL;
}

Test(ack_later, threads_of_one_handle, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tq_queue *q = open_new(name, "alth", 20000);
	_Atomic uint32_t taken = 0;
	_Atomic int bad = 0;
	struct tctx c = {q, &taken, &bad};
	pthread_t th[THREADS];

	push_ints(q, 0, THREADS * PER_THREAD);
	cr_assert_eq(tq_set_take_ahead(q, 16), 0);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, worker, &c), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&bad), 0);
	cr_assert_eq(atomic_load(&taken), THREADS * PER_THREAD);
	cr_assert_eq(tq_ack_flush(q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.acked, THREADS * PER_THREAD);
	cr_assert_eq(s.total.lost, 0);
	cr_assert_eq(s.leased + s.ready, 0);
	tq_close(q);
	tq_destroy(name);
}
