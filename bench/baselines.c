/*
 * baselines.c - what taskq is compared with, each 1 producer -> 1 consumer:
 *   pipe, `batch` tasks per write(2) (1 or 64), each 8 bytes or a 100-byte
 *   record (the value, then a fixed 92-byte pattern the consumer checks);
 *   AF_UNIX SOCK_SEQPACKET socket pair, `batch` 8-byte tasks per send(2)
 *   (message boundaries kept: one recv(2) per message);
 *   POSIX message queue, `batch` 8-byte tasks per message (1 or 64;
 *   mq_maxmsg 10, Debian's default limit);
 *   "seed classic": a 10,000-slot int64 ring in POSIX shm guarded by three
 *   named semaphores (empty, full, mutex), one sem_wait/sem_post cycle per task
 *   (classic.c, which tests/test_seed.c shares);
 *   latency: a pipe carrying one stamped task per write, read by a blocking
 *   read(2) of one task (latency.c).
 * The lock-free SPSC ring is in spsc.c.
 */
#include "bench.h"
#include "classic.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t task_size(const struct bench_run *r)
{
	return r->row->size ? r->row->size : sizeof(uint64_t);
}

static size_t row_batch(const struct bench_run *r)
{
	return r->row->batch > BENCH_MAX_BATCH ? BENCH_MAX_BATCH : r->row->batch;
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
	bench_marker_begin(&m, cs);
	for (size_t i = 0; i < k; i++) {
		uint64_t v;
		if (size == sizeof v)
			memcpy(&v, buf + i * sizeof v, sizeof v);
		else if (bench_rec_read(buf + i * size, &v) != 0) {
			m.bad++;
			continue;
		}
		bench_marker_add(&m, v);
	}
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
			memcpy(buf + i * size + 8, bench_rec_pad, sizeof bench_rec_pad);
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
	size_t size = task_size(r), batch = row_batch(r);
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
	size_t size = task_size(r), want = row_batch(r) * size;
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
