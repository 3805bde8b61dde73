/*
 * frame.c - the bridge's message framing (frame.h).
 */
#include <stdbool.h>
#include <string.h>

#include "frame.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

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

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t tqf_task_size(const tq_task *t)
{
	return TQF_TASK_HEADER + (t->kind == TQ_KIND_INT ? 8 : pad8(t->len));
}

void tqf_header(uint8_t *buf, uint32_t count)
{
	buf[0] = 'T';
	buf[1] = 'Q';
	buf[2] = 'B';
	buf[3] = (uint8_t)TQF_VERSION;
	put32(buf + 4, count);
	put64(buf + 8, 0);
}

size_t tqf_put(uint8_t *buf, size_t off, const tq_task *t)
{
	uint8_t *p = buf + off;
	bool is_int = t->kind == TQ_KIND_INT;

	put16(p, t->kind);
	put16(p + 2, 0);
	put32(p + 4, is_int ? 0 : t->len);
	put64(p + 8, t->id);
	if (is_int) {
		put64(p + 16, t->value);
		return off + TQF_TASK_HEADER + 8;
	}
	if (t->len)
		memcpy(p + 16, t->data, t->len);
	memset(p + 16 + t->len, 0, pad8(t->len) - t->len);
	return off + TQF_TASK_HEADER + pad8(t->len);
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
	if (get64(buf + 8) != 0)
		return bad(why, at, "reserved header bytes are not zero", 8);
	size_t off = TQF_HEADER;
	for (uint32_t i = 0; i < count; i++) {
		if (len - off < TQF_TASK_HEADER)
			return bad(why, at, "truncated task header", off);
		const uint8_t *p = buf + off;
		uint16_t kind = get16(p);
		uint32_t tlen = get32(p + 4);
		if (get16(p + 2) != 0)
			return bad(why, at, "task flags are not zero", off + 2);
		tq_task *t = &out[i];
		memset(t, 0, sizeof *t);
		t->kind = kind;
		t->id = get64(p + 8);
		if (kind == TQ_KIND_INT) {
			if (tlen != 0)
				return bad(why, at, "an integer task with a length", off + 4);
			if (len - off - TQF_TASK_HEADER < 8)
				return bad(why, at, "truncated integer task", off);
			t->value = get64(p + 16);
			off += TQF_TASK_HEADER + 8;
		} else if (kind == TQ_KIND_STRING || kind == TQ_KIND_JSON) {
			if (tlen > max_payload)
				return bad(why, at, "a payload larger than the queue's max_payload", off + 4);
			if (len - off - TQF_TASK_HEADER < pad8(tlen))
				return bad(why, at, "truncated payload", off);
			for (size_t k = tlen; k < pad8(tlen); k++)
				if (p[TQF_TASK_HEADER + k] != 0)
					return bad(why, at, "padding bytes are not zero", off + TQF_TASK_HEADER + k);
			t->len = tlen;
			t->data = p + TQF_TASK_HEADER;
			off += TQF_TASK_HEADER + pad8(tlen);
		} else {
			return bad(why, at, "unknown task kind", off);
		}
	}
	if (off != len)
		return bad(why, at, "bytes after the last task", off);
	return (int)count;
}
