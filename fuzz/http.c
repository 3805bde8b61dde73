/* SPDX-License-Identifier: MIT */
/*
 * http.c - libFuzzer target for the request handling that `taskq serve`
 * does itself (tools/serve_parse.c; libmicrohttpd parses HTTP before it):
 * arbitrary bytes, the first choosing the case, the rest its input.
 * Besides the sanitizers' checks, each case checks what can be checked of
 * its result:
 *   route    METHOD PATH (split at the first space): a queue name lies in
 *            the path, a control name is not empty and has no slash, a
 *            verb's state is a run state and needs POST; a 405 says what
 *            the path allows; the fixed paths are exactly themselves
 *   bearer   an Authorization value: the token found lies in it, has no
 *            blank at either end, is capped at the maximum + 1; it matches
 *            itself, not itself with a byte changed, nor a shorter prefix
 *   length   Content-Length agrees with a digit-by-digit reference
 *   token    a token file's first bytes: an accepted token is 1..max
 *            visible ASCII characters, the start of the first line with
 *            only blanks after it; each refusal has its reason
 *   admit    a script of connects and disconnects from 8 addresses under
 *            limits from the input: the limits always hold; an address
 *            that holds none gets in while a slot is free; one that holds
 *            some never takes a reserved slot
 *   origin   Origin, Host and Sec-Fetch-Site (split at NULs): allowed only
 *            with no Origin, or one that is http(s):// and the Host, and
 *            never with a cross-site or same-site Sec-Fetch-Site
 *   addr     IPv4 and IPv4-mapped IPv6 give one key; IPv6 addresses that
 *            differ past their /64 share one, in it they do not
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve_parse.h"
#include "taskq.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static void fuzz_route(const uint8_t *p, size_t n)
{
	char *in = cstr(p, n);
	char *sp = strchr(in, ' ');
	const char *method = in, *url = "";
	struct serve_route rt;

	if (sp) {
		*sp = '\0';
		url = sp + 1;
	}
	serve_route(method, url, &rt);
	size_t ul = strlen(url);
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	switch (rt.ep) {
	case SERVE_NOT_FOUND:
		CHECK(strcmp(url, "/metrics") && strcmp(url, "/stats") && strcmp(url, "/healthz") &&
		      strncmp(url, "/stats/", 7) && strcmp(url, "/") && strcmp(url, "/favicon.ico") && strcmp(url, "/cluster") && strncmp(url, "/assets/", 8) &&
		      strncmp(url, "/events/", 8) && strncmp(url, "/dead/", 6));
		break;
	case SERVE_PAGE:
		CHECK(get && (!strcmp(url, "/")		   ? rt.name_len == 10 && !memcmp(rt.name, "index.html", 10)
			      : !strcmp(url, "/favicon.ico") ? rt.name_len == 11 && !memcmp(rt.name, "favicon.svg", 11)
							     : !strncmp(url, "/assets/", 8) && rt.name == url + 8 &&
								       rt.name_len == ul - 8));
		break;
	case SERVE_EVENTS:
		CHECK(get && !strncmp(url, "/events/", 8) && rt.name == url + 8 && rt.name_len == ul - 8);
		break;
	case SERVE_DEAD:
		CHECK(get && !strncmp(url, "/dead/", 6) && rt.name == url + 6 && rt.name_len == ul - 6);
		break;
	case SERVE_DEAD_ACTION: {
		CHECK(!strcmp(method, "POST") && !strncmp(url, "/queues/", 8));
		CHECK(rt.name == url + 8 && rt.name_len > 0 && !memchr(rt.name, '/', rt.name_len));
		CHECK(!strncmp(rt.name + rt.name_len, "/dead/", 6));
		const char *id = rt.name + rt.name_len + 6, *verb = strchr(id, '/');
		CHECK(verb && !strcmp(verb + 1, rt.purge ? "purge" : "kick"));
		if (rt.id == UINT64_MAX)
			CHECK(verb - id == 3 && !memcmp(id, "all", 3));
		else
			CHECK(verb > id && strspn(id, "0123456789") == (size_t)(verb - id) &&
			      strtoull(id, NULL, 10) == rt.id);
		break;
	}
	case SERVE_BAD_METHOD:
		CHECK(rt.allow);
		if (!strcmp(rt.allow, "POST"))
			CHECK(!strncmp(url, "/queues/", 8) && strcmp(method, "POST"));
		else
			CHECK(!strcmp(rt.allow, "GET, HEAD") && !get);
		break;
	case SERVE_METRICS:
		CHECK(get && !strcmp(url, "/metrics"));
		break;
	case SERVE_STATS:
		CHECK(get && !strcmp(url, "/stats"));
		break;
	case SERVE_HEALTH:
		CHECK(get && !strcmp(url, "/healthz"));
		break;
	case SERVE_CLUSTER:
		CHECK(get && !strcmp(url, "/cluster"));
		break;
	case SERVE_STATS_ONE:
		CHECK(get && !strncmp(url, "/stats/", 7));
		CHECK(rt.name == url + 7 && rt.name_len == ul - 7);
		break;
	case SERVE_CONTROL:
		CHECK(!strcmp(method, "POST") && !strncmp(url, "/queues/", 8));
		CHECK(rt.name == url + 8 && rt.name_len > 0 && 8 + rt.name_len < ul);
		CHECK(!memchr(rt.name, '/', rt.name_len) && rt.name[rt.name_len] == '/');
		CHECK(rt.state >= TQ_RUNNING && rt.state <= TQ_PAUSED);
		break;
	default:
		CHECK(!"an endpoint out of range");
	}
	free(in);
}

static void fuzz_origin(const uint8_t *p, size_t n)
{
	/* three strings, NUL-separated; a missing one is absent (NULL) */
	char *in = malloc(n + 3);
	if (!in)
		return;
	memcpy(in, p, n);
	in[n] = in[n + 1] = in[n + 2] = '\0';
	const char *origin = in, *host = in + strlen(in) + 1;
	const char *site = host <= in + n ? host + strlen(host) + 1 : NULL;
	if (host > in + n)
		host = NULL;
	if (site && site > in + n)
		site = NULL;
	bool ok = serve_origin_allowed(*origin ? origin : NULL, host, site);
	const char *rest = !strncasecmp(origin, "http://", 7) ? origin + 7 : !strncasecmp(origin, "https://", 8) ? origin + 8 : NULL;
	bool want = !(site && (!strcasecmp(site, "cross-site") || !strcasecmp(site, "same-site"))) &&
		    (!*origin || (rest && host && *host && !strcasecmp(rest, host)));
	CHECK(ok == want);
	free(in);
}

static void fuzz_bearer(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	size_t max = 1 + p[0] % 64, len;
	char *h = cstr(p + 1, n - 1);
	const char *t = serve_bearer(h, max, &len);

	if (!t) {
		CHECK(len == 0 && strncasecmp(h, "Bearer ", 7));
		free(h);
		return;
	}
	size_t hl = strlen(h);
	CHECK(!strncasecmp(h, "Bearer ", 7) && t >= h + 7 && t <= h + hl);
	CHECK(len <= max + 1 && len <= strlen(t));
	for (const char *b = h + 7; b < t; b++)
		CHECK(blank(*b));
	if (len) {
		CHECK(!blank(t[0]));
		if (len <= max) {
			CHECK(!blank(t[len - 1]));
			for (size_t i = len; t[i]; i++)
				CHECK(blank(t[i]));
		}
	}
	CHECK(serve_token_matches(t, len, t, len));
	if (len) {
		char *c = malloc(len);
		CHECK(c);
		memcpy(c, t, len);
		c[len - 1] ^= 1;
		CHECK(!serve_token_matches(c, len, t, len));
		CHECK(!serve_token_matches(t, len - 1, t, len));
		CHECK(!serve_token_matches(t, len, t, len - 1));
		free(c);
	}
	free(h);
}

static void fuzz_length(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	uint64_t max = p[0] & 1 ? 4096 : UINT64_MAX, v = 0;
	char *s = cstr(p + 1, n - 1);
	bool ok = serve_content_length(s, max, &v);

	size_t sl = strlen(s);
	bool digits = sl >= 1 && sl <= 20 && strspn(s, "0123456789") == sl;
	unsigned __int128 x = 0;
	for (size_t i = 0; digits && i < sl; i++)
		x = x * 10 + (unsigned)(s[i] - '0');
	CHECK(ok == (digits && x <= max));
	if (ok)
		CHECK(v == (uint64_t)x);
	free(s);
}

static void fuzz_token(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	size_t max = 1 + (p[0] & 0x7f) % 64;
	bool more = p[0] & 0x80;
	const char *buf = (const char *)p + 1;
	size_t len = n - 1;
	char out[80];

	memset(out, 0x5a, sizeof(out));
	enum serve_token_err e = serve_token_text(buf, len, more, max, out, sizeof(out));
	const char *nl = memchr(buf, '\n', len);
	size_t line = nl ? (size_t)(nl - buf) : len, trimmed = line;
	while (trimmed && (buf[trimmed - 1] == '\r' || blank(buf[trimmed - 1])))
		trimmed--;
	bool bad = false;
	for (size_t i = 0; i < trimmed; i++)
		bad |= (unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f;
	switch (e) {
	case SERVE_TOKEN_OK: {
		size_t ol = strlen(out);
		CHECK(ol >= 1 && ol <= max && ol == trimmed && !(more && !nl) && !bad);
		CHECK(!memcmp(out, buf, ol));
		for (size_t i = 0; i < ol; i++)
			CHECK(out[i] > 0x20 && out[i] < 0x7f);
		break;
	}
	case SERVE_TOKEN_EMPTY:
		CHECK(trimmed == 0 && !(more && !nl));
		break;
	case SERVE_TOKEN_TOO_LONG:
		CHECK((more && !nl) || trimmed > max);
		break;
	case SERVE_TOKEN_BAD_CHAR:
		CHECK(bad && trimmed <= max && !(more && !nl));
		break;
	default:
		CHECK(!"a result out of range");
	}
	if (e != SERVE_TOKEN_OK)
		CHECK((unsigned char)out[0] == 0x5a); /* nothing written on refusal */
}

static void fuzz_admit(const uint8_t *p, size_t n)
{
	if (n < 3)
		return;
	struct serve_limits l;
	l.max = 1 + p[0] % 32;
	l.per_addr = 1 + p[1] % l.max;
	l.reserved = p[2] % l.max;
	unsigned held[8] = {0}, total = 0;

	for (size_t i = 3; i < n; i++) {
		unsigned a = p[i] & 7;
		if (p[i] & 0x80) {
			if (held[a]) {
				held[a]--;
				total--;
			}
			continue;
		}
		enum serve_admit r = serve_admit(&l, total, held[a]);
		switch (r) {
		case SERVE_ADMIT:
			CHECK(total < l.max && held[a] < l.per_addr);
			if (held[a])
				CHECK(total < l.max - l.reserved); /* never a reserved slot */
			held[a]++;
			total++;
			break;
		case SERVE_REFUSE_PER_ADDR:
			CHECK(held[a] >= l.per_addr);
			break;
		case SERVE_REFUSE_FULL:
			CHECK(total >= l.max);
			break;
		case SERVE_REFUSE_RESERVE:
			CHECK(held[a] > 0 && total >= l.max - l.reserved);
			break;
		default:
			CHECK(!"a decision out of range");
		}
		/* the reserve's promise: a newcomer gets in while a slot is free */
		if (held[a] == 0 && total < l.max)
			CHECK(r == SERVE_ADMIT);
		CHECK(total <= l.max && held[a] <= l.per_addr);
	}
	/* any limits at all (even inconsistent ones) give some answer */
	struct serve_limits odd = {p[0], p[1], p[2]};
	enum serve_admit r = serve_admit(&odd, p[n - 1], p[n - 2]);
	CHECK(r >= SERVE_ADMIT && r <= SERVE_REFUSE_RESERVE);
}

static void fuzz_addr(const uint8_t *p, size_t n)
{
	uint8_t b[16] = {0};
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6}, m6 = {.sin6_family = AF_INET6};
	struct serve_addr k1, k2, unknown;

	memcpy(b, p, n < 16 ? n : 16);
	memset(unknown.b, 0xff, sizeof(unknown.b));
	/* an IPv4 client and the same as IPv4-mapped IPv6: one key */
	memcpy(&in4.sin_addr, b, 4);
	m6.sin6_addr.s6_addr[10] = m6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&m6.sin6_addr.s6_addr[12], b, 4);
	serve_addr_key((struct sockaddr *)&in4, sizeof(in4), &k1);
	serve_addr_key((struct sockaddr *)&m6, sizeof(m6), &k2);
	CHECK(serve_addr_equal(&k1, &k2) && serve_addr_equal(&k1, &k1));
	/* IPv6: one /64 is one key; another /64 another */
	memcpy(&in6.sin6_addr, b, 16);
	bool mapped = !memcmp(b, m6.sin6_addr.s6_addr, 12);
	serve_addr_key((struct sockaddr *)&in6, sizeof(in6), &k1);
	in6.sin6_addr.s6_addr[8 + (n ? p[0] % 8 : 0)] ^= 0x5a;
	bool mapped2 = !memcmp(in6.sin6_addr.s6_addr, m6.sin6_addr.s6_addr, 12); /* the change may map it */
	serve_addr_key((struct sockaddr *)&in6, sizeof(in6), &k2);
	CHECK(serve_addr_equal(&k1, &k2) == (!mapped && !mapped2));
	in6.sin6_addr.s6_addr[n > 1 ? p[1] % 8 : 0] ^= 0x01;
	serve_addr_key((struct sockaddr *)&in6, sizeof(in6), &k2);
	CHECK(!serve_addr_equal(&k1, &k2));
	/* short, unknown or missing: the one "unknown" key, and no overread */
	serve_addr_key((struct sockaddr *)&in6, sizeof(in6) - 1, &k1);
	CHECK(serve_addr_equal(&k1, &unknown));
	serve_addr_key((struct sockaddr *)&in4, sizeof(in4) - 1, &k1);
	CHECK(serve_addr_equal(&k1, &unknown));
	in4.sin_family = AF_UNIX;
	serve_addr_key((struct sockaddr *)&in4, sizeof(in4), &k1);
	CHECK(serve_addr_equal(&k1, &unknown));
	serve_addr_key(NULL, 0, &k1);
	CHECK(serve_addr_equal(&k1, &unknown));
}

/* A listen address: either split into a host that fits and a port of 1-5
 * digits up to 65535 that ends the input, or refused with a reason. */
static void fuzz_listen(const uint8_t *p, size_t n)
{
	char s[300], host[64], why[128];
	const char *port = NULL;

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, p, n);
	s[n] = '\0';
	memset(host, 0x5a, sizeof(host));
	why[0] = '\0';
	if (serve_split_listen(s, host, sizeof(host), &port, why, sizeof(why))) {
		CHECK(port > s && port <= s + strlen(s) && port[-1] == ':');
		size_t pl = strlen(port);
		CHECK(pl >= 1 && pl <= 5 && strspn(port, "0123456789") == pl && strtoul(port, NULL, 10) <= 65535);
		CHECK(memchr(host, '\0', sizeof(host)) != NULL && host[0]);
	} else {
		CHECK(why[0] != '\0');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 8) {
	case 0: fuzz_route(p, n); break;
	case 1: fuzz_bearer(p, n); break;
	case 2: fuzz_length(p, n); break;
	case 3: fuzz_token(p, n); break;
	case 4: fuzz_admit(p, n); break;
	case 5: fuzz_addr(p, n); break;
	case 6: fuzz_listen(p, n); break;
	case 7: fuzz_origin(p, n); break;
	}
	return 0;
}
