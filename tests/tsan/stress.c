/* SPDX-License-Identifier: MIT */
/*
 * stress.c - many threads of one process on one queue, for ThreadSanitizer.
 *
 * The Criterion suite mostly runs producers and consumers as separate
 * processes, which ThreadSanitizer cannot see into (each process has its
 * own view; memory shared between processes is invisible to it). This
 * program puts the library's intra-process concurrency under it instead:
 *
 *   on ONE shared handle:  2 producers, 2 take/ack/fail consumers,
 *                          2 tq_worker_run workers, a monitor (tq_recover,
 *                          tq_stats_get, tq_procs, tq_histograms, tq_events,
 *                          pause/resume), a dead-letter collector
 *                          (tq_dead_list, tq_dead_kick, tq_dead_purge);
 *   each on ITS OWN handle: 1 producer, 1 consumer, 1 worker, 1 monitor.
 *
 * The queue is small (256 slots: pushes block on a full queue), leases are
 * 5 ms (the monitor forces an expiry sweep every millisecond or so, racing
 * with acks), max_attempts is 2 with 1 ms backoff, so tasks are retried,
 * expire, die, are kicked back and purged while everything else goes on.
 *
 * Every pushed value (ints and string/JSON payloads that encode it) is
 * accounted for: each delivery is checked (kind, id, payload bytes,
 * attempt number); at the end each value must have been acked or purged
 * from the dead letters exactly once, values that always fail must be dead,
 * others may be dead only through an expired lease, and the library's
 * totals must balance exactly: taken = acked + failed + expired, acked =
 * values not dead, dead = purged + kicked. A redelivery that is not
 * explained by a failure, a kick or an expired lease (an ack that then
 * returns TQ_ELOST) breaks that balance. Any mismatch exits 1.
 *
 * Usage: taskq-stress shared|mixed [tasks [timeout_s]]
 *        (default 60000 tasks, about a second even under ThreadSanitizer
 *        on 2 cores; it fails if not done within timeout_s, default 120)
 *   shared  every thread uses the one shared handle (the own-handle roles
 *           above run on it too). ThreadSanitizer sees every access to the
 *           queue's memory at one address, so its verdict is exact.
 *   mixed   as listed above. Each handle maps the segment at its own
 *           address and ThreadSanitizer keeps happens-before per address,
 *           so a slot handed over through another handle's mapping looks
 *           unsynchronized to it: in this mode the segment's mappings are
 *           annotated as benign (see aliased_mappings_are_benign), and TSan
 *           checks everything else: handles, heap, globals.
 * Exit status: 0, 1 for a wrong result, 2 for bad usage; under TSan, 66 if
 * it reported anything (TSAN_OPTIONS=exitcode=66, its default).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"

/* ThreadSanitizer's annotations (its runtime defines them), for the one
 * place where this program reads memory it may no longer own: a payload
 * whose lease can be lost (expired and the slot reused) just before or
 * while it is read. That read is verified instead: the copy counts only if
 * tq_touch then finds the lease still held, and then it must match what
 * was pushed. Every other access stays under TSan. */
#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#ifdef STRESS_TSAN
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define IGNORE_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define IGNORE_READS_BEGIN() ((void)0)
#define IGNORE_READS_END() ((void)0)
#endif

#define CAPACITY 256u
#define MAX_PAYLOAD 96u
#define MAX_ATTEMPTS 2u
#define LEASE_NS 5000000ull   /* 5 ms */
#define SLOW_NS 8000000ull    /* a slow task outlives its lease */
#define ERR_ALWAYS 3
#define ERR_ONCE 7

/* ------------------------------------------------------------ reporting */

static atomic_int errors;
static char qname[64];

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
	va_list ap;
	if (atomic_fetch_add(&errors, 1) >= 30)
		return; /* counted, not printed */
	va_start(ap, fmt);
	fputs("taskq-stress: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------- the tasks */

static uint32_t ntasks;

/* Per value, all updated atomically by whichever thread sees the event. */
static _Atomic uint64_t *task_id;      /* id given by tq_push (first seen wins) */
static atomic_uint *deliveries;        /* times taken */
static atomic_uint *attempt_bits;      /* attempt numbers seen (bit a) */
static atomic_uint *acked_ok;          /* acks that returned 0 for it */
static atomic_uint *acked_unsure;      /* in a batch ack that returned TQ_ELOST, or acked by a worker */
static atomic_uint *fails_ok;          /* tq_fail returned 0 (by a consumer) */
static atomic_uint *purged;            /* purged from the dead letters by the collector */
static atomic_uint *kicked;            /* kicked back to ready by the collector */
static atomic_uint *dead_by_expiry;    /* purged with last_err TQ_ELOST */

/* Totals of events whose per-task outcome is known only in aggregate. */
static atomic_ullong lost_single;      /* single-task acks/fails that returned TQ_ELOST */
static atomic_ullong worker_failed, worker_acked, worker_lost, worker_handled, worker_calls;
static atomic_ullong worker_skipped; /* taken by a worker, lease lost before the handler's turn */
static atomic_ullong kicks_ok;

static atomic_int stop_all;            /* consumers, monitors, collector: finish */
static atomic_int producers_left;

static uint16_t kind_of(uint32_t v)
{
	static const uint16_t kinds[3] = {TQ_KIND_INT, TQ_KIND_STRING, TQ_KIND_JSON};
	return kinds[v % 3];
}

/* The payload for value v: it starts with the value, the rest is derived. */
static uint32_t make_payload(uint32_t v, char *buf)
{
	uint32_t len;
	if (kind_of(v) == TQ_KIND_JSON) {
		len = (uint32_t)snprintf(buf, MAX_PAYLOAD + 1, "{\"v\":%u,\"pad\":\"", v);
		uint32_t pad = v % 40;
		for (uint32_t i = 0; i < pad; i++)
			buf[len++] = (char)('a' + (v + i) % 26);
		buf[len++] = '"';
		buf[len++] = '}';
	} else {
		len = (uint32_t)snprintf(buf, MAX_PAYLOAD + 1, "%u:", v);
		uint32_t pad = v % 64;
		for (uint32_t i = 0; i < pad; i++)
			buf[len++] = (char)('0' + (v * 7 + i) % 64);
	}
	return len; /* at most 74 bytes */
}

static int64_t value_of_payload(const void *data, uint32_t len, uint16_t kind)
{
	char tmp[32];
	size_t n = len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1;
	memcpy(tmp, data, n);
	tmp[n] = '\0';
	const char *p = kind == TQ_KIND_JSON ? tmp + 5 : tmp;
	if (kind == TQ_KIND_JSON && strncmp(tmp, "{\"v\":", 5) != 0)
		return -1;
	char *end;
	unsigned long v = strtoul(p, &end, 10);
	if (end == p || v >= ntasks)
		return -1;
	return (int64_t)v;
}

static atomic_ullong stale_deliveries; /* payload gone with a lost lease: value unknown */

/* Checks one delivery; returns its value, -1 (reported) if it is wrong, or
 * -2 if its lease was already lost when its payload was read: a payload
 * stays in shared memory only while the lease is held, and after an expiry
 * the slot may hold another task, so that copy says nothing. */
static int64_t check_delivery(tq_queue *q, const tq_task *t, const char *who)
{
	int64_t v;
	if (t->kind == TQ_KIND_INT) {
		v = t->value < ntasks ? (int64_t)t->value : -1;
		if (v < 0 || kind_of((uint32_t)v) != TQ_KIND_INT) {
			fail_msg("%s: int task id %" PRIu64 " carries %" PRIu64 ", not a value pushed as an int",
				 who, t->id, t->value);
			return -1;
		}
	} else {
		char got[MAX_PAYLOAD], want[MAX_PAYLOAD + 1];
		uint32_t gl = t->len < MAX_PAYLOAD ? t->len : MAX_PAYLOAD, wl = 0;
		IGNORE_READS_BEGIN();
		memcpy(got, t->data, gl);
		IGNORE_READS_END();
		/* Still our lease after the copy? Then no one can have reused the
		 * slot during it (a lease's state word never comes back once gone). */
		int rc = tq_touch(q, t, 1, 0);
		if (rc == TQ_ELOST) {
			atomic_fetch_add(&stale_deliveries, 1);
			return -2;
		}
		if (rc != 0)
			fail_msg("%s: tq_touch: %s", who, tq_strerror(rc));
		v = value_of_payload(got, gl, t->kind);
		if (v >= 0)
			wl = make_payload((uint32_t)v, want);
		if (v < 0 || kind_of((uint32_t)v) != t->kind || t->len != wl || memcmp(got, want, wl) != 0) {
			fail_msg("%s: task id %" PRIu64 " (kind %u, %u bytes) does not carry what was pushed "
				 "(value %" PRId64 ", kind %u, %u bytes)", who, t->id, t->kind, t->len, v,
				 v >= 0 ? kind_of((uint32_t)v) : 0, wl);
			return -1;
		}
	}
	uint32_t u = (uint32_t)v;
	if (t->attempt < 1 || t->attempt > MAX_ATTEMPTS)
		fail_msg("%s: value %u delivered with attempt %u (max_attempts %u)", who, u, t->attempt,
			 MAX_ATTEMPTS);
	uint64_t none = 0;
	if (!atomic_compare_exchange_strong(&task_id[u], &none, t->id) && none != t->id)
		fail_msg("%s: value %u delivered with id %" PRIu64 " (slot %u, attempt %u), pushed as id %" PRIu64,
			 who, u, t->id, (uint32_t)t->priv[0], t->attempt, none);
	atomic_fetch_add(&deliveries[u], 1);
	unsigned bit = 1u << (t->attempt & 15);
	unsigned before = atomic_fetch_or(&attempt_bits[u], bit);
	if ((before & bit) && atomic_load(&kicked[u]) == 0)
		fail_msg("%s: value %u (id %" PRIu64 ") delivered twice as attempt %u", who, u, t->id, t->attempt);
	return v;
}

enum action { ACK, FAIL, SLOW_ACK };

/* What a consumer does with a delivery: fixed by the value and attempt. */
static enum action policy(uint32_t v, unsigned attempt, bool may_be_slow, int *err)
{
	if (v % 10 == 3) {
		*err = ERR_ALWAYS;
		return FAIL;
	}
	if (v % 10 == 7 && attempt == 1) {
		*err = ERR_ONCE;
		return FAIL;
	}
	if (may_be_slow && v % 64 == 5 && attempt == 1)
		return SLOW_ACK;
	return ACK;
}

/* ------------------------------------------------------------- producers */

struct producer {
	tq_queue *q;
	bool own;      /* q is this thread's own handle: it closes it when done */
	uint32_t from, to;
	uint64_t seed;
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	tq_queue *q = p->q;
	tq_task batch[48];
	static _Thread_local char payloads[48][MAX_PAYLOAD + 1];
	int rc;

	for (uint32_t v = p->from; v < p->to && !atomic_load(&errors);) {
		uint32_t n = 1 + (uint32_t)(xorshift(&p->seed) % 48);
		if (n > p->to - v)
			n = p->to - v;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t u = v + i;
			memset(&batch[i], 0, sizeof(batch[i]));
			batch[i].kind = kind_of(u);
			if (batch[i].kind == TQ_KIND_INT) {
				batch[i].value = u;
			} else {
				batch[i].len = make_payload(u, payloads[i]);
				batch[i].data = payloads[i];
			}
		}
		uint32_t done = 0;
		while (done < n) {
			rc = tq_push(q, batch + done, n - done, 200000000ull);
			if (rc == TQ_ETIMEDOUT && !atomic_load(&stop_all))
				continue; /* full for 200 ms: consumers are slow under TSan */
			if (rc == TQ_ETIMEDOUT)
				goto out; /* the run was given up */
			if (rc < 0) {
				fail_msg("producer: tq_push: %s", tq_strerror(rc));
				goto out;
			}
			for (int i = 0; i < rc; i++) {
				uint64_t none = 0, id = batch[done + (uint32_t)i].id;
				uint32_t u = v + done + (uint32_t)i;
				if (!atomic_compare_exchange_strong(&task_id[u], &none, id) && none != id)
					fail_msg("producer: value %u pushed as id %" PRIu64 ", delivered as id %" PRIu64, u,
						 id, none);
			}
			done += (uint32_t)rc;
		}
		v += n;
	}
out:
	if (p->own)
		tq_close(q);
	atomic_fetch_sub(&producers_left, 1);
	return NULL;
}

/* ------------------------------------------------------------- consumers */

struct consumer {
	tq_queue *q;
	bool own;
	int batch_acks; /* 0: ack one task at a time; 1: whole batches */
	uint64_t seed;
	const char *name;
};

static void ack_one(tq_queue *q, const tq_task *t, uint32_t v, const char *who)
{
	int rc = tq_ack(q, t, 1);
	if (rc == 0)
		atomic_fetch_add(&acked_ok[v], 1);
	else if (rc == TQ_ELOST)
		atomic_fetch_add(&lost_single, 1);
	else
		fail_msg("%s: tq_ack: %s", who, tq_strerror(rc));
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	tq_queue *q = c->q;
	tq_task t[16], ok[16];
	uint32_t okv[16];
	int rc;

	while (!atomic_load(&stop_all)) {
		size_t want = 1 + xorshift(&c->seed) % 16;
		int n = tq_take(q, t, want, 20000000ull);
		if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
			continue;
		if (n < 0) {
			fail_msg("%s: tq_take: %s", c->name, tq_strerror(n));
			break;
		}
		/* Check every delivery first, while the leases are fresh, then act:
		 * failures and acks, the slow ones (which outlive their lease) last. */
		int64_t vals[16];
		int nok = 0, nslow = 0, slow[16];
		for (int i = 0; i < n; i++)
			vals[i] = check_delivery(q, &t[i], c->name);
		for (int i = 0; i < n; i++) {
			int64_t v = vals[i];
			if (v < 0)
				continue;
			int err = 0;
			switch (policy((uint32_t)v, t[i].attempt, true, &err)) {
			case FAIL:
				rc = tq_fail(q, &t[i], 1, err, err == ERR_ALWAYS ? "always fails" : "fails once");
				if (rc == 0)
					atomic_fetch_add(&fails_ok[v], 1);
				else if (rc == TQ_ELOST)
					atomic_fetch_add(&lost_single, 1);
				else
					fail_msg("%s: tq_fail: %s", c->name, tq_strerror(rc));
				break;
			case SLOW_ACK:
				slow[nslow++] = i;
				break;
			case ACK:
				ok[nok] = t[i];
				okv[nok++] = (uint32_t)v;
				break;
			}
			/* Keep the rest of the batch leased, now and then. */
			if (i + 1 < n && xorshift(&c->seed) % 4 == 0) {
				rc = tq_touch(q, &t[i + 1], (size_t)(n - i - 1), 0);
				if (rc != 0 && rc != TQ_ELOST)
					fail_msg("%s: tq_touch: %s", c->name, tq_strerror(rc));
			}
		}
		if (nok == 1 || (nok && !c->batch_acks)) {
			for (int i = 0; i < nok; i++)
				ack_one(q, &ok[i], okv[i], c->name);
		} else if (nok) {
			rc = tq_ack(q, ok, (size_t)nok);
			for (int i = 0; i < nok; i++) {
				if (rc == 0)
					atomic_fetch_add(&acked_ok[okv[i]], 1);
				else if (rc == TQ_ELOST)
					atomic_fetch_add(&acked_unsure[okv[i]], 1);
			}
			if (rc != 0 && rc != TQ_ELOST)
				fail_msg("%s: tq_ack of %d: %s", c->name, nok, tq_strerror(rc));
		}
		for (int k = 0; k < nslow; k++) {
			sleep_ns(SLOW_NS);
			ack_one(q, &t[slow[k]], (uint32_t)vals[slow[k]], c->name);
		}
	}
	if (c->own)
		tq_close(q);
	return NULL;
}

/* --------------------------------------------------------------- workers */

/* Set by SIGUSR1 in the worker's own thread: the documented way to stop
 * tq_worker_run ("from a signal handler"); see the note in main(). */
static _Thread_local volatile int worker_stop;

static void on_sigusr1(int sig)
{
	(void)sig;
	worker_stop = 1;
}

struct worker {
	tq_queue *q;
	bool own;
	pthread_t th;
	atomic_int finished;
	const char *name;
	tq_worker_result res;
	uint64_t calls;
};

static int handler(const tq_task *t, void *arg, char *msg, size_t msg_size)
{
	struct worker *w = arg;
	w->calls++;
	int64_t v = check_delivery(w->q, t, w->name);
	if (v < 0)
		return 0; /* reported, or its lease is gone: the ack will say so */
	int err = 0;
	/* Never slow here: a batch's later tasks would outlive their leases
	 * before the worker reads their payloads. */
	switch (policy((uint32_t)v, t->attempt, false, &err)) {
	case FAIL:
		snprintf(msg, msg_size, "worker: %s", err == ERR_ALWAYS ? "always fails" : "fails once");
		return err;
	case SLOW_ACK:
		sleep_ns(SLOW_NS);
		/* fall through */
	case ACK:
		break;
	}
	atomic_fetch_add(&acked_unsure[v], 1); /* acked with its batch: outcome in res */
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	tq_queue *q = w->q;
	tq_worker_config cfg;
	int rc;

	tq_worker_config_init(&cfg);
	cfg.batch = 8;
	cfg.stop = &worker_stop;
	rc = tq_worker_run(q, handler, w, &cfg, &w->res);
	if (rc != 0)
		fail_msg("%s: tq_worker_run: %s", w->name, tq_strerror(rc));
	else if (w->res.end != TQ_END_FLAG)
		fail_msg("%s: tq_worker_run ended with %d, expected TQ_END_FLAG", w->name, w->res.end);
	if (w->res.handled != w->calls)
		fail_msg("%s: handled %" PRIu64 " but the handler ran %" PRIu64 " times", w->name,
			 w->res.handled, w->calls);
	atomic_fetch_add(&worker_skipped, w->res.skipped);
	if (w->res.acked + w->res.failed + w->res.lost != w->res.handled)
		fail_msg("%s: acked %" PRIu64 " + failed %" PRIu64 " + lost %" PRIu64 " != handled %" PRIu64,
			 w->name, w->res.acked, w->res.failed, w->res.lost, w->res.handled);
	atomic_fetch_add(&worker_acked, w->res.acked);
	atomic_fetch_add(&worker_failed, w->res.failed);
	atomic_fetch_add(&worker_lost, w->res.lost);
	atomic_fetch_add(&worker_handled, w->res.handled);
	atomic_fetch_add(&worker_calls, w->calls);
	if (w->own)
		tq_close(q);
	atomic_store(&w->finished, 1);
	return NULL;
}

/* ----------------------------------------------------- monitors, collector */

struct monitor {
	tq_queue *q;
	bool own;
	int pauses;   /* toggle PAUSED now and then */
	const char *name;
};

static void *monitor_main(void *arg)
{
	struct monitor *m = arg;
	tq_queue *q = m->q;
	uint64_t last_seq = 0, round = 0;
	tq_event_info ev[32];
	tq_proc_info procs[16];
	tq_histogram hw, hp;
	tq_stats s;
	int rc;

	while (!atomic_load(&stop_all)) {
		round++;
		if ((rc = tq_recover(q)) != 0)
			fail_msg("%s: tq_recover returned %d (no process died)", m->name, rc);
		if ((rc = tq_stats_get(q, &s)) != 0) {
			fail_msg("%s: tq_stats_get: %s", m->name, tq_strerror(rc));
		} else {
			if (s.capacity != CAPACITY)
				fail_msg("%s: stats capacity %u", m->name, s.capacity);
			if (s.slots < CAPACITY ||
			    (uint64_t)s.ready + s.leased + s.delayed + s.dead + s.free_slots > s.slots)
				fail_msg("%s: stats states add up to more than the slots (%u)", m->name, s.slots);
			if (s.total.recovered || s.recoveries)
				fail_msg("%s: recovered %" PRIu64 " leases of %u dead processes; none died",
					 m->name, s.total.recovered, s.recoveries);
		}
		if ((rc = tq_procs(q, procs, 16)) < 1)
			fail_msg("%s: tq_procs returned %d", m->name, rc);
		if ((rc = tq_histograms(q, &hw, &hp)) != 0)
			fail_msg("%s: tq_histograms: %s", m->name, tq_strerror(rc));
		rc = tq_events(q, last_seq, ev, 32);
		if (rc < 0)
			fail_msg("%s: tq_events: %s", m->name, tq_strerror(rc));
		for (int i = 0; i < rc; i++) {
			if (ev[i].seq <= last_seq)
				fail_msg("%s: event seq %" PRIu64 " after %" PRIu64, m->name, ev[i].seq, last_seq);
			last_seq = ev[i].seq;
		}
		tq_counters self;
		if (tq_counters_self(q, &self) != 0)
			fail_msg("%s: tq_counters_self failed", m->name);
		if (m->pauses && round % 150 == 0) {
			if (tq_set_run_state(q, TQ_PAUSED) != 0)
				fail_msg("%s: pause failed", m->name);
			sleep_ns(2000000);
			if (tq_set_run_state(q, TQ_RUNNING) != 0)
				fail_msg("%s: resume failed", m->name);
		}
		sleep_ns(700000 + (round % 7) * 100000);
	}
	if (m->own)
		tq_close(q);
	return NULL;
}

static void *collector_main(void *arg)
{
	tq_queue *q = arg;
	tq_dead_info info[32];
	static char data[32][128];

	while (!atomic_load(&stop_all)) {
		int n = tq_dead_list(q, info, 32, data, sizeof(data[0]));
		if (n < 0) {
			fail_msg("collector: tq_dead_list: %s", tq_strerror(n));
			break;
		}
		for (int i = 0; i < n; i++) {
			const tq_dead_info *d = &info[i];
			int64_t v = d->kind == TQ_KIND_INT ? (d->value < ntasks ? (int64_t)d->value : -1)
							   : value_of_payload(data[i], d->len, d->kind);
			if (v < 0) {
				fail_msg("collector: dead task id %" PRIu64 " carries no valid value", d->id);
				continue;
			}
			uint32_t u = (uint32_t)v;
			if (atomic_load(&task_id[u]) != d->id)
				fail_msg("collector: dead value %u has id %" PRIu64 ", pushed as %" PRIu64, u, d->id,
					 (uint64_t)atomic_load(&task_id[u]));
			if (d->attempts < 1 || d->attempts > MAX_ATTEMPTS)
				fail_msg("collector: dead value %u after %u attempts", u, d->attempts);
			bool expired = d->last_err == TQ_ELOST;
			if (!expired && d->last_err != ERR_ALWAYS)
				fail_msg("collector: value %u dead with error %d (%s)", u, d->last_err, d->last_msg);
			if (!expired && u % 10 != 3)
				fail_msg("collector: value %u, which fails at most once, dead by failure", u);
			if (u % 20 == 13 && atomic_load(&kicked[u]) == 0) {
				atomic_fetch_add(&kicked[u], 1);
				int rc = tq_dead_kick(q, d->id);
				if (rc == 1) {
					atomic_fetch_add(&kicks_ok, 1);
				} else if (rc == TQ_EAGAIN) {
					/* No room in the capacity now (the producers keep
					 * it full): it stays dead; kicked again later. */
					atomic_fetch_sub(&kicked[u], 1);
				} else {
					fail_msg("collector: tq_dead_kick(%" PRIu64 ") returned %d", d->id, rc);
				}
				continue;
			}
			int rc = tq_dead_purge(q, d->id);
			if (rc != 1) {
				fail_msg("collector: tq_dead_purge(%" PRIu64 ") returned %d", d->id, rc);
				continue;
			}
			atomic_fetch_add(&purged[u], 1);
			if (expired)
				atomic_fetch_add(&dead_by_expiry[u], 1);
		}
		sleep_ns(n ? 200000 : 1000000);
	}
	return NULL;
}

/* ------------------------------------------------------------------ main */

static void *opener_main(void *arg)
{
	tq_queue **out = arg;
	int rc = tq_open(qname, out);
	if (rc != 0) {
		fail_msg("tq_open(%s): %s", qname, tq_strerror(rc));
		*out = NULL;
	}
	return NULL;
}

#ifdef STRESS_TSAN
void AnnotateBenignRaceSized(const char *file, int line, const volatile void *addr, size_t size,
			     const char *desc);
#endif

/*
 * Mixed mode: every handle maps the queue's segment at its own address.
 * ThreadSanitizer keeps happens-before per address, so when a slot passes
 * from a thread on one handle through a thread on another handle and back,
 * the release and acquire it sees are on different addresses and it
 * reports races that are not there (the shared-mode run shows the library
 * itself race-free at a single address). So in this mode, TSan is told to
 * ignore races on the segment's mappings (found in /proc/self/maps), and
 * still checks everything else: each handle's private state, the heap,
 * globals. No suppression file is involved, and shared mode is unaffected.
 */
static void aliased_mappings_are_benign(void)
{
#ifdef STRESS_TSAN
	char want[128], line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	snprintf(want, sizeof(want), "/dev/shm/taskq.%s", qname);
	if (!f) {
		fail_msg("cannot read /proc/self/maps");
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t len = strlen(line), wl = strlen(want);
		if (len < wl || strcmp(line + len - wl, want) != 0 || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		AnnotateBenignRaceSized(__FILE__, __LINE__, (const void *)lo, hi - lo,
					"queue segment mapped at several addresses (mixed mode)");
		n++;
	}
	fclose(f);
	if (n != 5)
		fail_msg("found %d mappings of %s, expected 5 (one per handle)", n, want);
#endif
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p) {
		fprintf(stderr, "taskq-stress: out of memory\n");
		exit(2);
	}
	return p;
}

static bool drained(tq_queue *q, tq_stats *s)
{
	return tq_stats_get(q, s) == 0 && s->total.pushed == ntasks && s->free_slots == s->slots;
}

int main(int argc, char **argv)
{
	unsigned long timeout_s = 120;
	tq_queue *q;
	tq_config cfg;
	int rc;

	ntasks = 60000;
	bool mixed = argc > 1 && strcmp(argv[1], "mixed") == 0;
	if (argc < 2 || (!mixed && strcmp(argv[1], "shared") != 0))
		ntasks = 0;
	if (argc > 2)
		ntasks = (uint32_t)strtoul(argv[2], NULL, 10);
	if (argc > 3)
		timeout_s = strtoul(argv[3], NULL, 10);
	if (ntasks < 100 || ntasks > 10000000 || timeout_s == 0) {
		fprintf(stderr, "usage: taskq-stress shared|mixed [tasks (100..10000000) [timeout_s]]\n");
		return 2;
	}
	task_id = xcalloc(ntasks, sizeof(*task_id));
	deliveries = xcalloc(ntasks, sizeof(*deliveries));
	attempt_bits = xcalloc(ntasks, sizeof(*attempt_bits));
	acked_ok = xcalloc(ntasks, sizeof(*acked_ok));
	acked_unsure = xcalloc(ntasks, sizeof(*acked_unsure));
	fails_ok = xcalloc(ntasks, sizeof(*fails_ok));
	purged = xcalloc(ntasks, sizeof(*purged));
	kicked = xcalloc(ntasks, sizeof(*kicked));
	dead_by_expiry = xcalloc(ntasks, sizeof(*dead_by_expiry));

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	snprintf(qname, sizeof(qname), "tq-stress-%ld", (long)getpid());
	tq_config_init(&cfg);
	cfg.capacity = CAPACITY;
	cfg.max_payload = MAX_PAYLOAD;
	cfg.max_attempts = MAX_ATTEMPTS;
	cfg.dead_capacity = CAPACITY; /* never drop: every dead task is accounted for */
	cfg.lease_ns = LEASE_NS;
	cfg.backoff_base_ns = 1000000ull;
	cfg.backoff_max_ns = 2000000ull;
	if ((rc = tq_create(qname, &cfg, &q)) != 0) {
		fprintf(stderr, "taskq-stress: tq_create(%s): %s\n", qname, tq_strerror(rc));
		return 1;
	}
	uint64_t t0 = tq_now_ns();

	/* Mixed mode: four handles of this process besides the shared one,
	 * opened at once by four threads, then each used by one thread. */
	tq_queue *own[4] = {q, q, q, q};
	if (mixed) {
		pthread_t opener[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&opener[i], NULL, opener_main, &own[i]);
		for (int i = 0; i < 4; i++)
			pthread_join(opener[i], NULL);
		for (int i = 0; i < 4; i++)
			if (!own[i]) {
				fprintf(stderr, "taskq-stress: could not open the queue's other handles\n");
				return 1;
			}
		aliased_mappings_are_benign();
	}

	struct producer prod[3];
	pthread_t prod_th[3];
	atomic_store(&producers_left, 3);
	for (int i = 0; i < 3; i++)
		prod[i] = (struct producer){i < 2 ? q : own[0], i == 2 && mixed,
					    (uint32_t)((uint64_t)ntasks * (uint32_t)i / 3),
					    (uint32_t)((uint64_t)ntasks * (uint32_t)(i + 1) / 3),
					    0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
	/* Consumers: single acks, batch acks, batch acks. */
	struct consumer cons[3] = {
		{q, false, 0, 11, "consumer-shared-0"},
		{q, false, 1, 22, "consumer-shared-1"},
		{own[1], mixed, 1, 33, mixed ? "consumer-own" : "consumer-shared-2"},
	};
	pthread_t cons_th[3];
	struct worker work[3] = {
		{.q = q, .name = "worker-shared-0"},
		{.q = q, .name = "worker-shared-1"},
		{.q = own[2], .own = mixed, .name = mixed ? "worker-own" : "worker-shared-2"},
	};
	struct monitor mon[2] = {
		{q, false, 1, "monitor-shared"},
		{own[3], mixed, 0, mixed ? "monitor-own" : "monitor-shared-2"},
	};
	pthread_t mon_th[2], coll_th;

	for (int i = 0; i < 3; i++) {
		pthread_create(&cons_th[i], NULL, consumer_main, &cons[i]);
		pthread_create(&work[i].th, NULL, worker_main, &work[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&mon_th[i], NULL, monitor_main, &mon[i]);
	pthread_create(&coll_th, NULL, collector_main, q);
	for (int i = 0; i < 3; i++)
		pthread_create(&prod_th[i], NULL, producer_main, &prod[i]);

	/* Wait for every task to be pushed and then resolved: all slots free. */
	uint64_t deadline = t0 + (uint64_t)timeout_s * 1000000000ull;
	tq_stats s;
	int calm = 0;
	while (calm < 3) {
		if (tq_now_ns() > deadline) {
			tq_stats_get(q, &s);
			fail_msg("not drained after %lu s: pushed %" PRIu64 " of %u, ready %u leased %u delayed %u "
				 "dead %u free %u",
				 timeout_s, s.total.pushed, ntasks, s.ready, s.leased, s.delayed, s.dead, s.free_slots);
			break;
		}
		if (atomic_load(&errors))
			break; /* producers stop at the first error: this would never drain */
		sleep_ns(5000000);
		calm = atomic_load(&producers_left) == 0 && drained(q, &s) ? calm + 1 : 0;
	}

	/* Stop everyone. Workers stop on their flag, set by SIGUSR1 in their
	 * own thread: tq_worker_config.stop is a plain `volatile int` that
	 * tq_worker_run reads without atomics, so writing it from another
	 * thread would itself be a data race. */
	atomic_store(&stop_all, 1);
	for (int i = 0; i < 3; i++) {
		uint64_t until = tq_now_ns() + 20000000000ull;
		while (!atomic_load(&work[i].finished) && tq_now_ns() < until) {
			pthread_kill(work[i].th, SIGUSR1);
			sleep_ns(10000000);
		}
		if (!atomic_load(&work[i].finished)) {
			fail_msg("%s did not stop within 20 s of its stop flag", work[i].name);
			fflush(stderr);
			_exit(1);
		}
		pthread_join(work[i].th, NULL);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(prod_th[i], NULL);
		pthread_join(cons_th[i], NULL);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(mon_th[i], NULL);
	pthread_join(coll_th, NULL);
	double secs = (double)(tq_now_ns() - t0) / 1e9;

	/* --------------------------------------------------------- accounting */
	if (tq_stats_get(q, &s) != 0) {
		fail_msg("final tq_stats_get failed");
		memset(&s, 0, sizeof(s));
	}
	uint64_t sum_deliveries = atomic_load(&stale_deliveries) + atomic_load(&worker_skipped), sum_ack_ok = 0, sum_unsure_resolved = 0, sum_purged = 0;
	uint64_t sum_fails_ok = 0, sum_expiry_deaths = 0, redelivered = 0;
	for (uint32_t v = 0; v < ntasks; v++) {
		unsigned d = atomic_load(&deliveries[v]), a = atomic_load(&acked_ok[v]);
		unsigned u = atomic_load(&acked_unsure[v]), p = atomic_load(&purged[v]);
		sum_deliveries += d;
		sum_ack_ok += a;
		sum_purged += p;
		sum_fails_ok += atomic_load(&fails_ok[v]);
		sum_expiry_deaths += atomic_load(&dead_by_expiry[v]);
		redelivered += d > 1;
		if (d == 0) {
			/* Possible only if each of its deliveries was read after its
			 * lease expired, or skipped by a worker because it expired
			 * before the handler's turn (neither names the value), and
			 * the last expiry buried it. */
			if (p != 1 || !atomic_load(&dead_by_expiry[v]) ||
			    !(atomic_load(&stale_deliveries) + atomic_load(&worker_skipped)))
				fail_msg("value %u was never delivered (acked %u, unsure %u, purged %u)", v, a, u, p);
			continue;
		}
		if (a + p > 1)
			fail_msg("value %u: acked %u times and purged dead %u times (at most once in all)", v, a, p);
		if (a + p == 0) {
			if (u == 0)
				fail_msg("value %u: delivered %u times, never acked, never dead", v, d);
			else
				sum_unsure_resolved++;
		}
		if (v % 10 == 3 && p != 1)
			fail_msg("value %u always fails but was purged dead %u times (acked %u, unsure %u)", v, p, a, u);
	}
	uint64_t sum_failed = sum_fails_ok + atomic_load(&worker_failed);
	uint64_t kicks = atomic_load(&kicks_ok);
	tq_counters *tot = &s.total;

	if (tot->pushed != ntasks)
		fail_msg("library counted %" PRIu64 " pushed, %u were", tot->pushed, ntasks);
	if (tot->taken != sum_deliveries)
		fail_msg("library counted %" PRIu64 " taken, consumers saw %" PRIu64 " deliveries", tot->taken,
			 sum_deliveries);
	if (tot->acked != ntasks - sum_purged)
		fail_msg("library counted %" PRIu64 " acked, expected %" PRIu64 " (%u values, %" PRIu64 " dead)",
			 tot->acked, ntasks - sum_purged, ntasks, sum_purged);
	if (tot->acked != sum_ack_ok + sum_unsure_resolved)
		fail_msg("library counted %" PRIu64 " acked; confirmed acks %" PRIu64 " + resolved by batch or "
			 "worker acks %" PRIu64, tot->acked, sum_ack_ok, sum_unsure_resolved);
	if (tot->failed != sum_failed)
		fail_msg("library counted %" PRIu64 " failed, consumers and workers %" PRIu64, tot->failed, sum_failed);
	if (tot->dead != sum_purged + kicks)
		fail_msg("library counted %" PRIu64 " dead, collector purged %" PRIu64 " and kicked %" PRIu64,
			 tot->dead, sum_purged, kicks);
	/* Every delivery ends in exactly one of: ack, fail, lease expiry. */
	if (tot->taken != tot->acked + tot->failed + tot->expired)
		fail_msg("taken %" PRIu64 " != acked %" PRIu64 " + failed %" PRIu64 " + expired %" PRIu64
			 ": a delivery was duplicated or dropped",
			 tot->taken, tot->acked, tot->failed, tot->expired);
	if (atomic_load(&lost_single) > tot->expired)
		fail_msg("%llu single acks/fails lost their lease, but only %" PRIu64 " leases expired",
			 (unsigned long long)atomic_load(&lost_single), tot->expired);
	if (sum_expiry_deaths > tot->expired)
		fail_msg("%" PRIu64 " tasks died by expiry, but only %" PRIu64 " leases expired", sum_expiry_deaths,
			 tot->expired);
	/* Dead tasks beyond the dead-letter area (dead_overflow) are kept, not
	 * lost: the collector lists and purges them like the others. */
	if (tot->recovered || s.recoveries)
		fail_msg("recovered %" PRIu64 ", recoveries %u: expected none", tot->recovered, s.recoveries);
	if (atomic_load(&worker_calls) != atomic_load(&worker_handled))
		fail_msg("workers handled %llu, handlers ran %llu", (unsigned long long)atomic_load(&worker_handled),
			 (unsigned long long)atomic_load(&worker_calls));

	printf("taskq-stress %s: %u tasks in %.1f s: %" PRIu64 " deliveries (%" PRIu64 " values redelivered), "
	       "acked %" PRIu64 " (workers %llu), failed %" PRIu64 ", expired %" PRIu64 ", lost %" PRIu64
	       ", dead %" PRIu64 " (kicked %" PRIu64 ", by expiry %" PRIu64 "), payloads read after "
	       "their lease was lost %llu\n",
	       mixed ? "mixed" : "shared", ntasks, secs, sum_deliveries, redelivered, tot->acked,
	       (unsigned long long)atomic_load(&worker_acked), tot->failed, tot->expired, tot->lost, tot->dead,
	       kicks, sum_expiry_deaths, (unsigned long long)atomic_load(&stale_deliveries));

	tq_close(q);
	tq_destroy(qname);
	int e = atomic_load(&errors);
	if (e) {
		fprintf(stderr, "taskq-stress: FAILED with %d error(s)\n", e);
		return 1;
	}
#ifdef STRESS_TSAN
	printf("taskq-stress: every task accounted for (ThreadSanitizer sets exit status 66 if it reported "
	       "anything)\n");
#else
	printf("taskq-stress: every task accounted for\n");
#endif
	return 0;
}
