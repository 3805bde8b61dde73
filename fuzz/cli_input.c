/* SPDX-License-Identifier: MIT */
/*
 * cli_input.c - libFuzzer target for the taskq command's input parsers and
 * output escapers (tools/parse.c): arbitrary bytes, the first choosing the
 * parser, the rest its input. Besides the sanitizers' checks, each case
 * checks what can be checked of its result:
 *   u64        a parsed value printed back parses to itself; agrees with
 *              a digit-by-digit reference
 *   seconds    the result is within the bound; printed back as
 *              S.NNNNNNNNN it parses to itself
 *   task lines split in random chunks through a small buffer: the lines
 *              and their lengths match a plain split; a line accepted as a
 *              task is exactly what its kind allows
 *   json       an accepted text is valid UTF-8 and parses with cJSON
 *   escapes    the JSON string is valid UTF-8, parses with cJSON to the
 *              input (when that is valid UTF-8 without NUL); base64 decodes
 *              to the input; the text escape is printable ASCII
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void fuzz_u64(const uint8_t *p, size_t n)
{
	char *s = cstr(p, n);
	uint64_t v, w, ref = 0;
	bool ok = cli_parse_u64(s, 0, UINT64_MAX, &v);
	bool okn = cli_parse_u64n((const char *)p, n, 0, UINT64_MAX, &w);

	/* Reference: all digits, and no overflow. */
	bool digits = n > 0, over = false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			digits = false;
			break;
		}
		if (ref > (UINT64_MAX - (p[i] - '0')) / 10)
			over = true;
		ref = ref * 10 + (p[i] - '0');
	}
	CHECK(okn == (digits && !over));
	if (okn)
		CHECK(w == ref);
	/* The C-string form stops at a NUL; with none it agrees. */
	if (!memchr(p, 0, n)) {
		CHECK(ok == okn);
		if (ok)
			CHECK(v == w);
	}
	if (ok) {
		char back[24];
		uint64_t again;
		snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
		CHECK(cli_parse_u64(back, 0, UINT64_MAX, &again) && again == v);
		CHECK(!cli_parse_u64(back, v == UINT64_MAX ? v : v + 1, UINT64_MAX, &again) || v == UINT64_MAX);
	}
	free(s);
}

static void fuzz_seconds(const uint8_t *p, size_t n)
{
	static const double bounds[] = {0, 1, 3600, 86400.0, 365 * 86400.0, 1e9, 1e30};
	double max_s = n ? bounds[p[0] % (sizeof(bounds) / sizeof(bounds[0]))] : 1;
	char *s = cstr(p + (n ? 1 : 0), n ? n - 1 : 0);
	uint64_t ns;

	if (cli_parse_seconds(s, max_s, &ns)) {
		CHECK((double)ns <= max_s * 1e9 + 1);
		char back[48];
		uint64_t again;
		snprintf(back, sizeof(back), "%llu.%09llu", (unsigned long long)(ns / 1000000000u),
			 (unsigned long long)(ns % 1000000000u));
		CHECK(cli_parse_seconds(back, 1e30, &again) && again == ns);
		/* Only digits and at most one point were accepted. */
		int points = 0;
		for (const char *c = s; *c; c++) {
			CHECK((*c >= '0' && *c <= '9') || *c == '.');
			points += *c == '.';
		}
		CHECK(points <= 1);
	}
	free(s);
}

/* Splits p[0..n) into lines through cli_line with a cap-byte buffer and
 * chunks of sizes taken from `chunks`, checking each against a plain split,
 * and checks each line as a task of kind. */
static void fuzz_lines(const uint8_t *p, size_t n, int kind)
{
	if (n < 3)
		return;
	uint32_t max_payload = p[0] % 64;
	size_t cap = kind == TQ_KIND_INT ? CLI_INT_LINE_MAX : (size_t)max_payload + 1;
	unsigned chunk_seed = p[1];
	p += 2;
	n -= 2;

	char *buf = malloc(cap);
	CHECK(buf);
	struct cli_line l;
	size_t pos = 0, line_start = 0;
	bool in_line = false;
	unsigned lines = 0;
	while (pos < n || in_line) {
		if (!in_line) {
			cli_line_start(&l, buf, cap);
			in_line = true;
			line_start = pos;
		}
		bool ended = false;
		if (pos < n) {
			size_t chunk = 1 + (chunk_seed = chunk_seed * 1103515245u + 12345u) % 17;
			if (chunk > n - pos)
				chunk = n - pos;
			size_t used = cli_line_feed(&l, (const char *)p + pos, chunk, &ended);
			CHECK(used >= 1 && used <= chunk);
			CHECK(ended ? p[pos + used - 1] == '\n' : used == chunk);
			pos += used;
			if (!ended && pos < n)
				continue;
		}
		/* A line: ended by its newline, or the input's last bytes. */
		in_line = false;
		size_t body = pos - line_start - (ended ? 1 : 0);
		if (!ended && body == 0)
			break;
		lines++;
		CHECK(l.len == body);
		CHECK(l.kept == (body < cap ? body : cap));
		CHECK(memcmp(l.buf, p + line_start, l.kept) == 0);
		CHECK(!memchr(l.buf, '\n', l.kept));
		cli_line_strip_cr(&l);
		bool crlf = body > 0 && p[line_start + body - 1] == '\r';
		CHECK(l.len == body - (crlf ? 1 : 0));

		tq_task t;
		struct cli_input_result r;
		int e = cli_task_input(kind, l.buf, l.kept, l.len, max_payload, &t, &r);
		char msg[400];
		cli_input_describe(msg, sizeof(msg), &r, l.buf, l.kept, max_payload);
		CHECK(strlen(msg) > 0 && strlen(msg) < sizeof(msg));
		CHECK(cli_utf8_check(msg, strlen(msg)) == strlen(msg));
		CHECK(t.kind == kind);
		if (e)
			continue;
		CHECK(r.size == l.len);
		if (kind == TQ_KIND_INT) {
			uint64_t v;
			CHECK(cli_parse_u64n(l.buf, l.kept, 0, UINT64_MAX, &v) && v == t.value);
			continue;
		}
		CHECK(t.len == l.len && t.len <= max_payload);
		CHECK(t.len == 0 || t.data == l.buf);
		if (kind == TQ_KIND_JSON) {
			size_t at;
			const char *why;
			CHECK(cli_json_check(t.data, t.len, &at, &why));
		}
	}
	(void)lines;
	free(buf);
}

/* True if p has a run of number characters longer than cJSON 1.7.15's
 * 63-byte number buffer (it refuses such numbers; they are valid JSON). */
static bool long_number(const uint8_t *p, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		bool num = (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == 'e' || p[i] == 'E' ||
			   p[i] == '+' || p[i] == '-';
		run = num ? run + 1 : 0;
		if (run >= 60)
			return true;
	}
	return false;
}

static void fuzz_json(const uint8_t *p, size_t n)
{
	size_t at = SIZE_MAX;
	const char *why = NULL;

	if (!cli_json_check((const char *)p, n, &at, &why)) {
		CHECK(at <= n && why && *why);
		return;
	}
	CHECK(cli_utf8_check(p, n) == n);
	CHECK(!memchr(p, 0, n));
	if (long_number(p, n))
		return;
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts((const char *)p, n, &end, false);
	CHECK(j);
	/* cJSON stops after the value: only JSON whitespace may follow. */
	for (const char *e = end; e < (const char *)p + n; e++)
		CHECK(*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n');
	cJSON_Delete(j);
}

static int b64v(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static void fuzz_escapes(const uint8_t *p, size_t n)
{
	/* The JSON string literal. */
	size_t len = cli_json_string_len(p, n);
	char *s = malloc(len + 1);
	CHECK(s);
	CHECK(cli_json_string(s, p, n) == len);
	CHECK(len >= 2 && s[0] == '"' && s[len - 1] == '"' && s[len] == '\0');
	CHECK(cli_utf8_check(s, len) == len);
	size_t at;
	const char *why;
	CHECK(cli_json_check(s, len, &at, &why));
	cJSON *j = cJSON_ParseWithLength(s, len);
	CHECK(cJSON_IsString(j));
	bool utf8 = cli_utf8_check(p, n) == n;
	const uint8_t *nul = memchr(p, 0, n);
	if (utf8) {
		/* cJSON's strings end at a NUL: compare up to the first. */
		size_t want = nul ? (size_t)(nul - p) : n;
		CHECK(strlen(j->valuestring) == want && memcmp(j->valuestring, p, want) == 0);
	}
	cJSON_Delete(j);

	/* In an object, printed by cJSON, parsed back. */
	cJSON *o = cJSON_CreateObject();
	CHECK(o && cli_json_add_payload(o, p, n) && cli_json_add_u64(o, "n", (uint64_t)n * 0x9e3779b97f4a7c15ull));
	char *txt = cJSON_PrintUnformatted(o);
	CHECK(txt);
	CHECK(cli_utf8_check(txt, strlen(txt)) == strlen(txt));
	cJSON *back = cJSON_Parse(txt);
	CHECK(back);
	uint64_t v;
	CHECK(cli_json_get_u64(cJSON_GetObjectItem(o, "n"), &v) && v == (uint64_t)n * 0x9e3779b97f4a7c15ull);
	cJSON *b64 = cJSON_GetObjectItem(back, "data_base64");
	CHECK((b64 != NULL) == !utf8);
	if (b64) {
		/* base64 decodes to the exact bytes. */
		const char *e = cJSON_GetStringValue(b64);
		size_t el = strlen(e), k = 0;
		CHECK(el == 4 * ((n + 2) / 3));
		uint8_t *dec = malloc(el / 4 * 3 + 1);
		CHECK(dec);
		for (size_t i = 0; i < el; i += 4) {
			int a = b64v(e[i]), b = b64v(e[i + 1]), c = e[i + 2] == '=' ? 0 : b64v(e[i + 2]),
			    d = e[i + 3] == '=' ? 0 : b64v(e[i + 3]);
			CHECK(a >= 0 && b >= 0 && c >= 0 && d >= 0);
			uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
			dec[k++] = (uint8_t)(w >> 16);
			if (e[i + 2] != '=')
				dec[k++] = (uint8_t)(w >> 8);
			if (e[i + 3] != '=')
				dec[k++] = (uint8_t)w;
		}
		CHECK(k == n && memcmp(dec, p, n) == 0);
		free(dec);
	}
	cJSON_Delete(back);
	cJSON_free(txt);
	cJSON_Delete(o);
	free(s);

	/* Text for a terminal: printable ASCII only, within its size. */
	size_t sizes[] = {1, 2, 4, 5, 44, 300};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char out[300];
		cli_text_escape(out, sizes[i], p, n);
		size_t ol = strlen(out);
		CHECK(ol < sizes[i]);
		for (size_t k = 0; k < ol; k++)
			CHECK(out[k] >= 0x20 && out[k] < 0x7f);
	}
}

static void fuzz_name(const uint8_t *p, size_t n)
{
	char *s = cstr(p, n);
	bool ok = cli_queue_name_ok(s);
	size_t len = strlen(s);
	bool ref = len > 0 && len <= TQ_NAME_MAX && s[0] != '.';
	for (size_t i = 0; ref && i < len; i++)
		ref = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]) != NULL;
	CHECK(ok == ref);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;

	switch (data[0] % 9) {
	case 0: fuzz_u64(p, n); break;
	case 1: fuzz_seconds(p, n); break;
	case 2: fuzz_lines(p, n, TQ_KIND_INT); break;
	case 3: fuzz_lines(p, n, TQ_KIND_STRING); break;
	case 4: fuzz_lines(p, n, TQ_KIND_JSON); break;
	case 5: fuzz_json(p, n); break;
	case 6: fuzz_escapes(p, n); break;
	case 7: fuzz_name(p, n); break;
	default: {
		/* A JSON line as push reads it, with a max payload it fits in. */
		size_t at;
		const char *why;
		tq_task t;
		struct cli_input_result r;
		bool ok = cli_json_check((const char *)p, n, &at, &why);
		int e = cli_task_input(TQ_KIND_JSON, (const char *)p, n, n, TQ_MAX_PAYLOAD, &t, &r);
		CHECK(ok == (e == CLI_INPUT_OK));
		if (!ok)
			CHECK(r.at == at && (e == CLI_INPUT_BAD_UTF8) == (cli_utf8_check(p, n) < n));
		break;
	}
	}
	return 0;
}
