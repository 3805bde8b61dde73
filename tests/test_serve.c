/*
 * test_serve.c - `taskq serve` end to end: the Prometheus text and the JSON
 * stats against the library's own numbers after a known workload, the
 * control endpoints and their bearer token, the client (`taskq stop --url`),
 * and requests that are malformed, oversized or never finished.
 *
 * The server runs as a child process (build/taskq serve) on 127.0.0.1 and a
 * free port. The HTTP client here is a few lines over raw sockets on
 * purpose: the tests must send requests that an HTTP library would refuse
 * to build.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ctype.h>
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
 * attempt), takes 2 and holds them. */
static void workload(tq_queue *h, tq_task held[2])
{
	tq_task t[8];

	for (int i = 0; i < 20; i++)
		cr_assert_eq(tq_push_int(h, (uint64_t)i, 0), 0);
	cr_assert_eq(tq_take(h, t, 8, 0), 8);
	tqt_sleep_ms(2);
	cr_assert_eq(tq_ack(h, t, 4), 0);
	cr_assert_eq(tq_ack(h, t + 4, 4), 0);
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
		{"taskq_dead_dropped_total", s.total.dead_dropped}, {"taskq_acks_lost_total", s.total.lost},
		{"taskq_process_recoveries_total", s.recoveries}, {"taskq_capacity_tasks", s.capacity},
		{"taskq_processes", s.procs - 1},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		double v = must_metric(m, "%s{queue=\"%s\"}", c[i].name, qname);
		cr_assert_eq(v, (double)c[i].v, "%s: %.0f, library %llu", c[i].name, v, (unsigned long long)c[i].v);
		char type[128];
		snprintf(type, sizeof(type), "# TYPE %s %s\n", c[i].name,
			 strstr(c[i].name, "_total") ? "counter" : "gauge");
		cr_assert(strstr(m, type), "no %s", type);
	}
	cr_assert_eq(must_metric(m, "taskq_processes{queue=\"%s\"}", qname), 1, "the server counts itself");
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

	const char *reads[] = {"/metrics", "/stats", "/healthz"};
	for (int i = 0; i < 3; i++) {
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

	const char *unknown[] = {"/", "/metricsx", "/metrics/", "/queues", "/queues/", "/queues//drain",
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

	/* slowloris: several connections that never finish their headers */
	int slow[8];
	const char *partial = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	for (int i = 0; i < 8; i++) {
		slow[i] = connect_to(port);
		cr_assert_geq(slow[i], 0);
		send_all(slow[i], partial, strlen(partial));
	}
	/* and some that send nothing at all */
	int idle[8];
	for (int i = 0; i < 8; i++)
		idle[i] = connect_to(port);
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
