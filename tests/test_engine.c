/* SPDX-License-Identifier: MIT */
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
#include <stdatomic.h>

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

/* Names of the queues this test created; the .fini of every test destroys
 * them, so that a failed assertion leaves no segment behind. */
static char created[8][TQ_NAME_MAX + 1];
static unsigned ncreated;

static void remember(const char *name)
{
	for (unsigned k = 0; k < ncreated; k++)
		if (strcmp(created[k], name) == 0)
			return;
	if (ncreated < 8 && strlen(name) < sizeof created[0])
		strcpy(created[ncreated++], name);
}

static void cleanup_queues(void)
{
	for (unsigned k = 0; k < ncreated; k++)
		tq_destroy(created[k]);
	ncreated = 0;
}

static tq_queue *create_queue(const char *name, const tq_config *cfg)
{
	tq_queue *q = NULL;
	tq_destroy(name); /* a leftover from an earlier crashed run */
	remember(name);
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

enum mix_policy {
	POL_ACK,   /* every task is acked on its first delivery */
	POL_RETRY, /* tasks with i % 3 == 0 fail once, then are acked on attempt 2 */
	POL_DEAD,  /* tasks with i % 4 == 0 fail with max_attempts 1: dead */
};

struct mix_opts {
	unsigned producers, consumers, batch, tpp;
	uint16_t kind;
	uint32_t capacity;
	enum mix_mode mode;
	enum mix_policy policy;
};

struct mix_shared {
	struct report rep;
	uint64_t consumed; /* tasks that reached their end: acked or dead */
	uint64_t dups;
	uint64_t pushed;
};

struct mix {
	struct mix_opts o;
	const char *name;
	tq_queue *shared_q;
	uint64_t total;
	struct mix_shared *sh;
	tqt_bitmap bm;      /* tasks that reached their end */
	uint64_t *push_ids; /* [total], shared */
	uint64_t *take_ids; /* [total], shared */
};

struct mix_worker {
	struct mix *m;
	unsigned idx;
	bool consumer;
	int rc;
};

static bool mix_retried(const struct mix *m, unsigned i)
{
	return m->o.policy == POL_RETRY && i % 3 == 0;
}

static bool mix_dies(const struct mix *m, unsigned i)
{
	return m->o.policy == POL_DEAD && i % 4 == 0;
}

static tq_queue *mix_handle(struct mix *m)
{
	if (m->o.mode == MIX_THREADS_SHARED)
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
	if (m->o.mode != MIX_THREADS_SHARED) {
		int rc = tq_close(q);
		if (rc != 0)
			report_err(&m->sh->rep, "tq_close: %d %s", rc, tq_strerror(rc));
	}
}

static int mix_producer(void *arg)
{
	struct mix_worker *w = arg;
	struct mix *m = w->m;
	unsigned p = w->idx, batch = m->o.batch, tpp = m->o.tpp;
	tq_queue *q = mix_handle(m);
	if (!q)
		return 1;
	tq_task *tasks = calloc(batch, sizeof *tasks);
	char *bufs = malloc((size_t)batch * PAYLOAD_BUF);
	if (!tasks || !bufs)
		abort();
	uint64_t last_id = 0;
	bool have_last = false;
	int bad = 0;
	for (unsigned i = 0; i < tpp && !bad;) {
		unsigned n = tpp - i < batch ? tpp - i : batch;
		for (unsigned j = 0; j < n; j++) {
			tq_task *t = &tasks[j];
			memset(t, 0, sizeof *t);
			t->kind = m->o.kind;
			if (m->o.kind == TQ_KIND_INT) {
				t->value = (uint64_t)p << 32 | (i + j);
			} else {
				char *b = bufs + (size_t)j * PAYLOAD_BUF;
				t->len = make_payload(m->o.kind, p, i + j, b);
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
				m->push_ids[(uint64_t)p * tpp + i + done + (unsigned)j] = id;
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

/* Decodes a delivered task to (p, i), checking everything it carries.
 * Returns 0, or -1 (reported) if it cannot be decoded. */
static int mix_decode(struct mix *m, const tq_task *t, unsigned *pp, unsigned *ip)
{
	unsigned p, i;
	if (t->kind != m->o.kind) {
		report_err(&m->sh->rep, "kind %u, expected %u", t->kind, m->o.kind);
		return -1;
	}
	if (t->enqueued_ns == 0)
		report_err(&m->sh->rep, "id %llu: enqueued_ns 0", (unsigned long long)t->id);
	if (m->o.kind == TQ_KIND_INT) {
		p = (unsigned)(t->value >> 32);
		i = (unsigned)(t->value & 0xffffffffu);
	} else {
		int rc = parse_payload(m->o.kind, t->data, t->len, &p, &i);
		if (rc != 0) {
			report_err(&m->sh->rep, "id %llu: bad payload (%d), len %u",
				   (unsigned long long)t->id, rc, t->len);
			return -1;
		}
	}
	if (p >= m->o.producers || i >= m->o.tpp) {
		report_err(&m->sh->rep, "id %llu: decoded p=%u i=%u out of range",
			   (unsigned long long)t->id, p, i);
		return -1;
	}
	unsigned want = mix_retried(m, i) && t->attempt != 1 ? 2 : 1;
	if (t->attempt != want)
		report_err(&m->sh->rep, "p=%u i=%u: attempt %u", p, i, t->attempt);
	*pp = p;
	*ip = i;
	return 0;
}

/* The task reached its end (acked or dead): mark it. */
static void mix_done(struct mix *m, const tq_task *t, unsigned p, unsigned i)
{
	uint64_t k = (uint64_t)p * m->o.tpp + i;
	m->take_ids[k] = t->id;
	if (tqt_bitmap_set(m->bm, (size_t)k))
		__atomic_fetch_add(&m->sh->dups, 1, __ATOMIC_SEQ_CST);
}

static int mix_consumer(void *arg)
{
	struct mix_worker *w = arg;
	struct mix *m = w->m;
	unsigned batch = m->o.batch;
	tq_queue *q = mix_handle(m);
	if (!q)
		return 1;
	tq_task *out = calloc(batch, sizeof *out);
	tq_task *acks = calloc(batch, sizeof *acks);
	tq_task *fails = calloc(batch, sizeof *fails);
	if (!out || !acks || !fails)
		abort();
	uint64_t deadline = tqt_now_ms() + 45000;
	int bad = 0;
	while (__atomic_load_n(&m->sh->consumed, __ATOMIC_SEQ_CST) < m->total) {
		if (tqt_now_ms() > deadline) {
			report_err(&m->sh->rep, "consumer %u: deadline passed", w->idx);
			bad = 1;
			break;
		}
		int r = tq_take(q, out, batch, 20 * MS);
		if (r == TQ_ETIMEDOUT)
			continue;
		if (r <= 0 || (unsigned)r > batch) {
			report_err(&m->sh->rep, "consumer %u: tq_take(%u) = %d %s",
				   w->idx, batch, r, tq_strerror(r));
			bad = 1;
			break;
		}
		size_t na = 0, nf = 0;
		uint64_t ended = 0;
		for (int j = 0; j < r; j++) {
			unsigned p = 0, i = 0;
			if (mix_decode(m, &out[j], &p, &i) != 0) {
				acks[na++] = out[j];
				continue;
			}
			if (mix_retried(m, i) && out[j].attempt == 1) {
				fails[nf++] = out[j];
			} else if (mix_dies(m, i)) {
				char msg[64];
				snprintf(msg, sizeof msg, "p=%u i=%u died", p, i);
				int f = tq_fail(q, &out[j], 1, (int)(i & 0x7fff), msg);
				if (f != 0)
					report_err(&m->sh->rep, "tq_fail(dead): %d %s", f,
						   tq_strerror(f));
				mix_done(m, &out[j], p, i);
				ended++;
			} else {
				acks[na++] = out[j];
				mix_done(m, &out[j], p, i);
				ended++;
			}
		}
		if (nf) {
			int f = tq_fail(q, fails, nf, 5, "retry me");
			if (f != 0)
				report_err(&m->sh->rep, "consumer %u: tq_fail(%zu) = %d %s",
					   w->idx, nf, f, tq_strerror(f));
		}
		if (na) {
			int a = tq_ack(q, acks, na);
			if (a != 0)
				report_err(&m->sh->rep, "consumer %u: tq_ack(%zu) = %d %s",
					   w->idx, na, a, tq_strerror(a));
		}
		__atomic_fetch_add(&m->sh->consumed, ended, __ATOMIC_SEQ_CST);
	}
	free(out);
	free(acks);
	free(fails);
	mix_release(m, q);
	return bad;
}

static void *mix_thread(void *arg)
{
	struct mix_worker *w = arg;
	w->rc = w->consumer ? mix_consumer(w) : mix_producer(w);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Checks the dead-letter area after a POL_DEAD mix: exactly the tasks with
 * i % 4 == 0, each once, with their error, message and payload. */
static void mix_check_dead(struct mix *m, tq_queue *q, uint64_t ndead)
{
	tq_dead_info *di = calloc(ndead + 8, sizeof *di);
	char *data = calloc(ndead + 8, PAYLOAD_BUF);
	uint8_t *seen = calloc(m->total, 1);
	cr_assert(di && data && seen);
	int n = tq_dead_list(q, di, ndead + 8, data, PAYLOAD_BUF);
	cr_expect_eq(n, (int)ndead, "dead listed %d, expected %llu", n,
		     (unsigned long long)ndead);
	uint64_t bad = 0, twice = 0;
	for (int k = 0; k < n; k++) {
		unsigned p, i;
		if (m->o.kind == TQ_KIND_INT) {
			p = (unsigned)(di[k].value >> 32);
			i = (unsigned)(di[k].value & 0xffffffffu);
		} else if (parse_payload(m->o.kind, data + (size_t)k * PAYLOAD_BUF,
					 di[k].len, &p, &i) != 0) {
			bad++;
			continue;
		}
		char msg[64];
		snprintf(msg, sizeof msg, "p=%u i=%u died", p, i);
		if (p >= m->o.producers || i >= m->o.tpp || !mix_dies(m, i) ||
		    di[k].kind != m->o.kind || di[k].attempts != 1 ||
		    di[k].last_err != (int)(i & 0x7fff) || strcmp(di[k].last_msg, msg) != 0 ||
		    di[k].id != m->push_ids[(uint64_t)p * m->o.tpp + i]) {
			bad++;
			continue;
		}
		twice += seen[(uint64_t)p * m->o.tpp + i]++ != 0;
	}
	cr_expect_eq(bad, 0, "%llu dead entries do not match a task that should die",
		     (unsigned long long)bad);
	cr_expect_eq(twice, 0, "%llu tasks listed dead twice", (unsigned long long)twice);
	cr_expect_eq(tq_dead_purge(q, TQ_ALL), (int)ndead);
	free(di);
	free(data);
	free(seen);
}

static void run_mix_opts(const char *test, struct mix_opts o)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, test);
	tq_config cfg = small_config(o.capacity);
	if (o.policy == POL_RETRY) {
		cfg.max_attempts = 5;
		cfg.backoff_base_ns = 1 * MS;
		cfg.backoff_max_ns = 1 * MS;
	} else if (o.policy == POL_DEAD) {
		cfg.max_attempts = 1;
		cfg.dead_capacity = o.capacity;
	}
	tq_queue *q = create_queue(name, &cfg);

	struct mix m = {
		.o = o, .name = name, .shared_q = q,
		.total = (uint64_t)o.producers * o.tpp,
	};
	m.sh = tqt_shared(sizeof *m.sh);
	m.bm = tqt_bitmap_new(m.total);
	m.push_ids = tqt_shared(m.total * sizeof(uint64_t));
	m.take_ids = tqt_shared(m.total * sizeof(uint64_t));

	uint64_t special = 0;
	for (unsigned i = 0; i < o.tpp; i++)
		special += mix_retried(&m, i) || mix_dies(&m, i);
	special *= o.producers;
	cr_assert(o.policy != POL_DEAD || special <= o.capacity);

	unsigned nw = o.producers + o.consumers;
	struct mix_worker *ws = calloc(nw, sizeof *ws);
	cr_assert_not_null(ws);
	/* Consumers first, so some of them wait on an empty queue. */
	for (unsigned k = 0; k < nw; k++) {
		ws[k].m = &m;
		ws[k].consumer = k < o.consumers;
		ws[k].idx = k < o.consumers ? k : k - o.consumers;
	}
	int failed_workers = 0;

	if (o.mode == MIX_FORK) {
		pid_t *pids = calloc(nw, sizeof *pids);
		cr_assert_not_null(pids);
		for (unsigned k = 0; k < nw; k++)
			pids[k] = tqt_fork(ws[k].consumer ? mix_consumer : mix_producer, &ws[k]);
		failed_workers = tqt_wait_all(pids, nw, 50000);
		free(pids);
	} else {
		pthread_t *th = calloc(nw, sizeof *th);
		cr_assert_not_null(th);
		for (unsigned k = 0; k < nw; k++)
			cr_assert_eq(pthread_create(&th[k], NULL, mix_thread, &ws[k]), 0);
		for (unsigned k = 0; k < nw; k++) {
			pthread_join(th[k], NULL);
			if (ws[k].rc != 0)
				failed_workers++;
		}
		free(th);
	}

	tq_stats s = get_stats(q);
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

	uint64_t nretry = o.policy == POL_RETRY ? special : 0;
	uint64_t ndead = o.policy == POL_DEAD ? special : 0;
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.dead, ndead);
	cr_expect_eq(s.free_slots, s.slots - ndead);
	cr_expect_eq(s.total.pushed, m.total, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.total.acked, m.total - ndead, "acked %llu",
		     (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.taken, m.total + nretry, "taken %llu",
		     (unsigned long long)s.total.taken);
	cr_expect_eq(s.total.failed, nretry + ndead);
	cr_expect_eq(s.total.retried, nretry);
	cr_expect_eq(s.total.dead, ndead);
	cr_expect_eq(s.total.dead_overflow, ndead > s.dead_capacity ? ndead - s.dead_capacity : 0);
	cr_expect_eq(s.total.expired, 0);
	cr_expect_eq(s.total.recovered, 0);
	cr_expect_eq(s.total.lost, 0);
	if (o.policy == POL_DEAD)
		mix_check_dead(&m, q, ndead);

	tq_close(q);
	tq_destroy(name);
	free(ws);
}

static void run_mix_mode(const char *test, unsigned producers, unsigned consumers,
			 unsigned batch, uint16_t kind, unsigned tpp,
			 uint32_t capacity, enum mix_mode mode)
{
	struct mix_opts o = { producers, consumers, batch, tpp, kind, capacity, mode, POL_ACK };
	run_mix_opts(test, o);
}

static void run_mix(const char *test, unsigned producers, unsigned consumers,
		    unsigned batch, uint16_t kind, unsigned tpp)
{
	run_mix_mode(test, producers, consumers, batch, kind, tpp, 10000, MIX_FORK);
}

Test(engine, mix_1x1_b1_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-1x1-b1-int", 1, 1, 1, TQ_KIND_INT, 5000);
}

Test(engine, mix_1x1_b1_string, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-1x1-b1-str", 1, 1, 1, TQ_KIND_STRING, 3000);
}

Test(engine, mix_1x1_b64_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-1x1-b64-int", 1, 1, 64, TQ_KIND_INT, 50000);
}

Test(engine, mix_1x1_b64_json, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-1x1-b64-json", 1, 1, 64, TQ_KIND_JSON, 20000);
}

Test(engine, mix_2x3_b64_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-2x3-b64-int", 2, 3, 64, TQ_KIND_INT, 25000);
}

Test(engine, mix_3x2_b7_string, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-3x2-b7-str", 3, 2, 7, TQ_KIND_STRING, 5000);
}

Test(engine, mix_4x4_b64_json, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-4x4-b64-json", 4, 4, 64, TQ_KIND_JSON, 10000);
}

Test(engine, mix_4x4_b1_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-4x4-b1-int", 4, 4, 1, TQ_KIND_INT, 5000);
}

Test(engine, mix_1x8_b64_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-1x8-b64-int", 1, 8, 64, TQ_KIND_INT, 40000);
}

Test(engine, mix_2x2_b1000_int, .timeout = 60, .fini = cleanup_queues)
{
	run_mix("mix-2x2-b1000-int", 2, 2, 1000, TQ_KIND_INT, 30000);
}

Test(engine, mix_2x2_b1000_string_small_queue, .timeout = 60, .fini = cleanup_queues)
{
	/* batches far larger than the queue: pushes must wait for room */
	run_mix_mode("mix-2x2-b1000-str-cap300", 2, 2, 1000, TQ_KIND_STRING, 10000,
		     300, MIX_FORK);
}

Test(engine, mix_capacity1_2x2_b3, .timeout = 60, .fini = cleanup_queues)
{
	run_mix_mode("mix-cap1-2x2-b3", 2, 2, 3, TQ_KIND_INT, 2000, 1, MIX_FORK);
}

Test(engine, mix_capacity1_2x2_b3_json, .timeout = 60, .fini = cleanup_queues)
{
	run_mix_mode("mix-cap1-2x2-b3-json", 2, 2, 3, TQ_KIND_JSON, 1000, 1, MIX_FORK);
}

Test(engine, mix_threads_own_handles, .timeout = 60, .fini = cleanup_queues)
{
	run_mix_mode("mix-thr-own", 2, 2, 16, TQ_KIND_STRING, 10000, 10000,
		     MIX_THREADS_OWN);
}

Test(engine, mix_threads_own_handles_int_small, .timeout = 60, .fini = cleanup_queues)
{
	run_mix_mode("mix-thr-own-small", 2, 2, 5, TQ_KIND_INT, 10000, 8,
		     MIX_THREADS_OWN);
}

Test(engine, mix_threads_shared_handle, .timeout = 60, .fini = cleanup_queues)
{
	run_mix_mode("mix-thr-shared", 2, 2, 64, TQ_KIND_JSON, 10000, 10000,
		     MIX_THREADS_SHARED);
}

Test(engine, mix_retry_2x3_b16_int, .timeout = 60, .fini = cleanup_queues)
{
	struct mix_opts o = { 2, 3, 16, 6000, TQ_KIND_INT, 1000, MIX_FORK, POL_RETRY };
	run_mix_opts("mix-retry-2x3-b16-int", o);
}

Test(engine, mix_retry_3x2_b5_string_threads, .timeout = 60, .fini = cleanup_queues)
{
	struct mix_opts o = { 3, 2, 5, 2000, TQ_KIND_STRING, 512, MIX_THREADS_OWN, POL_RETRY };
	run_mix_opts("mix-retry-3x2-b5-str-thr", o);
}

Test(engine, mix_dead_2x2_b8_json, .timeout = 60, .fini = cleanup_queues)
{
	struct mix_opts o = { 2, 2, 8, 3000, TQ_KIND_JSON, 4000, MIX_FORK, POL_DEAD };
	run_mix_opts("mix-dead-2x2-b8-json", o);
}

Test(engine, mix_dead_2x3_b64_int, .timeout = 60, .fini = cleanup_queues)
{
	struct mix_opts o = { 2, 3, 64, 5000, TQ_KIND_INT, 10000, MIX_FORK, POL_DEAD };
	run_mix_opts("mix-dead-2x3-b64-int", o);
}

/* Leases of 1 ms against consumers that sometimes work longer: expiry and
 * ack race. Whatever happens, each task is acked successfully exactly once,
 * every expiry makes one more delivery and one lost ack. */
struct race {
	const char *name;
	unsigned n, batch;
	struct report rep;
	uint64_t acked;   /* successful acks, from the handles' own counters */
	uint64_t elost;   /* tq_ack calls that returned TQ_ELOST */
	uint64_t dups;    /* tasks acked successfully twice (batch 1 only) */
	tqt_bitmap seen;  /* delivered at least once */
	tqt_bitmap done;  /* acked successfully (batch 1 only) */
};

static int race_producer(void *arg)
{
	struct race *r = arg;
	tq_queue *q = NULL;
	if (tq_open(r->name, &q) != 0)
		return 1;
	tq_task t[32];
	for (unsigned v = 0; v < r->n;) {
		unsigned n = r->n - v < 32 ? r->n - v : 32;
		memset(t, 0, sizeof t);
		for (unsigned j = 0; j < n; j++) {
			t[j].kind = TQ_KIND_INT;
			t[j].value = v + j;
		}
		int k = tq_push(q, t, n, TQ_WAIT_FOREVER);
		if (k != (int)n) {
			report_err(&r->rep, "race push = %d", k);
			tq_close(q);
			return 1;
		}
		v += n;
	}
	tq_close(q);
	return 0;
}

static void busy_ms(unsigned ms)
{
	uint64_t end = tq_now_ns() + ms * MS;
	while (tq_now_ns() < end)
		;
}

static int race_consumer(void *arg)
{
	struct race *r = arg;
	tq_queue *q = NULL;
	if (tq_open(r->name, &q) != 0)
		return 1;
	tq_task t[16];
	uint64_t deadline = tqt_now_ms() + 45000, mine = 0;
	int bad = 0;
	while (__atomic_load_n(&r->acked, __ATOMIC_SEQ_CST) < r->n) {
		if (tqt_now_ms() > deadline) {
			report_err(&r->rep, "race consumer: deadline passed");
			bad = 1;
			break;
		}
		int k = tq_take(q, t, r->batch, 20 * MS);
		if (k == TQ_ETIMEDOUT)
			continue;
		if (k <= 0) {
			report_err(&r->rep, "race take = %d %s", k, tq_strerror(k));
			bad = 1;
			break;
		}
		bool slow = false;
		for (int j = 0; j < k; j++) {
			if (t[j].value >= r->n) {
				report_err(&r->rep, "race: value %llu", (unsigned long long)t[j].value);
				continue;
			}
			tqt_bitmap_set(r->seen, t[j].value);
			slow |= t[j].value % 10 == 0;
		}
		if (slow)
			busy_ms(3); /* the "work": longer than the lease */
		int a = tq_ack(q, t, (size_t)k);
		if (a != 0 && a != TQ_ELOST) {
			report_err(&r->rep, "race ack = %d %s", a, tq_strerror(a));
			bad = 1;
			break;
		}
		if (a == TQ_ELOST)
			__atomic_fetch_add(&r->elost, 1, __ATOMIC_SEQ_CST);
		if (r->batch == 1 && a == 0 && t[0].value < r->n &&
		    tqt_bitmap_set(r->done, t[0].value))
			__atomic_fetch_add(&r->dups, 1, __ATOMIC_SEQ_CST);
		tq_counters c;
		if (tq_counters_self(q, &c) != 0) {
			report_err(&r->rep, "tq_counters_self failed");
			bad = 1;
			break;
		}
		if (r->batch == 1 && c.acked - mine != (a == 0 ? 1u : 0u))
			report_err(&r->rep, "ack returned %d but own acked grew by %llu", a,
				   (unsigned long long)(c.acked - mine));
		__atomic_fetch_add(&r->acked, c.acked - mine, __ATOMIC_SEQ_CST);
		mine = c.acked;
	}
	tq_close(q);
	return bad;
}

static void run_race(const char *test, unsigned batch)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, test);
	tq_config cfg = small_config(256);
	cfg.lease_ns = 1 * MS;
	tq_queue *q = create_queue(name, &cfg);
	struct race *r = tqt_shared(sizeof *r);
	r->name = name;
	r->n = 5000;
	r->batch = batch;
	r->seen = tqt_bitmap_new(r->n);
	r->done = tqt_bitmap_new(r->n);
	pid_t pids[4];
	for (unsigned k = 0; k < 3; k++)
		pids[k] = tqt_fork(race_consumer, r);
	pids[3] = tqt_fork(race_producer, r);
	int bad = tqt_wait_all(pids, 4, 50000);
	tq_stats s = get_stats(q);
	tq_close(q);
	tq_destroy(name);

	cr_log_info("%s: %llu expired, %llu lost, %llu ELOST acks", test,
		    (unsigned long long)s.total.expired, (unsigned long long)s.total.lost,
		    (unsigned long long)r->elost);
	cr_expect_eq(r->rep.errors, 0, "%llu errors, first: %s",
		     (unsigned long long)r->rep.errors, r->rep.first);
	cr_expect_eq(bad, 0);
	cr_expect_eq(tqt_bitmap_count(r->seen, r->n), r->n);
	if (batch == 1) {
		cr_expect_eq(r->dups, 0, "%llu tasks acked successfully twice",
			     (unsigned long long)r->dups);
		cr_expect_eq(tqt_bitmap_count(r->done, r->n), r->n);
	}
	cr_expect_eq(r->acked, r->n, "successful acks %llu", (unsigned long long)r->acked);
	cr_expect_eq(s.total.pushed, r->n);
	cr_expect_eq(s.total.acked, r->n, "acked %llu", (unsigned long long)s.total.acked);
	cr_expect_eq(s.total.taken, r->n + s.total.expired, "taken %llu, expired %llu",
		     (unsigned long long)s.total.taken, (unsigned long long)s.total.expired);
	cr_expect_eq(s.total.lost, s.total.expired, "lost %llu, expired %llu",
		     (unsigned long long)s.total.lost, (unsigned long long)s.total.expired);
	cr_expect_eq(s.total.recovered, 0);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 256);
}

Test(engine, lease_expiry_race_b1, .timeout = 60, .fini = cleanup_queues)
{
	run_race("race-b1", 1);
}

Test(engine, lease_expiry_race_b16, .timeout = 60, .fini = cleanup_queues)
{
	run_race("race-b16", 16);
}

/* ------------------------------------------------------- ids and content */

Test(engine, ids_attempt_enqueued_payload, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 100);
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

Test(engine, fifo_one_producer_one_consumer, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, take_empty_timeouts, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, push_full_timeouts_and_partial, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 0);

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

Test(engine, blocked_take_woken_by_push_from_other_process, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, blocked_push_woken_by_ack_from_other_process, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, leased_task_not_given_twice, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, touch_extends_lease, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, lease_expiry_redelivers_and_old_ack_is_lost, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
	tq_close(b);
	tq_close(a);
	tq_destroy(name);
}

static int list_dead(tq_queue *q, tq_dead_info *out, size_t max)
{
	memset(out, 0, max * sizeof *out);
	return tq_dead_list(q, out, max, NULL, 0);
}

Test(engine, fail_retry_dead_kick_purge, .timeout = 60, .fini = cleanup_queues)
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
	char longmsg[1500]; /* over TQ_ERRMSG_MAX: cut to its first 1023 bytes (ASCII) */
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
	cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	tq_close(q);
	tq_destroy(name);
}

Test(engine, dead_kick_and_purge_all, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-all");
	tq_config cfg = small_config(16);
	cfg.max_attempts = 1;
	cfg.dead_capacity = 16;
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
	cr_expect_eq(s.total.dead, 10);
	tq_close(q);
	tq_destroy(name);
}

/* Fails one task to death with message msg, returns its id. */
static uint64_t die_with(tq_queue *q, uint64_t value, const char *msg)
{
	tq_task t;
	cr_assert_eq(tq_push_int(q, value, 0), 0);
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(tq_fail(q, &t, 1, 7, msg), 0);
	return t.id;
}

/* A 900-byte reason is kept whole; one over the limit is cut at a UTF-8
 * character boundary (never inside the two bytes of an e-acute); several
 * dead tasks each show their own message, also after others were purged
 * and their entries reused. */
Test(engine, dead_messages_whole_and_cut_safely, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-msg");
	tq_config cfg = small_config(32);
	cfg.max_attempts = 1;
	cfg.dead_capacity = 4;
	tq_queue *q = create_queue(name, &cfg);
	static char m900[901], mlong[TQ_ERRMSG_MAX + 1], mine[4][1000];
	for (int i = 0; i < 900; i++)
		m900[i] = (char)('a' + i % 26);
	/* 1022 ASCII bytes, then e-acute (2 bytes): byte 1023 would split it. */
	memset(mlong, 'z', TQ_ERRMSG_MAX - 2);
	mlong[TQ_ERRMSG_MAX - 2] = (char)0xc3;
	mlong[TQ_ERRMSG_MAX - 1] = (char)0xa9;
	mlong[TQ_ERRMSG_MAX] = '\0';
	uint64_t id900 = die_with(q, 1, m900);
	uint64_t idlong = die_with(q, 2, mlong);
	static tq_dead_info di[8];
	cr_assert_eq(list_dead(q, di, 8), 2);
	cr_expect_eq(di[0].id, id900);
	cr_expect_str_eq(di[0].last_msg, m900, "the 900-byte message, whole");
	cr_expect_eq(di[1].id, idlong);
	cr_expect_eq(strlen(di[1].last_msg), TQ_ERRMSG_MAX - 2, "cut before the e-acute: %zu bytes",
		     strlen(di[1].last_msg));
	cr_expect(strncmp(di[1].last_msg, mlong, TQ_ERRMSG_MAX - 2) == 0);
	tq_event_info ev[32];
	int ne = tq_events(q, 0, ev, 32), seen = 0;
	for (int k = 0; k < ne; k++)
		if (ev[k].type == TQ_EV_DEAD && ev[k].a == id900) {
			seen++;
			cr_expect_eq(strlen(ev[k].msg), TQ_EVENT_MSG_MAX - 1);
			cr_expect(strncmp(ev[k].msg, m900, TQ_EVENT_MSG_MAX - 1) == 0);
		}
	cr_expect_eq(seen, 1);

	/* Reuse: purge both, bury four with long messages of their own, purge
	 * two, bury two more: each shows its own. */
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 2);
	uint64_t ids[6];
	for (int k = 0; k < 6; k++) {
		if (k < 4)
			snprintf(mine[k], sizeof mine[k], "%d:%0900d", k, k);
		if (k == 4) {
			cr_assert_eq(tq_dead_purge(q, ids[0]), 1);
			cr_assert_eq(tq_dead_purge(q, ids[2]), 1);
		}
		char msg[1000];
		snprintf(msg, sizeof msg, "%d:%0900d", k, k);
		ids[k] = die_with(q, 10 + (uint64_t)k, msg);
	}
	int n = list_dead(q, di, 8);
	cr_assert_eq(n, 4);
	for (int j = 0; j < n; j++) {
		int k = (int)(di[j].value - 10);
		char msg[1000];
		snprintf(msg, sizeof msg, "%d:%0900d", k, k);
		cr_expect_str_eq(di[j].last_msg, msg, "dead task %d shows another's message", k);
	}
	/* Beyond the area (4): kept, with the first 47 bytes of its message. */
	die_with(q, 99, m900);
	n = list_dead(q, di, 8);
	cr_assert_eq(n, 5);
	cr_expect_eq(strlen(di[4].last_msg), 47, "%zu", strlen(di[4].last_msg));
	cr_expect(strncmp(di[4].last_msg, m900, 47) == 0);
	tq_close(q);
	tq_destroy(name);
}

/* The dead-letter area takes no room from new tasks: with it full, the
 * whole capacity can still be pushed (lanes and slots). A task dying
 * beyond it is kept (none dropped, counts exact) and takes room: pushes
 * then wait (timeout 0: TQ_EAGAIN) until a purge or kick makes room. */
Test(engine, dead_area_full_keeps_room_then_refuses, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-room");
	tq_config cfg = small_config(20);
	cfg.max_attempts = 1;
	cfg.dead_capacity = 5;
	tq_queue *q = create_queue(name, &cfg);
	uint64_t dead_ids[6];
	for (int k = 0; k < 5; k++)
		dead_ids[k] = die_with(q, (uint64_t)k, "poison");
	tq_stats s = get_stats(q);
	cr_assert_eq(s.dead, 5);
	cr_assert_eq(s.dead_over, 0);
	/* The whole capacity: 10 through the lanes, 10 in mixed batches (slots). */
	tq_task t[10];
	for (int k = 0; k < 10; k++)
		t[k] = (tq_task){.kind = TQ_KIND_INT, .value = 100 + (uint64_t)k};
	cr_assert_eq(tq_push(q, t, 10, 0), 10, "lane push with the dead area full");
	for (int k = 0; k < 10; k++)
		t[k] = k % 2 ? (tq_task){.kind = TQ_KIND_STRING, .data = "p", .len = 1}
			     : (tq_task){.kind = TQ_KIND_INT, .value = 200 + (uint64_t)k};
	cr_assert_eq(tq_push(q, t, 10, 0), 10, "slot push with the dead area full");
	cr_assert_eq(tq_push_int(q, 999, 0), TQ_EAGAIN, "the capacity is full");
	s = get_stats(q);
	cr_expect_eq(s.ready, 20);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	cr_expect_eq(s.slots, 26, "capacity 20 + dead-letter area 5 + delay area 1");

	/* One more dies: kept beyond the area, and it takes a place. */
	tq_task d;
	cr_assert_eq(tq_take(q, &d, 1, 0), 1);
	cr_assert_eq(tq_fail(q, &d, 1, 1, "over"), 0);
	dead_ids[5] = d.id;
	s = get_stats(q);
	cr_expect_eq(s.dead, 6);
	cr_expect_eq(s.dead_over, 1);
	cr_expect_eq(s.total.dead, 6);
	cr_expect_eq(s.total.dead_overflow, 1);
	cr_expect_eq(s.ready, 19);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	static tq_dead_info di[8];
	cr_expect_eq(list_dead(q, di, 8), 6, "none dropped");
	cr_assert_eq(tq_push_int(q, 999, 0), TQ_EAGAIN, "the over-full area takes room");
	cr_assert_eq(tq_push_int(q, 999, 20000000), TQ_ETIMEDOUT);
	/* A purge returns the room at once (a kick would not: its task is
	 * ready again, in the same place). */
	cr_assert_eq(tq_dead_purge(q, dead_ids[0]), 1);
	cr_assert_eq(tq_push_int(q, 1000, 0), 0, "room after a purge");
	cr_assert_eq(tq_push_int(q, 1001, 0), TQ_EAGAIN);
	s = get_stats(q);
	cr_expect_eq(s.dead, 5);
	cr_expect_eq(s.dead_over, 0);
	cr_expect_eq(s.ready, 20);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	tq_close(q);
	tq_destroy(name);
}


/* A kick never takes the queue above its capacity (capacity 4, dead area
 * 2): a dead task beyond the area is kicked whatever the room, one within
 * it only into a free place; TQ_ALL kicks the oldest first as far as room
 * goes, one id without room is TQ_EAGAIN. Long messages are kept whole
 * within the area, cut to the 47-byte prefix beyond it. The listing with a
 * small max gives the oldest. */
Test(engine, dead_kick_within_the_capacity, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-kick-room");
	tq_config cfg = small_config(4);
	cfg.max_attempts = 1;
	cfg.dead_capacity = 2;
	tq_queue *q = create_queue(name, &cfg);
	uint64_t ids[4];
	char msg[4][101];
	for (int k = 0; k < 4; k++) {
		memset(msg[k], 'a' + k, 100);
		msg[k][100] = '\0';
		ids[k] = die_with(q, (uint64_t)k, msg[k]);
	}
	static tq_dead_info di[8];
	cr_assert_eq(list_dead(q, di, 8), 4);
	for (int k = 0; k < 4; k++) {
		cr_expect_eq(di[k].id, ids[k], "dead list not oldest first");
		cr_expect_eq(strlen(di[k].last_msg), k < 2 ? 100u : 47u, "dead %d: message of %zu bytes", k,
			     strlen(di[k].last_msg));
		cr_expect_eq(strncmp(di[k].last_msg, msg[k], strlen(di[k].last_msg)), 0);
	}
	cr_assert_eq(list_dead(q, di, 1), 1);
	cr_expect_eq(di[0].id, ids[0], "max 1: the oldest");
	cr_assert_eq(list_dead(q, di, 3), 3);
	for (int k = 0; k < 3; k++)
		cr_expect_eq(di[k].id, ids[k], "max 3: the three oldest, oldest first");

	/* 2 dead beyond the area take 2 places: 2 more fill the capacity. */
	cr_assert_eq(tq_push_int(q, 100, 0), 0);
	cr_assert_eq(tq_push_int(q, 101, 0), 0);
	cr_assert_eq(tq_push_int(q, 102, 0), TQ_EAGAIN);
	/* Beyond the area: kicked without room (it already counted). */
	cr_assert_eq(tq_dead_kick(q, ids[3]), 1);
	/* All: one more beyond the area (the oldest), then no room. */
	cr_assert_eq(tq_dead_kick(q, TQ_ALL), 1);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.ready, 4, "ready %u: the capacity", s.ready);
	cr_expect_eq(s.dead, 2);
	cr_expect_eq(s.dead_over, 0);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	cr_assert_eq(list_dead(q, di, 8), 2);
	cr_expect_eq(di[0].id, ids[1], "the oldest was kicked first");
	cr_expect_eq(di[1].id, ids[2]);
	/* Within the area, no room: refused, and still dead. */
	cr_assert_eq(tq_dead_kick(q, ids[2]), TQ_EAGAIN);
	cr_assert_eq(tq_dead_kick(q, TQ_ALL), 0);
	cr_assert_eq(tq_dead_kick(q, 12345), TQ_ENOTFOUND);
	s = get_stats(q);
	cr_expect_eq(s.ready, 4);
	cr_expect_eq(s.dead, 2);
	/* A place freed: one kick fits, then none. */
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	cr_assert_eq(tq_dead_kick(q, ids[2]), 1);
	cr_assert_eq(tq_dead_kick(q, ids[1]), TQ_EAGAIN);
	cr_assert_eq(tq_push_int(q, 103, 0), TQ_EAGAIN);
	s = get_stats(q);
	cr_expect_eq(s.ready, 4);
	cr_expect_eq(s.dead, 1);
	/* Purging within the area returns no place of the capacity. */
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 1);
	cr_assert_eq(tq_push_int(q, 104, 0), TQ_EAGAIN);
	s = get_stats(q);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	tq_close(q);
	tq_destroy(name);
}

/* A kick of TQ_ALL counts as room what claims settled in the lanes since
 * their reuse points last moved (they move once per 1024 positions): every
 * dead task goes back in one call when the queue holds nothing else. */
Test(engine, dead_kick_all_counts_settled_lane_room, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "dead-kick-settled");
	tq_config cfg;
	tq_config_init(&cfg);
	cfg.capacity = 4096;
	cfg.max_payload = 64;
	cfg.dead_capacity = 4096;
	cfg.max_attempts = 1;
	tq_queue *q = create_queue(name, &cfg);
	tq_task t[64], o[64];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 64; i++)
		t[i].kind = TQ_KIND_INT;
	/* 3500 failed for good (dead), then 500 acked: every place free. */
	for (int dead = 0, acked = 0; dead < 3500 || acked < 500;) {
		bool fail = dead < 3500;
		int m = fail ? (3500 - dead < 64 ? 3500 - dead : 64) : (500 - acked < 64 ? 500 - acked : 64);
		cr_assert_eq(tq_push(q, t, (size_t)m, 0), m);
		int n = tq_take(q, o, 64, 0);
		cr_assert_eq(n, m, "tq_take: %d", n);
		if (fail) {
			cr_assert_eq(tq_fail(q, o, (size_t)n, 1, "for good"), 0);
			dead += n;
		} else {
			cr_assert_eq(tq_ack(q, o, (size_t)n), 0);
			acked += n;
		}
	}
	tq_stats s = get_stats(q);
	cr_assert_eq(s.dead, 3500);
	cr_assert_eq(s.ready + s.leased, 0);
	cr_expect_eq(tq_dead_kick(q, TQ_ALL), 3500, "every dead task fits");
	s = get_stats(q);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.ready, 3500);
	tq_close(q);
	tq_destroy(name);
}

/* Nothing is dropped: the third is kept beyond the area, which says so. */
Test(engine, dead_capacity_keeps_all, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(r, 3, "dead listed: %d", r);
	for (int k = 0; k < 3 && k < r; k++) {
		cr_expect_eq(di[k].id, ids[k]);
		cr_expect_eq(di[k].value, 100 + (uint64_t)k);
		cr_expect_eq(di[k].last_err, k);
	}
	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.dead_overflow, 1);
	cr_expect_eq(s.total.dead, 3);
	cr_expect_eq(s.dead, 3);
	cr_expect_eq(s.dead_over, 1);
	cr_expect_eq(s.slots, 13);
	cr_expect_eq(s.free_slots, 10);
	tq_event_info ev[16];
	int ne = tq_events(q, 0, ev, 16), full = 0;
	for (int k = 0; k < ne; k++)
		if (ev[k].type == TQ_EV_DEAD_FULL) {
			full++;
			cr_expect_eq(ev[k].a, ids[2], "the task that overflowed");
			cr_expect_eq(ev[k].b, 2, "dead_capacity");
		}
	cr_expect_eq(full, 1, "%d dead_full events", full);
	cr_expect_eq(tq_dead_kick(q, ids[0]), 1);
	tq_close(q);
	tq_destroy(name);
}

/* A retry is not delivered before d/2, d = backoff_base * 2^(attempt-1)
 * capped at backoff_max (the lower end of the jitter). Only lower bounds
 * are asserted. */
Test(engine, retry_backoff_lower_bounds, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "backoff");
	tq_config cfg = small_config(8);
	cfg.max_attempts = 4;
	cfg.backoff_base_ns = 100 * MS;
	cfg.backoff_max_ns = 300 * MS;
	tq_queue *q = create_queue(name, &cfg);
	cr_assert_eq(tq_push_int(q, 1, 0), 0);
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	uint64_t d[3] = { 100 * MS, 200 * MS, 300 * MS };
	for (unsigned k = 0; k < 3; k++) {
		cr_expect_eq(t.attempt, k + 1);
		uint64_t t0 = tq_now_ns();
		cr_assert_eq(tq_fail(q, &t, 1, 1, "again"), 0);
		tq_stats s = get_stats(q);
		cr_expect_eq(s.delayed, 1);
		cr_expect_eq(s.ready, 0);
		int r = tq_take(q, &t, 1, 10 * SEC);
		uint64_t el = tq_now_ns() - t0;
		cr_assert_eq(r, 1, "retry %u not delivered: %d %s", k + 1, r, tq_strerror(r));
		cr_expect_geq(el, d[k] / 2, "retry %u delivered after %llu ns, before d/2 = %llu",
			      k + 1, (unsigned long long)el, (unsigned long long)(d[k] / 2));
	}
	cr_expect_eq(t.attempt, 4);
	cr_expect_eq(tq_fail(q, &t, 1, 2, "dead now"), 0);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.dead, 1);
	cr_expect_eq(s.total.retried, 3);
	cr_expect_eq(s.total.failed, 4);
	cr_expect_eq(s.total.dead, 1);
	tq_close(q);
	tq_destroy(name);
}

/* Large payloads of random lengths up to 64 KiB through a small queue. */
struct bigp {
	const char *name;
	unsigned per_producer;
	uint64_t consumed;
	struct report rep;
	tqt_bitmap bm;
	uint64_t dups;
};

#define BIGP_MAX 65536u

static uint32_t bigp_fill(unsigned p, unsigned i, unsigned char *buf)
{
	uint64_t x = ((uint64_t)p << 32 | i) * 0x9e3779b97f4a7c15ull + 1;
	uint32_t len = (uint32_t)(x >> 40) % (BIGP_MAX - 7) + 8;
	if (i % 7 == 0)
		len = BIGP_MAX;
	memcpy(buf, &p, 4);
	memcpy(buf + 4, &i, 4);
	for (uint32_t k = 8; k < len; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[k] = (unsigned char)x;
	}
	return len;
}

static int bigp_producer_n(struct bigp *b, unsigned p)
{
	tq_queue *q = NULL;
	if (tq_open(b->name, &q) != 0)
		return 1;
	unsigned char *buf = malloc(2 * BIGP_MAX);
	if (!buf)
		abort();
	int bad = 0;
	for (unsigned i = 0; i < b->per_producer && !bad; i += 2) {
		tq_task t[2];
		memset(t, 0, sizeof t);
		unsigned n = i + 1 < b->per_producer ? 2 : 1;
		for (unsigned j = 0; j < n; j++) {
			t[j].kind = (i + j) % 2 ? TQ_KIND_JSON : TQ_KIND_STRING;
			t[j].len = bigp_fill(p, i + j, buf + j * BIGP_MAX);
			t[j].data = buf + j * BIGP_MAX;
		}
		int r = tq_push(q, t, n, TQ_WAIT_FOREVER);
		if (r != (int)n) {
			report_err(&b->rep, "bigp push = %d", r);
			bad = 1;
		}
	}
	free(buf);
	tq_close(q);
	return bad;
}

static int bigp_producer0(void *arg) { return bigp_producer_n(arg, 0); }
static int bigp_producer1(void *arg) { return bigp_producer_n(arg, 1); }

static int bigp_consumer(void *arg)
{
	struct bigp *b = arg;
	tq_queue *q = NULL;
	if (tq_open(b->name, &q) != 0)
		return 1;
	unsigned char *want = malloc(BIGP_MAX);
	if (!want)
		abort();
	uint64_t total = 2ull * b->per_producer, deadline = tqt_now_ms() + 45000;
	int bad = 0;
	tq_task t[3];
	while (__atomic_load_n(&b->consumed, __ATOMIC_SEQ_CST) < total && !bad) {
		if (tqt_now_ms() > deadline) {
			report_err(&b->rep, "bigp consumer: deadline");
			bad = 1;
			break;
		}
		int r = tq_take(q, t, 3, 20 * MS);
		if (r == TQ_ETIMEDOUT)
			continue;
		if (r <= 0) {
			report_err(&b->rep, "bigp take = %d", r);
			bad = 1;
			break;
		}
		for (int j = 0; j < r; j++) {
			unsigned p, i;
			if (t[j].len < 8 || !t[j].data) {
				report_err(&b->rep, "bigp: len %u", t[j].len);
				continue;
			}
			memcpy(&p, t[j].data, 4);
			memcpy(&i, (const char *)t[j].data + 4, 4);
			if (p > 1 || i >= b->per_producer) {
				report_err(&b->rep, "bigp: p=%u i=%u", p, i);
				continue;
			}
			uint32_t len = bigp_fill(p, i, want);
			if (t[j].len != len || memcmp(t[j].data, want, len) != 0 ||
			    t[j].kind != (i % 2 ? TQ_KIND_JSON : TQ_KIND_STRING))
				report_err(&b->rep, "bigp: p=%u i=%u: len %u (want %u) or bytes differ",
					   p, i, t[j].len, len);
			if (tqt_bitmap_set(b->bm, (size_t)p * b->per_producer + i))
				__atomic_fetch_add(&b->dups, 1, __ATOMIC_SEQ_CST);
		}
		if (tq_ack(q, t, (size_t)r) != 0)
			report_err(&b->rep, "bigp ack failed");
		__atomic_fetch_add(&b->consumed, (uint64_t)r, __ATOMIC_SEQ_CST);
	}
	free(want);
	tq_close(q);
	return bad;
}

Test(engine, big_payloads_2x2, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "bigp");
	tq_config cfg = small_config(16);
	cfg.max_payload = BIGP_MAX;
	tq_queue *q = create_queue(name, &cfg);
	struct bigp *b = tqt_shared(sizeof *b);
	b->name = name;
	b->per_producer = 600;
	b->bm = tqt_bitmap_new(2 * b->per_producer);
	pid_t pids[4];
	pids[0] = tqt_fork(bigp_consumer, b);
	pids[1] = tqt_fork(bigp_consumer, b);
	pids[2] = tqt_fork(bigp_producer0, b);
	pids[3] = tqt_fork(bigp_producer1, b);
	int bad = tqt_wait_all(pids, 4, 50000);
	tq_stats s = get_stats(q);
	tq_close(q);
	tq_destroy(name);
	cr_expect_eq(b->rep.errors, 0, "%llu errors, first: %s",
		     (unsigned long long)b->rep.errors, b->rep.first);
	cr_expect_eq(bad, 0);
	cr_expect_eq(b->dups, 0);
	cr_expect_eq(tqt_bitmap_count(b->bm, 2 * b->per_producer), 2 * b->per_producer);
	cr_expect_eq(s.total.acked, 2 * b->per_producer);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
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

Test(engine, run_state_across_processes, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, paused_take_waits_push_works, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "paused");
	tq_queue *q = create_queue(name, NULL);
	cr_assert_eq(tq_push_int(q, 7, 0), 0);
	tq_task t;

	cr_assert_eq(tq_set_run_state(q, TQ_PAUSED), 0);
	cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN, "PAUSED, timeout 0");
	uint64_t t0 = tq_now_ns();
	int r = tq_take(q, &t, 1, 30 * MS);
	cr_expect_eq(r, TQ_ETIMEDOUT, "PAUSED, timeout 30 ms: %d %s", r, tq_strerror(r));
	cr_expect_geq(tq_now_ns() - t0, 30 * MS);
	/* producers may still push while consumers are paused */
	cr_expect_eq(tq_push_int(q, 8, 0), 0);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.ready, 2);
	cr_expect_eq(s.run_state, TQ_PAUSED);
	cr_expect_eq(s.total.taken, 0);

	cr_assert_eq(tq_set_run_state(q, TQ_RUNNING), 0);
	tq_task two[2];
	cr_assert_eq(tq_take(q, two, 2, 0), 2);
	cr_expect_eq(two[0].value, 7);
	cr_expect_eq(two[1].value, 8);
	cr_expect_eq(tq_ack(q, two, 2), 0);
	cr_expect_eq(tq_recover(q), 0, "no dead process to recover");
	tq_close(q);
	tq_destroy(name);
}

Test(engine, draining_and_stopped_refuse_push_and_take, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "draining");
	tq_config cfg = small_config(16);
	cfg.max_attempts = 3;
	cfg.backoff_base_ns = 60 * SEC;
	cfg.backoff_max_ns = 60 * SEC;
	tq_queue *q = create_queue(name, &cfg);
	tq_queue *other = open_queue(name);
	int states[2] = { TQ_DRAINING, TQ_STOPPED };
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned j = 0; j < 4; j++)
			cr_assert_eq(tq_push_int(q, j, 0), 0);
		tq_task held[3], t;
		cr_assert_eq(tq_take(q, held, 3, 0), 3);
		/* set from another handle: the state is shared */
		cr_assert_eq(tq_set_run_state(other, states[k]), 0);
		cr_expect_eq(tq_run_state(q), states[k]);

		int r = tq_take(q, &t, 1, 0);
		cr_expect_eq(r, TQ_ESTOPPED, "state %d, take: %d %s", states[k], r, tq_strerror(r));
		r = tq_take(q, &t, 1, 50 * MS);
		cr_expect_eq(r, TQ_ESTOPPED, "state %d, take 50 ms: %d %s", states[k], r,
			     tq_strerror(r));
		r = tq_take(q, &t, 1, TQ_WAIT_FOREVER);
		cr_expect_eq(r, TQ_ESTOPPED, "state %d, take forever: %d %s", states[k], r,
			     tq_strerror(r));
		r = tq_push_int(q, 99, 0);
		cr_expect_eq(r, TQ_ESTOPPED, "state %d, push: %d %s", states[k], r, tq_strerror(r));
		tq_task in = { .kind = TQ_KIND_STRING, .data = "x", .len = 1 };
		r = tq_push(q, &in, 1, TQ_WAIT_FOREVER);
		cr_expect_eq(r, TQ_ESTOPPED, "state %d, push forever: %d %s", states[k], r,
			     tq_strerror(r));

		/* what was taken can still be touched, failed and acked */
		cr_expect_eq(tq_touch(q, held, 3, 0), 0);
		cr_expect_eq(tq_fail(q, &held[2], 1, 4, "later"), 0);
		cr_expect_eq(tq_ack(q, held, 2), 0);

		tq_stats s = get_stats(q);
		cr_expect_eq(s.ready, 1, "ready tasks stay in the queue");
		cr_expect_eq(s.leased, 0);
		cr_expect_eq(s.delayed, k + 1); /* each round leaves one delayed */
		cr_expect_eq(s.run_state, states[k]);

		cr_assert_eq(tq_set_run_state(q, TQ_RUNNING), 0);
		cr_assert_eq(tq_take(q, &t, 1, 0), 1);
		cr_expect_eq(t.value, 3);
		cr_expect_eq(tq_ack(q, &t, 1), 0);
		cr_expect_eq(tq_take(q, &t, 1, 0), TQ_EAGAIN);
	}
	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.pushed, 8);
	cr_expect_eq(s.total.acked, 6);
	tq_close(other);
	tq_close(q);
	tq_destroy(name);
}

static int stopped_waiter(void *arg)
{
	struct blocked_arg *a = arg;
	tq_queue *q = NULL;
	if (tq_open(a->name, &q) != 0)
		return 10;
	if (write(a->ready_fd, "r", 1) != 1)
		return 11;
	tq_task t;
	int r = tq_take(q, &t, 1, TQ_WAIT_FOREVER);
	tq_close(q);
	return r == TQ_ESTOPPED ? 0 : 12;
}

/* tq_take: TQ_ESTOPPED "also if it changes while waiting" */
Test(engine, waiting_take_returns_estopped_on_draining, .timeout = 60, .fini = cleanup_queues)
{
	int states[2] = { TQ_DRAINING, TQ_STOPPED };
	for (unsigned k = 0; k < 2; k++) {
		char name[TQT_NAME_LEN];
		tqt_name(name, k ? "wait-stopped" : "wait-draining");
		tq_queue *q = create_queue(name, NULL);
		if (k)
			cr_assert_eq(tq_set_run_state(q, TQ_PAUSED), 0); /* waits while paused */
		int fds[2];
		cr_assert_eq(pipe(fds), 0);
		struct blocked_arg a = { name, fds[1], 0 };
		pid_t pid = tqt_fork(stopped_waiter, &a);
		char c;
		cr_assert_eq(read(fds[0], &c, 1), 1);
		wait_until_sleeping(pid);
		cr_expect_eq(tq_set_run_state(q, states[k]), 0);
		int rc = tqt_wait(pid, 20000);
		cr_expect_eq(rc, 0, "state %d: child exit %d (12: not TQ_ESTOPPED, -1: still "
			     "waiting at the deadline)", states[k], rc);
		close(fds[0]);
		close(fds[1]);
		tq_close(q);
		tq_destroy(name);
	}
}

Test(engine, paused_waiter_takes_after_resume, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, close_returns_leases_to_ready, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(s.free_slots, s.slots);
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

Test(engine, close_in_other_process_returns_leases, .timeout = 60, .fini = cleanup_queues)
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

Test(engine, stats_after_known_workload, .timeout = 60, .fini = cleanup_queues)
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 92);
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
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 99);
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

Test(engine, procs_lists_attached_handles, .timeout = 60, .fini = cleanup_queues)
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

/* ---------------------------------------------------------------- rates */

struct rate_ctx {
	char name[TQT_NAME_LEN];
	_Atomic int stop;
};

static int rate_child(void *arg)
{
	struct rate_ctx *c = arg;
	tq_queue *q;
	tq_task t[64];

	if (tq_open(c->name, &q) != 0)
		return 1;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (!atomic_load(&c->stop) && tqt_now_ms() < deadline) {
		for (int i = 0; i < 64; i++)
			t[i] = (tq_task){.kind = TQ_KIND_INT, .value = (uint64_t)i};
		if (tq_push(q, t, 64, TQ_WAIT_FOREVER) != 64)
			return 2;
		int n = tq_take(q, t, 64, 1000000000ull);
		if (n <= 0 || tq_ack(q, t, (size_t)n) != 0)
			return 3;
	}
	tq_close(q);
	return 0;
}

/* A process that acks steadily shows a non-zero done/s of its own in
 * tq_procs (sampled once a second by maintenance), and totals rates too. */
Test(engine, per_process_and_queue_rates, .timeout = 60)
{
	struct rate_ctx *c = tqt_shared(sizeof(*c));
	tq_queue *q;
	tq_proc_info p[8];
	tq_stats s;

	tqt_name(c->name, "rates");
	cr_assert_eq(tq_create(c->name, NULL, &q), 0);
	pid_t pid = tqt_fork(rate_child, c);
	double rate = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (rate <= 0 && tqt_now_ms() < deadline) {
		int n = tq_procs(q, p, 8);
		for (int i = 0; i < n; i++)
			if (p[i].pid == pid)
				rate = p[i].done_per_s;
		tqt_sleep_ms(50);
	}
	tq_stats_get(q, &s);
	atomic_store(&c->stop, 1);
	cr_assert_eq(tqt_wait(pid, 30000), 0, "child failed");
	cr_assert_gt(rate, 0, "the acking process never showed a done/s");
	cr_assert_gt(s.done_per_s[0] + s.done_per_s[1], 0, "queue done/s stayed 0");
	/* One process does all the acking: its rate and the queue's agree
	 * within the difference of their sampling instants. */
	double qrate = s.done_per_s[0];
	cr_assert(rate > qrate / 3 && rate < qrate * 3, "process %.0f done/s vs queue %.0f", rate, qrate);
	cr_assert_gt(s.processing.count, 0);
	cr_assert_geq(s.processing.p99_ns, s.processing.p50_ns);
	cr_assert_geq(s.processing.max_ns, s.processing.p99_ns);
	cr_log_info("rates: process %.0f done/s; queue %.0f (1 s) %.0f (10 s)", rate, s.done_per_s[0],
		    s.done_per_s[1]);
	tq_close(q);
	tq_destroy(c->name);
}

/* ------------------------------------------------- lease edge cases */

/* The same task twice in one ack: acked once, the second reported lost, and
 * its slot returns to the free ring once (a capacity-5 queue still holds
 * exactly 5 tasks afterwards). */
Test(engine, duplicate_in_one_ack_frees_the_slot_once, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_config cfg;
	tq_queue *q;
	tq_task t[8];

	tqt_name(name, "dupack");
	tq_config_init(&cfg);
	cfg.capacity = 5;
	cr_assert_eq(tq_create(name, &cfg, &q), 0);
	for (int i = 0; i < 5; i++)
		t[i] = (tq_task){.kind = TQ_KIND_INT, .value = 100 + (uint64_t)i};
	cr_assert_eq(tq_push(q, t, 5, 0), 5);
	tq_task got;
	cr_assert_eq(tq_take(q, &got, 1, 0), 1);
	tq_task twice[2] = {got, got};
	cr_assert_eq(tq_ack(q, twice, 2), TQ_ELOST);
	tq_stats s;
	tq_stats_get(q, &s);
	cr_assert_eq(s.total.acked, 1);
	cr_assert_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 1);
	for (int i = 0; i < 2; i++)
		t[i] = (tq_task){.kind = TQ_KIND_INT, .value = 200 + (uint64_t)i};
	cr_assert_eq(tq_push(q, t, 2, 0), 1, "one slot was freed, so one task fits");
	int n = tq_take(q, t, 8, 0);
	cr_assert_eq(n, 5);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			cr_assert_neq(t[i].id, t[j].id, "id %llu delivered twice", (unsigned long long)t[i].id);
	cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	tq_close(q);
	tq_destroy(name);
}

struct race_ctx {
	tq_queue *q;
	tq_task task;
	int rc;
};

static void *ack_one(void *arg)
{
	struct race_ctx *c = arg;
	c->rc = tq_ack(c->q, &c->task, 1);
	return NULL;
}

/* Two threads acking the same lease on one handle: exactly one succeeds. */
Test(engine, two_threads_ack_one_lease_once, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_config cfg;
	tq_queue *q;

	tqt_name(name, "ackrace");
	tq_config_init(&cfg);
	cfg.capacity = 64;
	cr_assert_eq(tq_create(name, &cfg, &q), 0);
	for (int round = 0; round < 200; round++) {
		cr_assert_eq(tq_push_int(q, (uint64_t)round, 0), 0);
		struct race_ctx a = {.q = q}, b = {.q = q};
		cr_assert_eq(tq_take(q, &a.task, 1, 0), 1);
		b.task = a.task;
		pthread_t ta, tb;
		pthread_create(&ta, NULL, ack_one, &a);
		pthread_create(&tb, NULL, ack_one, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		cr_assert((a.rc == 0 && b.rc == TQ_ELOST) || (a.rc == TQ_ELOST && b.rc == 0),
			  "round %d: acks returned %d and %d", round, a.rc, b.rc);
	}
	tq_stats s;
	tq_stats_get(q, &s);
	cr_assert_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 64, "every slot free once: %u free", s.free_slots);
	cr_assert_eq(s.total.acked, 200);
	tq_close(q);
	tq_destroy(name);
}

/* A clean close hands back a lease on its last attempt: ready again, not
 * dead, and the delivery does not count as an attempt. */
Test(engine, close_hands_back_the_last_attempt, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_config cfg;
	tq_queue *q, *q2;
	tq_task t;

	tqt_name(name, "closelast");
	tq_config_init(&cfg);
	cfg.max_attempts = 1;
	cr_assert_eq(tq_create(name, &cfg, &q), 0);
	cr_assert_eq(tq_open(name, &q2), 0);
	cr_assert_eq(tq_push_int(q, 7, 0), 0);
	cr_assert_eq(tq_take(q2, &t, 1, 0), 1);
	cr_assert_eq(tq_close(q2), 0);
	tq_stats s;
	tq_stats_get(q, &s);
	cr_assert_eq(s.ready, 1);
	cr_assert_eq(s.dead, 0);
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);
	cr_assert_eq(t.value, 7);
	cr_assert_eq(t.attempt, 1, "attempt %u after a clean close", t.attempt);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	tq_close(q);
	tq_destroy(name);
}

static int slow_handler(const tq_task *t, void *arg, char *msg, size_t size)
{
	(void)t, (void)arg, (void)msg, (void)size;
	tqt_sleep_ms(90); /* the work itself, longer than half the lease */
	return 0;
}

/* A batch that runs longer than the lease: tasks already handled keep their
 * leases until the batch's ack (nothing redelivered, nothing lost). */
Test(engine, worker_keeps_handled_leases_until_its_ack, .timeout = 30)
{
	char name[TQT_NAME_LEN];
	tq_config cfg;
	tq_queue *q;
	tq_worker_config wc;
	tq_worker_result r;

	tqt_name(name, "wlease");
	tq_config_init(&cfg);
	cfg.lease_ns = 200000000ull;
	cr_assert_eq(tq_create(name, &cfg, &q), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(tq_push_int(q, (uint64_t)i, 0), 0);
	tq_worker_config_init(&wc);
	wc.batch = 4;
	wc.max_tasks = 4;
	cr_assert_eq(tq_worker_run(q, slow_handler, NULL, &wc, &r), 0);
	cr_assert_eq(r.handled, 4);
	cr_assert_eq(r.acked, 4, "acked %llu, lost %llu", (unsigned long long)r.acked, (unsigned long long)r.lost);
	cr_assert_eq(r.lost, 0);
	tq_stats s;
	tq_stats_get(q, &s);
	cr_assert_eq(s.total.taken, 4, "redelivered: taken %llu", (unsigned long long)s.total.taken);
	cr_assert_eq(s.total.expired, 0);
	tq_close(q);
	tq_destroy(name);
}

/* `calls` takes of `per_call` tasks on handle a, each acked in one call. */
static void take_ack_calls(tq_queue *a, int calls, uint32_t per_call)
{
	tq_task t[16];

	cr_assert_leq(per_call, 16);
	for (int i = 0; i < calls; i++) {
		cr_assert_eq(tq_take(a, t, per_call, 0), (int)per_call);
		cr_assert_eq(tq_ack(a, t, per_call), 0);
	}
}

/* The queue's latency histograms count `n` tasks each. */
static void expect_hist_counts(tq_queue *q, uint64_t n, const char *when)
{
	tq_stats s = get_stats(q);
	cr_assert_eq(s.processing.count, n, "%s: processing count %llu, expected %llu", when,
		     (unsigned long long)s.processing.count, (unsigned long long)n);
	cr_assert_eq(s.wait.count, n, "%s: wait count %llu, expected %llu", when, (unsigned long long)s.wait.count,
		     (unsigned long long)n);
}

/* Latency histograms: a handle's first call is measured, then one in 8
 * whatever its size, weighted by the tasks since the last sample; what a
 * handle has not yet recorded is added when it closes. */
Test(engine, latency_samples_one_call_in_8, .timeout = 30, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "histsample");
	tq_queue *q = create_queue(name, NULL);
	tq_queue *a = open_queue(name);

	for (uint64_t i = 0; i < 40; i++)
		cr_assert_eq(tq_push_int(q, i, 0), 0);
	take_ack_calls(a, 1, 1);
	expect_hist_counts(q, 1, "the first small call is measured");
	take_ack_calls(a, 7, 1);
	cr_assert_eq(get_stats(q).total.acked, 8);
	expect_hist_counts(q, 1, "the next 7 wait for the next sample");
	take_ack_calls(a, 1, 1);
	expect_hist_counts(q, 9, "the 9th records those 7 and itself");
	take_ack_calls(a, 1, 16);
	expect_hist_counts(q, 9, "a call of 16 waits like any other");
	take_ack_calls(a, 6, 2);
	expect_hist_counts(q, 9, "six more wait");
	take_ack_calls(a, 1, 3);
	expect_hist_counts(q, 40, "the 17th records the 16, the 12 and its 3");
	cr_assert_eq(tq_close(a), 0);
	cr_assert_eq(get_stats(q).total.acked, 40);
	expect_hist_counts(q, 40, "after the close");
	tq_histogram hw, hp;
	cr_assert_eq(tq_histograms(q, &hw, &hp), 0);
	uint64_t n = 0;
	for (int i = 0; i < TQ_HIST_BUCKETS; i++)
		n += hp.count[i];
	cr_assert_eq(n, 40);
	tq_close(q);
}

/* Four threads on one handle, taking and acking batches of 64: the
 * histograms' counts are exactly the tasks acked once it closes (the
 * weight of the calls not sampled is kept with atomic adds). */
#define HT_PER 200000

static tq_queue *ht_q;
static _Atomic uint64_t ht_taken;

/* Takes and acks until the threads together have taken every task. */
static void *ht_worker(void *arg)
{
	tq_task out[64];

	(void)arg;
	while (atomic_load(&ht_taken) < 4ull * HT_PER) {
		int n = tq_take(ht_q, out, 64, 0);
		if (n == TQ_EAGAIN)
			continue; /* the last tasks are another thread's */
		if (n <= 0 || tq_ack(ht_q, out, (size_t)n) != 0)
			return (void *)1;
		atomic_fetch_add(&ht_taken, (uint64_t)n);
	}
	return NULL;
}

Test(engine, latency_counts_exact_with_threads, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "histthreads");
	tq_config cfg;
	tq_config_init(&cfg);
	cfg.capacity = 4 * HT_PER;
	tq_queue *q = create_queue(name, &cfg);
	ht_q = open_queue(name);
	uint64_t v[256];
	for (uint64_t i = 0; i < 256; i++)
		v[i] = i;
	for (int s = 0; s < 4 * HT_PER; s += 256)
		cr_assert_eq(tq_push_ints(q, v, 256, 0), 256);
	pthread_t th[4];
	atomic_store(&ht_taken, 0);
	for (int k = 0; k < 4; k++)
		cr_assert_eq(pthread_create(&th[k], NULL, ht_worker, NULL), 0);
	for (int k = 0; k < 4; k++) {
		void *r = NULL;
		cr_assert_eq(pthread_join(th[k], &r), 0);
		cr_assert_null(r, "thread %d failed to take or ack", k);
	}
	cr_assert_eq(tq_close(ht_q), 0);
	tq_stats s = get_stats(q);
	cr_assert_eq(s.total.acked, 4ull * HT_PER);
	expect_hist_counts(q, 4ull * HT_PER, "after the close");
	tq_close(q);
}

/* A queue larger than a lane (capacity above 65,536: lanes of an eighth of
 * it): a producer further ahead than its lane holds goes on through slots,
 * and one consumer still gets its tasks in push order, each once. */
static void overflow_run(uint16_t kind)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, kind == TQ_KIND_INT ? "laneoverflow" : "laneoverflowp");
	tq_config c;
	tq_config_init(&c);
	c.capacity = 600000;
	c.max_payload = 16;
	tq_queue *q = create_queue(name, &c);
	const uint32_t n = 200000;
	tq_task t[64];
	char buf[64][16];

	for (uint32_t v = 0; v < n; v += 64) {
		for (uint32_t i = 0; i < 64; i++) {
			memset(&t[i], 0, sizeof t[i]);
			t[i].kind = kind;
			if (kind == TQ_KIND_INT) {
				t[i].value = v + i;
			} else {
				t[i].len = (uint32_t)snprintf(buf[i], sizeof buf[i], "%u", v + i);
				t[i].data = buf[i];
			}
		}
		uint32_t k = n - v < 64 ? n - v : 64;
		int got = tq_push(q, t, k, 0);
		cr_assert_eq(got, (int)k, "push at %u: %d (%s)", v, got, got < 0 ? tq_strerror(got) : "short");
	}
	tq_stats s = get_stats(q);
	cr_assert_eq(s.total.pushed, n);
	cr_assert_eq(s.ready, n, "ready %u", s.ready);
	uint32_t next = 0;
	while (next < n) {
		int k = tq_take(q, t, 64, 0);
		cr_assert_gt(k, 0, "take after %u: %d (%s)", next, k, k < 0 ? tq_strerror(k) : "");
		for (int i = 0; i < k; i++) {
			uint64_t v = t[i].value;
			if (kind != TQ_KIND_INT) {
				char tmp[17] = {0};
				cr_assert_lt(t[i].len, sizeof tmp);
				memcpy(tmp, t[i].data, t[i].len);
				v = strtoull(tmp, NULL, 10);
			}
			cr_assert_eq(v, next, "out of order or lost: got %llu, expected %u", (unsigned long long)v, next);
			next++;
		}
		cr_assert_eq(tq_ack(q, t, (uint32_t)k), 0);
	}
	cr_assert_eq(tq_take(q, t, 64, 0), TQ_EAGAIN);
	s = get_stats(q);
	cr_assert_eq(s.total.acked, n);
	tq_close(q);
}

Test(engine, lanes_smaller_than_the_queue_overflow_to_slots_in_order, .timeout = 120, .fini = cleanup_queues)
{
	overflow_run(TQ_KIND_INT);
	overflow_run(TQ_KIND_STRING);
}
