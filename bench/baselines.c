/* SPDX-License-Identifier: MIT */
/*
 * baselines.c - what taskq is compared with, each 1 producer -> 1 consumer:
 *   pipe, `batch` tasks per write(2) (1 or 64), each 8 bytes or a 100-byte
 *   record (the JSON text of taskq's JSON row, bench.h: the value in
 *   hex digits, every byte checked by the consumer);
 *   AF_UNIX SOCK_SEQPACKET socket pair, `batch` 8-byte tasks per send(2)
 *   (message boundaries kept: one recv(2) per message);
 *   POSIX message queue, `batch` 8-byte tasks per message (1 or 64;
 *   mq_maxmsg 10, Debian's default limit);
 *   "seed classic": a 10,000-slot int64 ring in POSIX shm guarded by three
 *   named semaphores (empty, full, mutex), one sem_wait/sem_post cycle per task
 *   (classic.c, which tests/test_seed.c shares);
 *   latency: a pipe carrying one stamped task per write, read by a blocking
 *   read(2) of one task (latency.c).
 * The lock-free SPSC ring is in spsc.c. At the end: the wedge mode
 * (`--only wedge`), the seed's ring and taskq when a consumer is killed.
 */
#include "bench.h"
#include "classic.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t task_size(const struct bench_run *r)
{
	return r->row->size ? r->row->size : sizeof(uint64_t);
}

static size_t row_batch(const struct bench_run *r)
{
	return r->row->batch > BENCH_MAX_BATCH ? BENCH_MAX_BATCH : r->row->batch;
}

/* The pipe's batch: its buffers are allocated, so up to BENCH_PIPE_MAX_BATCH. */
static size_t pipe_batch(const struct bench_run *r)
{
	return r->row->batch > BENCH_PIPE_MAX_BATCH ? BENCH_PIPE_MAX_BATCH : r->row->batch;
}

/* Fills task i of a batch buffer with value v (8 bytes, or a record). */
static inline void put_task(unsigned char *buf, size_t size, size_t i, uint64_t v)
{
	if (size == sizeof v)
		memcpy(buf + i * sizeof v, &v, sizeof v);
	else
		bench_rec_fill(buf + i * size, v);
}

/* Marks the k tasks of a buffer; a damaged record counts as corrupt. */
static void mark_tasks(struct bench_cons *cs, const unsigned char *buf, size_t size, size_t k)
{
	struct bench_marker m;
	uint64_t vals[BENCH_PIPE_MAX_BATCH];
	size_t nv = 0;
	bench_marker_begin(&m, cs);
	for (size_t i = 0; i < k; i++) {
		if (size == sizeof vals[0])
			memcpy(&vals[nv], buf + i * sizeof vals[0], sizeof vals[0]);
		else if (bench_rec_read(buf + i * size, &vals[nv]) != 0) {
			m.bad++;
			continue;
		}
		if (++nv == BENCH_PIPE_MAX_BATCH) {
			bench_marker_add_run(&m, vals, nv);
			nv = 0;
		}
	}
	bench_marker_add_run(&m, vals, nv);
	bench_marker_end(&m, cs);
}

/* A batch buffer with every record's pattern in place. */
static unsigned char *batch_buf(struct bench_run *r, const char *who, size_t size, size_t batch)
{
	unsigned char *buf = malloc(size * batch);
	if (!buf)
		bench_child_die(r, who, "out of memory");
	for (size_t i = 0; i < batch; i++)
		if (size != sizeof(uint64_t))
			memcpy(buf + i * size, bench_rec_tmpl, BENCH_REC_LEN);
	return buf;
}

static void write_all(struct bench_run *r, int fd, const void *data, size_t len)
{
	const char *b = data;
	while (len > 0) {
		ssize_t w = write(fd, b, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			bench_child_die(r, "producer", "write: %s", strerror(errno));
		b += w;
		len -= (size_t)w;
	}
}

/* ------------------------------------------------------------------ pipe */

static int pipe_setup(struct bench_run *r)
{
	if (pipe(r->fds) != 0) {
		fprintf(stderr, "  [%s] pipe: %s\n", r->row->name, strerror(errno));
		return -1;
	}
	return 0;
}

static void pipe_close_all(struct bench_run *r)
{
	for (int i = 0; i < 2; i++)
		if (r->fds[i] >= 0) {
			close(r->fds[i]);
			r->fds[i] = -1;
		}
}

static int pipe_producer(struct bench_run *r, int p)
{
	close(r->fds[0]);
	int fd = r->fds[1];
	size_t size = task_size(r), batch = pipe_batch(r);
	unsigned char *buf = batch_buf(r, "producer", size, batch);
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	bench_child_ready(r);
	for (uint64_t s = 0; s < per;) {
		size_t n = per - s < batch ? (size_t)(per - s) : batch;
		for (size_t i = 0; i < n; i++)
			put_task(buf, size, i, base | (s + i));
		write_all(r, fd, buf, n * size);
		s += n;
		bench_progress(r, p, s);
	}
	close(fd);
	free(buf);
	return 0;
}

static int pipe_consumer(struct bench_run *r, int c)
{
	close(r->fds[1]);
	int fd = r->fds[0];
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, "consumer", "out of memory");
	size_t size = task_size(r), want = pipe_batch(r) * size;
	unsigned char *buf = malloc(want);
	if (!buf)
		bench_child_die(r, "consumer", "out of memory");
	size_t have = 0; /* bytes of an incomplete task at the start of buf */
	bench_child_ready(r);
	while (cs.count < r->total) {
		ssize_t n = read(fd, buf + have, want - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_child_die(r, "consumer", "read: %s", strerror(errno));
		if (n == 0)
			bench_child_die(r, "consumer", "EOF after %llu of %llu tasks",
					(unsigned long long)cs.count, (unsigned long long)r->total);
		have += (size_t)n;
		size_t k = have / size;
		mark_tasks(&cs, buf, size, k);
		cs.count += k;
		have -= k * size;
		if (have)
			memmove(buf, buf + k * size, have);
		bench_progress(r, cs.idx, cs.count);
	}
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	free(buf);
	close(fd);
	return 0;
}

static void pipe_teardown(struct bench_run *r, int ok)
{
	(void)ok;
	pipe_close_all(r);
}

const struct bench_ops bench_pipe_ops = {
	.setup = pipe_setup,
	.after_fork = pipe_close_all, /* so that EOF reaches a consumer whose producer died */
	.producer = pipe_producer,
	.consumer = pipe_consumer,
	.diagnose = NULL,
	.teardown = pipe_teardown,
};

/* --------------------------------------------------------- pipe latency */

static int pipe_lat_producer(struct bench_run *r, int p)
{
	(void)p;
	close(r->fds[0]);
	int fd = r->fds[1];
	struct bench_pacer pc;
	bench_child_ready(r);
	bench_pacer_init(&pc, r);
	for (uint64_t s = 0; s < r->per_prod; s++) {
		uint64_t v;
		if (bench_pacer_next(&pc, s, &v))
			break;
		write_all(r, fd, &v, sizeof v);
		if ((s & 255) == 0)
			bench_progress(r, 0, s);
	}
	close(fd); /* the consumer sees EOF, if it waits for more */
	return 0;
}

static int pipe_lat_consumer(struct bench_run *r, int c)
{
	close(r->fds[1]);
	int fd = r->fds[0];
	struct bench_cons cs;
	struct bench_lat lat;
	if (bench_cons_init(&cs, r, c) != 0 || bench_lat_init(&lat, &cs) != 0)
		bench_child_die(r, "consumer", "out of memory");
	unsigned char buf[sizeof(uint64_t)];
	size_t have = 0;
	bench_child_ready(r);
	while (bench_lat_more(&lat)) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_child_die(r, "consumer", "read: %s", strerror(errno));
		if (n == 0 && have == 0 && !bench_lat_more(&lat))
			break; /* the producer stopped and we have everything */
		if (n == 0)
			bench_child_die(r, "consumer", "EOF after %llu of %llu tasks",
					(unsigned long long)cs.count, (unsigned long long)r->total);
		uint64_t now = bench_now_ns();
		have += (size_t)n;
		if (have < sizeof buf)
			continue;
		uint64_t v;
		memcpy(&v, buf, sizeof v);
		have = 0;
		bench_lat_take(&lat, v, now);
		if ((cs.count & 255) == 0)
			bench_progress(r, cs.idx, cs.count);
	}
	bench_lat_finish(&lat);
	bench_cons_finish(&cs);
	close(fd);
	return 0;
}

const struct bench_ops bench_pipe_lat_ops = {
	.setup = pipe_setup,
	.after_fork = pipe_close_all,
	.producer = pipe_lat_producer,
	.consumer = pipe_lat_consumer,
	.diagnose = NULL,
	.teardown = pipe_teardown,
};

/* ------------------------------------------------------- unix seqpacket */

static int seqpacket_setup(struct bench_run *r)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, r->fds) != 0) {
		fprintf(stderr, "  [%s] socketpair: %s\n", r->row->name, strerror(errno));
		return -1;
	}
	return 0;
}

static int seqpacket_producer(struct bench_run *r, int p)
{
	close(r->fds[1]);
	int fd = r->fds[0];
	size_t batch = row_batch(r);
	uint64_t buf[BENCH_MAX_BATCH];
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	bench_child_ready(r);
	for (uint64_t s = 0; s < per;) {
		size_t n = per - s < batch ? (size_t)(per - s) : batch;
		for (size_t i = 0; i < n; i++)
			buf[i] = base | (s + i);
		ssize_t w;
		while ((w = send(fd, buf, n * sizeof buf[0], 0)) < 0 && errno == EINTR)
			;
		if (w != (ssize_t)(n * sizeof buf[0]))
			bench_child_die(r, "producer", "send: %zd %s", w, w < 0 ? strerror(errno) : "");
		s += n;
		bench_progress(r, p, s);
	}
	close(fd);
	return 0;
}

static int seqpacket_consumer(struct bench_run *r, int c)
{
	close(r->fds[0]);
	int fd = r->fds[1];
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, "consumer", "out of memory");
	uint64_t buf[BENCH_MAX_BATCH];
	bench_child_ready(r);
	while (cs.count < r->total) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_child_die(r, "consumer", "recv: %s", strerror(errno));
		if (n == 0)
			bench_child_die(r, "consumer", "EOF after %llu of %llu tasks",
					(unsigned long long)cs.count, (unsigned long long)r->total);
		if (n % (ssize_t)sizeof buf[0] != 0)
			bench_child_die(r, "consumer", "a message of %zd bytes", n);
		size_t k = (size_t)n / sizeof buf[0];
		mark_tasks(&cs, (const unsigned char *)buf, sizeof buf[0], k);
		cs.count += k;
		bench_progress(r, cs.idx, cs.count);
	}
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	close(fd);
	return 0;
}

const struct bench_ops bench_seqpacket_ops = {
	.setup = seqpacket_setup,
	.after_fork = pipe_close_all, /* EOF reaches a consumer whose producer died */
	.producer = seqpacket_producer,
	.consumer = seqpacket_consumer,
	.diagnose = NULL,
	.teardown = pipe_teardown,
};

/* ------------------------------------------------------------- POSIX mq */

static int mq_setup(struct bench_run *r)
{
	snprintf(r->objname[0], sizeof r->objname[0], "/%s-mq", r->name);
	struct mq_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.mq_maxmsg = 10; /* Debian's default limit (fs.mqueue.msg_max) */
	attr.mq_msgsize = (long)(row_batch(r) * sizeof(uint64_t));
	mqd_t q = mq_open(r->objname[0], O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
	if (q == (mqd_t)-1) {
		fprintf(stderr, "  [%s] mq_open(%s): %s\n", r->row->name, r->objname[0], strerror(errno));
		return -1;
	}
	mq_close(q);
	bench_name_add(BENCH_NAME_MQ, r->objname[0]);
	return 0;
}

static int mq_producer(struct bench_run *r, int p)
{
	mqd_t q = mq_open(r->objname[0], O_WRONLY);
	if (q == (mqd_t)-1)
		bench_child_die(r, "producer", "mq_open: %s", strerror(errno));
	size_t batch = row_batch(r);
	uint64_t buf[BENCH_MAX_BATCH];
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	bench_child_ready(r);
	for (uint64_t s = 0; s < per;) {
		size_t n = per - s < batch ? (size_t)(per - s) : batch;
		for (size_t i = 0; i < n; i++)
			buf[i] = base | (s + i);
		while (mq_send(q, (const char *)buf, n * sizeof buf[0], 0) != 0)
			if (errno != EINTR)
				bench_child_die(r, "producer", "mq_send: %s", strerror(errno));
		uint64_t before = s;
		s += n;
		if ((s >> 10) != (before >> 10) || s == per)
			bench_progress(r, p, s);
	}
	mq_close(q);
	return 0;
}

static int mq_consumer(struct bench_run *r, int c)
{
	mqd_t q = mq_open(r->objname[0], O_RDONLY);
	if (q == (mqd_t)-1)
		bench_child_die(r, "consumer", "mq_open: %s", strerror(errno));
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, "consumer", "out of memory");
	uint64_t buf[BENCH_MAX_BATCH];
	size_t msgsize = row_batch(r) * sizeof buf[0];
	bench_child_ready(r);
	while (cs.count < r->total) {
		ssize_t n = mq_receive(q, (char *)buf, msgsize, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || n % (ssize_t)sizeof buf[0] != 0)
			bench_child_die(r, "consumer", "mq_receive: %zd %s", n, n < 0 ? strerror(errno) : "");
		size_t k = (size_t)n / sizeof buf[0];
		mark_tasks(&cs, (const unsigned char *)buf, sizeof buf[0], k);
		uint64_t before = cs.count;
		cs.count += k;
		if ((cs.count >> 10) != (before >> 10))
			bench_progress(r, cs.idx, cs.count);
	}
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	mq_close(q);
	return 0;
}

static void mq_teardown(struct bench_run *r, int ok)
{
	(void)ok;
	if (r->objname[0][0])
		bench_name_del(BENCH_NAME_MQ, r->objname[0]);
}

const struct bench_ops bench_mq_ops = {
	.setup = mq_setup,
	.after_fork = NULL,
	.producer = mq_producer,
	.consumer = mq_consumer,
	.diagnose = NULL,
	.teardown = mq_teardown,
};

/* ----------------------------------------------------------- seed classic */

/* The ring itself is in classic.c, shared with tests/test_seed.c. */

static int seed_setup(struct bench_run *r)
{
	char err[256];
	for (int i = 0; i < CLASSIC_NOBJ; i++)
		if (classic_name(r->objname[i], sizeof r->objname[i], r->name, (enum classic_obj)i) != 0) {
			fprintf(stderr, "  [%s] name too long: %s\n", r->row->name, r->name);
			return -1;
		}
	int rc = classic_create(r->name, err, sizeof err);
	/* registered even on failure: teardown and the exit cleanup remove them */
	bench_name_add(BENCH_NAME_SHM, r->objname[CLASSIC_SHM]);
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++)
		bench_name_add(BENCH_NAME_SEM, r->objname[i]);
	if (rc != 0) {
		fprintf(stderr, "  [%s] %s\n", r->row->name, err);
		return -1;
	}
	return 0;
}

static void seed_open(struct bench_run *r, const char *who, struct classic *h)
{
	char err[256];
	if (classic_open(h, r->name, err, sizeof err) != 0)
		bench_child_die(r, who, "%s", err);
}

static int seed_producer(struct bench_run *r, int p)
{
	struct classic h;
	seed_open(r, "producer", &h);
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	bench_child_ready(r);
	for (uint64_t s = 0; s < per; s++) {
		if (classic_push(&h, (int64_t)(base | s)) != 0)
			bench_child_die(r, "producer", "sem_wait: %s", strerror(errno));
		if ((s & 1023) == 0)
			bench_progress(r, p, s);
	}
	bench_progress(r, p, per);
	classic_close(&h);
	return 0;
}

static int seed_consumer(struct bench_run *r, int c)
{
	struct classic h;
	seed_open(r, "consumer", &h);
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, "consumer", "out of memory");
	bench_child_ready(r);
	while (cs.count < r->total) {
		int64_t v;
		if (classic_pop(&h, &v) != 0)
			bench_child_die(r, "consumer", "sem_wait: %s", strerror(errno));
		bench_mark(&cs, (uint64_t)v);
		cs.count++;
		if ((cs.count & 1023) == 0)
			bench_progress(r, cs.idx, cs.count);
	}
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	classic_close(&h);
	return 0;
}

static void seed_teardown(struct bench_run *r, int ok)
{
	(void)ok;
	if (r->objname[CLASSIC_SHM][0])
		bench_name_del(BENCH_NAME_SHM, r->objname[CLASSIC_SHM]);
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++)
		if (r->objname[i][0])
			bench_name_del(BENCH_NAME_SEM, r->objname[i]);
}

const struct bench_ops bench_seed_ops = {
	.setup = seed_setup,
	.after_fork = NULL,
	.producer = seed_producer,
	.consumer = seed_consumer,
	.diagnose = NULL,
	.teardown = seed_teardown,
};

/* ------------------------------------------------------------------ wedge */

/*
 * `taskq-bench --only wedge`: one producer and two consumers on the seed's
 * ring, then on a taskq queue of the same size; after a second, one
 * consumer stops itself while it holds the seed's sem_mutex (on taskq: a
 * batch of leases) and is killed there with SIGKILL. Printed: the tasks
 * the consumers delivered in the second before the kill and in the second
 * after it. (tests/test_seed.c asserts the same, docs/seed.md says why.)
 */

#define WEDGE_PROCS 3 /* 0: the producer; 1: the consumer killed; 2: the other consumer */

struct wedge_shared {
	_Atomic uint64_t delivered; /* by the consumers */
	_Atomic int kill_now;       /* the victim stops at its next chance */
	_Atomic int stop;           /* taskq producer: stop pushing */
	char msg[256];
};

struct wedge_classic_me {
	struct wedge_shared *sh;
	int victim;
};

/* Runs holding sem_mutex after each pop. */
static void wedge_classic_inside(void *arg)
{
	struct wedge_classic_me *me = arg;
	atomic_fetch_add_explicit(&me->sh->delivered, 1, memory_order_relaxed);
	if (me->victim && atomic_load_explicit(&me->sh->kill_now, memory_order_relaxed))
		raise(SIGSTOP); /* holding sem_mutex; the parent kills us here */
}

static int wedge_classic_child(struct wedge_shared *sh, const char *base, int idx)
{
	struct classic h;
	char err[200];
	if (classic_open(&h, base, err, sizeof err) != 0) {
		snprintf(sh->msg, sizeof sh->msg, "seed classic: %s", err);
		return 2;
	}
	struct wedge_classic_me me = {sh, idx == 1};
	if (idx > 0) {
		h.inside = wedge_classic_inside;
		h.arg = &me;
	}
	for (int64_t s = 0;; s++) {
		int64_t v;
		if ((idx == 0 ? classic_push(&h, s) : classic_pop(&h, &v)) != 0) {
			snprintf(sh->msg, sizeof sh->msg, "seed classic: sem_wait: %s", strerror(errno));
			return 3;
		}
	}
}

static int wedge_taskq_child(struct wedge_shared *sh, const char *name, int idx)
{
	tq_queue *q = NULL;
	int rc = tq_open(name, &q);
	if (rc != 0) {
		snprintf(sh->msg, sizeof sh->msg, "taskq: tq_open: %s", tq_strerror(rc));
		return 2;
	}
	tq_task t[BENCH_MAX_BATCH];
	uint64_t s = 0;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		if (idx == 0) {
			for (size_t i = 0; i < BENCH_MAX_BATCH; i++)
				t[i] = (tq_task){.kind = TQ_KIND_INT, .value = s++};
			rc = tq_push(q, t, BENCH_MAX_BATCH, 50000000ull);
			if (rc < 0 && rc != TQ_ETIMEDOUT) {
				snprintf(sh->msg, sizeof sh->msg, "taskq: tq_push: %s", tq_strerror(rc));
				return 3;
			}
			continue;
		}
		int n = tq_take(q, t, BENCH_MAX_BATCH, 50000000ull);
		if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
			continue;
		if (n < 0) {
			snprintf(sh->msg, sizeof sh->msg, "taskq: tq_take: %s", tq_strerror(n));
			return 3;
		}
		if (idx == 1 && atomic_load_explicit(&sh->kill_now, memory_order_relaxed))
			raise(SIGSTOP); /* holding n leases; the parent kills us here */
		if ((rc = tq_ack(q, t, (size_t)n)) != 0) {
			snprintf(sh->msg, sizeof sh->msg, "taskq: tq_ack: %s", tq_strerror(rc));
			return 3;
		}
		atomic_fetch_add_explicit(&sh->delivered, (uint64_t)n, memory_order_relaxed);
	}
	tq_close(q);
	return 0;
}

static void wedge_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One design: forks the three, measures, kills them all. 0, or -1 with a
 * message on stderr. */
static int wedge_one(int taskq, const char *name, uint64_t *before, uint64_t *after)
{
	struct wedge_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		fprintf(stderr, "taskq-bench: wedge: mmap: %s\n", strerror(errno));
		return -1;
	}
	pid_t pid[WEDGE_PROCS] = {0};
	pid_t parent = getpid();
	int rc = -1;
	for (int i = WEDGE_PROCS - 1; i >= 0; i--) {
		fflush(NULL);
		pid[i] = fork();
		if (pid[i] < 0) {
			fprintf(stderr, "taskq-bench: wedge: fork: %s\n", strerror(errno));
			goto out;
		}
		if (pid[i] == 0) {
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGHUP, SIG_DFL);
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
				_exit(99);
			_exit(taskq ? wedge_taskq_child(sh, name, i) : wedge_classic_child(sh, name, i));
		}
	}
	wedge_sleep_ms(1000);
	uint64_t d0 = atomic_load(&sh->delivered);
	atomic_store(&sh->kill_now, 1);
	/* the victim stops itself at its next chance; then it is killed there */
	uint64_t deadline = bench_now_ns() + 10000000000ull;
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid[1], &st, WNOHANG | WUNTRACED);
		if (r == pid[1] && WIFSTOPPED(st))
			break;
		if (r == pid[1] || bench_now_ns() > deadline) {
			if (r == pid[1])
				pid[1] = 0;
			fprintf(stderr, "taskq-bench: wedge: the consumer to kill did not stop (%s)\n",
				sh->msg[0] ? sh->msg : "in 10 s");
			goto out;
		}
		wedge_sleep_ms(1);
	}
	kill(pid[1], SIGKILL);
	uint64_t d1 = atomic_load(&sh->delivered);
	waitpid(pid[1], &st, 0);
	pid[1] = 0;
	wedge_sleep_ms(1000);
	uint64_t d2 = atomic_load(&sh->delivered);
	*before = d0; /* the first second, until kill_now */
	*after = d2 - d1;
	rc = 0;
	if (sh->msg[0]) {
		fprintf(stderr, "taskq-bench: wedge: %s\n", sh->msg);
		rc = -1;
	}
out:
	atomic_store(&sh->stop, 1);
	for (int i = 0; i < WEDGE_PROCS; i++)
		if (pid[i] > 0) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], NULL, 0);
		}
	munmap(sh, sizeof *sh);
	return rc;
}

int bench_wedge_run(void)
{
	char base[BENCH_NAME_LEN], objname[CLASSIC_NOBJ][CLASSIC_NAME_MAX], err[256];
	uint64_t before[2] = {0, 0}, after[2] = {0, 0};
	int bad = 0;

	/* the seed's ring */
	snprintf(base, sizeof base, "tqbench-%ld-wedge-seed", (long)getpid());
	for (int i = 0; i < CLASSIC_NOBJ; i++)
		(void)classic_name(objname[i], sizeof objname[i], base, (enum classic_obj)i);
	int rc = classic_create(base, err, sizeof err);
	bench_name_add(BENCH_NAME_SHM, objname[CLASSIC_SHM]);
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++)
		bench_name_add(BENCH_NAME_SEM, objname[i]);
	if (rc != 0) {
		fprintf(stderr, "taskq-bench: wedge: %s\n", err);
		bad = 1;
	} else if (wedge_one(0, base, &before[0], &after[0]) != 0)
		bad = 1;
	bench_name_del(BENCH_NAME_SHM, objname[CLASSIC_SHM]);
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++)
		bench_name_del(BENCH_NAME_SEM, objname[i]);

	/* taskq, a queue of the same size */
	snprintf(base, sizeof base, "tqbench-%ld-wedge-taskq", (long)getpid());
	tq_config cfg;
	tq_config_init(&cfg);
	cfg.capacity = CLASSIC_SLOTS;
	cfg.max_payload = 0;
	cfg.lease_ns = 60ull * 1000000000ull; /* the kill, not an expiry, returns the leases */
	tq_queue *q = NULL;
	rc = tq_create(base, &cfg, &q);
	if (rc != 0) {
		fprintf(stderr, "taskq-bench: wedge: tq_create: %s\n", tq_strerror(rc));
		bad = 1;
	} else {
		bench_name_add(BENCH_NAME_TASKQ, base);
		tq_close(q);
		if (wedge_one(1, base, &before[1], &after[1]) != 0)
			bad = 1;
		bench_name_del(BENCH_NAME_TASKQ, base);
	}

	printf("wedge: 1 producer, 2 consumers; after 1 s one consumer is killed with SIGKILL while it\n"
	       "holds the lock (the seed: sem_mutex) or a batch of leases (taskq)\n\n");
	printf("%-14s %22s %22s\n", "", "delivered 1 s before", "delivered 1 s after");
	printf("%-14s %22llu %22llu\n", "seed classic", (unsigned long long)before[0],
	       (unsigned long long)after[0]);
	printf("%-14s %22llu %22llu\n", "taskq", (unsigned long long)before[1], (unsigned long long)after[1]);
	return bad;
}
