/* SPDX-License-Identifier: MIT */
/*
 * parse.c - the taskq command's input parsers and output escapers (see
 * parse.h). Pure functions: the fuzz target fuzz/cli_input.c runs them on
 * arbitrary bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define SEC 1000000000ull

/* ------------------------------------------------------------ numbers */

bool cli_parse_u64n(const char *p, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!p || len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return s && cli_parse_u64n(s, strlen(s), min, max, out);
}

bool cli_parse_bytes(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	size_t len = s ? strlen(s) : 0;
	unsigned shift = 0;

	if (len > 1) {
		switch (s[len - 1]) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		default: break;
		}
	}
	uint64_t v;
	if (!cli_parse_u64n(s, len - (shift != 0), 0, UINT64_MAX >> shift, &v))
		return false;
	v <<= shift;
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_seconds(const char *s, double max_s, uint64_t *ns)
{
	uint64_t sec = 0, frac = 0;
	int frac_digits = 0;
	bool digits = false;

	if (!s || !(max_s >= 0)) /* !(>=) also refuses a NaN bound */
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		sec = sec * 10 + (uint64_t)(*s - '0');
		if (sec > UINT64_MAX / SEC) /* beyond any bound: and sec * SEC must fit */
			return false;
		digits = true;
	}
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++) {
			if (frac_digits < 9) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				frac_digits++;
			}
			digits = true;
		}
	if (*s || !digits)
		return false;
	for (; frac_digits < 9; frac_digits++)
		frac *= 10;
	if (sec * SEC > UINT64_MAX - frac)
		return false;
	uint64_t v = sec * SEC + frac;
	double max_ns = max_s * 1e9;
	/* 2^64 is exact as a double; converting it or more would be undefined. */
	if (max_ns < 18446744073709551616.0 && v > (uint64_t)max_ns)
		return false;
	*ns = v;
	return true;
}

char *cli_u64_range(char *buf, size_t size, uint64_t min, uint64_t max)
{
	snprintf(buf, size, "an integer from %llu to %llu", (unsigned long long)min, (unsigned long long)max);
	return buf;
}

/* ns as decimal seconds, without trailing zeros: "0.001", "30", "2.5". */
static void seconds_text(char *buf, size_t size, uint64_t ns)
{
	int n = snprintf(buf, size, "%llu.%09llu", (unsigned long long)(ns / SEC), (unsigned long long)(ns % SEC));
	if (n <= 0 || (size_t)n >= size)
		return;
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
}

char *cli_seconds_range(char *buf, size_t size, uint64_t min_ns, uint64_t max_ns)
{
	char lo[32], hi[32], days[32] = "";

	seconds_text(lo, sizeof(lo), min_ns);
	seconds_text(hi, sizeof(hi), max_ns);
	if (max_ns >= 86400 * SEC && max_ns % (86400 * SEC) == 0)
		snprintf(days, sizeof(days), " (%llu day%s)", (unsigned long long)(max_ns / (86400 * SEC)),
			 max_ns == 86400 * SEC ? "" : "s");
	snprintf(buf, size, "seconds from %s to %s%s, e.g. 30 or 0.5", lo, hi, days);
	return buf;
}

char *cli_duration_text(char *buf, size_t size, uint64_t ns)
{
	double v = (double)ns;

	if (ns < 1000)
		snprintf(buf, size, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, size, "%.1f us", v / 1e3);
	else if (ns < SEC)
		snprintf(buf, size, "%.1f ms", v / 1e6);
	else if (ns < 100 * SEC)
		snprintf(buf, size, "%.2f s", v / 1e9);
	else
		snprintf(buf, size, "%.0f s", v / 1e9);
	return buf;
}

bool cli_queue_name_ok(const char *s)
{
	size_t n = 0;

	if (!s || s[0] == '.')
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= TQ_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return false;
	}
	return n > 0;
}

/* --------------------------------------------------------- UTF-8, JSON */

/* The length of the valid UTF-8 sequence at p (rem > 0 bytes left), or 0
 * (the Unicode standard's table of well-formed byte sequences). */
static size_t utf8_seq(const unsigned char *p, size_t rem)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (rem < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

size_t cli_utf8_check(const void *v, size_t len)
{
	const unsigned char *p = v;
	size_t i = 0;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0)
			return i;
		i += n;
	}
	return len;
}

static size_t json_ws(const unsigned char *p, size_t len, size_t i)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

static bool hex4(const unsigned char *p, size_t len, size_t i, unsigned *u)
{
	*u = 0;
	if (i > len || len - i < 4)
		return false;
	for (size_t k = i; k < i + 4; k++) {
		unsigned c = p[k], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		*u = *u << 4 | d;
	}
	return true;
}

/* A string starting at *i (its quote); the input is valid UTF-8 already.
 * On success *i is just past the closing quote; on failure it is where the
 * problem is. */
static bool json_string(const unsigned char *p, size_t len, size_t *i, const char **why)
{
	size_t k = *i + 1;

	while (k < len) {
		unsigned c = p[k];
		if (c == '"') {
			*i = k + 1;
			return true;
		}
		if (c < 0x20) {
			*i = k;
			*why = "control character in a string (escape it)";
			return false;
		}
		if (c != '\\') {
			k++;
			continue;
		}
		if (k + 1 >= len)
			break;
		c = p[k + 1];
		if (c == 'u') {
			unsigned u, lo;
			if (!hex4(p, len, k + 2, &u)) {
				*i = k;
				*why = "invalid \\u escape";
				return false;
			}
			if (u >= 0xdc00 && u <= 0xdfff) {
				*i = k;
				*why = "unpaired surrogate escape";
				return false;
			}
			if (u >= 0xd800 && u <= 0xdbff) {
				if (len - k < 12 || p[k + 6] != '\\' || p[k + 7] != 'u' || !hex4(p, len, k + 8, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff) {
					*i = k;
					*why = "unpaired surrogate escape";
					return false;
				}
				k += 12;
				continue;
			}
			k += 6;
			continue;
		}
		if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't') {
			*i = k;
			*why = "invalid escape";
			return false;
		}
		k += 2;
	}
	*i = len;
	*why = "unterminated string";
	return false;
}

static bool json_number(const unsigned char *p, size_t len, size_t *i)
{
	size_t k = *i;

#define DIGIT(k) ((k) < len && p[k] >= '0' && p[k] <= '9')
	if (k < len && p[k] == '-')
		k++;
	if (!DIGIT(k)) {
		*i = k;
		return false;
	}
	if (p[k] == '0')
		k++;
	else
		while (DIGIT(k))
			k++;
	if (k < len && p[k] == '.') {
		k++;
		if (!DIGIT(k)) {
			*i = k;
			return false;
		}
		while (DIGIT(k))
			k++;
	}
	if (k < len && (p[k] == 'e' || p[k] == 'E')) {
		k++;
		if (k < len && (p[k] == '+' || p[k] == '-'))
			k++;
		if (!DIGIT(k)) {
			*i = k;
			return false;
		}
		while (DIGIT(k))
			k++;
	}
#undef DIGIT
	*i = k;
	return true;
}

static bool json_fail(size_t *at, const char **why, size_t where, const char *what)
{
	*at = where;
	*why = what;
	return false;
}

/*
 * One pass, no recursion: the open arrays and objects are a stack of bits
 * (1: object), so hostile nesting costs CLI_JSON_MAX_DEPTH bits at most.
 */
bool cli_json_check(const char *s, size_t len, size_t *at, const char **why)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char obj[(CLI_JSON_MAX_DEPTH + 7) / 8];
	size_t depth = 0, i, bad;
	const char *w = NULL;

	if (len > 0 && !p)
		return json_fail(at, why, 0, "no input");
	if ((bad = cli_utf8_check(p, len)) < len)
		return json_fail(at, why, bad, "not valid UTF-8");
	i = json_ws(p, len, 0);
value:
	if (i >= len)
		return json_fail(at, why, i, depth ? "a value is missing" : "no JSON value");
	switch (p[i]) {
	case '{':
	case '[': {
		bool is_obj = p[i] == '{';
		if (depth == CLI_JSON_MAX_DEPTH)
			return json_fail(at, why, i, "nested too deep");
		if (is_obj)
			obj[depth / 8] |= (unsigned char)(1u << (depth % 8));
		else
			obj[depth / 8] &= (unsigned char)~(1u << (depth % 8));
		depth++;
		i = json_ws(p, len, i + 1);
		if (i < len && p[i] == (is_obj ? '}' : ']')) {
			depth--;
			i++;
			goto after;
		}
		if (is_obj)
			goto key;
		goto value;
	}
	case '"':
		if (!json_string(p, len, &i, &w))
			return json_fail(at, why, i, w);
		goto after;
	case 't':
	case 'f':
	case 'n': {
		const char *lit = p[i] == 't' ? "true" : p[i] == 'f' ? "false" : "null";
		size_t n = strlen(lit);
		if (len - i < n || memcmp(p + i, lit, n))
			return json_fail(at, why, i, "invalid literal");
		i += n;
		goto after;
	}
	default:
		if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
			if (!json_number(p, len, &i))
				return json_fail(at, why, i, "invalid number");
			goto after;
		}
		return json_fail(at, why, i, "unexpected character");
	}
key:
	if (i >= len || p[i] != '"')
		return json_fail(at, why, i, "expected a string key");
	if (!json_string(p, len, &i, &w))
		return json_fail(at, why, i, w);
	i = json_ws(p, len, i);
	if (i >= len || p[i] != ':')
		return json_fail(at, why, i, "expected ':'");
	i = json_ws(p, len, i + 1);
	goto value;
after:
	i = json_ws(p, len, i);
	if (depth == 0) {
		if (i < len)
			return json_fail(at, why, i, "text after the value");
		return true;
	}
	{
		bool is_obj = obj[(depth - 1) / 8] >> ((depth - 1) % 8) & 1;
		if (i >= len)
			return json_fail(at, why, i, is_obj ? "unterminated object" : "unterminated array");
		if (p[i] == ',') {
			i = json_ws(p, len, i + 1);
			if (is_obj)
				goto key;
			goto value;
		}
		if (p[i] == (is_obj ? '}' : ']')) {
			depth--;
			i++;
			goto after;
		}
		return json_fail(at, why, i, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

/* ------------------------------------------------------------- lines */

void cli_line_start(struct cli_line *l, char *buf, size_t cap)
{
	l->buf = buf;
	l->cap = buf ? cap : 0;
	l->kept = 0;
	l->len = 0;
	l->last = 0;
}

size_t cli_line_feed(struct cli_line *l, const char *p, size_t n, bool *ended)
{
	*ended = false;
	if (n == 0)
		return 0;
	const char *nl = memchr(p, '\n', n);
	size_t body = nl ? (size_t)(nl - p) : n;
	if (l->kept < l->cap) {
		size_t k = body < l->cap - l->kept ? body : l->cap - l->kept;
		memcpy(l->buf + l->kept, p, k);
		l->kept += k;
	}
	if (body > 0) {
		l->len += body;
		l->last = (unsigned char)p[body - 1];
	}
	*ended = nl != NULL;
	return nl ? body + 1 : n;
}

void cli_line_strip_cr(struct cli_line *l)
{
	if (l->len == 0 || l->last != '\r')
		return;
	if (l->kept == l->len)
		l->kept--;
	l->len--;
	l->last = 0;
}

/* ------------------------------------------------------- task inputs */

int cli_task_input(int kind, const char *p, size_t kept, uint64_t len, uint32_t max_payload, tq_task *t,
		   struct cli_input_result *r)
{
	memset(r, 0, sizeof(*r));
	memset(t, 0, sizeof(*t));
	if (kept > len)
		kept = (size_t)len;
	r->size = len;
	t->kind = (uint16_t)kind;
	if (kind == TQ_KIND_INT) {
		if (kept < len || !cli_parse_u64n(p, kept, 0, UINT64_MAX, &t->value))
			r->error = CLI_INPUT_NOT_INT;
		return r->error;
	}
	/* Within max_payload, every byte must have been kept to be checked. */
	if (len > max_payload || kept < len) {
		r->error = CLI_INPUT_TOO_BIG;
		return r->error;
	}
	if (kind == TQ_KIND_JSON && !cli_json_check(p, kept, &r->at, &r->why)) {
		r->error = cli_utf8_check(p, kept) < kept ? CLI_INPUT_BAD_UTF8 : CLI_INPUT_BAD_JSON;
		return r->error;
	}
	t->data = kept ? p : NULL;
	t->len = (uint32_t)kept;
	return CLI_INPUT_OK;
}

void cli_input_describe(char *buf, size_t size, const struct cli_input_result *r, const char *p, size_t kept,
			uint32_t max_payload)
{
	char q[200];

	switch (r->error) {
	case CLI_INPUT_OK:
		snprintf(buf, size, "valid");
		break;
	case CLI_INPUT_NOT_INT:
		cli_text_escape(q, sizeof(q), p, kept < 40 ? kept : 40); /* fits: 4 bytes a byte at most */
		snprintf(buf, size, "'%s%s' is not an unsigned 64-bit integer", q, r->size > 40 ? "..." : "");
		break;
	case CLI_INPUT_TOO_BIG:
		snprintf(buf, size, "%llu bytes exceeds the queue's max payload of %u", (unsigned long long)r->size,
			 max_payload);
		break;
	case CLI_INPUT_BAD_UTF8:
		snprintf(buf, size, "not valid UTF-8 at byte %zu (JSON must be UTF-8)", r->at);
		break;
	default:
		snprintf(buf, size, "invalid JSON at byte %zu: %s", r->at, r->why ? r->why : "syntax error");
		break;
	}
}

/* ------------------------------------------------------------ output */

/* Writes (out != NULL) or measures the JSON string literal of p[0..len). */
static size_t json_escape(char *out, const unsigned char *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

#define PUT(s, n)                                          \
	do {                                               \
		if (out)                                   \
			memcpy(out + k, (s), (n));         \
		k += (n);                                  \
	} while (0)
	PUT("\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			size_t run = i + 1;
			while (run < len && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
				run++;
			PUT(p + i, run - i);
			i = run;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(p + i, len - i);
			if (n) {
				PUT(p + i, n);
				i += n;
			} else {
				PUT("\\ufffd", 6); /* one replacement per byte that fits no sequence */
				i++;
			}
			continue;
		}
		const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t"
			      : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
		if (e) {
			PUT(e, 2);
		} else {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			PUT(u, 6);
		}
		i++;
	}
	PUT("\"", 1);
#undef PUT
	return k;
}

size_t cli_json_string_len(const void *p, size_t len)
{
	return json_escape(NULL, p, len);
}

size_t cli_json_string(char *out, const void *p, size_t len)
{
	size_t n = json_escape(out, p, len);
	out[n] = '\0';
	return n;
}

cJSON *cli_json_u64(uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return cJSON_CreateRaw(num);
}

static bool add_item(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return false;
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

bool cli_json_add_u64(cJSON *obj, const char *key, uint64_t v)
{
	return add_item(obj, key, cli_json_u64(v));
}

bool cli_json_add_bytes(cJSON *obj, const char *key, const void *p, size_t len)
{
	char *s = malloc(cli_json_string_len(p, len) + 1);

	if (!s)
		return false;
	cli_json_string(s, p, len);
	cJSON *item = cJSON_CreateRaw(s);
	free(s);
	return add_item(obj, key, item);
}

bool cli_json_add_payload(cJSON *obj, const void *p, size_t len)
{
	if (!cli_json_add_bytes(obj, "data", p, len))
		return false;
	if (cli_utf8_check(p, len) == len)
		return true;
	char *b = malloc(4 * ((len + 2) / 3) + 1);
	if (!b)
		return false;
	cli_base64(b, p, len);
	bool ok = add_item(obj, "data_base64", cJSON_CreateString(b));
	free(b);
	return ok;
}

bool cli_json_add_task_data(cJSON *obj, int kind, const void *p, size_t len)
{
	size_t at;
	const char *why;

	if (kind != TQ_KIND_JSON || !cli_json_check(p, len, &at, &why)) {
		if (!cli_json_add_payload(obj, p, len))
			return false;
		return kind != TQ_KIND_JSON || add_item(obj, "data_not_json", cJSON_CreateTrue());
	}
	/* The value without its whitespace outside strings. Not cJSON_Minify:
	 * it takes the quote of "a\\" for an escaped one, and then drops
	 * blanks inside the strings that follow. */
	const char *in = p;
	char *s = malloc(len + 1);
	size_t k = 0;
	bool in_str = false;
	if (!s)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (in_str) {
			if (c == '\\' && i + 1 < len)
				s[k++] = in[i++];
			else if (c == '"')
				in_str = false;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue;
		} else if (c == '"') {
			in_str = true;
		}
		s[k++] = in[i];
	}
	s[k] = '\0';
	cJSON *item = cJSON_CreateRaw(s);
	free(s);
	return add_item(obj, "data", item);
}

bool cli_json_get_u64(const cJSON *item, uint64_t *v)
{
	if (cJSON_IsRaw(item))
		return cli_parse_u64(item->valuestring, 0, UINT64_MAX, v);
	if (cJSON_IsNumber(item) && item->valuedouble >= 0 && item->valuedouble < 18446744073709551616.0) {
		*v = (uint64_t)item->valuedouble;
		return true;
	}
	return false;
}

size_t cli_base64(char *out, const void *v, size_t len)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = v;
	size_t k = 0, i = 0;

	for (; len - i >= 3; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[k++] = a[w >> 18];
		out[k++] = a[w >> 12 & 63];
		out[k++] = a[w >> 6 & 63];
		out[k++] = a[w & 63];
	}
	if (len - i == 1) {
		uint32_t w = (uint32_t)p[i] << 16;
		out[k++] = a[w >> 18];
		out[k++] = a[w >> 12 & 63];
		out[k++] = '=';
		out[k++] = '=';
	} else if (len - i == 2) {
		uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[k++] = a[w >> 18];
		out[k++] = a[w >> 12 & 63];
		out[k++] = a[w >> 6 & 63];
		out[k++] = '=';
	}
	out[k] = '\0';
	return k;
}

/* The escaped form of byte c into u (at most 4 bytes); returns its length. */
static size_t text_unit(unsigned char c, char u[4])
{
	static const char hex[] = "0123456789abcdef";

	if (c == '\\') {
		u[0] = u[1] = '\\';
		return 2;
	}
	if (c >= 0x20 && c < 0x7f) {
		u[0] = (char)c;
		return 1;
	}
	u[0] = '\\';
	u[1] = 'x';
	u[2] = hex[c >> 4];
	u[3] = hex[c & 15];
	return 4;
}

char *cli_text_escape(char *out, size_t size, const void *v, size_t len)
{
	const unsigned char *p = v;
	size_t total = 0, k = 0;
	char u[4];

	if (size == 0)
		return out;
	for (size_t i = 0; i < len; i++)
		total += text_unit(p[i], u);
	/* Whole if it fits; otherwise as many whole units as leave room for "...". */
	size_t room = total <= size - 1 ? size - 1 : size - 1 >= 3 ? size - 1 - 3 : 0;
	for (size_t i = 0; i < len; i++) {
		size_t n = text_unit(p[i], u);
		if (k + n > room)
			break;
		memcpy(out + k, u, n);
		k += n;
	}
	if (total > size - 1 && size - 1 >= 3) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}
