/* SPDX-License-Identifier: MIT */
/*
 * fuzz/frame.c - libFuzzer target for the bridge's message framing
 * (tools/frame.c): arbitrary bytes as a JetStream message's body.
 *
 * tqf_decode must refuse them (-1, a reason, an offset within the input)
 * or accept them; an accepted message's tasks must lie in the input, and
 * encoding them again with tqf_header / tqf_put must give back exactly the
 * input: the framing is canonical (no two encodings of one message), so
 * nothing the decoder lets through can carry bytes it did not look at.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "taskq.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OUT 8
#define MAX_PAYLOAD 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tq_task out[MAX_OUT];
	const char *why = NULL;
	size_t at = (size_t)-1;
	int k = tqf_decode(data, size, out, MAX_OUT, MAX_PAYLOAD, &why, &at);

	if (k < 0) {
		CHECK(k == -1 && why && *why && at <= size);
		return 0;
	}
	CHECK(k <= MAX_OUT && size >= TQF_HEADER);
	size_t bound = TQF_HEADER;
	for (int i = 0; i < k; i++) {
		const tq_task *t = &out[i];
		CHECK(t->kind == TQ_KIND_INT || t->kind == TQ_KIND_STRING || t->kind == TQ_KIND_JSON);
		if (t->kind == TQ_KIND_INT) {
			CHECK(t->len == 0 && t->data == NULL);
		} else {
			const uint8_t *p = t->data;
			CHECK(t->len <= MAX_PAYLOAD && p >= data + TQF_HEADER && p + t->len <= data + size);
		}
		bound += tqf_task_bound(t);
	}
	CHECK(size <= bound);

	uint8_t *buf = malloc(bound);
	CHECK(buf);
	memset(buf, 0xa5, bound); /* bytes tqf_put leaves unwritten would differ */
	uint64_t prev = k ? out[0].id : 0;
	tqf_header(buf, (uint32_t)k, prev);
	size_t off = TQF_HEADER;
	for (int i = 0; i < k; i++)
		off = tqf_put(buf, off, &out[i], &prev);
	CHECK(off == size);
	CHECK(memcmp(buf, data, size) == 0);
	free(buf);
	return 0;
}
