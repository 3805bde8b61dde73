/* SPDX-License-Identifier: MIT */
/*
 * runner.c - forks the producers and consumers of one run, times it from the
 * start barrier to the completion of the last task, verifies exactly-once
 * delivery, and cleans named objects up.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <mqueue.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_NS (30ull * 1000000000ull) /* children opened and waiting */
#define RUN_TIMEOUT_NS (30ull * 1000000000ull)   /* start to last child's exit */

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned char bench_rec_tmpl[BENCH_REC_LEN];
char bench_hex2[256][2];
unsigned char bench_unhex[256];

void bench_rec_init(void)
{
	static const char head[] = "{\"id\":\"";
	static const char mid[] = "\",\"op\":\"sum\",\"args\":[1,2,3,4,5,6,7,8],\"pad\":\"";
	static const char tail[] = "\"}";
	_Static_assert(sizeof head - 1 == BENCH_REC_ID_OFF, "id offset");
	_Static_assert(BENCH_REC_ID_OFF + BENCH_REC_ID_WIDTH + sizeof mid - 1 + sizeof tail - 1 <= BENCH_REC_LEN,
		       "template too long");
	unsigned char *p = bench_rec_tmpl;
	memcpy(p, head, BENCH_REC_ID_OFF);
	p += BENCH_REC_ID_OFF;
	memset(p, '0', BENCH_REC_ID_WIDTH);
	p += BENCH_REC_ID_WIDTH;
	memcpy(p, mid, sizeof mid - 1);
	p += sizeof mid - 1;
	size_t pad = (size_t)(bench_rec_tmpl + BENCH_REC_LEN - p) - (sizeof tail - 1);
	memset(p, 'x', pad);
	p += pad;
	memcpy(p, tail, sizeof tail - 1);
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 256; i++) {
		bench_hex2[i][0] = hex[i >> 4];
		bench_hex2[i][1] = hex[i & 15];
		bench_unhex[i] = 16;
	}
	for (int i = 0; i < 16; i++)
		bench_unhex[(unsigned char)hex[i]] = (unsigned char)i;
}

/* ------------------------------------------------------- named objects */

struct named {
	int used;
	enum bench_name_type type;
	char name[BENCH_NAME_LEN + 16];
	char path[BENCH_NAME_LEN + 48]; /* what to unlink() from a signal handler */
};

#define MAX_NAMES 16
static struct named g_names[MAX_NAMES];
static pid_t g_children[BENCH_MAX_PROCS];
static volatile sig_atomic_t g_nchildren;
static pid_t g_parent;

void bench_name_add(enum bench_name_type type, const char *name)
{
	for (int i = 0; i < MAX_NAMES; i++) {
		struct named *n = &g_names[i];
		if (n->used)
			continue;
		n->type = type;
		snprintf(n->name, sizeof n->name, "%s", name);
		const char *bare = name[0] == '/' ? name + 1 : name;
		switch (type) {
		case BENCH_NAME_TASKQ:
			snprintf(n->path, sizeof n->path, "/dev/shm/taskq.%s", bare);
			break;
		case BENCH_NAME_SHM:
			snprintf(n->path, sizeof n->path, "/dev/shm/%s", bare);
			break;
		case BENCH_NAME_SEM:
			snprintf(n->path, sizeof n->path, "/dev/shm/sem.%s", bare);
			break;
		case BENCH_NAME_MQ:
			n->path[0] = 0;
			break;
		}
		n->used = 1;
		return;
	}
}

static void remove_named(const struct named *n)
{
	switch (n->type) {
	case BENCH_NAME_TASKQ:
		tq_destroy(n->name);
		break;
	case BENCH_NAME_SHM:
		shm_unlink(n->name);
		break;
	case BENCH_NAME_SEM:
		sem_unlink(n->name);
		break;
	case BENCH_NAME_MQ:
		mq_unlink(n->name);
		break;
	}
}

void bench_name_del(enum bench_name_type type, const char *name)
{
	for (int i = 0; i < MAX_NAMES; i++) {
		struct named *n = &g_names[i];
		if (n->used && n->type == type && strcmp(n->name, name) == 0) {
			n->used = 0;
			remove_named(n);
		}
	}
}

static void cleanup_at_exit(void)
{
	if (getpid() != g_parent)
		return;
	for (int i = 0; i < MAX_NAMES; i++)
		if (g_names[i].used) {
			g_names[i].used = 0;
			remove_named(&g_names[i]);
		}
}

static void on_fatal_signal(int sig)
{
	for (int i = 0; i < g_nchildren; i++)
		if (g_children[i] > 0)
			kill(g_children[i], SIGKILL);
	for (int i = 0; i < MAX_NAMES; i++) {
		if (!g_names[i].used)
			continue;
		if (g_names[i].type == BENCH_NAME_MQ)
			mq_unlink(g_names[i].name);
		else
			unlink(g_names[i].path);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static volatile sig_atomic_t g_tick;
static const char *volatile g_guard; /* a parent step that must not block */

static void on_alarm(int sig)
{
	(void)sig;
	g_tick = 1;
	const char *what = g_guard;
	if (!what)
		return;
	static const char head[] = "taskq-bench: FATAL: the parent blocked for 10 s in ";
	static const char tail[] = "; giving up\n";
	ssize_t rc = write(2, head, sizeof head - 1);
	rc = write(2, what, strlen(what));
	rc = write(2, tail, sizeof tail - 1);
	(void)rc;
	for (int i = 0; i < g_nchildren; i++)
		if (g_children[i] > 0)
			kill(g_children[i], SIGKILL);
	for (int i = 0; i < MAX_NAMES; i++) {
		if (!g_names[i].used)
			continue;
		if (g_names[i].type == BENCH_NAME_MQ)
			mq_unlink(g_names[i].name);
		else
			unlink(g_names[i].path);
	}
	_exit(1);
}

/* A one-shot 10 s watchdog around a parent step (library calls that could
 * block if the library misbehaves): the bench exits instead of hanging. */
static void guard(const char *what)
{
	struct itimerval it;
	memset(&it, 0, sizeof it);
	g_guard = what;
	if (what)
		it.it_value.tv_sec = 10;
	setitimer(ITIMER_REAL, &it, NULL);
}

void bench_install_handlers(void)
{
	g_parent = getpid();
	atexit(cleanup_at_exit);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_fatal_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
}

static void child_reset_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
}

/* Leftovers: /dev/shm/{taskq.,sem.,}tqbench-<pid>-* and /dev/mqueue/tqbench-<pid>-*
 * of processes that no longer exist. */
static int stale_bench_name(const char *s)
{
	static const char prefix[] = "tqbench-";
	if (strncmp(s, prefix, sizeof prefix - 1) != 0)
		return 0;
	char *end;
	long pid = strtol(s + sizeof prefix - 1, &end, 10);
	if (end == s + sizeof prefix - 1 || *end != '-' || pid <= 0)
		return 0;
	if ((pid_t)pid == getpid())
		return 0;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void bench_cleanup_leftovers(void)
{
	int removed = 0;
	DIR *d = opendir("/dev/shm");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			const char *s = e->d_name;
			char buf[512];
			if (strncmp(s, "taskq.", 6) == 0 && stale_bench_name(s + 6)) {
				if (tq_destroy(s + 6) == 0)
					removed++;
			} else if (strncmp(s, "sem.", 4) == 0 && stale_bench_name(s + 4)) {
				snprintf(buf, sizeof buf, "/%s", s + 4);
				if (sem_unlink(buf) == 0)
					removed++;
			} else if (stale_bench_name(s)) {
				snprintf(buf, sizeof buf, "/%s", s);
				if (shm_unlink(buf) == 0)
					removed++;
			}
		}
		closedir(d);
	}
	d = opendir("/dev/mqueue"); /* only where the mqueue fs is mounted */
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char buf[512];
			if (stale_bench_name(e->d_name)) {
				snprintf(buf, sizeof buf, "/%s", e->d_name);
				if (mq_unlink(buf) == 0)
					removed++;
			}
		}
		closedir(d);
	}
	if (removed)
		fprintf(stderr, "removed %d leftover object(s) of earlier runs\n", removed);
}

/* ------------------------------------------------------------ children */

void bench_child_ready(struct bench_run *r)
{
	atomic_fetch_add(&r->sh->ready, 1);
	while (!atomic_load_explicit(&r->sh->go, memory_order_acquire))
		sched_yield();
}

_Noreturn void bench_child_die(struct bench_run *r, const char *who, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "  [%s] %s (pid %ld): %s\n", r->row->name, who, (long)getpid(), msg);
	_exit(3);
}

int bench_cons_init(struct bench_cons *c, struct bench_run *r, int consumer)
{
	memset(c, 0, sizeof *c);
	c->run = r;
	c->idx = r->row->nprod + consumer;
	c->nprod = (uint64_t)r->row->nprod;
	c->per_prod = r->per_prod;
	c->bits = calloc(r->words, sizeof *c->bits);
	if (!c->bits)
		return -1;
	/* fault the pages in now, not inside the timed region */
	volatile uint64_t *v = c->bits;
	for (size_t i = 0; i < r->words; i += 512)
		v[i] = 0;
	return 0;
}

int bench_consumed(struct bench_run *r, uint64_t k)
{
	uint64_t old = atomic_fetch_add_explicit(&r->sh->consumed, k, memory_order_acq_rel);
	if (old < r->total && old + k >= r->total) {
		atomic_store_explicit(&r->sh->done_ns, bench_now_ns(), memory_order_release);
		return 1;
	}
	return old + k >= r->total;
}

void bench_cons_finish(struct bench_cons *c)
{
	struct bench_run *r = c->run;
	uint64_t dups = c->dups;
	for (size_t w = 0; w < r->words; w++) {
		uint64_t mine = c->bits[w];
		if (!mine)
			continue;
		uint64_t old = atomic_fetch_or_explicit(&r->bitmap[w], mine, memory_order_relaxed);
		dups += (uint64_t)__builtin_popcountll(old & mine);
	}
	atomic_fetch_add(&r->sh->dups, dups);
	atomic_fetch_add(&r->sh->bad, c->bad);
	free(c->bits);
	c->bits = NULL;
}

/* -------------------------------------------------------------- parent */

static const struct bench_ops *ops_for(enum bench_impl impl)
{
	switch (impl) {
	case IMPL_TASKQ:
		return &bench_taskq_ops;
	case IMPL_PIPE:
		return &bench_pipe_ops;
	case IMPL_MQ:
		return &bench_mq_ops;
	case IMPL_SEED:
		return &bench_seed_ops;
	case IMPL_SPSC:
		return &bench_spsc_ops;
	case IMPL_SEQPACKET:
		return &bench_seqpacket_ops;
	case IMPL_TASKQ_LAT:
		return &bench_taskq_lat_ops;
	case IMPL_PIPE_LAT:
		return &bench_pipe_lat_ops;
	case IMPL_TASKQ_IDLE:
		return &bench_taskq_idle_ops;
	}
	return NULL;
}

struct child {
	pid_t pid;
	int done;
	int status;
};

static const char *child_role(const struct bench_run *r, int i, char *buf, size_t len)
{
	if (i < r->row->nprod)
		snprintf(buf, len, "producer %d", i);
	else
		snprintf(buf, len, "consumer %d", i - r->row->nprod);
	return buf;
}

/* Marks a reaped child; returns 1 if it ended abnormally. */
static int note_exit(struct bench_run *r, struct child *ch, int n, pid_t pid, int st,
		     struct bench_result *res)
{
	for (int i = 0; i < n; i++) {
		if (ch[i].pid != pid || ch[i].done)
			continue;
		ch[i].done = 1;
		ch[i].status = st;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			return 0;
		char role[32];
		child_role(r, i, role, sizeof role);
		if (!res->msg[0]) {
			if (WIFSIGNALED(st))
				snprintf(res->msg, sizeof res->msg, "%s (pid %ld) killed by signal %d (%s)",
					 role, (long)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
			else
				snprintf(res->msg, sizeof res->msg, "%s (pid %ld) exited with status %d",
					 role, (long)pid, WEXITSTATUS(st));
		}
		return 1;
	}
	return 0;
}

static void kill_remaining(struct child *ch, int n)
{
	for (int i = 0; i < n; i++)
		if (!ch[i].done)
			kill(ch[i].pid, SIGKILL);
}

static void reap_all(struct child *ch, int n)
{
	for (int i = 0; i < n; i++) {
		if (ch[i].done)
			continue;
		int st;
		while (waitpid(ch[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		ch[i].done = 1;
		ch[i].status = st;
	}
}

static void set_timer(int on)
{
	struct itimerval it;
	memset(&it, 0, sizeof it);
	if (on) {
		it.it_interval.tv_usec = 200000;
		it.it_value.tv_usec = 200000;
	}
	setitimer(ITIMER_REAL, &it, NULL);
}

static void print_progress(struct bench_run *r, int nch)
{
	fprintf(stderr, "  [%s] consumed %llu of %llu;", r->row->name,
		(unsigned long long)atomic_load(&r->sh->consumed), (unsigned long long)r->total);
	for (int i = 0; i < nch; i++) {
		char role[32];
		fprintf(stderr, " %s: %llu%s", child_role(r, i, role, sizeof role),
			(unsigned long long)atomic_load(&r->sh->progress[i].n), i + 1 < nch ? "," : "\n");
	}
}

static void *map_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int verify(struct bench_run *r, struct bench_result *res)
{
	uint64_t missing = 0, first_missing = UINT64_MAX;
	for (size_t w = 0; w < r->words; w++) {
		uint64_t expect = ~UINT64_C(0);
		if (w == r->words - 1 && r->total % 64)
			expect = (UINT64_C(1) << (r->total % 64)) - 1;
		uint64_t got = atomic_load_explicit(&r->bitmap[w], memory_order_relaxed);
		uint64_t miss = expect & ~got;
		if (miss) {
			missing += (uint64_t)__builtin_popcountll(miss);
			if (first_missing == UINT64_MAX)
				first_missing = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(miss);
		}
	}
	uint64_t dups = atomic_load(&r->sh->dups), bad = atomic_load(&r->sh->bad);
	uint64_t consumed = atomic_load(&r->sh->consumed);
	if (!missing && !dups && !bad && consumed == r->total)
		return 0;
	int len = snprintf(res->msg, sizeof res->msg,
			   "exactly-once check failed: %llu of %llu tasks missing, %llu duplicates, "
			   "%llu foreign/corrupt, consumed count %llu",
			   (unsigned long long)missing, (unsigned long long)r->total,
			   (unsigned long long)dups, (unsigned long long)bad,
			   (unsigned long long)consumed);
	if (missing && len > 0 && (size_t)len < sizeof res->msg)
		snprintf(res->msg + len, sizeof res->msg - (size_t)len,
			 "; first missing: producer %llu seq %llu",
			 (unsigned long long)(first_missing / r->per_prod),
			 (unsigned long long)(first_missing % r->per_prod));
	return -1;
}

/* What the children left in shared memory besides the tasks themselves. */
static void collect(struct bench_run *r, struct bench_result *res)
{
	struct bench_shared *sh = r->sh;
	enum bench_impl impl = r->row->impl;
	res->has_futex = impl == IMPL_TASKQ || impl == IMPL_TASKQ_LAT || impl == IMPL_TASKQ_IDLE;
	if (res->has_futex) {
		res->futex_calls = atomic_load(&sh->futex_waits) + atomic_load(&sh->futex_wakes);
		res->futex_per_task = r->total ? (double)res->futex_calls / (double)r->total : 0;
	}
	res->lat_count = atomic_load(&sh->lat_count);
	if (res->lat_count) {
		res->p50_us = bench_lat_quantile(sh->lat_hist, res->lat_count, 0.50) / 1e3;
		res->p99_us = bench_lat_quantile(sh->lat_hist, res->lat_count, 0.99) / 1e3;
		res->max_us = bench_lat_quantile(sh->lat_hist, res->lat_count, 1.0) / 1e3;
		memcpy(res->lat_hist, sh->lat_hist, sizeof res->lat_hist);
	}
	uint64_t wall = atomic_load(&sh->idle_wall_ns);
	if (wall) {
		res->idle_secs = (double)wall / 1e9;
		res->idle_cpu_pct = 100.0 * (double)atomic_load(&sh->idle_cpu_ns) / (double)wall;
		res->idle_futex_per_s = (double)atomic_load(&sh->idle_futex) / res->idle_secs;
	}
}

int bench_run_once(const struct bench_row *row, uint64_t want, double secs, struct bench_result *res)
{
	static unsigned seq;
	const struct bench_ops *ops = ops_for(row->impl);
	struct bench_run r;
	memset(&r, 0, sizeof r);
	memset(res, 0, sizeof *res);
	r.row = row;
	r.fds[0] = r.fds[1] = -1;
	r.secs = secs;
	if (row->mode == MODE_LATENCY && want >= BENCH_LAT_MAX_TASKS)
		want = BENCH_LAT_MAX_TASKS - 1;
	r.per_prod = want / (uint64_t)row->nprod;
	if (r.per_prod == 0)
		r.per_prod = 1;
	r.total = r.per_prod * (uint64_t)row->nprod;
	r.words = (size_t)((r.total + 63) / 64);
	res->total = r.total;
	snprintf(r.name, sizeof r.name, "tqbench-%ld-%u", (long)getpid(), ++seq);

	int nch = row->nprod + row->ncons;
	if (nch > BENCH_MAX_PROCS) {
		snprintf(res->msg, sizeof res->msg, "too many processes");
		return -1;
	}
	r.sh = map_shared(sizeof *r.sh);
	r.bitmap = map_shared(r.words * sizeof(uint64_t));
	if (!r.sh || !r.bitmap) {
		snprintf(res->msg, sizeof res->msg, "mmap of %zu bitmap bytes failed: %s",
			 r.words * sizeof(uint64_t), strerror(errno));
		if (r.sh)
			munmap(r.sh, sizeof *r.sh);
		if (r.bitmap)
			munmap((void *)r.bitmap, r.words * sizeof(uint64_t));
		return -1;
	}
	guard("setup (e.g. tq_create)");
	int setup_rc = ops->setup(&r);
	guard(NULL);
	if (setup_rc != 0) {
		snprintf(res->msg, sizeof res->msg, "setup failed (see above)");
		guard("teardown (e.g. tq_close / tq_destroy)");
		ops->teardown(&r, 0);
		guard(NULL);
		munmap(r.sh, sizeof *r.sh);
		munmap((void *)r.bitmap, r.words * sizeof(uint64_t));
		return -1;
	}

	struct child ch[BENCH_MAX_PROCS];
	memset(ch, 0, sizeof ch);
	int nstarted = 0, failed = 0;
	r.sh->t_base = bench_now_ns();
	fflush(NULL);
	for (int i = 0; i < nch; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			snprintf(res->msg, sizeof res->msg, "fork: %s", strerror(errno));
			failed = 1;
			break;
		}
		if (pid == 0) {
			child_reset_signals();
			int rc = i < row->nprod ? ops->producer(&r, i) : ops->consumer(&r, i - row->nprod);
			_exit(rc);
		}
		ch[i].pid = pid;
		g_children[i] = pid;
		g_nchildren = i + 1;
		nstarted++;
	}
	if (ops->after_fork)
		ops->after_fork(&r);

	/* the start barrier */
	uint64_t t0 = 0, deadline = bench_now_ns() + READY_TIMEOUT_NS;
	while (!failed && atomic_load(&r.sh->ready) < nch) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid > 0 && note_exit(&r, ch, nstarted, pid, st, res)) {
			failed = 1;
			break;
		}
		if (bench_now_ns() > deadline) {
			snprintf(res->msg, sizeof res->msg, "children not ready after %llu s",
				 READY_TIMEOUT_NS / 1000000000ull);
			failed = 1;
			break;
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	if (!failed) {
		t0 = bench_now_ns();
		atomic_store_explicit(&r.sh->go, 1, memory_order_release);
		deadline = t0 + RUN_TIMEOUT_NS;
		int left = nch;
		g_tick = 0;
		set_timer(1);
		while (left > 0) {
			int st;
			pid_t pid = waitpid(-1, &st, 0);
			if (pid > 0) {
				left--;
				if (note_exit(&r, ch, nstarted, pid, st, res)) {
					failed = 1;
					break;
				}
			} else if (errno == ECHILD) {
				break;
			}
			if (bench_now_ns() > deadline) {
				set_timer(0);
				snprintf(res->msg, sizeof res->msg,
					 "HANG: not finished %llu s after the start (details above)",
					 RUN_TIMEOUT_NS / 1000000000ull);
				fprintf(stderr, "  [%s] hang after %llu s:\n", row->name,
					RUN_TIMEOUT_NS / 1000000000ull);
				print_progress(&r, nch);
				if (ops->diagnose) {
					guard("diagnose (e.g. tq_stats_get)");
					ops->diagnose(&r);
					guard(NULL);
				}
				failed = 1;
				break;
			}
		}
		set_timer(0);
	} else {
		/* release the waiting ones so that they notice nothing hangs on us */
		atomic_store(&r.sh->go, 1);
	}
	if (failed)
		kill_remaining(ch, nstarted);
	reap_all(ch, nstarted);
	g_nchildren = 0;

	size_t map_words = r.words; /* what was mapped, if a time-bounded run ends up shorter */
	if (!failed && bench_time_bounded(row)) {
		if (!atomic_load(&r.sh->stopped)) {
			/* every possible task went: the count, not the time, ended it */
		} else {
			r.total = r.per_prod = atomic_load(&r.sh->final_total);
			r.words = (size_t)((r.total + 63) / 64);
			res->total = r.total;
		}
	}
	uint64_t done = atomic_load(&r.sh->done_ns);
	if (!failed) {
		if (done == 0 || done < t0) {
			snprintf(res->msg, sizeof res->msg, "no completion time was recorded");
			failed = 1;
		} else {
			res->secs = (double)(done - t0) / 1e9;
			res->rate = res->secs > 0 ? (double)r.total / res->secs : 0;
		}
	}
	if (!failed && verify(&r, res) != 0)
		failed = 1;
	if (!failed)
		collect(&r, res);
	guard("teardown (e.g. tq_stats_get / tq_close / tq_destroy)");
	ops->teardown(&r, !failed);
	guard(NULL);
	munmap(r.sh, sizeof *r.sh);
	munmap((void *)r.bitmap, map_words * sizeof(uint64_t));
	return failed ? -1 : 0;
}
