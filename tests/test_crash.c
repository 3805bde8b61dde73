/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - deterministic crash tests (suite "crash").
 *
 * One test per fault point of src/fault.h: a child process opens the queue,
 * arms the point and runs the operation that reaches it, where it dies by
 * SIGKILL. Another process then recovers (tq_recover, or a fresh tq_open)
 * and a clean consumer drains the queue. Checked every time:
 *   - the child really died by SIGKILL (the point was reached);
 *   - every task that was pushed by a call that returned is delivered,
 *     exactly once unless a killed process held it (then at most once more,
 *     with the same id and attempt + 1);
 *   - a task whose tq_ack returned 0 is never delivered again;
 *   - nothing delivered is garbage: every value belongs to the known set,
 *     payloads are intact, ids are unique and equal to the ids tq_push gave;
 *   - the queue ends empty, with every slot free (it can be filled to its
 *     capacity again), and is usable; the counters add up.
 * The last test kills every producer and consumer at the same moment.
 *
 * Children never use Criterion asserts: they report through a shared
 * struct and their exit code; the parent asserts.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "taskq.h"
#include "util.h"

/* ------------------------------------------------------------ the codec */

/* Task "values" are small indexes v. Even v travel as TQ_KIND_INT tasks with
 * a checked 64-bit encoding, odd v as JSON payloads of varying length whose
 * every byte is derived from v, so any partial or garbage task is caught. */

#define CR_PAYBUF 400 /* >= the longest payload */

static uint16_t cr_mix16(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (uint16_t)x;
}

static uint16_t cr_kind_of(uint32_t v)
{
	return (v & 1u) ? TQ_KIND_JSON : TQ_KIND_INT;
}

static uint64_t cr_int_value(uint32_t v)
{
	return (UINT64_C(0xC0DE) << 48) | ((uint64_t)v << 16) | cr_mix16(v);
}

/* Writes v's JSON payload to buf (CR_PAYBUF bytes); returns its length. */
static uint32_t cr_json(uint32_t v, char *buf)
{
	int pad = (int)(cr_mix16((uint64_t)v * 7u + 1u) % 300u);
	int n = snprintf(buf, CR_PAYBUF, "{\"v\":%u,\"p\":\"", v);
	for (int j = 0; j < pad; j++)
		buf[n++] = (char)('a' + (int)((v + (uint32_t)j) % 26u));
	buf[n++] = '"';
	buf[n++] = '}';
	return (uint32_t)n;
}

/* Fills t (zeroed first) with value v; buf holds the payload. */
static void cr_fill(tq_task *t, uint32_t v, char *buf)
{
	memset(t, 0, sizeof(*t));
	t->kind = cr_kind_of(v);
	if (t->kind == TQ_KIND_INT) {
		t->value = cr_int_value(v);
	} else {
		t->len = cr_json(v, buf);
		t->data = buf;
	}
}

/* Returns v if the task is one of ours and intact, else -1. */
static long cr_decode(uint16_t kind, uint64_t value, const void *data, uint32_t len, uint32_t nv)
{
	if (kind == TQ_KIND_INT) {
		uint64_t v = (value >> 16) & 0xffffffffu;
		if ((value >> 48) != 0xC0DE || v >= nv || cr_kind_of((uint32_t)v) != TQ_KIND_INT ||
		    cr_int_value((uint32_t)v) != value)
			return -1;
		return (long)v;
	}
	if (kind == TQ_KIND_JSON) {
		char tmp[CR_PAYBUF + 1], exp[CR_PAYBUF];
		if (!data || len < 8 || len > CR_PAYBUF)
			return -1;
		memcpy(tmp, data, len);
		tmp[len] = '\0';
		if (strncmp(tmp, "{\"v\":", 5) != 0)
			return -1;
		char *end;
		unsigned long v = strtoul(tmp + 5, &end, 10);
		if (end == tmp + 5 || v >= nv || cr_kind_of((uint32_t)v) != TQ_KIND_JSON)
			return -1;
		if (cr_json((uint32_t)v, exp) != len || memcmp(exp, data, len) != 0)
			return -1;
		return (long)v;
	}
	return -1;
}

static long cr_decode_task(const tq_task *t, uint32_t nv)
{
	return cr_decode(t->kind, t->value, t->data, t->len, nv);
}

/* ------------------------------------------------- shared test context */

#define CR_NV 1024      /* value indexes of the deterministic tests */
#define CR_CAP 256      /* queue capacity */
#define CR_NPRE 100     /* values 0..99 pushed by the parent first */
#define CR_BATCH 64     /* the child's batches */
#define CR_CHILD_MS 30000

struct cr_ctx {
	char name[TQT_NAME_LEN];
	char msg[256];        /* a child's error, for the parent's message */
	uint32_t garbage;     /* tasks a child could not decode */
	int pipe_ready[2];    /* child -> parent: "opened" */
	int pipe_go[2];       /* parent -> child: "go on" */
	/* what a child did, counted by the child */
	uint32_t n_attempted, n_confirmed, n_taken, n_acked, n_failed;
	/* a fresh process's view after tq_open (recovery on open) */
	int open_rc;
	tq_stats open_stats;
	/* per value */
	uint8_t attempted[CR_NV];   /* a tq_push with it was called */
	uint8_t confirmed[CR_NV];   /* ... and returned it as accepted */
	uint8_t child_taken[CR_NV]; /* a child's tq_take returned it */
	uint8_t child_acked[CR_NV]; /* a child's tq_ack returned 0 for it */
	uint8_t child_failed[CR_NV];/* a child's tq_fail returned 0 for it */
	uint16_t child_attempt[CR_NV];
	uint64_t child_id[CR_NV];
	uint64_t push_id[CR_NV];    /* id tq_push gave it */
	/* the final drain (parent) */
	uint32_t drained[CR_NV];
	uint16_t drain_attempt[CR_NV];
	uint64_t drain_id[CR_NV];
};

/* For .fini: close and remove the queue even when an assertion failed. */
static char cr_qname[TQT_NAME_LEN];
static tq_queue *cr_q;
static pid_t cr_kids[16];
static int cr_nkids;

static void cr_fini(void)
{
	for (int i = 0; i < cr_nkids; i++) {
		if (cr_kids[i] > 0) {
			kill(cr_kids[i], SIGKILL);
			waitpid(cr_kids[i], NULL, 0);
		}
	}
	cr_nkids = 0;
	if (cr_q)
		tq_close(cr_q);
	cr_q = NULL;
	if (cr_qname[0])
		tq_destroy(cr_qname);
	cr_qname[0] = '\0';
}

TestSuite(crash, .timeout = 60, .fini = cr_fini);

static int cr_err(struct cr_ctx *c, int code, const char *what, int rc)
{
	snprintf(c->msg, sizeof(c->msg), "%s: %d (%s)", what, rc, tq_strerror(rc));
	return code;
}

/* Pushes values [lo, lo + n) (n <= CR_BATCH) in one tq_push. Records them as
 * attempted before the call and the first k as confirmed after it returns.
 * Returns tq_push's result. */
static int cr_push_range(struct cr_ctx *c, tq_queue *q, uint32_t lo, uint32_t n, uint64_t timeout_ns)
{
	tq_task t[CR_BATCH];
	static char bufs[CR_BATCH][CR_PAYBUF];

	if (n > CR_BATCH || lo + n > CR_NV)
		abort();
	for (uint32_t i = 0; i < n; i++) {
		cr_fill(&t[i], lo + i, bufs[i]);
		c->attempted[lo + i] = 1;
	}
	c->n_attempted += n;
	int k = tq_push(q, t, n, timeout_ns);
	for (int i = 0; i < k; i++) {
		c->confirmed[lo + (uint32_t)i] = 1;
		c->push_id[lo + (uint32_t)i] = t[i].id;
	}
	if (k > 0)
		c->n_confirmed += (uint32_t)k;
	return k;
}

/* A child's tq_take of up to max tasks; records what it got. */
static int cr_child_take(struct cr_ctx *c, tq_queue *q, tq_task *t, size_t max)
{
	int n = tq_take(q, t, max, 2000000000ull);
	for (int i = 0; i < n; i++) {
		long v = cr_decode_task(&t[i], CR_NV);
		if (v < 0) {
			c->garbage++;
			continue;
		}
		c->child_taken[v] = 1;
		c->child_attempt[v] = t[i].attempt;
		c->child_id[v] = t[i].id;
	}
	if (n > 0)
		c->n_taken += (uint32_t)n;
	return n;
}

static int cr_child_ack(struct cr_ctx *c, tq_queue *q, const tq_task *t, size_t n)
{
	int rc = tq_ack(q, t, n);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			long v = cr_decode_task(&t[i], CR_NV);
			if (v >= 0)
				c->child_acked[v] = 1;
		}
		c->n_acked += (uint32_t)n;
	}
	return rc;
}

static int cr_child_fail(struct cr_ctx *c, tq_queue *q, const tq_task *t, size_t n)
{
	/* record before the call: once tq_fail returns the payloads are gone */
	long vs[CR_BATCH];
	for (size_t i = 0; i < n && i < CR_BATCH; i++)
		vs[i] = cr_decode_task(&t[i], CR_NV);
	int rc = tq_fail(q, t, n, 7, "crash test failure");
	if (rc == 0) {
		for (size_t i = 0; i < n && i < CR_BATCH; i++)
			if (vs[i] >= 0)
				c->child_failed[vs[i]] = 1;
		c->n_failed += (uint32_t)n;
	}
	return rc;
}

static tq_queue *cr_child_open(struct cr_ctx *c)
{
	tq_queue *q = NULL;
	int rc = tq_open(c->name, &q);
	if (rc != 0) {
		cr_err(c, 0, "child tq_open", rc);
		return NULL;
	}
	return q;
}

/* Parent: the context, the queue (created), values 0..CR_NPRE-1 pushed. */
/* Queue settings a test may change before cr_setup. */
static uint64_t cr_backoff_ns = 1000000ull; /* 1 ms */
static uint32_t cr_max_attempts = 5;
static uint32_t cr_dead_capacity = 0;       /* the default */

static tq_queue *cr_setup(struct cr_ctx **out, const char *test)
{
	struct cr_ctx *c = tqt_shared(sizeof(*c));
	tq_config cfg;
	tq_queue *q = NULL;

	tqt_name(c->name, test);
	memcpy(cr_qname, c->name, sizeof(cr_qname));
	tq_destroy(c->name); /* a leftover of an earlier run with our pid */
	tq_config_init(&cfg);
	cfg.capacity = CR_CAP;
	cfg.max_payload = 512;
	cfg.max_attempts = cr_max_attempts;
	cfg.dead_capacity = cr_dead_capacity;
	cfg.lease_ns = 60ull * 1000000000ull; /* never expires during a test */
	cfg.backoff_base_ns = cr_backoff_ns;
	cfg.backoff_max_ns = cr_backoff_ns * 8;
	int rc = tq_create(c->name, &cfg, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", c->name, tq_strerror(rc));
	cr_q = q;
	for (uint32_t lo = 0; lo < CR_NPRE; lo += 50) {
		int k = cr_push_range(c, q, lo, 50, 0);
		cr_assert_eq(k, 50, "parent push: %d (%s)", k, tq_strerror(k));
	}
	c->n_attempted = c->n_confirmed = 0; /* from here on: the child's */
	*out = c;
	return q;
}

/* Every child dies with the test process (say, killed by its timeout)
 * instead of running on. */
static pid_t cr_parent;
static int (*cr_child_fn)(void *);

static int cr_child_main(void *arg)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != cr_parent)
		return 99;
	return cr_child_fn(arg);
}

static pid_t cr_spawn(int (*fn)(void *), void *c)
{
	cr_parent = getpid();
	cr_child_fn = fn;
	pid_t pid = tqt_fork(cr_child_main, c);
	if (cr_nkids < (int)(sizeof(cr_kids) / sizeof(cr_kids[0])))
		cr_kids[cr_nkids++] = pid;
	return pid;
}

static void cr_forget(pid_t pid)
{
	for (int i = 0; i < cr_nkids; i++)
		if (cr_kids[i] == pid)
			cr_kids[i] = 0;
}

static const char *cr_status_str(int st, char *buf, size_t cap)
{
	if (st < 0)
		snprintf(buf, cap, "still running after %d ms (killed)", CR_CHILD_MS);
	else if (st >= 128)
		snprintf(buf, cap, "killed by signal %d", st - 128);
	else
		snprintf(buf, cap, "exited with %d", st);
	return buf;
}

/* Waits for pid, which must die by SIGKILL (at its fault point). */
static void cr_expect_killed(struct cr_ctx *c, pid_t pid, const char *what)
{
	char sbuf[64];
	int st = tqt_wait(pid, CR_CHILD_MS);
	cr_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL,
		     "%s: the child should have died by SIGKILL at its fault point, but it %s "
		     "(child message: '%s')",
		     what, cr_status_str(st, sbuf, sizeof(sbuf)), c->msg);
}

static void cr_expect_exit0(struct cr_ctx *c, pid_t pid, const char *what)
{
	char sbuf[64];
	int st = tqt_wait(pid, CR_CHILD_MS);
	cr_forget(pid);
	cr_assert_eq(st, 0, "%s: the child %s (child message: '%s')", what,
		     cr_status_str(st, sbuf, sizeof(sbuf)), c->msg);
}

static void cr_stats(tq_queue *q, tq_stats *s)
{
	memset(s, 0, sizeof(*s));
	int rc = tq_stats_get(q, s);
	cr_assert_eq(rc, 0, "tq_stats_get: %s", tq_strerror(rc));
}

/* Parent: tq_recover must recover exactly `dead` processes now (nobody else
 * ran recovery since they died) and leave no lease behind. */
static void cr_recover(tq_queue *q, int dead_min, int dead_max, uint32_t recoveries)
{
	tq_stats s;
	int rc = tq_recover(q);
	cr_assert(rc >= dead_min && rc <= dead_max,
		  "tq_recover returned %d (%s), expected %d..%d dead processes", rc,
		  rc < 0 ? tq_strerror(rc) : "count", dead_min, dead_max);
	cr_stats(q, &s);
	cr_assert_eq(s.recoveries, recoveries, "stats.recoveries %u, expected %u", s.recoveries,
		     recoveries);
	cr_assert_eq(s.leased, 0, "after recovery %u tasks are still leased (to dead processes)",
		     s.leased);
	cr_assert_eq(s.procs, 1, "after recovery %u processes attached, expected 1 (the parent)",
		     s.procs);
}

/* Parent: takes and acks everything (waiting for delayed retries). */
static void cr_drain(tq_queue *q, struct cr_ctx *c)
{
	tq_task t[32];
	uint64_t deadline = tqt_now_ms() + 20000;

	for (;;) {
		int n = tq_take(q, t, 32, 0);
		if (n == TQ_EAGAIN) {
			tq_stats s;
			cr_stats(q, &s);
			if (s.ready == 0 && s.delayed == 0 && s.leased == 0)
				break;
			cr_assert(tqt_now_ms() < deadline,
				  "drain stalled: ready %u leased %u delayed %u", s.ready, s.leased,
				  s.delayed);
			n = tq_take(q, t, 32, 20000000ull);
			if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
				continue;
		}
		cr_assert(n > 0 && n <= 32, "drain: tq_take returned %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			long v = cr_decode_task(&t[i], CR_NV);
			cr_assert(v >= 0,
				  "drain: garbage task (id %llu kind %u value %#llx len %u attempt %u)",
				  (unsigned long long)t[i].id, t[i].kind,
				  (unsigned long long)t[i].value, t[i].len, t[i].attempt);
			c->drained[v]++;
			c->drain_attempt[v] = t[i].attempt;
			c->drain_id[v] = t[i].id;
		}
		int rc = tq_ack(q, t, (size_t)n);
		cr_assert_eq(rc, 0, "drain: tq_ack: %s", tq_strerror(rc));
	}
}

static int cr_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Parent, after the drain: checks every value.
 *   held_exact: tasks leased by the dead child (taken, not acked) must be
 *               delivered exactly once more (else at most once).
 *   untaken_attempt_max: highest attempt allowed for tasks the child never
 *               got back from tq_take (2 when it died inside tq_take).
 * Returns the number of the child's held tasks delivered again.
 */
static uint32_t cr_verify(struct cr_ctx *c, int held_exact, unsigned untaken_attempt_max)
{
	static uint64_t ids[CR_NV];
	size_t nids = 0;
	uint32_t redelivered = 0;

	cr_assert_eq(c->garbage, 0, "a child took %u garbage tasks", c->garbage);
	for (uint32_t v = 0; v < CR_NV; v++) {
		uint32_t d = c->drained[v];
		if (!c->attempted[v]) {
			cr_assert_eq(d, 0, "value %u was never pushed but was delivered", v);
			continue;
		}
		if (d)
			ids[nids++] = c->drain_id[v];
		if (c->child_taken[v] && c->child_acked[v]) {
			cr_assert_eq(d, 0, "value %u was acked (tq_ack returned 0) yet delivered again", v);
		} else if (c->child_taken[v]) {
			if (held_exact)
				cr_assert_eq(d, 1,
					     "value %u leased by the killed child: delivered %u times after recovery, expected 1",
					     v, d);
			else
				cr_assert_leq(d, 1, "value %u delivered %u times after recovery", v, d);
			if (d) {
				redelivered++;
				cr_assert_eq(c->drain_id[v], c->child_id[v],
					     "value %u redelivered with id %llu, was %llu", v,
					     (unsigned long long)c->drain_id[v],
					     (unsigned long long)c->child_id[v]);
				cr_assert_eq(c->drain_attempt[v], c->child_attempt[v] + 1,
					     "value %u redelivered with attempt %u after attempt %u", v,
					     c->drain_attempt[v], c->child_attempt[v]);
			}
		} else if (c->confirmed[v]) {
			cr_assert_eq(d, 1, "value %u was pushed (tq_push returned) but delivered %u times",
				     v, d);
			cr_assert(c->drain_attempt[v] >= 1 && c->drain_attempt[v] <= untaken_attempt_max,
				  "value %u delivered with attempt %u (max %u)", v, c->drain_attempt[v],
				  untaken_attempt_max);
		} else {
			/* in the interrupted push: may or may not exist, never twice */
			cr_assert_leq(d, 1, "value %u of the interrupted push delivered %u times", v, d);
			if (d)
				cr_assert_eq(c->drain_attempt[v], 1, "value %u: attempt %u on first delivery",
					     v, c->drain_attempt[v]);
		}
		if (d && c->confirmed[v])
			cr_assert_eq(c->drain_id[v], c->push_id[v],
				     "value %u delivered with id %llu, tq_push gave %llu", v,
				     (unsigned long long)c->drain_id[v],
				     (unsigned long long)c->push_id[v]);
	}
	qsort(ids, nids, sizeof(ids[0]), cr_cmp_u64);
	for (size_t i = 1; i < nids; i++)
		cr_assert_neq(ids[i], ids[i - 1], "two different tasks share id %llu",
			      (unsigned long long)ids[i]);
	return redelivered;
}

/* Values of [lo, hi) that were delivered in the drain. */
static uint32_t cr_count_drained(struct cr_ctx *c, uint32_t lo, uint32_t hi)
{
	uint32_t n = 0;
	for (uint32_t v = lo; v < hi; v++)
		n += c->drained[v] ? 1u : 0u;
	return n;
}

/* Parent: the queue is empty with every slot free, and works: it takes
 * exactly its capacity again, which is then taken and acked. */
static void cr_check_usable(tq_queue *q)
{
	tq_stats s;
	tq_task t[64];
	static uint8_t seen[CR_CAP + 1];
	uint32_t pushed = 0, taken = 0;

	cr_stats(q, &s);
	cr_assert(s.ready == 0 && s.leased == 0 && s.delayed == 0 && s.dead == 0,
		  "queue not empty: ready %u leased %u delayed %u dead %u", s.ready, s.leased,
		  s.delayed, s.dead);
	cr_assert_eq(s.free_slots, s.slots, "free_slots %u of slots %u: slots leaked",
		     s.free_slots, s.slots);
	memset(seen, 0, sizeof(seen));
	while (pushed < CR_CAP) {
		uint32_t n = CR_CAP - pushed < 64 ? CR_CAP - pushed : 64;
		for (uint32_t i = 0; i < n; i++) {
			memset(&t[i], 0, sizeof(t[i]));
			t[i].kind = TQ_KIND_INT;
			t[i].value = pushed + i + 1;
		}
		int k = tq_push(q, t, n, 0);
		cr_assert(k > 0, "refill: tq_push after %u of %u tasks: %d (%s): slots leaked?",
			  pushed, CR_CAP, k, tq_strerror(k));
		pushed += (uint32_t)k;
	}
	int rc = tq_push_int(q, 999999, 0);
	cr_assert_eq(rc, TQ_EAGAIN, "push into a full queue: %d (%s), expected TQ_EAGAIN", rc,
		     tq_strerror(rc));
	while (taken < CR_CAP) {
		int n = tq_take(q, t, 64, 0);
		cr_assert(n > 0, "refill: tq_take after %u of %u: %d (%s)", taken, CR_CAP, n,
			  tq_strerror(n));
		for (int i = 0; i < n; i++) {
			cr_assert(t[i].kind == TQ_KIND_INT && t[i].value >= 1 && t[i].value <= CR_CAP,
				  "refill: unexpected task kind %u value %llu", t[i].kind,
				  (unsigned long long)t[i].value);
			cr_assert_eq(seen[t[i].value], 0, "refill: value %llu twice",
				     (unsigned long long)t[i].value);
			seen[t[i].value] = 1;
			cr_assert_eq(t[i].attempt, 1);
		}
		rc = tq_ack(q, t, (size_t)n);
		cr_assert_eq(rc, 0, "refill: tq_ack: %s", tq_strerror(rc));
		taken += (uint32_t)n;
	}
	rc = tq_take(q, t, 1, 0);
	cr_assert_eq(rc, TQ_EAGAIN, "take from an empty queue: %d", rc);
	cr_stats(q, &s);
	cr_assert(s.ready == 0 && s.leased == 0 && s.free_slots == s.slots,
		  "after refill: ready %u leased %u free %u", s.ready, s.leased, s.free_slots);
}

static void cr_finish(tq_queue *q, struct cr_ctx *c)
{
	cr_check_usable(q);
	cr_q = NULL;
	cr_assert_eq(tq_close(q), 0);
	cr_assert_eq(tq_destroy(c->name), 0);
	cr_qname[0] = '\0';
}

static void cr_log_counters(const char *test, const tq_stats *s, const char *extra)
{
	cr_log_info("%s: pushed %llu taken %llu acked %llu failed %llu retried %llu dead %llu "
		    "recovered %llu expired %llu lost %llu; recoveries %u%s%s",
		    test, (unsigned long long)s->total.pushed, (unsigned long long)s->total.taken,
		    (unsigned long long)s->total.acked, (unsigned long long)s->total.failed,
		    (unsigned long long)s->total.retried, (unsigned long long)s->total.dead,
		    (unsigned long long)s->total.recovered, (unsigned long long)s->total.expired,
		    (unsigned long long)s->total.lost, s->recoveries, extra ? "; " : "",
		    extra ? extra : "");
}

/* A fresh process recovers on tq_open: it records what it sees. */
static int cr_child_open_and_look(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = NULL;
	c->open_rc = tq_open(c->name, &q);
	if (c->open_rc != 0)
		return cr_err(c, 2, "fresh tq_open", c->open_rc);
	tq_stats_get(q, &c->open_stats);
	tq_close(q);
	return 0;
}

/* Recovery by a new process's tq_open: afterwards nothing is leased. */
static void cr_recover_by_open(struct cr_ctx *c, uint32_t recoveries)
{
	pid_t pid = cr_spawn(cr_child_open_and_look, c);
	cr_expect_exit0(c, pid, "fresh tq_open");
	cr_assert_eq(c->open_stats.recoveries, recoveries,
		     "after a fresh tq_open: recoveries %u, expected %u", c->open_stats.recoveries,
		     recoveries);
	cr_assert_eq(c->open_stats.leased, 0, "after a fresh tq_open: %u tasks still leased",
		     c->open_stats.leased);
}

/* ----------------------------------------------- push.claimed / written */

/* The child pushes batches of 64 (values 100.., 164.., ...) with the point
 * armed for its 2nd pass: if the point is passed once per batch, the first
 * batch returns (and must be delivered) and the second dies. */
static const char *cr_point;
static unsigned cr_hit;

static int cr_child_push_batches(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm(cr_point, cr_hit);
	for (uint32_t lo = CR_NPRE; lo + CR_BATCH <= CR_NPRE + 3 * CR_BATCH; lo += CR_BATCH) {
		int k = cr_push_range(c, q, lo, CR_BATCH, 2000000000ull);
		if (k != CR_BATCH)
			return cr_err(c, 3, "child tq_push", k);
	}
	return 0; /* the point was never reached */
}

static void cr_push_test(const char *test, const char *point, unsigned hit)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, test);
	tq_stats s;
	char extra[160];

	cr_point = point;
	cr_hit = hit;
	cr_expect_killed(c, cr_spawn(cr_child_push_batches, c), point);
	cr_assert_lt(c->n_confirmed, c->n_attempted, "the interrupted push must not have returned");
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert(s.ready >= CR_NPRE + c->n_confirmed && s.ready <= CR_NPRE + c->n_attempted,
		  "after recovery ready %u, expected %u..%u", s.ready, CR_NPRE + c->n_confirmed,
		  CR_NPRE + c->n_attempted);
	cr_assert_eq(s.ready + s.free_slots, s.slots,
		     "ready %u + free %u != slots %u: slots lost by the interrupted push", s.ready,
		     s.free_slots, s.slots);
	cr_drain(q, c);
	cr_verify(c, 1, 1);
	cr_stats(q, &s);
	uint32_t in = CR_NPRE + c->n_confirmed + cr_count_drained(c, CR_NPRE + c->n_confirmed, CR_NV);
	snprintf(extra, sizeof(extra), "child confirmed %u of %u attempted; %u tasks went in",
		 c->n_confirmed, c->n_attempted, in);
	cr_log_counters(test, &s, extra);
	cr_assert(s.total.pushed >= CR_NPRE + c->n_confirmed &&
			  s.total.pushed <= CR_NPRE + c->n_attempted,
		  "total.pushed %llu, expected %u..%u", (unsigned long long)s.total.pushed,
		  CR_NPRE + c->n_confirmed, CR_NPRE + c->n_attempted);
	cr_assert_eq(s.total.acked, in, "total.acked %llu, %u acked", (unsigned long long)s.total.acked,
		     in);
	cr_assert_eq(s.total.taken, in);
	cr_assert_eq(s.total.recovered, 0);
	cr_finish(q, c);
}

Test(crash, push_claimed)
{
	cr_push_test("push_claimed", "push.claimed", 2);
}

Test(crash, push_claimed_first)
{
	cr_push_test("push_claimed1", "push.claimed", 1);
}

Test(crash, push_written)
{
	cr_push_test("push_written", "push.written", 2);
}

Test(crash, push_written_first)
{
	cr_push_test("push_written1", "push.written", 1);
}

/* -------------------------------------------------------- ring.push.mid */

/* Ready ring: the first batch returns, the point is armed for the second. */
static int cr_child_push_then_arm(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	int k = cr_push_range(c, q, CR_NPRE, CR_BATCH, 2000000000ull);
	if (k != CR_BATCH)
		return cr_err(c, 3, "child tq_push", k);
	tq_fault_arm(cr_point, cr_hit);
	k = cr_push_range(c, q, CR_NPRE + CR_BATCH, CR_BATCH, 2000000000ull);
	if (k != CR_BATCH)
		return cr_err(c, 3, "child tq_push (armed)", k);
	return 0;
}

Test(crash, ring_push_mid_ready)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, "ring_push_ready");
	tq_stats s;

	cr_point = "ring.push.mid";
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_push_then_arm, c), "ring.push.mid in tq_push");
	cr_assert_eq(c->n_confirmed, CR_BATCH);
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready + s.free_slots, s.slots, "ready %u + free %u != slots %u",
		     s.ready, s.free_slots, s.slots);
	cr_drain(q, c);
	cr_verify(c, 1, 1);
	cr_stats(q, &s);
	cr_log_counters("ring_push_mid_ready", &s, NULL);
	cr_assert(s.total.pushed >= CR_NPRE + CR_BATCH && s.total.pushed <= CR_NPRE + 2 * CR_BATCH,
		  "total.pushed %llu", (unsigned long long)s.total.pushed);
	cr_finish(q, c);
}

/* Free ring: take 64, ack 32 (returns), arm, ack the other 32. */
static int cr_child_take_ack_arm(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t[CR_BATCH];
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	int n = cr_child_take(c, q, t, CR_BATCH);
	if (n != CR_BATCH)
		return cr_err(c, 3, "child tq_take", n);
	int rc = cr_child_ack(c, q, t, CR_BATCH / 2);
	if (rc != 0)
		return cr_err(c, 4, "child tq_ack", rc);
	tq_fault_arm(cr_point, cr_hit);
	rc = cr_child_ack(c, q, t + CR_BATCH / 2, CR_BATCH / 2);
	if (rc != 0)
		return cr_err(c, 4, "child tq_ack (armed)", rc);
	return 0;
}

/* Shared by ring.push.mid (free ring) and ack.mid. */
static void cr_ack_test(const char *test, const char *point, int recover_by_open)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, test);
	tq_stats s;
	char extra[128];

	cr_point = point;
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_take_ack_arm, c), point);
	cr_assert_eq(c->n_taken, CR_BATCH);
	cr_assert_eq(c->n_acked, CR_BATCH / 2);
	if (recover_by_open)
		cr_recover_by_open(c, 1);
	else
		cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.leased, 0);
	cr_assert_eq(s.ready + s.free_slots, s.slots,
		     "ready %u + free %u != slots %u: slots lost by the interrupted ack", s.ready,
		     s.free_slots, s.slots);
	cr_assert(s.ready >= CR_NPRE - CR_BATCH && s.ready <= CR_NPRE - CR_BATCH / 2,
		  "ready %u after recovery, expected %u..%u", s.ready, CR_NPRE - CR_BATCH,
		  CR_NPRE - CR_BATCH / 2);
	cr_drain(q, c);
	uint32_t again = cr_verify(c, 0, 1);
	cr_stats(q, &s);
	snprintf(extra, sizeof(extra), "%u of the %u tasks in the interrupted ack delivered again",
		 again, CR_BATCH / 2);
	cr_log_counters(test, &s, extra);
	cr_assert_eq(s.total.pushed, CR_NPRE);
	cr_assert_eq(s.total.recovered, again,
		     "total.recovered %llu, but %u leases of the dead child were returned",
		     (unsigned long long)s.total.recovered, again);
	cr_assert_eq(s.total.taken, CR_BATCH + (CR_NPRE - CR_BATCH) + again);
	cr_assert(s.total.acked >= CR_BATCH / 2 + (CR_NPRE - CR_BATCH) + again &&
			  s.total.acked <= CR_NPRE + again,
		  "total.acked %llu", (unsigned long long)s.total.acked);
	cr_finish(q, c);
}

Test(crash, ring_push_mid_free)
{
	cr_ack_test("ring_push_free", "ring.push.mid", 0);
}

/* ------------------------------------------------------------- ack.mid */

Test(crash, ack_mid)
{
	cr_ack_test("ack_mid", "ack.mid", 0);
}

Test(crash, ack_mid_recover_on_open)
{
	cr_ack_test("ack_mid_open", "ack.mid", 1);
}

/* ------------------------------------------------ ring.pop.mid, take.popped */

static int cr_child_arm_take(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t[32];
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm(cr_point, cr_hit);
	int n = cr_child_take(c, q, t, 32);
	if (n <= 0)
		return cr_err(c, 3, "child tq_take (armed)", n);
	return 0;
}

static void cr_take_test(const char *test, const char *point, int recover_by_open)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, test);
	tq_stats s;
	char extra[128];

	cr_point = point;
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_arm_take, c), point);
	cr_assert_eq(c->n_taken, 0, "the interrupted tq_take must not have returned");
	if (recover_by_open)
		cr_recover_by_open(c, 1);
	else
		cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready, CR_NPRE, "ready %u after recovery, expected all %u", s.ready, CR_NPRE);
	cr_assert_eq(s.ready + s.free_slots, s.slots);
	cr_drain(q, c);
	cr_verify(c, 1, 2); /* the child got nothing: every task exactly once */
	uint32_t second = 0;
	for (uint32_t v = 0; v < CR_NPRE; v++)
		second += c->drain_attempt[v] == 2;
	cr_stats(q, &s);
	snprintf(extra, sizeof(extra), "%u tasks delivered with attempt 2", second);
	cr_log_counters(test, &s, extra);
	cr_assert_leq(second, 32, "%u tasks had attempt 2; the child popped at most 32", second);
	cr_assert_eq(s.total.pushed, CR_NPRE);
	cr_assert_eq(s.total.acked, CR_NPRE);
	cr_assert_leq(s.total.recovered, 32, "total.recovered %llu > 32 popped",
		      (unsigned long long)s.total.recovered);
	cr_assert(s.total.taken >= CR_NPRE && s.total.taken <= CR_NPRE + 32, "total.taken %llu",
		  (unsigned long long)s.total.taken);
	cr_finish(q, c);
}

Test(crash, ring_pop_mid_take)
{
	cr_take_test("ring_pop_take", "ring.pop.mid", 0);
}

Test(crash, take_popped)
{
	cr_take_test("take_popped", "take.popped", 0);
}

Test(crash, take_popped_recover_on_open)
{
	cr_take_test("take_popped_open", "take.popped", 1);
}

/* Free ring pop: the first ring pop of a push takes free slots. */
static int cr_child_arm_push(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm(cr_point, cr_hit);
	int k = cr_push_range(c, q, CR_NPRE, CR_BATCH, 2000000000ull);
	if (k <= 0)
		return cr_err(c, 3, "child tq_push (armed)", k);
	return 0;
}

Test(crash, ring_pop_mid_push)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, "ring_pop_push");
	tq_stats s;

	cr_point = "ring.pop.mid";
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_arm_push, c), "ring.pop.mid in tq_push");
	cr_assert_eq(c->n_confirmed, 0);
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready + s.free_slots, s.slots,
		     "ready %u + free %u != slots %u: slots lost", s.ready, s.free_slots,
		     s.slots);
	cr_drain(q, c);
	cr_verify(c, 1, 1);
	cr_stats(q, &s);
	cr_log_counters("ring_pop_mid_push", &s, NULL);
	cr_assert_leq(s.total.pushed, CR_NPRE + CR_BATCH);
	cr_finish(q, c);
}

/* ------------------------------------------------------------ fail.mid */

/* Take 64, fail 16 (returns), arm, fail the other 48. */
static int cr_child_take_fail_arm(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t[CR_BATCH];
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	int n = cr_child_take(c, q, t, CR_BATCH);
	if (n != CR_BATCH)
		return cr_err(c, 3, "child tq_take", n);
	int rc = cr_child_fail(c, q, t, 16);
	if (rc != 0)
		return cr_err(c, 4, "child tq_fail", rc);
	tq_fault_arm(cr_point, cr_hit);
	rc = cr_child_fail(c, q, t + 16, CR_BATCH - 16);
	if (rc != 0)
		return cr_err(c, 4, "child tq_fail (armed)", rc);
	return 0;
}

/* Failures are retried after 1.5..3 s, so that right after recovery the
 * failed tasks are still delayed while the returned ones are ready: the
 * split tells exactly how many leases recovery returned. */
Test(crash, fail_mid)
{
	struct cr_ctx *c;
	tq_queue *q;
	tq_stats s;

	cr_backoff_ns = 3000000000ull;
	q = cr_setup(&c, "fail_mid");
	cr_point = "fail.mid";
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_take_fail_arm, c), "fail.mid");
	cr_assert_eq(c->n_taken, CR_BATCH);
	cr_assert_eq(c->n_failed, 16);
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready + s.delayed + s.free_slots, s.slots,
		     "ready %u + delayed %u + free %u != slots %u", s.ready, s.delayed,
		     s.free_slots, s.slots);
	cr_assert_eq(s.ready + s.delayed, CR_NPRE, "ready %u + delayed %u, expected %u", s.ready,
		     s.delayed, CR_NPRE);
	uint32_t failed = s.delayed; /* failures recorded: 16 returned + some of 48 */
	cr_assert(failed >= 16 && failed <= CR_BATCH,
		  "%u tasks delayed after recovery; the child's first tq_fail of 16 returned", failed);
	uint64_t recovered_now = s.total.recovered;
	cr_drain(q, c);
	/* failed or returned by recovery: every one of the 64 exactly once more */
	uint32_t again = cr_verify(c, 1, 1);
	cr_assert_eq(again, CR_BATCH);
	cr_stats(q, &s);
	char extra[96];
	snprintf(extra, sizeof(extra), "%u failures recorded, %u leases returned", failed,
		 CR_BATCH - failed);
	cr_log_counters("fail_mid", &s, extra);
	cr_assert_eq(recovered_now, CR_BATCH - failed,
		     "total.recovered %llu, but %u leases were returned to ready by recovery",
		     (unsigned long long)recovered_now, CR_BATCH - failed);
	cr_assert_eq(s.total.recovered, recovered_now);
	cr_assert_eq(s.total.pushed, CR_NPRE);
	cr_assert_eq(s.total.acked, CR_NPRE);
	cr_assert_eq(s.total.dead, 0);
	cr_assert_eq(s.total.taken, CR_NPRE + CR_BATCH, "total.taken %llu",
		     (unsigned long long)s.total.taken);
	/* the interrupted call's own counts may be lost with its process */
	cr_assert(s.total.failed >= 16 && s.total.failed <= failed, "total.failed %llu",
		  (unsigned long long)s.total.failed);
	cr_assert(s.total.retried >= 16 && s.total.retried <= failed, "total.retried %llu",
		  (unsigned long long)s.total.retried);
	cr_finish(q, c);
}

/* ----------------------------------------------- recover.mid, fold.mid */

/* Child A: takes `cr_a_take` tasks, acks the first `cr_a_ack`, pushes
 * `cr_a_push` new values first, then dies holding the rest. */
static uint32_t cr_a_push, cr_a_take, cr_a_ack;

static int cr_child_a(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t[CR_BATCH];
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	if (cr_a_push) {
		int k = cr_push_range(c, q, CR_NPRE, cr_a_push, 2000000000ull);
		if (k != (int)cr_a_push)
			return cr_err(c, 3, "child A tq_push", k);
	}
	int n = cr_child_take(c, q, t, cr_a_take);
	if (n != (int)cr_a_take)
		return cr_err(c, 3, "child A tq_take", n);
	if (cr_a_ack) {
		int rc = cr_child_ack(c, q, t, cr_a_ack);
		if (rc != 0)
			return cr_err(c, 4, "child A tq_ack", rc);
	}
	raise(SIGKILL);
	return 5;
}

/* Child B, armed before tq_open: it recovers A while opening and dies. */
static int cr_child_b_open(void *arg)
{
	struct cr_ctx *c = arg;
	tq_fault_arm(cr_point, cr_hit);
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	return 0;
}

/* Child B, attached before A dies: waits for "go", arms, calls tq_recover. */
static int cr_child_b_explicit(void *arg)
{
	struct cr_ctx *c = arg;
	char b = 0;
	close(c->pipe_ready[0]);
	close(c->pipe_go[1]);
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	if (write(c->pipe_ready[1], "r", 1) != 1)
		return 6;
	if (read(c->pipe_go[0], &b, 1) != 1)
		return 7;
	tq_fault_arm(cr_point, cr_hit);
	int rc = tq_recover(q);
	snprintf(c->msg, sizeof(c->msg), "tq_recover returned %d", rc);
	return 0;
}

/* A dies holding leases; B dies at `point` while recovering A (in tq_open
 * or in tq_recover); the parent recovers both. */
static void cr_two_deaths(struct cr_ctx *c, const char *point, int explicit_recover)
{
	pid_t b = 0;

	cr_point = point;
	cr_hit = 1;
	if (explicit_recover) {
		char r;
		cr_assert_eq(pipe(c->pipe_ready), 0);
		cr_assert_eq(pipe(c->pipe_go), 0);
		b = cr_spawn(cr_child_b_explicit, c);
		close(c->pipe_ready[1]);
		close(c->pipe_go[0]);
		cr_assert_eq(read(c->pipe_ready[0], &r, 1), 1,
			     "child B could not attach (message '%s')", c->msg);
	}
	cr_expect_killed(c, cr_spawn(cr_child_a, c), "child A (raise SIGKILL)");
	cr_assert_eq(c->n_taken, cr_a_take);
	if (explicit_recover) {
		cr_assert_eq(write(c->pipe_go[1], "g", 1), 1);
		cr_expect_killed(c, b, point);
		close(c->pipe_ready[0]);
		close(c->pipe_go[1]);
	} else {
		cr_expect_killed(c, cr_spawn(cr_child_b_open, c), point);
	}
}

static void cr_recover_mid_test(const char *test, int explicit_recover, int recover_by_open)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, test);
	tq_stats s;

	cr_a_push = 0;
	cr_a_take = CR_BATCH;
	cr_a_ack = 0;
	cr_two_deaths(c, "recover.mid", explicit_recover);
	if (recover_by_open)
		cr_recover_by_open(c, 2);
	else
		cr_recover(q, 1, 2, 2);
	cr_stats(q, &s);
	cr_assert_eq(s.ready, CR_NPRE, "ready %u after recovery, expected %u", s.ready, CR_NPRE);
	cr_assert_eq(s.ready + s.free_slots, s.slots);
	cr_drain(q, c);
	uint32_t again = cr_verify(c, 1, 1);
	cr_assert_eq(again, CR_BATCH);
	cr_stats(q, &s);
	cr_log_counters(test, &s, NULL);
	cr_assert_eq(s.total.pushed, CR_NPRE);
	cr_assert_eq(s.total.recovered, CR_BATCH,
		     "total.recovered %llu, the dead child held %u leases",
		     (unsigned long long)s.total.recovered, CR_BATCH);
	cr_assert_eq(s.total.taken, CR_NPRE + CR_BATCH);
	cr_assert_eq(s.total.acked, CR_NPRE);
	cr_finish(q, c);
}

Test(crash, recover_mid_explicit)
{
	cr_recover_mid_test("recover_mid_x", 1, 0);
}

Test(crash, recover_mid_on_open)
{
	cr_recover_mid_test("recover_mid_o", 0, 0);
}

Test(crash, recover_mid_then_fresh_open)
{
	cr_recover_mid_test("recover_mid_f", 1, 1);
}

/* A pushes 10, takes 40, acks 20 and dies holding 20; B dies folding A's
 * counters; afterwards every total must be exact (no double fold). */
static void cr_fold_test(const char *test, int explicit_recover)
{
	struct cr_ctx *c;
	tq_queue *q = cr_setup(&c, test);
	tq_stats s;

	cr_a_push = 10;
	cr_a_take = 40;
	cr_a_ack = 20;
	cr_two_deaths(c, "fold.mid", explicit_recover);
	cr_recover(q, 1, 2, 2);
	cr_stats(q, &s);
	cr_assert_eq(s.ready, CR_NPRE + 10 - 20, "ready %u after recovery", s.ready);
	cr_drain(q, c);
	uint32_t again = cr_verify(c, 1, 1);
	cr_assert_eq(again, 20);
	cr_stats(q, &s);
	cr_log_counters(test, &s, NULL);
	cr_assert_eq(s.total.pushed, CR_NPRE + 10, "total.pushed %llu, expected %u",
		     (unsigned long long)s.total.pushed, CR_NPRE + 10);
	cr_assert_eq(s.total.taken, 40 + (CR_NPRE + 10 - 40) + 20, "total.taken %llu, expected %u",
		     (unsigned long long)s.total.taken, 40 + (CR_NPRE + 10 - 40) + 20);
	cr_assert_eq(s.total.acked, CR_NPRE + 10, "total.acked %llu, expected %u",
		     (unsigned long long)s.total.acked, CR_NPRE + 10);
	cr_assert_eq(s.total.recovered, 20, "total.recovered %llu, expected 20",
		     (unsigned long long)s.total.recovered);
	cr_assert_eq(s.total.failed, 0);
	cr_assert_eq(s.total.dead, 0);
	cr_assert_eq(s.total.expired, 0);
	cr_assert_eq(s.total.lost, 0);
	cr_finish(q, c);
}

Test(crash, fold_mid_on_open)
{
	cr_fold_test("fold_mid_o", 0);
}

Test(crash, fold_mid_explicit)
{
	cr_fold_test("fold_mid_x", 1);
}

/* ------------------------------------------ dead letters and crashes */

/* Lists the dead letters: each must be one of ours, at most once; marks
 * dead[v]. Returns the count. */
static int cr_dead_scan(tq_queue *q, uint8_t *dead, uint16_t *attempts, uint64_t *ids)
{
	static tq_dead_info info[CR_CAP];
	static char data[CR_CAP][CR_PAYBUF];
	int n = tq_dead_list(q, info, CR_CAP, data, CR_PAYBUF);
	cr_assert_geq(n, 0, "tq_dead_list: %s", tq_strerror(n));
	memset(dead, 0, CR_NV);
	for (int i = 0; i < n; i++) {
		long v = cr_decode(info[i].kind, info[i].value, data[i], info[i].len, CR_NV);
		cr_assert(v >= 0, "dead letter %d (id %llu kind %u len %u) is garbage", i,
			  (unsigned long long)info[i].id, info[i].kind, info[i].len);
		cr_assert_eq(dead[v], 0, "value %ld is dead twice", v);
		dead[v] = 1;
		if (attempts)
			attempts[v] = info[i].attempts;
		if (ids)
			ids[v] = info[i].id;
	}
	return n;
}

/* The parent takes values 0..n-1 and fails them; with max_attempts 1 they
 * all go dead. */
static void cr_make_dead(tq_queue *q, uint32_t n)
{
	tq_task t[CR_BATCH];
	int got = tq_take(q, t, n, 0);
	cr_assert_eq(got, (int)n, "take %u: %d (%s)", n, got, tq_strerror(got));
	for (int i = 0; i < got; i++)
		cr_assert_eq(cr_decode_task(&t[i], CR_NV), i, "took value %ld, expected %d",
			     cr_decode_task(&t[i], CR_NV), i);
	int rc = tq_fail(q, t, n, 9, "to the dead letters");
	cr_assert_eq(rc, 0, "tq_fail: %s", tq_strerror(rc));
	tq_stats s;
	cr_stats(q, &s);
	cr_assert_eq(s.dead, n);
}

/* A child: open, arm cr_point, then tq_dead_kick or tq_dead_purge (all). */
static int cr_dead_op_kick;

static int cr_child_dead_op(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm(cr_point, cr_hit);
	int rc = cr_dead_op_kick ? tq_dead_kick(q, TQ_ALL) : tq_dead_purge(q, TQ_ALL);
	snprintf(c->msg, sizeof(c->msg), "%s returned %d", cr_dead_op_kick ? "kick" : "purge", rc);
	return 0;
}

/* 20 dead tasks; a child dies inside the ring push of tq_dead_kick (to the
 * ready ring) or tq_dead_purge (to the free ring). Each of the 20 ends up
 * exactly once: still dead, or delivered (kick, attempt 1 again), or gone
 * (purge); no slot is lost or doubled. */
static void cr_dead_op_test(const char *test, int kick)
{
	struct cr_ctx *c;
	tq_queue *q;
	tq_stats s;
	static uint8_t dead[CR_NV];
	static uint64_t dead_ids[CR_NV];
	const uint32_t nd = 20;

	cr_max_attempts = 1;
	q = cr_setup(&c, test);
	cr_make_dead(q, nd);
	cr_point = "ring.push.mid";
	cr_hit = 1;
	cr_dead_op_kick = kick;
	cr_expect_killed(c, cr_spawn(cr_child_dead_op, c),
			 kick ? "ring.push.mid in tq_dead_kick" : "ring.push.mid in tq_dead_purge");
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready + s.dead + s.free_slots, s.slots,
		     "ready %u + dead %u + free %u != slots %u: slots lost or doubled", s.ready,
		     s.dead, s.free_slots, s.slots);
	int still = cr_dead_scan(q, dead, NULL, dead_ids);
	cr_assert_eq((uint32_t)still, s.dead);
	for (uint32_t v = nd; v < CR_NV; v++)
		cr_assert_eq(dead[v], 0, "value %u is dead, it never failed", v);
	cr_drain(q, c);
	uint32_t kicked = 0;
	for (uint32_t v = 0; v < CR_NPRE; v++) {
		if (v >= nd) {
			cr_assert_eq(c->drained[v], 1, "value %u delivered %u times", v, c->drained[v]);
			cr_assert_eq(c->drain_attempt[v], 1);
			continue;
		}
		cr_assert_leq(c->drained[v] + dead[v], 1,
			      "value %u both dead and delivered, or delivered twice", v);
		if (kick) {
			cr_assert_eq(c->drained[v] + dead[v], 1,
				     "dead value %u was neither kicked nor left dead", v);
			if (c->drained[v])
				cr_assert_eq(c->drain_attempt[v], 1,
					     "kicked value %u delivered with attempt %u (reset to 0 by "
					     "the kick)",
					     v, c->drain_attempt[v]);
		} else {
			cr_assert_eq(c->drained[v], 0, "purged value %u was delivered", v);
		}
		if (c->drained[v])
			cr_assert_eq(c->drain_id[v], c->push_id[v]);
		if (dead[v])
			cr_assert_eq(dead_ids[v], c->push_id[v]);
		kicked += c->drained[v];
	}
	cr_stats(q, &s);
	char extra[96];
	snprintf(extra, sizeof(extra), "%d still dead, %u kicked", still, kicked);
	cr_log_counters(test, &s, extra);
	int purged = tq_dead_purge(q, TQ_ALL);
	cr_assert_eq(purged, still, "tq_dead_purge(TQ_ALL) purged %d of %d", purged, still);
	cr_finish(q, c);
}

Test(crash, ring_push_mid_dead_kick)
{
	cr_dead_op_test("rp_kick", 1);
}

Test(crash, ring_push_mid_dead_purge)
{
	cr_dead_op_test("rp_purge", 0);
}

/* dead_capacity 5, 5 dead; a child fails one more, which drops the oldest
 * dead letter (a free-ring push), and dies inside that push. */
static int cr_child_fail_one_armed(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	int n = cr_child_take(c, q, &t, 1);
	if (n != 1)
		return cr_err(c, 3, "child tq_take", n);
	tq_fault_arm(cr_point, cr_hit);
	int rc = cr_child_fail(c, q, &t, 1);
	if (rc != 0)
		return cr_err(c, 4, "child tq_fail (armed)", rc);
	return 0;
}

/* A holder killed between the dead count and the DEAD state of a sixth
 * dead letter, beyond dead_capacity 5 (the recovery lock held): the next
 * holder recounts, recovery buries it again, nothing is dropped and every
 * count is exact (design.md, 10, "The dead count"). Then a kicker killed
 * after claiming its third dead letter: the same. */
static int cr_child_kick_armed(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm(cr_point, cr_hit);
	int rc = tq_dead_kick(q, TQ_ALL);
	return cr_err(c, 4, "child tq_dead_kick (armed)", rc < 0 ? rc : 0);
}

Test(crash, bury_counted_beyond_the_dead_area)
{
	struct cr_ctx *c;
	tq_queue *q;
	tq_stats s;
	static uint8_t dead[CR_NV];

	cr_max_attempts = 1;
	cr_dead_capacity = 5;
	q = cr_setup(&c, "bury_counted");
	cr_make_dead(q, 5);
	cr_point = "bury.counted";
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_fail_one_armed, c),
			 "bury.counted burying a sixth dead letter beyond dead_capacity 5");
	cr_assert(c->child_taken[5], "the child should have taken value 5");
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.ready + s.dead + s.free_slots, s.slots,
		     "ready %u + dead %u + free %u != slots %u: slots lost or doubled", s.ready,
		     s.dead, s.free_slots, s.slots);
	/* Nothing dropped: the sixth is kept beyond the area (layout 7). */
	cr_assert_eq(s.dead, 6, "%u dead letters kept, 6 died (dead_capacity 5)", s.dead);
	cr_assert_eq(s.dead_over, 1, "dead_over %u", s.dead_over);
	int nd = cr_dead_scan(q, dead, NULL, NULL);
	cr_assert_eq((uint32_t)nd, s.dead);
	for (uint32_t v = 6; v < CR_NV; v++)
		cr_assert_eq(dead[v], 0, "value %u is dead", v);
	cr_drain(q, c);
	for (uint32_t v = 0; v < CR_NPRE; v++)
		cr_assert_eq(c->drained[v], v < 6 ? 0u : 1u, "value %u delivered %u times", v,
			     c->drained[v]);
	cr_stats(q, &s);
	char extra[64];
	snprintf(extra, sizeof(extra), "%d dead letters kept", nd);
	cr_log_counters("bury_counted_beyond_the_dead_area", &s, extra);
	cr_assert_eq(nd, 6, "%d dead letters kept, 6 died", nd);
	cr_assert_eq(s.total.dead, 6, "total.dead %llu", (unsigned long long)s.total.dead);
	cr_assert_eq(s.total.dead_overflow, 1, "dead_overflow %llu", (unsigned long long)s.total.dead_overflow);

	/* A kicker killed after claiming its third: two kicked, the third
	 * (attempts not yet reset) buried again by recovery. */
	cr_point = "kick.claimed";
	cr_hit = 3;
	cr_expect_killed(c, cr_spawn(cr_child_kick_armed, c), "kick.claimed on the third dead letter");
	cr_recover(q, 1, 1, 2);
	cr_stats(q, &s);
	nd = cr_dead_scan(q, dead, NULL, NULL);
	cr_assert_eq((uint32_t)nd, s.dead, "listed %d, stats.dead %u", nd, s.dead);
	cr_assert_eq(s.dead, 4, "dead %u: 6 less the two kicked", s.dead);
	cr_assert_eq(s.ready, 2, "ready %u: the two kicked", s.ready);
	cr_assert_eq(s.dead_over, 0);
	cr_assert_eq(s.ready + s.dead + s.free_slots, s.slots, "ready %u + dead %u + free %u != slots %u",
		     s.ready, s.dead, s.free_slots, s.slots);
	/* The push room agrees: the capacity less the ready ones (4 dead
	 * are inside the area). */
	uint32_t room = 0;
	while (tq_push_int(q, 5000 + room, 0) == 0)
		room++;
	cr_assert_eq(room, CR_CAP - 2, "pushed %u into the room left", room);
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 4);
	tq_close(q);
	cr_q = NULL;
	tq_destroy(c->name);
}

/* max_attempts 1: a holder dies with its tasks on their last attempt, so
 * recovery buries them instead of returning them. */
Test(crash, holder_dies_on_last_attempt)
{
	struct cr_ctx *c;
	tq_queue *q;
	tq_stats s;
	static uint8_t dead[CR_NV];
	static uint16_t attempts[CR_NV];
	static uint64_t ids[CR_NV];

	cr_max_attempts = 1;
	q = cr_setup(&c, "last_attempt");
	cr_a_push = 0;
	cr_a_take = 10;
	cr_a_ack = 0;
	cr_expect_killed(c, cr_spawn(cr_child_a, c), "child A (raise SIGKILL)");
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	cr_assert_eq(s.dead, 10, "%u dead after the holder died on their last attempt", s.dead);
	cr_assert_eq(s.ready, CR_NPRE - 10);
	int nd = cr_dead_scan(q, dead, attempts, ids);
	cr_assert_eq(nd, 10);
	for (uint32_t v = 0; v < CR_NV; v++) {
		cr_assert_eq(dead[v], c->child_taken[v], "value %u: dead %u, held by the child %u", v,
			     dead[v], c->child_taken[v]);
		if (dead[v]) {
			cr_assert_eq(attempts[v], 1);
			cr_assert_eq(ids[v], c->child_id[v]);
		}
	}
	cr_drain(q, c);
	for (uint32_t v = 0; v < CR_NPRE; v++)
		cr_assert_eq(c->drained[v], dead[v] ? 0u : 1u, "value %u delivered %u times", v,
			     c->drained[v]);
	cr_stats(q, &s);
	cr_log_counters("holder_dies_on_last_attempt", &s, NULL);
	cr_assert_eq(s.total.recovered, 10);
	cr_assert_eq(s.total.dead, 10);
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 10);
	cr_finish(q, c);
}

/* A holder that dies inside tq_fail on the last attempt, right after
 * claiming the task it fails: that task is buried, not delivered again, and
 * its other leases (also on their last attempt) go dead too. */
Test(crash, fail_claimed_on_last_attempt)
{
	struct cr_ctx *c;
	tq_queue *q;
	tq_stats s;
	static uint8_t dead[CR_NV];
	static uint16_t attempts[CR_NV];
	static uint64_t ids[CR_NV];

	cr_max_attempts = 1;
	q = cr_setup(&c, "fail_claimed");
	cr_point = "fail.claimed";
	cr_hit = 1;
	cr_expect_killed(c, cr_spawn(cr_child_take_fail_arm, c), "fail.claimed");
	cr_assert_eq(c->n_taken, CR_BATCH);
	cr_recover(q, 1, 1, 1);
	cr_stats(q, &s);
	/* Every task the child held was on its last attempt: all 64 died, and
	 * are kept, beyond the dead-letter area's capacity too. */
	cr_assert_eq(s.total.dead, CR_BATCH, "total.dead %llu", (unsigned long long)s.total.dead);
	cr_assert_eq(s.dead, CR_BATCH, "%u dead kept of %u", s.dead, CR_BATCH);
	cr_assert_eq(s.dead_over, CR_BATCH > s.dead_capacity ? CR_BATCH - s.dead_capacity : 0, "dead_over %u", s.dead_over);
	cr_assert_eq(s.ready, CR_NPRE - CR_BATCH);
	int nd = cr_dead_scan(q, dead, attempts, ids);
	cr_assert_eq((uint32_t)nd, s.dead);
	for (uint32_t v = 0; v < CR_NV; v++)
		if (dead[v])
			cr_assert_eq(attempts[v], 1, "dead value %u has attempts %u", v, attempts[v]);
	cr_drain(q, c);
	for (uint32_t v = 0; v < CR_NPRE; v++)
		cr_assert_eq(c->drained[v], c->child_taken[v] ? 0u : 1u, "value %u delivered %u times after recovery",
			     v, c->drained[v]);
	cr_stats(q, &s);
	cr_log_counters("fail_claimed_on_last_attempt", &s, NULL);
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), (int)s.dead);
	cr_finish(q, c);
}

/* --------------------------------- a reburied task's own message only */

#define SA_OLD "OLD: the message of an earlier task in this slot"

/* Pushes values lo..lo+n-1 in one mixed batch (an integer, then strings),
 * which goes through the slots (not the lanes). */
static void sa_push_slots(tq_queue *q, uint64_t lo, int n)
{
	tq_task t[4];
	for (int k = 0; k < n; k++)
		t[k] = k == 0 ? (tq_task){.kind = TQ_KIND_INT, .value = lo}
			      : (tq_task){.kind = TQ_KIND_STRING, .data = "s", .len = 1};
	cr_assert_eq(tq_push(q, t, (size_t)n, 0), n);
}

/* Child: takes 4 and fails them, killed right after claiming the first. */
static int sa_child_fail_claimed(void *arg)
{
	struct cr_ctx *c = arg;
	tq_task t[4];
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	int n = tq_take(q, t, 4, 2000000000ull);
	if (n != 4)
		return cr_err(c, 3, "child tq_take", n);
	tq_fault_arm("fail.claimed", 1);
	int rc = tq_fail(q, t, 4, 5, "never written: killed first");
	return cr_err(c, 4, "child tq_fail (armed)", rc);
}

/* Child: kicks every dead task, killed right after claiming the first. */
static int sa_child_kick_claimed(void *arg)
{
	struct cr_ctx *c = arg;
	tq_queue *q = cr_child_open(c);
	if (!q)
		return 2;
	tq_fault_arm("kick.claimed", 1);
	int rc = tq_dead_kick(q, TQ_ALL);
	return cr_err(c, 4, "child tq_dead_kick (armed)", rc < 0 ? rc : 0);
}

/* Every slot first held a task that died with SA_OLD; then a holder is
 * killed inside tq_fail after claiming its first task (on its last
 * attempt), before writing any message: recovery buries it with "the
 * process holding it died", never with the slot's previous occupant's
 * message. Then a kicker killed after claiming a dead task with a long
 * message: recovery buries it again, with its whole message. */
Test(crash, reburied_tasks_keep_their_own_message)
{
	struct cr_ctx *c = tqt_shared(sizeof(*c));
	tq_config cfg;
	tq_queue *q = NULL;
	static tq_dead_info di[8];

	tqt_name(c->name, "own_msg");
	memcpy(cr_qname, c->name, sizeof(cr_qname));
	tq_destroy(c->name);
	tq_config_init(&cfg);
	cfg.capacity = 4;
	cfg.dead_capacity = 2;
	cfg.max_payload = 64;
	cfg.max_attempts = 1;
	cfg.lease_ns = 60ull * 1000000000ull;
	int rc = tq_create(c->name, &cfg, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	cr_q = q;
	/* Two rounds of 4 through the 6 slots (the free ring is FIFO): every
	 * slot's aux ends up holding SA_OLD. */
	for (int round = 0; round < 2; round++) {
		tq_task t[4];
		sa_push_slots(q, (uint64_t)round * 10, 4);
		cr_assert_eq(tq_take(q, t, 4, 0), 4);
		cr_assert_eq(tq_fail(q, t, 4, 9, SA_OLD), 0);
		cr_assert_eq(tq_dead_purge(q, TQ_ALL), 4);
	}
	sa_push_slots(q, 100, 4);
	cr_expect_killed(c, cr_spawn(sa_child_fail_claimed, c), "fail.claimed");
	cr_recover(q, 1, 1, 1);
	int n = tq_dead_list(q, di, 8, NULL, 0);
	cr_assert_eq(n, 4, "tq_dead_list: %d", n);
	int died = 0;
	for (int k = 0; k < n; k++) {
		cr_expect(strstr(di[k].last_msg, "OLD") == NULL, "dead task %llu shows '%s', an earlier task's message",
			  (unsigned long long)di[k].id, di[k].last_msg);
		cr_expect_eq(di[k].last_err, TQ_ELOST);
		died += strcmp(di[k].last_msg, "the process holding it died") == 0;
	}
	cr_expect_eq(died, 1, "the claimed task's reason: %d", died);
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 4);

	/* A long message within the area, then a kick interrupted after its
	 * claim: buried again with the whole message. */
	char longmsg[301];
	memset(longmsg, 'L', 300);
	longmsg[300] = '\0';
	tq_task t[2];
	sa_push_slots(q, 200, 2);
	cr_assert_eq(tq_take(q, t, 2, 0), 2);
	cr_assert_eq(tq_fail(q, t, 1, 11, longmsg), 0);
	cr_assert_eq(tq_ack(q, t + 1, 1), 0);
	cr_expect_killed(c, cr_spawn(sa_child_kick_claimed, c), "kick.claimed");
	cr_recover(q, 1, 1, 2);
	n = tq_dead_list(q, di, 8, NULL, 0);
	cr_assert_eq(n, 1, "tq_dead_list: %d (the interrupted kick is undone)", n);
	cr_expect_eq(di[0].id, t[0].id);
	cr_expect_eq(di[0].last_err, 11);
	cr_expect_str_eq(di[0].last_msg, longmsg, "the whole message after the re-burial");
	tq_stats s;
	cr_stats(q, &s);
	cr_expect_eq(s.dead, 1);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	cr_assert_eq(tq_dead_purge(q, TQ_ALL), 1);
	cr_q = NULL;
	cr_assert_eq(tq_close(q), 0);
	cr_assert_eq(tq_destroy(c->name), 0);
	cr_qname[0] = '\0';
}

/* ------------------------------------------- everyone killed at once */

#define AK_PROD 2
#define AK_CONS 2
#define AK_PER 60000u /* values per producer; more than can move before the kill */
#define AK_NV (AK_PROD * AK_PER)
#define AK_CAP 1024

struct ak_val {
	uint8_t attempted, confirmed;
	uint8_t acking;   /* tq_ack was called with it */
	uint8_t acked_ok; /* tq_ack returned 0 for it (count) */
	uint8_t by_fresh; /* deliveries to the fresh process after the kill */
	uint8_t deliv;    /* deliveries before the kill */
};

struct ak_ctx {
	char name[TQT_NAME_LEN];
	char msg[256];
	pid_t pgid;
	int opened;
	int errors;
	int garbage;
	uint64_t done;
	tq_stats fresh_open; /* the fresh process's stats right after tq_open */
	int fresh_open_rc;
	struct ak_val v[AK_NV];
};

static struct ak_ctx *ak;
static int ak_idx;

static void ak_join_group(void)
{
	if (ak->pgid == 0)
		setpgid(0, 0);
	else
		setpgid(0, ak->pgid);
}

static uint32_t ak_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int ak_producer(void *arg)
{
	(void)arg;
	ak_join_group();
	tq_queue *q = NULL;
	int rc = tq_open(ak->name, &q);
	if (rc != 0) {
		__atomic_fetch_add(&ak->errors, 1, __ATOMIC_SEQ_CST);
		return 2;
	}
	__atomic_fetch_add(&ak->opened, 1, __ATOMIC_SEQ_CST);
	uint32_t seed = (uint32_t)getpid() * 2654435761u + 1u;
	uint32_t pos = (uint32_t)ak_idx * AK_PER, end = pos + AK_PER;
	tq_task t[32];
	static char bufs[32][CR_PAYBUF];
	while (pos < end) {
		uint32_t n = 1 + ak_rand(&seed) % 32;
		if (n > end - pos)
			n = end - pos;
		for (uint32_t i = 0; i < n; i++) {
			cr_fill(&t[i], pos + i, bufs[i]);
			ak->v[pos + i].attempted = 1;
		}
		int k = tq_push(q, t, n, 50000000ull);
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k <= 0) {
			snprintf(ak->msg, sizeof(ak->msg), "producer tq_push: %s", tq_strerror(k));
			__atomic_fetch_add(&ak->errors, 1, __ATOMIC_SEQ_CST);
			return 3;
		}
		for (int i = 0; i < k; i++)
			ak->v[pos + (uint32_t)i].confirmed = 1;
		pos += (uint32_t)k;
	}
	for (;;)
		pause(); /* out of values: wait for the kill */
}

static int ak_consumer(void *arg)
{
	(void)arg;
	ak_join_group();
	tq_queue *q = NULL;
	int rc = tq_open(ak->name, &q);
	if (rc != 0) {
		__atomic_fetch_add(&ak->errors, 1, __ATOMIC_SEQ_CST);
		return 2;
	}
	__atomic_fetch_add(&ak->opened, 1, __ATOMIC_SEQ_CST);
	tq_task t[16];
	long vs[16];
	for (;;) {
		int n = tq_take(q, t, 16, 50000000ull);
		if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
			continue;
		if (n <= 0) {
			snprintf(ak->msg, sizeof(ak->msg), "consumer tq_take: %s", tq_strerror(n));
			__atomic_fetch_add(&ak->errors, 1, __ATOMIC_SEQ_CST);
			return 3;
		}
		for (int i = 0; i < n; i++) {
			vs[i] = cr_decode_task(&t[i], AK_NV);
			if (vs[i] < 0) {
				__atomic_fetch_add(&ak->garbage, 1, __ATOMIC_SEQ_CST);
				continue;
			}
			__atomic_fetch_add(&ak->v[vs[i]].deliv, 1, __ATOMIC_SEQ_CST);
			__atomic_store_n(&ak->v[vs[i]].acking, 1, __ATOMIC_SEQ_CST);
		}
		rc = tq_ack(q, t, (size_t)n);
		if (rc != 0) {
			snprintf(ak->msg, sizeof(ak->msg), "consumer tq_ack: %s", tq_strerror(rc));
			__atomic_fetch_add(&ak->errors, 1, __ATOMIC_SEQ_CST);
			return 4;
		}
		for (int i = 0; i < n; i++)
			if (vs[i] >= 0)
				__atomic_fetch_add(&ak->v[vs[i]].acked_ok, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&ak->done, (uint64_t)n, __ATOMIC_SEQ_CST);
	}
}

/* The fresh process: tq_open (recovers everyone), then drains. */
static int ak_fresh(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	ak->fresh_open_rc = tq_open(ak->name, &q);
	if (ak->fresh_open_rc != 0)
		return 2;
	tq_stats_get(q, &ak->fresh_open);
	tq_task t[32];
	uint64_t deadline = tqt_now_ms() + 20000;
	for (;;) {
		int n = tq_take(q, t, 32, 0);
		if (n == TQ_EAGAIN) {
			tq_stats s;
			tq_stats_get(q, &s);
			if (s.ready == 0 && s.leased == 0 && s.delayed == 0)
				break;
			if (tqt_now_ms() > deadline) {
				snprintf(ak->msg, sizeof(ak->msg),
					 "fresh drain stalled: ready %u leased %u delayed %u", s.ready,
					 s.leased, s.delayed);
				return 5;
			}
			n = tq_take(q, t, 32, 20000000ull);
			if (n == TQ_EAGAIN || n == TQ_ETIMEDOUT)
				continue;
		}
		if (n <= 0) {
			snprintf(ak->msg, sizeof(ak->msg), "fresh tq_take: %s", tq_strerror(n));
			return 3;
		}
		for (int i = 0; i < n; i++) {
			long v = cr_decode_task(&t[i], AK_NV);
			if (v < 0) {
				ak->garbage++;
				continue;
			}
			ak->v[v].by_fresh++;
		}
		int rc = tq_ack(q, t, (size_t)n);
		if (rc != 0) {
			snprintf(ak->msg, sizeof(ak->msg), "fresh tq_ack: %s", tq_strerror(rc));
			return 4;
		}
	}
	tq_close(q);
	return 0;
}

Test(crash, all_killed_at_once, .timeout = 90)
{
	tq_config cfg;
	tq_queue *q = NULL;
	pid_t pids[AK_PROD + AK_CONS];
	int np = 0;

	ak = tqt_shared(sizeof(*ak));
	tqt_name(ak->name, "all_killed");
	memcpy(cr_qname, ak->name, sizeof(cr_qname));
	tq_destroy(ak->name);
	tq_config_init(&cfg);
	cfg.capacity = AK_CAP;
	cfg.max_payload = 512;
	cfg.lease_ns = 60ull * 1000000000ull;
	int rc = tq_create(ak->name, &cfg, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	cr_q = q;

	/* all children in one new process group, killed with one killpg */
	for (int i = 0; i < AK_PROD + AK_CONS; i++) {
		ak_idx = i < AK_PROD ? i : i - AK_PROD;
		pid_t pid = cr_spawn(i < AK_PROD ? ak_producer : ak_consumer, NULL);
		if (ak->pgid == 0)
			ak->pgid = pid;
		setpgid(pid, ak->pgid); /* the child does it too; whoever is first */
		pids[np++] = pid;
	}
	uint64_t deadline = tqt_now_ms() + 30000;
	uint64_t want = 4000;
	while (__atomic_load_n(&ak->opened, __ATOMIC_SEQ_CST) < AK_PROD + AK_CONS ||
	       __atomic_load_n(&ak->done, __ATOMIC_SEQ_CST) < want) {
		cr_assert_eq(__atomic_load_n(&ak->errors, __ATOMIC_SEQ_CST), 0,
			     "a child failed: %s", ak->msg);
		cr_assert(tqt_now_ms() < deadline, "no progress: %d opened, %llu done", ak->opened,
			  (unsigned long long)ak->done);
		tqt_sleep_ms(1);
	}
	for (int i = 0; i < np; i++)
		cr_assert_eq(getpgid(pids[i]), ak->pgid, "child %d not in the process group", i);
	cr_assert_eq(kill(-ak->pgid, SIGKILL), 0, "killpg: %s", strerror(errno));
	for (int i = 0; i < np; i++) {
		int st = tqt_wait(pids[i], 10000);
		cr_forget(pids[i]);
		cr_assert_eq(st, 128 + SIGKILL, "child %d ended with status %d, not SIGKILL (%s)", i,
			     st, ak->msg);
	}
	cr_assert_eq(ak->errors, 0, "a child failed: %s", ak->msg);
	uint64_t done_at_kill = ak->done;

	pid_t fresh = cr_spawn(ak_fresh, NULL);
	int st = tqt_wait(fresh, 30000);
	cr_forget(fresh);
	cr_assert_eq(st, 0, "the fresh process ended with %d (open rc %d, %s)", st,
		     ak->fresh_open_rc, ak->msg);
	cr_assert_eq(ak->fresh_open.recoveries, AK_PROD + AK_CONS,
		     "tq_open in a fresh process recovered %u dead processes, expected %d",
		     ak->fresh_open.recoveries, AK_PROD + AK_CONS);
	cr_assert_eq(ak->fresh_open.leased, 0, "after tq_open %u tasks still leased",
		     ak->fresh_open.leased);
	cr_assert_eq(ak->fresh_open.procs, 2, "after tq_open %u processes attached, expected 2",
		     ak->fresh_open.procs);
	cr_assert_eq(ak->garbage, 0, "%d garbage tasks delivered", ak->garbage);

	uint64_t attempted = 0, confirmed = 0, acked = 0, fresh_n = 0, ambiguous = 0;
	for (uint32_t v = 0; v < AK_NV; v++) {
		struct ak_val *x = &ak->v[v];
		attempted += x->attempted;
		confirmed += x->confirmed;
		acked += x->acked_ok;
		fresh_n += x->by_fresh;
		if (!x->attempted) {
			cr_assert(x->deliv == 0 && x->by_fresh == 0, "value %u never pushed, delivered",
				  v);
			continue;
		}
		cr_assert_leq(x->acked_ok, 1, "value %u acked successfully %u times", v, x->acked_ok);
		cr_assert_leq(x->by_fresh, 1, "value %u delivered %u times after the kill", v,
			      x->by_fresh);
		if (x->acked_ok)
			cr_assert_eq(x->by_fresh, 0, "value %u was acked, yet delivered again", v);
		if (x->confirmed) {
			int ok = x->acked_ok || x->by_fresh || x->acking;
			cr_assert(ok, "value %u was pushed (tq_push returned) and never delivered", v);
			if (!x->acked_ok && !x->by_fresh)
				ambiguous++;
		}
	}
	tq_stats s;
	cr_stats(q, &s);
	cr_log_info("all_killed_at_once: %llu done at the kill; attempted %llu confirmed %llu "
		    "acked %llu, after the kill %llu delivered (%llu acked when killed)",
		    (unsigned long long)done_at_kill, (unsigned long long)attempted,
		    (unsigned long long)confirmed, (unsigned long long)acked,
		    (unsigned long long)fresh_n, (unsigned long long)ambiguous);
	cr_log_counters("all_killed_at_once", &s, NULL);
	cr_assert(s.ready == 0 && s.leased == 0 && s.delayed == 0 && s.dead == 0,
		  "queue not empty: ready %u leased %u delayed %u dead %u", s.ready, s.leased,
		  s.delayed, s.dead);
	cr_assert_eq(s.free_slots, s.slots, "free_slots %u of %u", s.free_slots, s.slots);
	cr_assert_eq(s.procs, 1);
	cr_assert(s.total.pushed >= confirmed && s.total.pushed <= attempted,
		  "total.pushed %llu, confirmed %llu, attempted %llu",
		  (unsigned long long)s.total.pushed, (unsigned long long)confirmed,
		  (unsigned long long)attempted);
	cr_assert_geq(s.total.acked, acked + fresh_n, "total.acked %llu < %llu acks seen",
		      (unsigned long long)s.total.acked, (unsigned long long)(acked + fresh_n));
	cr_assert_eq(s.total.lost, 0);
	cr_assert_eq(s.total.expired, 0);
	/* usable */
	rc = tq_push_int(q, 42, 0);
	cr_assert_eq(rc, 0, "push after recovery: %s", tq_strerror(rc));
	tq_task t;
	rc = tq_take(q, &t, 1, 0);
	cr_assert_eq(rc, 1, "take after recovery: %s", tq_strerror(rc));
	cr_assert(t.kind == TQ_KIND_INT && t.value == 42);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	cr_q = NULL;
	cr_assert_eq(tq_close(q), 0);
	cr_assert_eq(tq_destroy(ak->name), 0);
	cr_qname[0] = '\0';
}
