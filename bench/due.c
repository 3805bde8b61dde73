/* SPDX-License-Identifier: MIT */
/*
 * due.c - `taskq-bench --only due`: how late a delayed task is delivered
 * after its due time, in a small queue and a large one. A producer pushes
 * one task at a time with tq_push_delayed (5 ms), carrying its due time; a
 * consumer waits in tq_take and records, for each task, the time it got it
 * minus that due time. The queue sizes differ only in their slots: what a
 * sweep would read (design.md, section 10: the due sweep reads the delayed
 * bitmap, not the slots).
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DUE_TASKS 400
#define DUE_DELAY_NS 5000000ull /* 5 ms */
#define DUE_GAP_NS 3000000ull   /* one pushed every 3 ms: two or so waiting at once */

struct due_shared {
	uint64_t late[DUE_TASKS];
	_Atomic uint32_t got;
	char msg[200];
};

static void due_sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int due_consumer(struct due_shared *sh, const char *name)
{
	tq_queue *q = NULL;
	tq_task t[4];
	int rc = tq_open(name, &q);
	if (rc != 0) {
		snprintf(sh->msg, sizeof sh->msg, "consumer tq_open: %s", tq_strerror(rc));
		return 1;
	}
	uint64_t deadline = bench_now_ns() + 60000000000ull;
	while (atomic_load(&sh->got) < DUE_TASKS && bench_now_ns() < deadline) {
		int k = tq_take(q, t, 4, 100000000ull);
		uint64_t now = tq_now_ns();
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k < 0) {
			snprintf(sh->msg, sizeof sh->msg, "tq_take: %s", tq_strerror(k));
			return 1;
		}
		for (int i = 0; i < k; i++) {
			uint32_t n = atomic_load(&sh->got);
			if (n < DUE_TASKS)
				sh->late[n] = now > t[i].value ? now - t[i].value : 0;
			atomic_store(&sh->got, n + 1);
		}
		if ((rc = tq_ack(q, t, (uint32_t)k)) != 0) {
			snprintf(sh->msg, sizeof sh->msg, "tq_ack: %s", tq_strerror(rc));
			return 1;
		}
	}
	tq_close(q);
	return atomic_load(&sh->got) == DUE_TASKS ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One queue: returns 0 and the lateness percentiles (ns), or -1. */
static int due_one(uint32_t capacity, uint64_t *p50, uint64_t *p99, uint64_t *max)
{
	char name[BENCH_NAME_LEN];
	tq_config cfg;
	tq_queue *q = NULL;
	int rc = -1;

	snprintf(name, sizeof name, "tqbench-%ld-due-%u", (long)getpid(), capacity);
	tq_config_init(&cfg);
	cfg.capacity = capacity;
	cfg.max_payload = 0;
	int e = tq_create(name, &cfg, &q);
	if (e != 0) {
		fprintf(stderr, "taskq-bench: due: tq_create(capacity %u): %s\n", capacity, tq_strerror(e));
		return -1;
	}
	bench_name_add(BENCH_NAME_TASKQ, name);
	struct due_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		fprintf(stderr, "taskq-bench: due: mmap: %s\n", strerror(errno));
		goto out_q;
	}
	memset(sh, 0, sizeof *sh);
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "taskq-bench: due: fork: %s\n", strerror(errno));
		goto out_sh;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(99);
		_exit(due_consumer(sh, name));
	}
	due_sleep_ns(50000000ull); /* the consumer asleep in tq_take */
	for (uint32_t i = 0; i < DUE_TASKS; i++) {
		tq_task t = {.kind = TQ_KIND_INT, .value = tq_now_ns() + DUE_DELAY_NS};
		e = tq_push_delayed(q, &t, 1, DUE_DELAY_NS, 1000000000ull);
		if (e != 1) {
			fprintf(stderr, "taskq-bench: due: tq_push_delayed: %s\n", e < 0 ? tq_strerror(e) : "none");
			kill(pid, SIGKILL);
			break;
		}
		due_sleep_ns(DUE_GAP_NS);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "taskq-bench: due: the consumer failed (%s)\n", sh->msg[0] ? sh->msg : "status");
		goto out_sh;
	}
	qsort(sh->late, DUE_TASKS, sizeof sh->late[0], cmp_u64);
	*p50 = sh->late[DUE_TASKS / 2];
	*p99 = sh->late[DUE_TASKS * 99 / 100];
	*max = sh->late[DUE_TASKS - 1];
	rc = 0;
out_sh:
	munmap(sh, sizeof *sh);
out_q:
	tq_close(q);
	tq_destroy(name);
	bench_name_del(BENCH_NAME_TASKQ, name);
	return rc;
}

int bench_due_run(void)
{
	static const uint32_t caps[] = {10000, 1000000};
	uint64_t p50[2], p99[2], mx[2];
	int bad = 0;

	for (int i = 0; i < 2; i++)
		if (due_one(caps[i], &p50[i], &p99[i], &mx[i]) != 0)
			bad = 1;
	if (bad)
		return 1;
	printf("due: %d tasks pushed one at a time with tq_push_delayed (%llu ms), one every %llu ms; a\n"
	       "consumer waits in tq_take; lateness = the time it got a task - its due time\n\n",
	       DUE_TASKS, (unsigned long long)(DUE_DELAY_NS / 1000000), (unsigned long long)(DUE_GAP_NS / 1000000));
	printf("%-22s %12s %12s %12s\n", "queue", "p50 (us)", "p99 (us)", "max (us)");
	for (int i = 0; i < 2; i++)
		printf("capacity %-13u %12.1f %12.1f %12.1f\n", caps[i], (double)p50[i] / 1e3, (double)p99[i] / 1e3,
		       (double)mx[i] / 1e3);
	return 0;
}
