/* SPDX-License-Identifier: MIT */
/*
 * test_units.c - the payload units of slot tasks (suite "units";
 * docs/design.md, section 19; src/units.c).
 *
 *   area_full_waits_like_a_full_queue   slots free but no units: a push of a
 *                                       payload through slots is TQ_EAGAIN,
 *                                       TQ_ETIMEDOUT, and goes in once a
 *                                       payload is acked; a waiting pusher
 *                                       in another process gets in too
 *   bytes_survive_a_fragmented_area     thousands of payloads of random
 *                                       sizes through a small area, acked
 *                                       in random order, some failed and
 *                                       retried: every delivery's bytes
 *                                       intact, each task acked once, and
 *                                       U1 (every owned unit is named by its
 *                                       task's slot) checked as it runs
 *   producer_killed_taking_units        killed between the owner-word CASes
 *                                       of a run: recovery gives the run
 *                                       back, nothing of that push is
 *                                       accepted, the area is whole
 *   acker_killed_giving_units           killed while giving a run back after
 *                                       its ack: recovery finishes, the task
 *                                       is acked once, the area is whole
 *   lane_failures_wait_for_units        payload lane tasks failed when the
 *                                       area holds one of them: one moves
 *                                       out, the other waits in its claim,
 *                                       and moves when units come back
 *   dead_taker_lane_claim_moves_what_fits  a taker killed holding a claim of
 *                                       two lane payloads, units for one:
 *                                       recovery moves one and keeps the
 *                                       record; the other follows once the
 *                                       first is acked
 *   stale_record_of_a_moved_task        a lane task's move-out retried in
 *                                       another slot (its mover killed at
 *                                       its journal) leaves a free slot whose
 *                                       record names the same id; popped and
 *                                       released unwritten, that slot must
 *                                       not give back the task's live run
 *   config_bounds                       payload_bytes below one largest
 *                                       payload, or above every slot's,
 *                                       is TQ_EINVAL; tq_config_get reports
 *                                       the size, rounded up to 64
 *
 * A payload is self-describing: its first 8 bytes are a sequence number
 * s, its length is a function of s, and every later byte a function of s
 * and its offset; so every delivery is checked byte for byte.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fault.h"  /* the test build: crash points */
#include "layout.h" /* the owner words and slots, read from the segment */
#include "taskq.h"
#include "util.h"

#define MS 1000000ull
#define UN_MAXLEN 700u
#define UN_INT 0x5eed000000000000ull /* integer tasks: UN_INT + n */

static char qname[TQT_NAME_LEN];

static void fini(void)
{
	if (qname[0])
		(void)tq_destroy(qname);
}

static tq_queue *make(const char *test, uint32_t capacity, uint32_t max_payload, uint64_t payload_bytes)
{
	tq_config c;
	tq_queue *q = NULL;

	tq_config_init(&c);
	c.capacity = capacity;
	c.max_payload = max_payload;
	c.payload_bytes = payload_bytes;
	c.backoff_base_ns = 1 * MS;
	c.backoff_max_ns = 2 * MS;
	c.max_attempts = 50;
	tqt_name(qname, test);
	(void)tq_destroy(qname);
	int rc = tq_create(qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	return q;
}

/* The bytes of payload s: its length and contents. */
static uint32_t un_len(uint64_t s, uint32_t max)
{
	uint64_t x = s * 0x9e3779b97f4a7c15ull;
	return 8 + (uint32_t)((x >> 29) % (max - 7));
}

static void un_fill(uint8_t *p, uint64_t s, uint32_t len)
{
	memcpy(p, &s, 8);
	for (uint32_t i = 8; i < len; i++)
		p[i] = (uint8_t)(s * 131 + i * 7 + (i >> 5));
}

/* -1 if t is not a payload that un_fill made (with lengths up to max),
 * else its sequence number. */
static int64_t un_check(const tq_task *t, uint32_t max)
{
	uint64_t s;

	if (t->kind == TQ_KIND_INT || t->len < 8 || !t->data)
		return -1;
	memcpy(&s, t->data, 8);
	if (t->len != un_len(s, max))
		return -1;
	const uint8_t *p = t->data;
	for (uint32_t i = 8; i < t->len; i++)
		if (p[i] != (uint8_t)(s * 131 + i * 7 + (i >> 5)))
			return -1;
	return (int64_t)s;
}

/* The segment of qname, mapped read only (munmap'd by the caller). */
static const uint8_t *seg_map(size_t *size)
{
	const uint8_t *seg = tqt_segment_map(qname, false, size);
	cr_assert_not_null(seg, "map %s: %s", qname, strerror(errno));
	return seg;
}

/* Units held (owner word not 0), and of those, how many no slot names
 * (U1 broken: the slot whose record has that id is FREE, or its run does
 * not cover the unit). Read while no other process runs. */
static void units_check(uint64_t *held, uint64_t *stray)
{
	size_t size;
	const uint8_t *seg = seg_map(&size);
	const struct tq_hdr *h = (const struct tq_hdr *)seg;
	const uint64_t *own = (const uint64_t *)(seg + h->off_owners);
	const uint64_t *st = (const uint64_t *)(seg + h->off_state);
	const struct tq_slot *sl = (const struct tq_slot *)(seg + h->off_slots);

	cr_assert_leq(h->off_owners + h->payload_units * 8, (uint64_t)size);
	*held = *stray = 0;
	for (uint64_t u = 0; u < h->payload_units; u++) {
		uint64_t id = __atomic_load_n(&own[u], __ATOMIC_RELAXED);
		if (!id)
			continue;
		(*held)++;
		bool named = false;
		for (uint32_t i = 0; i < h->slots && !named; i++) {
			if (sl[i].id != id || sl[i].kind == TQ_KIND_INT)
				continue;
			uint64_t k = ((uint64_t)sl[i].len + 63) / 64;
			named = st_state(__atomic_load_n(&st[i], __ATOMIC_RELAXED)) != ST_FREE && u >= sl[i].value &&
				u < sl[i].value + k;
		}
		*stray += !named;
	}
	munmap((void *)seg, size);
}

static void units_whole(const char *when)
{
	uint64_t held, stray;
	units_check(&held, &stray);
	cr_assert_eq(held, 0, "%s: %llu units still held", when, (unsigned long long)held);
}

/* A batch that goes through slots: an integer, then payload s. */
static int push_pair(tq_queue *q, uint64_t s, uint32_t max, uint8_t *buf, uint64_t timeout_ns, bool payload_first)
{
	tq_task t[2];
	memset(t, 0, sizeof t);
	uint32_t len = un_len(s, max);
	un_fill(buf, s, len);
	tq_task *p = &t[payload_first ? 0 : 1], *i = &t[payload_first ? 1 : 0];
	p->kind = TQ_KIND_JSON;
	p->data = buf;
	p->len = len;
	i->kind = TQ_KIND_INT;
	i->value = UN_INT + s;
	return tq_push(q, t, 2, timeout_ns);
}

/* ------------------------------------------------------------ area full */

static int waiting_pusher(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	uint8_t buf[UN_MAXLEN];
	if (tq_open(qname, &q) != 0)
		return 10;
	int rc = push_pair(q, 99, 1024, buf, 20000 * MS, true);
	tq_close(q);
	return rc == 2 ? 0 : 11;
}

Test(units, area_full_waits_like_a_full_queue, .timeout = 60, .fini = fini)
{
	/* 64 units: room for 4 payloads of 1024 bytes (16 units each) whatever the slots. */
	tq_queue *q = make("unfull", 64, 1024, 4096);
	uint8_t buf[1024];
	tq_task t[16];

	for (uint64_t s = 0; s < 4; s++) {
		/* A fixed length of 1024: 16 units each. */
		tq_task two[2] = {{.kind = TQ_KIND_STRING, .data = buf, .len = 1024}, {.kind = TQ_KIND_INT, .value = s}};
		memset(buf, (int)s, sizeof buf);
		cr_assert_eq(tq_push(q, two, 2, 0), 2, "payload %llu of 4 fits", (unsigned long long)s);
	}
	uint64_t held = 1, total = 0, largest = 1;
	cr_assert_eq(tq_payload_area(q, &held, &total, &largest), 0);
	cr_assert(held == 4096 && total == 4096 && largest == 0, "held %llu of %llu, largest free %llu",
		  (unsigned long long)held, (unsigned long long)total, (unsigned long long)largest);
	tq_task two[2] = {{.kind = TQ_KIND_STRING, .data = buf, .len = 1024}, {.kind = TQ_KIND_INT, .value = 7}};
	cr_assert_eq(tq_push(q, two, 2, 0), TQ_EAGAIN, "no units: refused, with free slots");
	cr_assert_eq(tq_push(q, two, 2, 30 * MS), TQ_ETIMEDOUT);
	tq_task one_small[2] = {{.kind = TQ_KIND_INT, .value = 8}, {.kind = TQ_KIND_STRING, .data = buf, .len = 1}};
	cr_assert_eq(tq_push(q, one_small, 2, 0), 1, "the integer goes in, the payload after it does not");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.ready, 9, "4 pairs and one integer: %u", s.ready);
	cr_assert_gt(s.free_slots, 0);

	pid_t pid = tqt_fork(waiting_pusher, NULL);
	/* Ack the first payload: its 16 units come back. */
	int n = tq_take(q, t, 1, 5000 * MS);
	cr_assert_eq(n, 1);
	cr_assert_eq(t[0].kind, TQ_KIND_STRING);
	cr_assert_eq(t[0].len, 1024);
	cr_assert_eq(((const uint8_t *)t[0].data)[1023], 0, "the first payload's bytes");
	cr_assert_eq(tq_ack(q, t, 1), 0);
	cr_assert_eq(tqt_wait(pid, 30000), 0, "the waiting push went in once units came back");
	cr_assert_eq(tq_push(q, two, 2, 0), TQ_EAGAIN, "full again");

	/* Everything out, in order; then the area is whole. */
	uint32_t payloads = 0, ints = 0;
	while ((n = tq_take(q, t, 16, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			if (t[i].kind == TQ_KIND_INT) {
				ints++;
			} else {
				cr_assert_eq(t[i].len, t[i].len == 1024 ? 1024u : un_len(99, 1024));
				payloads++;
			}
		}
		cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	}
	cr_assert_eq(payloads, 4, "3 left of the first 4, and the waiter's");
	cr_assert_eq(ints, 5 + 1);
	units_whole("drained");
	cr_assert_eq(tq_payload_area(q, &held, NULL, &largest), 0);
	cr_assert(held == 0 && largest == 4096, "drained: held %llu, largest free %llu", (unsigned long long)held,
		  (unsigned long long)largest);
	cr_assert_eq(tq_payload_area(NULL, &held, NULL, NULL), TQ_EINVAL);
	tq_close(q);
}

/* ----------------------------------------------------- fragmented area */

Test(units, bytes_survive_a_fragmented_area, .timeout = 120, .fini = fini)
{
	/* 16 KiB of units for 256 tasks of up to 700 bytes: mostly full. */
	tq_queue *q = make("unfrag", 256, UN_MAXLEN, 16384);
	enum { N = 4000 };
	uint8_t *acked = calloc(N, 1), buf[UN_MAXLEN];
	tq_task t[32], ok[32], bad[32];
	uint64_t next = 0, seed = 12345, full = 0, fails = 0, nacked = 0, deliveries = 0;
	uint64_t deadline = tqt_now_ms() + 90000;

	cr_assert_not_null(acked);
	while (nacked < N) {
		cr_assert_lt(tqt_now_ms(), deadline, "%llu of %d payloads acked", (unsigned long long)nacked, N);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		/* 14 turns in 16 push two tasks, 2 take at most 16 (8.5 on
		 * average, from other bits of the seed): the pushes outrun
		 * the takes whatever the timing, so the area fills (and stays
		 * near full) by construction. */
		if (next < N && (seed >> 60) < 14) {
			/* Payload first and refused: nothing went in; integer
			 * first: it went in, its payload did not. Either way
			 * payload `next` is pushed again on a later turn. */
			int rc = push_pair(q, next, UN_MAXLEN, buf, 0, (seed >> 40) & 1);
			if (rc == 2)
				next++;
			else if (rc == 1 || rc == TQ_EAGAIN)
				full++;
			else
				cr_assert_fail("push: %s", tq_strerror(rc));
			continue;
		}
		int n = tq_take(q, t, 1 + ((seed >> 50) & 15), next < N ? 0 : 200 * MS);
		if (n == TQ_EAGAIN || n == TQ_ETIMEDOUT)
			continue;
		cr_assert_gt(n, 0, "take: %s", tq_strerror(n));
		uint32_t nok = 0, nbad = 0;
		for (int i = 0; i < n; i++) {
			deliveries++;
			if (t[i].kind == TQ_KIND_INT) {
				ok[nok++] = t[i];
				continue;
			}
			int64_t s = un_check(&t[i], UN_MAXLEN);
			cr_assert_geq(s, 0, "delivery %llu: the payload's bytes are not its own (len %u)",
				      (unsigned long long)deliveries, t[i].len);
			cr_assert_lt(s, N);
			if (((seed >> (i % 50)) & 7) == 0 && t[i].attempt < 3)
				bad[nbad++] = t[i];
			else
				ok[nok++] = t[i];
		}
		/* Acked in another order than taken. */
		for (uint32_t i = 0; i + 1 < nok; i += 2) {
			tq_task x = ok[i];
			ok[i] = ok[i + 1];
			ok[i + 1] = x;
		}
		int rc = nok ? tq_ack(q, ok, nok) : 0; /* every one failed: nothing to ack */
		cr_assert_eq(rc, 0, "ack of %u: %s", nok, tq_strerror(rc));
		if (nbad)
			cr_assert_eq(tq_fail(q, bad, nbad, 3, "again"), 0);
		fails += nbad;
		for (uint32_t i = 0; i < nok; i++) {
			if (ok[i].kind == TQ_KIND_INT)
				continue;
			int64_t s = un_check(&ok[i], UN_MAXLEN);
			cr_assert_eq(acked[s], 0, "payload %lld acked twice", (long long)s);
			acked[s] = 1;
			nacked++;
		}
		if (deliveries % 512 < (uint64_t)n) {
			uint64_t held, stray;
			units_check(&held, &stray);
			cr_assert_eq(stray, 0, "%llu of %llu held units named by no slot",
				     (unsigned long long)stray, (unsigned long long)held);
		}
	}
	/* The integers left behind by refused payloads. */
	int n;
	while ((n = tq_take(q, t, 32, 100 * MS)) > 0) {
		for (int i = 0; i < n; i++)
			cr_assert_eq(t[i].kind, TQ_KIND_INT);
		cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	}
	for (uint64_t s = 0; s < N; s++)
		cr_assert_eq(acked[s], 1, "payload %llu never acked", (unsigned long long)s);
	cr_log_info("units: %d payloads, %llu deliveries, %llu failed, %llu pushes found the area full", N,
		    (unsigned long long)deliveries, (unsigned long long)fails, (unsigned long long)full);
	cr_assert_gt(full, 0, "the area was never full: the test did not exercise it");
	cr_assert_gt(fails, 0);
	tq_stats st;
	cr_assert_eq(tq_stats_get(q, &st), 0);
	cr_assert_eq(st.ready + st.leased + st.delayed + st.dead, 0);
	units_whole("drained");
	free(acked);
	tq_close(q);
}

/* ----------------------------------------------------------- crashes */

static int push_and_die(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	uint8_t a[600], b[600], c[600];
	if (tq_open(qname, &q) != 0)
		return 10;
	memset(a, 1, sizeof a);
	memset(b, 2, sizeof b);
	memset(c, 3, sizeof c);
	tq_task t[4] = {{.kind = TQ_KIND_INT, .value = 1},
			{.kind = TQ_KIND_JSON, .data = a, .len = 600},
			{.kind = TQ_KIND_JSON, .data = b, .len = 600},
			{.kind = TQ_KIND_JSON, .data = c, .len = 600}};
	tq_fault_arm("units.take", 3); /* after the first CAS of the third run */
	(void)tq_push(q, t, 4, 0);
	return 11; /* not reached */
}

Test(units, producer_killed_taking_units, .timeout = 60, .fini = fini)
{
	tq_queue *q = make("untake", 64, 1000, 0);
	uint64_t held, stray;

	pid_t pid = tqt_fork(push_and_die, NULL);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	units_check(&held, &stray);
	cr_assert_eq(held, 10 + 10 + 1, "two whole runs and one word of the third: %llu", (unsigned long long)held);
	cr_assert_eq(stray, 0, "every word taken is named by its slot (U1)");
	cr_assert_geq(tq_recover(q), 1);
	units_whole("after recovery");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.total.pushed, 0, "the push never returned: nothing accepted");
	cr_assert_eq(s.free_slots, s.slots);
	/* The queue works on, with the whole area. */
	uint8_t buf[1000];
	for (uint64_t i = 0; i < 20; i++)
		cr_assert_eq(push_pair(q, i, 1000, buf, 0, true), 2);
	tq_task t[64];
	int n = tq_take(q, t, 64, 0);
	cr_assert_eq(n, 40);
	for (int i = 0; i < n; i++)
		if (t[i].kind != TQ_KIND_INT)
			cr_assert_geq(un_check(&t[i], 1000), 0);
	cr_assert_eq(tq_ack(q, t, (size_t)n), 0);
	units_whole("drained");
	tq_close(q);
}

static int ack_and_die(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_task t[4];
	if (tq_open(qname, &q) != 0)
		return 10;
	if (tq_take(q, t, 4, 0) != 2)
		return 11;
	tq_fault_arm("units.give", 1); /* after the first word given back */
	(void)tq_ack(q, t, 2);
	return 12; /* not reached */
}

Test(units, acker_killed_giving_units, .timeout = 60, .fini = fini)
{
	tq_queue *q = make("ungive", 64, 1000, 0);
	uint8_t buf[1000];

	cr_assert_eq(push_pair(q, 5, 1000, buf, 0, false), 2);
	pid_t pid = tqt_fork(ack_and_die, NULL);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	uint64_t held, stray;
	units_check(&held, &stray);
	cr_assert_eq(held, (un_len(5, 1000) + 63) / 64 - 1, "one word given back of the run: %llu held",
		     (unsigned long long)held);
	cr_assert_eq(stray, 0);
	cr_assert_geq(tq_recover(q), 1);
	units_whole("after recovery");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.total.acked, 2, "acked once each: %llu", (unsigned long long)s.total.acked);
	cr_assert_eq(s.ready + s.leased, 0);
	cr_assert_eq(s.free_slots, s.slots);
	tq_close(q);
}

/* ------------------------------------------------------- lane moves */

/* A queue with units for one payload of 256 bytes, and two such payloads
 * ('a' and 'b' throughout) pushed alone: into a lane. */
static tq_queue *two_in_a_lane(const char *test)
{
	tq_queue *q = make(test, 16, 256, 256);
	uint8_t a[256], b[256];
	memset(a, 'a', sizeof a);
	memset(b, 'b', sizeof b);
	tq_task p[2] = {{.kind = TQ_KIND_STRING, .data = a, .len = 256}, {.kind = TQ_KIND_STRING, .data = b, .len = 256}};
	cr_assert_eq(tq_push(q, p, 2, 0), 2);
	return q;
}

Test(units, lane_failures_wait_for_units, .timeout = 60, .fini = fini)
{
	/* Units for one payload of 256 bytes: two failed lane payloads
	 * cannot both move out until the first is acked. */
	tq_queue *q = two_in_a_lane("unlane");
	tq_task t[4];

	cr_assert_eq(tq_take(q, t, 4, 0), 2);
	cr_assert_eq(tq_fail(q, t, 2, 5, "later"), 0);
	/* Both come back, one at a time: the second only once the first,
	 * acked, gave its units back. */
	uint32_t seen[2] = {0, 0};
	uint64_t deadline = tqt_now_ms() + 20000;
	while ((seen[0] < 1 || seen[1] < 1) && tqt_now_ms() < deadline) {
		int n = tq_take(q, t, 4, 500 * MS);
		if (n <= 0)
			continue;
		cr_assert_eq(n, 1, "never both out of the lane at once: %d", n);
		cr_assert_eq(t[0].len, 256);
		uint8_t c = ((const uint8_t *)t[0].data)[0];
		cr_assert(c == 'a' || c == 'b');
		for (int i = 0; i < 256; i++)
			cr_assert_eq(((const uint8_t *)t[0].data)[i], c);
		cr_assert_eq(t[0].attempt, 2);
		seen[c - 'a']++;
		cr_assert_eq(tq_ack(q, t, 1), 0);
	}
	cr_assert_eq(seen[0], 1);
	cr_assert_eq(seen[1], 1);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.total.acked, 2);
	cr_assert_eq(s.ready + s.leased + s.delayed, 0);
	units_whole("drained");
	tq_close(q);
}

/* Child: takes (uintptr_t)arg tasks, then is killed holding them. */
static int take_and_die(void *arg)
{
	int want = (int)(uintptr_t)arg;
	tq_queue *q = NULL;
	tq_task t[4];
	if (tq_open(qname, &q) != 0)
		return 10;
	if (tq_take(q, t, (size_t)want, 0) != want)
		return 11;
	raise(SIGKILL);
	return 12;
}

Test(units, dead_taker_lane_claim_moves_what_fits, .timeout = 60, .fini = fini)
{
	tq_queue *q = two_in_a_lane("unlanedead");
	tq_task t[4];

	pid_t pid = tqt_fork(take_and_die, (void *)(uintptr_t)2);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	(void)tq_recover(q);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.ready, 1, "one moved out to a slot: %u ready", s.ready);
	cr_assert_eq(s.leased, 1, "one left in the dead taker's claim: %u leased", s.leased);
	cr_assert_eq(tq_take(q, t, 4, 0), 1);
	cr_assert_eq(((const uint8_t *)t[0].data)[0], 'a', "the claim's first task moves first");
	cr_assert_eq(t[0].attempt, 2);
	cr_assert_eq(tq_ack(q, t, 1), 0);
	/* Its units came back: the next recovery pass moves the other. */
	int n = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (n <= 0 && tqt_now_ms() < deadline) {
		(void)tq_recover(q);
		n = tq_take(q, t, 4, 200 * MS);
	}
	cr_assert_eq(n, 1);
	cr_assert_eq(t[0].len, 256);
	for (int i = 0; i < 256; i++)
		cr_assert_eq(((const uint8_t *)t[0].data)[i], 'b');
	cr_assert_eq(tq_ack(q, t, 1), 0);
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.total.acked, 2);
	cr_assert_eq(s.total.recovered, 2, "both returned from the dead taker: %llu",
		     (unsigned long long)s.total.recovered);
	cr_assert_eq(s.ready + s.leased + s.delayed, 0);
	cr_assert_eq(s.procs, 1, "the dead taker's record is gone once its claim is empty");
	units_whole("drained");
	tq_close(q);
}

static int recover_and_die_at_journal(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_fault_arm("move.journal", 1);
	if (tq_open(qname, &q) != 0) /* its open recovers the dead taker: killed there */
		return 10;
	(void)tq_recover(q);
	return 11;
}

static int push_and_die_claimed(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	if (tq_open(qname, &q) != 0)
		return 10;
	tq_task t[2] = {{.kind = TQ_KIND_INT, .value = 1}, {.kind = TQ_KIND_INT, .value = 2}};
	tq_fault_arm("push.claimed", 1); /* slots popped, nothing written */
	(void)tq_push_delayed(q, t, 2, 1000 * MS, 0);
	return 11;
}

Test(units, stale_record_of_a_moved_task, .timeout = 60, .fini = fini)
{
	tq_queue *q = make("unstale", 16, 128, 128); /* units for one payload of 128 bytes */
	uint8_t c[128], d[128];
	memset(c, 'c', sizeof c);
	memset(d, 'd', sizeof d);
	tq_task p = {.kind = TQ_KIND_STRING, .data = c, .len = 128};
	uint64_t held, stray;

	cr_assert_eq(tq_push(q, &p, 1, 0), 1); /* into a lane */
	cr_assert_eq(tqt_wait(tqt_fork(take_and_die, (void *)(uintptr_t)1), 20000), 128 + SIGKILL);
	cr_assert_eq(tqt_wait(tqt_fork(recover_and_die_at_journal, NULL), 20000), 128 + SIGKILL,
		     "the recoverer is killed with its move journaled");
	(void)tq_recover(q); /* repairs the move: the task READY in a second slot */
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.ready, 1);
	units_check(&held, &stray);
	cr_assert_eq(held, 2, "the moved task holds its run: %llu", (unsigned long long)held);
	/* Pop the free slots, the first one's stale record among them, in
	 * pushers killed before they write; recovery releases them. */
	for (int i = 0; i < 20; i++) {
		(void)tqt_wait(tqt_fork(push_and_die_claimed, NULL), 20000);
		(void)tq_recover(q);
	}
	units_check(&held, &stray);
	cr_assert_eq(stray, 0, "%llu units named by no slot", (unsigned long long)stray);
	cr_assert_eq(held, 2, "a stale slot record gave back the live task's run: %llu held",
		     (unsigned long long)held);
	tq_task pd[2] = {{.kind = TQ_KIND_INT, .value = 7}, {.kind = TQ_KIND_STRING, .data = d, .len = 128}};
	cr_assert_eq(tq_push(q, pd, 2, 0), 1, "no room for a second payload: the integer alone goes in");
	tq_task t[8];
	int n = tq_take(q, t, 8, 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(t[0].kind, TQ_KIND_STRING);
	cr_assert_eq(t[0].len, 128);
	for (int i = 0; i < 128; i++)
		cr_assert_eq(((const uint8_t *)t[0].data)[i], 'c', "the moved task's bytes at %d", i);
	cr_assert_eq(tq_ack(q, t, 2), 0);
	units_whole("drained");
	tq_close(q);
}

/* ------------------------------------------------------------ config */

Test(units, config_bounds, .fini = fini)
{
	tq_config c, got;
	tq_queue *q = NULL;

	tqt_name(qname, "unconf");
	(void)tq_destroy(qname);
	tq_config_init(&c);
	cr_assert_eq(c.payload_bytes, 0, "0: the default");
	c.capacity = 100;
	c.max_payload = 1000;
	c.payload_bytes = 959; /* 960 rounded: below one largest payload (1000, 1024 rounded) */
	cr_assert_eq(tq_create(qname, &c, &q), TQ_EINVAL);
	c.payload_bytes = (100 + 10 + 5) * 1024ull + 1; /* above every slot's largest */
	cr_assert_eq(tq_create(qname, &c, &q), TQ_EINVAL);
	c.payload_bytes = UINT64_MAX;
	cr_assert_eq(tq_create(qname, &c, &q), TQ_EINVAL);
	c.payload_bytes = 1000;
	cr_assert_eq(tq_create(qname, &c, &q), 0, "1000 rounds up to 1024: one largest payload");
	cr_assert_eq(tq_config_get(q, &got), 0);
	cr_assert_eq(got.payload_bytes, 1024);
	tq_close(q);
	cr_assert_eq(tq_destroy(qname), 0);
	c.payload_bytes = 0;
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	cr_assert_eq(tq_config_get(q, &got), 0);
	cr_assert_eq(got.payload_bytes, 100 * 1024ull, "default: a largest payload for each task of capacity");
	tq_close(q);
}
