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
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"
#include "util.h"

/* The test build's counts of the calling thread's readings (clock.c). */
int tq__clock_counts(uint64_t out[3]);

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
	uint64_t counts[3];              /* tq__clock_counts over the run */
	int mode;
};

/* The kernel keeps time with the counter here: then the library must too. */
static bool kernel_uses_tsc(void)
{
#if defined(__x86_64__)
	char buf[32] = {0};
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return strcmp(buf, "tsc\n") == 0;
#else
	return false;
#endif
}

/* Reads the clock for RUN_NS between two readings of the kernel's, with a
 * short sleep every 4,096 readings. */
static void *watch(void *arg)
{
	struct verdict *v = arg;
	uint64_t last = 0, end = kernel_ns() + RUN_NS, c0[3];
	(void)tq_now_ns(); /* the thread's first anchor: the counts start after it */
	tq__clock_counts(c0);

	for (;;) {
		uint64_t a = kernel_ns(), x = tq_now_ns(), b = kernel_ns();
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
		if (a > end)
			break;
		if ((v->readings & 4095) == 0) {
			struct timespec ts = {0, (long)((v->readings >> 12) % 5) * 60000};
			nanosleep(&ts, NULL);
		}
	}
	v->mode = tq__clock_counts(v->counts);
	for (int i = 0; i < 3; i++)
		v->counts[i] -= c0[i];
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
	uint64_t ctr = v->counts[0], krn = v->counts[1], rst = v->counts[2];
	cr_assert_eq(ctr + krn, v->readings, "%s: %llu readings, %llu from the counter and %llu from the kernel", who,
		     (unsigned long long)v->readings, (unsigned long long)ctr, (unsigned long long)krn);
	if (kernel_uses_tsc() && v->mode != -2) { /* -2: a build without the counter's path */
		/* The counter serves (anchors every 40 us and every 1,024
		 * readings, after the first 10 ms), and its measure holds: a
		 * wrong scale shows as restarts and readings from the kernel. */
		cr_assert_neq(v->mode, 0, "%s: clock source tsc, yet the library reads the kernel's clock", who);
		cr_assert_gt(ctr * 10, v->readings * 9, "%s: %llu of %llu readings from the counter", who,
			     (unsigned long long)ctr, (unsigned long long)v->readings);
		cr_assert_leq(rst, 2, "%s: the counter's measure restarted %llu times", who, (unsigned long long)rst);
	} else {
		cr_assert_eq(ctr, 0, "%s: no tsc clock source, yet %llu readings from the counter", who,
			     (unsigned long long)ctr);
	}
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
		/* The kernel's reads outside this clock's: k1 - k0 bounds
		 * x1 - x0 however long the test is descheduled between them. */
		uint64_t k0 = kernel_ns(), x0 = tq_now_ns();
		struct timespec ts = {0, 2000000 + i * 100000};
		nanosleep(&ts, NULL);
		uint64_t x1 = tq_now_ns(), k1 = kernel_ns();
		cr_assert_geq(x1 - x0 + 2 * BOUND_NS, (uint64_t)ts.tv_nsec, "slept %ld ns, the clock moved %llu", ts.tv_nsec,
			      (unsigned long long)(x1 - x0));
		cr_assert_leq(x1 - x0, k1 - k0 + 2 * BOUND_NS, "the clock moved %llu ns, the kernel's %llu",
			      (unsigned long long)(x1 - x0), (unsigned long long)(k1 - k0));
	}
}
