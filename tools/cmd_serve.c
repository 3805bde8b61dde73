/*
 * cmd_serve.c - taskq serve: Prometheus metrics, JSON stats and run-state
 * control of one or more queues over HTTP (libmicrohttpd).
 *
 *   GET  /metrics                      Prometheus text format 0.0.4
 *   GET  /stats, /stats/NAME           the `taskq stats --json` snapshot
 *   GET  /healthz                      {"status":"ok","queues":{NAME:STATE}}
 *   POST /queues/NAME/drain|stop|pause|resume   needs Authorization: Bearer
 *
 * One internal polling thread of libmicrohttpd handles every connection
 * (with a connection limit, an idle timeout and a per-connection memory
 * limit); the main thread waits for SIGINT / SIGTERM and cuts off requests
 * that take longer than the timeout to arrive. HTTP parsing is
 * libmicrohttpd's: requests it finds malformed are answered by it (400,
 * 413, 414, 431, 505) or closed, before they reach the handler here. Every
 * answer composed here is JSON, errors as {"error": "..."}; see docs/http.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli.h"
#include "log.h"

#define BODY_MAX 4096            /* request body bytes accepted */
#define CONN_LIMIT 64            /* concurrent connections */
#define CONN_MEMORY (16 * 1024)  /* per-connection buffer: request line + headers */
#define DEFAULT_LISTEN "127.0.0.1:9740"
#define DEFAULT_TIMEOUT_S 10

struct served {
	char *name;
	tq_queue *q;
};

struct server {
	struct served *queues;
	size_t nqueues;
	char token[CLI_TOKEN_MAX + 1]; /* "" when control is off */
	size_t token_len;
	pid_t self;
};

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
 * Connections, for the request deadline. libmicrohttpd closes a connection
 * that is idle for --timeout seconds, but one that trickles a byte now and
 * then (slowloris) is never idle. So every connection is recorded here from
 * accept, and a request must arrive whole within --timeout seconds of the
 * accept or of the end of the previous request on the connection; the main
 * thread shuts down the socket of one that does not, and libmicrohttpd
 * then closes it. A record leaves the table (under the lock) when
 * libmicrohttpd reports the connection closed, which it does before it
 * closes the descriptor, so the sweep never touches a reused descriptor.
 */
#define TRACK_MAX (CONN_LIMIT + 16)

struct conn_track {
	int fd;              /* -1: free */
	bool shut;           /* already shut down by the sweep */
	uint64_t since_ns;   /* accept, or the end of the last request */
	char peer[INET6_ADDRSTRLEN + 1];
};

static struct conn_track tracks[TRACK_MAX];
static pthread_mutex_t tracks_mu = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------ growable buffer */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 16384;
		while (ncap - b->len <= (size_t)n)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* ------------------------------------------------------------ numbers */

/* The shortest decimal form of v that reads back as v ("0.001536",
 * "1.024e-06"); "+Inf" for infinity. Prometheus parses either form. */
static void fmt_double(char *out, size_t size, double v)
{
	if (isinf(v)) {
		snprintf(out, size, "+Inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* ------------------------------------------------------------ metrics */

struct proc_agg {
	int32_t pid;
	uint64_t taken, acked, in_progress;
};

struct snapshot {
	const char *name;
	tq_stats s;
	tq_histogram wait, proc;
	struct proc_agg *procs;
	size_t nprocs;
	uint64_t now;
};

/* Reads everything /metrics shows about one queue. Processes are summed
 * by pid (one process may hold several handles), this server left out. */
static int take_snapshot(const struct server *srv, const struct served *sv, struct snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->name = sv->name;
	int rc = tq_stats_get(sv->q, &sn->s);
	if (!rc)
		rc = tq_histograms(sv->q, &sn->wait, &sn->proc);
	sn->now = tq_now_ns();
	if (rc)
		return rc;
	tq_proc_info *p = calloc(TQ_MAX_PROCS, sizeof(*p));
	sn->procs = calloc(TQ_MAX_PROCS, sizeof(*sn->procs));
	if (!p || !sn->procs) {
		free(p);
		return TQ_ENOMEM;
	}
	int n = tq_procs(sv->q, p, TQ_MAX_PROCS);
	for (int i = 0; i < n; i++) {
		if (p[i].pid == srv->self)
			continue;
		size_t k = 0;
		while (k < sn->nprocs && sn->procs[k].pid != p[i].pid)
			k++;
		if (k == sn->nprocs)
			sn->procs[sn->nprocs++].pid = p[i].pid;
		sn->procs[k].taken += p[i].counters.taken;
		sn->procs[k].acked += p[i].counters.acked;
		sn->procs[k].in_progress += p[i].leased;
	}
	free(p);
	return n < 0 ? n : 0;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Queue names are [A-Za-z0-9_.-], but escape as the format requires anyway. */
static void label_value(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			buf_printf(b, "\\n");
		else
			buf_printf(b, "%c", *v);
	}
}

static void sample_u64(struct buf *b, const char *name, const char *qname, const char *extra, uint64_t v)
{
	buf_printf(b, "%s{queue=\"", name);
	label_value(b, qname);
	buf_printf(b, "\"%s} %llu\n", extra ? extra : "", (unsigned long long)v);
}

static void sample_double(struct buf *b, const char *name, const char *qname, const char *extra, double v)
{
	char num[40];

	fmt_double(num, sizeof(num), v);
	buf_printf(b, "%s{queue=\"", name);
	label_value(b, qname);
	buf_printf(b, "\"%s} %s\n", extra ? extra : "", num);
}

static void histogram(struct buf *b, const char *name, const char *help, const struct snapshot *sn,
		      size_t n, bool processing)
{
	char fam[96], le[64], num[40];

	family(b, name, "histogram", help);
	for (size_t i = 0; i < n; i++) {
		const tq_histogram *h = processing ? &sn[i].proc : &sn[i].wait;
		uint64_t cum = 0;
		snprintf(fam, sizeof(fam), "%s_bucket", name);
		for (unsigned k = 0; k < TQ_HIST_BUCKETS; k++) {
			cum += h->count[k];
			if (h->upper_ns[k] == UINT64_MAX)
				snprintf(num, sizeof(num), "+Inf");
			else
				fmt_double(num, sizeof(num), (double)h->upper_ns[k] / 1e9);
			snprintf(le, sizeof(le), ",le=\"%s\"", num);
			sample_u64(b, fam, sn[i].name, le, cum);
			if (h->upper_ns[k] == UINT64_MAX)
				break;
		}
		snprintf(fam, sizeof(fam), "%s_sum", name);
		sample_double(b, fam, sn[i].name, NULL, (double)h->sum_ns / 1e9);
		snprintf(fam, sizeof(fam), "%s_count", name);
		sample_u64(b, fam, sn[i].name, NULL, cum);
	}
}

#define FOR_EACH_Q for (size_t i = 0; i < n; i++)

static void render_metrics(struct buf *b, const struct snapshot *sn, size_t n)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{"taskq_tasks_pushed_total", "Tasks accepted by push.", offsetof(tq_counters, pushed)},
		{"taskq_tasks_taken_total", "Task deliveries by take (a retried task counts again).", offsetof(tq_counters, taken)},
		{"taskq_tasks_acked_total", "Tasks acknowledged as done.", offsetof(tq_counters, acked)},
		{"taskq_tasks_failed_total", "Task failures reported (retried or dead).", offsetof(tq_counters, failed)},
		{"taskq_tasks_retried_total", "Failures scheduled for another attempt.", offsetof(tq_counters, retried)},
		{"taskq_tasks_dead_total", "Tasks moved to the dead-letter area.", offsetof(tq_counters, dead)},
		{"taskq_leases_expired_total", "Leases that expired and returned their task to ready.", offsetof(tq_counters, expired)},
		{"taskq_leases_recovered_total", "Leased tasks returned because their holder died.", offsetof(tq_counters, recovered)},
		{"taskq_dead_dropped_total", "Oldest dead tasks dropped because the dead-letter area was full.", offsetof(tq_counters, dead_dropped)},
		{"taskq_acks_lost_total", "Acks, fails and touches refused because the lease had been lost.", offsetof(tq_counters, lost)},
	};
	static const char *const states[4] = {"running", "draining", "stopped", "paused"};
	char extra[64];

	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		family(b, counters[c].name, "counter", counters[c].help);
		FOR_EACH_Q {
			uint64_t v;
			memcpy(&v, (const char *)&sn[i].s.total + counters[c].off, sizeof(v));
			sample_u64(b, counters[c].name, sn[i].name, NULL, v);
		}
	}
	family(b, "taskq_tasks", "gauge", "Tasks in the queue by state (free: empty slots).");
	FOR_EACH_Q {
		sample_u64(b, "taskq_tasks", sn[i].name, ",state=\"ready\"", sn[i].s.ready);
		sample_u64(b, "taskq_tasks", sn[i].name, ",state=\"in_progress\"", sn[i].s.leased);
		sample_u64(b, "taskq_tasks", sn[i].name, ",state=\"delayed\"", sn[i].s.delayed);
		sample_u64(b, "taskq_tasks", sn[i].name, ",state=\"dead\"", sn[i].s.dead);
		sample_u64(b, "taskq_tasks", sn[i].name, ",state=\"free\"", sn[i].s.free_slots);
	}
	family(b, "taskq_capacity_tasks", "gauge", "Tasks the queue can hold in all states together.");
	FOR_EACH_Q sample_u64(b, "taskq_capacity_tasks", sn[i].name, NULL, sn[i].s.capacity);
	family(b, "taskq_processes", "gauge", "Processes attached to the queue (this server not counted).");
	FOR_EACH_Q sample_u64(b, "taskq_processes", sn[i].name, NULL, sn[i].s.procs ? sn[i].s.procs - 1 : 0);
	family(b, "taskq_process_recoveries_total", "counter", "Dead processes recovered (their leases returned).");
	FOR_EACH_Q sample_u64(b, "taskq_process_recoveries_total", sn[i].name, NULL, sn[i].s.recoveries);
	family(b, "taskq_oldest_ready_age_seconds", "gauge", "Age of the oldest ready task since it was first pushed; 0 when none is ready.");
	FOR_EACH_Q {
		uint64_t o = sn[i].s.oldest_ready_ns;
		double age = o && sn[i].now > o ? (double)(sn[i].now - o) / 1e9 : 0;
		sample_double(b, "taskq_oldest_ready_age_seconds", sn[i].name, NULL, age);
	}
	family(b, "taskq_run_state", "gauge", "The queue's run state: 1 for the current state, 0 for the others.");
	FOR_EACH_Q {
		for (int st = 0; st < 4; st++) {
			snprintf(extra, sizeof(extra), ",state=\"%s\"", states[st]);
			sample_u64(b, "taskq_run_state", sn[i].name, extra, sn[i].s.run_state == st);
		}
	}
	histogram(b, "taskq_queue_wait_seconds", "Time from push to first delivery.", sn, n, false);
	histogram(b, "taskq_processing_seconds", "Time from delivery to ack.", sn, n, true);
	family(b, "taskq_process_tasks_taken_total", "counter", "Task deliveries to an attached process.");
	FOR_EACH_Q for (size_t k = 0; k < sn[i].nprocs; k++) {
		snprintf(extra, sizeof(extra), ",pid=\"%d\"", (int)sn[i].procs[k].pid);
		sample_u64(b, "taskq_process_tasks_taken_total", sn[i].name, extra, sn[i].procs[k].taken);
	}
	family(b, "taskq_process_tasks_acked_total", "counter", "Tasks acknowledged by an attached process.");
	FOR_EACH_Q for (size_t k = 0; k < sn[i].nprocs; k++) {
		snprintf(extra, sizeof(extra), ",pid=\"%d\"", (int)sn[i].procs[k].pid);
		sample_u64(b, "taskq_process_tasks_acked_total", sn[i].name, extra, sn[i].procs[k].acked);
	}
	family(b, "taskq_process_in_progress", "gauge", "Tasks an attached process holds now.");
	FOR_EACH_Q for (size_t k = 0; k < sn[i].nprocs; k++) {
		snprintf(extra, sizeof(extra), ",pid=\"%d\"", (int)sn[i].procs[k].pid);
		sample_u64(b, "taskq_process_in_progress", sn[i].name, extra, sn[i].procs[k].in_progress);
	}
}

#undef FOR_EACH_Q

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
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					r->bad_token ? "Bearer realm=\"taskq\", error=\"invalid_token\""
						: "Bearer realm=\"taskq\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
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

/* Compares a presented token with the configured one in time that depends
 * only on their lengths: every byte of the longer one is looked at, the
 * differences are OR-ed together, there is no early exit. */
static bool token_matches(const char *given, size_t glen, const char *want, size_t wlen)
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

/* 0: authorized; else the status to answer (401), with *sent saying
 * whether some credentials were presented. */
static unsigned check_auth(struct server *srv, struct MHD_Connection *c, bool *sent)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	*sent = h != NULL;
	if (!h || strncasecmp(h, "Bearer ", 7))
		return MHD_HTTP_UNAUTHORIZED;
	h += 7;
	while (*h == ' ')
		h++;
	size_t len = strlen(h);
	while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len > CLI_TOKEN_MAX)
		len = CLI_TOKEN_MAX + 1; /* compare a prefix: still a mismatch, bounded time */
	return token_matches(h, len, srv->token, srv->token_len) ? 0 : MHD_HTTP_UNAUTHORIZED;
}

static const char *peer_name(struct MHD_Connection *c, char *out, size_t size)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(out, size, "?");
	if (!ci || !ci->client_addr)
		return out;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)size);
	return out;
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
	struct snapshot *sn = calloc(srv->nqueues, sizeof(*sn));
	struct buf b = {0};
	int rc = sn ? 0 : TQ_ENOMEM;

	for (size_t i = 0; i < srv->nqueues && !rc; i++)
		rc = take_snapshot(srv, &srv->queues[i], &sn[i]);
	if (!rc) {
		render_metrics(&b, sn, srv->nqueues);
		if (b.oom)
			rc = TQ_ENOMEM;
	}
	for (size_t i = 0; sn && i < srv->nqueues; i++)
		free(sn[i].procs);
	free(sn);
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

static enum MHD_Result get_health(struct server *srv, struct MHD_Connection *c, struct request *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON *qs = cJSON_AddObjectToObject(o, "queues");
	for (size_t i = 0; i < srv->nqueues; i++)
		cJSON_AddStringToObject(qs, srv->queues[i].name, cli_state_name(tq_run_state(srv->queues[i].q)));
	cJSON_AddBoolToObject(o, "control", srv->token_len > 0);
	return respond_json(c, r, MHD_HTTP_OK, o);
}

static const struct {
	const char *verb;
	int state;
} verbs[] = {
	{"drain", TQ_DRAINING}, {"stop", TQ_STOPPED}, {"pause", TQ_PAUSED}, {"resume", TQ_RUNNING},
};

static enum MHD_Result post_control(struct server *srv, struct MHD_Connection *c, struct request *r,
				    const char *name, size_t name_len, int state)
{
	char peer[INET6_ADDRSTRLEN + 1];

	if (!srv->token_len)
		return respond_error(c, r, MHD_HTTP_FORBIDDEN, "control endpoints are off: no token configured");
	bool sent;
	if (check_auth(srv, c, &sent)) {
		log_event(LOG_WARN_, "control_refused", "peer=%s method=%s path=%s reason=%s",
			  peer_name(c, peer, sizeof(peer)), r->method, r->url, sent ? "wrong_token" : "no_token");
		r->bad_token = sent;
		return respond_error(c, r, MHD_HTTP_UNAUTHORIZED,
				     sent ? "invalid token" : "missing Authorization: Bearer token");
	}
	struct served *sv = find_queue(srv, name, name_len);
	if (!sv)
		return respond_error(c, r, MHD_HTTP_NOT_FOUND, "no such queue served here: %.*s",
				     (int)(name_len > 200 ? 200 : name_len), name);
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

static enum MHD_Result route(struct server *srv, struct MHD_Connection *c, struct request *r, const char *url)
{
	bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");

	if (!strcmp(url, "/metrics") || !strcmp(url, "/stats") || !strcmp(url, "/healthz") ||
	    !strncmp(url, "/stats/", 7)) {
		if (!get)
			return method_not_allowed(c, r, "GET, HEAD");
		if (!strcmp(url, "/metrics"))
			return get_metrics(srv, c, r);
		if (!strcmp(url, "/healthz"))
			return get_health(srv, c, r);
		if (!strcmp(url, "/stats"))
			return get_stats(srv, c, r, NULL);
		struct served *sv = find_queue(srv, url + 7, strlen(url + 7));
		if (!sv)
			return respond_error(c, r, MHD_HTTP_NOT_FOUND, "no such queue served here: %.200s", url + 7);
		return get_stats(srv, c, r, sv);
	}
	if (!strncmp(url, "/queues/", 8)) {
		const char *name = url + 8, *slash = strchr(name, '/');
		if (slash && slash > name) {
			for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
				if (strcmp(slash + 1, verbs[v].verb))
					continue;
				if (strcmp(r->method, "POST"))
					return method_not_allowed(c, r, "POST");
				return post_control(srv, c, r, name, (size_t)(slash - name), verbs[v].state);
			}
		}
	}
	return respond_error(c, r, MHD_HTTP_NOT_FOUND,
			     "no such endpoint (GET /metrics, /stats, /stats/NAME, /healthz; "
			     "POST /queues/NAME/drain|stop|pause|resume)");
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
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(cl, &end, 10);
			if (errno || *end || v > BODY_MAX)
				return respond_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
						     "request body over %d bytes", BODY_MAX);
		}
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
	if (!r)
		return;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		pthread_mutex_lock(&tracks_mu);
		((struct conn_track *)ci->socket_context)->since_ns = tq_now_ns();
		pthread_mutex_unlock(&tracks_mu);
	}
	log_event(LOG_DEBUG_, "http_request", "peer=%s method=%s path=%s status=%u%s",
		  peer_name(c, peer, sizeof(peer)), r->method, r->url, r->status,
		  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " closed=early");
	free(r);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	pthread_mutex_lock(&tracks_mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = NULL;
		for (size_t i = 0; ci && i < TRACK_MAX; i++) {
			if (tracks[i].fd >= 0)
				continue;
			tracks[i].fd = ci->connect_fd;
			tracks[i].shut = false;
			tracks[i].since_ns = tq_now_ns();
			peer_name(c, tracks[i].peer, sizeof(tracks[i].peer));
			*socket_context = &tracks[i];
			break;
		}
	} else if (*socket_context) {
		((struct conn_track *)*socket_context)->fd = -1;
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&tracks_mu);
}

/* Shuts down connections whose request has taken longer than limit_ns. */
static void sweep_slow(uint64_t limit_ns)
{
	uint64_t now = tq_now_ns();

	pthread_mutex_lock(&tracks_mu);
	for (size_t i = 0; i < TRACK_MAX; i++) {
		struct conn_track *t = &tracks[i];
		if (t->fd < 0 || t->shut || now - t->since_ns <= limit_ns)
			continue;
		shutdown(t->fd, SHUT_RDWR);
		t->shut = true;
		log_event(LOG_WARN_, "slow_request_closed", "peer=%s seconds=%.1f", t->peer,
			  (double)(now - t->since_ns) / 1e9);
	}
	pthread_mutex_unlock(&tracks_mu);
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
static bool parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *shown, size_t shown_size)
{
	char host[256];
	const char *colon, *port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			return false;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host) || memchr(s, ':', (size_t)(colon - s)))
			return false;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	uint64_t p;
	if (!cli_parse_u64(port, 0, 65535, &p))
		return false;
	if (!host[0])
		snprintf(host, sizeof(host), "127.0.0.1");
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return false;
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

int cmd_serve(int argc, char **argv)
{
	static const char *usage = "serve NAME [NAME...] [--listen ADDR:PORT] [--token-file FILE]\n"
				   "       [--timeout SEC] [--log-file FILE] [--log-max-bytes N] [--log-max-files N]\n"
				   "       [--log-level LEVEL]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"listen", required_argument, 0, 'l'},
		{"token-file", required_argument, 0, 't'}, {"timeout", required_argument, 0, 'T'},
		CLI_LOG_OPTIONS, {0, 0, 0, 0}};
	const char *listen_at = DEFAULT_LISTEN, *token_file = NULL;
	uint64_t timeout_s = DEFAULT_TIMEOUT_S;
	struct log_config lc;
	static struct server srv; /* the server thread uses it until MHD_stop_daemon returns */
	int c, rc = 0;
	bool ok;

	log_config_init(&lc);
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("usage: taskq %s\n\n"
			       "Serves the queues over HTTP until SIGINT or SIGTERM:\n"
			       "  GET  /metrics                Prometheus text format\n"
			       "  GET  /stats, /stats/NAME     the stats --json snapshot\n"
			       "  GET  /healthz                {\"status\":\"ok\", ...}\n"
			       "  POST /queues/NAME/drain      (and stop, pause, resume): sets the run state,\n"
			       "                               as taskq stop / pause / resume do\n"
			       "--listen: default %s (this machine only); 0.0.0.0:PORT for every\n"
			       "interface. Control needs 'Authorization: Bearer TOKEN', the token being the\n"
			       "first line of --token-file, or $TASKQ_TOKEN; with neither, the POST endpoints\n"
			       "are off (403). --timeout: close connections idle for SEC seconds (default %d).\n"
			       CLI_LOG_HELP "--log-level debug logs every request. See docs/http.md.\n",
			       usage, DEFAULT_LISTEN, DEFAULT_TIMEOUT_S);
			return 0;
		case 'l': listen_at = optarg; break;
		case 't': token_file = optarg; break;
		case 'T':
			if (!cli_parse_u64(optarg, 1, 3600, &timeout_s)) {
				cli_err("invalid value '%s' for --timeout (1..3600 seconds)", optarg);
				return EX_USAGE_;
			}
			break;
		default:
			if (cli_log_option(c, optarg, &lc, &ok)) {
				if (!ok) {
					cli_err("invalid value '%s' for %s", optarg, argv[optind - 1]);
					return EX_USAGE_;
				}
				break;
			}
			fprintf(stderr, "usage: taskq %s\n", usage);
			return EX_USAGE_;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: taskq %s\n", usage);
		return EX_USAGE_;
	}
	struct sockaddr_storage ss;
	socklen_t sslen;
	char shown[INET6_ADDRSTRLEN + 3];
	if (!parse_listen(listen_at, &ss, &sslen, shown, sizeof(shown))) {
		cli_err("invalid --listen '%s' (ADDR:PORT or [IPV6]:PORT)", listen_at);
		return EX_USAGE_;
	}
	memset(&srv, 0, sizeof(srv));
	srv.self = getpid();
	rc = token_file ? cli_read_token_file(token_file, srv.token, sizeof(srv.token))
			: cli_token_from_env(srv.token, sizeof(srv.token));
	if (rc)
		return rc;
	srv.token_len = strlen(srv.token);
	srv.queues = calloc((size_t)(argc - optind), sizeof(*srv.queues));
	if (!srv.queues) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	for (int i = optind; i < argc && !rc; i++) {
		if (find_queue(&srv, argv[i], strlen(argv[i])))
			continue; /* named twice */
		struct served *sv = &srv.queues[srv.nqueues];
		sv->name = argv[i];
		if ((rc = cli_open(argv[i], &sv->q)) == 0)
			srv.nqueues++;
	}
	if (rc)
		goto out;
	if (srv.nqueues == 1)
		lc.queue = srv.queues[0].name;
	if (log_open(&lc) != 0) {
		cli_err("--log-file %s: %s", lc.path, strerror(errno));
		rc = EX_FAIL;
		goto out;
	}

	/* Only this thread takes SIGINT/SIGTERM; the server thread inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (size_t i = 0; i < TRACK_MAX; i++)
		tracks[i].fd = -1;
	errno = 0;
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
		0, NULL, NULL, on_request, &srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, &srv, /* first, so that it gets every message */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)timeout_s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv,
		MHD_OPTION_END);
	if (!d) {
		int e = errno;
		cli_err("cannot listen on %s: %s", listen_at, e ? strerror(e) : "libmicrohttpd failed to start");
		rc = EX_FAIL;
		goto out_log;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = di ? (unsigned)di->port : 0u;
	char names[512] = "", q[600];
	for (size_t i = 0; i < srv.nqueues; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "," : "",
			 srv.queues[i].name);
	log_event(LOG_INFO_, "serve_started", "listen=%s:%u queues=%s control=%s", shown, port,
		  log_quote(q, sizeof(q), names), srv.token_len ? "on" : "off");
	bool loopback = ss.ss_family == AF_INET6
				? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr)
				: (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (!loopback && srv.token_len)
		log_event(LOG_WARN_, "plain_http",
			  "message=\"control is on and reachable from other machines over plain HTTP: the token "
			  "crosses the network unencrypted; put a TLS proxy or an SSH tunnel in front\"");
	printf("taskq serve: http://%s:%u/ serving %zu queue%s; control %s\n", shown, port, srv.nqueues,
	       srv.nqueues == 1 ? "" : "s", srv.token_len ? "on" : "off (no token configured)");
	fflush(stdout);
	int sig;
	for (;;) {
		struct timespec tick = {0, 250 * 1000000L};
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if ((sig = stop_signal) != 0)
			break;
		sweep_slow(timeout_s * 1000000000ull);
	}
	MHD_stop_daemon(d);
	log_event(LOG_INFO_, "serve_stopped", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
out_log:
	log_close();
out:
	for (size_t i = 0; i < srv.nqueues; i++)
		tq_close(srv.queues[i].q);
	free(srv.queues);
	explicit_bzero(srv.token, sizeof(srv.token));
	return rc;
}
