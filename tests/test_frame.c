/*
 * test_frame.c - the bridge's message framing (tools/frame.h): a round trip
 * of every task kind and payload length around the 8-byte padding, the
 * exact bytes of a small message, and each way tqf_decode refuses a
 * message, with the offset it names. Pure functions: no queue, no I/O.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "taskq.h"

TestSuite(frame, .timeout = 30);

#define MAXP 100u /* max_payload given to tqf_decode unless a test says */

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

/* Encodes n tasks into buf (of size cap, first filled with 0xa5 so that
 * padding tqf_put did not write shows); returns the message's length. */
static size_t encode(uint8_t *buf, size_t cap, const tq_task *t, size_t n)
{
	size_t want = TQF_HEADER;
	for (size_t i = 0; i < n; i++)
		want += tqf_task_size(&t[i]);
	cr_assert_leq(want, cap, "test buffer too small: %zu > %zu", want, cap);
	memset(buf, 0xa5, cap);
	tqf_header(buf, (uint32_t)n);
	size_t off = TQF_HEADER;
	for (size_t i = 0; i < n; i++) {
		size_t next = tqf_put(buf, off, &t[i]);
		cr_assert_eq(next, off + tqf_task_size(&t[i]), "tqf_put of task %zu", i);
		off = next;
	}
	cr_assert_eq(off, want);
	return off;
}

static void put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Asserts that tqf_decode refuses buf[0..len) at offset `at`. */
static void expect_bad(const uint8_t *buf, size_t len, size_t max, uint32_t max_payload, size_t want_at)
{
	tq_task out[8];
	const char *why = NULL;
	size_t at = (size_t)-1;
	int rc = tqf_decode(buf, len, out, max, max_payload, &why, &at);
	cr_assert_eq(rc, -1, "tqf_decode accepted a bad message (rc %d)", rc);
	cr_assert_not_null(why);
	cr_assert_gt(strlen(why), 0);
	cr_assert_eq(at, want_at, "at %zu, want %zu (%s)", at, want_at, why);
}

/* A good two-task message: an integer task at 16, a 9-byte string task
 * at 40 (payload at 56, padding 65..71); 72 bytes. */
static const char nine[] = "ninebytes";
static size_t two_tasks(uint8_t *buf, size_t cap)
{
	tq_task t[2] = {int_task(7, 42), bytes_task(TQ_KIND_STRING, 8, nine, 9)};
	size_t len = encode(buf, cap, t, 2);
	cr_assert_eq(len, 72);
	tq_task out[2];
	const char *why = NULL;
	size_t at = 0;
	cr_assert_eq(tqf_decode(buf, len, out, 2, MAXP, &why, &at), 2, "the unmodified message: %s", why);
	return len;
}

Test(frame, task_sizes)
{
	tq_task i = int_task(1, 2);
	cr_assert_eq(tqf_task_size(&i), 24);
	i.len = 1000; /* an integer task's len is not written */
	cr_assert_eq(tqf_task_size(&i), 24);
	static const uint32_t lens[] = {0, 1, 7, 8, 9, 100};
	static const size_t want[] = {16, 24, 24, 24, 32, 120};
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		tq_task s = bytes_task(TQ_KIND_STRING, 1, "", lens[k]);
		tq_task j = bytes_task(TQ_KIND_JSON, 1, "", lens[k]);
		cr_assert_eq(tqf_task_size(&s), want[k], "len %u", lens[k]);
		cr_assert_eq(tqf_task_size(&j), want[k], "len %u", lens[k]);
	}
}

Test(frame, round_trip_mixed)
{
	static const uint32_t lens[] = {0, 1, 7, 8, 9, 100};
	enum { NL = sizeof lens / sizeof lens[0], N = 3 * NL };
	uint8_t src[2][NL][100];
	tq_task in[N];
	size_t n = 0, sum = 0;

	for (size_t k = 0; k < NL; k++) {
		for (size_t b = 0; b < lens[k]; b++) {
			src[0][k][b] = (uint8_t)(b * 31 + k + 1); /* never all zero */
			src[1][k][b] = (uint8_t)('{' + (b + k) % 3);
		}
		in[n++] = bytes_task(TQ_KIND_STRING, 1000 + k, src[0][k], lens[k]);
		in[n++] = int_task(UINT64_MAX - k, k == 0 ? 0 : k == 1 ? UINT64_MAX : 0x0123456789abcdefull * k);
		in[n++] = bytes_task(TQ_KIND_JSON, (uint64_t)1 << (40 + k), src[1][k], lens[k]);
	}
	for (size_t i = 0; i < n; i++)
		sum += tqf_task_size(&in[i]);

	uint8_t *buf = malloc(TQF_HEADER + sum + 64);
	cr_assert_not_null(buf);
	size_t len = encode(buf, TQF_HEADER + sum + 64, in, n);
	cr_assert_eq(len, TQF_HEADER + sum);

	tq_task out[N + 1];
	memset(out, 0x5a, sizeof out);
	const char *why = NULL;
	size_t at = 0;
	int rc = tqf_decode(buf, len, out, N + 1, MAXP, &why, &at);
	cr_assert_eq(rc, (int)n, "decode: rc %d (%s at %zu)", rc, why ? why : "-", at);

	for (size_t i = 0; i < n; i++) {
		const tq_task *a = &in[i], *d = &out[i];
		cr_assert_eq(d->id, a->id, "task %zu id", i);
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
		cr_assert(p >= buf + TQF_HEADER + TQF_TASK_HEADER && p + d->len <= buf + len,
			  "task %zu data outside the buffer", i);
		cr_assert_eq((size_t)(p - buf) % 8, 0, "task %zu data not 8-aligned in the message", i);
		if (a->len)
			cr_assert_eq(memcmp(p, a->data, a->len), 0, "task %zu bytes", i);
		for (size_t k = a->len; k < (a->len + 7u) / 8 * 8; k++)
			cr_assert_eq(p[k], 0, "task %zu padding byte %zu", i, k);
	}
	/* nothing written past the count */
	uint8_t guard[sizeof(tq_task)];
	memset(guard, 0x5a, sizeof guard);
	cr_assert_eq(memcmp(&out[n], guard, sizeof guard), 0);
	free(buf);
}

Test(frame, exact_bytes)
{
	tq_task t[2] = {int_task(0x0102030405060708ull, 0x1112131415161718ull),
			bytes_task(TQ_KIND_JSON, 9, "[1]", 3)};
	uint8_t buf[64];
	size_t len = encode(buf, sizeof buf, t, 2);
	static const uint8_t want[] = {
		'T', 'Q', 'B', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* header */
		1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1,             /* int task */
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,             /* its value */
		3, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,             /* json task */
		'[', '1', ']', 0, 0, 0, 0, 0,                               /* payload, padding */
	};
	cr_assert_eq(len, sizeof want);
	cr_assert_eq(memcmp(buf, want, sizeof want), 0, "the framing's bytes changed");
}

Test(frame, count_zero)
{
	uint8_t buf[TQF_HEADER];
	tqf_header(buf, 0);
	tq_task out[1];
	const char *why = NULL;
	size_t at = 0;
	cr_assert_eq(tqf_decode(buf, sizeof buf, out, 1, MAXP, &why, &at), 0);
	cr_assert_eq(tqf_decode(buf, sizeof buf, NULL, 0, 0, &why, &at), 0, "an empty message needs no room");
}

Test(frame, shorter_than_header)
{
	uint8_t buf[TQF_HEADER];
	tqf_header(buf, 0);
	for (size_t len = 0; len < TQF_HEADER; len++)
		expect_bad(buf, len, 1, MAXP, len);
}

Test(frame, bad_magic)
{
	uint8_t buf[TQF_HEADER];
	for (int k = 0; k < 3; k++) {
		tqf_header(buf, 0);
		buf[k] ^= 0x20; /* 't', 'q', 'b' */
		expect_bad(buf, sizeof buf, 1, MAXP, 0);
	}
}

Test(frame, unknown_version)
{
	uint8_t buf[TQF_HEADER];
	tqf_header(buf, 0);
	cr_assert_eq(buf[3], TQF_VERSION);
	buf[3] = 0;
	expect_bad(buf, sizeof buf, 1, MAXP, 3);
	buf[3] = TQF_VERSION + 1;
	expect_bad(buf, sizeof buf, 1, MAXP, 3);
}

Test(frame, count_over_max)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	expect_bad(buf, len, 1, MAXP, 4); /* two tasks, room for one */
	expect_bad(buf, len, 0, MAXP, 4);
	/* over TQF_MAX_TASKS, whatever room the caller has */
	put32le(buf + 4, TQF_MAX_TASKS + 1);
	expect_bad(buf, len, SIZE_MAX, MAXP, 4);
	put32le(buf + 4, UINT32_MAX);
	expect_bad(buf, len, SIZE_MAX, MAXP, 4);
}

Test(frame, reserved_not_zero)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	for (size_t k = 8; k < 16; k++) {
		buf[k] = 0x80;
		expect_bad(buf, len, 2, MAXP, 8);
		buf[k] = 0;
	}
}

Test(frame, task_flags_not_zero)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	buf[16 + 2] = 1; /* the first task's flags */
	expect_bad(buf, len, 2, MAXP, 18);
	buf[16 + 2] = 0;
	buf[40 + 3] = 0x80; /* the second's, high byte */
	expect_bad(buf, len, 2, MAXP, 42);
}

Test(frame, unknown_kind)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	buf[40] = 0; /* the second task: kind 0 */
	expect_bad(buf, len, 2, MAXP, 40);
	buf[40] = 4;
	expect_bad(buf, len, 2, MAXP, 40);
	buf[40] = TQ_KIND_STRING;
	buf[41] = 1; /* kind 0x102 */
	expect_bad(buf, len, 2, MAXP, 40);
}

Test(frame, int_task_with_length)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	put32le(buf + 16 + 4, 8);
	expect_bad(buf, len, 2, MAXP, 20);
	put32le(buf + 16 + 4, 0x01000000);
	expect_bad(buf, len, 2, MAXP, 20);
}

Test(frame, payload_over_max)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	tq_task out[2];
	const char *why = NULL;
	size_t at = 0;
	/* the 9-byte payload: at the limit is fine, one over is not */
	cr_assert_eq(tqf_decode(buf, len, out, 2, 9, &why, &at), 2);
	expect_bad(buf, len, 2, 8, 44);
	expect_bad(buf, len, 2, 0, 44);
	/* a huge length is refused for its size before any read of it */
	put32le(buf + 40 + 4, UINT32_MAX);
	expect_bad(buf, len, 2, MAXP, 44);
}

Test(frame, truncated_task_header)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	/* every cut inside the second task's header */
	for (size_t cut = 40; cut < 40 + TQF_TASK_HEADER; cut++)
		expect_bad(buf, cut, 2, MAXP, 40);
	/* and a count that promises a third task the message lacks */
	put32le(buf + 4, 3);
	expect_bad(buf, len, 3, MAXP, len);
}

Test(frame, truncated_integer)
{
	uint8_t buf[128];
	two_tasks(buf, sizeof buf);
	put32le(buf + 4, 1); /* only the integer task */
	for (size_t cut = 32; cut < 40; cut++)
		expect_bad(buf, cut, 2, MAXP, 16);
}

Test(frame, truncated_payload)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	/* cuts in the payload and in its padding */
	for (size_t cut = 56; cut < len; cut++)
		expect_bad(buf, cut, 2, MAXP, 40);
}

Test(frame, nonzero_padding)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	for (size_t k = 56 + 9; k < len; k++) {
		buf[k] = 1;
		expect_bad(buf, len, 2, MAXP, k);
		buf[k] = 0;
	}
}

Test(frame, bytes_after_last_task)
{
	uint8_t buf[128];
	size_t len = two_tasks(buf, sizeof buf);
	memset(buf + len, 0, 16);
	expect_bad(buf, len + 1, 2, MAXP, len);
	expect_bad(buf, len + 8, 2, MAXP, len);
	/* a whole valid task past the count is still extra bytes */
	put32le(buf + 4, 1);
	expect_bad(buf, len, 2, MAXP, 40);
	/* and after an empty message */
	tqf_header(buf, 0);
	expect_bad(buf, TQF_HEADER + 1, 2, MAXP, TQF_HEADER);
}
