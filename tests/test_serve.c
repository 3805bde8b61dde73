/* SPDX-License-Identifier: MIT */
/*
 * test_serve.c - `taskq serve` end to end: the Prometheus text and the JSON
 * stats against the library's own numbers after a known workload, the
 * control endpoints and their bearer token, the client (`taskq stop --url`),
 * and requests that are malformed, oversized or never finished.
 *
 * The server runs as a child process (build/taskq serve) on 127.0.0.1 and a
 * free port. The HTTP client here is a few lines over raw sockets on
 * purpose: the tests must send requests that an HTTP library would refuse
 * to build. Clients that the per-address connection limits must tell apart
 * connect from other loopback addresses (127.0.0.2, ...: all of 127/8 is
 * this machine on Linux); everything stays on loopback.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "taskq.h"
#include "util.h"

#define TASKQ_BIN TQ_BIN_DIR "/taskq"
#define MS (1000000ull)
#define RESP_MAX (1u << 20)

/* ------------------------------------------------------- per-test state */

static char qname[TQT_NAME_LEN], qname2[TQT_NAME_LEN];
static tq_queue *q, *q2;
static pid_t server = -1;
static int port;
static char token_path[128], server_out[128];
static const char token[] = "tqt-S3cret_token.0123456789abcdef";

static void setup(void)
{
	snprintf(token_path, sizeof(token_path), "/tmp/tqt-serve-token-%d", (int)getpid());
	snprintf(server_out, sizeof(server_out), "/tmp/tqt-serve-out-%d", (int)getpid());
}

static void teardown(void)
{
	if (server > 0) {
		kill(server, SIGTERM);
		tqt_wait(server, 5000);
		server = -1;
	}
	if (q)
		tq_close(q);
	if (q2)
		tq_close(q2);
	q = q2 = NULL;
	if (qname[0])
		tq_destroy(qname);
	if (qname2[0])
		tq_destroy(qname2);
	unlink(token_path);
	unlink(server_out);
}

TestSuite(serve, .init = setup, .fini = teardown, .timeout = 60);

static tq_queue *make_queue(char *name, const char *tag, uint32_t capacity, uint32_t max_attempts)
{
	tq_config c;
	tq_queue *h = NULL;

	tqt_name(name, tag);
	tq_destroy(name);
	tq_config_init(&c);
	c.capacity = capacity;
	c.dead_capacity = capacity;
	c.max_attempts = max_attempts;
	c.backoff_base_ns = 60000 * MS;
	c.backoff_max_ns = 60000 * MS;
	int rc = tq_create(name, &c, &h);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", name, tq_strerror(rc));
	return h;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* ------------------------------------------------------------ raw HTTP */

struct resp {
	int status;    /* 0: the connection closed (or timed out) without a status line */
	bool eof;      /* the server closed the connection */
	char *data;    /* everything received, NUL-ended */
	size_t len;
	const char *body;
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(s, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	return ntohs(a.sin_port);
}

static int connect_to(int p)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* A connection to 127.0.0.1:p from the loopback address src. */
static int connect_from(const char *src, int p)
{
	struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = 0};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (inet_pton(AF_INET, src, &from.sin_addr) != 1 || bind(s, (struct sockaddr *)&from, sizeof(from)) != 0 ||
	    connect(s, (struct sockaddr *)&to, sizeof(to)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Whether the server has closed s (end of file or reset), without waiting:
 * a connection the limits refused is accepted and closed at once. */
static bool peer_closed(int s)
{
	struct pollfd pf = {.fd = s, .events = POLLIN};
	char c;

	if (poll(&pf, 1, 0) <= 0)
		return false;
	if (pf.revents & (POLLERR | POLLHUP))
		return true;
	ssize_t k = recv(s, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void send_all(int s, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(s, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return; /* the server may close early on a bad request: read what it said */
		p += k;
		n -= (size_t)k;
	}
}

/* Reads until the server closes or timeout_ms passes with nothing new. */
static void read_resp(int s, struct resp *r, int timeout_ms)
{
	r->data = calloc(1, RESP_MAX + 1);
	cr_assert_not_null(r->data);
	for (;;) {
		struct pollfd pf = {.fd = s, .events = POLLIN};
		int n = poll(&pf, 1, timeout_ms);
		if (n <= 0)
			break;
		ssize_t k = recv(s, r->data + r->len, RESP_MAX - r->len, 0);
		if (k <= 0) {
			r->eof = true;
			break;
		}
		r->len += (size_t)k;
		if (r->len == RESP_MAX)
			break;
	}
	r->data[r->len] = '\0';
	if (!strncmp(r->data, "HTTP/1.", 7) && r->len >= 12)
		r->status = atoi(r->data + 9);
	const char *e = strstr(r->data, "\r\n\r\n");
	r->body = e ? e + 4 : r->data + r->len;
}

static struct resp http_raw(const char *req, size_t len)
{
	struct resp r = {0};
	int s = connect_to(port);

	cr_assert_geq(s, 0, "connect to 127.0.0.1:%d", port);
	send_all(s, req, len);
	read_resp(s, &r, 5000);
	close(s);
	return r;
}

/* METHOD PATH with Host and Connection: close, plus extra header lines. */
static struct resp http(const char *method, const char *path, const char *extra)
{
	char req[8192];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
			 method, path, extra ? extra : "");
	cr_assert_lt((size_t)n, sizeof(req));
	return http_raw(req, (size_t)n);
}

static void resp_free(struct resp *r)
{
	free(r->data);
	r->data = NULL;
}

/* The value of header `name` (case-insensitive), copied into out; false if absent. */
static bool resp_header(const struct resp *r, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	for (const char *p = strstr(r->data, "\r\n"); p && p < r->body; p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2;
		if (!strncasecmp(h, name, n) && h[n] == ':') {
			h += n + 1;
			while (*h == ' ')
				h++;
			const char *e = strstr(h, "\r\n");
			size_t len = e ? (size_t)(e - h) : strlen(h);
			snprintf(out, size, "%.*s", (int)len, h);
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------ processes */

static bool healthy(const char *expect_queue)
{
	int s = connect_to(port);
	if (s < 0)
		return false;
	const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	struct resp r = {0};
	send_all(s, req, strlen(req));
	read_resp(s, &r, 2000);
	close(s);
	bool ok = r.status == 200 && strstr(r.body, expect_queue) != NULL;
	resp_free(&r);
	return ok;
}

static pid_t spawn(char *const argv[], const char *env_token, int out_fd)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* if this test process dies before its .fini, so does the child */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(127);
		if (env_token)
			setenv("TASKQ_TOKEN", env_token, 1);
		else
			unsetenv("TASKQ_TOKEN");
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		if (out_fd >= 0) {
			dup2(out_fd, 1);
		} else {
			int f = open(server_out, O_WRONLY | O_CREAT | O_APPEND, 0600);
			dup2(f >= 0 ? f : null, 1);
		}
		int f = open(server_out, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(f >= 0 ? f : null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Starts `taskq serve` on the queues with extra arguments (NULL-ended),
 * on a free port; returns once /healthz answers. Retries on another port if
 * the one picked was taken meanwhile. */
static void start_server_args(const char *env_token, const char *const *extra)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		char listen_at[64];
		char *argv[32];
		int n = 0;
		port = free_port();
		snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", port);
		argv[n++] = TASKQ_BIN;
		argv[n++] = "serve";
		argv[n++] = qname;
		if (qname2[0])
			argv[n++] = qname2;
		argv[n++] = "--listen";
		argv[n++] = listen_at;
		argv[n++] = "--log-level";
		argv[n++] = "debug";
		for (int i = 0; extra && extra[i] && n < 31; i++)
			argv[n++] = (char *)extra[i];
		argv[n] = NULL;
		server = spawn(argv, env_token, -1);
		uint64_t deadline = tqt_now_ms() + 10000;
		while (tqt_now_ms() < deadline) {
			int st;
			if (waitpid(server, &st, WNOHANG) == server) {
				server = -1;
				break; /* exited: the port was taken? try another */
			}
			if (healthy(qname))
				return;
			tqt_sleep_ms(10);
		}
		if (server > 0) {
			kill(server, SIGKILL);
			tqt_wait(server, 5000);
			server = -1;
		}
	}
	cr_assert_fail("taskq serve did not come up (see %s)", server_out);
}

static void start_server(bool with_token_file)
{
	if (with_token_file) {
		char text[128];
		snprintf(text, sizeof(text), "%s\n", token); /* the newline is stripped */
		write_file(token_path, text);
		const char *extra[] = {"--token-file", token_path, NULL};
		start_server_args(NULL, extra);
	} else {
		start_server_args(NULL, NULL);
	}
}

/* Runs build/taskq with args (NULL-ended); returns its exit status, its
 * stdout in out. */
static int run_taskq(const char *const *args, const char *env_token, char *out, size_t size)
{
	char *argv[32];
	int n = 0, fds[2];

	argv[n++] = TASKQ_BIN;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = spawn(argv, env_token, fds[1]);
	close(fds[1]);
	size_t have = 0;
	for (;;) {
		struct pollfd pf = {.fd = fds[0], .events = POLLIN};
		if (poll(&pf, 1, 30000) <= 0)
			break;
		ssize_t k = read(fds[0], out + have, size - 1 - have);
		if (k <= 0)
			break;
		have += (size_t)k;
		if (have == size - 1)
			break;
	}
	out[have] = '\0';
	close(fds[0]);
	return tqt_wait(pid, 30000);
}

/* ------------------------------------------------------ metrics parsing */

/* The value of the sample whose name and labels are exactly `series`. */
static bool metric(const char *text, const char *series, double *v)
{
	size_t n = strlen(series);
	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (!strncmp(line, series, n) && line[n] == ' ') {
			*v = strtod(line + n + 1, NULL);
			return true;
		}
	}
	return false;
}

static double must_metric(const char *text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static double must_metric(const char *text, const char *fmt, ...)
{
	char series[512];
	va_list ap;
	double v = -1;

	va_start(ap, fmt);
	vsnprintf(series, sizeof(series), fmt, ap);
	va_end(ap);
	cr_assert(metric(text, series, &v), "no sample %s in /metrics", series);
	return v;
}

static int count_substr(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Every sample's family has exactly one # TYPE and one # HELP line, and
 * the TYPE comes before the family's first sample. */
static void check_types(const char *text)
{
	char name[256], want[300];
	for (const char *line = text; *line;) {
		const char *eol = strchr(line, '\n');
		cr_assert_not_null(eol, "the exposition ends with a newline");
		if (*line != '#' && eol > line) {
			size_t k = strcspn(line, "{ ");
			cr_assert_lt(k, sizeof(name));
			memcpy(name, line, k);
			name[k] = '\0';
			for (size_t i = 0; i < k; i++)
				cr_assert(isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == ':',
					  "bad metric name %s", name);
			snprintf(want, sizeof(want), "# TYPE %s ", name);
			const char *t = strstr(text, want);
			if (!t) {
				static const char *suffix[] = {"_bucket", "_sum", "_count"};
				for (int s = 0; s < 3 && !t; s++) {
					size_t sl = strlen(suffix[s]);
					if (k > sl && !strcmp(name + k - sl, suffix[s])) {
						snprintf(want, sizeof(want), "# TYPE %.*s histogram\n", (int)(k - sl), name);
						t = strstr(text, want);
					}
				}
			}
			cr_assert_not_null(t, "sample %s has no # TYPE line", name);
			cr_assert(t < line, "# TYPE of %s comes after its sample", name);
			cr_assert_eq(count_substr(text, want), 1, "%s appears more than once", want);
			char help[300];
			snprintf(help, sizeof(help), "# HELP %s", want + strlen("# TYPE "));
			*strrchr(help, ' ') = '\0';
			cr_assert(strstr(text, help), "no %s", help);
		}
		line = eol + 1;
	}
}

/* A histogram of queue qn: buckets cumulative with increasing le, the last
 * le="+Inf" equal to _count; returns _count. */
static double check_histogram(const char *text, const char *fam, const char *qn)
{
	char prefix[256];
	double last_le = -1, last = 0;
	int nb = 0;
	bool inf = false;

	snprintf(prefix, sizeof(prefix), "%s_bucket{queue=\"%s\",le=\"", fam, qn);
	for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
		cr_assert(!inf, "%s: a bucket after +Inf", fam);
		const char *le = p + strlen(prefix);
		double lev = !strncmp(le, "+Inf\"", 5) ? INFINITY : strtod(le, NULL);
		inf = isinf(lev);
		cr_assert_gt(lev, last_le, "%s: le not increasing", fam);
		const char *val = strstr(le, "} ");
		cr_assert_not_null(val);
		double v = strtod(val + 2, NULL);
		cr_assert_geq(v, last, "%s: buckets not cumulative", fam);
		last = v;
		last_le = lev;
		nb++;
	}
	cr_assert(inf, "%s: no le=\"+Inf\" bucket", fam);
	cr_assert_gt(nb, 10);
	double count = must_metric(text, "%s_count{queue=\"%s\"}", fam, qn);
	cr_assert_eq(last, count, "%s: +Inf bucket %.0f != _count %.0f", fam, last, count);
	return count;
}

/* ----------------------------------------------------------- the tests */

/* Pushes 20, takes and acks 8, takes and fails 3 (dead at once: one
 * attempt), takes 2 and holds them. The 8 acks are one call: a handle's
 * first small call is measured, later ones one in 8 (tq_histogram), so
 * the processing histogram's count is the acks'. */
static void workload(tq_queue *h, tq_task held[2])
{
	tq_task t[8];

	for (int i = 0; i < 20; i++)
		cr_assert_eq(tq_push_int(h, (uint64_t)i, 0), 0);
	cr_assert_eq(tq_take(h, t, 8, 0), 8);
	tqt_sleep_ms(2);
	cr_assert_eq(tq_ack(h, t, 8), 0);
	cr_assert_eq(tq_take(h, t, 3, 0), 3);
	cr_assert_eq(tq_fail(h, t, 3, 5, "boom"), 0);
	cr_assert_eq(tq_take(h, held, 2, 0), 2);
}

Test(serve, metrics_match_the_library)
{
	tq_task held[2];
	q = make_queue(qname, "srv-metrics", 64, 1);
	q2 = make_queue(qname2, "srv-metrics2", 16, 5);
	workload(q, held);
	cr_assert_eq(tq_push_int(q2, 7, 0), 0);
	start_server(false);

	struct resp r = http("GET", "/metrics", NULL);
	cr_assert_eq(r.status, 200, "%s", r.data);
	char ct[128];
	cr_assert(resp_header(&r, "Content-Type", ct, sizeof(ct)));
	cr_assert(strstr(ct, "text/plain") && strstr(ct, "version=0.0.4"), "Content-Type: %s", ct);
	const char *m = r.body;

	tq_stats s;
	tq_histogram hw, hp;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(tq_histograms(q, &hw, &hp), 0);
	/* the workload, as the library counts it */
	cr_assert_eq(s.total.pushed, 20);
	cr_assert_eq(s.total.taken, 13);
	cr_assert_eq(s.total.acked, 8);
	cr_assert_eq(s.total.dead, 3);
	cr_assert_eq(s.ready, 7);
	cr_assert_eq(s.leased, 2);

	check_types(m);
	struct { const char *name; uint64_t v; } c[] = {
		{"taskq_tasks_pushed_total", s.total.pushed}, {"taskq_tasks_taken_total", s.total.taken},
		{"taskq_tasks_acked_total", s.total.acked}, {"taskq_tasks_failed_total", s.total.failed},
		{"taskq_tasks_retried_total", s.total.retried}, {"taskq_tasks_dead_total", s.total.dead},
		{"taskq_leases_expired_total", s.total.expired}, {"taskq_leases_recovered_total", s.total.recovered},
		{"taskq_dead_overflow_total", s.total.dead_overflow}, {"taskq_acks_lost_total", s.total.lost},
		{"taskq_process_recoveries_total", s.recoveries}, {"taskq_capacity_tasks", s.capacity},
		{"taskq_processes", s.procs}, /* the server, an observer, is not one */
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		double v = must_metric(m, "%s{queue=\"%s\"}", c[i].name, qname);
		cr_assert_eq(v, (double)c[i].v, "%s: %.0f, library %llu", c[i].name, v, (unsigned long long)c[i].v);
		char type[128];
		snprintf(type, sizeof(type), "# TYPE %s %s\n", c[i].name,
			 strstr(c[i].name, "_total") ? "counter" : "gauge");
		cr_assert(strstr(m, type), "no %s", type);
	}
	cr_assert_eq(must_metric(m, "taskq_processes{queue=\"%s\"}", qname), 1, "this process only: the server, an observer, is not counted");
	struct { const char *state; uint32_t v; } g[] = {
		{"ready", s.ready}, {"in_progress", s.leased}, {"delayed", s.delayed}, {"dead", s.dead}, {"free", s.free_slots},
	};
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(must_metric(m, "taskq_tasks{queue=\"%s\",state=\"%s\"}", qname, g[i].state), g[i].v,
			     "taskq_tasks %s", g[i].state);
	double age = must_metric(m, "taskq_oldest_ready_age_seconds{queue=\"%s\"}", qname);
	cr_assert(age > 0 && age < 60, "oldest ready age %f", age);
	static const char *states[] = {"running", "draining", "stopped", "paused"};
	for (int i = 0; i < 4; i++)
		cr_assert_eq(must_metric(m, "taskq_run_state{queue=\"%s\",state=\"%s\"}", qname, states[i]), i == 0);

	double proc_count = check_histogram(m, "taskq_processing_seconds", qname);
	cr_assert_eq(proc_count, 8, "processing _count = acked");
	cr_assert_eq(proc_count, (double)s.processing.count);
	double wait_count = check_histogram(m, "taskq_queue_wait_seconds", qname);
	cr_assert_eq(wait_count, (double)s.wait.count);
	double sum = must_metric(m, "taskq_processing_seconds_sum{queue=\"%s\"}", qname);
	cr_assert(fabs(sum - (double)hp.sum_ns / 1e9) <= 1e-9 + 1e-9 * sum, "_sum %g vs %g", sum, (double)hp.sum_ns / 1e9);
	cr_assert_geq(sum, 0.002 * 8 * 0.9, "8 tasks held for >= 2 ms each: %g", sum);

	/* per process: this one, not the server */
	pid_t me = getpid();
	cr_assert_eq(must_metric(m, "taskq_process_tasks_taken_total{queue=\"%s\",pid=\"%d\"}", qname, (int)me), 13);
	cr_assert_eq(must_metric(m, "taskq_process_tasks_acked_total{queue=\"%s\",pid=\"%d\"}", qname, (int)me), 8);
	cr_assert_eq(must_metric(m, "taskq_process_in_progress{queue=\"%s\",pid=\"%d\"}", qname, (int)me), 2);
	char srvpid[64];
	snprintf(srvpid, sizeof(srvpid), "pid=\"%d\"", (int)server);
	cr_assert_null(strstr(m, srvpid), "the server lists itself");

	/* the second queue, in the same families */
	cr_assert_eq(must_metric(m, "taskq_tasks_pushed_total{queue=\"%s\"}", qname2), 1);
	cr_assert_eq(must_metric(m, "taskq_capacity_tasks{queue=\"%s\"}", qname2), 16);
	check_histogram(m, "taskq_processing_seconds", qname2);
	resp_free(&r);

	/* HEAD: the headers only */
	r = http("HEAD", "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(strlen(r.body), 0);
	resp_free(&r);
	tq_ack(q, held, 2);
}

Test(serve, stats_json_has_the_same_numbers)
{
	tq_task held[2];
	char want[256];
	q = make_queue(qname, "srv-stats", 64, 1);
	workload(q, held);
	start_server(false);

	struct resp r = http("GET", "/stats", NULL);
	cr_assert_eq(r.status, 200);
	char ct[128];
	cr_assert(resp_header(&r, "Content-Type", ct, sizeof(ct)) && strstr(ct, "application/json"));
	cr_assert(!strncmp(r.body, "{\"queues\":[{", 12), "%s", r.body);
	const char *checks[] = {"\"pushed\":20", "\"taken\":13", "\"acked\":8", "\"failed\":3", "\"dead\":3",
				"\"ready\":7", "\"leased\":2", "\"capacity\":64", "\"processes\":1",
				"\"state\":\"running\"", "\"process_list\":[{"};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		cr_assert(strstr(r.body, checks[i]), "no %s in %s", checks[i], r.body);
	snprintf(want, sizeof(want), "\"name\":\"%s\"", qname);
	cr_assert(strstr(r.body, want));
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)getpid());
	cr_assert(strstr(r.body, want), "this process in process_list");
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)server);
	cr_assert_null(strstr(r.body, want), "the server in its own process_list");
	resp_free(&r);

	char path[200];
	snprintf(path, sizeof(path), "/stats/%s", qname);
	r = http("GET", path, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert(!strncmp(r.body, "{\"name\":", 8), "%s", r.body);
	cr_assert(strstr(r.body, "\"acked\":8"));
	resp_free(&r);

	r = http("GET", "/stats/no-such-queue", NULL);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(r.body, "{\"error\":"), "%s", r.body);
	resp_free(&r);

	r = http("GET", "/healthz", NULL);
	cr_assert_eq(r.status, 200);
	snprintf(want, sizeof(want), "\"%s\":\"running\"", qname);
	cr_assert(strstr(r.body, "\"status\":\"ok\"") && strstr(r.body, want), "%s", r.body);
	resp_free(&r);
	tq_ack(q, held, 2);
}

static unsigned post_state(const char *verb, const char *auth)
{
	char path[256];
	snprintf(path, sizeof(path), "/queues/%s/%s", qname, verb);
	struct resp r = http("POST", path, auth);
	unsigned st = (unsigned)r.status;
	if (st == 401) {
		char v[128];
		cr_assert(resp_header(&r, "WWW-Authenticate", v, sizeof(v)), "401 without WWW-Authenticate");
		cr_assert(!strncasecmp(v, "Bearer", 6), "WWW-Authenticate: %s", v);
	}
	if (st >= 400)
		cr_assert(strstr(r.body, "{\"error\":\""), "error body not JSON: %s", r.body);
	resp_free(&r);
	return st;
}

Test(serve, control_with_the_token_sets_the_run_state)
{
	char auth[256];
	q = make_queue(qname, "srv-ctl", 16, 5);
	start_server(true);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);

	struct { const char *verb; int state; } v[] = {
		{"drain", TQ_DRAINING}, {"resume", TQ_RUNNING}, {"stop", TQ_STOPPED},
		{"pause", TQ_PAUSED}, {"resume", TQ_RUNNING},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cr_assert_eq(post_state(v[i].verb, auth), 200, "POST %s", v[i].verb);
		cr_assert_eq(tq_run_state(q), v[i].state, "after %s", v[i].verb);
	}
	/* the answer names the queue and the new state */
	char path[256];
	snprintf(path, sizeof(path), "/queues/%s/drain", qname);
	struct resp r = http("POST", path, auth);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"state\":\"draining\"") && strstr(r.body, qname), "%s", r.body);
	resp_free(&r);
	/* the scheme is case-insensitive */
	snprintf(auth, sizeof(auth), "Authorization: bearer %s\r\n", token);
	cr_assert_eq(post_state("resume", auth), 200);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	/* the library's enforcement follows: a push while draining is refused */
	cr_assert_eq(post_state("drain", auth), 200);
	cr_assert_eq(tq_push_int(q, 1, 0), TQ_ESTOPPED);
	/* /metrics shows it */
	r = http("GET", "/metrics", NULL);
	cr_assert_eq(must_metric(r.body, "taskq_run_state{queue=\"%s\",state=\"draining\"}", qname), 1);
	cr_assert_eq(must_metric(r.body, "taskq_run_state{queue=\"%s\",state=\"running\"}", qname), 0);
	resp_free(&r);
}

Test(serve, control_refuses_wrong_or_missing_tokens)
{
	char auth[256], wrong[64];
	q = make_queue(qname, "srv-auth", 16, 5);
	start_server(true);

	snprintf(wrong, sizeof(wrong), "%s", token);
	wrong[strlen(wrong) - 1] ^= 1; /* same length, last byte differs */
	const char *bad[] = {
		NULL,                                     /* no header */
		"Authorization: Bearer \r\n",             /* empty */
		"Authorization: Basic dXNlcjpwYXNz\r\n",  /* another scheme */
		"Authorization: Bearer tqt\r\n",          /* a prefix */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(post_state("drain", bad[i]), 401, "case %zu", i);
		cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", wrong);
	cr_assert_eq(post_state("stop", auth), 401);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %sx\r\n", token); /* the token and more */
	cr_assert_eq(post_state("pause", auth), 401);
	char huge[6000];
	memset(huge, 'a', sizeof(huge));
	snprintf(huge, sizeof(huge), "Authorization: Bearer %s", token);
	huge[strlen(huge)] = 'b';
	memcpy(huge + sizeof(huge) - 3, "\r\n", 3);
	cr_assert_eq(post_state("pause", huge), 401);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING, "no refused request changed the state");

	/* the right token on an unknown queue */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	struct resp r = http("POST", "/queues/no-such-queue/drain", auth);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(r.body, "{\"error\":"));
	resp_free(&r);
	/* unknown verb */
	char path[256];
	snprintf(path, sizeof(path), "/queues/%s/explode", qname);
	r = http("POST", path, auth);
	cr_assert_eq(r.status, 404);
	resp_free(&r);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
}

Test(serve, control_is_off_without_a_token)
{
	char auth[256];
	q = make_queue(qname, "srv-off", 16, 5);
	start_server(false);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);

	char path[256];
	snprintf(path, sizeof(path), "/queues/%s/drain", qname);
	struct resp r = http("POST", path, auth);
	cr_assert_eq(r.status, 403, "%s", r.data);
	cr_assert(strstr(r.body, "control endpoints are off"), "%s", r.body);
	resp_free(&r);
	r = http("POST", path, NULL);
	cr_assert_eq(r.status, 403);
	resp_free(&r);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	r = http("GET", "/healthz", NULL);
	cr_assert(strstr(r.body, "\"control\":false"), "%s", r.body);
	resp_free(&r);
}

Test(serve, token_from_the_environment)
{
	char auth[256];
	q = make_queue(qname, "srv-env", 16, 5);
	start_server_args(token, NULL);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	cr_assert_eq(post_state("pause", auth), 200);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
	cr_assert_eq(post_state("resume", "Authorization: Bearer nope\r\n"), 401);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
}

Test(serve, methods_paths_and_sizes)
{
	char v[128], path[256];
	q = make_queue(qname, "srv-http", 16, 5);
	start_server(true);

	snprintf(path, sizeof(path), "/queues/%s/drain", qname);
	struct resp r = http("GET", path, NULL);
	cr_assert_eq(r.status, 405);
	cr_assert(resp_header(&r, "Allow", v, sizeof(v)) && !strcmp(v, "POST"), "Allow: %s", v);
	cr_assert(strstr(r.body, "{\"error\":"));
	resp_free(&r);

	const char *reads[] = {"/metrics", "/stats", "/healthz", "/", "/assets/dashboard.js", "/events/x", "/dead/x"};
	for (int i = 0; i < 7; i++) {
		r = http("POST", reads[i], NULL);
		cr_assert_eq(r.status, 405, "POST %s", reads[i]);
		cr_assert(resp_header(&r, "Allow", v, sizeof(v)) && strstr(v, "GET"), "Allow: %s", v);
		resp_free(&r);
		r = http("DELETE", reads[i], NULL);
		cr_assert_eq(r.status, 405);
		resp_free(&r);
	}
	r = http("BREW", "/metrics", NULL);
	cr_assert_eq(r.status, 405);
	resp_free(&r);

	const char *unknown[] = {"/index.html", "/assets/", "/assets/nope.js", "/assets/../index.html", "/metricsx", "/metrics/", "/queues", "/queues/", "/queues//drain",
				 "/..%2f..%2fetc/passwd", "/stats/../metrics"};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		r = http("GET", unknown[i], NULL);
		cr_assert_eq(r.status, 404, "GET %s: %d", unknown[i], r.status);
		cr_assert(strstr(r.body, "{\"error\":"), "%s", r.body);
		resp_free(&r);
	}

	/* an oversized body: answered from the headers, before it is sent */
	char auth[256];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\nContent-Length: 5000\r\n", token);
	r = http("POST", path, auth);
	cr_assert_eq(r.status, 413, "%s", r.data);
	cr_assert(strstr(r.body, "{\"error\":"), "%s", r.body);
	resp_free(&r);
	r = http("POST", path, "Content-Length: 99999999999999999999999\r\n");
	cr_assert(r.status >= 400 && r.status < 500, "%d", r.status);
	resp_free(&r);
	/* a body of unknown length */
	r = http("POST", path, "Transfer-Encoding: chunked\r\n");
	cr_assert(r.status == 411 || r.status == 413, "%d", r.status);
	resp_free(&r);
	r = http("POST", path, "Content-Length: 1\r\nContent-Length: 2\r\n");
	cr_assert_eq(r.status, 400, "two Content-Length headers: %d", r.status);
	resp_free(&r);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	/* a small body is read and ignored */
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\n"
			 "Content-Length: 11\r\n\r\nhello world", path, token);
	r = http_raw(req, (size_t)n);
	cr_assert_eq(r.status, 200, "%s", r.data);
	resp_free(&r);
	cr_assert_eq(tq_run_state(q), TQ_DRAINING);
	cr_assert(healthy(qname));
}

/* Sends req; the server must answer 4xx or close the connection, never
 * hang (5 s), and go on serving. */
static void expect_refused(const char *what, const char *req, size_t len)
{
	struct resp r = http_raw(req, len);
	cr_assert(r.eof || r.status, "%s: no answer and the connection stayed open", what);
	cr_assert(r.status == 0 || (r.status >= 400 && r.status < 500) || r.status == 505,
		  "%s: status %d", what, r.status);
	resp_free(&r);
	cr_assert(healthy(qname), "after %s the server no longer answers", what);
}

Test(serve, malformed_requests_get_4xx_and_the_server_keeps_serving)
{
	q = make_queue(qname, "srv-bad", 16, 5);
	start_server(true);

	expect_refused("garbage request line", "GARBAGE\r\n\r\n", 11);
	expect_refused("no version", "GET /healthz\r\n\r\n", 16);
	const char *nocolon = "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n";
	expect_refused("header without colon", nocolon, strlen(nocolon));
	const char *nohost = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
	expect_refused("HTTP/1.1 without Host", nohost, strlen(nohost));
	const char *badlen = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n";
	expect_refused("bad Content-Length", badlen, strlen(badlen));
	const char *neglen = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n";
	expect_refused("negative Content-Length", neglen, strlen(neglen));
	const char *space = "GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n";
	expect_refused("space in the URL", space, strlen(space));

	size_t big = 200 * 1024;
	char *req = malloc(big + 256);
	cr_assert_not_null(req);
	int n = sprintf(req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'a', big);
	strcpy(req + n + big, "\r\n\r\n");
	expect_refused("a 200 KiB header", req, strlen(req));
	n = sprintf(req, "GET /");
	memset(req + n, 'a', big);
	strcpy(req + n + big, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_refused("a 200 KiB URL", req, strlen(req));
	n = sprintf(req, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 5000; i++)
		n += sprintf(req + n, "X-%d: y\r\n", i);
	strcpy(req + n, "\r\n");
	expect_refused("5000 headers", req, strlen(req));
	/* binary junk, NUL bytes included */
	for (size_t i = 0; i < 4096; i++)
		req[i] = (char)((i * 2654435761u) >> 13);
	expect_refused("binary junk", req, 4096);
	free(req);
}

Test(serve, incomplete_requests_time_out_without_blocking_others)
{
	q = make_queue(qname, "srv-slow", 16, 5);
	const char *extra[] = {"--timeout", "1", NULL};
	start_server_args(NULL, extra);

	/* slowloris: several connections that never finish their headers,
	 * from another address than the checks (those would share its
	 * per-address limit otherwise) */
	int slow[8];
	const char *partial = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	for (int i = 0; i < 8; i++) {
		slow[i] = connect_from("127.0.0.2", port);
		cr_assert_geq(slow[i], 0);
		send_all(slow[i], partial, strlen(partial));
	}
	/* and some that send nothing at all */
	int idle[8];
	for (int i = 0; i < 8; i++)
		idle[i] = connect_from("127.0.0.2", port);
	uint64_t t0 = tqt_now_ms();
	cr_assert(healthy(qname), "others are served meanwhile");
	struct resp r = http("GET", "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	/* every one of them is closed after the idle timeout (1 s), within 10 s */
	for (int i = 0; i < 8; i++) {
		struct resp rs = {0};
		send_all(slow[i], "a", 1); /* trickling a byte now and then is still idle enough */
		read_resp(slow[i], &rs, 10000);
		cr_assert(rs.eof, "slow connection %d still open after %llu ms", i,
			  (unsigned long long)(tqt_now_ms() - t0));
		cr_assert(rs.status == 0 || (rs.status >= 400 && rs.status < 500), "%d", rs.status);
		resp_free(&rs);
		close(slow[i]);
		rs = (struct resp){0};
		read_resp(idle[i], &rs, 10000);
		cr_assert(rs.eof, "idle connection %d still open", i);
		resp_free(&rs);
		close(idle[i]);
	}
	cr_assert_lt(tqt_now_ms() - t0, 15000);
	cr_assert(healthy(qname));

	/* a real slowloris: a byte every 100 ms is never idle for 1 s, but
	 * the request must arrive whole within 1 s; then the server closes it */
	int tr = connect_to(port);
	cr_assert_geq(tr, 0);
	send_all(tr, partial, strlen(partial));
	t0 = tqt_now_ms();
	bool closed = false;
	while (!closed && tqt_now_ms() - t0 < 10000) {
		if (send(tr, "a", 1, MSG_NOSIGNAL) != 1)
			break; /* reset: closed */
		struct pollfd pf = {.fd = tr, .events = POLLIN};
		if (poll(&pf, 1, 100) > 0) {
			char junk[4096];
			closed = recv(tr, junk, sizeof(junk), 0) <= 0;
			if (!closed)
				continue; /* an answer (4xx); the close follows */
		}
		cr_assert(healthy(qname), "others are served while one trickles");
	}
	uint64_t took = tqt_now_ms() - t0;
	close(tr);
	cr_assert_lt(took, 5000, "a trickling request was not cut off (%llu ms)", (unsigned long long)took);
	cr_assert_geq(took, 900, "cut off before its deadline (%llu ms)", (unsigned long long)took);
	cr_assert(healthy(qname));
}

Test(serve, sigterm_and_sigint_stop_it_cleanly)
{
	q = make_queue(qname, "srv-sig", 16, 5);
	start_server(false);
	kill(server, SIGTERM);
	cr_assert_eq(tqt_wait(server, 10000), 0, "exit status after SIGTERM");
	server = -1;
	tq_stats s;
	tq_stats_get(q, &s);
	cr_assert_eq(s.procs, 1, "the server detached");
	cr_assert_eq(s.recoveries, 0, "it closed, it did not die");

	start_server(false);
	kill(server, SIGINT);
	cr_assert_eq(tqt_wait(server, 10000), 0, "exit status after SIGINT");
	server = -1;
}

Test(serve, startup_errors)
{
	char out[4096], listen_at[64];
	q = make_queue(qname, "srv-start", 16, 5);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", free_port());

	const char *missing[] = {"serve", qname, "tqt-no-such-queue-for-serve", "--listen", listen_at, NULL};
	cr_assert_eq(run_taskq(missing, NULL, out, sizeof(out)), 3, "a missing queue");
	const char *nofile[] = {"serve", qname, "--listen", listen_at, "--token-file", "/nonexistent/tok", NULL};
	cr_assert_eq(run_taskq(nofile, NULL, out, sizeof(out)), 2, "a missing token file");
	write_file(token_path, "\n");
	const char *empty[] = {"serve", qname, "--listen", listen_at, "--token-file", token_path, NULL};
	cr_assert_eq(run_taskq(empty, NULL, out, sizeof(out)), 2, "an empty token file");
	write_file(token_path, "");
	cr_assert_eq(run_taskq(empty, NULL, out, sizeof(out)), 2, "a zero-byte token file");
	const char *badlisten[] = {"serve", qname, "--listen", "nowhere", NULL};
	cr_assert_eq(run_taskq(badlisten, NULL, out, sizeof(out)), 2);
	const char *badport[] = {"serve", qname, "--listen", "127.0.0.1:70000", NULL};
	cr_assert_eq(run_taskq(badport, NULL, out, sizeof(out)), 2);
	const char *noqueue[] = {"serve", "--listen", listen_at, NULL};
	cr_assert_eq(run_taskq(noqueue, NULL, out, sizeof(out)), 2);
	const char *badname[] = {"serve", "bad/name", "--listen", listen_at, NULL};
	cr_assert_eq(run_taskq(badname, NULL, out, sizeof(out)), 2);

	/* the port is taken */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s, 4), 0);
	getsockname(s, (struct sockaddr *)&a, &alen);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ntohs(a.sin_port));
	const char *taken[] = {"serve", qname, "--listen", listen_at, NULL};
	cr_assert_eq(run_taskq(taken, NULL, out, sizeof(out)), 1, "the port is in use");
	close(s);
}

Test(serve, client_stop_pause_resume_over_http)
{
	char out[4096], url[64];
	q = make_queue(qname, "srv-client", 16, 5);
	start_server(true);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);

	const char *stop[] = {"stop", qname, "--url", url, "--token-file", token_path, NULL};
	cr_assert_eq(run_taskq(stop, NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "draining"), "%s", out);
	cr_assert_eq(tq_run_state(q), TQ_DRAINING);

	const char *now[] = {"stop", qname, "--now", "--url", url, "--token-file", token_path, "--json", NULL};
	cr_assert_eq(run_taskq(now, NULL, out, sizeof(out)), 0);
	cr_assert(strstr(out, "stopped"), "%s", out);
	cr_assert_eq(tq_run_state(q), TQ_STOPPED);

	char slash[80];
	snprintf(slash, sizeof(slash), "%s/", url);
	const char *pause[] = {"pause", qname, "--url", slash, NULL};
	cr_assert_eq(run_taskq(pause, token, out, sizeof(out)), 0, "token from TASKQ_TOKEN");
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);

	const char *resume[] = {"resume", "--url", url, "--token-file", token_path, qname, NULL};
	cr_assert_eq(run_taskq(resume, NULL, out, sizeof(out)), 0);
	cr_assert(strstr(out, "running"), "%s", out);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);

	/* without --url, the same commands act on the local queue as before */
	const char *local[] = {"pause", qname, NULL};
	cr_assert_eq(run_taskq(local, NULL, out, sizeof(out)), 0);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
	const char *local2[] = {"resume", qname, NULL};
	cr_assert_eq(run_taskq(local2, NULL, out, sizeof(out)), 0);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
}

Test(serve, client_exit_statuses)
{
	char out[4096], url[64], wrong_path[160];
	q = make_queue(qname, "srv-clexit", 16, 5);
	start_server(true);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	snprintf(wrong_path, sizeof(wrong_path), "%s.wrong", token_path);
	write_file(wrong_path, "not-the-token\n");

	const char *wrong[] = {"stop", qname, "--url", url, "--token-file", wrong_path, NULL};
	cr_assert_eq(run_taskq(wrong, NULL, out, sizeof(out)), 8, "a wrong token");
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	const char *none[] = {"stop", qname, "--url", url, NULL};
	cr_assert_eq(run_taskq(none, NULL, out, sizeof(out)), 8, "no token");
	const char *noq[] = {"stop", "tqt-no-such-queue", "--url", url, "--token-file", token_path, NULL};
	cr_assert_eq(run_taskq(noq, NULL, out, sizeof(out)), 3, "an unknown queue");
	unlink(wrong_path);

	char dead_url[64];
	snprintf(dead_url, sizeof(dead_url), "http://127.0.0.1:%d", free_port());
	const char *unreachable[] = {"stop", qname, "--url", dead_url, "--token-file", token_path, NULL};
	uint64_t t0 = tqt_now_ms();
	cr_assert_eq(run_taskq(unreachable, NULL, out, sizeof(out)), 1, "nothing listening");
	cr_assert_lt(tqt_now_ms() - t0, 15000);

	const char *nourl[] = {"stop", qname, "--token-file", token_path, NULL};
	cr_assert_eq(run_taskq(nourl, NULL, out, sizeof(out)), 2, "--token-file without --url");
	const char *badurl[] = {"pause", qname, "--url", "ftp://127.0.0.1/", NULL};
	cr_assert_eq(run_taskq(badurl, NULL, out, sizeof(out)), 2);
	const char *badname[] = {"pause", "../x", "--url", url, NULL};
	cr_assert_eq(run_taskq(badname, NULL, out, sizeof(out)), 2);
	const char *nowpause[] = {"pause", qname, "--now", "--url", url, NULL};
	cr_assert_eq(run_taskq(nowpause, NULL, out, sizeof(out)), 2, "--now is for stop");
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);

	/* control off on the server: refused too */
	kill(server, SIGTERM);
	cr_assert_eq(tqt_wait(server, 10000), 0);
	server = -1;
	start_server(false);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	const char *off[] = {"stop", qname, "--url", url, "--token-file", token_path, NULL};
	cr_assert_eq(run_taskq(off, NULL, out, sizeof(out)), 8, "control off");
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
}

Test(serve, keep_alive_and_a_connection_flood)
{
	q = make_queue(qname, "srv-flood", 16, 5);
	const char *extra[] = {"--timeout", "2", NULL};
	start_server_args(NULL, extra);

	/* two requests on one connection */
	const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
			  "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct resp r = http_raw(two, strlen(two));
	cr_assert_eq(r.status, 200);
	cr_assert_eq(count_substr(r.data, "HTTP/1.1 200 OK\r\n"), 2, "%s", r.data);
	cr_assert(strstr(r.data, "taskq_tasks_pushed_total"));
	resp_free(&r);

	/* more connections than the server's limit (64), then all gone */
	int fds[150];
	for (int i = 0; i < 150; i++)
		fds[i] = connect_to(port);
	for (int i = 0; i < 150; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	uint64_t deadline = tqt_now_ms() + 10000;
	bool ok = false;
	while (!ok && tqt_now_ms() < deadline) {
		ok = healthy(qname);
		if (!ok)
			tqt_sleep_ms(20);
	}
	cr_assert(ok, "the server does not answer after a connection flood");
	int st;
	cr_assert_eq(waitpid(server, &st, WNOHANG), 0, "the server exited");
}

/* ---------------------------------------------------- connection limits */

/* What the runs since the last call wrote on stderr (they append to
 * server_out); forgets it. */
static void take_stderr(char *out, size_t size)
{
	int fd = open(server_out, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd >= 0) {
		ssize_t k;
		while (n + 1 < size && (k = read(fd, out + n, size - 1 - n)) > 0)
			n += (size_t)k;
		close(fd);
	}
	out[n] = '\0';
	unlink(server_out);
}

struct conn_counts {
	double open, per_ip, full, reserve;
};

/* The server's own count of its connections, from /metrics (asked from
 * 127.0.0.1, so this request is one of them). */
static void server_counts(struct conn_counts *cc)
{
	struct resp r = http("GET", "/metrics", NULL);
	cr_assert_eq(r.status, 200, "/metrics: %d", r.status);
	cc->open = must_metric(r.body, "taskq_http_connections");
	cc->per_ip = must_metric(r.body, "taskq_http_connections_refused_total{reason=\"per_ip\"}");
	cc->full = must_metric(r.body, "taskq_http_connections_refused_total{reason=\"full\"}");
	cc->reserve = must_metric(r.body, "taskq_http_connections_refused_total{reason=\"reserve\"}");
	resp_free(&r);
}

/* Waits (polling, 10 s at most) until the server holds no connection but
 * the one asking: those of start_server_args are gone. */
static void wait_quiet(void)
{
	struct conn_counts cc;
	uint64_t deadline = tqt_now_ms() + 10000;
	for (;;) {
		server_counts(&cc);
		if (cc.open == 1)
			return;
		cr_assert_lt(tqt_now_ms(), deadline, "the server still holds %.0f connections", cc.open);
		tqt_sleep_ms(10);
	}
}

/* One well-behaved request from 127.0.0.1 on a new connection: true if it
 * is answered 200 with `want` in the body within 5 s. */
static bool probe(const char *path, const char *want)
{
	char req[256];
	struct resp r = {0};
	int s = connect_to(port);

	if (s < 0)
		return false;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	send_all(s, req, (size_t)n);
	read_resp(s, &r, 5000);
	close(s);
	bool ok = r.status == 200 && strstr(r.body, want) != NULL;
	resp_free(&r);
	return ok;
}

/* A slow client's connection: from 127.0.0.<addr>, either trickling a
 * request that it never finishes or connected and silent. */
struct slow_conn {
	int fd;
	int addr;
	bool trickle;
	bool held;       /* the server kept it (else it closed it at accept) */
};

static const char slow_start[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";

static void slow_open(struct slow_conn *sc)
{
	char src[32];

	snprintf(src, sizeof(src), "127.0.0.%d", sc->addr);
	sc->fd = connect_from(src, port);
	cr_assert_geq(sc->fd, 0, "connect from %s: %s", src, strerror(errno));
	if (sc->trickle)
		send_all(sc->fd, slow_start, sizeof(slow_start) - 1);
}

/*
 * 200 slow or idle connections from 11 loopback addresses other than the
 * checks' 127.0.0.1, against limits given here as numbers so that the
 * arithmetic is the test's own: at most 16 per address and 128 in all, the
 * last 16 only for an address that holds none. In connect order (the
 * server's one thread accepts in that order):
 *   127.0.0.2            50: 16 kept, 34 refused (per address)
 *   127.0.0.3 .. .8      15 each: all kept (106 in all)
 *   127.0.0.9            15: 6 kept (112: only the reserve is left), 9 refused (reserve)
 *   127.0.0.10 .. .12    15 each: 1 kept (from the reserve: the address held none), 14 refused
 * = 115 kept, 85 refused. Then 20 checks from 127.0.0.1, /healthz and
 * /metrics in turn, must all be answered, while between checks the kept
 * connections trickle a byte each and every refused one reconnects (and
 * is refused again). The deadlines are far off: the limits are what this
 * tests. Last, every kept connection is still open and is answered once
 * its request is finished.
 */
Test(serve, slow_clients_cannot_starve_health_checks, .timeout = 30)
{
	enum { NCONN = 200, NPROBE = 20, KEPT = 115 };
	static const struct {
		int addr, n, kept;
	} plan[] = {
		{2, 50, 16}, {3, 15, 15}, {4, 15, 15}, {5, 15, 15}, {6, 15, 15}, {7, 15, 15},
		{8, 15, 15}, {9, 15, 6}, {10, 15, 1}, {11, 15, 1}, {12, 15, 1},
	};
	static struct slow_conn sc[NCONN];
	struct conn_counts cc;

	q = make_queue(qname, "srv-starve", 16, 5);
	const char *extra[] = {"--max-connections", "128", "--max-connections-per-ip", "16",
			       "--reserved-connections", "16", "--timeout", "60", "--request-timeout", "60", NULL};
	start_server_args(NULL, extra);
	wait_quiet();

	uint64_t t0 = tqt_now_ms();
	int n = 0;
	for (size_t p = 0; p < sizeof(plan) / sizeof(plan[0]); p++) {
		for (int i = 0; i < plan[p].n; i++, n++) {
			sc[n].addr = plan[p].addr;
			sc[n].trickle = n % 2 == 0;
			slow_open(&sc[n]);
		}
	}
	cr_assert_eq(n, NCONN);

	/* The last connection is refused: once the server counts 85 refusals it
	 * has decided on all 200. */
	uint64_t deadline = tqt_now_ms() + 20000;
	for (;;) {
		server_counts(&cc);
		if (cc.per_ip + cc.full + cc.reserve >= NCONN - KEPT)
			break;
		cr_assert_lt(tqt_now_ms(), deadline, "the server decided on %.0f of %d connections",
			     cc.open - 1 + cc.per_ip + cc.full + cc.reserve, NCONN);
		tqt_sleep_ms(10);
	}
	cr_assert_eq(cc.per_ip, 34, "refused per address: %.0f", cc.per_ip);
	cr_assert_eq(cc.reserve, 51, "refused from the reserve: %.0f", cc.reserve);
	cr_assert_eq(cc.full, 0, "refused as full: %.0f", cc.full);
	cr_assert_eq(cc.open, KEPT + 1, "open: %.0f (the kept ones and this request)", cc.open);

	/* The same from the clients' side: the refused ones see their
	 * connection closed, the kept ones not, address by address. */
	int closed;
	deadline = tqt_now_ms() + 10000;
	for (;;) {
		closed = 0;
		for (int i = 0; i < NCONN; i++)
			closed += peer_closed(sc[i].fd);
		if (closed >= NCONN - KEPT)
			break;
		cr_assert_lt(tqt_now_ms(), deadline, "%d connections seen closed, want %d", closed, NCONN - KEPT);
		tqt_sleep_ms(10);
	}
	cr_assert_eq(closed, NCONN - KEPT);
	n = 0;
	for (size_t p = 0; p < sizeof(plan) / sizeof(plan[0]); p++) {
		int kept = 0;
		for (int i = 0; i < plan[p].n; i++, n++) {
			sc[n].held = !peer_closed(sc[n].fd);
			kept += sc[n].held;
		}
		cr_assert_eq(kept, plan[p].kept, "127.0.0.%d: %d kept, want %d", plan[p].addr, kept, plan[p].kept);
	}

	/* The checks, with the slow clients at work between them. */
	int ok = 0, reconnects = 0;
	uint64_t p0 = tqt_now_ms();
	for (int k = 0; k < NPROBE; k++) {
		for (int i = 0; i < NCONN; i++) {
			if (sc[i].held) {
				if (sc[i].trickle)
					send_all(sc[i].fd, "a", 1);
			} else if (peer_closed(sc[i].fd)) {
				close(sc[i].fd);
				slow_open(&sc[i]);
				reconnects++;
			}
		}
		ok += k % 2 ? probe("/metrics", "taskq_http_connections ") : probe("/healthz", qname);
	}
	uint64_t probe_ms = tqt_now_ms() - p0;
	server_counts(&cc);
	cr_log_info("slow_clients_cannot_starve_health_checks: %d of %d checks answered in %llu ms with %d slow "
		    "connections kept open (%d opened, %d reconnects; refused per address %.0f, reserve %.0f, "
		    "full %.0f); %llu ms in all",
		    ok, NPROBE, (unsigned long long)probe_ms, KEPT, NCONN, reconnects, cc.per_ip, cc.reserve,
		    cc.full, (unsigned long long)(tqt_now_ms() - t0));
	cr_assert_eq(ok, NPROBE, "%d of %d checks answered", ok, NPROBE);
	cr_assert_eq(cc.open, KEPT + 1, "open: %.0f: a reconnect got in, or a kept one was closed", cc.open);

	/* Every kept connection is alive: finishing its request gets an answer. */
	static const char rest[] = "\r\nConnection: close\r\n\r\n";
	static const char whole[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	for (int i = 0; i < NCONN; i++) {
		if (!sc[i].held)
			continue;
		cr_assert(!peer_closed(sc[i].fd), "kept connection %d (127.0.0.%d) was closed", i, sc[i].addr);
		if (sc[i].trickle)
			send_all(sc[i].fd, rest, sizeof(rest) - 1);
		else
			send_all(sc[i].fd, whole, sizeof(whole) - 1);
	}
	int answered = 0;
	for (int i = 0; i < NCONN; i++) {
		if (sc[i].held) {
			struct resp r = {0};
			read_resp(sc[i].fd, &r, 5000);
			answered += r.status == 200 && strstr(r.body, qname) != NULL;
			resp_free(&r);
		}
		close(sc[i].fd);
	}
	cr_assert_eq(answered, KEPT, "%d of the %d kept connections answered", answered, KEPT);
}

/*
 * The three limits one at a time, with small numbers: 4 connections at
 * most, 2 per address, the last 1 only for an address that holds none.
 */
Test(serve, per_address_reserve_and_total_limits, .timeout = 30)
{
	struct conn_counts cc;

	q = make_queue(qname, "srv-limits", 16, 5);
	const char *extra[] = {"--max-connections", "4", "--max-connections-per-ip", "2",
			       "--reserved-connections", "1", "--timeout", "60", "--request-timeout", "60", NULL};
	start_server_args(NULL, extra);
	wait_quiet();

	int a1 = connect_from("127.0.0.2", port), a2 = connect_from("127.0.0.2", port);
	int a3 = connect_from("127.0.0.2", port); /* a third from one address: refused */
	int b1 = connect_from("127.0.0.3", port); /* 3 open: only the reserve is left */
	int b2 = connect_from("127.0.0.3", port); /* 127.0.0.3 holds one: refused */
	int c1 = connect_from("127.0.0.4", port); /* holds none: the reserved slot; 4 open */
	cr_assert(a1 >= 0 && a2 >= 0 && a3 >= 0 && b1 >= 0 && b2 >= 0 && c1 >= 0);
	uint64_t deadline = tqt_now_ms() + 10000;
	while (!peer_closed(a3) || !peer_closed(b2)) {
		cr_assert_lt(tqt_now_ms(), deadline, "the refused connections are still open");
		tqt_sleep_ms(10);
	}
	/* full: even an address that holds none is refused (it was accepted
	 * after c1, so c1 is decided by then) */
	struct resp r = {0};
	int s = connect_to(port);
	cr_assert_geq(s, 0);
	send_all(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35);
	read_resp(s, &r, 5000);
	close(s);
	cr_assert(r.eof && r.status == 0, "at the limit a new connection is closed at accept: %d", r.status);
	resp_free(&r);
	cr_assert(!peer_closed(a1) && !peer_closed(a2) && !peer_closed(b1) && !peer_closed(c1));

	/* one leaves: a newcomer gets in again */
	close(c1);
	deadline = tqt_now_ms() + 10000;
	while (!healthy(qname)) {
		cr_assert_lt(tqt_now_ms(), deadline, "no slot came free after a client left");
		tqt_sleep_ms(10);
	}
	server_counts(&cc);
	cr_assert_eq(cc.per_ip, 1);
	cr_assert_eq(cc.reserve, 1);
	cr_assert_geq(cc.full, 1);
	cr_assert_eq(cc.open, 4, "a1, a2, b1 and this request: %.0f", cc.open);
	close(a1);
	close(a2);
	close(a3);
	close(b1);
	close(b2);
}

Test(serve, limit_options_are_validated)
{
	char out[4096], err[8192], listen_at[64];
	q = make_queue(qname, "srv-limopts", 16, 5);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", free_port());
	static const struct {
		const char *a[6], *says;
	} bad[] = {
		{{"--max-connections", "0"}, "--max-connections"},
		{{"--max-connections", "10001"}, "--max-connections"},
		{{"--max-connections", "12x"}, "--max-connections"},
		{{"--max-connections-per-ip", "0"}, "--max-connections-per-ip"},
		{{"--max-connections", "8", "--max-connections-per-ip", "9"}, "is more than --max-connections 8"},
		{{"--reserved-connections", "-1"}, "--reserved-connections"},
		{{"--reserved-connections", "8", "--max-connections", "8"}, "leaves none of --max-connections 8"},
		{{"--request-timeout", "0"}, "--request-timeout"},
		{{"--request-timeout", "11"}, "is longer than --timeout 10"},
		{{"--timeout", "3", "--request-timeout", "4"}, "is longer than --timeout 3"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[12] = {"serve", qname, "--listen", listen_at};
		int k = 4;
		for (int j = 0; bad[i].a[j]; j++)
			args[k++] = bad[i].a[j];
		args[k] = NULL;
		unlink(server_out);
		int st = run_taskq(args, NULL, out, sizeof(out));
		take_stderr(err, sizeof(err));
		cr_assert_eq(st, 2, "%s %s: exit %d", bad[i].a[0], bad[i].a[1], st);
		cr_assert(strstr(err, bad[i].says), "%s %s: stderr: %s", bad[i].a[0], bad[i].a[1], err);
	}
	/* given alone, a small --max-connections brings the other defaults down
	 * with it (per address: at most all; reserved: an eighth) */
	const char *small[] = {"--max-connections", "2", NULL};
	start_server_args(NULL, small);
	struct resp r = http("GET", "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(must_metric(r.body, "taskq_http_connections_limit"), 2);
	resp_free(&r);

	/* --help lists the new options with their defaults */
	const char *help[] = {"serve", "--help", NULL};
	cr_assert_eq(run_taskq(help, NULL, out, sizeof(out)), 0);
	cr_assert(strstr(out, "--max-connections N") && strstr(out, "default 512"), "%s", out);
	cr_assert(strstr(out, "--max-connections-per-ip N") && strstr(out, "default 16"), "%s", out);
	cr_assert(strstr(out, "--reserved-connections N") && strstr(out, "--max-connections, so 64"), "%s", out);
	cr_assert(strstr(out, "--request-timeout SEC") && strstr(out, "default 5"), "%s", out);
}

/* A FIFO, a directory or a device as --token-file is refused at once (a
 * FIFO opened for reading waits for a writer: serve hung at start); of a
 * regular file only the first line is read. */
Test(serve, token_file_must_be_a_regular_file)
{
	char out[4096], err[8192], listen_at[64], fifo[160];
	q = make_queue(qname, "srv-tokfile", 16, 5);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", free_port());
	snprintf(fifo, sizeof(fifo), "%s.fifo", token_path);
	unlink(fifo);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));

	static const struct {
		const char *path, *says;
	} bad[] = {{NULL, "a FIFO, not a regular file"}, {"/tmp", "a directory, not a regular file"},
		   {"/dev/null", "a character device, not a regular file"}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *path = bad[i].path ? bad[i].path : fifo;
		const char *args[] = {"serve", qname, "--listen", listen_at, "--token-file", path, NULL};
		unlink(server_out);
		int st = run_taskq(args, NULL, out, sizeof(out));
		take_stderr(err, sizeof(err));
		cr_assert_eq(st, 2, "--token-file %s: exit %d (-1: it hung)", path, st);
		cr_assert(strstr(err, bad[i].says), "--token-file %s: stderr: %s", path, err);
	}
	/* The client side too: stop --url with a FIFO as its token file. */
	char url[96];
	snprintf(url, sizeof(url), "http://%s", listen_at);
	const char *stop[] = {"stop", qname, "--url", url, "--token-file", fifo, NULL};
	int st = run_taskq(stop, NULL, out, sizeof(out));
	take_stderr(err, sizeof(err));
	cr_assert_eq(st, 2, "stop --token-file FIFO: exit %d (-1: it hung)", st);
	cr_assert(strstr(err, "not a regular file"), "stop --token-file FIFO: stderr: %s", err);
	unlink(fifo);

	/* 1 MiB without a newline: too long, refused without reading it all */
	size_t big = 1 << 20;
	char *text = malloc(big + 256);
	cr_assert_not_null(text);
	memset(text, 'a', big);
	text[big] = '\0';
	write_file(token_path, text);
	const char *args[] = {"serve", qname, "--listen", listen_at, "--token-file", token_path, NULL};
	unlink(server_out);
	cr_assert_eq(run_taskq(args, NULL, out, sizeof(out)), 2);
	take_stderr(err, sizeof(err));
	cr_assert(strstr(err, "longer than 4096 bytes"), "%s", err);

	/* the token, then 1 MiB more: the first line is the token */
	int n = snprintf(text, big, "%s\r\n", token);
	memset(text + n, 'z', big - (size_t)n);
	text[big] = '\0';
	write_file(token_path, text);
	free(text);
	const char *extra[] = {"--token-file", token_path, NULL};
	start_server_args(NULL, extra);
	char auth[256];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	cr_assert_eq(post_state("pause", auth), 200);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
}

/* The queue's events reach the server's log as they happen (those from
 * before it started do not): a task dead-lettered at info, the dead-letter
 * area filling up at warn. */
Test(serve, queue_events_are_logged)
{
	tq_config c;
	tqt_name(qname, "srv-ev");
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = 16;
	c.dead_capacity = 1;
	c.max_attempts = 1;
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	/* An event before the server: not logged. */
	cr_assert_eq(tq_set_run_state(q, TQ_PAUSED), 0);
	cr_assert_eq(tq_set_run_state(q, TQ_RUNNING), 0);
	start_server(false);

	tq_task t[2] = {{.kind = TQ_KIND_INT, .value = 1}, {.kind = TQ_KIND_INT, .value = 2}};
	cr_assert_eq(tq_push(q, t, 2, 0), 2);
	tq_task got[2];
	cr_assert_eq(tq_take(q, got, 2, 1000 * MS), 2);
	cr_assert_eq(tq_fail(q, got, 2, 7, "broken-on-purpose"), 0);

	/* Poll the log (stderr) for both lines, with a deadline. */
	char text[16384] = "";
	uint64_t deadline = tqt_now_ms() + 10000;
	for (;;) {
		FILE *f = fopen(server_out, "r");
		size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
		if (f)
			fclose(f);
		text[n] = '\0';
		if (strstr(text, "type=dead_full") || tqt_now_ms() > deadline)
			break;
		tqt_sleep_ms(20);
	}
	const char *dead = strstr(text, "type=task_dead");
	cr_assert(dead, "no task_dead line in the server's log:\n%s", text);
	cr_assert(strstr(text, "broken-on-purpose"), "the reason is not in the log:\n%s", text);
	const char *full = strstr(text, "type=dead_full");
	cr_assert(full, "no dead_full line in the server's log:\n%s", text);
	const char *line = full;
	while (line > text && line[-1] != '\n')
		line--;
	cr_assert(strstr(line, "level=warn") && strstr(line, "level=warn") < full, "dead_full is not a warning: %.200s",
		  line);
	cr_assert_null(strstr(text, "type=state_changed"), "an event from before the server was logged:\n%s", text);
}

/* ------------------------------------------------------------ dashboard */

Test(serve, dashboard_files_are_built_in)
{
	char v[512];
	q = make_queue(qname, "srv-page", 16, 5);
	start_server(false);

	struct resp r = http("GET", "/", NULL);
	cr_assert_eq(r.status, 200, "%s", r.data);
	cr_assert(resp_header(&r, "Content-Type", v, sizeof(v)) && !strncmp(v, "text/html", 9), "Content-Type: %s", v);
	cr_assert(resp_header(&r, "Content-Security-Policy", v, sizeof(v)), "no CSP");
	cr_assert(strstr(v, "default-src 'none'") && strstr(v, "script-src 'self'") && strstr(v, "frame-ancestors 'none'"),
		  "CSP: %s", v);
	cr_assert(resp_header(&r, "X-Frame-Options", v, sizeof(v)) && !strcmp(v, "DENY"), "X-Frame-Options: %s", v);
	/* relative links: the page works behind a proxy's path prefix too */
	cr_assert(strstr(r.body, "src=\"assets/dashboard.js\"") && strstr(r.body, "src=\"assets/uPlot.iife.min.js\""),
		  "%s", r.body);
	resp_free(&r);

	struct { const char *path, *type, *start; } files[] = {
		{"/assets/uPlot.iife.min.js", "text/javascript", "/*! https://github.com/leeoniya/uPlot"},
		{"/assets/uPlot.min.css", "text/css", ".uplot"},
		{"/assets/dashboard.js", "text/javascript", "// SPDX-License-Identifier: MIT"},
		{"/assets/dashboard.css", "text/css", "/* SPDX-License-Identifier: MIT */"},
		{"/assets/uPlot.LICENSE", "text/plain", "The MIT License"},
		{"/favicon.ico", "image/svg+xml", "<svg"}, /* asked for beside any page shown from here */
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		r = http("GET", files[i].path, NULL);
		cr_assert_eq(r.status, 200, "%s: %s", files[i].path, r.data);
		cr_assert(resp_header(&r, "Content-Type", v, sizeof(v)) && strstr(v, files[i].type), "%s: %s",
			  files[i].path, v);
		cr_assert(!strncmp(r.body, files[i].start, strlen(files[i].start)), "%s: %.80s", files[i].path, r.body);
		/* the whole file, as Content-Length says */
		cr_assert(resp_header(&r, "Content-Length", v, sizeof(v)));
		cr_assert_eq(strtoul(v, NULL, 10), strlen(r.body), "%s", files[i].path);
		resp_free(&r);
	}
	r = http("HEAD", "/", NULL);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
}

/* POSTs path with the extra headers; the answer must have the status and
 * (if not NULL) contain want and want2. */
static void post_expect(const char *path, const char *extra, int status, const char *want, const char *want2)
{
	struct resp r = http("POST", path, extra);
	cr_assert_eq(r.status, status, "POST %s: %s", path, r.data);
	cr_assert(!want || strstr(r.body, want), "POST %s: no %s in %s", path, want, r.body);
	cr_assert(!want2 || strstr(r.body, want2), "POST %s: no %s in %s", path, want2, r.body);
	resp_free(&r);
}

/* Three dead tasks with their reasons, in queue q (max_attempts 1). */
static void three_dead(void)
{
	tq_task t[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(tq_push_int(q, 100 + (uint64_t)i, 0), 0);
	cr_assert_eq(tq_take(q, t, 3, 0), 3);
	for (int i = 0; i < 3; i++) {
		char msg[32];
		snprintf(msg, sizeof(msg), "reason \"%d\"", i);
		cr_assert_eq(tq_fail(q, &t[i], 1, 7, msg), 0);
	}
}

Test(serve, events_and_dead_letters)
{
	char auth[256], path[256];
	q = make_queue(qname, "srv-dead", 16, 1);
	three_dead();
	start_server(true);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);

	snprintf(path, sizeof(path), "/dead/%s", qname);
	struct resp r = http("GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.data);
	cr_assert(strstr(r.body, "\"dead\":3"), "%s", r.body);
	for (int i = 0; i < 3; i++) {
		char want[64];
		snprintf(want, sizeof(want), "\"last_message\":\"reason \\\"%d\\\"\"", i);
		cr_assert(strstr(r.body, want), "no %s in %s", want, r.body);
		snprintf(want, sizeof(want), "\"value\":%d", 100 + i);
		cr_assert(strstr(r.body, want), "no %s in %s", want, r.body);
	}
	resp_free(&r);
	/* the listing opened and closed a worker handle: no process is left */
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.procs, 1, "processes: %u (the test's own only)", s.procs);

	snprintf(path, sizeof(path), "/events/%s", qname);
	r = http("GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.data);
	cr_assert(strstr(r.body, "\"event\":\"created\""), "%s", r.body);
	cr_assert_eq(count_substr(r.body, "\"event\":\"task_dead\""), 3, "%s", r.body);
	const char *last = strstr(r.body, "\"last\":");
	cr_assert(last, "%s", r.body);
	unsigned long seq = strtoul(last + 7, NULL, 10);
	resp_free(&r);
	snprintf(path, sizeof(path), "/events/%s?after=%lu", qname, seq);
	r = http("GET", path, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"events\":[]"), "nothing after the last: %s", r.body);
	resp_free(&r);
	snprintf(path, sizeof(path), "/events/%s?after=-1", qname);
	r = http("GET", path, NULL);
	cr_assert_eq(r.status, 400, "%s", r.data);
	resp_free(&r);
	r = http("GET", "/events/nope", NULL);
	cr_assert_eq(r.status, 404);
	resp_free(&r);
	r = http("GET", "/dead/nope", NULL);
	cr_assert_eq(r.status, 404);
	resp_free(&r);

	/* kick one (the oldest's id), refused without the token */
	tq_dead_info d[3];
	cr_assert_eq(tq_dead_list(q, d, 3, NULL, 0), 3);
	snprintf(path, sizeof(path), "/queues/%s/dead/%llu/kick", qname, (unsigned long long)d[0].id);
	r = http("POST", path, NULL);
	cr_assert_eq(r.status, 401, "%s", r.data);
	resp_free(&r);
	r = http("GET", path, auth);
	cr_assert_eq(r.status, 405);
	resp_free(&r);
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.dead, 3);
	post_expect(path, auth, 200, "\"action\":\"kick\"", "\"tasks\":1");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.dead, 2);
	cr_assert_eq(s.ready, 1);
	/* again: it is not dead any more */
	post_expect(path, auth, 404, "is not dead", NULL);
	/* ids that are not ids */
	const char *bad[] = {"x", "", "-1", "18446744073709551615", "99999999999999999999999", "1e3"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "/queues/%s/dead/%s/kick", qname, bad[i]);
		post_expect(path, auth, 404, "no such endpoint", NULL);
	}
	/* purge the rest */
	snprintf(path, sizeof(path), "/queues/%s/dead/all/purge", qname);
	post_expect(path, auth, 200, "\"tasks\":2", "\"id\":\"all\"");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.dead, 0);
	cr_assert_eq(s.procs, 1);
	post_expect("/queues/nope/dead/all/kick", auth, 404, "no such queue", NULL);
}

Test(serve, state_changes_from_another_origin_are_refused)
{
	char h[512], path[256];
	q = make_queue(qname, "srv-csrf", 16, 1);
	three_dead();
	start_server(true);

	/* With the right token, but sent by another site's page: refused. */
	const char *foreign[] = {
		"Origin: http://evil.example",
		"Origin: null",
		"Origin: http://127.0.0.1:1",       /* the Host is "127.0.0.1" (http()): another port */
		"Origin: http://127.0.0.1.evil.example",
		"Origin: file://",
		"Origin: http://127.0.0.1\r\nSec-Fetch-Site: cross-site",
		"Origin: http://127.0.0.1\r\nSec-Fetch-Site: same-site",
		"Sec-Fetch-Site: cross-site",
	};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n%s\r\n", token, foreign[i]);
		snprintf(path, sizeof(path), "/queues/%s/pause", qname);
		struct resp r = http("POST", path, h);
		cr_assert_eq(r.status, 403, "%s: %d %s", foreign[i], r.status, r.data);
		cr_assert(strstr(r.body, "cross-origin request refused"), "%s", r.body);
		resp_free(&r);
		snprintf(path, sizeof(path), "/queues/%s/dead/all/purge", qname);
		r = http("POST", path, h);
		cr_assert_eq(r.status, 403, "%s: %d %s", foreign[i], r.status, r.data);
		resp_free(&r);
	}
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.dead, 3);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);

	/* The page's own origin (scheme, host and port as in Host), or no
	 * Origin at all (curl, taskq stop --url): accepted. */
	const char *own[] = {"Origin: http://127.0.0.1\r\nSec-Fetch-Site: same-origin", "Origin: HTTP://127.0.0.1",
			     "Origin: https://127.0.0.1", ""};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n%s%s", token, own[i], *own[i] ? "\r\n" : "");
		snprintf(path, sizeof(path), "/queues/%s/%s", qname, i % 2 ? "resume" : "pause");
		struct resp r = http("POST", path, h);
		cr_assert_eq(r.status, 200, "%s: %d %s", own[i], r.status, r.data);
		resp_free(&r);
	}
	/* Without the token, the same origin is refused too (401). */
	snprintf(path, sizeof(path), "/queues/%s/pause", qname);
	struct resp r = http("POST", path, "Origin: http://127.0.0.1\r\n");
	cr_assert_eq(r.status, 401);
	resp_free(&r);
	static char log[1 << 16];
	take_stderr(log, sizeof(log));
	cr_assert(strstr(log, "reason=cross_origin origin=http://evil.example"), "%s", log);
}
