/*
 * demo.c - taskq-demo, the seed's system end to end (started by ./run.sh).
 *
 * One queue (10,000 tasks by default); producers generate integer and JSON
 * tasks in batches of 64; consumers do real work on each: integers get a
 * Collatz computation, JSON tasks are parsed with cJSON and summed, and a
 * share of deliberately bad JSON tasks fail, are retried and end dead. A
 * live line each second; Ctrl+C or SIGTERM (or `taskq stop`) drains and
 * prints a summary that accounts for every task; a second Ctrl+C stops at
 * once, leaving leased tasks for the next run to deliver.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "taskq.h"

#define SEC 1000000000ull

struct opts {
	const char *queue;
	unsigned producers, consumers, batch, mix, work;
	double bad; /* percent of JSON tasks */
	uint64_t rate, total, capacity, duration_ns;
	bool quiet;
	const char *serve;      /* ADDR:PORT for taskq serve, or NULL */
	const char *token_file;
	struct log_config log;
};

static volatile sig_atomic_t signals;

static void on_signal(int sig)
{
	(void)sig;
	signals++;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ./run.sh [OPTIONS]        (or build/taskq-demo [OPTIONS])\n\n"
		"Producers push integer and JSON tasks in batches; consumers process them.\n"
		"Ctrl+C (or SIGTERM, or `taskq stop QUEUE`) drains: producers stop, consumers\n"
		"finish and acknowledge what they hold, a summary accounts for every task.\n"
		"A second Ctrl+C stops at once; the next run delivers what was left.\n\n"
		"  -p, --producers N   producer processes (default 1)\n"
		"  -c, --consumers N   consumer processes (default: the number of CPUs, at least 2)\n"
		"  -r, --rate N        tasks per second in all (default 0: as fast as possible)\n"
		"  -n, --total N       stop producing after N tasks; exit when all are done or dead\n"
		"  -d, --duration SEC  drain after SEC seconds\n"
		"  -m, --mix PCT       percent of tasks that are JSON (default 50)\n"
		"  -b, --batch N       tasks per push and per take (default 64)\n"
		"      --bad PCT       percent of JSON tasks that are invalid (default 0.01)\n"
		"  -w, --work N        Collatz runs per integer task (default 1)\n"
		"  -q, --queue NAME    queue name (default demo)\n"
		"      --capacity N    queue capacity when it is created (default 10000)\n"
		"      --quiet         no live line\n"
		"      --serve ADDR:PORT  also start `taskq serve` for this queue (metrics,\n"
		"                      stats, and with --token-file remote drain/stop/pause)\n"
		"      --token-file F  bearer token for --serve's control endpoints\n"
		"      --log-file F    structured logs to F (default stderr), rotated at\n"
		"                      --log-max-bytes N keeping --log-max-files N old files\n"
		"  -h, --help          this text\n\n"
		"Exit status: 0 after a drain that accounted for every task; 1 if the count\n"
		"did not balance or a queue error occurred; 2 for bad options; 130 after a\n"
		"second Ctrl+C.\n");
}

static bool parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"producers", required_argument, 0, 'p'}, {"consumers", required_argument, 0, 'c'},
		{"rate", required_argument, 0, 'r'}, {"total", required_argument, 0, 'n'},
		{"duration", required_argument, 0, 'd'}, {"mix", required_argument, 0, 'm'},
		{"batch", required_argument, 0, 'b'}, {"bad", required_argument, 0, 'B'},
		{"work", required_argument, 0, 'w'}, {"queue", required_argument, 0, 'q'},
		{"capacity", required_argument, 0, 'C'}, {"quiet", no_argument, 0, 'Q'},
		{"serve", required_argument, 0, 'S'}, {"token-file", required_argument, 0, 'T'},
		{"log-file", required_argument, 0, 'L'}, {"log-max-bytes", required_argument, 0, 'M'},
		{"log-max-files", required_argument, 0, 'F'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t v;
	int c;

	*o = (struct opts){.queue = "demo", .producers = 1, .consumers = ncpu > 2 ? (unsigned)ncpu : 2,
			   .batch = 64, .mix = 50, .bad = 0.01, .work = 1, .capacity = 10000};
	log_config_init(&o->log);
	while ((c = getopt_long(argc, argv, "p:c:r:n:d:m:b:w:q:h", lo, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'p': ok = parse_num(optarg, 1, 64, &v); o->producers = (unsigned)v; break;
		case 'c': ok = parse_num(optarg, 1, 256, &v); o->consumers = (unsigned)v; break;
		case 'r': ok = parse_num(optarg, 0, 1000000000ull, &o->rate); break;
		case 'n': ok = parse_num(optarg, 1, UINT64_MAX / 2, &o->total); break;
		case 'd': {
			char *end;
			double d = strtod(optarg, &end);
			ok = *optarg && !*end && isfinite(d) && d > 0 && d < 1e7;
			o->duration_ns = ok ? (uint64_t)(d * 1e9) : 0;
			break;
		}
		case 'm': ok = parse_num(optarg, 0, 100, &v); o->mix = (unsigned)v; break;
		case 'b': ok = parse_num(optarg, 1, TQ_MAX_BATCH, &v); o->batch = (unsigned)v; break;
		case 'B': {
			char *end;
			o->bad = strtod(optarg, &end);
			ok = *optarg && !*end && o->bad >= 0 && o->bad <= 100;
			break;
		}
		case 'w': ok = parse_num(optarg, 1, 1000000, &v); o->work = (unsigned)v; break;
		case 'q': o->queue = optarg; break;
		case 'C': ok = parse_num(optarg, 1, TQ_MAX_CAPACITY, &o->capacity); break;
		case 'Q': o->quiet = true; break;
		case 'S': o->serve = optarg; break;
		case 'T': o->token_file = optarg; break;
		case 'L': o->log.path = optarg; break;
		case 'M': ok = parse_num(optarg, 1024, UINT64_MAX / 2, &o->log.max_bytes); break;
		case 'F': ok = parse_num(optarg, 1, 100, &v); o->log.max_files = (unsigned)v; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
		if (!ok) {
			fprintf(stderr, "taskq-demo: invalid value '%s' for -%c\n", optarg, c);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

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

static int producer(const struct opts *o, unsigned index, uint64_t quota)
{
	tq_queue *q;
	int rc = tq_open(o->queue, &q);
	if (rc) {
		fprintf(stderr, "taskq-demo: producer: %s\n", tq_strerror(rc));
		return 1;
	}
	tq_task *t = calloc(o->batch, sizeof(*t));
	char (*json)[96] = calloc(o->batch, sizeof(*json));
	uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 20) ^ index, made = 0;
	uint64_t start = tq_now_ns(), per_sec = o->rate / o->producers + (o->rate && o->rate < o->producers);
	if (!t || !json)
		return 1;
	while (!quota || made < quota) {
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
		for (unsigned done = 0; done < n;) {
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

static int consumer(const struct opts *o)
{
	tq_queue *q;
	tq_worker_config cfg;
	int rc = tq_open(o->queue, &q);

	if (rc) {
		fprintf(stderr, "taskq-demo: consumer: %s\n", tq_strerror(rc));
		return 1;
	}
	tq_worker_config_init(&cfg);
	cfg.batch = o->batch;
	rc = tq_worker_run(q, handle, (void *)o, &cfg, NULL);
	tq_close(q);
	return rc ? 1 : 0;
}

/* --------------------------------------------------------------- parent */

static pid_t spawn(int (*fn)(const struct opts *, unsigned, uint64_t), const struct opts *o, unsigned i,
		   uint64_t quota)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_IGN); /* the parent decides; Ctrl+C reaches the whole group */
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		_exit(fn(o, i, quota));
	}
	return pid;
}

static int producer_main(const struct opts *o, unsigned i, uint64_t quota)
{
	return producer(o, i, quota);
}

static int consumer_main(const struct opts *o, unsigned i, uint64_t quota)
{
	(void)i;
	(void)quota;
	return consumer(o);
}

/* Starts `taskq serve` (beside this program) in its own process group, so
 * that a Ctrl+C meant for the demo leaves the endpoint up during the drain. */
static pid_t start_server(const struct opts *o)
{
	char self[4096], bin[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/taskq", self);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		char *argv[10] = {"taskq", "serve", (char *)o->queue, "--listen", (char *)o->serve, NULL};
		if (o->token_file) {
			argv[5] = "--token-file";
			argv[6] = (char *)o->token_file;
			argv[7] = NULL;
		}
		execv(bin, argv);
		fprintf(stderr, "taskq-demo: cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	return pid;
}

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
	printf("%stasks/s %7s | pending %6u | in progress %4u | done %10llu | failed %8llu | dead %6llu%s",
	       tty ? "\r" : "", rate, s->ready + s->delayed, s->leased,
	       (unsigned long long)(s->total.acked - base->total.acked),
	       (unsigned long long)(s->total.failed - base->total.failed),
	       (unsigned long long)(s->total.dead - base->total.dead), tty ? "  " : "\n");
	fflush(stdout);
}

/* Waits for children; returns how many are left when `until` passes. */
static int reap(pid_t *pids, int n, uint64_t until)
{
	int left = n;
	while (left > 0) {
		left = 0;
		for (int i = 0; i < n; i++) {
			if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i])
				pids[i] = 0;
			left += pids[i] > 0;
		}
		if (!left || tq_now_ns() > until)
			break;
		usleep(10000);
	}
	return left;
}

int main(int argc, char **argv)
{
	struct opts o;
	tq_queue *q;
	tq_config cfg;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	tq_config_init(&cfg);
	cfg.capacity = (uint32_t)o.capacity;
	cfg.max_payload = 256;
	rc = tq_create(o.queue, &cfg, &q);
	bool existed = rc == TQ_EEXIST;
	if (existed)
		rc = tq_open(o.queue, &q); /* recovers what a killed run left */
	if (rc) {
		fprintf(stderr, "taskq-demo: queue %s: %s\n", o.queue, tq_strerror(rc));
		return 1;
	}
	tq_stats base;
	tq_set_run_state(q, TQ_RUNNING);
	tq_stats_get(q, &base);
	if (existed)
		printf("queue %s exists: %u tasks left by an earlier run will be delivered "
		       "(%u ready, %u in progress, %u retrying); %u dead processes recovered so far\n",
		       o.queue, pending(&base), base.ready, base.leased, base.delayed, base.recoveries);
	printf("queue %s: capacity %u; %u producer%s, %u consumers, batch %u, %u%% JSON (%g%% of them bad)%s\n",
	       o.queue, base.capacity, o.producers, o.producers == 1 ? "" : "s", o.consumers, o.batch, o.mix,
	       o.bad, isatty(1) ? "; Ctrl+C drains" : "");

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	o.log.queue = o.queue;
	if (log_open(&o.log) != 0) {
		fprintf(stderr, "taskq-demo: --log-file %s: %s\n", o.log.path, strerror(errno));
		return 1;
	}
	log_event(LOG_INFO_, "demo_started", "producers=%u consumers=%u batch=%u json_percent=%u leftover=%u",
		  o.producers, o.consumers, o.batch, o.mix, pending(&base));
	pid_t server = o.serve ? start_server(&o) : 0;
	if (o.serve)
		printf("serving metrics and control on http://%s (taskq serve, pid %d)\n", o.serve, (int)server);

	int nchild = (int)(o.producers + o.consumers);
	pid_t *pids = calloc((size_t)nchild, sizeof(*pids));
	if (!pids)
		return 1;
	for (unsigned i = 0; i < o.producers; i++) {
		uint64_t quota = o.total ? o.total / o.producers + (i < o.total % o.producers) : 0;
		pids[i] = spawn(producer_main, &o, i, quota);
	}
	for (unsigned i = 0; i < o.consumers; i++)
		pids[o.producers + i] = spawn(consumer_main, &o, i, 0);

	bool tty = isatty(1) && !o.quiet;
	uint64_t start = tq_now_ns(), last = start;
	tq_stats prev = base, s = base;
	const char *why = NULL;
	int handled = 0;
	while (!why) {
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
		if (signals) {
			why = "interrupted: draining";
			break;
		}
		uint64_t now = tq_now_ns();
		if (o.duration_ns && now - start >= o.duration_ns)
			why = "duration reached: draining";
		int st = tq_run_state(q);
		if (st == TQ_DRAINING || st == TQ_STOPPED)
			why = st == TQ_DRAINING ? "taskq stop: draining" : "taskq stop --now: stopping";
		if (o.total && reap(pids, (int)o.producers, 0) == 0) {
			tq_stats_get(q, &s);
			if (pending(&s) == 0)
				why = "all tasks done";
		}
		if (now - last >= SEC) {
			tq_stats_get(q, &s);
			if (!o.quiet)
				live_line(&s, &prev, (double)(now - last) / 1e9, &base, tty);
			prev = s;
			last = now;
		}
	}
	if (tty)
		printf("\n");
	printf("%s\n", why);
	log_event(LOG_INFO_, "drain_started", "reason=\"%s\"", why);
	if (tq_run_state(q) != TQ_STOPPED)
		tq_set_run_state(q, TQ_DRAINING);
	handled = signals ? 1 : 0; /* a second signal, even one that came with the first, stops at once */
	/* Wait for the drain; a second Ctrl+C (or a stop --now) cuts it short. */
	while (reap(pids, nchild, tq_now_ns() + 100000000ull) > 0) {
		if (signals > handled || tq_run_state(q) == TQ_STOPPED) {
			tq_set_run_state(q, TQ_STOPPED);
			for (int i = 0; i < nchild; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			reap(pids, nchild, UINT64_MAX);
			tq_stats_get(q, &s);
			printf("stopped at once: %u tasks in progress and %u ready stay in queue %s; "
			       "the next ./run.sh delivers them\n", s.leased, s.ready + s.delayed, o.queue);
			log_event(LOG_WARN_, "stopped_at_once", "in_progress=%u ready=%u", s.leased, s.ready + s.delayed);
			if (server > 0)
				kill(server, SIGTERM);
			tq_close(q);
			free(pids);
			return 130;
		}
	}
	free(pids);
	tq_recover(q); /* settle anything a child left (none on a clean drain) */
	tq_stats_get(q, &s);
	uint64_t produced = s.total.pushed - base.total.pushed, done = s.total.acked - base.total.acked,
		 dead = s.total.dead - base.total.dead;
	uint64_t in = pending(&base) + produced, out = done + dead + pending(&s);
	double secs = (double)(tq_now_ns() - start) / 1e9;
	printf("summary: %llu tasks produced in %.1f s (%.0f/s); %llu done, %llu dead, %u still pending "
	       "(%u ready, %u retrying, %u in progress)",
	       (unsigned long long)produced, secs, (double)done / secs, (unsigned long long)done,
	       (unsigned long long)dead, pending(&s), s.ready, s.delayed, s.leased);
	if (pending(&base))
		printf("; %u were left by an earlier run", pending(&base));
	printf("\n");
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	log_event(in == out ? LOG_INFO_ : LOG_ERROR_, "summary",
		  "produced=%llu done=%llu dead=%llu pending=%u leftover=%u balanced=%s", (unsigned long long)produced,
		  (unsigned long long)done, (unsigned long long)dead, pending(&s), pending(&base),
		  in == out ? "true" : "false");
	if (in != out) {
		printf("ACCOUNTING MISMATCH: %llu in, %llu out\n", (unsigned long long)in, (unsigned long long)out);
		tq_close(q);
		return 1;
	}
	printf("every task accounted for: %llu in = %llu done + %llu dead + %u pending\n", (unsigned long long)in,
	       (unsigned long long)done, (unsigned long long)dead, pending(&s));
	tq_close(q);
	return 0;
}
