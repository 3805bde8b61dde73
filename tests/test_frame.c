/* SPDX-License-Identifier: MIT */
/*
 * test_frame.c - the bridge's message framing, version 2 (tools/frame.h):
 * a round trip of every task kind with payload lengths and values around
 * the varint boundaries and ids that go up, jump and go down; the exact
 * bytes of small messages; and each way tqf_decode refuses a message, with
 * the offset and the reason it names. Pure functions: no queue, no I/O.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "taskq.h"

TestSuite(frame, .timeout = 30);

#define MAXP 1000u /* max_payload given to tqf_decode unless a test says */

/* tqf_decode's reasons (frame.c) */
#define WHY_SHORT "shorter than the 16-byte header"
#define WHY_MAGIC "not a taskq bridge message (magic)"
#define WHY_VERSION "unknown framing version"
#define WHY_COUNT "more tasks than a message may hold"
#define WHY_FIRST_ID "a first id in a message with no task"
#define WHY_TASK_SHORT "a task cut short"
#define WHY_KIND "unknown task kind"
#define WHY_FIRST_DELTA "the first task's id is not the header's"
#define WHY_VARINT_SHORT "a varint cut short"
#define WHY_VARINT_LONG "a varint longer than 10 bytes"
#define WHY_VARINT_64 "a varint over 64 bits"
#define WHY_VARINT_MIN "a varint that is not minimal"
#define WHY_PAYLOAD_MAX "a payload larger than the queue's max_payload"
#define WHY_PAYLOAD_SHORT "a payload cut short"
#define WHY_TRAILING "bytes after the last task"

static tq_task int_task(uint64_t id, uint64_t value)
{
	tq_task t;
	memset(&t, 0, sizeof t);
	t.kind = TQ_KIND_INT;
	t.id = id;
	t.value = value;
	return t;
}

static tq_task bytes_task(uint16_t kind, uint64_t id, const void *data, uint32_t len)
{
	tq_task t;
	memset(&t, 0, sizeof t);
	t.kind = kind;
	t.id = id;
	t.data = data;
	t.len = len;
	return t;
}

/* The size of x as a minimal LEB128 varint, counted here independently of
 * frame.c. */
static size_t vlen(uint64_t x)
{
	size_t n = 1;
	while (x >>= 7)
		n++;
	return n;
}

/* Zigzag of the signed difference cur - prev, as the layout says. */
static uint64_t zz(uint64_t cur, uint64_t prev)
{
	int64_t d = (int64_t)(cur - prev);
	return d >= 0 ? (uint64_t)d << 1 : (((uint64_t)-(d + 1)) << 1) | 1;
}

/* A task's exact size in a message after a task with id prev. */
static size_t task_size(const tq_task *t, uint64_t prev)
{
	size_t n = 1 + vlen(zz(t->id, prev));
	if (t->kind == TQ_KIND_INT)
		return n + vlen(t->value);
	return n + vlen(t->len) + t->len;
}

/* Encodes n tasks into buf (of size cap, first filled with 0xa5 so that
 * bytes tqf_put did not write show); returns the message's length. */
static size_t encode(uint8_t *buf, size_t cap, const tq_task *t, size_t n)
{
	size_t bound = TQF_HEADER;
	for (size_t i = 0; i < n; i++)
		bound += tqf_task_bound(&t[i]);
	cr_assert_leq(bound, cap, "test buffer too small: %zu > %zu", bound, cap);
	memset(buf, 0xa5, cap);
	uint64_t first = n ? t[0].id : 0, prev = first;
	tqf_header(buf, (uint32_t)n, first);
	size_t off = TQF_HEADER;
	for (size_t i = 0; i < n; i++) {
		size_t want = task_size(&t[i], prev);
		cr_assert_leq(want, tqf_task_bound(&t[i]), "task %zu: size %zu over its bound", i, want);
		size_t next = tqf_put(buf, off, &t[i], &prev);
		cr_assert_eq(next, off + want, "tqf_put of task %zu: %zu bytes, want %zu", i, next - off, want);
		cr_assert_eq(prev, t[i].id, "tqf_put of task %zu left prev %llu", i, (unsigned long long)prev);
		off = next;
	}
	cr_assert_leq(off, bound);
	return off;
}

/* Asserts that tqf_decode refuses buf[0..len) at offset want_at for the
 * reason want_why. */
static void expect_bad(const uint8_t *buf, size_t len, size_t max, uint32_t max_payload, size_t want_at,
		       const char *want_why)
{
	tq_task out[8];
	const char *why = NULL;
	size_t at = (size_t)-1;
	cr_assert_leq(max, 8);
	int rc = tqf_decode(buf, len, out, max, max_payload, &why, &at);
	cr_assert_eq(rc, -1, "tqf_decode accepted a bad message (rc %d), want \"%s\" at %zu", rc, want_why, want_at);
	cr_assert_not_null(why);
	cr_assert_eq(at, want_at, "at %zu, want %zu (%s)", at, want_at, why);
	cr_assert_str_eq(why, want_why, "at %zu", at);
}

static void expect_good(const uint8_t *buf, size_t len, size_t max, uint32_t max_payload, int want)
{
	tq_task out[8];
	const char *why = NULL;
	size_t at = 0;
	cr_assert_leq(max, 8);
	int rc = tqf_decode(buf, len, out, max, max_payload, &why, &at);
	cr_assert_eq(rc, want, "rc %d, want %d (%s at %zu)", rc, want, rc < 0 ? why : "-", at);
}

/*
 * The good two-task message of exact_bytes: an integer task (id 7, value
 * 42) at 16, a JSON task (id 8, {"a":1}) at 19 (kind 19, delta 20, len 21,
 * payload 22..28); 29 bytes.
 */
static const char json7[] = "{\"a\":1}";
static size_t two_tasks(uint8_t *buf, size_t cap)
{
	tq_task t[2] = {int_task(7, 42), bytes_task(TQ_KIND_JSON, 8, json7, 7)};
	size_t len = encode(buf, cap, t, 2);
	cr_assert_eq(len, 29);
	expect_good(buf, len, 2, MAXP, 2);
	return len;
}

static void put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A message of one integer task whose value is the varint v[0..n)
 * (written by hand, not by tqf_put); the value starts at 18. */
static size_t int_with_raw_value(uint8_t *buf, const uint8_t *v, size_t n)
{
	tqf_header(buf, 1, 5);
	buf[16] = TQ_KIND_INT;
	buf[17] = 0; /* delta */
	memcpy(buf + 18, v, n);
	return 18 + n;
}

Test(frame, task_bound)
{
	tq_task i = int_task(UINT64_MAX, UINT64_MAX);
	cr_assert_eq(tqf_task_bound(&i), TQF_TASK_MAX_OVERHEAD);
	i.len = 1000; /* an integer task's len is not written */
	cr_assert_eq(tqf_task_bound(&i), TQF_TASK_MAX_OVERHEAD);
	/* the worst case, a delta and a value of 10 bytes each, fits */
	uint8_t buf[TQF_HEADER + 2 * TQF_TASK_MAX_OVERHEAD];
	tq_task t[2] = {int_task(0, 1), int_task((uint64_t)1 << 63, UINT64_MAX)};
	size_t len = encode(buf, sizeof buf, t, 2);
	cr_assert_eq(len, TQF_HEADER + 3 + TQF_TASK_MAX_OVERHEAD);
	static const uint32_t lens[] = {0, 1, 127, 128, 300};
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		tq_task s = bytes_task(TQ_KIND_STRING, 1, "", lens[k]);
		tq_task j = bytes_task(TQ_KIND_JSON, 1, "", lens[k]);
		cr_assert_eq(tqf_task_bound(&s), TQF_TASK_MAX_OVERHEAD + lens[k], "len %u", lens[k]);
		cr_assert_eq(tqf_task_bound(&j), TQF_TASK_MAX_OVERHEAD + lens[k], "len %u", lens[k]);
	}
}

Test(frame, round_trip_mixed)
{
	static const uint32_t lens[] = {0, 1, 7, 127, 128, 300};
	static const uint64_t values[] = {0, 127, 128, (uint64_t)1 << 32, UINT64_MAX};
	/* up by 1, jumps, down (negative deltas), the extremes and a wrap */
	static const uint64_t ids[] = {
		1000, 1001, 1002, 1003, (uint64_t)1 << 40, ((uint64_t)1 << 40) + 1, 999, 998, 0,
		UINT64_MAX, 0, 1, 64, 63, 63 + 64, 63 + 64 + 8192, 5, UINT64_MAX - 1, (uint64_t)1 << 63,
		((uint64_t)1 << 63) - 1, 7, 8,
	};
	enum { NL = sizeof lens / sizeof lens[0], NV = sizeof values / sizeof values[0] };
	enum { N = 2 * NL + 2 * NV, NI = sizeof ids / sizeof ids[0] };
	_Static_assert(NI == N, "one id per task");
	static uint8_t src[2][NL][300];
	tq_task in[N];
	size_t n = 0, bound = TQF_HEADER;

	for (size_t k = 0; k < NL; k++) {
		for (size_t b = 0; b < lens[k]; b++) {
			src[0][k][b] = (uint8_t)(b * 31 + k + 1);
			src[1][k][b] = (uint8_t)('{' + (b + k) % 3);
		}
	}
	/* interleaved: string, int, JSON, int, ... while the integers last */
	for (size_t k = 0, v = 0; k < NL; k++) {
		in[n] = bytes_task(TQ_KIND_STRING, ids[n], src[0][k], lens[k]), n++;
		if (v < 2 * NV)
			in[n] = int_task(ids[n], values[v++ % NV]), n++;
		in[n] = bytes_task(TQ_KIND_JSON, ids[n], src[1][k], lens[k]), n++;
		if (v < 2 * NV)
			in[n] = int_task(ids[n], values[v++ % NV]), n++;
	}
	cr_assert_eq(n, N);
	for (size_t i = 0; i < n; i++)
		bound += tqf_task_bound(&in[i]);

	uint8_t *buf = malloc(bound);
	cr_assert_not_null(buf);
	size_t len = encode(buf, bound, in, n);
	cr_assert_leq(len, bound);
	cr_assert_eq(buf[TQF_HEADER + 1], 0, "the first delta");

	tq_task out[N + 1];
	memset(out, 0x5a, sizeof out);
	const char *why = NULL;
	size_t at = 0;
	int rc = tqf_decode(buf, len, out, N + 1, 300, &why, &at);
	cr_assert_eq(rc, (int)n, "decode: rc %d (%s at %zu)", rc, rc < 0 ? why : "-", at);

	for (size_t i = 0; i < n; i++) {
		const tq_task *a = &in[i], *d = &out[i];
		cr_assert_eq(d->id, a->id, "task %zu id %llu, want %llu", i, (unsigned long long)d->id,
			     (unsigned long long)a->id);
		cr_assert_eq(d->kind, a->kind, "task %zu kind", i);
		cr_assert_eq(d->attempt, 0, "task %zu attempt", i);
		cr_assert_eq(d->enqueued_ns, 0, "task %zu enqueued_ns", i);
		if (a->kind == TQ_KIND_INT) {
			cr_assert_eq(d->value, a->value, "task %zu value", i);
			cr_assert_eq(d->len, 0, "task %zu len", i);
			cr_assert_null(d->data, "task %zu data", i);
			continue;
		}
		cr_assert_eq(d->value, 0, "task %zu value", i);
		cr_assert_eq(d->len, a->len, "task %zu len", i);
		const uint8_t *p = d->data;
		cr_assert_not_null(p, "task %zu data", i);
		cr_assert(p >= buf + TQF_HEADER && p + d->len <= buf + len, "task %zu data outside the buffer", i);
		if (a->len)
			cr_assert_eq(memcmp(p, a->data, a->len), 0, "task %zu bytes", i);
	}
	/* nothing written past the count */
	uint8_t guard[sizeof(tq_task)];
	memset(guard, 0x5a, sizeof guard);
	cr_assert_eq(memcmp(&out[n], guard, sizeof guard), 0);

	/* a max_payload one under the 300-byte payload is refused */
	rc = tqf_decode(buf, len, out, N, 299, &why, &at);
	cr_assert_eq(rc, -1);
	cr_assert_str_eq(why, WHY_PAYLOAD_MAX);
	free(buf);
}

Test(frame, exact_bytes)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	static const uint8_t want[] = {
		'T', 'Q', 'B', 2, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0,      /* header: count 2, first id 7 */
		1, 0, 42,                                                  /* int, delta 0, value 42 */
		3, 2, 7, '{', '"', 'a', '"', ':', '1', '}',                /* JSON, delta +1, len 7 */
	};
	cr_assert_eq(len, sizeof want);
	cr_assert_eq(memcmp(buf, want, sizeof want), 0, "the framing's bytes changed");
	tq_task out[2];
	const char *why = NULL;
	size_t at = 0;
	cr_assert_eq(tqf_decode(buf, len, out, 2, MAXP, &why, &at), 2);
	cr_assert_eq(out[0].kind, TQ_KIND_INT);
	cr_assert_eq(out[1].kind, TQ_KIND_JSON);
	cr_assert_eq(out[0].id, 7);
	cr_assert_eq(out[0].value, 42);
	cr_assert_eq(out[1].id, 8);
	cr_assert_eq(out[1].len, 7);
	cr_assert_eq((const uint8_t *)out[1].data, buf + 22);
}

Test(frame, exact_bytes_varints)
{
	/* multi-byte varints, a negative delta (zigzag odd), a large jump and
	 * a first id above 32 bits */
	tq_task t[4] = {int_task(0x123456789aull, 128), bytes_task(TQ_KIND_STRING, 0x1234567899ull, "", 0),
			int_task(0x1234567899ull + 64, UINT64_MAX), int_task(0x1234567899ull, (uint64_t)1 << 32)};
	uint8_t buf[TQF_HEADER + 4 * TQF_TASK_MAX_OVERHEAD];
	size_t len = encode(buf, sizeof buf, t, 4);
	static const uint8_t want[] = {
		'T', 'Q', 'B', 2, 4, 0, 0, 0, 0x9a, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, /* header */
		1, 0, 0x80, 0x01,                                                /* int, 0, 128 */
		2, 0x01, 0x00,                                                   /* string, -1, len 0 */
		1, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* +64, max */
		1, 0x7f, 0x80, 0x80, 0x80, 0x80, 0x10,                           /* -64, 2^32 */
	};
	cr_assert_eq(len, sizeof want);
	cr_assert_eq(memcmp(buf, want, sizeof want), 0, "the framing's bytes changed");
	expect_good(buf, len, 4, 0, 4);
}

Test(frame, count_zero)
{
	uint8_t buf[TQF_HEADER];
	tqf_header(buf, 0, 0);
	static const uint8_t want[TQF_HEADER] = {'T', 'Q', 'B', 2};
	cr_assert_eq(memcmp(buf, want, sizeof want), 0);
	tq_task out[1];
	const char *why = NULL;
	size_t at = 0;
	cr_assert_eq(tqf_decode(buf, sizeof buf, out, 1, MAXP, &why, &at), 0);
	cr_assert_eq(tqf_decode(buf, sizeof buf, NULL, 0, 0, &why, &at), 0, "an empty message needs no room");
}

Test(frame, max_tasks)
{
	/* exactly TQF_MAX_TASKS is allowed; one more is refused */
	size_t n = TQF_MAX_TASKS, cap = TQF_HEADER + 3 * n + 1;
	uint8_t *buf = malloc(cap);
	tq_task *out = malloc((n + 1) * sizeof *out);
	cr_assert(buf && out);
	tqf_header(buf, (uint32_t)n, 1);
	uint64_t prev = 1;
	size_t off = TQF_HEADER;
	for (size_t i = 0; i < n; i++) {
		tq_task t = int_task(1 + i, i & 0x7f);
		off = tqf_put(buf, off, &t, &prev);
	}
	cr_assert_eq(off, TQF_HEADER + 3 * n);
	const char *why = NULL;
	size_t at = 0;
	cr_assert_eq(tqf_decode(buf, off, out, n + 1, 0, &why, &at), (int)n);
	cr_assert_eq(out[n - 1].id, n);
	put32le(buf + 4, TQF_MAX_TASKS + 1);
	cr_assert_eq(tqf_decode(buf, off, out, n + 1, 0, &why, &at), -1);
	cr_assert_eq(at, 4);
	cr_assert_str_eq(why, WHY_COUNT);
	free(buf);
	free(out);
}

Test(frame, shorter_than_header)
{
	uint8_t buf[TQF_HEADER];
	tqf_header(buf, 0, 0);
	for (size_t len = 0; len < TQF_HEADER; len++)
		expect_bad(buf, len, 1, MAXP, len, WHY_SHORT);
}

Test(frame, bad_magic)
{
	uint8_t buf[128];
	for (int k = 0; k < 3; k++) {
		size_t len = two_tasks(buf, sizeof buf);
		buf[k] ^= 0x20; /* 't', 'q', 'b' */
		expect_bad(buf, len, 2, MAXP, 0, WHY_MAGIC);
		buf[k] = 0;
		expect_bad(buf, len, 2, MAXP, 0, WHY_MAGIC);
	}
}

Test(frame, unknown_version)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	cr_assert_eq(buf[3], TQF_VERSION);
	static const uint8_t bad[] = {0, 1, 3, 0x82, 0xff};
	for (size_t k = 0; k < sizeof bad; k++) {
		buf[3] = bad[k];
		expect_bad(buf, len, 2, MAXP, 3, WHY_VERSION);
	}
}

Test(frame, count_over_max)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	expect_bad(buf, len, 1, MAXP, 4, WHY_COUNT); /* two tasks, room for one */
	expect_bad(buf, len, 0, MAXP, 4, WHY_COUNT);
}

Test(frame, count_over_max_tasks)
{
	/* over TQF_MAX_TASKS, whatever room the caller says it has */
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	static const uint32_t counts[] = {TQF_MAX_TASKS + 1, 0x01000002, UINT32_MAX};
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		put32le(buf + 4, counts[k]);
		tq_task out[2];
		const char *why = NULL;
		size_t at = (size_t)-1;
		cr_assert_eq(tqf_decode(buf, len, out, SIZE_MAX, MAXP, &why, &at), -1, "count %u", counts[k]);
		cr_assert_not_null(why);
		cr_assert_eq(at, 4, "count %u: at %zu (%s)", counts[k], at, why);
		cr_assert_str_eq(why, WHY_COUNT);
	}
}

Test(frame, first_id_without_task)
{
	uint8_t buf[TQF_HEADER];
	static const uint64_t ids[] = {1, 7, (uint64_t)1 << 56, UINT64_MAX};
	for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
		tqf_header(buf, 0, ids[k]);
		expect_bad(buf, sizeof buf, 1, MAXP, 8, WHY_FIRST_ID);
	}
}

Test(frame, first_delta_not_zero)
{
	/* the same two tasks, with a header first id of 6 and a first delta
	 * of +1 (or 8 and -1): a second encoding of one message, refused */
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	buf[8] = 6;
	buf[17] = 0x02;
	expect_bad(buf, len, 2, MAXP, 17, WHY_FIRST_DELTA);
	buf[8] = 8;
	buf[17] = 0x01;
	expect_bad(buf, len, 2, MAXP, 17, WHY_FIRST_DELTA);
}

Test(frame, unknown_kind)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	static const uint8_t bad[] = {0, 4, 0x81, 0xff};
	for (size_t k = 0; k < sizeof bad; k++) {
		buf[16] = bad[k]; /* the first task */
		expect_bad(buf, len, 2, MAXP, 16, WHY_KIND);
		buf[16] = TQ_KIND_INT;
		buf[19] = bad[k]; /* the second */
		expect_bad(buf, len, 2, MAXP, 19, WHY_KIND);
		buf[19] = TQ_KIND_JSON;
	}
}

Test(frame, task_cut_short)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	/* count says 2, only the first is there */
	expect_bad(buf, 19, 2, MAXP, 19, WHY_TASK_SHORT);
	/* count says 3, two are there */
	put32le(buf + 4, 3);
	expect_bad(buf, len, 3, MAXP, len, WHY_TASK_SHORT);
	/* count says 1, none is there */
	put32le(buf + 4, 1);
	expect_bad(buf, TQF_HEADER, 3, MAXP, TQF_HEADER, WHY_TASK_SHORT);
}

Test(frame, varint_cut_short)
{
	uint8_t buf[128];
	two_tasks(buf, sizeof buf);
	expect_bad(buf, 17, 2, MAXP, 17, WHY_VARINT_SHORT); /* no delta */
	expect_bad(buf, 18, 2, MAXP, 18, WHY_VARINT_SHORT); /* no value */
	expect_bad(buf, 20, 2, MAXP, 20, WHY_VARINT_SHORT); /* second: no delta */
	expect_bad(buf, 21, 2, MAXP, 21, WHY_VARINT_SHORT); /* no len */
	/* a value that ends on a continuation byte */
	static const uint8_t v[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
	for (size_t n = 1; n <= sizeof v; n++) {
		size_t len = int_with_raw_value(buf, v, n);
		expect_bad(buf, len, 2, MAXP, 18, WHY_VARINT_SHORT);
	}
}

Test(frame, varint_longer_than_10)
{
	/*
	 * 11 and 12 bytes. frame.c's own "longer than 10 bytes" branch cannot
	 * fire: a 10th byte with its continuation bit is already over 64 bits,
	 * so that is the reason given; what matters is the refusal, at the
	 * varint's first byte.
	 */
	uint8_t buf[128];
	static const uint8_t v11[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
	static const uint8_t v12[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x80, 0x00};
	tq_task out[1];
	const char *why = NULL;
	size_t at = (size_t)-1;
	size_t len = int_with_raw_value(buf, v11, sizeof v11);
	cr_assert_eq(tqf_decode(buf, len, out, 1, MAXP, &why, &at), -1);
	cr_assert_not_null(why);
	cr_assert_eq(at, 18, "at %zu (%s)", at, why);
	cr_assert(strcmp(why, WHY_VARINT_64) == 0 || strcmp(why, WHY_VARINT_LONG) == 0, "why: %s", why);
	why = NULL;
	at = (size_t)-1;
	len = int_with_raw_value(buf, v12, sizeof v12);
	cr_assert_eq(tqf_decode(buf, len, out, 1, MAXP, &why, &at), -1);
	cr_assert_not_null(why);
	cr_assert_eq(at, 18, "at %zu (%s)", at, why);
	cr_assert(strcmp(why, WHY_VARINT_64) == 0 || strcmp(why, WHY_VARINT_LONG) == 0, "why: %s", why);
	/* and as a delta (the second task's) */
	two_tasks(buf, sizeof buf);
	memcpy(buf + 20, v11, sizeof v11); /* 20..30 */
	buf[31] = 7;
	memcpy(buf + 32, json7, 7);
	tq_task out2[2];
	why = NULL;
	at = (size_t)-1;
	cr_assert_eq(tqf_decode(buf, 39, out2, 2, MAXP, &why, &at), -1);
	cr_assert_not_null(why);
	cr_assert_eq(at, 20, "at %zu (%s)", at, why);
}

Test(frame, varint_over_64_bits)
{
	uint8_t buf[128];
	/* 9 x 0xff then 0x01 is UINT64_MAX: good; a 10th byte over 1 is not */
	uint8_t v[10];
	memset(v, 0xff, 9);
	v[9] = 0x01;
	size_t len = int_with_raw_value(buf, v, sizeof v);
	expect_good(buf, len, 1, MAXP, 1);
	static const uint8_t tenth[] = {0x02, 0x03, 0x7f};
	for (size_t k = 0; k < sizeof tenth; k++) {
		v[9] = tenth[k];
		len = int_with_raw_value(buf, v, sizeof v);
		expect_bad(buf, len, 1, MAXP, 18, WHY_VARINT_64);
	}
	/* as a payload length */
	tqf_header(buf, 1, 0);
	buf[16] = TQ_KIND_STRING;
	buf[17] = 0;
	memset(buf + 18, 0x80, 9);
	buf[27] = 0x02;
	expect_bad(buf, 28, 1, UINT32_MAX, 18, WHY_VARINT_64);
}

Test(frame, varint_not_minimal)
{
	uint8_t buf[128];
	static const uint8_t v2[] = {0x80, 0x00}, v3[] = {0xaa, 0x80, 0x00};
	size_t len = int_with_raw_value(buf, v2, sizeof v2);
	expect_bad(buf, len, 1, MAXP, 18, WHY_VARINT_MIN);
	len = int_with_raw_value(buf, v3, sizeof v3);
	expect_bad(buf, len, 1, MAXP, 18, WHY_VARINT_MIN);
	/* ten bytes, the last 0 */
	uint8_t v10[10];
	memset(v10, 0x80, 9);
	v10[9] = 0;
	len = int_with_raw_value(buf, v10, sizeof v10);
	expect_bad(buf, len, 1, MAXP, 18, WHY_VARINT_MIN);
	/* a first delta of 0 written in two bytes */
	tqf_header(buf, 1, 5);
	buf[16] = TQ_KIND_INT;
	buf[17] = 0x80;
	buf[18] = 0x00;
	buf[19] = 42;
	expect_bad(buf, 20, 1, MAXP, 17, WHY_VARINT_MIN);
	/* the second task's delta and length */
	len = two_tasks(buf, sizeof buf);
	memmove(buf + 21, buf + 20, len - 20);
	buf[20] = 0x82; /* +1 in two bytes */
	buf[21] = 0x00;
	expect_bad(buf, len + 1, 2, MAXP, 20, WHY_VARINT_MIN);
	len = two_tasks(buf, sizeof buf);
	memmove(buf + 22, buf + 21, len - 21);
	buf[21] = 0x87; /* 7 in two bytes */
	buf[22] = 0x00;
	expect_bad(buf, len + 1, 2, MAXP, 21, WHY_VARINT_MIN);
}

Test(frame, payload_over_max)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	/* the 7-byte payload: at the limit is fine, one under is not */
	expect_good(buf, len, 2, 7, 2);
	expect_bad(buf, len, 2, 6, 21, WHY_PAYLOAD_MAX);
	expect_bad(buf, len, 2, 0, 21, WHY_PAYLOAD_MAX);
	/* a huge length is refused for its size before any read of it */
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f}; /* UINT32_MAX */
	memcpy(buf + 21, huge, sizeof huge);
	expect_bad(buf, 26, 2, MAXP, 21, WHY_PAYLOAD_MAX);
	static const uint8_t over32[] = {0x80, 0x80, 0x80, 0x80, 0x10}; /* 2^32 */
	memcpy(buf + 21, over32, sizeof over32);
	expect_bad(buf, 26, 2, UINT32_MAX, 21, WHY_PAYLOAD_MAX);
}

Test(frame, payload_cut_short)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	for (size_t cut = 22; cut < len; cut++)
		expect_bad(buf, cut, 2, MAXP, 22, WHY_PAYLOAD_SHORT);
	/* a length past the end, with the bytes that are there */
	buf[21] = 8;
	expect_bad(buf, len, 2, MAXP, 22, WHY_PAYLOAD_SHORT);
}

Test(frame, bytes_after_last_task)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	memset(buf + len, 0, 16);
	expect_bad(buf, len + 1, 2, MAXP, len, WHY_TRAILING);
	expect_bad(buf, len + 8, 2, MAXP, len, WHY_TRAILING);
	/* a whole valid task past the count is still extra bytes */
	put32le(buf + 4, 1);
	expect_bad(buf, len, 2, MAXP, 19, WHY_TRAILING);
	/* and after an empty message */
	tqf_header(buf, 0, 0);
	expect_bad(buf, TQF_HEADER + 1, 2, MAXP, TQF_HEADER, WHY_TRAILING);
}
