/* SPDX-License-Identifier: MIT */
/*
 * test_payload_lanes.c - payload tasks (TQ_KIND_STRING / TQ_KIND_JSON)
 * through the payload lanes and their byte rings (suite "payload_lanes";
 * docs/design.md, section 17; src/lane.c).
 *
 *   round_trip_orders_and_wraps     one producer, thousands of payloads of
 *                                   0..300 bytes and integers through a
 *                                   4 KiB byte ring: exactly once, in push
 *                                   order, kind, length and bytes intact;
 *                                   records never cross the ring's end
 *   fail_retry_and_dead_keep_bytes  tq_fail moves a payload out of its lane:
 *                                   the retries and the dead letter carry
 *                                   the same bytes after the ring is reused
 *   expired_lease_redelivers_bytes  the expiry sweep moves it out: the
 *                                   redelivery has the same bytes, the
 *                                   stale delivery's ack is TQ_ELOST
 *   producer_killed_mid_push        a producer dies at push.written: its
 *                                   batch was never accepted, its lane is
 *                                   released and works on
 *   taker_killed_holding_payloads   a taker is SIGKILLed holding payloads:
 *                                   recovery returns them, bytes intact
 *   taker_killed_at_take_popped     ... between its claim and its record
 *   move_claimed_repair_keeps_bytes the recovery-lock holder dies moving a
 *                                   failed payload out; the repair copies
 *                                   the bytes
 *   settle_mid_lane_reusable        an acker dies mid settle: the acked
 *                                   payloads are not redelivered, and the
 *                                   byte ring is reused past them
 *   byte_ring_full_waits            a lane's byte ring fills before the
 *                                   queue's capacity: TQ_EAGAIN,
 *                                   TQ_ETIMEDOUT, a sleeping push woken
 *                                   when bytes are freed; nothing lost
 *   one_producer_order_across_ring_and_lanes  integers and payloads in a
 *                                   pair of lanes and a mixed batch in the
 *                                   ready ring: taken in push order
 *   one_producer_order_across_lane_move  a producer whose payload lane is
 *                                   full of held bytes moves to another
 *                                   pair: its payloads and integers must
 *                                   still come out in its push order
 *
 * Every task pushed is recorded in a book (id, kind, length, the seed its
 * bytes derive from), in shared memory so that children can check what
 * they take; every delivery is checked against it, byte for byte. Every
 * task is accounted for, and each queue ends empty with every slot free.
 * Children never use Criterion asserts: they report through shared memory
 * and their exit code.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "fault.h"  /* the test build: crash points */
#include "layout.h" /* lane words and the byte rings, read from the segment */
#include "taskq.h"
#include "util.h"
#include "lanefix.h"

#define PL_CHILD_MS 20000u
#define PL_MAXT 8192u                /* tasks in one test's book */
#define PL_BASE 0x9a7e000000000000ull /* integer tasks: PL_BASE + seed */
#define PL_BATCH 64u                 /* tasks in one pl_push */
#define PL_SEC 1000000000ull

/* ------------------------------------------------------------- the book */

struct pl_exp {
	uint64_t id;
	uint64_t seed; /* the bytes (or the integer) derive from it */
	uint32_t len;
	uint16_t kind;
	uint16_t pad;
};

/* Every task accepted, in push order (ids grow: one producer at a time),
 * and per task its deliveries, acks and last attempt. Shared memory. */
struct pl_book {
	uint32_t n;
	uint64_t next_seed;
	struct pl_exp e[PL_MAXT];
	uint32_t delivered[PL_MAXT];
	uint32_t acked[PL_MAXT];
	uint16_t attempt[PL_MAXT];
};

static struct pl_book *pl_book_new(void)
{
	return tqt_shared(sizeof(struct pl_book));
}

/* Byte i of the payload of seed `seed`: every byte value, NULs included. */
static inline uint8_t pl_byte(uint64_t seed, uint32_t i)
{
	uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ull);
	x ^= x >> 31;
	x *= 0x94D049BB133111EBull;
	x ^= x >> 29;
	return (uint8_t)x;
}

static void pl_fill(uint8_t *buf, uint64_t seed, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = pl_byte(seed, i);
}

/* What of delivery t differs from entry e; NULL if nothing. */
static const char *pl_diff(const struct pl_exp *e, const tq_task *t)
{
	if (t->id != e->id)
		return "id";
	if (t->kind != e->kind)
		return "kind";
	if (e->kind == TQ_KIND_INT)
		return t->value == PL_BASE + e->seed ? NULL : "value";
	if (t->len != e->len)
		return "len";
	if (e->len && !t->data)
		return "data (NULL)";
	const uint8_t *d = t->data;
	for (uint32_t i = 0; i < e->len; i++)
		if (d[i] != pl_byte(e->seed, i))
			return "bytes";
	return NULL;
}

/* The book entry of id, or -1 (ids grow in book order). */
static int pl_find(const struct pl_book *b, uint64_t id)
{
	uint32_t lo = 0, hi = b->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (b->e[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->n && b->e[lo].id == id ? (int)lo : -1;
}

struct pl_spec {
	uint16_t kind;
	uint32_t len;
};

/* One tq_push of n payload tasks shaped by spec, with fresh seeds; the
 * accepted ones go into the book. Returns tq_push's result. No Criterion
 * (children push too). A 0-length payload has data NULL for odd seeds. */
static int pl_push(tq_queue *q, struct pl_book *b, const struct pl_spec *spec, uint32_t n, uint64_t timeout_ns)
{
	tq_task t[PL_BATCH];
	size_t total = 0, off = 0;

	if (n == 0 || n > PL_BATCH || b->n + n > PL_MAXT)
		return TQ_EINVAL;
	for (uint32_t i = 0; i < n; i++)
		total += spec[i].len;
	uint8_t *buf = malloc(total + 1);
	if (!buf)
		return TQ_ENOMEM;
	memset(t, 0, sizeof t);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t seed = b->next_seed + i;
		pl_fill(buf + off, seed, spec[i].len);
		t[i].kind = spec[i].kind;
		t[i].len = spec[i].len;
		t[i].data = spec[i].len || !(seed & 1) ? buf + off : NULL;
		off += spec[i].len;
	}
	int k = tq_push(q, t, n, timeout_ns);
	for (int i = 0; i < k; i++)
		b->e[b->n + (uint32_t)i] = (struct pl_exp){t[i].id, b->next_seed + (uint64_t)i, spec[i].len,
							    spec[i].kind, 0};
	if (k > 0)
		b->n += (uint32_t)k;
	b->next_seed += n;
	free(buf);
	return k;
}

/* One integer task into the book; tq_push's result. */
static int pl_push_int(tq_queue *q, struct pl_book *b, uint64_t timeout_ns)
{
	tq_task t;

	if (b->n >= PL_MAXT)
		return TQ_EINVAL;
	memset(&t, 0, sizeof t);
	t.kind = TQ_KIND_INT;
	t.value = PL_BASE + b->next_seed;
	int k = tq_push(q, &t, 1, timeout_ns);
	if (k == 1)
		b->e[b->n++] = (struct pl_exp){t.id, b->next_seed, 0, TQ_KIND_INT, 0};
	b->next_seed++;
	return k;
}

/* n specs, kinds alternating, lengths cycling through the lengths given. */
static void pl_specs_cycle(struct pl_spec *s, uint32_t n, const uint32_t *lens, uint32_t nlens, uint32_t from)
{
	for (uint32_t i = 0; i < n; i++)
		s[i] = (struct pl_spec){(from + i) & 1 ? TQ_KIND_JSON : TQ_KIND_STRING, lens[(from + i) % nlens]};
}

/* ------------------------------------------------- checks in the parent */

/* A delivery must be a task of the book with its kind, length and bytes;
 * counted. Returns its book index. */
static uint32_t pl_note(struct pl_book *b, const tq_task *t)
{
	int i = pl_find(b, t->id);
	cr_assert_geq(i, 0, "delivered id %llu (kind %u, len %u, attempt %u) was never accepted",
		      (unsigned long long)t->id, t->kind, t->len, t->attempt);
	const char *d = pl_diff(&b->e[i], t);
	cr_assert(d == NULL,
		  "id %llu (book entry %d, attempt %u): its %s differ(s) from what was pushed "
		  "(pushed kind %u len %u, delivered kind %u len %u)",
		  (unsigned long long)t->id, i, t->attempt, d ? d : "", b->e[i].kind, b->e[i].len, t->kind, t->len);
	b->delivered[i]++;
	b->attempt[i] = t->attempt;
	return (uint32_t)i;
}

static void pl_stats(tq_queue *q, tq_stats *s)
{
	memset(s, 0, sizeof *s);
	int rc = tq_stats_get(q, s);
	cr_assert_eq(rc, 0, "tq_stats_get: %s", tq_strerror(rc));
}

/* Acks n deliveries (which must all be held) and counts them. */
static void pl_ack(tq_queue *q, struct pl_book *b, const tq_task *t, size_t n)
{
	int rc = tq_ack(q, t, n);
	cr_assert_eq(rc, 0, "tq_ack of %zu: %d (%s)", n, rc, tq_strerror(rc));
	for (size_t i = 0; i < n; i++)
		b->acked[pl_find(b, t[i].id)]++;
}

/* Takes, checks and acks everything ready or due, until the queue holds
 * nothing, with a deadline. */
static void pl_drain(tq_queue *q, struct pl_book *b)
{
	tq_task t[64];
	uint64_t deadline = tqt_now_ms() + 20000;

	for (;;) {
		int n = tq_take(q, t, 64, 0);
		if (n == TQ_EAGAIN) {
			tq_stats st;
			pl_stats(q, &st);
			if (st.ready == 0 && st.delayed == 0 && st.leased == 0)
				return;
			cr_assert(tqt_now_ms() < deadline, "drain stalled: ready %u leased %u delayed %u", st.ready,
				  st.leased, st.delayed);
			n = tq_take(q, t, 64, 20000000ull);
			if (n == TQ_ETIMEDOUT || n == TQ_EAGAIN)
				continue;
		}
		cr_assert(n > 0 && n <= 64, "drain: tq_take: %d (%s)", n, n < 0 ? tq_strerror(n) : "count");
		for (int i = 0; i < n; i++)
			pl_note(b, &t[i]);
		pl_ack(q, b, t, (size_t)n);
	}
}

/* Every task of the book acked exactly once and delivered at least once;
 * the queue's counters agree. */
static void pl_expect_all_acked(tq_queue *q, const struct pl_book *b)
{
	tq_stats s;

	for (uint32_t i = 0; i < b->n; i++) {
		cr_expect_eq(b->acked[i], 1, "task %u (id %llu, kind %u, len %u) acked %u times", i,
			     (unsigned long long)b->e[i].id, b->e[i].kind, b->e[i].len, b->acked[i]);
		cr_expect_geq(b->delivered[i], 1, "task %u never delivered", i);
		if (b->acked[i] != 1)
			break;
	}
	pl_stats(q, &s);
	cr_expect_eq(s.total.pushed, b->n, "pushed %llu, the book holds %u", (unsigned long long)s.total.pushed,
		     b->n);
	cr_expect_eq(s.total.acked, b->n, "acked %llu of %u", (unsigned long long)s.total.acked, b->n);
}

/* The queue is empty and every slot free; nothing more to take. */
static void pl_expect_clean(tq_queue *q)
{
	tq_stats s;
	tq_task t;

	pl_stats(q, &s);
	cr_expect_eq(s.ready, 0, "ready %u", s.ready);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.delayed, 0, "delayed %u", s.delayed);
	cr_expect_eq(s.dead, 0, "dead %u", s.dead);
	cr_expect_eq(s.free_slots, s.slots, "free %u of %u", s.free_slots, s.slots);
	int rc = tq_take(q, &t, 1, 0);
	cr_expect_eq(rc, TQ_EAGAIN, "take on the drained queue: %d (%s)", rc, tq_strerror(rc));
}

/* ------------------------------------------------------------ the queue */

static tq_queue *pl_create(const char *test, uint32_t cap, uint32_t max_payload, uint64_t lease_ns,
			   uint32_t max_attempts, uint32_t dead_cap)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(lf_qname, test);
	tq_destroy(lf_qname); /* a leftover of an earlier run with our pid */
	tq_config_init(&c);
	c.capacity = cap;
	c.max_payload = max_payload;
	c.max_attempts = max_attempts;
	c.dead_capacity = dead_cap;
	c.lease_ns = lease_ns;
	c.backoff_base_ns = 1000000ull; /* 1 ms */
	c.backoff_max_ns = 2000000ull;
	int rc = tq_create(lf_qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", lf_qname, tq_strerror(rc));
	lf_q = q;
	return q;
}

static tq_queue *pl_open2(void)
{
	tq_queue *q = NULL;
	int rc = tq_open(lf_qname, &q);
	cr_assert_eq(rc, 0, "tq_open(%s): %s", lf_qname, tq_strerror(rc));
	lf_q2 = q;
	return q;
}

/* Cell `pos` of payload lane `lane` (TQ_INT_LANES..TQ_LANES-1). */
static struct tq_cell pl_cell(const uint8_t *seg, uint32_t lane, uint64_t pos)
{
	struct tq_cell c;
	uint64_t lsize = lf_hdr32(seg, offsetof(struct tq_hdr, lane_size));
	memcpy(&c, seg + lf_hdr64(seg, offsetof(struct tq_hdr, off_cells)) +
			   ((lane - TQ_INT_LANES) * lsize + (pos & (lsize - 1))) * sizeof(struct tq_cell),
	       sizeof c);
	return c;
}

/* The record at absolute byte position `pos` of payload lane `lane`. */
static const struct tq_brec *pl_brec(const uint8_t *seg, uint32_t lane, uint64_t pos)
{
	uint64_t lb = lf_hdr64(seg, offsetof(struct tq_hdr, lane_bytes));
	return (const struct tq_brec *)(seg + lf_hdr64(seg, offsetof(struct tq_hdr, off_bytes)) +
					(lane - TQ_INT_LANES) * lb + (pos & (lb - 1)));
}

static inline uint32_t pl_rec_size(uint32_t len)
{
	return (uint32_t)sizeof(struct tq_brec) + ((len + 7u) & ~7u);
}

/* ------------------------------------------------------------- children */

/* What a child tells the parent. */
struct pl_ctx {
	char msg[200];
	struct pl_book *book;
	int taken;            /* tasks its tq_take calls returned */
	int bad;              /* of those, deliveries that differ from the book */
	uint64_t ids[256];    /* their ids, in order */
	int nids;
	int step;             /* how far it got */
};


static int pl_err(struct pl_ctx *c, int code, const char *what, int rc)
{
	snprintf(c->msg, sizeof c->msg, "%s: %d (%s)", what, rc, tq_strerror(rc));
	return code;
}

/* The child must die by SIGKILL (at its fault point, or by its own hand). */
static void pl_expect_killed(struct pl_ctx *c, pid_t pid, const char *what)
{
	int st = tqt_wait(pid, PL_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 128 + SIGKILL,
		     "%s: the child should have died by SIGKILL; status %d (-1 = still running, killed), "
		     "step %d, message '%s'",
		     what, st, c->step, c->msg);
}

static void pl_expect_exit0(struct pl_ctx *c, pid_t pid, const char *what)
{
	int st = tqt_wait(pid, PL_CHILD_MS);
	lf_forget(pid);
	cr_assert_eq(st, 0, "%s: child status %d (-1 = timed out, killed), step %d, message '%s'", what, st,
		     c->step, c->msg);
}

/* A child's tq_take of exactly n tasks (in as many calls as it takes),
 * each checked against the book. */
static int pl_child_take(struct pl_ctx *c, tq_queue *q, tq_task *t, int n)
{
	int got = 0;
	while (got < n) {
		int k = tq_take(q, t + got, (size_t)(n - got), 2 * PL_SEC);
		if (k <= 0)
			return k;
		for (int i = 0; i < k; i++) {
			const tq_task *d = &t[got + i];
			int e = pl_find(c->book, d->id);
			if (e < 0 || pl_diff(&c->book->e[e], d) != NULL || d->attempt != 1) {
				if (c->bad++ == 0)
					snprintf(c->msg, sizeof c->msg, "id %llu (entry %d, attempt %u): %s",
						 (unsigned long long)d->id, e, d->attempt,
						 e < 0 ? "not in the book" : pl_diff(&c->book->e[e], d) ? pl_diff(&c->book->e[e], d) : "attempt");
			}
			if (c->nids < 256)
				c->ids[c->nids++] = d->id;
		}
		got += k;
		c->taken = got;
	}
	return got;
}

/* Pushes `count` filler payloads of `len` bytes and takes, checks and acks
 * whatever comes, as it comes: the byte ring is written over and over.
 * Pushes do not wait (the consumer is this thread): a batch that does not
 * fit whole goes in part, or not at all, until the next round. */
static void pl_churn(tq_queue *prod, tq_queue *cons, struct pl_book *b, uint32_t count, uint32_t len)
{
	struct pl_spec s[16];
	tq_task t[64];

	for (uint32_t done = 0; done < count;) {
		uint32_t n = count - done < 16 ? count - done : 16;
		pl_specs_cycle(s, n, &len, 1, done);
		int k = pl_push(prod, b, s, n, 0);
		cr_assert(k > 0 || k == TQ_EAGAIN, "filler push: %d (%s)", k, k < 0 ? tq_strerror(k) : "count");
		if (k > 0)
			done += (uint32_t)k;
		int m = tq_take(cons, t, 64, 2 * PL_SEC);
		cr_assert(m > 0, "filler take: %d (%s)", m, tq_strerror(m));
		for (int i = 0; i < m; i++)
			pl_note(b, &t[i]);
		pl_ack(cons, b, t, (size_t)m);
	}
}

/* ============================================= round trip, order, wraps */

#define RT_TASKS 6000u

static uint64_t pl_rng(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The length of a payload in the round trip: the edge cases, often. */
static uint32_t rt_len(uint64_t *rng)
{
	static const uint32_t edge[] = {0, 0, 1, 7, 8, 9, 15, 16, 17, 255, 256, 288, 289, 296, 297, 299, 300};
	uint64_t r = pl_rng(rng);
	if (r % 4 == 0)
		return edge[(r >> 8) % (sizeof edge / sizeof edge[0])];
	return (uint32_t)((r >> 8) % 301);
}

struct rt_state {
	uint32_t next;       /* the book entry due next */
	uint64_t lane_bytes;
	uint32_t prev_end;   /* ring offset after the last payload delivered; UINT32_MAX: none yet */
	uint32_t at_start;   /* records placed at the ring start, past room left at its end */
	uint32_t zero_len, json, string, ints;
};

/* Takes up to `want` (timeout 0), checks that they are the next tasks of
 * the book in order, and acks them. Returns the count taken. */
static int rt_consume(tq_queue *c, struct pl_book *b, struct rt_state *rs, uint32_t want)
{
	tq_task t[64];

	if (want > 64)
		want = 64;
	int n = tq_take(c, t, want, 0);
	if (n == TQ_EAGAIN) {
		cr_assert_eq(rs->next, b->n, "tq_take found nothing with %u tasks accepted and not delivered",
			     b->n - rs->next);
		return 0;
	}
	cr_assert(n > 0 && (uint32_t)n <= want, "tq_take: %d (%s)", n, n < 0 ? tq_strerror(n) : "count");
	for (int i = 0; i < n; i++) {
		cr_assert_lt(rs->next, b->n, "delivered more than was pushed (id %llu)", (unsigned long long)t[i].id);
		const struct pl_exp *e = &b->e[rs->next];
		cr_assert_eq(t[i].id, e->id,
			     "out of push order: delivered id %llu (kind %u) where id %llu (kind %u, book entry %u) "
			     "was next",
			     (unsigned long long)t[i].id, t[i].kind, (unsigned long long)e->id, e->kind, rs->next);
		uint32_t k = pl_note(b, &t[i]);
		cr_assert_eq(k, rs->next);
		cr_assert_eq(t[i].attempt, 1, "id %llu: attempt %u", (unsigned long long)t[i].id, t[i].attempt);
		rs->next++;
		if (t[i].kind == TQ_KIND_INT) {
			rs->ints++;
			continue;
		}
		rs->json += t[i].kind == TQ_KIND_JSON;
		rs->string += t[i].kind == TQ_KIND_STRING;
		rs->zero_len += t[i].len == 0;
		/* The record sits 8 bytes before the data, in a ring of
		 * lane_bytes (4096) bytes at a page-aligned place of the
		 * mapping: its offset in the ring is the address's low bits. */
		cr_assert_not_null(t[i].data, "id %llu: a lane payload without its record", (unsigned long long)t[i].id);
		uint32_t off = (uint32_t)(((uintptr_t)t[i].data - sizeof(struct tq_brec)) & (rs->lane_bytes - 1));
		uint32_t size = pl_rec_size(t[i].len);
		cr_assert_eq(off % 8, 0, "id %llu: record at ring offset %u", (unsigned long long)t[i].id, off);
		cr_assert_leq(off + size, rs->lane_bytes, "id %llu: a record of %u bytes at offset %u crosses the ring's end",
			      (unsigned long long)t[i].id, size, off);
		if (off == 0 && rs->prev_end != UINT32_MAX && rs->prev_end < rs->lane_bytes && rs->prev_end != 0 &&
		    rs->prev_end + size > rs->lane_bytes)
			rs->at_start++;
		rs->prev_end = off + size;
	}
	pl_ack(c, b, t, (size_t)n);
	return n;
}

Test(payload_lanes, round_trip_orders_and_wraps, .timeout = 120, .fini = lf_fini)
{
	tq_queue *p = pl_create("roundtrip", 64, 300, 60 * PL_SEC, 5, 0);
	tq_queue *c = pl_open2();
	struct pl_book *b = pl_book_new();
	struct rt_state rs = {.prev_end = UINT32_MAX};
	struct pl_spec spec[24];
	uint64_t rng = 0x5eed1234abcdull, payload_bytes = 0;
	uint32_t eagain = 0, partial = 0;
	size_t size;
	tq_stats s;

	const uint8_t *seg = lf_map(&size);
	rs.lane_bytes = lf_hdr64(seg, offsetof(struct tq_hdr, lane_bytes));
	cr_assert_eq(rs.lane_bytes, 4096, "lane_bytes %llu: capacity 64 and max_payload 300 should make 4096",
		     (unsigned long long)rs.lane_bytes);

	while (b->n < RT_TASKS) {
		/* A batch of 1..24 payloads, strings and JSON mixed. */
		uint32_t n = 1 + (uint32_t)(pl_rng(&rng) % 24);
		for (uint32_t i = 0; i < n; i++)
			spec[i] = (struct pl_spec){pl_rng(&rng) & 1 ? TQ_KIND_JSON : TQ_KIND_STRING, rt_len(&rng)};
		uint32_t before = b->n;
		int k = pl_push(p, b, spec, n, 0);
		if (k == TQ_EAGAIN) {
			/* Full (tasks or bytes): only with tasks waiting. */
			cr_assert_lt(rs.next, b->n, "a payload push of %u found the queue full with nothing in it", n);
			eagain++;
		} else {
			cr_assert(k > 0 && (uint32_t)k <= n, "tq_push of %u payloads: %d (%s)", n, k,
				  k < 0 ? tq_strerror(k) : "count");
			partial += (uint32_t)k < n;
			for (uint32_t i = before; i < b->n; i++)
				payload_bytes += b->e[i].len;
		}
		/* Now and then an integer between them. */
		if (pl_rng(&rng) % 3 == 0) {
			k = pl_push_int(p, b, 0);
			cr_assert(k == 1 || k == TQ_EAGAIN, "tq_push of an integer: %d (%s)", k,
				  k < 0 ? tq_strerror(k) : "count");
			cr_assert(k == 1 || rs.next < b->n, "an integer push found the queue full with nothing in it");
		}
		/* The consumer takes some (or everything), in order, and acks. */
		uint64_t r = pl_rng(&rng);
		if (r % 8 == 0) {
			while (rt_consume(c, b, &rs, 64) > 0)
				;
		} else {
			rt_consume(c, b, &rs, 1 + (uint32_t)((r >> 8) % 40));
		}
	}
	while (rs.next < b->n)
		cr_assert_gt(rt_consume(c, b, &rs, 64), 0);

	/* The run covered what it should. */
	cr_expect_gt(rs.zero_len, 0, "no empty payload went through");
	cr_expect_gt(rs.json, 100, "json %u", rs.json);
	cr_expect_gt(rs.string, 100, "string %u", rs.string);
	cr_expect_gt(rs.ints, 100, "ints %u", rs.ints);
	cr_expect_gt(payload_bytes, 50 * rs.lane_bytes, "only %llu payload bytes: the ring wrapped too few times",
		     (unsigned long long)payload_bytes);
	cr_expect_gt(rs.at_start, 20, "only %u records placed at the ring start past room left at its end",
		     rs.at_start);
	cr_expect_gt(eagain + partial, 0, "the ring never filled (no TQ_EAGAIN, no partial push)");

	pl_expect_all_acked(p, b);
	pl_stats(p, &s);
	cr_expect_eq(s.total.taken, b->n, "taken %llu of %u", (unsigned long long)s.total.taken, b->n);
	cr_expect_eq(s.total.lost, 0);
	tq_counters self;
	cr_assert_eq(tq_counters_self(p, &self), 0);
	cr_expect_eq(self.pushed, b->n, "the producer's own pushed %llu", (unsigned long long)self.pushed);
	cr_assert_eq(tq_counters_self(c, &self), 0);
	cr_expect_eq(self.acked, b->n, "the consumer's own acked %llu", (unsigned long long)self.acked);
	munmap((void *)seg, size);
	pl_expect_clean(p);
}

/* ============================================== fail, retry, dead letter */

#define FR_N 12u
#define FR_ATTEMPTS 3u

static const uint32_t fr_lens[FR_N] = {0, 1, 7, 8, 9, 100, 255, 296, 297, 299, 300, 150};

Test(payload_lanes, fail_retry_and_dead_keep_bytes, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("failretry", 64, 300, 60 * PL_SEC, FR_ATTEMPTS, 32);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[FR_N];
	tq_task t[64];
	uint16_t fails[FR_N] = {0}; /* deliveries of each failed so far */
	uint32_t dead = 0, fillers = 0, fillers_acked = 0;
	tq_stats s;

	pl_specs_cycle(spec, FR_N, fr_lens, FR_N, 0);
	cr_assert_eq(pl_push(q, b, spec, FR_N, 0), (int)FR_N);
	uint64_t last_id = b->e[FR_N - 1].id;

	/* Every delivery of the first FR_N is failed, until they are dead;
	 * meanwhile fillers go through, reusing the byte ring several times
	 * between the deliveries (the copies must not depend on it). */
	uint64_t deadline = tqt_now_ms() + 30000;
	while (dead < FR_N || fillers_acked < 150) {
		cr_assert(tqt_now_ms() < deadline, "stalled: %u dead, %u fillers pushed, %u acked", dead, fillers,
			  fillers_acked);
		if (fillers < 150) {
			struct pl_spec f[10];
			uint32_t len = 280;
			pl_specs_cycle(f, 10, &len, 1, fillers);
			int k = pl_push(q, b, f, 10, 0);
			cr_assert(k > 0 || k == TQ_EAGAIN, "filler push: %d (%s)", k, k < 0 ? tq_strerror(k) : "count");
			if (k > 0)
				fillers += (uint32_t)k;
		}
		int n = tq_take(q, t, 64, 20000000ull);
		if (n == TQ_ETIMEDOUT)
			continue;
		cr_assert(n > 0, "tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			uint32_t e = pl_note(b, &t[i]);
			if (t[i].id > last_id) {
				cr_assert_eq(t[i].attempt, 1);
				pl_ack(q, b, &t[i], 1);
				fillers_acked++;
				continue;
			}
			cr_assert_eq(t[i].attempt, fails[e] + 1, "id %llu: attempt %u after %u failures",
				     (unsigned long long)t[i].id, t[i].attempt, fails[e]);
			int rc = tq_fail(q, &t[i], 1, 42, "payload lanes: failed on purpose");
			cr_assert_eq(rc, 0, "tq_fail: %d (%s)", rc, tq_strerror(rc));
			if (++fails[e] == FR_ATTEMPTS)
				dead++;
		}
	}

	pl_stats(q, &s);
	cr_expect_eq(s.dead, FR_N, "dead %u", s.dead);
	cr_expect_eq(s.total.failed, FR_N * FR_ATTEMPTS, "failed %llu", (unsigned long long)s.total.failed);
	cr_expect_eq(s.total.retried, FR_N * (FR_ATTEMPTS - 1), "retried %llu", (unsigned long long)s.total.retried);
	cr_expect_eq(s.total.dead, FR_N, "dead total %llu", (unsigned long long)s.total.dead);
	cr_expect_eq(s.ready + s.leased + s.delayed, 0, "ready %u leased %u delayed %u", s.ready, s.leased,
		     s.delayed);

	/* The dead letters: the same kind, length and bytes. */
	static tq_dead_info dl[64];
	static uint8_t data[64][320];
	int k = tq_dead_list(q, dl, 64, data, sizeof data[0]);
	cr_assert_eq(k, (int)FR_N, "tq_dead_list: %d (%s)", k, k < 0 ? tq_strerror(k) : "count");
	bool seen[FR_N] = {false};
	for (int i = 0; i < k; i++) {
		int e = pl_find(b, dl[i].id);
		cr_assert(e >= 0 && (uint32_t)e < FR_N, "dead id %llu is not one of the failed",
			  (unsigned long long)dl[i].id);
		cr_expect(!seen[e], "id %llu listed twice", (unsigned long long)dl[i].id);
		seen[e] = true;
		tq_task as = {.id = dl[i].id, .kind = dl[i].kind, .len = dl[i].len, .data = data[i]};
		const char *d = pl_diff(&b->e[e], &as);
		cr_expect(d == NULL, "dead id %llu: its %s differ(s) (pushed kind %u len %u, dead kind %u len %u)",
			  (unsigned long long)dl[i].id, d ? d : "", b->e[e].kind, b->e[e].len, dl[i].kind, dl[i].len);
		cr_expect_eq(dl[i].attempts, FR_ATTEMPTS, "dead id %llu: attempts %u", (unsigned long long)dl[i].id,
			     dl[i].attempts);
		cr_expect_eq(dl[i].last_err, 42);
		cr_expect_str_eq(dl[i].last_msg, "payload lanes: failed on purpose");
	}

	/* Kicked back: delivered once more, attempt 1, the same bytes. */
	cr_assert_eq(tq_dead_kick(q, TQ_ALL), (int)FR_N);
	for (uint32_t e = 0; e < FR_N; e++)
		b->attempt[e] = 0;
	pl_drain(q, b);
	for (uint32_t e = 0; e < FR_N; e++) {
		cr_expect_eq(b->delivered[e], FR_ATTEMPTS + 1, "id %llu delivered %u times",
			     (unsigned long long)b->e[e].id, b->delivered[e]);
		cr_expect_eq(b->attempt[e], 1, "kicked id %llu: attempt %u", (unsigned long long)b->e[e].id,
			     b->attempt[e]);
	}
	pl_expect_all_acked(q, b);
	pl_expect_clean(q);
}

/* ===================================================== expired leases */

#define EX_N 20u

static const uint32_t ex_lens[] = {0, 300, 1, 64, 299, 8, 150, 7};

Test(payload_lanes, expired_lease_redelivers_bytes, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("expired", 64, 300, 50000000ull /* 50 ms */, 5, 0);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[EX_N];
	static tq_task stale[EX_N], fresh[EX_N];
	bool have[EX_N] = {false};
	uint32_t nfresh = 0;
	tq_task t[EX_N];
	tq_stats s;

	pl_specs_cycle(spec, EX_N, ex_lens, sizeof ex_lens / sizeof ex_lens[0], 0);
	cr_assert_eq(pl_push(q, b, spec, EX_N, 0), (int)EX_N);
	for (uint32_t got = 0; got < EX_N;) {
		int n = tq_take(q, stale + got, EX_N - got, 2 * PL_SEC);
		cr_assert(n > 0, "first take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			pl_note(b, &stale[got + (uint32_t)i]);
			cr_assert_eq(stale[got + (uint32_t)i].attempt, 1);
		}
		got += (uint32_t)n;
	}

	/* Not acked: the sweep takes the leases back after 50 ms. Each
	 * redelivery is extended at once, so that it stays ours. */
	uint64_t deadline = tqt_now_ms() + 20000;
	while (nfresh < EX_N) {
		cr_assert(tqt_now_ms() < deadline, "only %u of %u redelivered after the lease expired", nfresh, EX_N);
		int n = tq_take(q, t, EX_N, 200000000ull);
		if (n == TQ_ETIMEDOUT)
			continue;
		cr_assert(n > 0, "tq_take: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			uint32_t e = pl_note(b, &t[i]);
			cr_assert_lt(e, EX_N);
			cr_assert_geq(t[i].attempt, 2, "id %llu redelivered with attempt %u",
				      (unsigned long long)t[i].id, t[i].attempt);
			if (tq_touch(q, &t[i], 1, 60 * PL_SEC) != 0)
				continue; /* expired again already: it comes back */
			cr_assert(!have[e], "id %llu held twice", (unsigned long long)t[i].id);
			have[e] = true;
			fresh[nfresh++] = t[i];
		}
	}

	/* The byte ring is written over several times: the redeliveries are
	 * copies, not the lane's records. */
	pl_churn(q, q, b, 120, 250);
	for (uint32_t i = 0; i < EX_N; i++)
		pl_note(b, &fresh[i]);

	/* The first deliveries are lost: acking them acks nothing. */
	int rc = tq_ack(q, stale, EX_N);
	cr_assert_eq(rc, TQ_ELOST, "ack of the expired deliveries: %d (%s)", rc, tq_strerror(rc));
	rc = tq_ack(q, &stale[EX_N / 2], 1);
	cr_assert_eq(rc, TQ_ELOST, "ack of one expired delivery: %d (%s)", rc, tq_strerror(rc));
	rc = tq_touch(q, stale, 1, 0);
	cr_assert_eq(rc, TQ_ELOST, "touch of an expired delivery: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.leased, EX_N, "leased %u: the stale acks released a redelivery?", s.leased);
	pl_ack(q, b, fresh, EX_N);
	rc = tq_ack(q, stale, 1);
	cr_assert_eq(rc, TQ_ELOST, "stale ack after the redelivery's: %d (%s)", rc, tq_strerror(rc));

	pl_stats(q, &s);
	cr_expect_geq(s.total.expired, EX_N, "expired %llu", (unsigned long long)s.total.expired);
	cr_expect_geq(s.total.lost, EX_N + 3, "lost %llu", (unsigned long long)s.total.lost);
	pl_drain(q, b);
	pl_expect_all_acked(q, b);
	pl_expect_clean(q);
}

/* ==================================================== killed producer */

#define PK_A 20u /* the child's first batch, accepted */
#define PK_B 12u /* its second, killed at push.written */

static const uint32_t pk_lens_a[] = {0, 130, 5, 150, 64, 1, 96, 149};

static int child_push_killed(void *arg)
{
	struct pl_ctx *c = arg;
	struct pl_spec spec[PK_A];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	pl_specs_cycle(spec, PK_A, pk_lens_a, sizeof pk_lens_a / sizeof pk_lens_a[0], 0);
	int k = pl_push(q, c->book, spec, PK_A, 2 * PL_SEC);
	if (k != (int)PK_A)
		return pl_err(c, 3, "child push of the first batch", k);
	c->step = 1;
	/* The second batch: 40 bytes first (it fits after the first batch's
	 * records), then longer. */
	spec[0] = (struct pl_spec){TQ_KIND_JSON, 40};
	for (uint32_t i = 1; i < PK_B; i++)
		spec[i] = (struct pl_spec){TQ_KIND_STRING, 100 + i};
	tq_fault_arm("push.written", 1);
	k = pl_push(q, c->book, spec, PK_B, 2 * PL_SEC);
	return pl_err(c, 4, "tq_push returned (the point was not reached)", k);
}

Test(payload_lanes, producer_killed_mid_push, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("killedpush", 64, 300, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	tq_task t[64];
	tq_stats s;
	size_t size;

	c->book = b;
	pl_expect_killed(c, lf_spawn(child_push_killed, c), "push.written in a payload push");
	cr_assert_eq(c->step, 1, "the child's first batch: %s", c->msg);
	cr_assert_eq(b->n, PK_A);

	/* The child held one payload lane, with its first batch published and
	 * the second written beyond the tail. */
	const uint8_t *seg = lf_map(&size);
	int lane = -1;
	for (uint32_t l = 0; l < TQ_LANES; l++) {
		uint64_t tail = lf_lane_word(seg, l, offsetof(struct tq_lane, tail));
		if (l < TQ_INT_LANES) {
			cr_expect_eq(tail, 0, "integer lane %u has tail %llu", l, (unsigned long long)tail);
			continue;
		}
		if (tail == 0)
			continue;
		cr_assert_eq(lane, -1, "payload lanes %d and %u both pushed to", lane, l);
		cr_assert_eq(tail, PK_A, "lane %u tail %llu: the first batch only", l, (unsigned long long)tail);
		lane = (int)l;
	}
	cr_assert_neq(lane, -1, "no payload lane has the first batch");
	cr_assert_neq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, owner)), 0,
		      "the dead producer's lane %d is not held", lane);
	struct tq_cell last = pl_cell(seg, (uint32_t)lane, PK_A - 1), unpub = pl_cell(seg, (uint32_t)lane, PK_A);
	const struct tq_brec *r = pl_brec(seg, (uint32_t)lane, unpub.value);
	cr_expect_eq(unpub.value, last.value + pl_rec_size(b->e[PK_A - 1].len),
		     "the unpublished cell's record is not right after the last published one");
	cr_expect(r->len == 40 && r->kind == TQ_KIND_JSON,
		  "the unpublished first record of the killed batch: len %u kind %u (expected 40, JSON)", r->len,
		  r->kind);

	/* Only the first batch is there, in order. */
	uint32_t got = 0;
	while (got < PK_A) {
		int n = tq_take(q, t, 64, 2 * PL_SEC);
		cr_assert(n > 0, "take of the first batch: %d (%s)", n, tq_strerror(n));
		for (int i = 0; i < n; i++) {
			cr_assert_lt(got, PK_A, "more than the first batch: id %llu", (unsigned long long)t[i].id);
			cr_assert_eq(pl_note(b, &t[i]), got, "out of order");
			got++;
		}
		pl_ack(q, b, t, (size_t)n);
	}
	int rc = tq_take(q, t, 64, 0);
	cr_assert_eq(rc, TQ_EAGAIN, "something of the killed batch is takeable: %d", rc);
	pl_stats(q, &s);
	cr_assert_eq(s.total.pushed, PK_A, "pushed %llu: the killed batch counted", (unsigned long long)s.total.pushed);

	/* Recovery releases the lane; the batch stays unaccepted. */
	rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, owner)), 0,
		     "lane %d still held after recovery", lane);
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, tail)), PK_A);
	cr_assert_eq(s.total.pushed, PK_A, "pushed %llu after recovery", (unsigned long long)s.total.pushed);
	pl_expect_clean(q);

	/* The lane is not wedged: a new handle (the dead child's record, so
	 * its lane) pushes through it, over the killed batch's bytes, and
	 * around the ring many times. */
	tq_queue *p2 = pl_open2();
	struct pl_spec one = {TQ_KIND_STRING, 33};
	cr_assert_eq(pl_push(p2, b, &one, 1, 0), 1);
	cr_assert_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, tail)), PK_A + 1,
		     "the new handle did not push into the released lane %d", lane);
	uint32_t before = b->n - 1;
	pl_churn(p2, q, b, 600, 180);
	pl_drain(q, b);
	cr_expect_eq(lf_lane_word(seg, (uint32_t)lane, offsetof(struct tq_lane, tail)), PK_A + (b->n - before),
		     "not every later push went through lane %d", lane);
	pl_expect_all_acked(q, b);
	for (uint32_t i = 0; i < b->n; i++)
		cr_expect_eq(b->delivered[i], 1, "task %u delivered %u times", i, b->delivered[i]);
	munmap((void *)seg, size);
	pl_expect_clean(q);
}

/* ==================================================== killed takers */

#define TK_N 40u

static const uint32_t tk_lens[] = {150, 0, 1, 77, 8, 149, 120, 9, 33};

static int child_take_and_die(void *arg)
{
	struct pl_ctx *c = arg;
	tq_task t[TK_N];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int n = pl_child_take(c, q, t, (int)TK_N);
	if (n != (int)TK_N)
		return pl_err(c, 3, "child tq_take", n);
	c->step = 1;
	raise(SIGKILL); /* holding them all */
	return 4;
}

/* The tasks of entries [0, n) come back once each with attempt 2 and their
 * bytes; fillers pushed meanwhile reuse the ring first. */
static void tk_redeliver(tq_queue *q, struct pl_book *b, uint32_t n)
{
	pl_drain(q, b);
	for (uint32_t i = 0; i < n; i++) {
		cr_expect_eq(b->delivered[i], 1, "id %llu delivered %u times to the parent",
			     (unsigned long long)b->e[i].id, b->delivered[i]);
		cr_expect_eq(b->attempt[i], 2, "id %llu: attempt %u", (unsigned long long)b->e[i].id, b->attempt[i]);
	}
	for (uint32_t i = n; i < b->n; i++)
		cr_expect_eq(b->delivered[i], 1, "filler %u delivered %u times", i, b->delivered[i]);
}

Test(payload_lanes, taker_killed_holding_payloads, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("killedtaker", 256, 300, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[TK_N];
	tq_stats s;

	c->book = b;
	pl_specs_cycle(spec, TK_N, tk_lens, sizeof tk_lens / sizeof tk_lens[0], 0);
	cr_assert_eq(pl_push(q, b, spec, TK_N, 0), (int)TK_N);
	pl_expect_killed(c, lf_spawn(child_take_and_die, c), "a taker killed holding payloads");
	cr_assert_eq(c->step, 1, "the child: %s", c->msg);
	cr_assert_eq(c->taken, (int)TK_N);
	cr_assert_eq(c->bad, 0, "the child took %d bad deliveries; first: %s", c->bad, c->msg);
	for (uint32_t i = 0; i < TK_N; i++)
		cr_assert_eq(c->ids[i], b->e[i].id, "the child's delivery %u out of order", i);

	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, TK_N, "ready %u after recovery", s.ready);

	/* Fillers first, over the lane's old records: the returned tasks are
	 * copies. */
	struct pl_spec f[16];
	for (uint32_t i = 0; i < 2; i++) {
		uint32_t len = 200;
		pl_specs_cycle(f, 16, &len, 1, i);
		cr_assert_eq(pl_push(q, b, f, 16, 0), 16);
	}
	tk_redeliver(q, b, TK_N);

	pl_expect_all_acked(q, b);
	pl_stats(q, &s);
	cr_expect_eq(s.total.recovered, TK_N, "recovered %llu", (unsigned long long)s.total.recovered);
	cr_expect_eq(s.total.taken, b->n + TK_N, "taken %llu", (unsigned long long)s.total.taken);
	pl_expect_clean(q);
}

static int child_take_popped(void *arg)
{
	struct pl_ctx *c = arg;
	tq_task t[TK_N];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	c->step = 1;
	tq_fault_arm("take.popped", 1);
	int n = tq_take(q, t, TK_N, 2 * PL_SEC);
	c->taken = n;
	return pl_err(c, 4, "tq_take returned (the point was not reached)", n);
}

/* Killed between its claim and its lease record: recovery records the
 * claim from the claim word and returns its tasks, bytes and all. */
Test(payload_lanes, taker_killed_at_take_popped, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("killedpopped", 256, 300, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[TK_N];
	tq_stats s;

	c->book = b;
	pl_specs_cycle(spec, TK_N, tk_lens, sizeof tk_lens / sizeof tk_lens[0], 3);
	cr_assert_eq(pl_push(q, b, spec, TK_N, 0), (int)TK_N);
	pl_expect_killed(c, lf_spawn(child_take_popped, c), "take.popped in a payload take");
	cr_assert_eq(c->step, 1, "the child: %s", c->msg);

	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, TK_N, "ready %u after recovery (the dead claim lost?)", s.ready);
	/* One claim of all 40 (claims hold up to 64 tasks, in two fate words):
	 * its recovery moves tasks out of both words. */
	cr_assert_eq(s.total.recovered, TK_N, "recovered %llu: the dead claim of %u", (unsigned long long)s.total.recovered,
		     TK_N);

	struct pl_spec f[16];
	uint32_t len = 160;
	pl_specs_cycle(f, 16, &len, 1, 0);
	cr_assert_eq(pl_push(q, b, f, 16, 0), 16);
	cr_assert_eq(pl_push(q, b, f, 16, 0), 16);
	pl_drain(q, b);
	for (uint32_t i = 0; i < TK_N; i++) {
		cr_expect_eq(b->delivered[i], 1, "id %llu delivered %u times", (unsigned long long)b->e[i].id,
			     b->delivered[i]);
		cr_expect_eq(b->attempt[i], 2, "id %llu (entry %u): attempt %u",
			     (unsigned long long)b->e[i].id, i, b->attempt[i]);
	}
	pl_expect_all_acked(q, b);
	pl_expect_clean(q);
}

/* ============================================ move.claimed, with bytes */

#define MC_N 40u
#define MC_HIT 2 /* the second move-out: one moved whole, one half */

static int child_fail_armed(void *arg)
{
	struct pl_ctx *c = arg;
	tq_task t[MC_N];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int n = pl_child_take(c, q, t, (int)MC_N);
	if (n != (int)MC_N)
		return pl_err(c, 3, "child tq_take", n);
	c->step = 1;
	tq_fault_arm("move.claimed", MC_HIT);
	int rc = tq_fail(q, t, 4, 7, "payload move-out");
	return pl_err(c, 4, "tq_fail returned (the point was not reached)", rc);
}

Test(payload_lanes, move_claimed_repair_keeps_bytes, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("mvclaimed", 256, 300, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[MC_N];
	tq_stats s;

	c->book = b;
	pl_specs_cycle(spec, MC_N, tk_lens, sizeof tk_lens / sizeof tk_lens[0], 5);
	cr_assert_eq(pl_push(q, b, spec, MC_N, 0), (int)MC_N);
	pl_expect_killed(c, lf_spawn(child_fail_armed, c), "move.claimed in a payload tq_fail");
	cr_assert_eq(c->step, 1, "the child: %s", c->msg);
	cr_assert_eq(c->bad, 0, "the child took %d bad deliveries; first: %s", c->bad, c->msg);

	/* The journal is repaired (its copy made from the lane's record),
	 * then the dead child's other tasks are returned. */
	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready + s.delayed, MC_N, "ready %u + delayed %u after recovery (a task lost?)", s.ready,
		     s.delayed);

	struct pl_spec f[16];
	for (uint32_t i = 0; i < 2; i++) {
		uint32_t len = 200;
		pl_specs_cycle(f, 16, &len, 1, i);
		cr_assert_eq(pl_push(q, b, f, 16, 0), 16);
	}
	tk_redeliver(q, b, MC_N);

	pl_expect_all_acked(q, b);
	pl_stats(q, &s);
	cr_expect_eq(s.total.failed, MC_HIT, "failed %llu: one moved out, one claimed by the journal",
		     (unsigned long long)s.total.failed);
	cr_expect_eq(s.total.recovered, MC_N - MC_HIT, "recovered %llu", (unsigned long long)s.total.recovered);
	cr_expect_eq(s.total.dead, 0);
	pl_expect_clean(q);
}

/* ========================================= lane.settle.mid, with bytes */

#define SM_N 100u

static int child_ack_settle_armed(void *arg)
{
	struct pl_ctx *c = arg;
	tq_task a[32], d[10];
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	int n = pl_child_take(c, q, a, 32); /* one claim of 32 */
	if (n != 32)
		return pl_err(c, 3, "child tq_take 32", n);
	n = pl_child_take(c, q, d, 10); /* a second claim, left leased */
	if (n != 10)
		return pl_err(c, 3, "child tq_take 10", n);
	c->step = 1;
	tq_fault_arm("lane.settle.mid", 1);
	int rc = tq_ack(q, a, 32);
	return pl_err(c, 4, "tq_ack returned (the point was not reached)", rc);
}

Test(payload_lanes, settle_mid_lane_reusable, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("settlemid", 256, 100, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	struct pl_spec spec[50];
	static const uint32_t lens[] = {100, 0, 37, 99, 8, 64};
	tq_stats s;
	size_t size;

	c->book = b;
	pl_specs_cycle(spec, 50, lens, 6, 0);
	cr_assert_eq(pl_push(q, b, spec, 50, 0), 50);
	pl_specs_cycle(spec, 50, lens, 6, 1);
	cr_assert_eq(pl_push(q, b, spec, 50, 0), 50);
	pl_expect_killed(c, lf_spawn(child_ack_settle_armed, c), "lane.settle.mid in a payload tq_ack");
	cr_assert_eq(c->step, 1, "the child: %s", c->msg);
	cr_assert_eq(c->bad, 0, "the child took %d bad deliveries; first: %s", c->bad, c->msg);
	cr_assert_eq(c->nids, 42);
	for (uint32_t i = 0; i < 42; i++)
		cr_assert_eq(c->ids[i], b->e[i].id, "the child's delivery %u out of order", i);

	int rc = tq_recover(q);
	cr_assert(rc == 0 || rc == 1, "tq_recover: %d (%s)", rc, tq_strerror(rc));
	pl_stats(q, &s);
	cr_assert_eq(s.recoveries, 1, "recoveries %u", s.recoveries);
	cr_assert_eq(s.leased, 0, "leased %u after recovery", s.leased);
	cr_assert_eq(s.ready, SM_N - 32, "ready %u: the 32 acked are done, the rest ready", s.ready);

	pl_drain(q, b);
	for (uint32_t i = 0; i < SM_N; i++) {
		if (i < 32) {
			cr_expect_eq(b->delivered[i], 0, "id %llu was acked (its claim's last bit set) but delivered "
				     "again", (unsigned long long)b->e[i].id);
			b->delivered[i]++; /* to the child, */
			b->acked[i]++;     /* acked by it */
		} else {
			cr_expect_eq(b->delivered[i], 1, "id %llu delivered %u times", (unsigned long long)b->e[i].id,
				     b->delivered[i]);
			cr_expect_eq(b->attempt[i], i < 42 ? 2 : 1, "id %llu: attempt %u",
				     (unsigned long long)b->e[i].id, b->attempt[i]);
		}
	}
	pl_expect_all_acked(q, b);
	pl_expect_clean(q);

	/* The settled claim's bytes are reused: the lane's byte ring goes
	 * around many times, its reuse point moving past the dead settle. */
	const uint8_t *seg = lf_map(&size);
	uint64_t lb = lf_hdr64(seg, offsetof(struct tq_hdr, lane_bytes));
	uint32_t before = b->n;
	pl_churn(q, q, b, (uint32_t)(4 * lb / pl_rec_size(100)), 100);
	pl_drain(q, b);
	for (uint32_t i = before; i < b->n; i++)
		cr_expect_eq(b->delivered[i], 1, "refill: task %u delivered %u times", i, b->delivered[i]);
	pl_expect_all_acked(q, b);
	munmap((void *)seg, size);
	pl_expect_clean(q);
}

/* ====================================================== byte ring full */

#define BF_CAP 2000u
#define BF_LEN 4000u

/* Waits until the parent's handle sleeps for room, then takes and acks
 * one task (the oldest), which frees its record's bytes. */
static int child_free_room(void *arg)
{
	struct pl_ctx *c = arg;
	tq_proc_info pi[8];
	tq_task t;
	tq_queue *q = lf_child_open(c->msg, sizeof c->msg);
	if (!q)
		return 2;
	uint64_t deadline = tqt_now_ms() + 10000;
	for (;;) {
		int n = tq_procs(q, pi, 8);
		if (n < 0)
			return pl_err(c, 3, "tq_procs", n);
		bool asleep = false;
		for (int i = 0; i < n; i++)
			asleep |= pi[i].pid == lf_parent && pi[i].waiting == 2;
		if (asleep)
			break;
		if (tqt_now_ms() > deadline)
			return pl_err(c, 4, "the parent never slept waiting for room", 0);
		tqt_sleep_ms(1);
	}
	c->step = 1;
	int k = pl_child_take(c, q, &t, 1);
	if (k != 1)
		return pl_err(c, 5, "child tq_take", k);
	if (c->bad)
		return 6;
	int rc = tq_ack(q, &t, 1);
	if (rc != 0)
		return pl_err(c, 7, "child tq_ack", rc);
	c->step = 2;
	tq_close(q);
	return 0;
}

Test(payload_lanes, byte_ring_full_waits, .timeout = 60, .fini = lf_fini)
{
	tq_queue *q = pl_create("bytesfull", BF_CAP, BF_LEN, 60 * PL_SEC, 5, 0);
	struct pl_ctx *c = tqt_shared(sizeof *c);
	struct pl_book *b = pl_book_new();
	struct pl_spec big = {TQ_KIND_STRING, BF_LEN};
	tq_task t[8];
	tq_stats s;
	size_t size;

	c->book = b;
	const uint8_t *seg = lf_map(&size);
	uint64_t lb = lf_hdr64(seg, offsetof(struct tq_hdr, lane_bytes));
	cr_assert_eq(lb, 32768, "lane_bytes %llu", (unsigned long long)lb);
	uint32_t fit = (uint32_t)(lb / pl_rec_size(BF_LEN)); /* 8 */

	/* 1. One handle pushes until its lane's bytes run out: long before
	 * the capacity. */
	int rc;
	uint32_t pushed = 0;
	while ((rc = pl_push(q, b, &big, 1, 0)) == 1) {
		pushed++;
		big.kind = big.kind == TQ_KIND_STRING ? TQ_KIND_JSON : TQ_KIND_STRING;
		cr_assert_leq(pushed, BF_CAP);
	}
	cr_assert_eq(rc, TQ_EAGAIN, "tq_push on a full byte ring: %d (%s)", rc, tq_strerror(rc));
	cr_assert_eq(pushed, fit, "%u records of %u bytes went into a ring of %llu", pushed, pl_rec_size(BF_LEN),
		     (unsigned long long)lb);
	cr_assert_lt(pushed, BF_CAP);
	pl_stats(q, &s);
	cr_assert_eq(s.ready, pushed, "ready %u", s.ready);
	cr_assert_eq(s.free_slots - s.dead_capacity - s.delay_capacity, BF_CAP - pushed, "free %u: the queue is not full of tasks", s.free_slots);

	/* 2. With a timeout: TQ_ETIMEDOUT when it passes. */
	uint64_t t0 = tqt_now_ms();
	rc = pl_push(q, b, &big, 1, 50000000ull);
	cr_assert_eq(rc, TQ_ETIMEDOUT, "timed push on a full byte ring: %d (%s)", rc, tq_strerror(rc));
	cr_expect_geq(tqt_now_ms() - t0, 49, "returned after %llu ms of a 50 ms timeout",
		      (unsigned long long)(tqt_now_ms() - t0));

	/* 3. Three taken and acked: room for three more records, no more. */
	int n = tq_take(q, t, 3, 0);
	cr_assert_eq(n, 3, "tq_take: %d (%s)", n, tq_strerror(n));
	for (int i = 0; i < n; i++)
		cr_assert_eq(pl_note(b, &t[i]), (uint32_t)i);
	pl_ack(q, b, t, 3);
	uint32_t again = 0;
	while ((rc = pl_push(q, b, &big, 1, 0)) == 1)
		again++;
	cr_assert_eq(rc, TQ_EAGAIN, "push after the refill: %d (%s)", rc, tq_strerror(rc));
	cr_assert_eq(again, 3, "%u records fitted in the room of the 3 acked", again);

	/* 4. A push that sleeps for room is woken when bytes are freed. */
	pid_t kid = lf_spawn(child_free_room, c);
	t0 = tqt_now_ms();
	rc = pl_push(q, b, &big, 1, 15 * PL_SEC);
	cr_assert_eq(rc, 1, "a waiting push when a task was acked: %d (%s) after %llu ms, child step %d '%s'", rc,
		     rc < 0 ? tq_strerror(rc) : "count", (unsigned long long)(tqt_now_ms() - t0), c->step, c->msg);
	pl_expect_exit0(c, kid, "the child that frees room");
	cr_assert_eq(c->nids, 1);
	cr_assert_eq(c->ids[0], b->e[3].id, "the child took id %llu, not the oldest", (unsigned long long)c->ids[0]);
	b->delivered[3]++;
	b->acked[3]++;

	/* 5. Full is per lane, for payloads only: integers and another
	 * handle's payloads still go in. */
	cr_assert_eq(pl_push(q, b, &big, 1, 0), TQ_EAGAIN);
	cr_assert_eq(pl_push_int(q, b, 0), 1, "an integer push with the payload lane full");
	tq_queue *q2 = pl_open2();
	cr_assert_eq(pl_push(q2, b, &big, 1, 0), 1, "another handle's payload push");

	/* 6. Nothing lost. */
	pl_drain(q, b);
	for (uint32_t i = 0; i < b->n; i++)
		cr_expect_eq(b->delivered[i], 1, "task %u (id %llu) delivered %u times", i,
			     (unsigned long long)b->e[i].id, b->delivered[i]);
	pl_expect_all_acked(q, b);
	munmap((void *)seg, size);
	pl_expect_clean(q);
}

/* ========================================= one producer, lanes moved */

/*
 * A producer's payload lane is full of bytes that a consumer holds (all
 * its tasks claimed, none acked): its next payload goes into the payload
 * lane of another pair (src/lane.c, acquire_lane), and its integers must
 * follow it there. Its next payload and then its next integer must be
 * taken in that order (docs/design.md, 17: "keeps one producer's tasks in
 * order whatever their kinds"; include/taskq.h: oldest first).
 */
Test(payload_lanes, one_producer_order_across_lane_move, .timeout = 60, .fini = lf_fini)
{
	tq_queue *p = pl_create("lanemove", 64, 300, 60 * PL_SEC, 5, 0);
	tq_queue *c = pl_open2();
	struct pl_book *b = pl_book_new();
	struct pl_spec big = {TQ_KIND_STRING, 300};
	tq_task held[64], t[4];
	size_t size;
	int rc;

	/* 1. The producer fills its payload lane's bytes. */
	uint32_t n1 = 0;
	while ((rc = pl_push(p, b, &big, 1, 0)) == 1)
		n1++;
	cr_assert_eq(rc, TQ_EAGAIN, "%d (%s)", rc, tq_strerror(rc));
	cr_assert(n1 > 0 && n1 < 64, "%u records", n1);

	/* 2. The consumer takes them all and holds them. */
	for (uint32_t got = 0; got < n1;) {
		int k = tq_take(c, held + got, n1 - got, 2 * PL_SEC);
		cr_assert(k > 0, "%d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++)
			cr_assert_eq(pl_note(b, &held[got + (uint32_t)i]), got + (uint32_t)i);
		got += (uint32_t)k;
	}

	/* 3. A payload (into another lane), then an integer. */
	const uint8_t *seg = lf_map(&size);
	uint32_t lanes_before = 0;
	for (uint32_t l = TQ_INT_LANES; l < TQ_LANES; l++)
		lanes_before += lf_lane_word(seg, l, offsetof(struct tq_lane, tail)) != 0;
	cr_assert_eq(lanes_before, 1);
	big.kind = TQ_KIND_JSON;
	cr_assert_eq(pl_push(p, b, &big, 1, 0), 1, "a payload push with the lane drained but full");
	uint32_t lanes_after = 0;
	for (uint32_t l = TQ_INT_LANES; l < TQ_LANES; l++)
		lanes_after += lf_lane_word(seg, l, offsetof(struct tq_lane, tail)) != 0;
	cr_assert_eq(lanes_after, 2, "the payload did not move to another lane: the scenario is not set up");
	cr_assert_eq(pl_push_int(p, b, 0), 1);
	uint64_t id_payload = b->e[n1].id, id_int = b->e[n1 + 1].id;
	cr_assert_lt(id_payload, id_int);

	/* 4. Taken in push order: the payload first. */
	uint64_t order[2];
	uint32_t got = 0;
	uint64_t deadline = tqt_now_ms() + 5000;
	while (got < 2 && tqt_now_ms() < deadline) {
		int k = tq_take(c, t, 2 - got, 100000000ull);
		if (k == TQ_ETIMEDOUT)
			continue;
		cr_assert(k > 0, "%d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++) {
			pl_note(b, &t[i]);
			order[got++] = t[i].id;
		}
		pl_ack(c, b, t, (size_t)k);
	}
	pl_ack(c, b, held, n1);
	cr_assert_eq(got, 2);
	cr_expect(order[0] == id_payload && order[1] == id_int,
		  "one producer's tasks out of push order: pushed payload id %llu then integer id %llu, "
		  "taken %llu then %llu",
		  (unsigned long long)id_payload, (unsigned long long)id_int, (unsigned long long)order[0],
		  (unsigned long long)order[1]);
	pl_drain(c, b);
	pl_expect_all_acked(p, b);
	munmap((void *)seg, size);
	pl_expect_clean(p);
}

/* One producer's integers and payloads in its pair of lanes and a mixed
 * batch (slots, the ready ring) in between, with another producer's task
 * taking an id in the middle (so the ids in one lane have gaps): a taker
 * takes the first producer's tasks in its push order, across the two lanes
 * of its pair and the ring, however many it asks for at once. */
Test(payload_lanes, one_producer_order_across_ring_and_lanes, .timeout = 60, .fini = lf_fini)
{
	tq_queue *p = pl_create("ringorder", 1000, 300, 60 * PL_SEC, 5, 0);
	tq_queue *c = pl_open2();
	tq_queue *p2 = NULL;
	cr_assert_eq(tq_open(lf_qname, &p2), 0);
	struct pl_book *b = pl_book_new();
	struct pl_spec small = {TQ_KIND_STRING, 40};
	uint8_t buf[50];
	tq_task t[64];

	for (uint32_t round = 0; round < 50; round++) {
		uint32_t first = b->n;
		cr_assert_eq(pl_push_int(p, b, 0), 1);
		/* The other producer's task: an id between the first's. */
		cr_assert_eq(pl_push_int(p2, b, 0), 1);
		uint64_t other = b->e[b->n - 1].id;
		/* A mixed batch goes through slots and the ready ring. */
		tq_task mixed[2];
		memset(mixed, 0, sizeof mixed);
		uint64_t seed = b->next_seed;
		mixed[0].kind = TQ_KIND_INT;
		mixed[0].value = PL_BASE + seed;
		pl_fill(buf, seed + 1, sizeof buf);
		mixed[1].kind = TQ_KIND_JSON;
		mixed[1].data = buf;
		mixed[1].len = sizeof buf;
		cr_assert_eq(tq_push(p, mixed, 2, 0), 2);
		b->e[b->n++] = (struct pl_exp){mixed[0].id, seed, 0, TQ_KIND_INT, 0};
		b->e[b->n++] = (struct pl_exp){mixed[1].id, seed + 1, sizeof buf, TQ_KIND_JSON, 0};
		b->next_seed += 2;
		cr_assert_eq(pl_push(p, b, &small, 1, 0), 1);
		cr_assert_eq(pl_push_int(p, b, 0), 1);
		cr_assert_eq(pl_push(p, b, &small, 1, 0), 1);
		uint32_t n = b->n - first;
		for (uint32_t i = first + 1; i < b->n; i++)
			cr_assert_lt(b->e[i - 1].id, b->e[i].id);

		/* Asking for all at once (round 0 mod 3), two, or one at a time. */
		uint32_t ask = round % 3 == 0 ? 64 : round % 3 == 1 ? 2 : 1;
		uint32_t got = 0;
		uint64_t last = 0, deadline = tqt_now_ms() + 5000;
		while (got < n && tqt_now_ms() < deadline) {
			int k = tq_take(c, t, ask, 100000000ull);
			if (k == TQ_ETIMEDOUT)
				continue;
			cr_assert(k > 0, "%d (%s)", k, tq_strerror(k));
			for (int i = 0; i < k; i++) {
				pl_note(b, &t[i]);
				got++;
				if (t[i].id == other)
					continue; /* another producer's: no order against these */
				cr_assert_gt(t[i].id, last, "round %u (asking %u): id %llu taken after id %llu", round,
					     ask, (unsigned long long)t[i].id, (unsigned long long)last);
				last = t[i].id;
			}
			pl_ack(c, b, t, (size_t)k);
		}
		cr_assert_eq(got, n, "round %u: %u of %u taken", round, got, n);
	}
	tq_close(p2);
	pl_expect_all_acked(p, b);
	pl_expect_clean(p);
}
