/* SPDX-License-Identifier: MIT */
/*
 * serve_parse.h - the pure parts of `taskq serve` (cmd_serve.c): routing a
 * request line, the Authorization header, Content-Length, the text of a
 * token file, client address keys and the connection admission rule.
 * Nothing here does I/O or uses libmicrohttpd, so fuzz/http.c can run it
 * on any input.
 */
#ifndef TQ_SERVE_PARSE_H
#define TQ_SERVE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ------------------------------------------------------------ routing */

enum serve_endpoint {
	SERVE_NOT_FOUND,
	SERVE_BAD_METHOD, /* the path exists; allow lists what it takes (405) */
	SERVE_METRICS,
	SERVE_STATS,      /* every queue */
	SERVE_STATS_ONE,  /* the queue name..name_len (may be empty: no such queue) */
	SERVE_HEALTH,
	SERVE_CLUSTER,    /* every machine's bridges (--nats) */
	SERVE_CONTROL,    /* the queue name..name_len (not empty), run state `state` */
	SERVE_PAGE,       /* the dashboard's file name..name_len: "index.html" for "/" */
	SERVE_EVENTS,     /* the queue name..name_len (may be empty) */
	SERVE_DEAD,       /* the queue name..name_len (may be empty) */
	SERVE_DEAD_ACTION, /* the queue name..name_len (not empty), task `id` (TQ_ALL: every one), `purge` or kick */
};

struct serve_route {
	enum serve_endpoint ep;
	const char *name; /* points into the url */
	size_t name_len;
	int state;        /* TQ_RUNNING..TQ_PAUSED for SERVE_CONTROL */
	uint64_t id;      /* SERVE_DEAD_ACTION: 1..UINT64_MAX - 1, or TQ_ALL (UINT64_MAX) */
	bool purge;       /* SERVE_DEAD_ACTION: purge (else kick) */
	const char *allow;
};

/* Classifies METHOD and the URL path (libmicrohttpd's, query removed):
 * GET|HEAD /metrics, /stats, /stats/NAME, /healthz, /cluster, /events/NAME,
 * /dead/NAME, / and /assets/FILE (the dashboard); POST
 * /queues/NAME/drain|stop|pause|resume and /queues/NAME/dead/ID/kick|purge
 * (ID: a task id in decimal, or "all"); anything else is not found. */
void serve_route(const char *method, const char *url, struct serve_route *out);

/* Whether a state-changing request may come from where the browser says it
 * comes from (cross-site request forgery): a request without an Origin
 * header (a command-line client) may; one with an Origin must name this
 * very server, "http://" or "https://" followed by the Host header (host
 * and port, in any case); "null" and any other origin may not. A
 * Sec-Fetch-Site header of "cross-site" or "same-site" (another port or
 * subdomain of the same site) is refused as well. origin, host and
 * fetch_site may each be NULL (absent). */
bool serve_origin_allowed(const char *origin, const char *host, const char *fetch_site);

/* ------------------------------------------------------ authentication */

/* The token in an Authorization value "Bearer TOKEN" (scheme name in any
 * case, blanks around the token ignored): returns where it starts in h and
 * sets *len, capped at max + 1 so that a comparison stays bounded (and
 * still fails); NULL when the scheme is not Bearer. */
const char *serve_bearer(const char *h, size_t max, size_t *len);

/* Compares a presented token with the configured one in time that depends
 * only on their lengths: every byte of the longer one is looked at, the
 * differences are OR-ed together, there is no early exit. */
bool serve_token_matches(const char *given, size_t glen, const char *want, size_t wlen);

/* ------------------------------------------------------------- headers */

/* A Content-Length value: true with *v when it is 1..20 digits and at most
 * max; false otherwise (too large, or not a plain decimal number). */
bool serve_content_length(const char *s, uint64_t max, uint64_t *v);

/* --------------------------------------------------------- token files */

enum serve_token_err {
	SERVE_TOKEN_OK,
	SERVE_TOKEN_EMPTY,    /* the first line is empty or only blanks */
	SERVE_TOKEN_TOO_LONG, /* over max characters */
	SERVE_TOKEN_BAD_CHAR, /* a space, control (NUL too) or non-ASCII byte */
};

/* The token in the first bytes of a token file: its first line, trailing
 * blanks and CR removed, must be 1..max visible ASCII characters. buf holds
 * the len bytes read; more: the file went on past them (the read stopped
 * at its bound, not at the end of the file). On success the token is copied
 * into out (size > max) with a NUL. */
enum serve_token_err serve_token_text(const char *buf, size_t len, bool more, size_t max, char *out,
				      size_t size);

/* ----------------------------------------------------- connection limits */

/* A client address as the per-address limit counts it: IPv4 (also when
 * IPv4-mapped in IPv6) by the whole address; IPv6 by its /64, which one
 * machine usually has whole; anything else as one "unknown" address. */
struct serve_addr {
	unsigned char b[16];
};

void serve_addr_key(const struct sockaddr *sa, socklen_t len, struct serve_addr *key);
bool serve_addr_equal(const struct serve_addr *a, const struct serve_addr *b);

struct serve_limits {
	unsigned max;      /* connections open at once, at most */
	unsigned per_addr; /* of which from one client address */
	unsigned reserved; /* the last `reserved` of max: only for addresses holding none */
};

enum serve_admit {
	SERVE_ADMIT,
	SERVE_REFUSE_PER_ADDR, /* the address holds per_addr already */
	SERVE_REFUSE_FULL,     /* max are open */
	SERVE_REFUSE_RESERVE,  /* only reserved slots are left and the address holds one */
};

/* Whether to take a new connection from an address that holds from_addr of
 * the total open now. */
enum serve_admit serve_admit(const struct serve_limits *l, unsigned total, unsigned from_addr);

/* ------------------------------------------------------ listen address */

/* Splits a listen address: "ADDR:PORT", "[IPV6]:PORT", "HOST:PORT" or
 * ":PORT" (host "127.0.0.1"), PORT 0..65535 in at most 5 digits. On
 * success the host goes to host (NUL-ended) and *port points into s; on
 * failure why says what is wrong. Used by taskq serve --listen and the
 * demo's --serve, which then resolve the host. */
bool serve_split_listen(const char *s, char *host, size_t host_size, const char **port, char *why,
			size_t why_size);

#endif
