/* SPDX-License-Identifier: MIT */
/*
 * bench_taskq.c - the libtaskq rows: integer tasks and 100-byte JSON payloads,
 * pushed and taken in batches, every task acked (leases on); one stamped task
 * at a time for latency (latency.c); a consumer waiting on an empty queue.
 *
 * Every child reads tq_sys_counts_get() after it opened the queue and again
 * when its part of the run is over, and adds the difference (futex waits and
 * wakes the library made for it) to the run's shared totals: a forked child
 * inherits the parent's counts, hence the difference.
 */
#include "bench.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define TAKE_TIMEOUT_NS (10ull * 1000000ull) /* consumers notice the end within 10 ms */
/* A JSON task's payload is the 100-byte record every 100-byte row carries
 * (bench.h): the same JSON text, built and checked by the same code. */
static int json_parse(const tq_task *t, uint64_t *out)
{
	if (t->kind != TQ_KIND_JSON || t->len != BENCH_JSON_LEN || !t->data)
		return -1;
	return bench_rec_read(t->data, out);
}

/* The stats reader: what a monitor (taskq top, taskq serve) does. With
 * STATS_SPIN, the control: a thread as busy, that never reads the queue,
 * so that a row with it measures what a third busy thread costs on this
 * machine's cores, and the reader's row what its reads cost beyond that. */
static void *stats_reader(void *arg)
{
	struct bench_run *r = arg;
	tq_stats st;
	long gap_ns = r->row->stats_hz > 0 ? 1000000000l / r->row->stats_hz : 0;
	bool spin = r->row->stats_hz == STATS_SPIN;

	while (!atomic_load(&r->reader_stop)) {
		if (spin) {
			/* busy, touching nothing shared */
			for (volatile int i = 0; i < 200; i++)
				;
		} else {
			tq_stats_get(r->q, &st);
		}
		atomic_fetch_add(&r->reads, 1);
		if (gap_ns) {
			struct timespec ts = {0, gap_ns};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static int tq_setup(struct bench_run *r)
{
	tq_config cfg;
	tq_config_init(&cfg);
	cfg.capacity = r->row->capacity ? r->row->capacity : 10000; /* the seed's ring size */
	if (r->row->json)
		cfg.max_payload = 128;
	int rc = tq_create(r->name, &cfg, &r->q);
	if (rc != 0) {
		fprintf(stderr, "  [%s] tq_create(%s): %s\n", r->row->name, r->name, tq_strerror(rc));
		r->q = NULL;
		return -1;
	}
	bench_name_add(BENCH_NAME_TASKQ, r->name);
	atomic_store(&r->reader_stop, 0);
	atomic_store(&r->reads, 0);
	if (r->row->stats_hz && pthread_create(&r->reader, NULL, stats_reader, r) != 0) {
		fprintf(stderr, "  [%s] cannot start the stats reader\n", r->row->name);
		return -1;
	}
	return 0;
}

static tq_queue *child_open(struct bench_run *r, const char *who)
{
	tq_queue *q = NULL;
	int rc = tq_open(r->name, &q);
	if (rc != 0)
		bench_child_die(r, who, "tq_open(%s): %s", r->name, tq_strerror(rc));
	return q;
}

/* Adds the futex calls made since *since to the run's totals; returns their sum. */
static uint64_t futex_report(struct bench_run *r, const tq_sys_counts *since)
{
	tq_sys_counts now;
	tq_sys_counts_get(&now);
	uint64_t w = now.futex_waits - since->futex_waits, k = now.futex_wakes - since->futex_wakes;
	atomic_fetch_add(&r->sh->futex_waits, w);
	atomic_fetch_add(&r->sh->futex_wakes, k);
	return w + k;
}

static void close_or_die(struct bench_run *r, const char *who, tq_queue *q)
{
	int rc = tq_close(q);
	if (rc != 0)
		bench_child_die(r, who, "tq_close: %s", tq_strerror(rc));
}

/* Pushes n tasks, waiting while the queue is full: vals[0..n) with
 * tq_push_ints (rows with .ints), else t[0..n) with tq_push. */
static void push_all(struct bench_run *r, tq_queue *q, tq_task *t, const uint64_t *vals, size_t n, uint64_t s,
		     const char *who)
{
	size_t off = 0;
	while (off < n) {
		int k = vals ? tq_push_ints(q, vals + off, n - off, TQ_WAIT_FOREVER)
			     : tq_push(q, t + off, n - off, TQ_WAIT_FOREVER);
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k <= 0 || (size_t)k > n - off)
			bench_child_die(r, who, "%s(%zu tasks, forever) after %llu pushed: %d %s",
					vals ? "tq_push_ints" : "tq_push", n - off, (unsigned long long)(s + off), k,
					tq_strerror(k));
		off += (size_t)k;
	}
}

static int tq_producer(struct bench_run *r, int p)
{
	char who[32];
	snprintf(who, sizeof who, "producer %d", p);
	tq_queue *q = child_open(r, who);
	size_t batch = r->row->batch;
	int json = r->row->json;
	tq_task *t = calloc(batch, sizeof *t);
	uint64_t *vals = calloc(batch, sizeof *vals);
	char *bufs = json ? malloc(batch * BENCH_JSON_LEN) : NULL;
	if (!t || !vals || (json && !bufs))
		bench_child_die(r, who, "out of memory");
	for (size_t i = 0; i < batch; i++) {
		if (json) {
			memcpy(bufs + i * BENCH_JSON_LEN, bench_rec_tmpl, BENCH_JSON_LEN);
			t[i].data = bufs + i * BENCH_JSON_LEN;
			t[i].len = BENCH_JSON_LEN;
		}
	}
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);

	for (uint64_t s = 0; s < per;) {
		size_t n = per - s < batch ? (size_t)(per - s) : batch;
		if (r->row->ints) {
			for (size_t i = 0; i < n; i++)
				vals[i] = base | (s + i);
			push_all(r, q, NULL, vals, n, s, who);
			s += n;
			bench_progress(r, p, s);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t v = base | (s + i);
			if (json) {
				bench_rec_fill((unsigned char *)bufs + i * BENCH_JSON_LEN, v);
				t[i].kind = TQ_KIND_JSON;
			} else {
				t[i].value = v;
				t[i].kind = TQ_KIND_INT;
			}
		}
		push_all(r, q, t, NULL, n, s, who);
		s += n;
		bench_progress(r, p, s);
	}
	futex_report(r, &sys0);
	free(t);
	free(vals);
	free(bufs);
	close_or_die(r, who, q);
	return 0;
}

/* One batch through tq_take_ints and tq_batch_ack (rows with .ints). Only
 * integers are pushed, so it never gets 0 (a task only tq_take takes). */
static void ints_batch(struct bench_run *r, tq_queue *q, struct bench_cons *cs, const char *who)
{
	uint64_t vals[TQ_BATCH_TASKS];
	tq_batch b;
	size_t batch = r->row->batch;
	int k = tq_take_ints(q, vals, batch, &b, TAKE_TIMEOUT_NS);

	if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
		return;
	if (k <= 0 || (size_t)k > batch)
		bench_child_die(r, who, "tq_take_ints(max %zu) after %llu taken: %d %s", batch,
				(unsigned long long)cs->count, k, tq_strerror(k));
	struct bench_marker m;
	bench_marker_begin(&m, cs);
	bench_marker_add_run(&m, vals, (size_t)k);
	bench_marker_end(&m, cs);
	int rc = tq_batch_ack(q, &b);
	if (rc != 0)
		bench_child_die(r, who, "tq_batch_ack(%d tasks) after %llu taken: %s", k,
				(unsigned long long)cs->count, tq_strerror(rc));
	cs->count += (uint64_t)k;
	bench_progress(r, cs->idx, cs->count);
	bench_consumed(r, (uint64_t)k);
}

/* Integer rows: every task's kind and value, without a branch per task.
 * False if some task is not an integer (the caller's loop counts it). */
static bool int_values(const tq_task *out, int k, uint64_t *vals)
{
	unsigned kinds = 0;

	if ((size_t)k > BENCH_PIPE_MAX_BATCH)
		return false;
	for (int i = 0; i < k; i++) {
		vals[i] = out[i].value;
		kinds |= out[i].kind ^ TQ_KIND_INT;
	}
	return kinds == 0;
}

static int tq_consumer(struct bench_run *r, int c)
{
	char who[32];
	snprintf(who, sizeof who, "consumer %d", c);
	tq_queue *q = child_open(r, who);
	size_t batch = r->row->batch;
	int json = r->row->json;
	int arc = tq_set_take_ahead(q, r->row->ahead);
	if (arc != 0)
		bench_child_die(r, who, "tq_set_take_ahead(%u): %s", r->row->ahead, tq_strerror(arc));
	tq_task *out = calloc(batch, sizeof *out);
	struct bench_cons cs;
	if (!out || bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, who, "out of memory");
	const uint64_t total = r->total;
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);

	while (atomic_load_explicit(&r->sh->consumed, memory_order_acquire) < total) {
		if (r->row->ints) {
			ints_batch(r, q, &cs, who);
			continue;
		}
		int k = tq_take(q, out, batch, TAKE_TIMEOUT_NS);
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k <= 0 || (size_t)k > batch)
			bench_child_die(r, who, "tq_take(max %zu) after %llu taken: %d %s", batch,
					(unsigned long long)cs.count, k, tq_strerror(k));
		struct bench_marker m;
		uint64_t vals[BENCH_PIPE_MAX_BATCH]; /* the batch sweep's 256 at most (main.c) */
		size_t nv = 0;
		bench_marker_begin(&m, &cs);
		if (!json && int_values(out, k, vals))
			nv = (size_t)k;
		for (int i = nv ? k : 0; i < k; i++) { /* json, or a foreign kind */
			if (nv == BENCH_PIPE_MAX_BATCH) {
				bench_marker_add_run(&m, vals, nv);
				nv = 0;
			}
			if (json) {
				if (json_parse(&out[i], &vals[nv]) != 0) {
					m.bad++;
					continue;
				}
			} else {
				if (out[i].kind != TQ_KIND_INT) {
					m.bad++;
					continue;
				}
				vals[nv] = out[i].value;
			}
			nv++;
		}
		bench_marker_add_run(&m, vals, nv);
		bench_marker_end(&m, &cs);
		int rc = r->row->later ? tq_ack_later(q, out, (size_t)k) : tq_ack(q, out, (size_t)k);
		if (rc != 0)
			bench_child_die(r, who, "%s(%d tasks) after %llu taken: %s", r->row->later ? "tq_ack_later" : "tq_ack",
					k, (unsigned long long)cs.count, tq_strerror(rc));
		cs.count += (uint64_t)k;
		bench_progress(r, cs.idx, cs.count);
		bench_consumed(r, (uint64_t)k);
	}
	futex_report(r, &sys0);
	bench_cons_finish(&cs);
	free(out);
	close_or_die(r, who, q);
	return 0;
}

static void print_stats(struct bench_run *r, const tq_stats *st)
{
	fprintf(stderr,
		"  [%s] tq_stats: ready %u leased %u delayed %u dead %u free %u procs %u recoveries %u "
		"run_state %d; totals pushed %llu taken %llu acked %llu failed %llu expired %llu "
		"recovered %llu lost %llu\n",
		r->row->name, st->ready, st->leased, st->delayed, st->dead, st->free_slots, st->procs,
		st->recoveries, st->run_state, (unsigned long long)st->total.pushed,
		(unsigned long long)st->total.taken, (unsigned long long)st->total.acked,
		(unsigned long long)st->total.failed, (unsigned long long)st->total.expired,
		(unsigned long long)st->total.recovered, (unsigned long long)st->total.lost);
}

static void tq_diagnose(struct bench_run *r)
{
	tq_stats st;
	if (r->q && tq_stats_get(r->q, &st) == 0)
		print_stats(r, &st);
}

static void tq_teardown(struct bench_run *r, int ok)
{
	if (r->q && r->row->stats_hz) {
		atomic_store(&r->reader_stop, 1);
		pthread_join(r->reader, NULL);
		if (atomic_load(&r->reads) == 0)
			fprintf(stderr, "  [%s] WARNING: the stats reader made no read\n", r->row->name);
	}
	if (r->q) {
		tq_stats st;
		/* after a failure children were killed: do not trust the queue */
		int rc = ok ? tq_stats_get(r->q, &st) : 0;
		if (ok && rc == 0 &&
		    (st.total.pushed != r->total || st.total.taken != r->total || st.total.acked != r->total ||
		     st.ready || st.leased || st.delayed || st.dead || st.procs != 1)) {
			fprintf(stderr, "  [%s] WARNING: queue counters disagree with the %llu tasks moved:\n",
				r->row->name, (unsigned long long)r->total);
			print_stats(r, &st);
		} else if (ok && rc != 0) {
			fprintf(stderr, "  [%s] WARNING: tq_stats_get: %s\n", r->row->name, tq_strerror(rc));
		}
		rc = tq_close(r->q);
		if (rc != 0)
			fprintf(stderr, "  [%s] WARNING: tq_close: %s\n", r->row->name, tq_strerror(rc));
		r->q = NULL;
	}
	bench_name_del(BENCH_NAME_TASKQ, r->name);
}

const struct bench_ops bench_taskq_ops = {
	.setup = tq_setup,
	.after_fork = NULL,
	.producer = tq_producer,
	.consumer = tq_consumer,
	.diagnose = tq_diagnose,
	.teardown = tq_teardown,
};

/* ---------------------------------------------------------------- latency */

/* Paced rows: a long wait, so that the consumer is truly asleep between
 * tasks. Back-to-back rows end by time: the consumer notices the producer
 * stopped within 10 ms. */
#define LAT_TAKE_TIMEOUT_NS (1000ull * 1000000ull)
#define LAT_TAKE_TIMEOUT_B2B_NS (10ull * 1000000ull)

static int tq_lat_producer(struct bench_run *r, int p)
{
	const char *who = "producer";
	tq_queue *q = child_open(r, who);
	struct bench_pacer pc;
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);
	bench_pacer_init(&pc, r);
	for (uint64_t s = 0; s < r->per_prod; s++) {
		uint64_t v;
		if (bench_pacer_next(&pc, s, &v))
			break;
		int rc;
		while ((rc = tq_push_int(q, v, TQ_WAIT_FOREVER)) == TQ_ETIMEDOUT || rc == TQ_EAGAIN)
			;
		if (rc != 0)
			bench_child_die(r, who, "tq_push_int after %llu pushed: %s", (unsigned long long)s,
					tq_strerror(rc));
		if ((s & 255) == 0)
			bench_progress(r, p, s);
	}
	futex_report(r, &sys0);
	close_or_die(r, who, q);
	return 0;
}

static int tq_lat_consumer(struct bench_run *r, int c)
{
	const char *who = "consumer";
	tq_queue *q = child_open(r, who);
	struct bench_cons cs;
	struct bench_lat lat;
	if (bench_cons_init(&cs, r, c) != 0 || bench_lat_init(&lat, &cs) != 0)
		bench_child_die(r, who, "out of memory");
	uint64_t timeout = bench_time_bounded(r->row) ? LAT_TAKE_TIMEOUT_B2B_NS : LAT_TAKE_TIMEOUT_NS;
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);
	while (bench_lat_more(&lat)) {
		tq_task t;
		int k = tq_take(q, &t, 1, timeout);
		uint64_t now = bench_now_ns();
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k != 1)
			bench_child_die(r, who, "tq_take(1) after %llu taken: %d %s", (unsigned long long)cs.count,
					k, tq_strerror(k));
		if (t.kind != TQ_KIND_INT) {
			cs.bad++;
			cs.count++;
			atomic_store_explicit(&r->sh->taken, cs.count, memory_order_release);
		} else {
			bench_lat_take(&lat, t.value, now);
		}
		int rc = tq_ack(q, &t, 1);
		if (rc != 0)
			bench_child_die(r, who, "tq_ack after %llu taken: %s", (unsigned long long)cs.count,
					tq_strerror(rc));
		if ((cs.count & 255) == 0)
			bench_progress(r, cs.idx, cs.count);
	}
	futex_report(r, &sys0);
	bench_lat_finish(&lat);
	bench_cons_finish(&cs);
	close_or_die(r, who, q);
	return 0;
}

const struct bench_ops bench_taskq_lat_ops = {
	.setup = tq_setup,
	.after_fork = NULL,
	.producer = tq_lat_producer,
	.consumer = tq_lat_consumer,
	.diagnose = tq_diagnose,
	.teardown = tq_teardown,
};

/* ------------------------------------------------------------------ idle */

/* The producer stays idle for the run's length, then pushes one task; the
 * consumer, blocked in one tq_take meanwhile, reports its CPU time (user +
 * system, getrusage) over that wait and the futex calls it made. */
static int tq_idle_producer(struct bench_run *r, int p)
{
	const char *who = "producer";
	tq_queue *q = child_open(r, who);
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);
	uint64_t ns = (uint64_t)(r->secs * 1e9);
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	for (uint64_t s = 0; s < r->per_prod; s++) {
		int rc = tq_push_int(q, (uint64_t)p << BENCH_SEQ_BITS | s, TQ_WAIT_FOREVER);
		if (rc != 0)
			bench_child_die(r, who, "tq_push_int: %s", tq_strerror(rc));
	}
	bench_progress(r, p, r->per_prod);
	futex_report(r, &sys0);
	close_or_die(r, who, q);
	return 0;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

static int tq_idle_consumer(struct bench_run *r, int c)
{
	const char *who = "consumer";
	tq_queue *q = child_open(r, who);
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, who, "out of memory");
	uint64_t timeout = (uint64_t)(r->secs * 1e9) + 20ull * 1000000000ull;
	tq_sys_counts sys0;
	tq_sys_counts_get(&sys0);
	bench_child_ready(r);
	uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
	int first = 1;
	while (cs.count < r->total) {
		tq_task t;
		int k = tq_take(q, &t, 1, timeout);
		if (first) {
			uint64_t c1 = cpu_ns(), t1 = bench_now_ns();
			atomic_store(&r->sh->idle_cpu_ns, c1 - c0);
			atomic_store(&r->sh->idle_wall_ns, t1 - t0);
			atomic_store(&r->sh->idle_futex, futex_report(r, &sys0));
			tq_sys_counts_get(&sys0);
			first = 0;
		}
		if (k != 1)
			bench_child_die(r, who, "tq_take(1, %.0f s): %d %s", (double)timeout / 1e9, k, tq_strerror(k));
		if (t.kind == TQ_KIND_INT)
			bench_mark(&cs, t.value);
		else
			cs.bad++;
		cs.count++;
		int rc = tq_ack(q, &t, 1);
		if (rc != 0)
			bench_child_die(r, who, "tq_ack: %s", tq_strerror(rc));
	}
	futex_report(r, &sys0);
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	close_or_die(r, who, q);
	return 0;
}

const struct bench_ops bench_taskq_idle_ops = {
	.setup = tq_setup,
	.after_fork = NULL,
	.producer = tq_idle_producer,
	.consumer = tq_idle_consumer,
	.diagnose = tq_diagnose,
	.teardown = tq_teardown,
};
