/* SPDX-License-Identifier: MIT */
/*
 * serve_parse.c - the pure parts of `taskq serve`; see serve_parse.h.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "taskq.h"
#include "serve_parse.h"

/* ------------------------------------------------------------ routing */

static const struct {
	const char *verb;
	int state;
} verbs[] = {
	{"drain", TQ_DRAINING}, {"stop", TQ_STOPPED}, {"pause", TQ_PAUSED}, {"resume", TQ_RUNNING},
};

/* A dead task's id in a path: 1..20 digits below UINT64_MAX (TQ_ALL), or
 * "all" for every one. */
static bool parse_task_id(const char *s, size_t len, uint64_t *id)
{
	if (len == 3 && !memcmp(s, "all", 3)) {
		*id = TQ_ALL;
		return true;
	}
	if (!len || len > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - 1 - d) / 10)
			return false; /* UINT64_MAX itself is TQ_ALL: "all" says that */
		v = v * 10 + d;
	}
	*id = v;
	return true;
}

/* The GET paths: exact, or a prefix followed by a name. */
static const struct {
	const char *path;
	bool prefix;
	enum serve_endpoint ep;
} gets[] = {
	{"/metrics", false, SERVE_METRICS}, {"/healthz", false, SERVE_HEALTH}, {"/stats", false, SERVE_STATS},
	{"/cluster", false, SERVE_CLUSTER},
	{"/stats/", true, SERVE_STATS_ONE}, {"/events/", true, SERVE_EVENTS}, {"/dead/", true, SERVE_DEAD},
	{"/assets/", true, SERVE_PAGE},     {"/", false, SERVE_PAGE},      {"/favicon.ico", false, SERVE_PAGE},
};

void serve_route(const char *method, const char *url, struct serve_route *out)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	memset(out, 0, sizeof(*out));
	out->ep = SERVE_NOT_FOUND;
	for (size_t g = 0; g < sizeof(gets) / sizeof(gets[0]); g++) {
		size_t pl = strlen(gets[g].path);
		if (gets[g].prefix ? strncmp(url, gets[g].path, pl) : strcmp(url, gets[g].path))
			continue;
		if (!get) {
			out->ep = SERVE_BAD_METHOD;
			out->allow = "GET, HEAD";
			return;
		}
		out->ep = gets[g].ep;
		if (gets[g].prefix) {
			out->name = url + pl;
			out->name_len = strlen(url + pl);
		} else if (gets[g].ep == SERVE_PAGE && url[1]) {
			/* what a browser asks for beside any page it shows from
			 * here (a refused form's answer too) */
			out->name = "favicon.svg";
			out->name_len = 11;
		} else if (gets[g].ep == SERVE_PAGE) {
			out->name = "index.html";
			out->name_len = 10;
		}
		return;
	}
	if (strncmp(url, "/queues/", 8))
		return;
	/* /queues/NAME/VERB: NAME up to the first slash, so /queues/a/b/drain
	 * is no route (names have no slash) */
	const char *name = url + 8, *slash = strchr(name, '/');
	if (!slash || slash == name)
		return;
	const char *rest = slash + 1;
	enum serve_endpoint ep = SERVE_NOT_FOUND;
	if (!strncmp(rest, "dead/", 5)) {
		/* /queues/NAME/dead/ID/kick|purge */
		const char *id = rest + 5, *s2 = strchr(id, '/');
		if (s2 && (!strcmp(s2 + 1, "kick") || !strcmp(s2 + 1, "purge")) &&
		    parse_task_id(id, (size_t)(s2 - id), &out->id)) {
			ep = SERVE_DEAD_ACTION;
			out->purge = !strcmp(s2 + 1, "purge");
		}
	} else {
		for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
			if (!strcmp(rest, verbs[v].verb)) {
				ep = SERVE_CONTROL;
				out->state = verbs[v].state;
			}
	}
	if (ep == SERVE_NOT_FOUND) {
		out->id = 0;
		return;
	}
	if (strcmp(method, "POST")) {
		memset(out, 0, sizeof(*out));
		out->ep = SERVE_BAD_METHOD;
		out->allow = "POST";
		return;
	}
	out->ep = ep;
	out->name = name;
	out->name_len = (size_t)(slash - name);
}

bool serve_origin_allowed(const char *origin, const char *host, const char *fetch_site)
{
	if (fetch_site && (!strcasecmp(fetch_site, "cross-site") || !strcasecmp(fetch_site, "same-site")))
		return false;
	if (!origin)
		return true;
	if (!host || !*host)
		return false;
	if (!strncasecmp(origin, "http://", 7))
		origin += 7;
	else if (!strncasecmp(origin, "https://", 8))
		origin += 8;
	else
		return false; /* "null" (a sandboxed or file: page), another scheme */
	return !strcasecmp(origin, host);
}

/* ------------------------------------------------------ authentication */

const char *serve_bearer(const char *h, size_t max, size_t *len)
{
	*len = 0;
	if (!h || strncasecmp(h, "Bearer ", 7))
		return NULL;
	h += 7;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	/* compare a prefix of an overlong token: still a mismatch, in bounded time */
	*len = n > max ? max + 1 : n;
	return h;
}

bool serve_token_matches(const char *given, size_t glen, const char *want, size_t wlen)
{
	size_t n = glen > wlen ? glen : wlen;
	volatile unsigned char acc = (unsigned char)(glen != wlen);

	for (size_t i = 0; i < n; i++) {
		unsigned char g = i < glen ? (unsigned char)given[i] : 0;
		unsigned char w = i < wlen ? (unsigned char)want[i] : 0;
		acc = (unsigned char)(acc | (g ^ w));
	}
	return acc == 0;
}

/* ------------------------------------------------------------- headers */

bool serve_content_length(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	size_t i = 0;

	/* digits only: strtoull would also take blanks, a sign and wrap "-1" */
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 20)
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	if (i == 0 || s[i] != '\0' || x > max)
		return false;
	*v = x;
	return true;
}

/* --------------------------------------------------------- token files */

enum serve_token_err serve_token_text(const char *buf, size_t len, bool more, size_t max, char *out,
				      size_t size)
{
	const char *nl = memchr(buf, '\n', len);
	size_t n = nl ? (size_t)(nl - buf) : len;

	if (!nl && more)
		return SERVE_TOKEN_TOO_LONG; /* the first line goes on past what was read */
	while (n && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	if (!n)
		return SERVE_TOKEN_EMPTY;
	if (n > max || n >= size)
		return SERVE_TOKEN_TOO_LONG;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
			return SERVE_TOKEN_BAD_CHAR;
	memcpy(out, buf, n);
	out[n] = '\0';
	return SERVE_TOKEN_OK;
}

/* ----------------------------------------------------- connection limits */

void serve_addr_key(const struct sockaddr *sa, socklen_t len, struct serve_addr *key)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(key->b, 0xff, sizeof(key->b)); /* unknown */
	if (!sa)
		return;
	if (sa->sa_family == AF_INET && (size_t)len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(key->b, mapped, sizeof(mapped));
		memcpy(key->b + 12, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && (size_t)len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key->b, &in6->sin6_addr, 16);
		/* an IPv4 client of a dual-stack socket counts as its IPv4 address;
		 * any other IPv6 client by its /64 (one host's usual share) */
		if (memcmp(key->b, mapped, sizeof(mapped)))
			memset(key->b + 8, 0, 8);
	}
}

bool serve_addr_equal(const struct serve_addr *a, const struct serve_addr *b)
{
	return !memcmp(a->b, b->b, sizeof(a->b));
}

enum serve_admit serve_admit(const struct serve_limits *l, unsigned total, unsigned from_addr)
{
	if (from_addr >= l->per_addr)
		return SERVE_REFUSE_PER_ADDR;
	if (total >= l->max)
		return SERVE_REFUSE_FULL;
	/* The reserve: once only `reserved` slots are left, they go to addresses
	 * that hold no connection yet, so that clients which already hold some
	 * (however many addresses they come from) cannot take the last ones
	 * from a newcomer such as a health check. */
	unsigned shared = l->reserved < l->max ? l->max - l->reserved : 0;
	if (total >= shared && from_addr > 0)
		return SERVE_REFUSE_RESERVE;
	return SERVE_ADMIT;
}

/* ------------------------------------------------------ listen address */

bool serve_split_listen(const char *s, char *host, size_t host_size, const char **port, char *why,
			size_t why_size)
{
	size_t hlen;
	const char *h, *pt;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1) {
			snprintf(why, why_size, "an IPv6 address in brackets, then :PORT ([::1]:9740)");
			return false;
		}
		if (close[1] != ':') {
			snprintf(why, why_size, "no port: give [IPV6]:PORT, e.g. [::1]:9740");
			return false;
		}
		h = s + 1;
		hlen = (size_t)(close - s - 1);
		pt = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon) {
			snprintf(why, why_size, "no port: give ADDR:PORT, e.g. 127.0.0.1:9740");
			return false;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(why, why_size, "an IPv6 address goes in brackets: [ADDR]:PORT");
			return false;
		}
		h = s;
		hlen = (size_t)(colon - s);
		pt = colon + 1;
	}
	if (hlen >= host_size) {
		snprintf(why, why_size, "the host name is too long");
		return false;
	}
	size_t plen = strlen(pt);
	unsigned long v = 0;
	bool digits = plen >= 1 && plen <= 5;
	for (size_t i = 0; digits && i < plen; i++) {
		if (pt[i] < '0' || pt[i] > '9')
			digits = false;
		else
			v = v * 10 + (unsigned long)(pt[i] - '0');
	}
	if (!digits || v > 65535) {
		snprintf(why, why_size, "the port must be a number from 0 to 65535 (0: any free port)");
		return false;
	}
	if (hlen)
		memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (!hlen)
		snprintf(host, host_size, "127.0.0.1");
	*port = pt;
	return true;
}
