/* SPDX-License-Identifier: MIT */
/*
 * test_chaos.c - the chaos test (suite "chaos").
 *
 * 2 producers and 3 consumers (separate processes) move tasks, integers and
 * JSON payloads of 20..330 bytes, in batches of random size (consumers with
 * an odd id take ahead: tq_set_take_ahead, 2..64 a claim); about 5% are
 * "poison" that consumers always fail (max_attempts 3, backoff 1 ms, a dead
 * area that holds them all). Meanwhile the parent SIGKILLs a random
 * producer (1 in 4) or consumer each time the shared progress counter
 * advanced by CH_STEP tasks (never after a sleep), 60 times, and starts a
 * new process in its place. Then producers stop, consumers empty the queue
 * and stop, the parent recovers and drains, and checks everything.
 *
 * Shared memory (MAP_SHARED anonymous) records, per value: attempted and
 * confirmed pushes (confirmed = inside the k that tq_push returned), every
 * delivery (count, consumer, place in the global order, attempt, id) and
 * the acks that returned 0. Checked at the end:
 *   - every confirmed value is done (acked) or dead (tq_dead_list), none
 *     lost; poison values are all dead, after exactly max_attempts;
 *   - nothing delivered or dead is garbage or was never pushed;
 *   - no value delivered more than max_attempts times or acked twice; a
 *     good value delivered more than once went, every time but the last,
 *     to a consumer that was killed, and came back only after the kill;
 *   - redeliveries keep the task's id; ids are unique;
 *   - the queue is empty (ready, leased, delayed 0), no slot leaked, only
 *     the parent attached, usable; the counters add up exactly.
 *
 * TQ_CHAOS_SCALE (a float, default 1) multiplies the number of kills (and
 * of values). The run takes about 1 s (2 s under ThreadSanitizer).
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

#include "taskq.h"
#include "util.h"

/* ------------------------------------------------------------ the codec */

/* Value v travels as a TQ_KIND_JSON payload (v % 3 == 0; 20..330 bytes, all
 * derived from v) or as a TQ_KIND_INT with a checked 64-bit encoding. */

#define CH_PAYBUF 400

static uint16_t ch_mix16(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (uint16_t)x;
}

static uint16_t ch_kind_of(uint32_t v)
{
	return v % 3u == 0 ? TQ_KIND_JSON : TQ_KIND_INT;
}

static int ch_poison(uint32_t v)
{
	return ch_mix16((uint64_t)v * 31u + 7u) % 20u == 0;
}

static uint64_t ch_int_value(uint32_t v)
{
	return (UINT64_C(0xBEEF) << 48) | ((uint64_t)v << 16) | ch_mix16(v);
}

static uint32_t ch_json(uint32_t v, char *buf)
{
	int pad = (int)(ch_mix16((uint64_t)v * 13u + 5u) % 300u);
	int n = snprintf(buf, CH_PAYBUF, "{\"v\":%u,\"p\":\"", v);
	for (int j = 0; j < pad; j++)
		buf[n++] = (char)('A' + (int)((v * 7u + (uint32_t)j) % 26u));
	buf[n++] = '"';
	buf[n++] = '}';
	return (uint32_t)n;
}

static void ch_fill(tq_task *t, uint32_t v, char *buf)
{
	memset(t, 0, sizeof(*t));
	t->kind = ch_kind_of(v);
	if (t->kind == TQ_KIND_INT) {
		t->value = ch_int_value(v);
	} else {
		t->len = ch_json(v, buf);
		t->data = buf;
	}
}

static long ch_decode(uint16_t kind, uint64_t value, const void *data, uint32_t len, uint32_t nv)
{
	if (kind == TQ_KIND_INT) {
		uint64_t v = (value >> 16) & 0xffffffffu;
		if ((value >> 48) != 0xBEEF || v >= nv || ch_kind_of((uint32_t)v) != TQ_KIND_INT ||
		    ch_int_value((uint32_t)v) != value)
			return -1;
		return (long)v;
	}
	if (kind == TQ_KIND_JSON) {
		char tmp[CH_PAYBUF + 1], exp[CH_PAYBUF];
		if (!data || len < 8 || len > CH_PAYBUF)
			return -1;
		memcpy(tmp, data, len);
		tmp[len] = '\0';
		if (strncmp(tmp, "{\"v\":", 5) != 0)
			return -1;
		char *end;
		unsigned long v = strtoul(tmp + 5, &end, 10);
		if (end == tmp + 5 || v >= nv || ch_kind_of((uint32_t)v) != TQ_KIND_JSON)
			return -1;
		if (ch_json((uint32_t)v, exp) != len || memcmp(exp, data, len) != 0)
			return -1;
		return (long)v;
	}
	return -1;
}

/* ------------------------------------------------------ shared records */

#define CH_PROD 2
#define CH_CONS 3
#define CH_MAXCID 1000 /* consumer ids 1..; 0 is the parent's final drain */
#define CH_WHO 3       /* deliveries recorded per value (max_attempts) */
#define CH_MAX_ATTEMPTS 3
#define CH_TAKE 16
#define CH_STEP 1000   /* tasks processed between two kills */

struct ch_val {
	uint32_t id1;          /* low 31 bits of the first delivery's id, + 1; 0: none */
	uint16_t who[CH_WHO];  /* consumer id + 1 of delivery i; 0: the recording
				  consumer was killed before it wrote this */
	uint32_t seq[CH_WHO];  /* delivery i's place in the global order (from 1); 0: unrecorded */
	uint8_t deliv;         /* deliveries seen */
	uint8_t acked;         /* tq_ack returned 0 with it (count) */
	uint8_t max_attempt;   /* highest tq_task.attempt seen */
	uint8_t attempted;     /* was in a tq_push call */
	uint8_t confirmed;     /* among the k that tq_push returned */
	uint8_t acking;        /* tq_ack was called with it */
	uint8_t ack_deliv;     /* bit i: tq_ack was called with delivery i (i < 8) */
};

struct ch_ctx {
	char name[TQT_NAME_LEN];
	char msg[256]; /* the first child error */
	uint32_t total, per_prod;
	uint64_t done;        /* tasks acked or failed by consumers: the progress */
	uint32_t dseq;        /* deliveries so far, all values (the global order) */
	uint64_t garbage;     /* undecodable tasks delivered */
	uint64_t errors;      /* unexpected errors in children */
	uint64_t lost_calls;  /* tq_ack / tq_fail that returned TQ_ELOST */
	uint64_t bad_attempt; /* attempt outside 1..max_attempts */
	uint64_t id_changed;  /* a redelivery with another id */
	uint32_t cursor[CH_PROD]; /* producer p: first value never attempted */
	uint8_t prod_finished[CH_PROD];
	int produce_stop;     /* producers: stop now (enough kills) */
	int stop;             /* consumers: stop now (everything done) */
	uint8_t killed[CH_MAXCID + 1];    /* consumer ids that were SIGKILLed */
	uint32_t kill_seq[CH_MAXCID + 1]; /* dseq just before the kill was sent */
	struct ch_val v[];
};

static struct ch_ctx *ch;
static int ch_slot; /* the child's producer index or consumer id */

static void ch_error(const char *what, int rc)
{
	if (__atomic_fetch_add(&ch->errors, 1, __ATOMIC_SEQ_CST) == 0)
		snprintf(ch->msg, sizeof(ch->msg), "pid %ld: %s: %d (%s)", (long)getpid(), what, rc,
			 tq_strerror(rc));
}

static uint32_t ch_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* A delivery recorded by consumer w (as stored in who[]) went to a process
 * that was killed; 0 means its recorder died before writing it. */
static int ch_was_killed(uint16_t w)
{
	return w == 0 || ch->killed[w - 1];
}

/* --------------------------------------------------------------- children */

static pid_t ch_parent;

/* Children die with the test process (say, killed by its timeout) instead
 * of running on, and run at a lower priority so that the killer (the
 * parent) is scheduled promptly on a busy 2-core machine. */
static void ch_child_setup(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != ch_parent)
		_exit(99);
	errno = 0;
	if (nice(5) == -1 && errno != 0)
		ch_error("nice", TQ_ESYS);
}

/* Producer p pushes its values in order, in batches of 1..16, until it has
 * pushed them all or produce_stop is set. A new incarnation starts after
 * everything an earlier one attempted (that may or may not be in). */
static int ch_producer(void *arg)
{
	(void)arg;
	int p = ch_slot;
	tq_queue *q = NULL;
	ch_child_setup();
	int rc = tq_open(ch->name, &q);
	if (rc != 0) {
		ch_error("producer tq_open", rc);
		return 2;
	}
	uint32_t seed = (uint32_t)getpid() * 2654435761u | 1u;
	uint32_t end = (uint32_t)(p + 1) * ch->per_prod;
	uint32_t pos = __atomic_load_n(&ch->cursor[p], __ATOMIC_SEQ_CST), hi = pos;
	tq_task t[16];
	static char bufs[16][CH_PAYBUF];

	while (pos < end && !__atomic_load_n(&ch->produce_stop, __ATOMIC_SEQ_CST)) {
		if (pos == hi) {
			uint32_t n = 1 + ch_rand(&seed) % 16;
			if (n > end - pos)
				n = end - pos;
			hi = pos + n;
			for (uint32_t v = pos; v < hi; v++)
				__atomic_store_n(&ch->v[v].attempted, 1, __ATOMIC_SEQ_CST);
			__atomic_store_n(&ch->cursor[p], hi, __ATOMIC_SEQ_CST);
		}
		/* [pos, hi): attempted, not accepted yet (a short push leaves some) */
		uint32_t n = hi - pos;
		for (uint32_t i = 0; i < n; i++)
			ch_fill(&t[i], pos + i, bufs[i]);
		int k = tq_push(q, t, n, 20000000ull);
		if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN)
			continue;
		if (k <= 0 || (uint32_t)k > n) {
			ch_error("producer tq_push", k);
			return 3;
		}
		for (int i = 0; i < k; i++)
			__atomic_store_n(&ch->v[pos + (uint32_t)i].confirmed, 1, __ATOMIC_SEQ_CST);
		pos += (uint32_t)k;
	}
	__atomic_store_n(&ch->prod_finished[p], 1, __ATOMIC_SEQ_CST);
	tq_close(q);
	return 0;
}

static void ch_max8(uint8_t *p, uint8_t x)
{
	uint8_t cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	while (cur < x && !__atomic_compare_exchange_n(p, &cur, x, 0, __ATOMIC_SEQ_CST,
						       __ATOMIC_SEQ_CST))
		;
}

/* Records n taken tasks, acks the good ones, fails the poison ones.
 * Returns 0, or nonzero on an unexpected error. */
static int ch_process(tq_queue *q, const tq_task *t, int n, int cid)
{
	tq_task acks[CH_TAKE], fails[CH_TAKE];
	long av[CH_TAKE];
	uint8_t ad[CH_TAKE];
	int na = 0, nf = 0, rc;

	for (int i = 0; i < n; i++) {
		long v = ch_decode(t[i].kind, t[i].value, t[i].data, t[i].len, ch->total);
		if (v < 0) {
			__atomic_fetch_add(&ch->garbage, 1, __ATOMIC_SEQ_CST);
			av[na] = -1;
			acks[na++] = t[i];
			continue;
		}
		struct ch_val *x = &ch->v[v];
		uint8_t d = __atomic_fetch_add(&x->deliv, 1, __ATOMIC_SEQ_CST);
		uint32_t sq = __atomic_add_fetch(&ch->dseq, 1, __ATOMIC_SEQ_CST);
		if (d < CH_WHO) {
			__atomic_store_n(&x->seq[d], sq, __ATOMIC_SEQ_CST);
			__atomic_store_n(&x->who[d], (uint16_t)(cid + 1), __ATOMIC_SEQ_CST);
		}
		ch_max8(&x->max_attempt, t[i].attempt > 255 ? 255 : (uint8_t)t[i].attempt);
		if (t[i].attempt < 1 || t[i].attempt > CH_MAX_ATTEMPTS)
			__atomic_fetch_add(&ch->bad_attempt, 1, __ATOMIC_SEQ_CST);
		uint32_t id1 = (uint32_t)(t[i].id & 0x7fffffffu) + 1u, expect = 0;
		if (!__atomic_compare_exchange_n(&x->id1, &expect, id1, 0, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST) &&
		    expect != id1)
			__atomic_fetch_add(&ch->id_changed, 1, __ATOMIC_SEQ_CST);
		if (ch_poison((uint32_t)v)) {
			fails[nf++] = t[i];
		} else {
			ad[na] = d;
			av[na] = v;
			acks[na++] = t[i];
		}
	}
	if (na) {
		for (int i = 0; i < na; i++)
			if (av[i] >= 0) {
				__atomic_store_n(&ch->v[av[i]].acking, 1, __ATOMIC_SEQ_CST);
				if (ad[i] < 8)
					__atomic_fetch_or(&ch->v[av[i]].ack_deliv, (uint8_t)(1u << ad[i]),
							  __ATOMIC_SEQ_CST);
			}
		rc = tq_ack(q, acks, (size_t)na);
		if (rc == 0) {
			for (int i = 0; i < na; i++)
				if (av[i] >= 0)
					__atomic_fetch_add(&ch->v[av[i]].acked, 1, __ATOMIC_SEQ_CST);
		} else if (rc == TQ_ELOST) {
			__atomic_fetch_add(&ch->lost_calls, 1, __ATOMIC_SEQ_CST);
		} else {
			ch_error("tq_ack", rc);
			return 4;
		}
	}
	if (nf) {
		rc = tq_fail(q, fails, (size_t)nf, 42, "poison");
		if (rc == TQ_ELOST) {
			__atomic_fetch_add(&ch->lost_calls, 1, __ATOMIC_SEQ_CST);
		} else if (rc != 0) {
			ch_error("tq_fail", rc);
			return 5;
		}
	}
	__atomic_fetch_add(&ch->done, (uint64_t)n, __ATOMIC_SEQ_CST);
	return 0;
}

/* Busy "work" on a batch for us microseconds (not a sleep: the consumer
 * stays runnable, holding its leases, like a real one). */
static void ch_work(unsigned us)
{
	uint64_t end = tq_now_ns() + (uint64_t)us * 1000u;
	while (tq_now_ns() < end)
		;
}

static int ch_consumer(void *arg)
{
	(void)arg;
	int cid = ch_slot;
	tq_queue *q = NULL;
	tq_task t[CH_TAKE];
	uint32_t seed = (uint32_t)getpid() * 2246822519u | 1u;
	ch_child_setup();
	int rc = tq_open(ch->name, &q);
	if (rc != 0) {
		ch_error("consumer tq_open", rc);
		return 2;
	}
	/* Odd consumers take ahead (2..64 a claim): what they hold and never
	 * hand over goes back when they are killed, counting no attempt. */
	if ((cid & 1) && (rc = tq_set_take_ahead(q, 2 + ch_rand(&seed) % 63)) != 0) {
		ch_error("consumer tq_set_take_ahead", rc);
		return 2;
	}
	while (!__atomic_load_n(&ch->stop, __ATOMIC_SEQ_CST)) {
		uint32_t r = ch_rand(&seed);
		int n = tq_take(q, t, 1 + r % CH_TAKE, 20000000ull);
		if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
			continue;
		if (n <= 0 || n > CH_TAKE) {
			ch_error("consumer tq_take", n);
			return 3;
		}
		if ((r >> 8) & 1)
			ch_work((r >> 9) % 64);
		rc = ch_process(q, t, n, cid);
		if (rc)
			return rc;
	}
	tq_close(q);
	return 0;
}

/* ----------------------------------------------------------------- parent */

struct ch_proc {
	pid_t pid;  /* 0: none */
	int is_prod;
	int slot;   /* producer index, or consumer id */
};

static struct ch_proc ch_procs[CH_PROD + CH_CONS];
static char ch_qname[TQT_NAME_LEN];
static tq_queue *ch_q; /* the parent's handle, closed by ch_fini if a check failed */

static void ch_fini(void)
{
	for (int i = 0; i < CH_PROD + CH_CONS; i++) {
		if (ch_procs[i].pid > 0) {
			kill(ch_procs[i].pid, SIGKILL);
			waitpid(ch_procs[i].pid, NULL, 0);
			ch_procs[i].pid = 0;
		}
	}
	if (ch_q)
		tq_close(ch_q);
	ch_q = NULL;
	if (ch_qname[0])
		tq_destroy(ch_qname);
	ch_qname[0] = '\0';
}

TestSuite(chaos, .timeout = 120, .fini = ch_fini);

static void ch_spawn(struct ch_proc *pr, int is_prod, int slot)
{
	pr->is_prod = is_prod;
	pr->slot = slot;
	ch_slot = slot;
	ch_parent = getpid();
	pr->pid = tqt_fork(is_prod ? ch_producer : ch_consumer, NULL);
}

/* Reaps children that ended by themselves: only a producer that finished
 * may do that. */
static void ch_reap(void)
{
	for (int i = 0; i < CH_PROD + CH_CONS; i++) {
		struct ch_proc *pr = &ch_procs[i];
		int st;
		if (pr->pid <= 0)
			continue;
		pid_t r = waitpid(pr->pid, &st, WNOHANG);
		if (r != pr->pid)
			continue;
		pr->pid = 0;
		cr_assert(pr->is_prod && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
				  ch->prod_finished[pr->slot],
			  "%s %d ended by itself (status %#x); first child error: %s",
			  pr->is_prod ? "producer" : "consumer", pr->slot, st, ch->msg);
	}
}

/* Waits (blocking) for a child just sent SIGKILL; returns its status as
 * tqt_wait does. A SIGKILLed process always ends; the test's timeout
 * covers the impossible rest. */
static int ch_wait(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static int ch_producers_running(void)
{
	int n = 0;
	for (int i = 0; i < CH_PROD + CH_CONS; i++)
		n += ch_procs[i].pid > 0 && ch_procs[i].is_prod;
	return n;
}

static int ch_queue_empty(tq_queue *q)
{
	tq_stats s;
	int rc = tq_stats_get(q, &s);
	cr_assert_eq(rc, 0, "tq_stats_get: %s", tq_strerror(rc));
	return s.ready == 0 && s.leased == 0 && s.delayed == 0;
}

/* "deliveries N (max attempt A, acked K) to consumers c1 c2* ..." (* = killed, ? = unrecorded) */
static void ch_describe(long v, char *buf, size_t cap)
{
	const struct ch_val *x = &ch->v[v];
	int n = snprintf(buf, cap,
			 "deliveries %u (max attempt %u, acked %u, acking %u, acks called on deliveries %#x) "
			 "to consumers",
			 x->deliv, x->max_attempt, x->acked, x->acking, x->ack_deliv);
	for (uint32_t i = 0; i < x->deliv && i < CH_WHO && n > 0 && (size_t)n < cap; i++) {
		uint16_t w = x->who[i];
		if (w == 0)
			n += snprintf(buf + n, cap - (size_t)n, " ?");
		else
			n += snprintf(buf + n, cap - (size_t)n, " %u%s", w - 1u,
				      ch->killed[w - 1] ? "*" : "");
	}
}

static int ch_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double ch_scale(void)
{
	const char *env = getenv("TQ_CHAOS_SCALE");
	double scale = env && *env ? strtod(env, NULL) : 1.0;
	return scale > 0.0 && scale <= 100.0 ? scale : 1.0;
}

Test(chaos, kill_storm)
{
	double scale = ch_scale();
	int kills_wanted = (int)(60.0 * scale);
	if (kills_wanted < 10)
		kills_wanted = 10;
	if (kills_wanted > CH_MAXCID / 2)
		kills_wanted = CH_MAXCID / 2;
	/* Values: about twice what the kills take (each kill lets ~3000 tasks
	 * through on 2 cores, sanitizers or not): the run ends after the
	 * kills, not when the values run out. */
	uint32_t per_prod = 4000u * (uint32_t)kills_wanted;
	uint32_t total = per_prod * CH_PROD, npoison = 0;
	for (uint32_t v = 0; v < total; v++)
		npoison += (uint32_t)ch_poison(v);

	ch = tqt_shared(sizeof(*ch) + (size_t)total * sizeof(struct ch_val));
	ch->total = total;
	ch->per_prod = per_prod;
	for (int p = 0; p < CH_PROD; p++)
		ch->cursor[p] = (uint32_t)p * per_prod;
	tqt_name(ch->name, "chaos");
	memcpy(ch_qname, ch->name, sizeof(ch_qname));
	tq_destroy(ch->name);

	tq_config cfg;
	tq_queue *q = NULL;
	tq_config_init(&cfg);
	cfg.dead_capacity = npoison + 256; /* every poison task fits: none dropped */
	cfg.capacity = 2048 + cfg.dead_capacity;
	cfg.max_payload = CH_PAYBUF;
	/* Payload units (design.md, 19) for every dead letter and 128 KiB
	 * more: producers find the area full now and then, and wait. */
	cfg.payload_bytes = (uint64_t)cfg.dead_capacity * ((CH_PAYBUF + 63) / 64 * 64) + (128u << 10);
	cfg.max_attempts = CH_MAX_ATTEMPTS;
	cfg.lease_ns = 60ull * 1000000000ull; /* no lease expires during the test */
	cfg.backoff_base_ns = 1000000ull;
	cfg.backoff_max_ns = 8000000ull;
	int rc = tq_create(ch->name, &cfg, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	ch_q = q;

	uint32_t seed = (uint32_t)tqt_now_ms() | 1u;
	int next_cid = 1;
	for (int p = 0; p < CH_PROD; p++)
		ch_spawn(&ch_procs[p], 1, p);
	for (int i = 0; i < CH_CONS; i++)
		ch_spawn(&ch_procs[CH_PROD + i], 0, next_cid++);

	/* the killer: one kill each time CH_STEP more tasks were processed */
	int kills = 0, prod_kills = 0, drained = 0;
	uint64_t t0 = tqt_now_ms();
	while (kills < kills_wanted && !drained) {
		uint64_t target = __atomic_load_n(&ch->done, __ATOMIC_SEQ_CST) + CH_STEP;
		uint64_t stall = tqt_now_ms() + 30000;
		while (__atomic_load_n(&ch->done, __ATOMIC_SEQ_CST) < target) {
			ch_reap();
			cr_assert_eq(ch->errors, 0, "a child failed: %s", ch->msg);
			if (ch_producers_running() == 0 && ch_queue_empty(q)) {
				drained = 1; /* the values ran out first */
				break;
			}
			cr_assert(tqt_now_ms() < stall,
				  "no progress for 30 s (done %llu, kills %d); first child error: %s",
				  (unsigned long long)ch->done, kills, ch->msg);
			tqt_sleep_ms(1);
		}
		if (drained)
			break;
		ch_reap();
		/* the victim: a producer one time in four while any runs */
		int idx;
		if (ch_producers_running() && ch_rand(&seed) % 4 == 0) {
			do
				idx = (int)(ch_rand(&seed) % CH_PROD);
			while (ch_procs[idx].pid <= 0);
		} else {
			idx = CH_PROD + (int)(ch_rand(&seed) % CH_CONS);
		}
		struct ch_proc *pr = &ch_procs[idx];
		if (!pr->is_prod) {
			ch->kill_seq[pr->slot] = __atomic_load_n(&ch->dseq, __ATOMIC_SEQ_CST);
			ch->killed[pr->slot] = 1;
		}
		kill(pr->pid, SIGKILL);
		int st = ch_wait(pr->pid);
		pid_t old = pr->pid;
		pr->pid = 0;
		if (st == 128 + SIGKILL) {
			kills++;
			prod_kills += pr->is_prod;
		} else {
			/* only a producer that just finished may beat the kill */
			cr_assert(pr->is_prod && st == 0 && ch->prod_finished[pr->slot],
				  "victim pid %ld ended with %d, not by SIGKILL; child error: %s",
				  (long)old, st, ch->msg);
		}
		if (!pr->is_prod) {
			cr_assert_lt(next_cid, CH_MAXCID);
			ch_spawn(pr, 0, next_cid++);
		} else if (!ch->prod_finished[pr->slot]) {
			ch_spawn(pr, 1, pr->slot);
		}
	}
	uint64_t t_kills = tqt_now_ms() - t0;

	/* no more kills: producers stop, consumers empty the queue */
	__atomic_store_n(&ch->produce_stop, 1, __ATOMIC_SEQ_CST);
	uint64_t deadline = tqt_now_ms() + 60000;
	while (!(ch_producers_running() == 0 && ch_queue_empty(q))) {
		ch_reap();
		cr_assert_eq(ch->errors, 0, "a child failed: %s", ch->msg);
		cr_assert(tqt_now_ms() < deadline,
			  "the queue did not empty within 60 s after the kills (done %llu)",
			  (unsigned long long)ch->done);
		tqt_sleep_ms(2);
	}
	__atomic_store_n(&ch->stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < CH_PROD + CH_CONS; i++) {
		struct ch_proc *pr = &ch_procs[i];
		if (pr->pid <= 0)
			continue;
		int st = tqt_wait(pr->pid, 20000);
		pr->pid = 0;
		cr_assert_eq(st, 0, "%s %d ended with %d at the stop; child error: %s",
			     pr->is_prod ? "producer" : "consumer", pr->slot, st, ch->msg);
	}
	cr_assert_eq(ch->errors, 0, "a child failed: %s", ch->msg);
	uint64_t t_all = tqt_now_ms() - t0;

	/* recover and drain whatever is left, as consumer 0 (never killed) */
	rc = tq_recover(q);
	cr_assert_geq(rc, 0, "tq_recover: %s", tq_strerror(rc));
	uint64_t drain_deadline = tqt_now_ms() + 20000;
	uint64_t left_over = 0;
	for (;;) {
		tq_task t[CH_TAKE];
		int n = tq_take(q, t, CH_TAKE, 0);
		if (n == TQ_EAGAIN) {
			if (ch_queue_empty(q))
				break;
			if (tqt_now_ms() >= drain_deadline) {
				tq_stats ds;
				tq_stats_get(q, &ds);
				cr_assert_fail("final drain stalled: ready %u leased %u delayed %u dead %u "
					       "free %u procs %u run_state %d",
					       ds.ready, ds.leased, ds.delayed, ds.dead, ds.free_slots,
					       ds.procs, ds.run_state);
			}
			n = tq_take(q, t, CH_TAKE, 20000000ull);
			if (n == TQ_EAGAIN || n == TQ_ETIMEDOUT)
				continue;
		}
		cr_assert(n > 0, "final drain: tq_take: %s", tq_strerror(n));
		left_over += (uint64_t)n;
		cr_assert_eq(ch_process(q, t, n, 0), 0, "final drain: %s", ch->msg);
	}

	/* the dead letters */
	tq_stats s;
	rc = tq_stats_get(q, &s);
	cr_assert_eq(rc, 0);
	size_t dmax = cfg.dead_capacity;
	/* mmap'ed (tqt_shared), not malloc'ed: a failed assertion leaks no heap */
	tq_dead_info *dead = tqt_shared(dmax * sizeof(*dead));
	char *ddata = tqt_shared(dmax * CH_PAYBUF);
	uint8_t *dead_of = tqt_shared(total);
	uint32_t *ids = tqt_shared(total * sizeof(uint32_t));
	int nd = tq_dead_list(q, dead, dmax, ddata, CH_PAYBUF);
	cr_assert_geq(nd, 0, "tq_dead_list: %s", tq_strerror(nd));

	/* Payload units (design.md, 19): once everything else is drained, the
	 * dead letters' payloads hold exactly their runs; no kill leaked one. */
	uint64_t want_units = 0, held_units = 0;
	for (int i = 0; i < nd; i++)
		if (dead[i].kind != TQ_KIND_INT)
			want_units += ((uint64_t)dead[i].len + 63) / 64;
	cr_assert_eq(tq_payload_area(q, &held_units, NULL, NULL), 0);
	held_units /= 64;
	cr_assert_eq(held_units, want_units, "payload units held %llu, the dead letters' payloads need %llu",
		     (unsigned long long)held_units, (unsigned long long)want_units);

	/* Every violation is counted; the first of each kind is kept. */
	char desc[200], first[8][400];
	uint64_t bad[8] = {0};
	const char *kinds[8] = {"garbage or double dead letters", "dead letters with attempts != max_attempts",
				"values delivered more than max_attempts times", "values acked twice or acked and dead",
				"duplicates not explained by a kill", "confirmed values lost",
				"ids not unique or not kept", "poison values not dead"};
#define CH_BAD(kind, ...)                                                               \
	do {                                                                            \
		if (bad[kind]++ == 0)                                                   \
			snprintf(first[kind], sizeof(first[kind]), __VA_ARGS__);        \
	} while (0)

	for (int i = 0; i < nd; i++) {
		long v = ch_decode(dead[i].kind, dead[i].value, ddata + (size_t)i * CH_PAYBUF,
				   dead[i].len, total);
		if (v < 0) {
			CH_BAD(0, "dead task %d (id %llu kind %u len %u) is garbage", i,
			       (unsigned long long)dead[i].id, dead[i].kind, dead[i].len);
			continue;
		}
		if (dead_of[v]++) {
			CH_BAD(0, "value %ld is dead twice", v);
			continue;
		}
		ch_describe(v, desc, sizeof(desc));
		if (dead[i].attempts != CH_MAX_ATTEMPTS)
			CH_BAD(1,
			       "dead value %ld (poison %d) has attempts %u, max_attempts %d; last "
			       "error %d '%.40s'; %s",
			       v, ch_poison((uint32_t)v), dead[i].attempts, CH_MAX_ATTEMPTS,
			       dead[i].last_err, dead[i].last_msg, desc);
		uint32_t id1 = (uint32_t)(dead[i].id & 0x7fffffffu) + 1u;
		if (ch->v[v].id1 != 0 && ch->v[v].id1 != id1)
			CH_BAD(6, "dead value %ld has id %llu, but was delivered with another id", v,
			       (unsigned long long)dead[i].id);
	}

	/* every value */
	uint64_t attempted = 0, confirmed = 0, done = 0, ndead = 0, dups = 0, ambiguous = 0;
	uint64_t dead_good = 0, deliveries = 0, entered = 0, ack_redeliv = 0;
	char ack_redeliv_first[300] = "none";
	size_t nids = 0;
	for (uint32_t v = 0; v < total; v++) {
		struct ch_val *x = &ch->v[v];
		int poison = ch_poison(v);
		attempted += x->attempted;
		confirmed += x->confirmed;
		deliveries += x->deliv;
		entered += x->deliv || dead_of[v];
		if (x->id1)
			ids[nids++] = x->id1;
		if (!x->attempted) {
			if (x->deliv || dead_of[v])
				CH_BAD(0, "value %u was never pushed, yet delivered", v);
			continue;
		}
		ch_describe(v, desc, sizeof(desc));
		if (x->deliv > CH_MAX_ATTEMPTS)
			CH_BAD(2, "value %u (poison %d) delivered %u times (max_attempts %d): %s", v,
			       poison, x->deliv, CH_MAX_ATTEMPTS, desc);
		if (x->acked > 1 || (x->acked && dead_of[v]) || (poison && x->acked))
			CH_BAD(3, "value %u (poison %d) acked %u times (tq_ack returned 0), dead %u: %s",
			       v, poison, x->acked, dead_of[v], desc);
		/* a good value is acked by the first live consumer that gets it:
		 * every delivery but the last went to a consumer then killed,
		 * and came back only after that consumer was sent SIGKILL */
		uint32_t live = 0, nwho = x->deliv < CH_WHO ? x->deliv : CH_WHO;
		for (uint32_t i = 0; i < nwho; i++)
			live += !ch_was_killed(x->who[i]);
		if (x->deliv > 1 && !poison) {
			dups++;
			if (live > 1)
				CH_BAD(4, "value %u delivered %u times, %u of them to consumers never killed: %s",
				       v, x->deliv, live, desc);
			for (uint32_t i = 0; i + 1 < nwho; i++) {
				uint16_t w = x->who[i];
				uint32_t next = x->seq[i + 1];
				if (w == 0 || next == 0)
					continue; /* unrecorded: its recorder was killed */
				if (next <= ch->kill_seq[w - 1])
					CH_BAD(4,
					       "value %u redelivered (delivery #%u, at %u) before consumer "
					       "%u, which held it, was killed (at %u): %s",
					       v, i + 2, next, w - 1u, ch->kill_seq[w - 1], desc);
			}
		}
		if (dead_of[v]) {
			ndead++;
			if (!poison) {
				dead_good++;
				if (live)
					CH_BAD(4, "good value %u is dead though a live consumer got it: %s",
					       v, desc);
			}
		}
		if (x->acked)
			done++;
		/* tq_ack was called with a delivery that was not the last: by a
		 * consumer killed in (or after) that call. Delivered again, so
		 * that call cannot have counted its ack. */
		if (x->deliv > 1 && (x->ack_deliv & ((1u << (x->deliv - 1 < 8 ? x->deliv - 1 : 8)) - 1u)) &&
		    ack_redeliv++ == 0)
			snprintf(ack_redeliv_first, sizeof ack_redeliv_first, "value %u: %s", v, desc);
		/* Accepted: confirmed by tq_push, or delivered (a push that
		 * went in though its producer was killed before it returned). */
		if ((x->confirmed || x->deliv) && !x->acked && !dead_of[v]) {
			/* acked by a consumer killed before it could record it? */
			int last_killed = x->deliv && x->deliv <= CH_WHO &&
					  ch_was_killed(x->who[x->deliv - 1]);
			if (!poison && x->acking && last_killed)
				ambiguous++;
			else
				CH_BAD(5,
				       "value %u was accepted (tq_push returned it, or it was delivered) "
				       "and is neither done nor dead (poison %d): %s",
				       v, poison, desc);
		}
		if (poison && (x->confirmed || x->deliv) && !dead_of[v])
			CH_BAD(7, "poison value %u is not in the dead letters: %s", v, desc);
	}
	qsort(ids, nids, sizeof(ids[0]), ch_cmp_u32);
	for (size_t i = 1; i < nids; i++)
		if (ids[i] == ids[i - 1])
			CH_BAD(6, "two values share id %u", ids[i] - 1);
#undef CH_BAD

	char line[700];
	snprintf(line, sizeof(line),
		 "chaos: seed %u: pushed (attempted) %llu confirmed %llu entered %llu done %llu dead "
		 "%llu (good %llu) duplicates %llu unrecorded-acks %llu deliveries %llu left-over "
		 "%llu; kills %d (%d producers) in %llu ms, all in %llu ms; totals: pushed %llu taken "
		 "%llu acked %llu failed %llu retried %llu dead %llu recovered %llu; recoveries %u",
		 seed, (unsigned long long)attempted, (unsigned long long)confirmed,
		 (unsigned long long)entered, (unsigned long long)done, (unsigned long long)ndead,
		 (unsigned long long)dead_good, (unsigned long long)dups,
		 (unsigned long long)ambiguous, (unsigned long long)deliveries,
		 (unsigned long long)left_over, kills, prod_kills, (unsigned long long)t_kills,
		 (unsigned long long)t_all, (unsigned long long)s.total.pushed,
		 (unsigned long long)s.total.taken, (unsigned long long)s.total.acked,
		 (unsigned long long)s.total.failed, (unsigned long long)s.total.retried,
		 (unsigned long long)s.total.dead, (unsigned long long)s.total.recovered,
		 s.recoveries);
	cr_log_info("%s", line);
	fprintf(stderr, "%s\n", line);
	for (int k = 0; k < 8; k++)
		if (bad[k])
			fprintf(stderr, "chaos: %llu %s; the first: %s\n", (unsigned long long)bad[k],
				kinds[k], first[k]);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(bad[k], 0, "%llu %s; the first: %s", (unsigned long long)bad[k],
			     kinds[k], first[k]);

	cr_assert_eq(ch->garbage, 0, "%llu garbage tasks delivered", (unsigned long long)ch->garbage);
	cr_assert_eq(ch->bad_attempt, 0, "%llu deliveries with an attempt outside 1..%d",
		     (unsigned long long)ch->bad_attempt, CH_MAX_ATTEMPTS);
	cr_assert_eq(ch->id_changed, 0, "%llu redeliveries carried another id",
		     (unsigned long long)ch->id_changed);
	cr_assert_eq(ch->lost_calls, 0, "%llu acks/fails returned TQ_ELOST (leases never expire here)",
		     (unsigned long long)ch->lost_calls);
	cr_assert_geq(kills, kills_wanted / 2,
		      "only %d kills: the values (%u) ran out first; raise TQ_CHAOS_SCALE", kills,
		      total);
	cr_assert_eq((uint32_t)nd, s.dead, "tq_dead_list listed %d, stats.dead %u", nd, s.dead);
	cr_assert(s.ready == 0 && s.leased == 0 && s.delayed == 0,
		  "queue not empty: ready %u leased %u delayed %u", s.ready, s.leased, s.delayed);
	cr_assert_eq(s.free_slots + s.dead, s.slots, "free %u + dead %u != slots %u",
		     s.free_slots, s.dead, s.slots);
	cr_assert_eq(s.procs, 1, "%u processes still attached", s.procs);
	cr_assert_leq(s.recoveries, (uint32_t)kills, "%u recoveries for %d kills", s.recoveries,
		      kills);
	/* Counters. Everything that went in was delivered or is dead, so they
	 * can be exact: total.pushed counts exactly the tasks that went in;
	 * every confirmed good value not seen acked was acked by a consumer
	 * killed before it recorded that (else it was lost), so total.acked
	 * must be done + those. */
	cr_assert(s.total.pushed >= confirmed && s.total.pushed <= attempted,
		  "total.pushed %llu, confirmed %llu, attempted %llu",
		  (unsigned long long)s.total.pushed, (unsigned long long)confirmed,
		  (unsigned long long)attempted);
	cr_assert_eq(s.total.pushed, entered,
		     "total.pushed %llu, but %llu distinct tasks went in (were delivered or are dead)",
		     (unsigned long long)s.total.pushed, (unsigned long long)entered);
	cr_assert_eq(s.total.acked, done + ambiguous,
		     "total.acked %llu, but %llu acks were seen and %llu more tasks were acked by "
		     "killed consumers or lost: %lld lost (or the counter is off); %llu tasks were "
		     "delivered again after an ack call, the first %s",
		     (unsigned long long)s.total.acked, (unsigned long long)done,
		     (unsigned long long)ambiguous,
		     (long long)(done + ambiguous) - (long long)s.total.acked,
		     (unsigned long long)ack_redeliv, ack_redeliv_first);
	cr_assert_eq(s.total.dead, ndead, "total.dead %llu, %llu in the dead letters",
		     (unsigned long long)s.total.dead, (unsigned long long)ndead);
	cr_assert_eq(s.total.taken, s.total.acked + s.total.failed + s.total.recovered,
		     "total.taken %llu != acked %llu + failed %llu + recovered %llu (every delivery "
		     "ends in exactly one of them here)",
		     (unsigned long long)s.total.taken, (unsigned long long)s.total.acked,
		     (unsigned long long)s.total.failed, (unsigned long long)s.total.recovered);
	cr_assert_eq(s.total.dead_overflow, s.dead_over, "died over the area %llu, over now %u",
		     (unsigned long long)s.total.dead_overflow, s.dead_over);
	cr_assert_eq(s.total.expired, 0);
	cr_assert_eq(s.total.lost, 0);

	/* usable */
	rc = tq_push_int(q, 7, 0);
	cr_assert_eq(rc, 0, "push after the storm: %s", tq_strerror(rc));
	tq_task t;
	rc = tq_take(q, &t, 1, 0);
	cr_assert_eq(rc, 1, "take after the storm: %s", tq_strerror(rc));
	cr_assert(t.kind == TQ_KIND_INT && t.value == 7 && t.attempt == 1);
	cr_assert_eq(tq_ack(q, &t, 1), 0);
	ch_q = NULL;
	cr_assert_eq(tq_close(q), 0);
	cr_assert_eq(tq_destroy(ch->name), 0);
	ch_qname[0] = '\0';
}
