/* SPDX-License-Identifier: MIT */
/*
 * cluster.c - taskq-bench-cluster (make bench-cluster): tasks from queue A
 * through taskq-bridge out, a NATS JetStream stream and taskq-bridge in, to
 * queue B, end to end, against JetStream with one message per task, in the
 * same run on the same server. Started and stopped here: nats-server (one
 * node, file storage) on loopback, both bridges, a producer and a consumer
 * process. Every task is checked to arrive.
 *
 *   taskq-bench-cluster [--quick] [--csv DIR]
 *
 * --csv DIR: also write the table as DIR/cluster.csv (row, tasks_per_run,
 * median/min/max tasks per second, kind: taskq for the bridged rows,
 * baseline for JetStream alone) and DIR/run.csv, for scripts/bench-plots.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "natsserver.h"
#include "taskq.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif

static char g_dir[256], g_url[64], g_r3url[256];
static int cmp_d(const void *a, const void *b);
static struct tqn_node g_r3[3];
static pid_t g_server;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	fputs("taskq-bench-cluster: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g_server > 0)
		kill(g_server, SIGKILL);
	exit(1);
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = tqn_spawn(argv, log);
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	return pid;
}

static void start_server(void)
{
	char why[512];
	if (tqn_start("taskq-bench-cluster", g_dir, sizeof g_dir, g_url, sizeof g_url, &g_server, why, sizeof why))
		fail("%s", why);
}

static void stop(pid_t pid) { tqn_stop(pid); }

static void wait_ok(pid_t pid, const char *what)
{
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("%s failed (status %#x); logs in %s", what, st, g_dir);
}

/* ------------------------------------------------- taskq through bridges */

#define JSON_LEN 100

static void json_task(char *buf, uint64_t v)
{
	/* 100 bytes of JSON with the value in it */
	int n = snprintf(buf, JSON_LEN + 1, "{\"id\":\"%020" PRIu64 "\",\"pad\":\"", v);
	memset(buf + n, 'x', (size_t)(JSON_LEN - 2 - n));
	buf[JSON_LEN - 2] = '"';
	buf[JSON_LEN - 1] = '}';
}

static int producer(const char *qname, uint64_t n, int json)
{
	tq_queue *q = NULL;
	tq_task t[64];
	static char bufs[64][JSON_LEN + 1];
	if (tq_open(qname, &q) != 0)
		return 2;
	for (uint64_t v = 0; v < n;) {
		uint32_t k = n - v < 64 ? (uint32_t)(n - v) : 64;
		for (uint32_t i = 0; i < k; i++) {
			memset(&t[i], 0, sizeof t[i]);
			if (json) {
				json_task(bufs[i], v + i);
				t[i].kind = TQ_KIND_JSON;
				t[i].data = bufs[i];
				t[i].len = JSON_LEN;
			} else {
				t[i].kind = TQ_KIND_INT;
				t[i].value = v + i;
			}
		}
		int r = tq_push(q, t, k, 60000000000ull);
		if (r <= 0)
			return 3;
		v += (uint64_t)r;
	}
	tq_close(q);
	return 0;
}

static int consumer(const char *qname, uint64_t n, int json, uint8_t *seen)
{
	tq_queue *q = NULL;
	tq_task t[64];
	uint64_t got = 0;
	if (tq_open(qname, &q) != 0)
		return 2;
	while (got < n) {
		int k = tq_take(q, t, 64, 60000000000ull);
		if (k <= 0)
			return 3;
		for (int i = 0; i < k; i++) {
			uint64_t v = t[i].value;
			if (json) {
				if (t[i].len != JSON_LEN || sscanf((const char *)t[i].data, "{\"id\":\"%" SCNu64, &v) != 1)
					return 4;
			}
			if (v >= n || seen[v])
				return 5; /* foreign or twice: no crash here, so exactly once */
			seen[v] = 1;
		}
		if (tq_ack(q, t, (size_t)k) != 0)
			return 6;
		got += (uint64_t)k;
	}
	tq_close(q);
	return 0;
}

/* Queues A and B of this run (names from prefix and this pid). */
struct pair {
	char qa[64], qb[64];
	tq_queue *a, *b;
	pid_t po, pi; /* the two bridges */
};

static void pair_create(struct pair *p, const char *prefix, uint32_t cap, uint32_t max_payload)
{
	tq_config c;
	snprintf(p->qa, sizeof p->qa, "%s-a-%d", prefix, (int)getpid());
	snprintf(p->qb, sizeof p->qb, "%s-b-%d", prefix, (int)getpid());
	tq_destroy(p->qa);
	tq_destroy(p->qb);
	tq_config_init(&c);
	c.capacity = cap;
	if (max_payload)
		c.max_payload = max_payload;
	if (tq_create(p->qa, &c, &p->a) != 0 || tq_create(p->qb, &c, &p->b) != 0)
		fail("creating the queues");
}

/* One task through the whole path, once the bridges are up: the stream
 * and the consumer exist before any clock starts. */
static void pair_warm_up(struct pair *p)
{
	tq_task w = {.kind = TQ_KIND_INT, .value = UINT64_MAX};
	if (tq_push(p->a, &w, 1, 10000000000ull) != 1 || tq_take(p->b, &w, 1, 30000000000ull) != 1 ||
	    w.value != UINT64_MAX || tq_ack(p->b, &w, 1) != 0)
		fail("the warm-up task did not arrive; logs in %s", g_dir);
}

static void pair_end(struct pair *p)
{
	stop(p->po);
	stop(p->pi);
	tq_close(p->a);
	tq_close(p->b);
	tq_destroy(p->qa);
	tq_destroy(p->qb);
}

/* A 3-node JetStream cluster on loopback (for the R3 rows). */
static void start_r3(void)
{
	char why[512];
	for (int i = 0; i < 3; i++)
		if (tqn_node_init(&g_r3[i], "taskq-bench-r3", i, true, why, sizeof why) != 0)
			fail("%s", why);
	for (int i = 0; i < 3; i++) {
		if (tqn_node_start(&g_r3[i], g_r3, 3, why, sizeof why) != 0)
			fail("%s", why);
		size_t len = strlen(g_r3url);
		snprintf(g_r3url + len, sizeof g_r3url - len, "%s%s", len ? "," : "", g_r3[i].url);
	}
}

/* The stream a bridge would make, with three replicas, made once the
 * cluster has a JetStream leader. */
static void r3_stream(const char *stream)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (natsConnection_ConnectTo(&nc, g_r3url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
		fail("connect to the cluster");
	int err = tqn_bridge_stream(js, stream, 3);
	if (err)
		fail("no R3 stream in 30 s (%d)", err);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}

/* Push-to-take latency of one task at a time, `rate` a second, from A to
 * B through the bridges (no linger: a lone task goes at once); p50 and
 * p99 in microseconds. Values carry their push time (one host, one clock). */
static void run_latency(const char *stream, uint32_t count, uint32_t rate, double *p50, double *p99)
{
	char logo[320], logi[320];
	struct pair pr;
	pair_create(&pr, "benchl", 4096, 0);
	tq_queue *a = pr.a;
	snprintf(logo, sizeof logo, "%s/out-%s.log", g_dir, stream);
	snprintf(logi, sizeof logi, "%s/in-%s.log", g_dir, stream);
	char *out[] = {TQ_BIN_DIR "/taskq-bridge", "out", pr.qa, "--nats", g_url, "--stream", (char *)stream, "--linger",
		       "0", NULL};
	char *in[] = {TQ_BIN_DIR "/taskq-bridge", "in", pr.qb, "--nats", g_url, "--stream", (char *)stream, "--consumer",
		      "bench", NULL};
	pr.po = spawn(out, logo);
	pr.pi = spawn(in, logi);
	double *lat = mmap(NULL, count * sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (lat == MAP_FAILED)
		fail("mmap");
	pair_warm_up(&pr);
	pid_t cons = fork();
	if (cons == 0) {
		tq_queue *q = NULL;
		if (tq_open(pr.qb, &q) != 0)
			_exit(2);
		for (uint32_t i = 0; i < count; i++) {
			tq_task t;
			if (tq_take(q, &t, 1, 30000000000ull) != 1)
				_exit(3);
			uint64_t now = tq_now_ns();
			lat[i] = now > t.value ? (double)(now - t.value) / 1e3 : 0;
			if (tq_ack(q, &t, 1) != 0)
				_exit(4);
		}
		_exit(0);
	}
	uint64_t step = 1000000000ull / rate, next = tq_now_ns();
	for (uint32_t i = 0; i < count; i++) {
		next += step;
		uint64_t now = tq_now_ns();
		if (now < next) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(next - now)};
			nanosleep(&ts, NULL);
		}
		tq_task t = {.kind = TQ_KIND_INT, .value = tq_now_ns()};
		if (tq_push(a, &t, 1, 10000000000ull) != 1)
			fail("push");
	}
	wait_ok(cons, "the latency consumer");
	qsort(lat, count, sizeof(double), cmp_d);
	*p50 = lat[count / 2];
	*p99 = lat[count * 99 / 100];
	munmap(lat, count * sizeof(double));
	pair_end(&pr);
}

/* M tasks/s from A to B through the bridges. */
static double run_bridged(uint64_t n, int json, const char *stream, const char *batch, int r3)
{
	const char *url = r3 ? g_r3url : g_url;
	char logo[320], logi[320];
	struct pair pr;
	pair_create(&pr, "benchc", 65536, 128);
	char *qa = pr.qa, *qb = pr.qb;
	snprintf(logo, sizeof logo, "%s/out-%s.log", g_dir, stream);
	snprintf(logi, sizeof logi, "%s/in-%s.log", g_dir, stream);
	/* The linger (TQB_LINGER seconds, default 0.001) and the storage
	 * (TQB_STORAGE, file or memory) may be changed for experiments. */
	char *linger = getenv("TQB_LINGER") ? getenv("TQB_LINGER") : "0.001";
	char *storage = getenv("TQB_STORAGE") ? getenv("TQB_STORAGE") : "file";
	if (r3)
		r3_stream(stream);
	char *out[] = {TQ_BIN_DIR "/taskq-bridge", "out", qa, "--nats", (char *)url, "--stream", (char *)stream, "--batch",
		       (char *)batch, "--linger", linger, "--storage", storage, NULL};
	char *in[] = {TQ_BIN_DIR "/taskq-bridge", "in", qb, "--nats", (char *)url, "--stream", (char *)stream, "--consumer",
		      "bench", "--storage", storage, NULL};
	pr.po = spawn(out, logo);
	pr.pi = spawn(in, logi);
	uint8_t *seen = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (seen == MAP_FAILED)
		fail("mmap");
	pair_warm_up(&pr);
	uint64_t t0 = now_ns();
	pid_t cons = fork();
	if (cons == 0)
		_exit(consumer(qb, n, json, seen));
	pid_t prod = fork();
	if (prod == 0)
		_exit(producer(qa, n, json));
	wait_ok(prod, "the producer");
	wait_ok(cons, "the consumer (a task lost, foreign or twice?)");
	uint64_t t1 = now_ns();
	for (uint64_t v = 0; v < n; v++)
		if (!seen[v])
			fail("task %" PRIu64 " never arrived", v);
	munmap(seen, n);
	pair_end(&pr);
	return (double)n / ((double)(t1 - t0) / 1e9) / 1e6;
}

/* -------------------------------- JetStream, one message per task */

static double run_plain(uint64_t n, int json, const char *stream)
{
	natsConnection *nc = NULL, *nc2 = NULL;
	jsCtx *js = NULL, *js2 = NULL;
	jsErrCode jerr = 0;
	char subj[64];
	snprintf(subj, sizeof subj, "plain.%s", stream);
	if (natsConnection_ConnectTo(&nc, g_url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
		fail("connect");
	jsStreamConfig sc;
	const char *subjects[1] = {subj};
	jsStreamConfig_Init(&sc);
	sc.Name = stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = js_WorkQueuePolicy;
	sc.Storage = js_FileStorage;
	if (js_AddStream(NULL, js, &sc, NULL, &jerr) != NATS_OK)
		fail("stream %s: %d", stream, (int)jerr);
	uint8_t *seen = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t t0 = now_ns();
	pid_t cons = fork();
	if (cons == 0) {
		natsSubscription *sub = NULL;
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = stream;
		so.Config.MaxAckPending = 65536;
		if (natsConnection_ConnectTo(&nc2, g_url) != NATS_OK || natsConnection_JetStream(&js2, nc2, NULL) != NATS_OK ||
		    js_PullSubscribe(&sub, js2, subj, "plain", NULL, &so, &jerr) != NATS_OK)
			_exit(2);
		uint64_t got = 0;
		while (got < n) {
			natsMsgList list = {0};
			natsStatus s = natsSubscription_Fetch(&list, sub, 1024, 5000, &jerr);
			if (s != NATS_OK && s != NATS_TIMEOUT)
				_exit(3);
			for (int i = 0; i < list.Count; i++) {
				uint64_t v = 0;
				const char *d = natsMsg_GetData(list.Msgs[i]);
				if (json) {
					if (sscanf(d, "{\"id\":\"%" SCNu64, &v) != 1)
						_exit(4);
				} else {
					memcpy(&v, d, 8);
				}
				if (v >= n || seen[v])
					_exit(5);
				seen[v] = 1;
				natsMsg_Ack(list.Msgs[i], NULL);
				got++;
			}
			natsMsgList_Destroy(&list);
		}
		_exit(0);
	}
	char buf[JSON_LEN + 1];
	jsPubOptions po;
	jsPubOptions_Init(&po);
	for (uint64_t v = 0; v < n; v++) {
		const void *d = &v;
		int len = 8;
		if (json) {
			json_task(buf, v);
			d = buf;
			len = JSON_LEN;
		}
		if (js_PublishAsync(js, subj, d, len, NULL) != NATS_OK) {
			js_PublishAsyncComplete(js, NULL);
			v--;
			continue;
		}
	}
	if (js_PublishAsyncComplete(js, NULL) != NATS_OK)
		fail("async publishes not confirmed");
	wait_ok(cons, "the JetStream consumer");
	uint64_t t1 = now_ns();
	for (uint64_t v = 0; v < n; v++)
		if (!seen[v])
			fail("message %" PRIu64 " never arrived", v);
	munmap(seen, n);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return (double)n / ((double)(t1 - t0) / 1e9) / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* DIR/run.csv and DIR/cluster.csv (see the top); 0, or -1 after a message. */
static int write_csv(const char *dir, const char *date_iso, int quick, int runs, const char *const *names,
		     const uint64_t *ns, const int *plain, double (*v)[3], int nrows)
{
	char path[4200];
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "taskq-bench-cluster: cannot make %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/run.csv", dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "key,value\ntool,taskq-bench-cluster\ndate_utc,%s\ncores,%ld\nquick,%d\n", date_iso,
			sysconf(_SC_NPROCESSORS_ONLN), quick);
		if (fclose(f) != 0)
			f = NULL;
	}
	if (f) {
		snprintf(path, sizeof path, "%s/cluster.csv", dir);
		f = fopen(path, "w");
	}
	if (!f) {
		fprintf(stderr, "taskq-bench-cluster: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "row,tasks_per_run,median_tasks_per_s,min_tasks_per_s,max_tasks_per_s,kind\n");
	for (int i = 0; i < nrows; i++) {
		double s[3];
		memcpy(s, v[i], sizeof s);
		qsort(s, (size_t)runs, sizeof s[0], cmp_d);
		/* an indented row is a variant of the bridged row above it */
		const char *name = names[i], *prefix = *name == ' ' ? "taskq bridged " : "";
		while (*name == ' ')
			name++;
		fprintf(f, "\"%s%s\",%" PRIu64 ",%.6g,%.6g,%.6g,%s\n", prefix, name, ns[i], s[runs / 2] * 1e6,
			s[0] * 1e6, s[runs - 1] * 1e6, plain[i] ? "baseline" : "taskq");
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "taskq-bench-cluster: writing %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int quick = 0;
	const char *csv = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv = argv[++i];
		} else {
			fprintf(stderr, "usage: taskq-bench-cluster [--quick] [--csv DIR]\n");
			return 2;
		}
	}
	int runs = quick ? 1 : 3;
	uint64_t n_int = quick ? 500000 : 2000000, n_json = quick ? 200000 : 1000000, n_plain = quick ? 20000 : 100000;
	struct row {
		const char *name;
		int json, plain;
		uint64_t n;
		const char *batch;
		int r3;
		double v[3];
	} rows[] = {
		{"taskq bridged int (8 B), 1 node file", 0, 0, n_int, "4096", 0, {0}},
		{"taskq bridged json100, 1 node file", 1, 0, n_json, "4096", 0, {0}},
		{"JetStream one msg per task, 8 B", 0, 1, n_plain, NULL, 0, {0}},
		{"JetStream one msg per task, 100 B", 1, 1, n_plain, NULL, 0, {0}},
		{"taskq bridged int (8 B), 3 nodes R3", 0, 0, n_int / 2, "4096", 1, {0}},
		{"taskq bridged json100, 3 nodes R3", 1, 0, n_json / 2, "4096", 1, {0}},
		{"  int, 512 tasks per message", 0, 0, n_int / 2, "512", 0, {0}},
		{"  int, 1024 tasks per message", 0, 0, n_int / 2, "1024", 0, {0}},
		{"  int, 16384 tasks per message", 0, 0, n_int, "16384", 0, {0}},
		{"  json100, 512 tasks per message", 1, 0, n_json / 2, "512", 0, {0}},
	};
	int nrows = (int)(sizeof rows / sizeof rows[0]);
	time_t wall = time(NULL);
	char date[64], date_iso[64];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&wall));
	strftime(date_iso, sizeof date_iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&wall));

	signal(SIGPIPE, SIG_IGN);
	start_server();
	start_r3();
	printf("taskq-bench-cluster, %s: nats-server with JetStream (one node, and a 3-node cluster\n"
	       "with R3 streams), file storage, loopback, all on this host; %d run(s) per row, rows\n"
	       "interleaved; every task checked to arrive exactly once\n\n",
	       date, runs);
	int seq = 0;
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < nrows; i++) {
			char stream[32];
			snprintf(stream, sizeof stream, "BENCH%d", seq++);
			if (getenv("TQB_ONLY_BRIDGED") && rows[i].plain) {
				rows[i].v[r] = 1;
				continue;
			}
			rows[i].v[r] = rows[i].plain ? run_plain(rows[i].n, rows[i].json, stream)
						     : run_bridged(rows[i].n, rows[i].json, stream, rows[i].batch, rows[i].r3);
			fprintf(stderr, "[%d/%d] %-40s %8.3f M tasks/s\n", r + 1, runs, rows[i].name, rows[i].v[r]);
		}
	printf("%-40s %10s %10s %10s %10s\n", "end to end, A -> JetStream -> B", "tasks/run", "median", "min", "max");
	double med[16];
	for (int i = 0; i < nrows; i++) {
		double s[3];
		memcpy(s, rows[i].v, sizeof s);
		qsort(s, (size_t)runs, sizeof s[0], cmp_d);
		med[i] = s[runs / 2];
		printf("%-40s %10" PRIu64 " %10.3f %10.3f %10.3f\n", rows[i].name, rows[i].n, med[i], s[0], s[runs - 1]);
	}
	printf("\ntargets (medians of this run)\n");
	printf("  %-58s %8.2f M/s  >= 2 M/s   %s\n", "taskq bridged int, 1 node", med[0], med[0] >= 2 ? "PASS" : "MISS");
	printf("  %-58s %8.2f M/s  >= 0.5 M/s %s\n", "taskq bridged json100, 1 node", med[1],
	       med[1] >= 0.5 ? "PASS" : "MISS");
	printf("  %-58s %8.1fx      >= 50x     %s\n", "taskq bridged int / JetStream one message per task (8 B)",
	       med[0] / med[2], med[0] / med[2] >= 50 ? "PASS" : "MISS");
	printf("  %-58s %8.1fx\n", "taskq bridged json100 / JetStream one message per task (100 B)", med[1] / med[3]);
	printf("  %-58s %8.2f M/s  >= 0.5 M/s %s\n", "taskq bridged int, 3 nodes R3", med[4],
	       med[4] >= 0.5 ? "PASS" : "MISS");
	double p50 = 0, p99 = 0;
	run_latency("LAT", quick ? 500 : 2000, 1000, &p50, &p99);
	printf("\nlatency, one task at a time, 1000 tasks/s, A -> 1 node -> B (out with --linger 0):\n"
	       "  push on A to take on B: p50 %.0f us, p99 %.0f us\n",
	       p50, p99);
	for (int i = 0; i < 3; i++)
		tqn_stop(g_r3[i].pid);
	stop(g_server);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s'", g_dir, g_r3[0].dir, g_r3[1].dir, g_r3[2].dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g_dir);
	if (csv) {
		const char *names[16];
		uint64_t ns[16];
		int plain[16];
		double v[16][3];
		for (int i = 0; i < nrows; i++) {
			names[i] = rows[i].name;
			ns[i] = rows[i].n;
			plain[i] = rows[i].plain;
			memcpy(v[i], rows[i].v, sizeof v[i]);
		}
		if (write_csv(csv, date_iso, quick, runs, names, ns, plain, v, nrows) != 0)
			return 2;
	}
	return 0;
}
