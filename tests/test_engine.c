/*
 * test_engine.c - the queue engine seen through the public API: exactly-once
 * delivery for many producer/consumer mixes (processes and threads), task
 * ids, FIFO order, blocking and timeouts, leases, retries and dead letters,
 * run state, close, stats and the process registry.
 *
 * Forked children never call Criterion asserts: they report through their
 * exit status and through shared memory, and the test process asserts.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "taskq.h"
#include "util.h"

#define MS (1000000ull)
#define SEC (1000000000ull)

/* ------------------------------------------------------------- payloads */

#define PAYLOAD_BUF 512

/* The length of the payload of task (p, i): 12..311 bytes, varying. */
static uint32_t payload_want(unsigned p, unsigned i)
{
	return 12u + (p * 7919u + i * 104729u) % 300u;
}

/* Writes the payload of task (p, i) of `kind` to buf; returns its length.
 * STRING: "p=3 i=17 " then letters. JSON: {"p":3,"i":17,"pad":"..."}. */
static uint32_t make_payload(uint16_t kind, unsigned p, unsigned i, char *buf)
{
	uint32_t want = payload_want(p, i);
	int n;
	if (kind == TQ_KIND_JSON)
		n = snprintf(buf, PAYLOAD_BUF, "{\"p\":%u,\"i\":%u,\"pad\":\"", p, i);
	else
		n = snprintf(buf, PAYLOAD_BUF, "p=%u i=%u ", p, i);
	uint32_t len = (uint32_t)n;
	uint32_t tail = kind == TQ_KIND_JSON ? 2u : 0u;
	while (len + tail < want) {
		buf[len] = (char)('a' + (p + i + len) % 26u);
		len++;
	}
	if (kind == TQ_KIND_JSON) {
		buf[len++] = '"';
		buf[len++] = '}';
	}
	return len;
}

/* Parses a payload back to (p, i) and checks every byte. 0 if good. */
static int parse_payload(uint16_t kind, const void *data, uint32_t len,
			 unsigned *p, unsigned *i)
{
	char copy[PAYLOAD_BUF], again[PAYLOAD_BUF];
	if (data == NULL || len == 0 || len >= PAYLOAD_BUF)
		return -1;
	memcpy(copy, data, len);
	copy[len] = '\0';
	int n;
	if (kind == TQ_KIND_JSON)
		n = sscanf(copy, "{\"p\":%u,\"i\":%u,", p, i);
	else
		n = sscanf(copy, "p=%u i=%u ", p, i);
	if (n != 2)
		return -2;
	uint32_t len2 = make_payload(kind, *p, *i, again);
	if (len2 != len || memcmp(again, data, len) != 0)
		return -3;
	return 0;
}

/* ------------------------------------------------- shared error reporting */

struct report {
	uint64_t errors;
	int first_set;
	char first[256];
};

__attribute__((format(printf, 2, 3)))
static void report_err(struct report *r, const char *fmt, ...)
{
	__atomic_fetch_add(&r->errors, 1, __ATOMIC_SEQ_CST);
	int expect = 0;
	if (__atomic_compare_exchange_n(&r->first_set, &expect, 1, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->first, sizeof r->first, fmt, ap);
		va_end(ap);
	}
}

static tq_config small_config(uint32_t capacity)
{
	tq_config c;
	tq_config_init(&c);
	c.capacity = capacity;
	if (c.dead_capacity > capacity)
		c.dead_capacity = capacity;
	return c;
}

static tq_queue *create_queue(const char *name, const tq_config *cfg)
{
	tq_queue *q = NULL;
	tq_destroy(name); /* a leftover from an earlier crashed run */
	int rc = tq_create(name, cfg, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %d %s", name, rc, tq_strerror(rc));
	cr_assert_not_null(q);
	return q;
}

static tq_queue *open_queue(const char *name)
{
	tq_queue *q = NULL;
	int rc = tq_open(name, &q);
	cr_assert_eq(rc, 0, "tq_open(%s): %d %s", name, rc, tq_strerror(rc));
	cr_assert_not_null(q);
	return q;
}

static tq_stats get_stats(tq_queue *q)
{
	tq_stats s;
	memset(&s, 0, sizeof s);
	int rc = tq_stats_get(q, &s);
	cr_assert_eq(rc, 0, "tq_stats_get: %d %s", rc, tq_strerror(rc));
	return s;
}

/* ------------------------------------------------------------------ mixes */

enum mix_mode {
	MIX_FORK,           /* every producer and consumer is a process */
	MIX_THREADS_OWN,    /* threads of this process, each with its own handle */
	MIX_THREADS_SHARED, /* threads of this process sharing one handle */
};

struct mix_shared {
	struct report rep;
	uint64_t consumed; /* deliveries acked */
	uint64_t dups;
	uint64_t pushed;
};

struct mix {
	const char *name;
	unsigned producers, consumers, batch, tpp;
	uint16_t kind;
	enum mix_mode mode;
	tq_queue *shared_q;
	uint64_t total;
	struct mix_shared *sh;
	tqt_bitmap bm;
	uint64_t *push_ids; /* [total], shared */
	uint64_t *take_ids; /* [total], shared */
};

struct mix_worker {
	struct mix *m;
	unsigned idx;
	int rc;
};

static tq_queue *mix_handle(struct mix *m)
{
	if (m->mode == MIX_THREADS_SHARED)
		return m->shared_q;
	tq_queue *q = NULL;
	int rc = tq_open(m->name, &q);
	if (rc != 0) {
		report_err(&m->sh->rep, "tq_open: %d %s", rc, tq_strerror(rc));
		return NULL;
	}
	return q;
}

static void mix_release(struct mix *m, tq_queue *q)
{
	if (m->mode != MIX_THREADS_SHARED) {
		int rc = tq_close(q);
		if (rc != 0)
			report_err(&m->sh->rep, "tq_close: %d %s", rc, tq_strerror(rc));
	}
}

static int mix_producer(void *arg)
{
	struct mix_worker *w = arg;
	struct mix *m = w->m;
	unsigned p = w->idx;
	tq_queue *q = mix_handle(m);
	if (!q)
		return 1;
	tq_task *tasks = calloc(m->batch, sizeof *tasks);
	char *bufs = malloc((size_t)m->batch * PAYLOAD_BUF);
	if (!tasks || !bufs)
		abort();
	uint64_t last_id = 0;
	bool have_last = false;
	int bad = 0;
	for (unsigned i = 0; i < m->tpp && !bad;) {
		unsigned n = m->tpp - i < m->batch ? m->tpp - i : m->batch;
		for (unsigned j = 0; j < n; j++) {
			tq_task *t = &tasks[j];
			memset(t, 0, sizeof *t);
			t->kind = m->kind;
			if (m->kind == TQ_KIND_INT) {
				t->value = (uint64_t)p << 32 | (i + j);
			} else {
				char *b = bufs + (size_t)j * PAYLOAD_BUF;
				t->len = make_payload(m->kind, p, i + j, b);
				t->data = b;
			}
		}
		unsigned done = 0;
		while (done < n) {
			int r = tq_push(q, tasks + done, n - done, TQ_WAIT_FOREVER);
			if (r <= 0 || (unsigned)r > n - done) {
				report_err(&m->sh->rep, "producer %u: tq_push(%u) = %d %s",
					   p, n - done, r, tq_strerror(r));
				bad = 1;
				break;
			}
			if ((unsigned)r != n - done)
				report_err(&m->sh->rep,
					   "producer %u: tq_push(%u, FOREVER) accepted only %d",
					   p, n - done, r);
			for (int j = 0; j < r; j++) {
				uint64_t id = tasks[done + (unsigned)j].id;
				if (have_last && id <= last_id)
					report_err(&m->sh->rep,
						   "producer %u: id %llu after %llu",
						   p, (unsigned long long)id,
						   (unsigned long long)last_id);
				last_id = id;
				have_last = true;
				m->push_ids[(uint64_t)p * m->tpp + i + done + (unsigned)j] = id;
			}
			__atomic_fetch_add(&m->sh->pushed, (uint64_t)r, __ATOMIC_SEQ_CST);
			done += (unsigned)r;
		}
		i += n;
	}
	free(tasks);
	free(bufs);
	mix_release(m, q);
	return bad;
}

/* Checks one delivered task; returns its index in the bitmap or -1. */
static int64_t mix_decode(struct mix *m, const tq_task *t)
{
	unsigned p, i;
	if (t->kind != m->kind) {
		report_err(&m->sh->rep, "kind %u, expected %u", t->kind, m->kind);
		return -1;
	}
	if (t->attempt != 1)
		report_err(&m->sh->rep, "id %llu: attempt %u on first delivery",
			   (unsigned long long)t->id, t->attempt);
	if (t->enqueued_ns == 0)
		report_err(&m->sh->rep, "id %llu: enqueued_ns 0", (unsigned long long)t->id);
	if (m->kind == TQ_KIND_INT) {
		p = (unsigned)(t->value >> 32);
		i = (unsigned)(t->value & 0xffffffffu);
	} else {
		int rc = parse_payload(m->kind, t->data, t->len, &p, &i);
		if (rc != 0) {
			report_err(&m->sh->rep, "id %llu: bad payload (%d), len %u",
				   (unsigned long long)t->id, rc, t->len);
			return -1;
		}
	}
	if (p >= m->producers || i >= m->tpp) {
		report_err(&m->sh->rep, "id %llu: decoded p=%u i=%u out of range",
			   (unsigned long long)t->id, p, i);
		return -1;
	}
	return (int64_t)p * m->tpp + i;
}

static int mix_consumer(void *arg)
{
	struct mix_worker *w = arg;
	struct mix *m = w->m;
	tq_queue *q = mix_handle(m);
	if (!q)
		return 1;
	tq_task *out = calloc(m->batch, sizeof *out);
	if (!out)
		abort();
	uint64_t deadline = tqt_now_ms() + 45000;
	int bad = 0;
	while (__atomic_load_n(&m->sh->consumed, __ATOMIC_SEQ_CST) < m->total) {
		if (tqt_now_ms() > deadline) {
			report_err(&m->sh->rep, "consumer %u: deadline passed", w->idx);
			bad = 1;
			break;
		}
		int r = tq_take(q, out, m->batch, 20 * MS);
		if (r == TQ_ETIMEDOUT)
			continue;
		if (r <= 0 || (unsigned)r > m->batch) {
			report_err(&m->sh->rep, "consumer %u: tq_take(%u) = %d %s",
				   w->idx, m->batch, r, tq_strerror(r));
			bad = 1;
			break;
		}
		for (int j = 0; j < r; j++) {
			int64_t k = mix_decode(m, &out[j]);
			if (k < 0)
				continue;
			m->take_ids[k] = out[j].id;
			if (tqt_bitmap_set(m->bm, (size_t)k))
				__atomic_fetch_add(&m->sh->dups, 1, __ATOMIC_SEQ_CST);
		}
		int a = tq_ack(q, out, (size_t)r);
		if (a != 0)
			report_err(&m->sh->rep, "consumer %u: tq_ack(%d) = %d %s",
				   w->idx, r, a, tq_strerror(a));
		__atomic_fetch_add(&m->sh->consumed, (uint64_t)r, __ATOMIC_SEQ_CST);
	}
	free(out);
	mix_release(m, q);
	return bad;
}

static void *mix_thread(void *arg)
{
	struct mix_worker *w = arg;
	w->rc = w->idx & 0x10000u ? mix_consumer(w) : mix_producer(w);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void run_mix_mode(const char *test, unsigned producers, unsigned consumers,
			 unsigned batch, uint16_t kind, unsigned tpp,
			 uint32_t capacity, enum mix_mode mode)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, test);
	tq_config cfg = small_config(capacity);
	tq_queue *q = create_queue(name, &cfg);

	struct mix m = {
		.name = name, .producers = producers, .consumers = consumers,
		.batch = batch, .tpp = tpp, .kind = kind, .mode = mode,
		.shared_q = q, .total = (uint64_t)producers * tpp,
	};
	m.sh = tqt_shared(sizeof *m.sh);
	m.bm = tqt_bitmap_new(m.total);
	m.push_ids = tqt_shared(m.total * sizeof(uint64_t));
	m.take_ids = tqt_shared(m.total * sizeof(uint64_t));

	unsigned nw = producers + consumers;
	struct mix_worker *ws = calloc(nw, sizeof *ws);
	cr_assert_not_null(ws);
	int failed_workers = 0;

	if (mode == MIX_FORK) {
		pid_t *pids = calloc(nw, sizeof *pids);
		cr_assert_not_null(pids);
		/* Consumers first, so some of them wait on an empty queue. */
		for (unsigned c = 0; c < consumers; c++) {
			ws[c] = (struct mix_worker){ &m, c, 0 };
			pids[c] = tqt_fork(mix_consumer, &ws[c]);
		}
		for (unsigned p = 0; p < producers; p++) {
			ws[consumers + p] = (struct mix_worker){ &m, p, 0 };
			pids[consumers + p] = tqt_fork(mix_producer, &ws[consumers + p]);
		}
		failed_workers = tqt_wait_all(pids, nw, 50000);
		free(pids);
	} else {
		pthread_t *th = calloc(nw, sizeof *th);
		cr_assert_not_null(th);
		for (unsigned k = 0; k < nw; k++) {
			ws[k].m = &m;
			ws[k].idx = k < consumers ? (k | 0x10000u) : k - consumers;
			cr_assert_eq(pthread_create(&th[k], NULL, mix_thread, &ws[k]), 0);
		}
		for (unsigned k = 0; k < nw; k++) {
			pthread_join(th[k], NULL);
			if (ws[k].rc != 0)
				failed_workers++;
		}
		free(th);
	}

	tq_stats s = get_stats(q);
	tq_close(q);
	tq_destroy(name);

	uint64_t *sorted = malloc(m.total * sizeof(uint64_t));
	cr_assert_not_null(sorted);
	memcpy(sorted, m.take_ids, m.total * sizeof(uint64_t));
	qsort(sorted, m.total, sizeof(uint64_t), cmp_u64);
	uint64_t same_ids = 0, id_mismatch = 0;
	for (uint64_t k = 1; k < m.total; k++)
		same_ids += sorted[k] == sorted[k - 1];
	for (uint64_t k = 0; k < m.total; k++)
		id_mismatch += m.push_ids[k] != m.take_ids[k];
	free(sorted);

	cr_expect_eq(m.sh->rep.errors, 0, "%llu errors, first: %s",
		     (unsigned long long)m.sh->rep.errors, m.sh->rep.first);
	cr_expect_eq(failed_workers, 0, "%d workers failed or timed out", failed_workers);
	cr_expect_eq(m.sh->dups, 0, "%llu duplicate deliveries",
		     (unsigned long long)m.sh->dups);
	size_t got = tqt_bitmap_count(m.bm, m.total);
	cr_expect_eq(got, m.total, "%zu of %llu tasks delivered", got,
		     (unsigned long long)m.total);
	cr_expect_eq(m.sh->pushed, m.total);
	cr_expect_eq(same_ids, 0, "%llu delivered tasks share an id",
		     (unsigned long long)same_ids);
	cr_expect_eq(id_mismatch, 0, "%llu tasks delivered with another id than pushed",
		     (unsigned long long)id_mismatch);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.free_slots, capacity);
	cr_expect_eq(s.total.pushed, m.total, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, m.total, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.taken, m.total, "taken %llu", (unsigned long long)s.total.taken);
	cr_expect_eq(s.total.failed, 0);
	cr_expect_eq(s.total.expired, 0);
	cr_expect_eq(s.total.recovered, 0);
	cr_expect_eq(s.total.lost, 0);
	free(ws);
}

static void run_mix(const char *test, unsigned producers, unsigned consumers,
		    unsigned batch, uint16_t kind, unsigned tpp)
{
	run_mix_mode(test, producers, consumers, batch, kind, tpp, 10000, MIX_FORK);
}

Test(engine, mix_1x1_b1_int, .timeout = 60)
{
	run_mix("mix-1x1-b1-int", 1, 1, 1, TQ_KIND_INT, 3000);
}

Test(engine, mix_1x1_b1_string, .timeout = 60)
{
	run_mix("mix-1x1-b1-str", 1, 1, 1, TQ_KIND_STRING, 2000);
}

Test(engine, mix_1x1_b64_int, .timeout = 60)
{
	run_mix("mix-1x1-b64-int", 1, 1, 64, TQ_KIND_INT, 20000);
}

Test(engine, mix_1x1_b64_json, .timeout = 60)
{
	run_mix("mix-1x1-b64-json", 1, 1, 64, TQ_KIND_JSON, 10000);
}

Test(engine, mix_2x3_b64_int, .timeout = 60)
{
	run_mix("mix-2x3-b64-int", 2, 3, 64, TQ_KIND_INT, 10000);
}

Test(engine, mix_3x2_b7_string, .timeout = 60)
{
	run_mix("mix-3x2-b7-str", 3, 2, 7, TQ_KIND_STRING, 3000);
}

Test(engine, mix_4x4_b64_json, .timeout = 60)
{
	run_mix("mix-4x4-b64-json", 4, 4, 64, TQ_KIND_JSON, 5000);
}

Test(engine, mix_1x8_b64_int, .timeout = 60)
{
	run_mix("mix-1x8-b64-int", 1, 8, 64, TQ_KIND_INT, 20000);
}

Test(engine, mix_2x2_b1000_int, .timeout = 60)
{
	run_mix("mix-2x2-b1000-int", 2, 2, 1000, TQ_KIND_INT, 20000);
}

Test(engine, mix_2x2_b1000_string_small_queue, .timeout = 60)
{
	/* batches far larger than the queue: pushes must wait for room */
	run_mix_mode("mix-2x2-b1000-str-cap300", 2, 2, 1000, TQ_KIND_STRING, 5000,
		     300, MIX_FORK);
}

Test(engine, mix_capacity1_2x2_b3, .timeout = 60)
{
	run_mix_mode("mix-cap1-2x2-b3", 2, 2, 3, TQ_KIND_INT, 1000, 1, MIX_FORK);
}

Test(engine, mix_capacity1_2x2_b3_json, .timeout = 60)
{
	run_mix_mode("mix-cap1-2x2-b3-json", 2, 2, 3, TQ_KIND_JSON, 500, 1, MIX_FORK);
}

Test(engine, mix_threads_own_handles, .timeout = 60)
{
	run_mix_mode("mix-thr-own", 2, 2, 16, TQ_KIND_STRING, 5000, 10000,
		     MIX_THREADS_OWN);
}

Test(engine, mix_threads_own_handles_int_small, .timeout = 60)
{
	run_mix_mode("mix-thr-own-small", 2, 2, 5, TQ_KIND_INT, 5000, 8,
		     MIX_THREADS_OWN);
}

Test(engine, mix_threads_shared_handle, .timeout = 60)
{
	run_mix_mode("mix-thr-shared", 2, 2, 64, TQ_KIND_JSON, 5000, 10000,
		     MIX_THREADS_SHARED);
}

/* ------------------------------------------------------- ids and content */

Test(engine, ids_attempt_enqueued_payload, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "ids");
	tq_config cfg = small_config(100);
	tq_queue *q = create_queue(name, &cfg);

	enum { N1 = 5, N2 = 10, N = N1 + N2 };
	tq_task in[N];
	char bufs[N][PAYLOAD_BUF];
	memset(in, 0, sizeof in);
	for (unsigned k = 0; k < N; k++) {
		switch (k % 4) {
		case 0:
			in[k].kind = TQ_KIND_INT;
			in[k].value = 0xabcdef0000000000ull + k;
			break;
		case 1:
		case 2:
			in[k].kind = k % 4 == 1 ? TQ_KIND_STRING : TQ_KIND_JSON;
			in[k].len = make_payload(in[k].kind, 9, k, bufs[k]);
			in[k].data = bufs[k];
			break;
		default:
			in[k].kind = TQ_KIND_STRING; /* empty payload */
			in[k].len = 0;
			in[k].data = NULL;
			break;
		}
	}
	uint64_t t0 = tq_now_ns();
	for (unsigned k = 0; k < N1; k++)
		cr_assert_eq(tq_push(q, &in[k], 1, 0), 1);
	cr_assert_eq(tq_push(q, &in[N1], N2, 0), N2);
	uint64_t t1 = tq_now_ns();
	for (unsigned k = 1; k < N; k++)
		cr_expect_gt(in[k].id, in[k - 1].id, "id[%u]=%llu after id[%u]=%llu", k,
			     (unsigned long long)in[k].id, k - 1,
			     (unsigned long long)in[k - 1].id);

	tq_task out[N];
	unsigned got = 0;
	while (got < N) {
		int r = tq_take(q, out + got, N - got, 0);
		cr_assert_gt(r, 0, "tq_take: %d %s", r, tq_strerror(r));
		got += (unsigned)r;
	}
	cr_assert_eq(tq_take(q, out, 1, 0), TQ_EAGAIN);
	for (unsigned k = 0; k < N; k++) {
		cr_expect_eq(out[k].id, in[k].id, "task %u: id %llu, pushed as %llu", k,
			     (unsigned long long)out[k].id, (unsigned long long)in[k].id);
		cr_expect_eq(out[k].kind, in[k].kind);
		cr_expect_eq(out[k].attempt, 1);
		cr_expect_neq(out[k].enqueued_ns, 0);
		cr_expect_geq(out[k].enqueued_ns, t0);
		cr_expect_leq(out[k].enqueued_ns, t1);
		if (k)
			cr_expect_geq(out[k].enqueued_ns, out[k - 1].enqueued_ns);
		if (in[k].kind == TQ_KIND_INT) {
			cr_expect_eq(out[k].value, in[k].value);
		} else {
			cr_expect_eq(out[k].len, in[k].len, "task %u: len %u, pushed %u", k,
				     out[k].len, in[k].len);
			if (out[k].len == in[k].len && in[k].len > 0) {
				cr_assert_not_null(out[k].data);
				cr_expect(memcmp(out[k].data, in[k].data, in[k].len) == 0,
					  "task %u: payload differs", k);
			}
		}
	}
	cr_expect_eq(tq_ack(q, out, N), 0);

	/* tq_push_int / tq_push_data keep the order too */
	cr_expect_eq(tq_push_int(q, 77, 0), 0);
	cr_expect_eq(tq_push_data(q, TQ_KIND_JSON, "{\"a\":1}", 7, 0), 0);
	cr_expect_eq(tq_push_data(q, TQ_KIND_STRING, "", 0, 0), 0);
	got = 0;
	while (got < 3) {
		int r = tq_take(q, out + got, 3 - got, 0);
		cr_assert_gt(r, 0, "tq_take: %d %s", r, tq_strerror(r));
		got += (unsigned)r;
	}
	cr_expect_eq(out[0].kind, TQ_KIND_INT);
	cr_expect_eq(out[0].value, 77);
	cr_expect_eq(out[1].kind, TQ_KIND_JSON);
	cr_expect_eq(out[1].len, 7);
	cr_expect(memcmp(out[1].data, "{\"a\":1}", 7) == 0);
	cr_expect_eq(out[2].kind, TQ_KIND_STRING);
	cr_expect_eq(out[2].len, 0);
	cr_expect_gt(out[1].id, out[0].id);
	cr_expect_gt(out[2].id, out[1].id);
	cr_expect_gt(out[0].id, in[N - 1].id);
	cr_expect_eq(tq_ack(q, out, 3), 0);

	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.pushed, N + 3);
	cr_expect_eq(s.total.acked, N + 3);
	cr_expect_eq(s.free_slots, 100);
	tq_close(q);
	tq_destroy(name);
}

/* ------------------------------------------------------------------ FIFO */

struct fifo_arg {
	const char *name;
	unsigned n;
	struct report *rep;
};

static int fifo_producer(void *arg)
{
	struct fifo_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 1;
	tq_task t[17];
	unsigned v = 0, b = 1;
	while (v < a->n) {
		unsigned n = b < a->n - v ? b : a->n - v;
		memset(t, 0, sizeof t);
		for (unsigned j = 0; j < n; j++) {
			t[j].kind = TQ_KIND_INT;
			t[j].value = v + j;
		}
		int r = tq_push(q, t, n, TQ_WAIT_FOREVER);
		if (r != (int)n) {
			report_err(a->rep, "fifo push(%u) = %d", n, r);
			tq_close(q);
			return 1;
		}
		v += n;
		b = b % 17 + 1;
	}
	tq_close(q);
	return 0;
}

static int fifo_consumer(void *arg)
{
	struct fifo_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 1;
	tq_task t[13];
	unsigned expect = 0, b = 1;
	uint64_t last_id = 0;
	int bad = 0;
	uint64_t deadline = tqt_now_ms() + 45000;
	while (expect < a->n && !bad) {
		if (tqt_now_ms() > deadline) {
			report_err(a->rep, "fifo consumer: deadline at %u", expect);
			bad = 1;
			break;
		}
		int r = tq_take(q, t, b, 20 * MS);
		if (r == TQ_ETIMEDOUT)
			continue;
		if (r <= 0) {
			report_err(a->rep, "fifo take = %d", r);
			bad = 1;
			break;
		}
		for (int j = 0; j < r; j++) {
			if (t[j].value != expect) {
				report_err(a->rep, "fifo: got %llu expected %u",
					   (unsigned long long)t[j].value, expect);
				bad = 1;
			}
			if (expect > 0 && t[j].id <= last_id) {
				report_err(a->rep, "fifo: id %llu after %llu",
					   (unsigned long long)t[j].id,
					   (unsigned long long)last_id);
				bad = 1;
			}
			last_id = t[j].id;
			expect++;
		}
		if (tq_ack(q, t, (size_t)r) != 0) {
			report_err(a->rep, "fifo ack failed");
			bad = 1;
		}
		b = b % 13 + 1;
	}
	tq_close(q);
	return bad;
}

Test(engine, fifo_one_producer_one_consumer, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "fifo");
	tq_config cfg = small_config(64); /* the rings wrap many times */
	tq_queue *q = create_queue(name, &cfg);
	struct report *rep = tqt_shared(sizeof *rep);
	struct fifo_arg a = { name, 30000, rep };
	pid_t pids[2];
	pids[0] = tqt_fork(fifo_consumer, &a);
	pids[1] = tqt_fork(fifo_producer, &a);
	int bad = tqt_wait_all(pids, 2, 50000);
	tq_stats s = get_stats(q);
	tq_close(q);
	tq_destroy(name);
	cr_expect_eq(rep->errors, 0, "%llu errors, first: %s",
		     (unsigned long long)rep->errors, rep->first);
	cr_expect_eq(bad, 0);
	cr_expect_eq(s.total.pushed, 30000);
	cr_expect_eq(s.total.acked, 30000);
	cr_expect_eq(s.ready, 0);
}

/* -------------------------------------------------------------- blocking */

Test(engine, take_empty_timeouts, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "take-empty");
	tq_queue *q = create_queue(name, NULL);
	tq_task t, t8[8];

	cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	cr_expect_eq(tq_take(q, t8, 8, 0), TQ_EAGAIN);

	uint64_t timeouts[] = { 1 * MS, 30 * MS, 120 * MS, 250 * MS };
	for (unsigned k = 0; k < sizeof timeouts / sizeof timeouts[0]; k++) {
		uint64_t t0 = tq_now_ns();
		int r = tq_take(q, &t, 1, timeouts[k]);
		uint64_t el = tq_now_ns() - t0;
		cr_expect_eq(r, TQ_ETIMEDOUT, "timeout %llu ns: %d %s",
			     (unsigned long long)timeouts[k], r, tq_strerror(r));
		cr_expect_geq(el, timeouts[k], "returned after %llu ns, timeout %llu ns",
			      (unsigned long long)el, (unsigned long long)timeouts[k]);
	}
	tq_close(q);
	tq_destroy(name);
}

Test(engine, push_full_timeouts_and_partial, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "push-full");
	tq_config cfg = small_config(4);
	tq_queue *q = create_queue(name, &cfg);

	tq_task t[8];
	memset(t, 0, sizeof t);
	for (unsigned k = 0; k < 8; k++) {
		t[k].kind = TQ_KIND_INT;
		t[k].value = k;
	}
	cr_assert_eq(tq_push(q, t, 4, 0), 4);
	cr_expect_eq(tq_push(q, t + 4, 1, 0), TQ_EAGAIN);
	cr_expect_eq(tq_push_int(q, 99, 0), TQ_EAGAIN);
	cr_expect_eq(tq_push(q, t + 4, 3, 0), TQ_EAGAIN);

	uint64_t t0 = tq_now_ns();
	int r = tq_push(q, t + 4, 1, 40 * MS);
	uint64_t el = tq_now_ns() - t0;
	cr_expect_eq(r, TQ_ETIMEDOUT, "push on full: %d %s", r, tq_strerror(r));
	cr_expect_geq(el, 40 * MS, "returned after %llu ns", (unsigned long long)el);
	t0 = tq_now_ns();
	r = tq_push_int(q, 99, 40 * MS);
	el = tq_now_ns() - t0;
	cr_expect_eq(r, TQ_ETIMEDOUT, "push_int on full: %d %s", r, tq_strerror(r));
	cr_expect_geq(el, 40 * MS);

	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.pushed, 4);
	cr_expect_eq(s.ready, 4);
	cr_expect_eq(s.free_slots, 0);

	/* make room for 2, push 5 with a timeout: 2 accepted */
	tq_task out[2];
	cr_assert_eq(tq_take(q, out, 2, 0), 2);
	cr_expect_eq(out[0].value, 0);
	cr_expect_eq(out[1].value, 1);
	cr_assert_eq(tq_ack(q, out, 2), 0);
	t0 = tq_now_ns();
	r = tq_push(q, t + 3, 5, 30 * MS);
	el = tq_now_ns() - t0;
	cr_expect_eq(r, 2, "partial batch: %d %s", r, tq_strerror(r));
	cr_expect_geq(el, 30 * MS, "partial batch returned after %llu ns",
		      (unsigned long long)el);
	cr_expect_gt(t[4].id, t[3].id);

	/* make room for 1, push 3 with timeout 0: 1 accepted */
	cr_assert_eq(tq_take(q, out, 1, 0), 1);
	cr_expect_eq(out[0].value, 2);
	cr_assert_eq(tq_ack(q, out, 1), 0);
	r = tq_push(q, t + 5, 3, 0);
	cr_expect_eq(r, 1, "partial batch, timeout 0: %d %s", r, tq_strerror(r));

	s = get_stats(q);
	cr_expect_eq(s.total.pushed, 7);
	cr_expect_eq(s.ready, 4);
	/* the queue holds 3, 3, 4, 5 in that order */
	uint64_t want[4] = { 3, 3, 4, 5 };
	for (unsigned k = 0; k < 4; k++) {
		cr_assert_eq(tq_take(q, out, 1, 0), 1);
		cr_expect_eq(out[0].value, want[k], "task %u: %llu", k,
			     (unsigned long long)out[0].value);
		cr_expect_eq(tq_ack(q, out, 1), 0);
	}
	cr_expect_eq(tq_take(q, out, 1, 0), TQ_EAGAIN);
	tq_close(q);
	tq_destroy(name);
}

/* Polls /proc until pid sleeps (state S or D), up to 3 s. Only makes it more
 * likely that the child is really blocked; the test is correct either way. */
static void wait_until_sleeping(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	uint64_t deadline = tqt_now_ms() + 3000;
	while (tqt_now_ms() < deadline) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			return;
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && (rp[2] == 'S' || rp[2] == 'D'))
			return;
		tqt_sleep_ms(1);
	}
}

struct blocked_arg {
	const char *name;
	int ready_fd;
	uint64_t value;
};

static int blocked_consumer(void *arg)
{
	struct blocked_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	if (write(a->ready_fd, "r", 1) != 1)
		return 11;
	tq_task t;
	int r = tq_take(q, &t, 1, TQ_WAIT_FOREVER);
	if (r != 1)
		return 12;
	if (t.kind != TQ_KIND_INT || t.value != a->value)
		return 13;
	if (tq_ack(q, &t, 1) != 0)
		return 14;
	tq_close(q);
	return 0;
}

Test(engine, blocked_take_woken_by_push_from_other_process, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "wake-take");
	tq_queue *q = create_queue(name, NULL);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct blocked_arg a = { name, fds[1], 4242 };
	pid_t pid = tqt_fork(blocked_consumer, &a);
	char c;
	cr_assert_eq(read(fds[0], &c, 1), 1);
	wait_until_sleeping(pid);
	cr_expect_eq(tq_push_int(q, 4242, 0), 0);
	int rc = tqt_wait(pid, 20000);
	close(fds[0]);
	close(fds[1]);
	tq_stats s = get_stats(q);
	tq_close(q);
	tq_destroy(name);
	cr_expect_eq(rc, 0, "child exit %d (-1: still blocked at the deadline)", rc);
	cr_expect_eq(s.total.acked, 1);
}

static int blocked_producer(void *arg)
{
	struct blocked_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	if (write(a->ready_fd, "r", 1) != 1)
		return 11;
	int r = tq_push_int(q, a->value, TQ_WAIT_FOREVER);
	tq_close(q);
	return r == 0 ? 0 : 12;
}

Test(engine, blocked_push_woken_by_ack_from_other_process, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "wake-push");
	tq_config cfg = small_config(1);
	tq_queue *q = create_queue(name, &cfg);
	cr_assert_eq(tq_push_int(q, 1, 0), 0);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct blocked_arg a = { name, fds[1], 2 };
	pid_t pid = tqt_fork(blocked_producer, &a);
	char c;
	cr_assert_eq(read(fds[0], &c, 1), 1);
	wait_until_sleeping(pid);
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(t.value, 1);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	int rc = tqt_wait(pid, 20000);
	cr_expect_eq(rc, 0, "child exit %d (-1: still blocked at the deadline)", rc);
	int r = tq_take(q, &t, 1, 5 * SEC);
	cr_expect_eq(r, 1, "take: %d %s", r, tq_strerror(r));
	if (r == 1) {
		cr_expect_eq(t.value, 2);
		cr_expect_eq(tq_ack(q, &t, 1), 0);
	}
	close(fds[0]);
	close(fds[1]);
	tq_close(q);
	tq_destroy(name);
}

/* ---------------------------------------------------------------- leases */

Test(engine, leased_task_not_given_twice, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "lease-excl");
	tq_queue *a = create_queue(name, NULL);
	tq_queue *b = open_queue(name);
	cr_assert_eq(tq_push_int(a, 1, 0), 0);
	cr_assert_eq(tq_push_int(a, 2, 0), 0);
	tq_task ta, tb, tc;
	cr_assert_eq(tq_take(a, &ta, 1, 0), 1);
	cr_expect_eq(ta.value, 1);
	cr_assert_eq(tq_take(b, &tb, 1, 0), 1);
	cr_expect_eq(tb.value, 2);
	cr_expect_neq(ta.id, tb.id);
	cr_expect_eq(tq_take(a, &tc, 1, 0), TQ_EAGAIN);
	cr_expect_eq(tq_take(b, &tc, 1, 0), TQ_EAGAIN);
	cr_expect_eq(tq_take(b, &tc, 1, 50 * MS), TQ_ETIMEDOUT);

	tq_stats s = get_stats(a);
	cr_expect_eq(s.leased, 2);
	cr_expect_eq(s.ready, 0);

	cr_expect_eq(tq_touch(a, &ta, 1, 0), 0);
	cr_expect_eq(tq_touch(b, &tb, 1, 60 * SEC), 0);
	cr_expect_eq(tq_ack(a, &ta, 1), 0);
	cr_expect_eq(tq_ack(b, &tb, 1), 0);
	s = get_stats(a);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.total.acked, 2);
	tq_close(b);
	tq_close(a);
	tq_destroy(name);
}

Test(engine, touch_extends_lease, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "touch");
	tq_config cfg = small_config(16);
	cfg.lease_ns = 200 * MS;
	tq_queue *a = create_queue(name, &cfg);
	tq_queue *b = open_queue(name);
	cr_assert_eq(tq_push_int(a, 5, 0), 0);
	tq_task ta, tb;
	cr_assert_eq(tq_take(a, &ta, 1, 0), 1);
	cr_assert_eq(tq_touch(a, &ta, 1, 30 * SEC), 0);
	/* long past the original lease; b's waiting runs maintenance */
	int r = tq_take(b, &tb, 1, 700 * MS);
	cr_expect_eq(r, TQ_ETIMEDOUT, "the touched task was retaken: %d", r);
	cr_expect_eq(tq_ack(a, &ta, 1), 0);
	tq_stats s = get_stats(a);
	cr_expect_eq(s.total.expired, 0);
	cr_expect_eq(s.total.acked, 1);
	tq_close(b);
	tq_close(a);
	tq_destroy(name);
}

Test(engine, lease_expiry_redelivers_and_old_ack_is_lost, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "lease-expiry");
	tq_config cfg = small_config(16);
	cfg.lease_ns = 50 * MS;
	tq_queue *a = create_queue(name, &cfg);
	tq_queue *b = open_queue(name);
	cr_assert_eq(tq_push_data(a, TQ_KIND_STRING, "expire me", 9, 0), 0);
	tq_task ta, tb;
	cr_assert_eq(tq_take(a, &ta, 1, 0), 1);
	cr_expect_eq(ta.attempt, 1);
	int r = tq_take(b, &tb, 1, 5 * SEC);
	cr_assert_eq(r, 1, "the expired task was not redelivered: %d %s", r, tq_strerror(r));
	cr_expect_eq(tq_touch(b, &tb, 1, 30 * SEC), 0);
	cr_expect_eq(tb.id, ta.id);
	cr_expect_eq(tb.attempt, 2);
	cr_expect_eq(tb.enqueued_ns, ta.enqueued_ns);
	cr_expect_eq(tb.len, 9);
	cr_expect(memcmp(tb.data, "expire me", 9) == 0);

	cr_expect_eq(tq_ack(a, &ta, 1), TQ_ELOST);
	cr_expect_eq(tq_touch(a, &ta, 1, 0), TQ_ELOST);
	cr_expect_eq(tq_fail(a, &ta, 1, 1, "late"), TQ_ELOST);
	cr_expect_eq(tq_ack(b, &tb, 1), 0);

	tq_stats s = get_stats(a);
	cr_expect_eq(s.total.expired, 1);
	cr_expect_geq(s.total.lost, 1);
	cr_expect_eq(s.total.taken, 2);
	cr_expect_eq(s.total.acked, 1);
	cr_expect_eq(s.total.failed, 0);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.free_slots, 16);
	tq_close(b);
	tq_close(a);
	tq_destroy(name);
}

static int list_dead(tq_queue *q, tq_dead_info *out, size_t max)
{
	memset(out, 0, max * sizeof *out);
	return tq_dead_list(q, out, max, NULL, 0);
}

Test(engine, fail_retry_dead_kick_purge, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "fail-dead");
	tq_config cfg = small_config(16);
	cfg.max_attempts = 2;
	cfg.backoff_base_ns = 1 * MS;
	cfg.backoff_max_ns = 1 * MS;
	tq_queue *q = create_queue(name, &cfg);
	const char *payload = "{\"job\":\"resize\",\"w\":640}";
	uint32_t plen = (uint32_t)strlen(payload);
	tq_task in = { .kind = TQ_KIND_JSON, .data = payload, .len = plen };
	cr_assert_eq(tq_push(q, &in, 1, 0), 1);

	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(t.id, in.id);
	cr_expect_eq(t.attempt, 1);
	uint64_t enq = t.enqueued_ns;
	cr_expect_eq(tq_fail(q, &t, 1, 42, "first failure"), 0);

	int r = tq_take(q, &t, 1, 5 * SEC);
	cr_assert_eq(r, 1, "retry not delivered: %d %s", r, tq_strerror(r));
	cr_expect_eq(t.id, in.id);
	cr_expect_eq(t.attempt, 2);
	cr_expect_eq(t.enqueued_ns, enq);
	cr_expect_eq(t.kind, TQ_KIND_JSON);
	cr_expect_eq(t.len, plen);
	cr_expect(memcmp(t.data, payload, plen) == 0);
	cr_expect_eq(tq_fail(q, &t, 1, -77, "second failure: out of paint"), 0);

	tq_stats s = get_stats(q);
	cr_expect_eq(s.dead, 1);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.total.failed, 2);
	cr_expect_eq(s.total.retried, 1);
	cr_expect_eq(s.total.dead, 1);
	cr_expect_eq(tq_take(q, &t, 1, 30 * MS), TQ_ETIMEDOUT);

	tq_dead_info di[4];
	char data[4][64];
	memset(di, 0, sizeof di);
	memset(data, 0, sizeof data);
	r = tq_dead_list(q, di, 4, data, sizeof data[0]);
	cr_assert_eq(r, 1, "dead_list: %d", r);
	cr_expect_eq(di[0].id, in.id);
	cr_expect_eq(di[0].kind, TQ_KIND_JSON);
	cr_expect_eq(di[0].len, plen);
	cr_expect_eq(di[0].attempts, 2);
	cr_expect_eq(di[0].last_err, -77);
	cr_expect_str_eq(di[0].last_msg, "second failure: out of paint");
	cr_expect_neq(di[0].died_ns, 0);
	cr_expect_leq(di[0].died_ns, tq_now_ns());
	cr_expect(memcmp(data[0], payload, plen) == 0, "dead payload: %.*s",
		  (int)plen, data[0]);

	/* truncated copy: stride smaller than the payload */
	char small[2][8];
	memset(small, 0x5a, sizeof small);
	r = tq_dead_list(q, di, 2, small, sizeof small[0]);
	cr_assert_eq(r, 1);
	cr_expect_eq(di[0].len, plen);
	cr_expect(memcmp(small[0], payload, 8) == 0);
	cr_expect_eq(small[1][0], 0x5a, "wrote past the listed entries");

	/* kick: back to ready, attempts reset */
	cr_expect_eq(tq_dead_kick(q, in.id + 1000), TQ_ENOTFOUND);
	cr_expect_eq(tq_dead_kick(q, in.id), 1);
	cr_expect_eq(list_dead(q, di, 4), 0);
	cr_expect_eq(tq_dead_kick(q, in.id), TQ_ENOTFOUND);
	r = tq_take(q, &t, 1, 5 * SEC);
	cr_assert_eq(r, 1, "kicked task not delivered: %d %s", r, tq_strerror(r));
	cr_expect_eq(t.id, in.id);
	cr_expect_eq(t.attempt, 1);
	cr_expect_eq(t.len, plen);
	cr_expect(memcmp(t.data, payload, plen) == 0);

	/* two more failures: dead again, then purge */
	cr_expect_eq(tq_fail(q, &t, 1, 1, NULL), 0);
	r = tq_take(q, &t, 1, 5 * SEC);
	cr_assert_eq(r, 1);
	cr_expect_eq(t.attempt, 2);
	char longmsg[200];
	memset(longmsg, 'm', sizeof longmsg - 1);
	longmsg[sizeof longmsg - 1] = '\0';
	cr_expect_eq(tq_fail(q, &t, 1, 2, longmsg), 0);
	cr_assert_eq(list_dead(q, di, 4), 1);
	cr_expect_eq(di[0].last_err, 2);
	cr_expect_eq(strlen(di[0].last_msg), TQ_ERRMSG_MAX - 1, "message kept: %zu bytes",
		     strlen(di[0].last_msg));
	cr_expect(strncmp(di[0].last_msg, longmsg, TQ_ERRMSG_MAX - 1) == 0);

	cr_expect_eq(tq_dead_purge(q, in.id + 1000), TQ_ENOTFOUND);
	cr_expect_eq(tq_dead_purge(q, in.id), 1);
	cr_expect_eq(tq_dead_purge(q, in.id), TQ_ENOTFOUND);
	cr_expect_eq(list_dead(q, di, 4), 0);
	s = get_stats(q);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.free_slots, 16);
	cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	tq_close(q);
	tq_destroy(name);
}

Test(engine, dead_kick_and_purge_all, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-all");
	tq_config cfg = small_config(16);
	cfg.max_attempts = 1;
	tq_queue *q = create_queue(name, &cfg);
	tq_task t[5];
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	cr_assert_eq(tq_take(q, t, 5, 0), 5);
	cr_expect_eq(tq_fail(q, t, 5, 3, "x"), 0);
	tq_dead_info di[8];
	cr_expect_eq(list_dead(q, di, 8), 5);
	for (unsigned k = 0; k < 5; k++) {
		cr_expect_eq(di[k].value, k, "dead list not oldest first");
		cr_expect_eq(di[k].kind, TQ_KIND_INT);
		cr_expect_eq(di[k].attempts, 1);
	}
	cr_expect_eq(list_dead(q, di, 2), 2);
	cr_expect_eq(di[0].value, 0);
	cr_expect_eq(di[1].value, 1);
	cr_expect_eq(tq_dead_kick(q, TQ_ALL), 5);
	cr_expect_eq(tq_dead_kick(q, TQ_ALL), 0);
	cr_assert_eq(tq_take(q, t, 5, 0), 5);
	for (unsigned k = 0; k < 5; k++) {
		cr_expect_eq(t[k].value, k);
		cr_expect_eq(t[k].attempt, 1);
	}
	cr_expect_eq(tq_fail(q, t, 5, 3, "y"), 0);
	cr_expect_eq(tq_dead_purge(q, TQ_ALL), 5);
	cr_expect_eq(tq_dead_purge(q, TQ_ALL), 0);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.free_slots, 16);
	cr_expect_eq(s.total.dead, 10);
	tq_close(q);
	tq_destroy(name);
}

Test(engine, dead_capacity_drops_oldest, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-cap");
	tq_config cfg = small_config(10);
	cfg.max_attempts = 1;
	cfg.dead_capacity = 2;
	tq_queue *q = create_queue(name, &cfg);
	uint64_t ids[3];
	for (unsigned k = 0; k < 3; k++) {
		tq_task t;
		cr_assert_eq(tq_push_int(q, 100 + k, 0), 0);
		cr_assert_eq(tq_take(q, &t, 1, 0), 1);
		cr_expect_eq(t.value, 100 + k);
		ids[k] = t.id;
		cr_expect_eq(tq_fail(q, &t, 1, (int)k, "dead"), 0);
	}
	tq_dead_info di[4];
	int r = list_dead(q, di, 4);
	cr_expect_eq(r, 2, "dead listed: %d", r);
	cr_expect_eq(di[0].id, ids[1]);
	cr_expect_eq(di[0].value, 101);
	cr_expect_eq(di[0].last_err, 1);
	cr_expect_eq(di[1].id, ids[2]);
	cr_expect_eq(di[1].value, 102);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.dead_dropped, 1);
	cr_expect_eq(s.total.dead, 3);
	cr_expect_eq(s.dead, 2);
	cr_expect_eq(s.free_slots, 8);
	cr_expect_eq(tq_dead_kick(q, ids[0]), TQ_ENOTFOUND);
	tq_close(q);
	tq_destroy(name);
}

/* ------------------------------------------------------------- run state */

struct state_arg {
	const char *name;
	int expect_state;
	int set_state;
};

static int state_child(void *arg)
{
	struct state_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	int s = tq_run_state(q);
	if (s != a->expect_state)
		return 11;
	if (tq_set_run_state(q, a->set_state) != 0)
		return 12;
	tq_close(q);
	return 0;
}

Test(engine, run_state_across_processes, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "run-state");
	tq_queue *q = create_queue(name, NULL);
	cr_expect_eq(tq_run_state(q), TQ_RUNNING);
	cr_assert_eq(tq_set_run_state(q, TQ_DRAINING), 0);
	cr_expect_eq(tq_run_state(q), TQ_DRAINING);

	struct state_arg a = { name, TQ_DRAINING, TQ_PAUSED };
	cr_expect_eq(tqt_wait(tqt_fork(state_child, &a), 20000), 0);
	cr_expect_eq(tq_run_state(q), TQ_PAUSED);
	cr_expect_eq(get_stats(q).run_state, TQ_PAUSED);

	a = (struct state_arg){ name, TQ_PAUSED, TQ_STOPPED };
	cr_expect_eq(tqt_wait(tqt_fork(state_child, &a), 20000), 0);
	cr_expect_eq(tq_run_state(q), TQ_STOPPED);

	a = (struct state_arg){ name, TQ_STOPPED, TQ_RUNNING };
	cr_expect_eq(tqt_wait(tqt_fork(state_child, &a), 20000), 0);
	cr_expect_eq(tq_run_state(q), TQ_RUNNING);
	tq_close(q);
	tq_destroy(name);
}

Test(engine, paused_and_stopped_take_nothing, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "paused");
	tq_queue *q = create_queue(name, NULL);
	cr_assert_eq(tq_push_int(q, 7, 0), 0);
	tq_task t;

	int states[2] = { TQ_PAUSED, TQ_STOPPED };
	for (unsigned k = 0; k < 2; k++) {
		cr_assert_eq(tq_set_run_state(q, states[k]), 0);
		cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN, "state %d", states[k]);
		uint64_t t0 = tq_now_ns();
		int r = tq_take(q, &t, 1, 30 * MS);
		cr_expect_eq(r, TQ_ETIMEDOUT, "state %d: %d", states[k], r);
		cr_expect_geq(tq_now_ns() - t0, 30 * MS);
		cr_expect_eq(get_stats(q).ready, 1);
	}
	cr_assert_eq(tq_set_run_state(q, TQ_RUNNING), 0);
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(t.value, 7);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	tq_close(q);
	tq_destroy(name);
}

Test(engine, paused_waiter_takes_after_resume, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "pause-resume");
	tq_queue *q = create_queue(name, NULL);
	cr_assert_eq(tq_set_run_state(q, TQ_PAUSED), 0);
	cr_assert_eq(tq_push_int(q, 31, 0), 0);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct blocked_arg a = { name, fds[1], 31 };
	pid_t pid = tqt_fork(blocked_consumer, &a);
	char c;
	cr_assert_eq(read(fds[0], &c, 1), 1);
	wait_until_sleeping(pid);
	cr_expect_eq(get_stats(q).ready, 1, "taken while paused");
	cr_expect_eq(tq_set_run_state(q, TQ_RUNNING), 0);
	int rc = tqt_wait(pid, 20000);
	cr_expect_eq(rc, 0, "child exit %d (-1: still waiting at the deadline)", rc);
	close(fds[0]);
	close(fds[1]);
	tq_close(q);
	tq_destroy(name);
}

/* ----------------------------------------------------------------- close */

Test(engine, close_returns_leases_to_ready, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "close-leases");
	tq_queue *q = create_queue(name, NULL);
	tq_queue *a = open_queue(name);
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	tq_task t[5];
	cr_assert_eq(tq_take(a, t, 3, 0), 3);
	cr_expect_eq(tq_ack(a, t, 1), 0); /* value 0 done */
	uint64_t id1 = t[1].id, id2 = t[2].id;
	cr_expect_eq(get_stats(q).leased, 2);
	cr_expect_eq(tq_close(a), 0);

	tq_stats s = get_stats(q);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.ready, 4);
	bool seen1 = false, seen2 = false;
	unsigned got = 0;
	while (got < 4) {
		int r = tq_take(q, t + got, 4 - got, 0);
		cr_assert_gt(r, 0, "take after close: %d %s", r, tq_strerror(r));
		got += (unsigned)r;
	}
	for (unsigned k = 0; k < 4; k++) {
		seen1 |= t[k].id == id1 && t[k].value == 1;
		seen2 |= t[k].id == id2 && t[k].value == 2;
	}
	cr_expect(seen1 && seen2, "leases of the closed handle not returned");
	cr_expect_eq(tq_ack(q, t, 4), 0);
	s = get_stats(q);
	cr_expect_eq(s.total.acked, 5);
	cr_expect_eq(s.free_slots, s.capacity);
	tq_close(q);
	tq_destroy(name);
}

struct close_child_arg {
	const char *name;
	unsigned n;
};

static int close_child(void *arg)
{
	struct close_child_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	tq_task t[8];
	int r = tq_take(q, t, a->n, 0);
	if (r != (int)a->n)
		return 11;
	return tq_close(q) == 0 ? 0 : 12;
}

Test(engine, close_in_other_process_returns_leases, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "close-child");
	tq_queue *q = create_queue(name, NULL);
	for (unsigned k = 0; k < 6; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	struct close_child_arg a = { name, 6 };
	cr_assert_eq(tqt_wait(tqt_fork(close_child, &a), 20000), 0);
	tq_task t[6];
	unsigned got = 0;
	while (got < 6) {
		int r = tq_take(q, t + got, 6 - got, 0);
		cr_assert_gt(r, 0, "take: %d %s", r, tq_strerror(r));
		got += (unsigned)r;
	}
	unsigned seen = 0;
	for (unsigned k = 0; k < 6; k++)
		if (t[k].value < 6)
			seen |= 1u << t[k].value;
	cr_expect_eq(seen, 0x3fu, "values returned: mask %#x", seen);
	cr_expect_eq(tq_ack(q, t, 6), 0);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.taken, 12);
	cr_expect_eq(s.total.acked, 6);
	cr_expect_eq(s.leased, 0);
	tq_close(q);
	tq_destroy(name);
}

/* ----------------------------------------------------------------- stats */

Test(engine, stats_after_known_workload, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "stats");
	tq_config cfg = small_config(100);
	cfg.max_attempts = 3;
	cfg.dead_capacity = 10;
	cfg.backoff_base_ns = 60 * SEC; /* the retry stays delayed */
	cfg.backoff_max_ns = 120 * SEC;
	tq_queue *q = create_queue(name, &cfg);

	tq_config got;
	memset(&got, 0, sizeof got);
	cr_assert_eq(tq_config_get(q, &got), 0);
	cr_expect_eq(got.capacity, 100);
	cr_expect_eq(got.max_payload, cfg.max_payload);
	cr_expect_eq(got.max_attempts, 3);
	cr_expect_eq(got.dead_capacity, 10);
	cr_expect_eq(got.lease_ns, cfg.lease_ns);
	cr_expect_eq(got.backoff_base_ns, 60 * SEC);
	cr_expect_eq(got.backoff_max_ns, 120 * SEC);

	uint64_t t0 = tq_now_ns();
	for (unsigned k = 0; k < 10; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	tq_task t[4];
	cr_assert_eq(tq_take(q, t, 4, 0), 4);
	cr_expect_eq(tq_ack(q, t, 2), 0);
	cr_expect_eq(tq_fail(q, t + 2, 1, 9, "later"), 0);
	/* t[3] stays leased */

	tq_stats s = get_stats(q);
	cr_expect_eq(s.capacity, 100);
	cr_expect_eq(s.ready, 6);
	cr_expect_eq(s.leased, 1);
	cr_expect_eq(s.delayed, 1);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.free_slots, 92);
	cr_expect_eq(s.procs, 1);
	cr_expect_eq(s.run_state, TQ_RUNNING);
	cr_expect_geq(s.oldest_ready_ns, t0);
	cr_expect_leq(s.oldest_ready_ns, tq_now_ns());
	cr_expect_eq(s.total.pushed, 10);
	cr_expect_eq(s.total.taken, 4);
	cr_expect_eq(s.total.acked, 2);
	cr_expect_eq(s.total.failed, 1);
	cr_expect_eq(s.total.retried, 1);
	cr_expect_eq(s.total.dead, 0);
	cr_expect_eq(s.total.expired, 0);
	cr_expect_eq(s.total.recovered, 0);
	cr_expect_eq(s.total.lost, 0);

	tq_counters self;
	memset(&self, 0xff, sizeof self);
	cr_assert_eq(tq_counters_self(q, &self), 0);
	cr_expect_eq(self.pushed, 10);
	cr_expect_eq(self.taken, 4);
	cr_expect_eq(self.acked, 2);
	cr_expect_eq(self.failed, 1);
	cr_expect_eq(self.retried, 1);

	/* a second handle: its own counters start at 0, totals add up */
	tq_queue *b = open_queue(name);
	cr_assert_eq(tq_counters_self(b, &self), 0);
	cr_expect_eq(self.pushed, 0);
	cr_expect_eq(self.taken, 0);
	tq_task tb[6];
	unsigned n = 0;
	while (n < 6) {
		int r = tq_take(b, tb + n, 6 - n, 0);
		cr_assert_gt(r, 0);
		n += (unsigned)r;
	}
	cr_expect_eq(tq_ack(b, tb, 6), 0);
	cr_assert_eq(tq_counters_self(b, &self), 0);
	cr_expect_eq(self.taken, 6);
	cr_expect_eq(self.acked, 6);
	s = get_stats(q);
	cr_expect_eq(s.total.taken, 10);
	cr_expect_eq(s.total.acked, 8);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.oldest_ready_ns, 0);
	cr_expect_eq(tq_close(b), 0);
	s = get_stats(q);
	cr_expect_eq(s.total.taken, 10, "a closed handle's counters are folded in");
	cr_expect_eq(s.total.acked, 8);
	cr_expect_eq(tq_ack(q, t + 3, 1), 0);
	s = get_stats(q);
	cr_expect_eq(s.total.acked, 9);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.delayed, 1);
	cr_expect_eq(s.free_slots, 99);
	tq_close(q);
	tq_destroy(name);
}

struct hold_arg {
	const char *name;
	int ready_fd;
	int go_fd;     /* read end; EOF means: close and exit */
	int close_fd;  /* write end of the go pipe, closed by the child */
};

static int hold_child(void *arg)
{
	struct hold_arg *a = arg;
	close(a->close_fd);
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	if (write(a->ready_fd, "r", 1) != 1)
		return 11;
	char c;
	while (read(a->go_fd, &c, 1) > 0)
		;
	return tq_close(q) == 0 ? 0 : 12;
}

static bool has_pid(const tq_proc_info *pi, int n, pid_t pid)
{
	for (int k = 0; k < n; k++)
		if (pi[k].pid == pid)
			return true;
	return false;
}

Test(engine, procs_lists_attached_handles, .timeout = 60)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "procs");
	uint64_t t0 = tq_now_ns();
	tq_queue *q = create_queue(name, NULL);
	int ready[2], go[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	struct hold_arg a = { name, ready[1], go[0], go[1] };
	pid_t pids[2];
	pids[0] = tqt_fork(hold_child, &a);
	pids[1] = tqt_fork(hold_child, &a);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1);
	cr_assert_eq(read(ready[0], &c, 1), 1);

	tq_proc_info pi[8];
	memset(pi, 0, sizeof pi);
	int n = tq_procs(q, pi, 8);
	cr_expect_eq(n, 3, "tq_procs: %d", n);
	cr_expect(has_pid(pi, n, getpid()), "own pid not listed");
	cr_expect(has_pid(pi, n, pids[0]), "child 1 not listed");
	cr_expect(has_pid(pi, n, pids[1]), "child 2 not listed");
	for (int k = 0; k < n; k++) {
		cr_expect_geq(pi[k].attached_ns, t0);
		cr_expect_leq(pi[k].attached_ns, tq_now_ns());
		for (int j = 0; j < k; j++)
			cr_expect_neq(pi[k].slot, pi[j].slot);
	}
	cr_expect_eq(get_stats(q).procs, 3);
	cr_expect_eq(tq_procs(q, pi, 1), 1);

	close(go[1]);
	close(go[0]);
	int bad = tqt_wait_all(pids, 2, 20000);
	cr_expect_eq(bad, 0);
	n = tq_procs(q, pi, 8);
	cr_expect_eq(n, 1, "after the children closed: %d", n);
	cr_expect_eq(pi[0].pid, getpid());
	cr_expect_eq(get_stats(q).procs, 1);
	close(ready[0]);
	close(ready[1]);
	tq_close(q);
	tq_destroy(name);
}
