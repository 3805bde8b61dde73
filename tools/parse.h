/* SPDX-License-Identifier: MIT */
/*
 * parse.h - the taskq command's input parsers and output escapers.
 *
 * Everything here is a pure function of its arguments: no I/O, no global
 * state, no use of the queue. The taskq command and the fuzz target
 * fuzz/cli_input.c share them, so what the fuzzer checks is what runs.
 */
#ifndef TQ_PARSE_H
#define TQ_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "taskq.h"

/* ------------------------------------------------------------ numbers */

/* An unsigned decimal integer in [min, max]: one or more digits and nothing
 * else (no sign, blank, base prefix or exponent; leading zeros are fine).
 * The n form reads exactly len bytes, so a NUL inside is refused. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool cli_parse_u64n(const char *p, size_t len, uint64_t min, uint64_t max, uint64_t *out);
/* A byte count: digits, optionally followed by K, M or G (2^10, 2^20,
 * 2^30), within [min, max]; false for anything else, or an overflow. */
bool cli_parse_bytes(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A duration in seconds, at most max_s, into nanoseconds: digits with an
 * optional decimal fraction ("5", "0.25", ".5", "5."), nothing else (no
 * sign, exponent, hexadecimal, inf or nan). Decimal, so "0.1" is exactly
 * 100000000 ns; fraction digits past the ninth are ignored. */
bool cli_parse_seconds(const char *s, double max_s, uint64_t *ns);

/* What a value in range must be, for an error message: "an integer from 1
 * to 256", "seconds from 0.001 to 31536000 (365 days), e.g. 30 or 0.5".
 * Writes at most size - 1 bytes and a NUL; returns buf. */
char *cli_u64_range(char *buf, size_t size, uint64_t min, uint64_t max);
char *cli_seconds_range(char *buf, size_t size, uint64_t min_ns, uint64_t max_ns);

/* A duration for people, with its unit and about four significant digits:
 * "850 ns", "12.5 us", "402.7 ms", "1.25 s", "312 s". Returns buf. */
char *cli_duration_text(char *buf, size_t size, uint64_t ns);

/* True if s is a queue name the library takes: 1..TQ_NAME_MAX characters
 * of A-Z a-z 0-9 _ . -, not starting with '.'. */
bool cli_queue_name_ok(const char *s);

/* --------------------------------------------------------- UTF-8, JSON */

/* The offset of the first byte of p that does not start a valid UTF-8
 * sequence, or len if all of it is valid. Overlong forms, surrogates
 * (U+D800..U+DFFF) and code points above U+10FFFF are invalid. */
size_t cli_utf8_check(const void *p, size_t len);

/* Deepest nesting of arrays and objects that cli_json_check accepts (the
 * limit of the cJSON parser that consumers of this project use). */
#define CLI_JSON_MAX_DEPTH 1000

/* True if p[0..len) is one JSON value (RFC 8259) with only JSON whitespace
 * around it, in valid UTF-8, with no unpaired surrogate escape and nesting
 * at most CLI_JSON_MAX_DEPTH. Otherwise false, with *at the byte offset of
 * the problem and *why a short description. Uses no memory and no
 * recursion: any input is checked in one pass. */
bool cli_json_check(const char *p, size_t len, size_t *at, const char **why);

/* ------------------------------------------------------------- lines */

/*
 * Splits a byte stream into lines without ever holding more than a fixed
 * buffer of one line: the bytes of a line beyond cap are counted, not
 * kept. Start each line with cli_line_start (its buffer), then feed it
 * chunks of the stream until it says the line ended.
 */
struct cli_line {
	char *buf;          /* the line's first bytes go here */
	size_t cap;         /* bytes buf holds */
	size_t kept;        /* bytes stored in buf (min(len, cap)) */
	uint64_t len;       /* bytes in the line so far, its newline excluded */
	unsigned char last; /* the line's last byte so far (when len > 0) */
};
void cli_line_start(struct cli_line *l, char *buf, size_t cap);
/* Consumes p[0..n) up to and including the first newline; returns the
 * bytes consumed and sets *ended if that newline was among them. */
size_t cli_line_feed(struct cli_line *l, const char *p, size_t n, bool *ended);
/* Once a line has ended: drops the CR of a CRLF ending (not part of the
 * task), from the count and, if kept, from the buffer. */
void cli_line_strip_cr(struct cli_line *l);

/* ------------------------------------------------------- task inputs */

enum cli_input_error {
	CLI_INPUT_OK = 0,
	CLI_INPUT_NOT_INT,  /* --kind int: not an unsigned 64-bit integer */
	CLI_INPUT_TOO_BIG,  /* more bytes than the queue's max payload */
	CLI_INPUT_BAD_UTF8, /* --kind json: not valid UTF-8 */
	CLI_INPUT_BAD_JSON, /* --kind json: not one JSON value */
};

struct cli_input_result {
	int error;       /* enum cli_input_error */
	uint64_t size;   /* the input's length in bytes (CR of a CRLF excluded) */
	size_t at;       /* UTF-8 and JSON errors: the byte offset */
	const char *why; /* JSON errors: what is wrong there */
};

/* Longest line kept of an --kind int input: any longer is not an integer
 * taskq accepts (20 digits, with room for leading zeros). */
#define CLI_INT_LINE_MAX 256

/*
 * Checks one task input of kind (TQ_KIND_*) against a queue's max_payload
 * and, if it is valid, fills t (kind, and value or data/len pointing into
 * p). p[0..kept) are the input's first bytes and len its full length; when
 * kept < len the rest was not kept, and the input is refused as too long
 * (or, for integers, as not one). Returns CLI_INPUT_OK or the error, as in
 * *r.
 */
int cli_task_input(int kind, const char *p, size_t kept, uint64_t len, uint32_t max_payload, tq_task *t,
		   struct cli_input_result *r);
/* One line describing a refused input ("invalid JSON at byte 3: ..."),
 * quoting at most the first 40 bytes of p[0..kept), escaped. */
void cli_input_describe(char *buf, size_t size, const struct cli_input_result *r, const char *p, size_t kept,
			uint32_t max_payload);

/* ------------------------------------------------------------ output */

/* A JSON string literal (quotes included) holding the bytes p[0..len):
 * " and \ escaped, control bytes and DEL as \n, \t, ... or \u00XX (NUL is
 * \u0000), valid UTF-8 sequences as they are, and each byte that is not
 * part of one as \ufffd. The result is always valid UTF-8 and valid JSON.
 * cli_json_string_len is its length; out needs that plus one (a NUL). */
size_t cli_json_string_len(const void *p, size_t len);
size_t cli_json_string(char *out, const void *p, size_t len);

/* cJSON items printed exactly: cJSON keeps numbers as doubles, which
 * round integers above 2^53, so 64-bit values are raw decimal text. */
cJSON *cli_json_u64(uint64_t v);
bool cli_json_add_u64(cJSON *obj, const char *key, uint64_t v);
/* Any bytes as a JSON string (cli_json_string), as a raw item. */
bool cli_json_add_bytes(cJSON *obj, const char *key, const void *p, size_t len);
/* A payload: "data" (cli_json_string) and, only if the bytes are not valid
 * UTF-8 (so "data" shows U+FFFD for some), "data_base64": the exact bytes. */
bool cli_json_add_payload(cJSON *obj, const void *p, size_t len);
/* A task's payload for --json output. A JSON task whose bytes are one valid
 * JSON value: "data" holds that value itself, nested (its whitespace
 * outside strings removed, numbers kept exactly as written). Any other
 * task: as cli_json_add_payload; a JSON task whose bytes are not valid JSON
 * (the library does not check them) also gets "data_not_json": true. */
bool cli_json_add_task_data(cJSON *obj, int kind, const void *p, size_t len);
/* The value of a number or of a raw item made by cli_json_u64. */
bool cli_json_get_u64(const cJSON *item, uint64_t *v);

/* Standard base64 with padding; out needs 4 * ((len + 2) / 3) + 1 bytes.
 * Returns the length written (a NUL follows). */
size_t cli_base64(char *out, const void *p, size_t len);

/* Text safe for a terminal: printable ASCII as it is (backslash doubled),
 * every other byte as \xHH. Writes at most size - 1 bytes and a NUL,
 * cutting the text with "..." if it does not fit; returns out. */
char *cli_text_escape(char *out, size_t size, const void *p, size_t len);

#endif
