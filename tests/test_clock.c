/* SPDX-License-Identifier: MIT */
/*
 * test_clock.c - tq_now_ns(), the clock of every time in a queue (design.md,
 * 20): each reading lies between the kernel's CLOCK_MONOTONIC read just
 * before and just after it (give or take the documented bound), in every
 * thread and in a forked child, readings of one thread never go backwards,
 * and a sleep of the kernel's clock is a sleep of this one.
 *
 * The readings run long enough (well past the 10 ms the counter's scale
 * takes to measure) and sleep now and then, so that both the counter's path
 * and its re-anchoring are exercised wherever the kernel keeps time with it.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"
#include "util.h"

/* design.md, 20: a reading is within this much of the kernel's clock. */
#define BOUND_NS 50000ull
#define RUN_NS 300000000ull

static uint64_t kernel_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct verdict {
	uint64_t readings, backwards, early, late;
	int64_t worst_early, worst_late; /* ns beyond the kernel's bracket */
};

/* Reads the clock for RUN_NS between two readings of the kernel's, with a
 * short sleep every 4,096 readings. */
static void *watch(void *arg)
{
	struct verdict *v = arg;
	uint64_t last = 0, end = kernel_ns() + RUN_NS;

	for (;;) {
		uint64_t a = kernel_ns(), x = tq_now_ns(), b = kernel_ns();
		if (a > end)
			break;
		v->readings++;
		if (x < last)
			v->backwards++;
		last = x;
		if (x + BOUND_NS < a) {
			v->early++;
			if ((int64_t)(a - x) > v->worst_early)
				v->worst_early = (int64_t)(a - x);
		}
		if (x > b + BOUND_NS) {
			v->late++;
			if ((int64_t)(x - b) > v->worst_late)
				v->worst_late = (int64_t)(x - b);
		}
		if ((v->readings & 4095) == 0) {
			struct timespec ts = {0, (long)((v->readings >> 12) % 5) * 60000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void check(const struct verdict *v, const char *who)
{
	cr_assert_gt(v->readings, 1000, "%s: only %llu readings", who, (unsigned long long)v->readings);
	cr_assert_eq(v->backwards, 0, "%s: %llu readings went backwards", who, (unsigned long long)v->backwards);
	cr_assert_eq(v->early, 0, "%s: %llu readings over %llu ns before the kernel's clock (worst %lld ns)", who,
		     (unsigned long long)v->early, (unsigned long long)BOUND_NS, (long long)v->worst_early);
	cr_assert_eq(v->late, 0, "%s: %llu readings over %llu ns after the kernel's clock (worst %lld ns)", who,
		     (unsigned long long)v->late, (unsigned long long)BOUND_NS, (long long)v->worst_late);
}

Test(clock, every_thread_reads_the_kernels_clock, .timeout = 30)
{
	enum { THREADS = 3 };
	pthread_t th[THREADS];
	struct verdict v[THREADS + 1] = {0};

	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, watch, &v[i]), 0);
	watch(&v[THREADS]);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	for (int i = 0; i <= THREADS; i++) {
		char who[32];
		snprintf(who, sizeof who, "thread %d", i);
		check(&v[i], who);
	}
}

/* The child goes on with the anchor and scale of the thread that forked:
 * its readings keep to the kernel's clock too. */
Test(clock, a_forked_child_reads_the_kernels_clock, .timeout = 30)
{
	struct verdict mine = {0};
	watch(&mine); /* the parent's thread is anchored and scaled first */
	check(&mine, "parent");

	int fd[2];
	cr_assert_eq(pipe(fd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct verdict v = {0};
		watch(&v);
		_exit(write(fd[1], &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
	}
	close(fd[1]);
	struct verdict theirs = {0};
	cr_assert_eq(read(fd[0], &theirs, sizeof theirs), (ssize_t)sizeof theirs, "the child sent no verdict");
	close(fd[0]);
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	check(&theirs, "child");
}

Test(clock, a_sleep_passes_on_this_clock_too, .timeout = 30)
{
	for (int i = 0; i < 20; i++) {
		uint64_t x0 = tq_now_ns(), k0 = kernel_ns();
		struct timespec ts = {0, 2000000 + i * 100000};
		nanosleep(&ts, NULL);
		uint64_t x1 = tq_now_ns(), k1 = kernel_ns();
		cr_assert_geq(x1 - x0 + 2 * BOUND_NS, (uint64_t)ts.tv_nsec, "slept %ld ns, the clock moved %llu", ts.tv_nsec,
			      (unsigned long long)(x1 - x0));
		cr_assert_leq(x1 - x0, k1 - k0 + 2 * BOUND_NS, "the clock moved %llu ns, the kernel's %llu",
			      (unsigned long long)(x1 - x0), (unsigned long long)(k1 - k0));
	}
}
