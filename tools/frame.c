/* SPDX-License-Identifier: MIT */
/*
 * frame.c - the bridge's message framing (frame.h).
 */
#include <stdbool.h>
#include <string.h>

#include "frame.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Reads a minimal varint at buf[*off] (below len): 0 and the offset moved,
 * or -1 with the reason. */
static int get_varint(const uint8_t *buf, size_t len, size_t *off, uint64_t *v, const char **why)
{
	uint64_t x = 0;
	size_t start = *off;
	for (unsigned i = 0;; i++) {
		if (start + i >= len) {
			*why = "a varint cut short";
			return -1;
		}
		uint8_t b = buf[start + i];
		if (i == 9 && b > 1) { /* so no varint is longer than 10 bytes */
			*why = "a varint over 64 bits";
			return -1;
		}
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0) {
				*why = "a varint that is not minimal";
				return -1;
			}
			*off = start + i + 1;
			*v = x;
			return 0;
		}
	}
}

static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (uint64_t)-(int64_t)(d >> 63); }
static uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1); }

size_t tqf_task_bound(const tq_task *t)
{
	return TQF_TASK_MAX_OVERHEAD + (t->kind == TQ_KIND_INT ? 0 : t->len);
}

void tqf_header(uint8_t *buf, uint32_t count, uint64_t first_id)
{
	buf[0] = 'T';
	buf[1] = 'Q';
	buf[2] = 'B';
	buf[3] = (uint8_t)TQF_VERSION;
	put32(buf + 4, count);
	put64(buf + 8, first_id);
}

size_t tqf_put(uint8_t *buf, size_t off, const tq_task *t, uint64_t *prev)
{
	buf[off++] = (uint8_t)t->kind;
	off += put_varint(buf + off, zigzag(t->id - *prev));
	*prev = t->id;
	if (t->kind == TQ_KIND_INT)
		return off + put_varint(buf + off, t->value);
	off += put_varint(buf + off, t->len);
	if (t->len)
		memcpy(buf + off, t->data, t->len);
	return off + t->len;
}

static int bad(const char **why, size_t *at, const char *w, size_t off)
{
	*why = w;
	*at = off;
	return -1;
}

int tqf_decode(const uint8_t *buf, size_t len, tq_task *out, size_t max, uint32_t max_payload, const char **why,
	       size_t *at)
{
	if (len < TQF_HEADER)
		return bad(why, at, "shorter than the 16-byte header", len);
	if (buf[0] != 'T' || buf[1] != 'Q' || buf[2] != 'B')
		return bad(why, at, "not a taskq bridge message (magic)", 0);
	if (buf[3] != TQF_VERSION)
		return bad(why, at, "unknown framing version", 3);
	uint32_t count = get32(buf + 4);
	if (count > TQF_MAX_TASKS || count > max)
		return bad(why, at, "more tasks than a message may hold", 4);
	uint64_t prev = get64(buf + 8), v;
	size_t off = TQF_HEADER;
	if (count == 0 && prev != 0)
		return bad(why, at, "a first id in a message with no task", 8);
	for (uint32_t i = 0; i < count; i++) {
		size_t task = off;
		if (off >= len)
			return bad(why, at, "a task cut short", off);
		uint8_t kind = buf[off++];
		if (kind != TQ_KIND_INT && kind != TQ_KIND_STRING && kind != TQ_KIND_JSON)
			return bad(why, at, "unknown task kind", task);
		size_t vat = off;
		if (get_varint(buf, len, &off, &v, why) != 0)
			return bad(why, at, *why, vat);
		if (i == 0 && v != 0)
			return bad(why, at, "the first task's id is not the header's", vat);
		tq_task *t = &out[i];
		memset(t, 0, sizeof *t);
		t->kind = kind;
		t->id = prev + unzigzag(v);
		prev = t->id;
		vat = off;
		if (get_varint(buf, len, &off, &v, why) != 0)
			return bad(why, at, *why, vat);
		if (kind == TQ_KIND_INT) {
			t->value = v;
			continue;
		}
		if (v > max_payload)
			return bad(why, at, "a payload larger than the queue's max_payload", vat);
		if (len - off < v)
			return bad(why, at, "a payload cut short", off);
		t->len = (uint32_t)v;
		t->data = buf + off;
		off += v;
	}
	if (off != len)
		return bad(why, at, "bytes after the last task", off);
	return (int)count;
}
