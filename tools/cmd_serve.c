/* SPDX-License-Identifier: MIT */
/*
 * cmd_serve.c - taskq serve: Prometheus metrics, JSON stats and run-state
 * control of one or more queues over HTTP (libmicrohttpd).
 *
 *   GET  /metrics                      Prometheus text format 0.0.4
 *   GET  /stats, /stats/NAME           the `taskq stats --json` snapshot
 *   GET  /healthz                      {"status":"ok","queues":{NAME:STATE}}
 *   GET  /cluster                      every machine's bridges (--nats; serve_cluster.c)
 *   GET  /, /assets/FILE               the dashboard (tools/web/, built in)
 *   GET  /events/NAME, /dead/NAME      recent events, dead letters (serve_web.c)
 *   POST /queues/NAME/drain|stop|pause|resume   needs Authorization: Bearer
 *   POST /queues/NAME/dead/ID/kick|purge        (and an Origin of this server)
 *
 * One internal thread of libmicrohttpd (epoll, non-blocking sockets)
 * handles every connection, so a slow client costs a descriptor and its
 * buffer, never a thread, and cannot hold up the others. Every accept goes
 * through the limits here (per client address, in all, and a reserve for
 * newcomers); the main thread waits for SIGINT / SIGTERM and closes
 * connections past their deadline (a request that takes too long to
 * arrive, an answer not read, a kept-alive connection left idle). HTTP
 * parsing is libmicrohttpd's: requests it finds malformed are answered by it
 * (400, 413, 414, 431, 505) or closed, before they reach the handler here.
 * The pure parts (routing, the Authorization header, the token file's text,
 * the admission rule) are in serve_parse.c, the /metrics text in
 * serve_metrics.c. Every answer composed here is JSON, errors as
 * {"error": "..."}; see docs/http.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "cli.h"
#include "log.h"
#include "serve.h"
#include "serve_parse.h"
#include "web.h"

#define BODY_MAX 4096            /* request body bytes accepted */
#define SERVE_DEAD_MAX 100       /* dead letters listed by /dead */
#define CONN_MEMORY (16 * 1024)  /* per-connection buffer: request line + headers */
#define DEFAULT_LISTEN "127.0.0.1:9740"
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_REQUEST_TIMEOUT_S 5   /* or --timeout, if that is shorter */
#define DEFAULT_MAX_CONNS 512         /* 8 MiB of connection buffers at most */
#define DEFAULT_MAX_PER_ADDR 16        /* or --max-connections, if less */
#define DEFAULT_RESERVED_SHARE 8       /* an eighth of --max-connections: 64 of 512 (help says so) */
#define MAX_CONNS_LIMIT 10000
#define FD_SPARE 64                   /* descriptors besides connections: listener, epoll, logs, stdio */
#define REFUSED_LOG_NS (10 * 1000000000ull) /* connections_refused: at most one line per 10 s */
#define PEM_MAX (1024 * 1024)         /* --tls-cert / --tls-key bytes read at most */
/* TLS 1.2 and 1.3 only, GnuTLS's usual choice of ciphers within them. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Per request: survives the handler's calls for one request. */
struct request {
	size_t body;          /* body bytes received so far */
	bool bad_token;       /* credentials were sent and were wrong */
	const char *allow;    /* for a 405: the methods allowed */
	unsigned status;      /* status queued, for the access log */
	char method[16];
	char url[200];
};

/*
 * Connections. Each one is recorded here from accept to close, for two
 * reasons.
 *
 * Limits. libmicrohttpd's own connection limit, once reached, stops
 * accepting altogether: new clients wait in the kernel's backlog until some
 * connection closes, so a few dozen slow clients starve a health check; and
 * its per-IP limit knows only whole addresses. So every accept goes through
 * admit_connection (its accept policy callback), which counts this table:
 * at most --max-connections-per-ip from one client address, --max-connections
 * in all, the last --reserved-connections of them only for an address that
 * holds none (serve_admit). A refused connection is closed at once, and the
 * listening socket goes on being served: libmicrohttpd's limit is set one
 * above ours, so it is never the one that decides.
 *
 * Deadlines. libmicrohttpd closes a connection idle for long, but one that
 * trickles a byte now and then (slowloris) is never idle. So each connection
 * has a deadline for its current phase, and the main thread shuts down the
 * socket of one past it (libmicrohttpd then closes it):
 *   request    the whole request within --request-timeout of the accept, or,
 *              on a kept-alive connection, of its request line
 *   answer     the answer taken by the client within --timeout of its queuing
 *   idle       a kept-alive connection's next request line within --timeout
 * A record leaves the table (under the lock) when libmicrohttpd reports the
 * connection closed, which it does before it closes the descriptor, so the
 * sweep never touches a reused descriptor.
 *
 * libmicrohttpd calls every callback below from its one thread, so counting
 * and admitting cannot interleave; the lock is for the main thread (the
 * sweep, the refusal log) and /metrics.
 */
struct conn_track {
	int fd;              /* -1: free */
	bool shut;           /* already shut down by the sweep */
	enum phase phase;
	uint64_t since_ns;   /* the phase's start */
	uint64_t deadline_ns;
	struct serve_addr addr;
	char peer[INET6_ADDRSTRLEN + 1];
};

static struct conn_track *tracks; /* ntracks = libmicrohttpd's limit: never short */
static size_t ntracks;
static pthread_mutex_t tracks_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t request_ns, timeout_ns; /* --request-timeout, --timeout */

/* Under tracks_mu; shown in /metrics. */
static struct serve_conn_stats cstats;

const char *const serve_refusal_names[4] = {"", "per_ip", "full", "reserve"};
const char *const serve_phase_names[3] = {"request", "answer", "idle"};

void serve_conn_stats_get(struct serve_conn_stats *out)
{
	pthread_mutex_lock(&tracks_mu);
	*out = cstats;
	pthread_mutex_unlock(&tracks_mu);
}

/* Moves connection c to phase ph, with a deadline limit_ns from now; with
 * keep_earlier, an earlier deadline it has stays (a request line on a
 * kept-alive connection does not extend its idle deadline). */
static void track_phase(struct MHD_Connection *c, enum phase ph, uint64_t limit_ns, bool keep_earlier)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_track *t = ci ? ci->socket_context : NULL;
	uint64_t now = tq_now_ns();

	if (!t)
		return;
	pthread_mutex_lock(&tracks_mu);
	if (t->phase != ph)
		t->since_ns = now;
	t->phase = ph;
	if (!keep_earlier || now + limit_ns < t->deadline_ns)
		t->deadline_ns = now + limit_ns;
	pthread_mutex_unlock(&tracks_mu);
}

/* ------------------------------------------------------------ responses */

static enum MHD_Result respond(struct MHD_Connection *c, struct request *r, unsigned status,
			       const char *type, char *body, size_t len, bool must_free)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (!strncmp(type, "text/html", 9)) {
		/* The dashboard: its own files only, never framed (its buttons
		 * must not be clicked through another site's page). */
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
					"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
		MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	}
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					r->bad_token ? "Bearer realm=\"taskq\", error=\"invalid_token\""
						: "Bearer realm=\"taskq\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	if (ret == MHD_YES)
		track_phase(c, PH_ANSWER, timeout_ns, false);
	return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, struct request *r, unsigned status, cJSON *o)
{
	char *txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!txt)
		return MHD_NO;
	size_t len = strlen(txt);
	/* cJSON_free is free() unless hooks are installed (they are not). */
	char *body = malloc(len + 2);
	if (!body) {
		cJSON_free(txt);
		return MHD_NO;
	}
	memcpy(body, txt, len);
	body[len++] = '\n';
	cJSON_free(txt);
	return respond(c, r, status, "application/json", body, len, true);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, struct request *r, unsigned status,
				     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result respond_error(struct MHD_Connection *c, struct request *r, unsigned status,
				     const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote the request (a path, decoded by libmicrohttpd):
	 * keep them printable ASCII, so that the JSON is valid UTF-8. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", msg);
	return respond_json(c, r, status, o);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, struct request *r, const char *allow)
{
	r->allow = allow;
	return respond_error(c, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here; allowed: %s",
			     r->method, allow);
}

/* ------------------------------------------------------------- helpers */

static struct served *find_queue(struct server *srv, const char *name, size_t len)
{
	for (size_t i = 0; i < srv->nqueues; i++)
		if (strlen(srv->queues[i].name) == len && !strncmp(srv->queues[i].name, name, len))
			return &srv->queues[i];
	return NULL;
}

/* 0: authorized; else the status to answer (401), with *sent saying
 * whether some credentials were presented. */
static unsigned check_auth(struct server *srv, struct MHD_Connection *c, bool *sent)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	size_t len;

	*sent = h != NULL;
	const char *given = serve_bearer(h, CLI_TOKEN_MAX, &len);
	if (!given)
		return MHD_HTTP_UNAUTHORIZED;
	return serve_token_matches(given, len, srv->token, srv->token_len) ? 0 : MHD_HTTP_UNAUTHORIZED;
}

static const char *addr_name(const struct sockaddr *sa, char *out, size_t size)
{
	snprintf(out, size, "?");
	if (!sa)
		return out;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)size);
	return out;
}

static const char *peer_name(struct MHD_Connection *c, char *out, size_t size)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return addr_name(ci ? ci->client_addr : NULL, out, size);
}

static void copy_printable(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

/* ------------------------------------------------------------- handlers */

static enum MHD_Result get_metrics(struct server *srv, struct MHD_Connection *c, struct request *r)
{
	struct buf b = {0};
	int rc = serve_render_metrics(srv, &b);

	if (rc) {
		free(b.p);
		return respond_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading the queues: %s", tq_strerror(rc));
	}
	return respond(c, r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, true);
}

static enum MHD_Result get_stats(struct server *srv, struct MHD_Connection *c, struct request *r,
				 struct served *one)
{
	if (one)
		return respond_json(c, r, MHD_HTTP_OK, cli_stats_json(one->q, one->name, true, true));
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "queues");
	for (size_t i = 0; i < srv->nqueues; i++)
		cJSON_AddItemToArray(arr, cli_stats_json(srv->queues[i].q, srv->queues[i].name, true, true));
	return respond_json(c, r, MHD_HTTP_OK, o);
}

static enum MHD_Result get_cluster(struct MHD_Connection *c, struct request *r)
{
	char why[700];
	if (!serve_cluster_on())
		return respond_error(c, r, MHD_HTTP_NOT_FOUND,
				     "no cluster view: taskq serve runs without --nats URL --stream S");
	cJSON *o = serve_cluster_json(why, sizeof why);
	if (!o)
		return respond_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", why);
	return respond_json(c, r, MHD_HTTP_OK, o);
}

static enum MHD_Result get_health(struct server *srv, struct MHD_Connection *c, struct request *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON *qs = cJSON_AddObjectToObject(o, "queues");
	for (size_t i = 0; i < srv->nqueues; i++)
		cJSON_AddStringToObject(qs, srv->queues[i].name, cli_state_name(tq_run_state(srv->queues[i].q)));
	cJSON_AddBoolToObject(o, "control", srv->token_len > 0);
	cJSON_AddBoolToObject(o, "cluster", serve_cluster_on());
	return respond_json(c, r, MHD_HTTP_OK, o);
}

/* The gate of every state-changing request: control on (else 403), the
 * request not from another site's page (403), the bearer token (401).
 * True when it may go on; else *ret is the answer queued. */
static bool control_allowed(struct server *srv, struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	char peer[INET6_ADDRSTRLEN + 1];

	if (!srv->token_len) {
		*ret = respond_error(c, r, MHD_HTTP_FORBIDDEN, "control endpoints are off: no token configured");
		return false;
	}
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	if (!serve_origin_allowed(origin, host, site)) {
		char o[128];
		copy_printable(o, sizeof(o), origin ? origin : site);
		log_event(LOG_WARN_, "control_refused", "peer=%s method=%s path=%s reason=cross_origin origin=%s",
			  peer_name(c, peer, sizeof(peer)), r->method, r->url, o);
		*ret = respond_error(c, r, MHD_HTTP_FORBIDDEN,
				     "cross-origin request refused: Origin %s is not this server", o);
		return false;
	}
	bool sent;
	if (check_auth(srv, c, &sent)) {
		log_event(LOG_WARN_, "control_refused", "peer=%s method=%s path=%s reason=%s",
			  peer_name(c, peer, sizeof(peer)), r->method, r->url, sent ? "wrong_token" : "no_token");
		r->bad_token = sent;
		*ret = respond_error(c, r, MHD_HTTP_UNAUTHORIZED,
				     sent ? "invalid token" : "missing Authorization: Bearer token");
		return false;
	}
	return true;
}

static enum MHD_Result no_such_queue(struct MHD_Connection *c, struct request *r, const char *name, size_t len)
{
	return respond_error(c, r, MHD_HTTP_NOT_FOUND, "no such queue served here: %.*s", (int)(len > 200 ? 200 : len),
			     name);
}

static enum MHD_Result post_control(struct server *srv, struct MHD_Connection *c, struct request *r,
				    const char *name, size_t name_len, int state)
{
	char peer[INET6_ADDRSTRLEN + 1];
	enum MHD_Result ret;

	if (!control_allowed(srv, c, r, &ret))
		return ret;
	struct served *sv = find_queue(srv, name, name_len);
	if (!sv)
		return no_such_queue(c, r, name, name_len);
	int before = tq_run_state(sv->q);
	int rc = tq_set_run_state(sv->q, state);
	if (rc)
		return respond_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", tq_strerror(rc));
	log_event(LOG_INFO_, "state_set", "queue=%s from=%s to=%s peer=%s", sv->name, cli_state_name(before),
		  cli_state_name(state), peer_name(c, peer, sizeof(peer)));
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "queue", sv->name);
	cJSON_AddStringToObject(o, "state", cli_state_name(state));
	cJSON_AddStringToObject(o, "previous", cli_state_name(before));
	return respond_json(c, r, MHD_HTTP_OK, o);
}

/* POST /queues/NAME/dead/ID/kick|purge */
static enum MHD_Result post_dead(struct server *srv, struct MHD_Connection *c, struct request *r,
				 const struct serve_route *rt)
{
	char peer[INET6_ADDRSTRLEN + 1], id[24];
	enum MHD_Result ret;

	if (!control_allowed(srv, c, r, &ret))
		return ret;
	struct served *sv = find_queue(srv, rt->name, rt->name_len);
	if (!sv)
		return no_such_queue(c, r, rt->name, rt->name_len);
	if (rt->id == TQ_ALL)
		snprintf(id, sizeof(id), "all");
	else
		snprintf(id, sizeof(id), "%llu", (unsigned long long)rt->id);
	const char *verb = rt->purge ? "purge" : "kick";
	int rc = serve_dead_action(sv, rt->id, rt->purge);
	if (rc == TQ_ENOTFOUND)
		return respond_error(c, r, MHD_HTTP_NOT_FOUND, "task %s is not dead in %s", id, sv->name);
	if (rc == TQ_EAGAIN)
		return respond_error(c, r, MHD_HTTP_CONFLICT, "no room in %s for task %s: purge, or let workers "
				     "finish tasks first", sv->name, id);
	if (rc < 0)
		return respond_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s %s: %s", verb, id, tq_strerror(rc));
	log_event(LOG_INFO_, rt->purge ? "dead_purged" : "dead_kicked", "queue=%s id=%s tasks=%d peer=%s",
		  sv->name, id, rc, peer_name(c, peer, sizeof(peer)));
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "queue", sv->name);
	cJSON_AddStringToObject(o, "action", verb);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddNumberToObject(o, "tasks", rc);
	return respond_json(c, r, MHD_HTTP_OK, o);
}

/* GET / and /assets/NAME: the dashboard's files, built in. */
static enum MHD_Result get_page(struct MHD_Connection *c, struct request *r, const struct serve_route *rt)
{
	const struct web_asset *a = web_asset_find(rt->name, rt->name_len);

	if (!a)
		return respond_error(c, r, MHD_HTTP_NOT_FOUND, "no such file: %.*s",
				     (int)(rt->name_len > 200 ? 200 : rt->name_len), rt->name);
	return respond(c, r, MHD_HTTP_OK, a->type, (char *)a->data, a->len, false);
}

/* GET /events/NAME?after=SEQ */
static enum MHD_Result get_events(struct MHD_Connection *c, struct request *r, struct served *sv)
{
	const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	uint64_t seq = 0;
	int err;

	if (after && !serve_content_length(after, UINT64_MAX - 1, &seq))
		return respond_error(c, r, MHD_HTTP_BAD_REQUEST, "after: a sequence number (0 or more), not '%.40s'",
				     after);
	cJSON *o = serve_events_json(sv, seq, &err);
	if (!o)
		return respond_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading the events: %s", tq_strerror(err));
	return respond_json(c, r, MHD_HTTP_OK, o);
}

/* GET /dead/NAME */
static enum MHD_Result get_dead(struct MHD_Connection *c, struct request *r, struct served *sv)
{
	int err;
	cJSON *o = serve_dead_json(sv, SERVE_DEAD_MAX, &err);

	if (!o)
		return respond_error(c, r, err == TQ_EBUSY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR,
				     "listing the dead letters: %s", tq_strerror(err));
	return respond_json(c, r, MHD_HTTP_OK, o);
}

static enum MHD_Result route(struct server *srv, struct MHD_Connection *c, struct request *r, const char *url)
{
	struct serve_route rt;
	struct served *sv;

	serve_route(r->method, url, &rt);
	switch (rt.ep) {
	case SERVE_BAD_METHOD:
		return method_not_allowed(c, r, rt.allow);
	case SERVE_METRICS:
		return get_metrics(srv, c, r);
	case SERVE_HEALTH:
		return get_health(srv, c, r);
	case SERVE_STATS:
		return get_stats(srv, c, r, NULL);
	case SERVE_CLUSTER:
		return get_cluster(c, r);
	case SERVE_STATS_ONE:
		if (!(sv = find_queue(srv, rt.name, rt.name_len)))
			return respond_error(c, r, MHD_HTTP_NOT_FOUND, "no such queue served here: %.200s", rt.name);
		return get_stats(srv, c, r, sv);
	case SERVE_CONTROL:
		return post_control(srv, c, r, rt.name, rt.name_len, rt.state);
	case SERVE_PAGE:
		return get_page(c, r, &rt);
	case SERVE_EVENTS:
	case SERVE_DEAD:
		if (!(sv = find_queue(srv, rt.name, rt.name_len)))
			return no_such_queue(c, r, rt.name, rt.name_len);
		return rt.ep == SERVE_EVENTS ? get_events(c, r, sv) : get_dead(c, r, sv);
	case SERVE_DEAD_ACTION:
		return post_dead(srv, c, r, &rt);
	case SERVE_NOT_FOUND:
		break;
	}
	return respond_error(c, r, MHD_HTTP_NOT_FOUND,
			     "no such endpoint (GET /, /metrics, /stats, /stats/NAME, /healthz, /cluster, /events/NAME, "
			     "/dead/NAME; POST /queues/NAME/drain|stop|pause|resume, /queues/NAME/dead/ID/kick|purge)");
}

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
					    const char *value)
{
	(void)kind;
	(void)value;
	if (key && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		++*(unsigned *)cls;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct server *srv = cls;
	struct request *r = *con_cls;

	(void)version;
	(void)upload_data;
	if (!r) {
		/* First call: headers are in, the body (if any) is not. */
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		copy_printable(r->method, sizeof(r->method), method);
		copy_printable(r->url, sizeof(r->url), url);
		unsigned ncl = 0;
		MHD_get_connection_values(c, MHD_HEADER_KIND, count_content_length, &ncl);
		if (ncl > 1)
			return respond_error(c, r, MHD_HTTP_BAD_REQUEST, "more than one Content-Length header");
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t clv;
		if (cl && !serve_content_length(cl, BODY_MAX, &clv))
			return respond_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %d bytes", BODY_MAX);
		/* A body of unknown length (chunked): no endpoint takes a body, and an
		 * answer can only be queued before the body is read or after all of it,
		 * so refuse it now rather than read an unbounded stream. */
		if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
			return respond_error(c, r, MHD_HTTP_LENGTH_REQUIRED,
					     "request bodies need a Content-Length (at most %d bytes)", BODY_MAX);
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* A body: nothing here uses one; read and drop up to the limit. */
		r->body += *upload_data_size;
		*upload_data_size = 0;
		/* Content-Length was checked; this is a guard, not a path. */
		return r->body > BODY_MAX ? MHD_NO : MHD_YES;
	}
	if (r->status)
		return MHD_YES; /* answered already */
	return route(srv, c, r, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;
	char peer[INET6_ADDRSTRLEN + 1];

	(void)cls;
	/* kept alive, the connection now waits for its next request */
	track_phase(c, PH_IDLE, timeout_ns, false);
	if (!r)
		return; /* refused by libmicrohttpd before the handler saw it */
	log_event(LOG_DEBUG_, "http_request", "peer=%s method=%s path=%s status=%u%s",
		  peer_name(c, peer, sizeof(peer)), r->method, r->url, r->status,
		  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " closed=early");
	free(r);
	*con_cls = NULL;
}

/* libmicrohttpd's URI log callback: a request line is in. On a kept-alive
 * connection that starts the request's deadline (a first request's runs
 * from the accept). Returns the request's initial context: none. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls;
	(void)uri;
	track_phase(c, PH_REQUEST, request_ns, true);
	return NULL;
}

/* libmicrohttpd's accept policy: whether the limits take a connection from
 * addr (see "Connections" above). Refused, it is closed at once. */
static enum MHD_Result admit_connection(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	const struct server *srv = cls;
	struct serve_addr key;
	unsigned from = 0, open;

	serve_addr_key(addr, addrlen, &key);
	pthread_mutex_lock(&tracks_mu);
	for (size_t i = 0; i < ntracks; i++)
		if (tracks[i].fd >= 0 && serve_addr_equal(&tracks[i].addr, &key))
			from++;
	open = cstats.open;
	enum serve_admit a = serve_admit(&srv->limits, open, from);
	if (a != SERVE_ADMIT)
		cstats.refused[a]++;
	pthread_mutex_unlock(&tracks_mu);
	if (a == SERVE_ADMIT)
		return MHD_YES;
	/* one line per refusal only at debug: a client that reconnects in a
	 * loop would flood the log; the main thread logs a summary instead */
	char peer[INET6_ADDRSTRLEN + 1];
	log_event(LOG_DEBUG_, "connection_refused", "peer=%s reason=%s open=%u from_peer=%u",
		  addr_name(addr, peer, sizeof(peer)), serve_refusal_names[a], open, from);
	return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	pthread_mutex_lock(&tracks_mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const struct sockaddr *sa = ai ? ai->client_addr : NULL;
		uint64_t now = tq_now_ns();
		*socket_context = NULL;
		for (size_t i = 0; ci && i < ntracks; i++) {
			struct conn_track *t = &tracks[i];
			if (t->fd >= 0)
				continue;
			t->fd = ci->connect_fd;
			t->shut = false;
			t->phase = PH_REQUEST;
			t->since_ns = now;
			t->deadline_ns = now + request_ns;
			serve_addr_key(sa, sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									   : sizeof(struct sockaddr_in), &t->addr);
			addr_name(sa, t->peer, sizeof(t->peer));
			*socket_context = t;
			cstats.open++;
			break;
		}
		/* Never short (libmicrohttpd's limit is the table's size); were it,
		 * a connection with no deadline must not stay. */
		if (!*socket_context && ci)
			shutdown(ci->connect_fd, SHUT_RDWR);
	} else if (*socket_context) {
		((struct conn_track *)*socket_context)->fd = -1;
		*socket_context = NULL;
		cstats.open--;
	}
	pthread_mutex_unlock(&tracks_mu);
}

/* Shuts down connections past their phase's deadline. */
static void sweep_slow(void)
{
	uint64_t now = tq_now_ns();

	pthread_mutex_lock(&tracks_mu);
	for (size_t i = 0; i < ntracks; i++) {
		struct conn_track *t = &tracks[i];
		if (t->fd < 0 || t->shut || now <= t->deadline_ns)
			continue;
		shutdown(t->fd, SHUT_RDWR);
		t->shut = true;
		cstats.timed_out[t->phase]++;
		/* an idle keep-alive closed is routine (a scraper between scrapes) */
		if (t->phase == PH_IDLE)
			log_event(LOG_DEBUG_, "idle_connection_closed", "peer=%s seconds=%.1f", t->peer,
				  (double)(now - t->since_ns) / 1e9);
		else
			log_event(LOG_WARN_, t->phase == PH_REQUEST ? "slow_request_closed" : "slow_reader_closed",
				  "peer=%s seconds=%.1f", t->peer, (double)(now - t->since_ns) / 1e9);
	}
	pthread_mutex_unlock(&tracks_mu);
}

/* At most one line per REFUSED_LOG_NS about connections the limits
 * refused since the last one (a reconnecting client is refused many times
 * a second); the first refusal after a quiet spell is told at once. */
static void report_refusals(void)
{
	static uint64_t told[4], told_ns;
	uint64_t now = tq_now_ns(), cur[4];

	if (told_ns && now - told_ns < REFUSED_LOG_NS)
		return;
	pthread_mutex_lock(&tracks_mu);
	memcpy(cur, cstats.refused, sizeof(cur));
	unsigned open = cstats.open;
	pthread_mutex_unlock(&tracks_mu);
	if (!memcmp(cur, told, sizeof(cur)))
		return;
	log_event(LOG_WARN_, "connections_refused", "per_ip=%llu full=%llu reserve=%llu open=%u",
		  (unsigned long long)(cur[SERVE_REFUSE_PER_ADDR] - told[SERVE_REFUSE_PER_ADDR]),
		  (unsigned long long)(cur[SERVE_REFUSE_FULL] - told[SERVE_REFUSE_FULL]),
		  (unsigned long long)(cur[SERVE_REFUSE_RESERVE] - told[SERVE_REFUSE_RESERVE]), open);
	memcpy(told, cur, sizeof(told));
	told_ns = now;
}

/* libmicrohttpd's own messages (malformed requests it refused, limits). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], q[600];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_event(LOG_WARN_, "http_error", "message=%s", log_quote(q, sizeof(q), msg));
}

/* --------------------------------------------------------------- setup */

/* SIGINT/SIGTERM are blocked in this program's threads and taken by
 * sigtimedwait; the handler covers a thread that does not block them
 * (a sanitizer's, a library's), where the signal would otherwise kill. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* "ADDR:PORT", "[V6ADDR]:PORT", "HOST:PORT" or ":PORT" (127.0.0.1). */
static bool parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *shown, size_t shown_size,
			 char *why, size_t why_size)
{
	char host[256];
	const char *port;

	if (!serve_split_listen(s, host, sizeof(host), &port, why, why_size))
		return false;
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e || !ai) {
		snprintf(why, why_size, "address %.64s: %s", host, e ? gai_strerror(e) : "not found");
		return false;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	char h[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, h, sizeof(h));
		snprintf(shown, shown_size, "[%s]", h);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, h, sizeof(h));
		snprintf(shown, shown_size, "%s", h);
	}
	return true;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
		: S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "an unknown kind of file";
}

/*
 * Opens a file of secrets (opt names its option, what its content in the
 * warning) without blocking (and without becoming a controlling terminal):
 * open() of a FIFO would wait for a writer, so the server would hang at
 * start, and a device would be read as a secret. Refused unless it is a
 * regular file; a warning if other users may read it. Returns the
 * descriptor (st filled in), or -1 after a message.
 */
static int open_secret(const char *path, const char *opt, const char *what, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		cli_err("%s %s: %s", opt, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) != 0) {
		cli_err("%s %s: %s", opt, path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		cli_err("%s %s: %s, not a regular file", opt, path, file_kind(st->st_mode));
		close(fd);
		return -1;
	}
	if (what && (st->st_mode & 077))
		fprintf(stderr, "taskq: %s: warning: %s file %s is readable by other users (chmod 600 it)\n",
			cli_cmd, what, path);
	return fd;
}

/*
 * --token-file. Opened without blocking (and without becoming a controlling
 * terminal) and refused unless it is a regular file: open() of a FIFO would
 * wait for a writer, so the server would hang at start, and a device would
 * be read as a token. At most a token's worth is read: the first line is the
 * token. Returns 0 or an exit status, after a message.
 */
static int read_token_file(const char *path, char *out, size_t size)
{
	char buf[CLI_TOKEN_MAX + 2]; /* the longest token, CR, LF */
	struct stat st;
	size_t have = 0;
	bool more = false;
	int rc = 0;

	out[0] = '\0';
	int fd = open_secret(path, "--token-file", "token", &st);
	if (fd < 0)
		return EX_USAGE_;
	while (have < sizeof(buf) && !memchr(buf, '\n', have)) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("--token-file %s: %s", path, strerror(errno));
			rc = EX_USAGE_;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (!rc && have == sizeof(buf) && !memchr(buf, '\n', have)) {
		char probe;
		ssize_t n;
		while ((n = read(fd, &probe, 1)) < 0 && errno == EINTR)
			;
		more = n != 0; /* the first line goes on (or cannot be read further) */
	}
	close(fd);
	if (!rc) {
		switch (serve_token_text(buf, have, more, CLI_TOKEN_MAX, out, size)) {
		case SERVE_TOKEN_OK:
			break;
		case SERVE_TOKEN_EMPTY:
			cli_err("--token-file %s: the token is empty", path);
			rc = EX_USAGE_;
			break;
		case SERVE_TOKEN_TOO_LONG:
			cli_err("--token-file %s: the token is longer than %d bytes", path, CLI_TOKEN_MAX);
			rc = EX_USAGE_;
			break;
		case SERVE_TOKEN_BAD_CHAR:
			cli_err("--token-file %s: the token has a space, control or non-ASCII character", path);
			rc = EX_USAGE_;
			break;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (rc)
		explicit_bzero(out, size);
	return rc;
}

/* ----------------------------------------------------------------- TLS */

/* --tls-cert and --tls-key, read; given to libmicrohttpd at start. */
struct tls_files {
	char *cert, *key; /* NUL-ended PEM text, or NULL: plain HTTP */
	size_t cert_len, key_len;
};

/* Reads a PEM file (opt: its option; key: a secret, so a warning if
 * others may read it) into *out, NUL-ended. Returns 0 or an exit status,
 * after a message. */
static int read_pem(const char *path, const char *opt, bool key, char **out, size_t *len)
{
	struct stat st;
	int fd = open_secret(path, opt, key ? "private key" : NULL, &st);

	*out = NULL;
	if (fd < 0)
		return EX_USAGE_;
	if (st.st_size > PEM_MAX) {
		cli_err("%s %s: over %d bytes: not a PEM %s", opt, path, PEM_MAX, key ? "key" : "certificate");
		close(fd);
		return EX_USAGE_;
	}
	char *buf = malloc(PEM_MAX + 1);
	size_t have = 0;
	int rc = 0;
	while (buf && have < PEM_MAX) {
		ssize_t n = read(fd, buf + have, PEM_MAX - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("%s %s: %s", opt, path, strerror(errno));
			rc = EX_USAGE_;
		}
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	if (!buf) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	if (!rc && have == 0) {
		cli_err("%s %s: the file is empty", opt, path);
		rc = EX_USAGE_;
	}
	if (rc) {
		explicit_bzero(buf, have);
		free(buf);
		return rc;
	}
	buf[have] = '\0';
	*out = buf;
	*len = have;
	return 0;
}

static void tls_files_free(struct tls_files *t)
{
	if (t->key)
		explicit_bzero(t->key, t->key_len);
	free(t->key);
	free(t->cert);
	memset(t, 0, sizeof(*t));
}

/*
 * Reads --tls-cert and --tls-key and checks them with GnuTLS, the library
 * libmicrohttpd's TLS is made of (the calls it makes at start): the first
 * file holds PEM certificates (the server's first, then any intermediate
 * ones), the second an unencrypted PEM private key, and they are a pair.
 * So a bad file is told apart, by name, before anything listens. Returns 0
 * or an exit status, after a message.
 */
static int load_tls(const char *cert_path, const char *key_path, struct tls_files *t)
{
	int rc, e;

	memset(t, 0, sizeof(*t));
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		cli_err("--tls-cert: this libmicrohttpd was built without TLS support");
		return EX_FAIL;
	}
	if ((rc = read_pem(cert_path, "--tls-cert", false, &t->cert, &t->cert_len)) != 0 ||
	    (rc = read_pem(key_path, "--tls-key", true, &t->key, &t->key_len)) != 0) {
		tls_files_free(t);
		return rc;
	}
	gnutls_datum_t cd = {(unsigned char *)t->cert, (unsigned)t->cert_len};
	gnutls_datum_t kd = {(unsigned char *)t->key, (unsigned)t->key_len};
	gnutls_x509_crt_t *crts = NULL;
	unsigned ncrts = 0;
	gnutls_x509_privkey_t pk = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	rc = EX_USAGE_;
	if ((e = gnutls_x509_crt_list_import2(&crts, &ncrts, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0 || !ncrts) {
		cli_err("--tls-cert %s: no PEM certificate (-----BEGIN CERTIFICATE-----) could be read: %s", cert_path,
			e < 0 ? gnutls_strerror(e) : "none found");
	} else if ((e = gnutls_x509_privkey_init(&pk)) < 0 ||
		   (e = gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		cli_err("--tls-key %s: not an unencrypted PEM private key: %s", key_path, gnutls_strerror(e));
	} else if ((e = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
		   (e = gnutls_certificate_set_x509_key_mem(cred, &cd, &kd, GNUTLS_X509_FMT_PEM)) < 0) {
		cli_err("--tls-cert %s and --tls-key %s: %s", cert_path, key_path, gnutls_strerror(e));
	} else {
		rc = 0;
	}
	if (cred)
		gnutls_certificate_free_credentials(cred);
	if (pk)
		gnutls_x509_privkey_deinit(pk);
	for (unsigned i = 0; i < ncrts; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (rc)
		tls_files_free(t);
	return rc;
}

/* Each connection is a descriptor: makes room for max_conns of them plus
 * the server's own, raising the soft limit toward the hard one if needed.
 * Returns 0 or an exit status, after a message. */
static int ensure_descriptors(unsigned max_conns, size_t nqueues)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)max_conns + FD_SPARE + (rlim_t)nqueues;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	cli_err("--max-connections %u needs %llu open files, and the limit is %llu (ulimit -n): "
		"lower --max-connections or raise the limit",
		max_conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
	return EX_USAGE_;
}

#define STR_(x) #x
#define STR(x) STR_(x)
_Static_assert(DEFAULT_MAX_CONNS / DEFAULT_RESERVED_SHARE == 64, "serve --help says 64 reserved by default");
_Static_assert(MAX_BRIDGE_FILES == 16, "serve --help says up to 16 --bridge-metrics");

enum {
	O_LISTEN = 0x100, O_TOKEN_FILE, O_TIMEOUT, O_REQUEST_TIMEOUT, O_MAX_CONNS, O_PER_ADDR, O_RESERVED,
	O_BRIDGE_METRICS, O_TLS_CERT, O_TLS_KEY, O_INSECURE_HTTP, O_NATS, O_STREAM,
};

static const struct cli_opt serve_opts_table[] = {
	{O_LISTEN, false, "listen", "ADDR:PORT", "default " DEFAULT_LISTEN " (this machine only);\n"
						 "0.0.0.0:PORT for every interface"},
	{O_TOKEN_FILE, false, "token-file", "FILE", "the bearer token for control: the first line\n"
						    "of FILE, a regular file (default: $TASKQ_TOKEN)"},
	{O_TLS_CERT, false, "tls-cert", "FILE", "serve HTTPS: the certificate (PEM; the server's\n"
						"first, then any intermediate ones); needs\n"
						"--tls-key"},
	{O_TLS_KEY, false, "tls-key", "FILE", "the certificate's private key (PEM, unencrypted)"},
	{O_INSECURE_HTTP, false, "insecure-http", NULL,
	 "allow control (a token) on a non-loopback\n"
	 "address over plain HTTP, the token crossing the\n"
	 "network unencrypted (without it, serve refuses\n"
	 "to start so: use --tls-cert and --tls-key)"},
	{O_TIMEOUT, false, "timeout", "SEC", "close a kept-alive connection idle for SEC\n"
					     "seconds, or one whose client does not take its\n"
					     "answer within SEC (1..3600, default " STR(DEFAULT_TIMEOUT_S) ")"},
	{O_REQUEST_TIMEOUT, false, "request-timeout", "SEC",
	 "close a connection whose request has not arrived\n"
	 "whole SEC seconds after its accept (1..--timeout;\n"
	 "default " STR(DEFAULT_REQUEST_TIMEOUT_S) ", or --timeout if less)"},
	{O_MAX_CONNS, false, "max-connections", "N", "connections open at once; more are closed at\n"
						     "accept (1.." STR(MAX_CONNS_LIMIT) ", default " STR(DEFAULT_MAX_CONNS) ")"},
	{O_PER_ADDR, false, "max-connections-per-ip", "N",
	 "of those, from one client address (an IPv6 /64)\n"
	 "(1..--max-connections; default " STR(DEFAULT_MAX_PER_ADDR) ", or\n"
	 "--max-connections if less)"},
	{O_RESERVED, false, "reserved-connections", "N",
	 "the last N of --max-connections go only to a\n"
	 "client address that holds none, so that a health\n"
	 "check still gets in when others hold the rest\n"
	 "(0..--max-connections - 1; default an eighth of\n"
	 "--max-connections, so 64)"},
	{O_BRIDGE_METRICS, false, "bridge-metrics", "FILE",
	 "also serve the counters a taskq-bridge writes\n"
	 "with --metrics-file FILE (repeatable, up to 16; a\n"
	 "file not rewritten for 10 s, its bridge stopped,\n"
	 "is left out)"},
	{O_NATS, false, "nats", "URL",
	 "NATS servers, URL[,URL...]: serve GET /cluster\n"
	 "and the dashboard's Machines, every machine's\n"
	 "bridges of --stream, gathered by taskq-bridge\n"
	 "stats (installed beside taskq) every 2 s"},
	{O_STREAM, false, "stream", "S", "the JetStream stream of the bridges (with --nats)"},
	CLI_LOG_OPTS,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command serve_cmd = {
	.name = "serve",
	.args = "NAME [NAME...]",
	.about = "Serves the queues over HTTP until SIGINT or SIGTERM:\n"
		 "  GET  /metrics                Prometheus text format\n"
		 "  GET  /stats, /stats/NAME     the stats --json snapshot\n"
		 "  GET  /healthz                {\"status\":\"ok\", ...}\n"
		 "  GET  /cluster                every machine's bridges (with --nats)\n"
		 "  GET  /                       a live dashboard of every queue (built in)\n"
		 "  GET  /events/NAME, /dead/NAME  recent events, dead letters (JSON)\n"
		 "  POST /queues/NAME/drain      (and stop, pause, resume): sets the run state,\n"
		 "                               as taskq stop / pause / resume do\n"
		 "  POST /queues/NAME/dead/ID/kick|purge  (ID or all), as taskq dead does\n"
		 "Control needs 'Authorization: Bearer TOKEN', the token being the first line of\n"
		 "--token-file (a regular file), or $TASKQ_TOKEN; with neither, the POST\n"
		 "endpoints are off (403). With --tls-cert and --tls-key it speaks HTTPS only.\n"
		 "Control on a non-loopback address needs HTTPS, or --insecure-http. A POST\n"
		 "whose Origin is not this server is refused (403).\n",
	.more = CLI_LOG_HELP "--log-level debug logs every request. See docs/http.md.\n",
	.opts = serve_opts_table,
};

/* What the command line asks for, checked (serve_parse_opts). */
struct serve_opts {
	const char *listen_at, *token_file;
	const char *tls_cert, *tls_key; /* both or neither */
	bool insecure_http;
	bool loopback; /* --listen is a loopback address */
	uint64_t timeout_s, request_s; /* request_s 0: the default */
	uint64_t max_conns, per_addr, reserved; /* per_addr 0, reserved UINT64_MAX: from max_conns */
	const char *bridge_files[MAX_BRIDGE_FILES];
	size_t nbridge_files;
	const char *nats, *stream; /* both or neither */
	struct log_config lc;
	struct sockaddr_storage ss; /* --listen, resolved */
	socklen_t sslen;
	char shown[INET6_ADDRSTRLEN + 3];
	int first_queue; /* argv index of the first NAME */
};

/* Parses and checks the options, alone and together. Returns -1 to go on,
 * else the exit status (0 after --help), after a message. */
static int serve_parse_opts(int argc, char **argv, struct serve_opts *o)
{
	struct cli_parser p;
	int c;
	bool ok;

	memset(o, 0, sizeof(*o));
	o->listen_at = DEFAULT_LISTEN;
	o->timeout_s = DEFAULT_TIMEOUT_S;
	o->max_conns = DEFAULT_MAX_CONNS;
	o->reserved = UINT64_MAX;
	log_config_init(&o->lc);
	cli_parser_init(&p, &serve_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		ok = true;
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case O_LISTEN: o->listen_at = optarg; break;
		case O_TOKEN_FILE: o->token_file = optarg; break;
		case O_TLS_CERT: o->tls_cert = optarg; break;
		case O_TLS_KEY: o->tls_key = optarg; break;
		case O_INSECURE_HTTP: o->insecure_http = true; break;
		case O_TIMEOUT: ok = cli_opt_u64(&p, 1, 3600, &o->timeout_s); break;
		case O_REQUEST_TIMEOUT: ok = cli_opt_u64(&p, 1, 3600, &o->request_s); break;
		case O_MAX_CONNS: ok = cli_opt_u64(&p, 1, MAX_CONNS_LIMIT, &o->max_conns); break;
		case O_PER_ADDR: ok = cli_opt_u64(&p, 1, MAX_CONNS_LIMIT, &o->per_addr); break;
		case O_RESERVED: ok = cli_opt_u64(&p, 0, MAX_CONNS_LIMIT - 1, &o->reserved); break;
		case O_NATS: o->nats = optarg; break;
		case O_STREAM: o->stream = optarg; break;
		case O_BRIDGE_METRICS:
			if (o->nbridge_files == MAX_BRIDGE_FILES || !*optarg) {
				cli_err("--bridge-metrics: at most %d files, each a path", MAX_BRIDGE_FILES);
				return EX_USAGE_;
			}
			o->bridge_files[o->nbridge_files++] = optarg;
			break;
		default:
			if (cli_log_option(c, optarg, &o->lc, &ok))
				break;
			return cli_command_usage(&serve_cmd);
		}
		if (!ok) /* the parser said why */
			return EX_USAGE_;
	}
	if (optind >= argc)
		return cli_command_usage(&serve_cmd);
	o->first_queue = optind;
	/* The options together (they may come in any order). */
	if (!o->request_s) {
		o->request_s = o->timeout_s < DEFAULT_REQUEST_TIMEOUT_S ? o->timeout_s : DEFAULT_REQUEST_TIMEOUT_S;
	} else if (o->request_s > o->timeout_s) {
		cli_err("--request-timeout %llu is longer than --timeout %llu (the idle timeout would close "
			"a silent connection first)", (unsigned long long)o->request_s, (unsigned long long)o->timeout_s);
		return EX_USAGE_;
	}
	if (!o->per_addr) {
		o->per_addr = o->max_conns < DEFAULT_MAX_PER_ADDR ? o->max_conns : DEFAULT_MAX_PER_ADDR;
	} else if (o->per_addr > o->max_conns) {
		cli_err("--max-connections-per-ip %llu is more than --max-connections %llu",
			(unsigned long long)o->per_addr, (unsigned long long)o->max_conns);
		return EX_USAGE_;
	}
	if (o->reserved == UINT64_MAX) {
		o->reserved = o->max_conns / DEFAULT_RESERVED_SHARE;
	} else if (o->reserved >= o->max_conns) {
		cli_err("--reserved-connections %llu leaves none of --max-connections %llu unreserved",
			(unsigned long long)o->reserved, (unsigned long long)o->max_conns);
		return EX_USAGE_;
	}
	if (!o->tls_cert != !o->tls_key) {
		cli_err("%s needs %s too (HTTPS needs both the certificate and its key)",
			o->tls_cert ? "--tls-cert" : "--tls-key", o->tls_cert ? "--tls-key" : "--tls-cert");
		return EX_USAGE_;
	}
	if (!o->nats != !o->stream) {
		cli_err("%s needs %s too (the cluster view reads the bridges of one stream through NATS)",
			o->nats ? "--nats" : "--stream", o->nats ? "--stream" : "--nats");
		return EX_USAGE_;
	}
	if (o->nats && !serve_cluster_urls_ok(o->nats)) {
		cli_err("invalid --nats '%.200s': NATS URLs separated by commas, printable, no spaces", o->nats);
		return EX_USAGE_;
	}
	if (o->stream && !serve_cluster_stream_ok(o->stream)) {
		cli_err("invalid --stream '%.200s': 1-64 of A-Z a-z 0-9 _ -", o->stream);
		return EX_USAGE_;
	}
	if (o->tls_cert && o->insecure_http) {
		cli_err("--insecure-http is for plain HTTP; with --tls-cert and --tls-key the server speaks HTTPS");
		return EX_USAGE_;
	}
	char why[128];
	if (!parse_listen(o->listen_at, &o->ss, &o->sslen, o->shown, sizeof(o->shown), why, sizeof(why))) {
		cli_err("invalid --listen '%s': %s", o->listen_at, why);
		return EX_USAGE_;
	}
	o->loopback = o->ss.ss_family == AF_INET6
			      ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&o->ss)->sin6_addr)
			      : (ntohl(((struct sockaddr_in *)&o->ss)->sin_addr.s_addr) >> 24) == 127;
	return -1;
}

/* What serve_start set up, for cmd_serve to take down. */
struct serve_run {
	struct MHD_Daemon *d;
	sigset_t sigs;  /* SIGINT and SIGTERM, blocked: serve_loop waits for them */
	bool log_open;
	struct tls_files tls; /* kept until the server stops */
};

/* Reads the token, opens the queues (as observers) and the log, and starts
 * listening. Returns 0 or an exit status, after a message; what it set up
 * is in srv and run either way. */
static int serve_start(const struct serve_opts *o, int argc, char **argv, struct server *srv,
		       struct serve_run *run)
{
	int rc;

	memset(srv, 0, sizeof(*srv));
	memcpy(srv->bridge_files, o->bridge_files, sizeof srv->bridge_files);
	srv->nbridge_files = o->nbridge_files;
	srv->limits.max = (unsigned)o->max_conns;
	srv->limits.per_addr = (unsigned)o->per_addr;
	srv->limits.reserved = (unsigned)o->reserved;
	request_ns = o->request_s * 1000000000ull;
	timeout_ns = o->timeout_s * 1000000000ull;
	rc = o->token_file ? read_token_file(o->token_file, srv->token, sizeof(srv->token))
			   : cli_token_from_env(srv->token, sizeof(srv->token));
	if (rc)
		return rc;
	srv->token_len = strlen(srv->token);
	/* Before anything listens: a token must not cross the network in clear
	 * unless the operator said so. */
	if (srv->token_len && !o->loopback && !o->tls_cert && !o->insecure_http) {
		cli_err("control is on (a token is configured) and --listen %s is not a loopback address: "
			"over plain HTTP the token would cross the network unencrypted. Serve HTTPS with "
			"--tls-cert FILE --tls-key FILE (docs/http.md: a self-signed certificate in one command), "
			"listen on 127.0.0.1 behind a TLS proxy or an SSH tunnel, or give --insecure-http to "
			"accept plain HTTP",
			o->listen_at);
		return EX_USAGE_;
	}
	if (o->tls_cert && (rc = load_tls(o->tls_cert, o->tls_key, &run->tls)) != 0)
		return rc;
	if ((rc = ensure_descriptors(srv->limits.max, (size_t)(argc - o->first_queue))) != 0)
		return rc;
	/* One record per connection libmicrohttpd may hold: its limit is ours + 1. */
	ntracks = (size_t)srv->limits.max + 1;
	tracks = calloc(ntracks, sizeof(*tracks));
	srv->queues = calloc((size_t)(argc - o->first_queue), sizeof(*srv->queues));
	if (!srv->queues || !tracks) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	for (int i = o->first_queue; i < argc && !rc; i++) {
		if (find_queue(srv, argv[i], strlen(argv[i])))
			continue; /* named twice */
		struct served *sv = &srv->queues[srv->nqueues];
		sv->name = argv[i];
		if ((rc = cli_open_observer(argv[i], &sv->q)) == 0) {
			/* Events from before this server started are not logged. */
			tq_event_info ev[64];
			int n;
			while ((n = tq_events(sv->q, sv->events_after, ev, 64)) > 0)
				sv->events_after = ev[n - 1].seq;
			srv->nqueues++;
		}
	}
	if (rc)
		return rc;
	struct log_config lc = o->lc;
	if (srv->nqueues == 1)
		lc.queue = srv->queues[0].name;
	if (log_open(&lc) != 0) {
		cli_err("--log-file %s: %s", lc.path, strerror(errno));
		return EX_FAIL;
	}
	run->log_open = true;

	/* Only this thread takes SIGINT/SIGTERM; the server thread inherits the mask. */
	sigemptyset(&run->sigs);
	sigaddset(&run->sigs, SIGINT);
	sigaddset(&run->sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &run->sigs, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* After the mask: the thread must not take SIGINT/SIGTERM. */
	if (o->nats && (rc = serve_cluster_start(o->nats, o->stream)) != 0)
		return rc;

	for (size_t i = 0; i < ntracks; i++)
		tracks[i].fd = -1;
	errno = 0;
	/*
	 * epoll and one internal thread, not a thread per connection: 200 idle
	 * connections are 200 descriptors, not 200 threads. libmicrohttpd's
	 * connection limit is one above ours, so that it never stops accepting
	 * (admit_connection refuses first, at once); its idle timeout is one
	 * second above --timeout, a backstop behind the sweep's deadlines, which
	 * are all at most --timeout. No MHD_OPTION_PER_IP_CONNECTION_LIMIT:
	 * admit_connection counts per address itself (IPv6 by /64).
	 */
	bool tls = run->tls.cert != NULL;
	struct MHD_OptionItem tls_opts[] = {
		{tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, run->tls.cert},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, run->tls.key},
		{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
		{MHD_OPTION_END, 0, NULL},
	};
	struct MHD_Daemon *d = run->d = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (o->ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
			(tls ? MHD_USE_TLS : 0),
		0, admit_connection, srv, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, /* first, so that it gets every message */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&o->ss,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s + 1,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)ntracks,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_URI_LOG_CALLBACK, on_request_line, srv,
		MHD_OPTION_ARRAY, tls_opts,
		MHD_OPTION_END);
	if (!d) {
		int e = errno;
		cli_err("cannot listen on %s: %s", o->listen_at,
			e ? strerror(e) : "libmicrohttpd failed to start (its message is above)");
		return EX_FAIL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = di ? (unsigned)di->port : 0u;
	char names[512] = "", q[600];
	for (size_t i = 0; i < srv->nqueues; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "," : "",
			 srv->queues[i].name);
	log_event(LOG_INFO_, "serve_started",
		  "listen=%s:%u tls=%s queues=%s control=%s max_connections=%u per_ip=%u reserved=%u "
		  "request_timeout=%llu timeout=%llu",
		  o->shown, port, tls ? "on" : "off", log_quote(q, sizeof(q), names), srv->token_len ? "on" : "off",
		  srv->limits.max,
		  srv->limits.per_addr, srv->limits.reserved, (unsigned long long)o->request_s,
		  (unsigned long long)o->timeout_s);
	if (!o->loopback && srv->token_len && !tls) /* --insecure-http said so */
		log_event(LOG_WARN_, "plain_http",
			  "message=\"control is on and reachable from other machines over plain HTTP "
			  "(--insecure-http): the token crosses the network unencrypted\"");
	printf("taskq serve: %s://%s:%u/ serving %zu queue%s; control %s\n", tls ? "https" : "http", o->shown, port,
	       srv->nqueues, srv->nqueues == 1 ? "" : "s", srv->token_len ? "on" : "off (no token configured)");
	fflush(stdout);
	return 0;
}

/* Until SIGINT or SIGTERM: closes connections past their deadline and
 * reports refusals, four times a second. Returns the signal. */
/* Each queue's new events (tq_events) as log lines: what an operator must
 * act on (a dead-letter area that filled, a process found dead) at warn,
 * the rest at info. */
static void log_queue_events(struct server *srv)
{
	for (size_t i = 0; i < srv->nqueues; i++) {
		struct served *sv = &srv->queues[i];
		tq_event_info ev[64];
		int n = tq_events(sv->q, sv->events_after, ev, 64);
		for (int k = 0; k < n; k++) {
			char detail[4 * TQ_EVENT_MSG_MAX + 128];
			int level = ev[k].type == TQ_EV_DEAD_FULL || ev[k].type == TQ_EV_PROC_DIED ? LOG_WARN_ : LOG_INFO_;
			log_event(level, "queue_event", "queue=%s type=%s pid=%d %s", sv->name, tq_event_name(ev[k].type),
				  (int)ev[k].pid, cli_event_detail(detail, sizeof(detail), &ev[k]));
			sv->events_after = ev[k].seq;
		}
	}
}

static int serve_loop(struct server *srv, const sigset_t *sigs)
{
	int sig;

	for (;;) {
		struct timespec tick = {0, 250 * 1000000L};
		sig = sigtimedwait(sigs, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM)
			return sig;
		if ((sig = stop_signal) != 0)
			return sig;
		sweep_slow();
		report_refusals();
		log_queue_events(srv);
	}
}

int cmd_serve(int argc, char **argv)
{
	static struct serve_opts o;
	static struct server srv; /* the server thread uses it until MHD_stop_daemon returns */
	struct serve_run run = {0};
	int rc = serve_parse_opts(argc, argv, &o);

	if (rc >= 0)
		return rc;
	rc = serve_start(&o, argc, argv, &srv, &run);
	if (rc == 0) {
		int sig = serve_loop(&srv, &run.sigs);
		MHD_stop_daemon(run.d);
		log_event(LOG_INFO_, "serve_stopped", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	}
	serve_cluster_stop(); /* libmicrohttpd is stopped (or never started) */
	if (run.log_open)
		log_close();
	tls_files_free(&run.tls); /* libmicrohttpd is stopped (or never started) */
	for (size_t i = 0; i < srv.nqueues; i++)
		tq_close(srv.queues[i].q);
	free(srv.queues);
	free(tracks); /* libmicrohttpd's thread is gone (or never ran) */
	tracks = NULL;
	ntracks = 0;
	explicit_bzero(srv.token, sizeof(srv.token));
	return rc;
}
