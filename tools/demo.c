/* SPDX-License-Identifier: MIT */
/*
 * demo.c - taskq-demo, the seed's system end to end (started by ./run.sh).
 *
 * One queue (10,000 tasks by default); producers generate integer and JSON
 * tasks in batches of 64; consumers do real work on each: integers get a
 * Collatz computation, JSON tasks are parsed with cJSON and summed, and a
 * share of deliberately bad JSON tasks fail, are retried and end dead. A
 * live line each second; Ctrl+C, SIGTERM or SIGHUP (or `taskq stop`) drains
 * and prints a summary that accounts for every task; a second signal stops
 * at once, leaving leased tasks for the next run to deliver.
 *
 * A run owns its queue: one that live processes are using (another demo,
 * say) is refused unless --join is given. A run that joins drains only its
 * own processes and counts only their work: the queue-wide balance belongs
 * to the run that owns the queue.
 *
 * Every child must start (open the queue, or for --serve, listen) before
 * the demo says it runs; the first one that fails ends the start with its
 * message and exit status 1. Human output goes to stdout; logfmt lines to
 * --log-file, or to stderr from level warn up.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "serve_parse.h"
#include "taskq.h"

#define SEC 1000000000ull
#define MAX_SHOWN_PIDS 16 /* pids named when a queue is in use; the rest are counted */

struct opts {
	const char *queue;
	unsigned producers, consumers, batch, mix, work;
	double bad; /* percent of JSON tasks */
	uint64_t rate, total, capacity, duration_ns;
	bool quiet, join, log_level_set, keep_dead;
	const char *serve;      /* ADDR:PORT for taskq serve, or NULL */
	const char *token_file;
	const char *tls_cert, *tls_key; /* for taskq serve: HTTPS */
	bool insecure_http;             /* for taskq serve: control over plain HTTP off loopback */
	struct log_config log;
};

static volatile sig_atomic_t signals, last_signal;

static void on_signal(int sig)
{
	last_signal = sig;
	signals++;
}

static const char *level_names[] = {"debug", "info", "warn", "error"};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ./run.sh [OPTIONS]        (or build/taskq-demo [OPTIONS])\n\n"
		"Producers push integer and JSON tasks in batches; consumers process them.\n"
		"Ctrl+C (or SIGTERM, SIGHUP, or `taskq stop QUEUE`) drains: producers stop,\n"
		"consumers finish and acknowledge what they hold, a summary accounts for every\n"
		"task. A second Ctrl+C stops at once; the next run delivers what was left.\n\n"
		"  -p, --producers N        producer processes (default 1)\n"
		"  -c, --consumers N        consumer processes (default: the number of CPUs, at least 2)\n"
		"  -r, --rate N             tasks per second in all (default 0: as fast as possible)\n"
		"  -n, --total N            stop producing after N tasks; exit when all are done or dead\n"
		"  -d, --duration SEC       drain after SEC seconds\n"
		"  -m, --mix PCT            percent of tasks that are JSON (default 50)\n"
		"  -b, --batch N            tasks per push and per take (default 64)\n"
		"      --bad PCT            percent of JSON tasks that are invalid (default 0.01)\n"
		"  -w, --work N             Collatz runs per integer task (default 1)\n"
		"  -q, --queue NAME         queue name (default demo)\n"
		"      --capacity N         queue capacity when it is created (default 10000)\n"
		"      --join               run on the queue even if live processes use it (see below)\n"
		"      --quiet              no live line\n"
		"      --keep-dead          leave dead letters in the queue (by default the demo\n"
		"                           logs each one, id and reason, and purges it once the\n"
		"                           dead-letter area is half full, so that a long run's\n"
		"                           bad tasks never fill the queue; see taskq dead)\n"
		"      --serve ADDR:PORT    also start `taskq serve` for this queue: metrics and\n"
		"                           stats, read-only; control (drain, stop, pause, resume)\n"
		"                           too with a token. ADDR:PORT, [IPV6]:PORT or :PORT\n"
		"                           (127.0.0.1); port 0 takes any free port\n"
		"      --token-file F       bearer token for --serve's control endpoints (or\n"
		"                           $TASKQ_TOKEN); without either, control is off\n"
		"      --tls-cert F         with --tls-key F: --serve speaks HTTPS (PEM files;\n"
		"                           taskq serve --help)\n"
		"      --insecure-http      let --serve run control (a token) on a non-loopback\n"
		"                           address over plain HTTP (refused without it)\n"
		"      --log-file F         logfmt logs to F (default: stderr), and --serve's\n"
		"                           to F.serve\n"
		"      --log-level LEVEL    debug, info, warn or error (default: info with\n"
		"                           --log-file, warn on stderr)\n"
		"      --log-max-bytes N    rotate the log file at N bytes (default 10485760)\n"
		"      --log-max-files N    rotated log files kept (default 5)\n"
		"  -h, --help               this text\n\n"
		"A queue that live processes this run did not start are using (another demo, a\n"
		"taskq command) is refused, with their pids: stop them first, use --queue NAME,\n"
		"or --join. A run that joins leaves the queue's run state alone: its Ctrl+C\n"
		"drains only its own producers and consumers, and its summary counts only what\n"
		"they did (pushed, done, dead); the queue-wide accounting is skipped, since\n"
		"the tasks of every process on the queue mix. Tasks left in the queue by an\n"
		"earlier run with no live process are delivered by this one, and counted.\n\n"
		"Exit status: 0 after a drain that accounted for every task (with --join: after\n"
		"a clean drain); 1 if the count did not balance, a queue error occurred, a\n"
		"child failed to start, or the queue is in use (without --join); 2 for bad\n"
		"options; 130 after a second signal.\n");
}

static bool parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* --serve's ADDR:PORT, as taskq serve reads --listen: "ADDR:PORT",
 * "[IPV6]:PORT", "HOST:PORT" or ":PORT" (127.0.0.1), PORT 0..65535.
 * Checked before anything starts; false with the reason in why. */
static bool serve_addr_ok(const char *s, char *why, size_t size)
{
	char host[256];
	const char *port;

	if (!serve_split_listen(s, host, sizeof(host), &port, why, size))
		return false;
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e || !ai) {
		snprintf(why, size, "address %.64s: %s", host, e ? gai_strerror(e) : "not found");
		return false;
	}
	freeaddrinfo(ai);
	return true;
}

static const struct option long_opts[] = {
	{"producers", required_argument, 0, 'p'}, {"consumers", required_argument, 0, 'c'},
	{"rate", required_argument, 0, 'r'}, {"total", required_argument, 0, 'n'},
	{"duration", required_argument, 0, 'd'}, {"mix", required_argument, 0, 'm'},
	{"batch", required_argument, 0, 'b'}, {"bad", required_argument, 0, 'B'},
	{"work", required_argument, 0, 'w'}, {"queue", required_argument, 0, 'q'},
	{"capacity", required_argument, 0, 'C'}, {"join", no_argument, 0, 'J'},
	{"quiet", no_argument, 0, 'Q'}, {"serve", required_argument, 0, 'S'},
	{"keep-dead", no_argument, 0, 'K'},
	{"token-file", required_argument, 0, 'T'}, {"log-file", required_argument, 0, 'L'},
	{"tls-cert", required_argument, 0, 'X'}, {"tls-key", required_argument, 0, 'Y'},
	{"insecure-http", no_argument, 0, 'I'},
	{"log-level", required_argument, 0, 'V'}, {"log-max-bytes", required_argument, 0, 'M'},
	{"log-max-files", required_argument, 0, 'F'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

/* "--rate" for 'r': the option's full name, for messages. */
static const char *opt_name(int c)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == c)
			return lo->name;
	return "?";
}

/* parse_num that says, on failure, what the option takes. */
static bool parse_range(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why, size_t size)
{
	if (parse_num(s, min, max, out))
		return true;
	snprintf(why, size, "an integer from %llu to %llu", (unsigned long long)min, (unsigned long long)max);
	return false;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t v;
	int c;

	*o = (struct opts){.queue = "demo", .producers = 1, .consumers = ncpu > 2 ? (unsigned)ncpu : 2,
			   .batch = 64, .mix = 50, .bad = 0.01, .work = 1, .capacity = 10000};
	log_config_init(&o->log);
	while ((c = getopt_long(argc, argv, "p:c:r:n:d:m:b:w:q:h", long_opts, NULL)) != -1) {
		bool ok = true;
		char why[160] = "";
		switch (c) {
		case 'p': ok = parse_range(optarg, 1, 64, &v, why, sizeof(why)); o->producers = (unsigned)v; break;
		case 'c': ok = parse_range(optarg, 1, 256, &v, why, sizeof(why)); o->consumers = (unsigned)v; break;
		case 'r': ok = parse_range(optarg, 0, 1000000000ull, &o->rate, why, sizeof(why)); break;
		case 'n': ok = parse_range(optarg, 1, UINT64_MAX / 2, &o->total, why, sizeof(why)); break;
		case 'd': {
			char *end;
			double d = strtod(optarg, &end);
			ok = *optarg && !*end && isfinite(d) && d > 0 && d < 1e7;
			if (!ok)
				snprintf(why, sizeof(why), "seconds above 0 and below 10000000, e.g. 30 or 0.5");
			o->duration_ns = ok ? (uint64_t)(d * 1e9) : 0;
			break;
		}
		case 'm': ok = parse_range(optarg, 0, 100, &v, why, sizeof(why)); o->mix = (unsigned)v; break;
		case 'b': ok = parse_range(optarg, 1, TQ_MAX_BATCH, &v, why, sizeof(why)); o->batch = (unsigned)v; break;
		case 'B': {
			char *end;
			o->bad = strtod(optarg, &end);
			ok = *optarg && !*end && o->bad >= 0 && o->bad <= 100;
			if (!ok)
				snprintf(why, sizeof(why), "a percentage from 0 to 100, e.g. 0.01");
			break;
		}
		case 'w': ok = parse_range(optarg, 1, 1000000, &v, why, sizeof(why)); o->work = (unsigned)v; break;
		case 'q': o->queue = optarg; break;
		case 'C': ok = parse_range(optarg, 1, TQ_MAX_CAPACITY, &o->capacity, why, sizeof(why)); break;
		case 'J': o->join = true; break;
		case 'Q': o->quiet = true; break;
		case 'K': o->keep_dead = true; break;
		case 'S': ok = serve_addr_ok(optarg, why, sizeof(why)); o->serve = optarg; break;
		case 'T': o->token_file = optarg; break;
		case 'X': o->tls_cert = optarg; break;
		case 'Y': o->tls_key = optarg; break;
		case 'I': o->insecure_http = true; break;
		case 'L': o->log.path = optarg; break;
		case 'V':
			o->log.level = log_level_parse(optarg);
			ok = o->log.level >= 0;
			o->log_level_set = true;
			break;
		case 'M': ok = parse_range(optarg, 1024, UINT64_MAX / 2, &o->log.max_bytes, why, sizeof(why)); break;
		case 'F': ok = parse_range(optarg, 1, 100, &v, why, sizeof(why)); o->log.max_files = (unsigned)v; break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "taskq-demo: see --help for the options\n");
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "taskq-demo: invalid value '%s' for --%s%s%s\n", optarg, opt_name(c),
				why[0] ? ": " : "", why);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "taskq-demo: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (o->token_file && !o->serve) {
		fprintf(stderr, "taskq-demo: --token-file is for --serve's control endpoints; give --serve too\n");
		return 2;
	}
	if ((o->tls_cert || o->tls_key || o->insecure_http) && !o->serve) {
		fprintf(stderr, "taskq-demo: --%s is for --serve; give --serve too\n",
			o->tls_cert ? "tls-cert" : o->tls_key ? "tls-key" : "insecure-http");
		return 2;
	}
	if (!o->tls_cert != !o->tls_key) {
		fprintf(stderr, "taskq-demo: --%s needs --%s too\n", o->tls_cert ? "tls-cert" : "tls-key",
			o->tls_cert ? "tls-key" : "tls-cert");
		return 2;
	}
	if (!o->log_level_set)
		o->log.level = o->log.path ? LOG_INFO_ : LOG_WARN_;
	return 0;
}

/* v with a comma between groups of three digits ("26,106,906"), whatever
 * the locale; in one of a few rotating buffers, so that one printf may use
 * several. */
static const char *grp(uint64_t v)
{
	static char bufs[16][32];
	static unsigned k;
	char *b = bufs[k++ % 16], digits[24];
	int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v), o = 0;
	for (int i = 0; i < n; i++) {
		if (i && (n - i) % 3 == 0)
			b[o++] = ',';
		b[o++] = digits[i];
	}
	b[o] = '\0';
	return b;
}

/* ------------------------------------------------- children's reports */

/* Each child reports through a pipe, in writes of one record (atomic, under
 * PIPE_BUF): READY once it has opened the queue, DONE with its handle's
 * counters when it ends. */
enum { REPORT_READY = 1, REPORT_DONE = 2 };
struct report {
	uint32_t type, index;
	tq_counters c;
};

static int report_fd = -1; /* the write end, in children */

static void report(uint32_t type, unsigned index, tq_queue *q)
{
	struct report r = {.type = type, .index = index};
	if (q)
		tq_counters_self(q, &r.c);
	(void)!write(report_fd, &r, sizeof(r));
}

/* Set by the parent to drain its own children (with --join, the queue's run
 * state is not theirs to set): in shared memory, mapped before the forks. */
static volatile int *stop_flag;

/* ------------------------------------------------------------- producer */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static unsigned make_json(char *buf, size_t size, uint64_t n, uint64_t *rng, bool bad)
{
	static const char *ops[] = {"sum", "max", "mean"};
	uint64_t r = rng_next(rng);
	int len;

	if (!bad)
		len = snprintf(buf, size, "{\"id\":%llu,\"op\":\"%s\",\"values\":[%u,%u,%u,%u]}",
			       (unsigned long long)n, ops[r % 3], (unsigned)(r >> 8) & 1023,
			       (unsigned)(r >> 18) & 1023, (unsigned)(r >> 28) & 1023, (unsigned)(r >> 38) & 1023);
	else if (r & 1) /* truncated: not JSON at all */
		len = snprintf(buf, size, "{\"id\":%llu,\"op\":\"sum\",\"values\":[1,2", (unsigned long long)n);
	else            /* valid JSON, but the values are missing */
		len = snprintf(buf, size, "{\"id\":%llu,\"op\":\"sum\"}", (unsigned long long)n);
	return (unsigned)len;
}

static bool stopping(void)
{
	return __atomic_load_n(stop_flag, __ATOMIC_RELAXED) != 0;
}

static int producer(const struct opts *o, unsigned index, uint64_t quota)
{
	tq_queue *q;
	int rc = tq_open(o->queue, &q);
	if (rc) {
		fprintf(stderr, "taskq-demo: producer %u: queue %s: %s\n", index + 1, o->queue, tq_strerror(rc));
		return 1;
	}
	tq_task *t = calloc(o->batch, sizeof(*t));
	char (*json)[96] = calloc(o->batch, sizeof(*json));
	uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 20) ^ index, made = 0;
	uint64_t start = tq_now_ns(), per_sec = o->rate / o->producers + (o->rate && o->rate < o->producers);
	if (!t || !json) {
		fprintf(stderr, "taskq-demo: producer %u: out of memory\n", index + 1);
		return 1;
	}
	report(REPORT_READY, index, NULL);
	while ((!quota || made < quota) && !stopping()) {
		unsigned n = o->batch;
		if (quota && quota - made < n)
			n = (unsigned)(quota - made);
		if (per_sec) { /* pace: never ahead of rate * elapsed */
			uint64_t due = start + (made + n) * SEC / per_sec, now = tq_now_ns();
			if (due > now) {
				struct timespec ts = {(time_t)((due - now) / SEC), (long)((due - now) % SEC)};
				nanosleep(&ts, NULL);
			}
		}
		for (unsigned i = 0; i < n; i++) {
			uint64_t r = rng_next(&rng);
			if (r % 100 < o->mix) {
				bool bad = (double)((r >> 8) % 1000000) < o->bad * 10000.0;
				t[i] = (tq_task){.kind = TQ_KIND_JSON, .data = json[i]};
				t[i].len = make_json(json[i], sizeof(json[i]), made + i, &rng, bad);
			} else {
				t[i] = (tq_task){.kind = TQ_KIND_INT, .value = 1 + (r >> 16) % 1000000};
			}
		}
		for (unsigned done = 0; done < n && !stopping();) {
			rc = tq_push(q, t + done, n - done, 100000000ull);
			if (rc == TQ_ETIMEDOUT)
				continue; /* full: consumers are behind */
			if (rc < 0)
				goto out;
			done += (unsigned)rc;
			made += (unsigned)rc;
		}
	}
	rc = 0;
out:
	if (rc && rc != TQ_ESTOPPED)
		fprintf(stderr, "taskq-demo: producer %u: push: %s\n", index + 1, tq_strerror(rc));
	report(REPORT_DONE, index, q);
	tq_close(q);
	free(t);
	free(json);
	return rc == 0 || rc == TQ_ESTOPPED ? 0 : 1;
}

/* ------------------------------------------------------------- consumer */

static volatile uint64_t sink;

static int handle(const tq_task *t, void *arg, char *msg, size_t size)
{
	const struct opts *o = arg;

	if (t->kind == TQ_KIND_INT) {
		uint64_t steps = 0;
		for (unsigned k = 0; k < o->work; k++)
			for (uint64_t x = t->value + k; x > 1; steps++)
				x = (x & 1) ? 3 * x + 1 : x / 2;
		sink += steps;
		return 0;
	}
	cJSON *j = cJSON_ParseWithLength(t->data, t->len);
	if (!j) {
		snprintf(msg, size, "invalid JSON");
		return 22;
	}
	cJSON *values = cJSON_GetObjectItemCaseSensitive(j, "values");
	cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
	if (!cJSON_IsArray(values) || !cJSON_IsString(op)) {
		snprintf(msg, size, "missing field: %s", cJSON_IsString(op) ? "values" : "op");
		cJSON_Delete(j);
		return 22;
	}
	double acc = 0, max = -INFINITY;
	int n = 0;
	cJSON *v;
	cJSON_ArrayForEach(v, values) {
		acc += cJSON_GetNumberValue(v);
		max = fmax(max, cJSON_GetNumberValue(v));
		n++;
	}
	if (!strcmp(op->valuestring, "mean") && n)
		acc /= n;
	else if (!strcmp(op->valuestring, "max"))
		acc = max;
	sink += (uint64_t)acc;
	cJSON_Delete(j);
	return 0;
}

static int consumer(const struct opts *o, unsigned index)
{
	tq_queue *q;
	tq_worker_config cfg;
	int rc = tq_open(o->queue, &q);

	if (rc) {
		fprintf(stderr, "taskq-demo: consumer %u: queue %s: %s\n", index + 1, o->queue, tq_strerror(rc));
		return 1;
	}
	report(REPORT_READY, o->producers + index, NULL);
	tq_worker_config_init(&cfg);
	cfg.batch = o->batch;
	cfg.stop = stop_flag;
	rc = tq_worker_run(q, handle, (void *)o, &cfg, NULL);
	if (rc)
		fprintf(stderr, "taskq-demo: consumer %u: %s\n", index + 1, tq_strerror(rc));
	report(REPORT_DONE, o->producers + index, q);
	tq_close(q);
	return rc ? 1 : 0;
}

/* --------------------------------------------------------------- parent */

struct child {
	pid_t pid;
	bool ready, done, exited;
	int status;     /* exit status, or 128 + signal */
	tq_counters c;  /* from its DONE report */
};

static struct child *kids;
static int nkids;
static int report_rd = -1; /* the read end, in the parent (non-blocking) */

static void read_reports(void)
{
	static char part[sizeof(struct report)];
	static size_t have;

	for (;;) {
		ssize_t r = read(report_rd, part + have, sizeof(part) - have);
		if (r <= 0)
			return; /* EAGAIN: nothing more now */
		have += (size_t)r;
		if (have < sizeof(part))
			continue;
		have = 0;
		struct report rep;
		memcpy(&rep, part, sizeof(rep));
		if (rep.index >= (uint32_t)nkids)
			continue;
		if (rep.type == REPORT_READY)
			kids[rep.index].ready = true;
		else if (rep.type == REPORT_DONE) {
			kids[rep.index].done = true;
			kids[rep.index].c = rep.c;
		}
	}
}

/* Reaps children [from, from + n) and reads their reports; returns how many
 * are still running when `until` passes. */
static int reap(int from, int n, uint64_t until)
{
	for (;;) {
		int left = 0;
		for (int i = from; i < from + n; i++) {
			int st;
			if (kids[i].pid > 0 && !kids[i].exited && waitpid(kids[i].pid, &st, WNOHANG) == kids[i].pid) {
				kids[i].exited = true;
				kids[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
			left += kids[i].pid > 0 && !kids[i].exited;
		}
		read_reports(); /* what a reaped child wrote is in the pipe by now */
		if (!left || tq_now_ns() > until)
			return left;
		usleep(10000);
	}
}

static void kill_kids(int sig)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i].pid > 0 && !kids[i].exited)
			kill(kids[i].pid, sig);
}

static pid_t spawn(const struct opts *o, unsigned index)
{
	pid_t pid = fork();
	if (pid == 0) {
		/* The parent decides: Ctrl+C and a hangup reach the whole group. */
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		if (index < o->producers) {
			uint64_t quota = o->total ? o->total / o->producers + (index < o->total % o->producers) : 0;
			_exit(producer(o, index, quota));
		}
		_exit(consumer(o, index - o->producers));
	}
	if (pid < 0)
		fprintf(stderr, "taskq-demo: fork: %s\n", strerror(errno));
	return pid;
}

/* Waits until every child has opened the queue. Returns -1 when all have,
 * or the index of the first that ended without (or, past the deadline,
 * of one that is still not ready). */
static int wait_started(uint64_t deadline)
{
	for (;;) {
		reap(0, nkids, 0);
		int missing = -1;
		for (int i = 0; i < nkids; i++) {
			if (kids[i].ready)
				continue;
			if (kids[i].exited)
				return i;
			if (missing < 0)
				missing = i;
		}
		if (missing < 0)
			return -1;
		if (tq_now_ns() > deadline)
			return missing;
		usleep(10000);
	}
}

static const char *child_role(const struct opts *o, int i, char *buf, size_t size)
{
	if ((unsigned)i < o->producers)
		snprintf(buf, size, "producer %d", i + 1);
	else
		snprintf(buf, size, "consumer %u", (unsigned)i - o->producers + 1);
	return buf;
}

/* ---------------------------------------------------------- taskq serve */

struct server {
	pid_t pid;
	char url[300];  /* as taskq serve reported it */
	bool control;   /* its POST endpoints are on (it has a token) */
};

static void stop_server(struct server *sv)
{
	if (sv->pid > 0) {
		kill(sv->pid, SIGTERM);
		waitpid(sv->pid, NULL, 0);
		sv->pid = 0;
	}
}

/*
 * Starts `taskq serve` (beside this program) in its own process group, so
 * that a Ctrl+C meant for the demo leaves the endpoint up during the drain,
 * and waits for the line it prints once it listens
 * ("taskq serve: http://ADDR:PORT/ serving 1 queue; control on|off ...").
 * Returns 0, or 1 after a message if it failed to start (its own message is
 * on stderr, which it shares).
 */
static int start_server(const struct opts *o, struct server *sv)
{
	char self[4096], bin[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "taskq-demo: --serve: cannot find this program's directory: %s\n", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/taskq", self);

	int out[2];
	if (pipe2(out, O_CLOEXEC) != 0) {
		fprintf(stderr, "taskq-demo: --serve: pipe: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], 1);
		char log_path[4200], max_bytes[32], max_files[32];
		char *argv[26];
		int k = 0;
		argv[k++] = "taskq";
		argv[k++] = "serve";
		argv[k++] = (char *)o->queue;
		argv[k++] = "--listen";
		argv[k++] = (char *)o->serve;
		if (o->token_file) {
			argv[k++] = "--token-file";
			argv[k++] = (char *)o->token_file;
		}
		if (o->tls_cert) {
			argv[k++] = "--tls-cert";
			argv[k++] = (char *)o->tls_cert;
			argv[k++] = "--tls-key";
			argv[k++] = (char *)o->tls_key;
		}
		if (o->insecure_http)
			argv[k++] = "--insecure-http";
		argv[k++] = "--log-level";
		argv[k++] = (char *)level_names[o->log.level];
		if (o->log.path) {
			snprintf(log_path, sizeof(log_path), "%s.serve", o->log.path);
			snprintf(max_bytes, sizeof(max_bytes), "%llu", (unsigned long long)o->log.max_bytes);
			snprintf(max_files, sizeof(max_files), "%u", o->log.max_files);
			argv[k++] = "--log-file";
			argv[k++] = log_path;
			argv[k++] = "--log-max-bytes";
			argv[k++] = max_bytes;
			argv[k++] = "--log-max-files";
			argv[k++] = max_files;
		}
		argv[k] = NULL;
		execv(bin, argv);
		fprintf(stderr, "taskq-demo: --serve: cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (pid < 0) {
		fprintf(stderr, "taskq-demo: --serve: fork: %s\n", strerror(errno));
		close(out[0]);
		return 1;
	}
	sv->pid = pid;

	/* Its first line, or its end; 10 s at most. */
	char line[1024];
	size_t have = 0;
	uint64_t deadline = tq_now_ns() + 10 * SEC;
	bool eof = false;
	while (!memchr(line, '\n', have) && !eof && have < sizeof(line) - 1) {
		uint64_t now = tq_now_ns();
		if (now >= deadline)
			break;
		struct pollfd pf = {.fd = out[0], .events = POLLIN};
		int r = poll(&pf, 1, (int)((deadline - now) / 1000000 + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t got = read(out[0], line + have, sizeof(line) - 1 - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			eof = true;
		else
			have += (size_t)got;
	}
	close(out[0]); /* taskq serve prints nothing more, and ignores SIGPIPE */
	line[have] = '\0';
	char *nl = strchr(line, '\n');
	if (!nl) {
		int st = 0;
		if (!eof)
			kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		sv->pid = 0;
		if (eof)
			fprintf(stderr, "taskq-demo: --serve %s: taskq serve failed to start (exit status %d)\n", o->serve,
				WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		else
			fprintf(stderr, "taskq-demo: --serve %s: taskq serve did not start listening within 10 s\n",
				o->serve);
		return 1;
	}
	*nl = '\0';
	const char *u = strstr(line, "http://");
	if (!u)
		u = strstr(line, "https://");
	size_t len = u ? strcspn(u, " ") : 0;
	if (u && len < sizeof(sv->url))
		snprintf(sv->url, sizeof(sv->url), "%.*s", (int)len, u);
	else
		snprintf(sv->url, sizeof(sv->url), "%s://%s/", o->tls_cert ? "https" : "http", o->serve);
	sv->control = strstr(line, "control on") != NULL;
	return 0;
}

/* ------------------------------------------------- other processes */

static tq_proc_info procs[TQ_MAX_PROCS];

/* The processes attached to q other than this one and `also` (0: none),
 * into procs[]; returns their count. */
static int other_procs(tq_queue *q, pid_t also)
{
	int n = tq_procs(q, procs, TQ_MAX_PROCS), k = 0;
	for (int i = 0; i < n; i++)
		if (procs[i].pid != getpid() && (also <= 0 || procs[i].pid != also))
			procs[k++] = procs[i];
	return k;
}

/* "pid 123 (taskq-demo), pid 124 (taskq)" for procs[0..n). */
static void describe_procs(char *buf, size_t size, int n)
{
	size_t k = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && i < MAX_SHOWN_PIDS && k < size; i++) {
		char path[64], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)procs[i].pid);
		FILE *f = fopen(path, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
			comm[strcspn(comm, "\n")] = '\0';
		}
		int w = snprintf(buf + k, size - k, "%spid %d%s%s%s", i ? ", " : "", (int)procs[i].pid,
				 comm[0] ? " (" : "", comm, comm[0] ? ")" : "");
		if (w < 0)
			break;
		k += (size_t)w;
	}
	if (n > MAX_SHOWN_PIDS && k < size)
		snprintf(buf + k, size - k, " and %d more", n - MAX_SHOWN_PIDS);
}

/*
 * Before the owner's final count: other processes that joined the queue may
 * still be finishing tasks (the drain reached them through the run state).
 * Waits, at most 10 s, until none is attached, or none holds a task and
 * their counters stood still for 200 ms (a monitor such as taskq top).
 */
static void settle_others(tq_queue *q, pid_t server)
{
	uint64_t deadline = tq_now_ns() + 10 * SEC, still_since = 0, last_sum = UINT64_MAX;
	for (;;) {
		int n = other_procs(q, server);
		uint64_t sum = 0, leased = 0;
		for (int i = 0; i < n; i++) {
			leased += procs[i].leased;
			sum += procs[i].counters.pushed + procs[i].counters.taken + procs[i].counters.acked +
			       procs[i].counters.failed;
		}
		uint64_t now = tq_now_ns();
		if (!n)
			return;
		if (leased || sum != last_sum) {
			last_sum = sum;
			still_since = now;
		} else if (now - still_since >= SEC / 5) {
			return;
		}
		if (now > deadline)
			return;
		usleep(20000);
	}
}

/* ------------------------------------------------------ dead letters */

/* The demo's own dead-letter handler, as an operator's would be: once the
 * dead-letter area is half full, each dead task is logged (id, attempts,
 * the start of its reason) and purged, so that the bad tasks of a long run
 * never fill the queue (a full area makes dead tasks take room from the
 * capacity: taskq dead). Returns how many it purged. */
static uint64_t handle_dead(tq_queue *q, const tq_stats *s)
{
	static tq_dead_info d[64];
	uint64_t purged = 0;

	if (s->dead < (s->dead_capacity + 1) / 2)
		return 0;
	for (int round = 0; round < 1024; round++) { /* at most 65,536 a second */
		int n = tq_dead_list(q, d, sizeof(d) / sizeof(d[0]), NULL, 0), done = 0;
		for (int i = 0; i < n; i++) {
			char why[121];
			size_t k = 0;
			for (const char *m = d[i].last_msg; *m && k < sizeof(why) - 1; m++)
				why[k++] = (*m == '"' || *m == '\\' || (unsigned char)*m < 0x20) ? '?' : *m;
			why[k] = 0;
			if (tq_dead_purge(q, d[i].id) == 1) {
				done++;
				log_event(LOG_INFO_, "dead_letter_purged", "id=%llu attempts=%u reason=\"%s\"",
					  (unsigned long long)d[i].id, d[i].attempts, why);
			}
		}
		purged += (uint64_t)done;
		if (n < (int)(sizeof(d) / sizeof(d[0])) || done == 0)
			break;
	}
	return purged;
}

/* ------------------------------------------------------------- screen */

static uint32_t pending(const tq_stats *s)
{
	return s->ready + s->leased + s->delayed;
}

static void fmt_rate(char *buf, size_t size, double r)
{
	if (r >= 1e6)
		snprintf(buf, size, "%.2fM", r / 1e6);
	else if (r >= 1e3)
		snprintf(buf, size, "%.1fk", r / 1e3);
	else
		snprintf(buf, size, "%.0f", r);
}

static void live_line(const tq_stats *s, const tq_stats *prev, double dt, const tq_stats *base, bool tty)
{
	char rate[32];
	fmt_rate(rate, sizeof(rate), (double)(s->total.acked - prev->total.acked) / dt);
	printf("%stasks/s %7s | pending %7s | in progress %5s | done %13s | failed %9s | dead %7s%s",
	       tty ? "\r" : "", rate, grp(s->ready + s->delayed), grp(s->leased),
	       grp(s->total.acked - base->total.acked), grp(s->total.failed - base->total.failed),
	       grp(s->total.dead - base->total.dead), tty ? "  " : "\n");
	fflush(stdout);
}

/* Ends a start that failed: this run's children and server stop, and a
 * queue this run created (nothing was done in it) is removed. */
static int abort_start(const struct opts *o, tq_queue *q, bool created, struct server *sv)
{
	kill_kids(SIGKILL);
	reap(0, nkids, UINT64_MAX);
	stop_server(sv);
	tq_recover(q); /* leases of a child that had started return to ready */
	tq_close(q);
	if (created)
		tq_destroy(o->queue);
	log_event(LOG_ERROR_, "start_failed", "created=%s", created ? "true" : "false");
	return 1;
}

int main(int argc, char **argv)
{
	struct opts o;
	tq_queue *q;
	tq_config cfg;
	struct server sv = {0};
	char who[2048];
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	o.log.queue = o.queue;
	if (log_open(&o.log) != 0) {
		fprintf(stderr, "taskq-demo: --log-file %s: %s\n", o.log.path, strerror(errno));
		return 1;
	}
	tq_config_init(&cfg);
	cfg.capacity = (uint32_t)o.capacity;
	cfg.max_payload = 256;
	rc = tq_create(o.queue, &cfg, &q);
	bool created = rc == 0, existed = rc == TQ_EEXIST;
	if (existed)
		rc = tq_open(o.queue, &q); /* recovers what a killed run left */
	if (rc) {
		fprintf(stderr, "taskq-demo: queue %s: %s\n", o.queue, tq_strerror(rc));
		return rc == TQ_ENAME ? 2 : 1;
	}

	/* A queue that live processes use is not this run's to count or drain. */
	int others = 0;
	if (existed) {
		tq_recover(q); /* a process that just died is not a user */
		others = other_procs(q, 0);
	}
	if (others) {
		describe_procs(who, sizeof(who), others);
		int st = tq_run_state(q);
		if (!o.join) {
			fprintf(stderr,
				"taskq-demo: queue %s is in use by %d live process%s this run did not start: %s.\n"
				"Another demo, or a taskq command (work, top, serve...), has it open. Stop it\n"
				"first (Ctrl+C in its terminal, or `taskq stop %s`), run on a queue of your own\n"
				"(--queue NAME), or join it on purpose (--join: this run then drains and counts\n"
				"only its own work).\n",
				o.queue, others, others == 1 ? "" : "es", who, o.queue);
			tq_close(q);
			return 1;
		}
		if (st == TQ_DRAINING || st == TQ_STOPPED) {
			fprintf(stderr,
				"taskq-demo: queue %s is %s (its processes: %s); nothing can join it now. Try again\n"
				"once that run has ended, or use --queue NAME.\n",
				o.queue, st == TQ_DRAINING ? "draining" : "stopped", who);
			tq_close(q);
			return 1;
		}
	}
	bool joined = others > 0;
	if (!joined)
		tq_set_run_state(q, TQ_RUNNING);
	tq_stats base;
	tq_stats_get(q, &base);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	/* The children: their reports, their stop flag. */
	nkids = (int)(o.producers + o.consumers);
	kids = calloc((size_t)nkids, sizeof(*kids));
	stop_flag = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int rp[2];
	if (!kids || stop_flag == MAP_FAILED || pipe2(rp, O_CLOEXEC) != 0) {
		fprintf(stderr, "taskq-demo: cannot set up its processes: %s\n", strerror(errno));
		tq_close(q);
		return 1;
	}
	report_rd = rp[0];
	report_fd = rp[1];
	fcntl(report_rd, F_SETFL, O_NONBLOCK);

	if (o.serve && start_server(&o, &sv) != 0)
		return abort_start(&o, q, created, &sv);
	fflush(NULL);
	for (int i = 0; i < nkids; i++) {
		kids[i].pid = spawn(&o, (unsigned)i);
		if (kids[i].pid < 0)
			return abort_start(&o, q, created, &sv);
	}
	close(report_fd);
	int failed = wait_started(tq_now_ns() + 30 * SEC);
	if (failed >= 0) {
		char role[32];
		child_role(&o, failed, role, sizeof(role));
		if (kids[failed].exited)
			fprintf(stderr, "taskq-demo: %s (pid %d) failed to start (exit status %d); stopping\n", role,
				(int)kids[failed].pid, kids[failed].status);
		else
			fprintf(stderr, "taskq-demo: %s (pid %d) did not open queue %s within 30 s; stopping\n", role,
				(int)kids[failed].pid, o.queue);
		return abort_start(&o, q, created, &sv);
	}

	if (joined)
		printf("joining queue %s, in use by %s: this run's Ctrl+C drains only its own producers and "
		       "consumers, and its summary counts only their work\n", o.queue, who);
	else if (pending(&base))
		printf("queue %s exists: %s tasks left by an earlier run will be delivered "
		       "(%s ready, %s in progress, %s retrying); %s dead processes recovered so far\n",
		       o.queue, grp(pending(&base)), grp(base.ready), grp(base.leased), grp(base.delayed),
		       grp(base.recoveries));
	printf("queue %s: capacity %s; %u producer%s, %u consumer%s, batch %u, %u%% JSON (%g%% of them bad)%s\n",
	       o.queue, grp(base.capacity), o.producers, o.producers == 1 ? "" : "s", o.consumers,
	       o.consumers == 1 ? "" : "s", o.batch, o.mix, o.bad, isatty(1) ? "; Ctrl+C drains" : "");
	if (sv.pid > 0) {
		if (sv.control)
			printf("serving metrics, stats and control on %s (taskq serve, pid %d; control needs the "
			       "bearer token)\n", sv.url, (int)sv.pid);
		else
			printf("serving metrics and stats, read-only, on %s (taskq serve, pid %d; control is off: "
			       "no --token-file or $TASKQ_TOKEN)\n", sv.url, (int)sv.pid);
	}
	fflush(stdout);
	log_event(LOG_INFO_, "demo_started",
		  "producers=%u consumers=%u batch=%u json_percent=%u leftover=%u joined=%s serve=%s",
		  o.producers, o.consumers, o.batch, o.mix, joined ? 0 : pending(&base), joined ? "true" : "false",
		  sv.pid > 0 ? sv.url : "none");

	bool tty = isatty(1) && !o.quiet;
	uint64_t start = tq_now_ns(), last = start;
	tq_stats prev = base, s = base;
	uint64_t dead_purged = 0;
	const char *why = NULL;
	char why_buf[96];
	while (!why) {
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
		if (signals) {
			int sig = last_signal;
			snprintf(why_buf, sizeof(why_buf), "interrupted: draining (%s)",
				 sig == SIGHUP ? "SIGHUP" : sig == SIGTERM ? "SIGTERM" : "SIGINT");
			why = why_buf;
			break;
		}
		uint64_t now = tq_now_ns();
		if (o.duration_ns && now - start >= o.duration_ns)
			why = "duration reached: draining";
		int st = tq_run_state(q);
		if (st == TQ_DRAINING || st == TQ_STOPPED)
			why = st == TQ_STOPPED ? "taskq stop --now: stopping"
			      : joined ? "the queue is draining (taskq stop, or the run that owns it): draining"
				       : "taskq stop: draining";
		if (reap(0, (int)o.producers, 0) == 0 && o.total) {
			if (joined) {
				why = "this run's tasks are all pushed: draining its consumers";
			} else {
				tq_stats_get(q, &s);
				if (pending(&s) == 0)
					why = "all tasks done";
			}
		}
		if (now - last >= SEC) {
			tq_stats_get(q, &s);
			if (!joined && !o.keep_dead)
				dead_purged += handle_dead(q, &s);
			if (!o.quiet)
				live_line(&s, &prev, (double)(now - last) / 1e9, &base, tty);
			prev = s;
			last = now;
		}
	}
	if (tty)
		printf("\n");
	printf("%s\n", why);
	fflush(stdout);
	log_event(LOG_INFO_, "drain_started", "reason=\"%s\"", why);
	if (!joined && tq_run_state(q) != TQ_STOPPED)
		tq_set_run_state(q, TQ_DRAINING);
	__atomic_store_n(stop_flag, 1, __ATOMIC_RELAXED);
	int handled = signals ? 1 : 0; /* a second signal, even one that came with the first, stops at once */
	/* Wait for the drain; a second signal (or a stop --now) cuts it short. */
	while (reap(0, nkids, tq_now_ns() + 100000000ull) > 0) {
		if (signals > handled || tq_run_state(q) == TQ_STOPPED) {
			if (!joined)
				tq_set_run_state(q, TQ_STOPPED);
			kill_kids(SIGKILL);
			reap(0, nkids, UINT64_MAX);
			tq_recover(q); /* what they held returns to ready */
			tq_stats_get(q, &s);
			if (joined)
				printf("stopped at once: this run's processes were killed; the tasks they held return to "
				       "queue %s, whose other processes deliver them\n", o.queue);
			else
				printf("stopped at once: %s tasks in progress and %s ready stay in queue %s; "
				       "the next ./run.sh delivers them\n", grp(s.leased), grp(s.ready + s.delayed), o.queue);
			log_event(LOG_WARN_, "stopped_at_once", "in_progress=%u ready=%u joined=%s", s.leased,
				  s.ready + s.delayed, joined ? "true" : "false");
			stop_server(&sv);
			tq_close(q);
			return 130;
		}
	}
	double secs = (double)(tq_now_ns() - start) / 1e9;
	tq_counters mine = {0};
	int reported = 0, failed_kids = 0;
	for (int i = 0; i < nkids; i++) {
		if (kids[i].status)
			failed_kids++;
		if (!kids[i].done)
			continue;
		reported++;
		mine.pushed += kids[i].c.pushed;
		mine.acked += kids[i].c.acked;
		mine.failed += kids[i].c.failed;
		mine.dead += kids[i].c.dead;
	}
	if (failed_kids) {
		fprintf(stderr, "taskq-demo: %d of this run's processes ended with an error (see above)\n", failed_kids);
		log_event(LOG_WARN_, "children_failed", "count=%d", failed_kids);
	}

	if (joined) {
		stop_server(&sv);
		int now_others = other_procs(q, 0);
		printf("summary (joined queue %s): this run pushed %s tasks in %.1f s (%s/s); its consumers "
		       "acknowledged %s as done and sent %s to the dead-letter area, after %s failed attempts%s\n",
		       o.queue, grp(mine.pushed), secs, grp((uint64_t)((double)mine.pushed / secs)), grp(mine.acked),
		       grp(mine.dead), grp(mine.failed), reported < nkids ? " (counts from the processes that reported)" : "");
		printf("accounting skipped: queue %s is shared with %d other live process%s, whose tasks mix "
		       "with this run's; the run that owns the queue accounts for all of them\n",
		       o.queue, now_others, now_others == 1 ? "" : "es");
		log_event(LOG_INFO_, "summary", "joined=true pushed=%llu done=%llu dead=%llu failed=%llu",
			  (unsigned long long)mine.pushed, (unsigned long long)mine.acked,
			  (unsigned long long)mine.dead, (unsigned long long)mine.failed);
		tq_close(q);
		return failed_kids ? 1 : 0;
	}

	settle_others(q, sv.pid);
	tq_recover(q); /* settle anything a child left (none on a clean drain) */
	tq_stats_get(q, &s);
	uint64_t produced = s.total.pushed - base.total.pushed, done = s.total.acked - base.total.acked,
		 dead = s.total.dead - base.total.dead;
	uint64_t in = pending(&base) + produced, out = done + dead + pending(&s);
	printf("summary: %s tasks produced in %.1f s (%s/s); %s done, %s dead, %s still pending "
	       "(%s ready, %s retrying, %s in progress)",
	       grp(produced), secs, grp((uint64_t)((double)done / secs)), grp(done), grp(dead), grp(pending(&s)),
	       grp(s.ready), grp(s.delayed), grp(s.leased));
	if (pending(&base))
		printf("; %s were left by an earlier run", grp(pending(&base)));
	if (reported == nkids && produced > mine.pushed)
		printf("; %s were pushed by processes that joined", grp(produced - mine.pushed));
	if (dead_purged)
		printf("; %s dead letters purged to keep room, each logged with its reason at --log-level info "
		       "(--keep-dead keeps them)",
		       grp(dead_purged));
	printf("\n");
	stop_server(&sv);
	log_event(in == out ? LOG_INFO_ : LOG_ERROR_, "summary",
		  "produced=%llu done=%llu dead=%llu pending=%u leftover=%u balanced=%s", (unsigned long long)produced,
		  (unsigned long long)done, (unsigned long long)dead, pending(&s), pending(&base),
		  in == out ? "true" : "false");
	if (in != out) {
		printf("ACCOUNTING MISMATCH: %s in, %s out\n", grp(in), grp(out));
		tq_close(q);
		return 1;
	}
	printf("every task accounted for: %s in = %s done + %s dead + %s pending\n", grp(in), grp(done), grp(dead),
	       grp(pending(&s)));
	tq_close(q);
	return failed_kids ? 1 : 0;
}
