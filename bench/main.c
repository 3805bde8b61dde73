/* SPDX-License-Identifier: MIT */
/*
 * main.c - the taskq benchmark driver: the rows, run sizing, the report.
 *
 *   taskq-bench              every row, 5 runs each (~0.5 s), medians
 *   taskq-bench --quick      small counts, 1 run each
 *   taskq-bench --only NAME  the row of that name, else the rows whose names contain NAME
 *   taskq-bench --json FILE  also write the results as JSON to FILE
 *   taskq-bench --csv DIR    also run the batch sweep (taskq int 1->1 and the
 *                            pipe, 1 to 256 tasks per call) and write the
 *                            results as CSV files in DIR, for
 *                            scripts/bench-plots.sh (write_csv)
 *   taskq-bench --only due   how late delayed tasks come after their due time
 *   taskq-bench --only wedge the seed's ring and taskq when a consumer is
 *                            killed holding its lock / leases: tasks
 *                            delivered in the second before and after (no table)
 *
 * Every row is first sized by calibration runs; then the runs go in rounds:
 * run 1 of every row, then run 2 of every row, and so on, so that a change
 * of the machine's speed during the bench (a shared VM) spreads over all
 * rows instead of skewing the ratios between some of them.
 *
 * Exit status: 0, or 1 when a run lost, duplicated or corrupted a task (or a
 * child crashed or hung); a missed performance target does not count. 2: a
 * usage error, or the --json file or the --csv files could not be written.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5
#define TARGET_SECS 0.5  /* a throughput run's intended length */
#define PACED_SECS 1.5   /* a paced latency run */
#define IDLE_SECS 2.0    /* the idle consumer's wait */
#define QUICK_IDLE_SECS 0.2
#define QUICK_B2B_SECS 0.1 /* a back-to-back latency run with --quick */

enum row_id {
	R_B64, R_B64INTS, R_B1, R_B1AHEAD, R_B1LATER, R_1TO4, R_4TO4, R_1TO8, R_JSON, R_STATS10, R_STATSLOOP,
	R_SPINLOOP, R_B64_1M, R_STATSLOOP_1M, R_SPINLOOP_1M,
	R_SPSC, R_SPSC100,
	R_PIPE1, R_PIPE64, R_PIPE1_100, R_PIPE64_100, R_SEQPACKET64, R_MQ1, R_MQ64, R_SEED,
	R_LAT_TQ_PACED, R_LAT_PIPE_PACED, R_LAT_TQ_LOAD, R_LAT_PIPE_LOAD,
	R_IDLE,
	NROWS
};

#define M 1000000ull
#define TPUT(name_, impl_, np, nc, b, sz, js, pilot_, quick_, max_, st)                                 \
	{.name = name_, .impl = impl_, .mode = MODE_THROUGHPUT, .nprod = np, .ncons = nc, .batch = b,         \
	 .size = sz, .json = js, .pilot = pilot_, .quick = quick_, .max = max_, .stats_hz = st}
#define LAT(name_, impl_, hz, secs_, quick_)                                                            \
	{.name = name_, .impl = impl_, .mode = MODE_LATENCY, .nprod = 1, .ncons = 1, .batch = 1, .size = 8, \
	 .pace_hz = hz, .secs = secs_, .quick = quick_, .max = BENCH_LAT_MAX_TASKS - 1}

static const struct bench_row g_rows[NROWS] = {
	[R_B64] = TPUT("taskq int 1->1 batch 64", IMPL_TASKQ, 1, 1, 64, 8, 0, 1 * M, 200000, 150 * M, 0),
	/* the same through the integer calls: tq_push_ints, tq_take_ints, tq_batch_ack */
	[R_B64INTS] = {.name = "taskq int 1->1 batch 64 ints", .impl = IMPL_TASKQ, .mode = MODE_THROUGHPUT,
		       .nprod = 1, .ncons = 1, .batch = 64, .size = 8, .pilot = 1 * M, .quick = 200000,
		       .max = 200 * M, .ints = 1},
	[R_B1] = TPUT("taskq int 1->1 batch 1", IMPL_TASKQ, 1, 1, 1, 8, 0, 200000, 100000, 60 * M, 0),
	/* the same, one task per call, with take-ahead 64 (tq_set_take_ahead) */
	[R_B1AHEAD] = {.name = "taskq int 1->1 batch 1 take-ahead 64", .impl = IMPL_TASKQ, .mode = MODE_THROUGHPUT,
		       .nprod = 1, .ncons = 1, .batch = 1, .size = 8, .pilot = 200000, .quick = 100000,
		       .max = 100 * M, .ahead = 64},
	/* the same, each task acked with tq_ack_later (acked 64 at a time) */
	[R_B1LATER] = {.name = "taskq int 1->1 batch 1 ahead 64 ack-later", .impl = IMPL_TASKQ,
		       .mode = MODE_THROUGHPUT, .nprod = 1, .ncons = 1, .batch = 1, .size = 8, .pilot = 200000,
		       .quick = 100000, .max = 100 * M, .ahead = 64, .later = 1},
	[R_1TO4] = TPUT("taskq int 1->4 batch 64", IMPL_TASKQ, 1, 4, 64, 8, 0, 1 * M, 200000, 100 * M, 0),
	[R_4TO4] = TPUT("taskq int 4->4 batch 64", IMPL_TASKQ, 4, 4, 64, 8, 0, 1 * M, 200000, 100 * M, 0),
	[R_1TO8] = TPUT("taskq int 1->8 batch 64", IMPL_TASKQ, 1, 8, 64, 8, 0, 1 * M, 200000, 100 * M, 0),
	[R_JSON] = TPUT("taskq json100 1->1 batch 64", IMPL_TASKQ, 1, 1, 64, 100, 1, 1 * M, 200000, 100 * M, 0),
	[R_STATS10] = TPUT("taskq int 1->1 b64 +stats 10/s", IMPL_TASKQ, 1, 1, 64, 8, 0, 1 * M, 200000, 150 * M, 10),
	[R_STATSLOOP] = TPUT("taskq int 1->1 b64 +stats loop", IMPL_TASKQ, 1, 1, 64, 8, 0, 1 * M, 200000, 150 * M, -1),
	/* the control: a third thread as busy, that reads nothing */
	[R_SPINLOOP] = TPUT("taskq int 1->1 b64 +spin loop", IMPL_TASKQ, 1, 1, 64, 8, 0, 1 * M, 200000, 150 * M,
			    STATS_SPIN),
	/* the same three in a queue of 1,000,000 tasks: reading stats costs O(1) in the capacity */
	[R_B64_1M] = {.name = "taskq int 1->1 b64 1M", .impl = IMPL_TASKQ, .mode = MODE_THROUGHPUT, .nprod = 1,
		      .ncons = 1, .batch = 64, .size = 8, .pilot = 1 * M, .quick = 200000, .max = 150 * M,
		      .capacity = 1000000},
	[R_STATSLOOP_1M] = {.name = "taskq int 1->1 b64 1M +stats loop", .impl = IMPL_TASKQ, .mode = MODE_THROUGHPUT,
			    .nprod = 1, .ncons = 1, .batch = 64, .size = 8, .pilot = 1 * M, .quick = 200000,
			    .max = 150 * M, .stats_hz = -1, .capacity = 1000000},
	[R_SPINLOOP_1M] = {.name = "taskq int 1->1 b64 1M +spin loop", .impl = IMPL_TASKQ, .mode = MODE_THROUGHPUT,
			   .nprod = 1, .ncons = 1, .batch = 64, .size = 8, .pilot = 1 * M, .quick = 200000,
			   .max = 150 * M, .stats_hz = STATS_SPIN, .capacity = 1000000},
	[R_SPSC] = TPUT("spsc ring int batch 64", IMPL_SPSC, 1, 1, 64, 8, 0, 1 * M, 200000, 400 * M, 0),
	[R_SPSC100] = TPUT("spsc ring 100B batch 64", IMPL_SPSC, 1, 1, 64, BENCH_REC_LEN, 0, 1 * M, 200000, 200 * M, 0),
	[R_PIPE1] = TPUT("pipe one task per write", IMPL_PIPE, 1, 1, 1, 8, 0, 50000, 20000, 20 * M, 0),
	[R_PIPE64] = TPUT("pipe 64 tasks per write", IMPL_PIPE, 1, 1, 64, 8, 0, 200000, 50000, 200 * M, 0),
	[R_PIPE1_100] = TPUT("pipe 100B one task per write", IMPL_PIPE, 1, 1, 1, BENCH_REC_LEN, 0, 50000, 20000, 20 * M, 0),
	[R_PIPE64_100] = TPUT("pipe 100B 64 tasks per write", IMPL_PIPE, 1, 1, 64, BENCH_REC_LEN, 0, 200000, 50000, 100 * M, 0),
	[R_SEQPACKET64] = TPUT("unix seqpacket 64 tasks per send", IMPL_SEQPACKET, 1, 1, 64, 8, 0, 200000, 50000, 200 * M, 0),
	[R_MQ1] = TPUT("posix mq one task per message", IMPL_MQ, 1, 1, 1, 8, 0, 50000, 20000, 20 * M, 0),
	[R_MQ64] = TPUT("posix mq 64 tasks per message", IMPL_MQ, 1, 1, 64, 8, 0, 200000, 50000, 200 * M, 0),
	[R_SEED] = TPUT("seed classic", IMPL_SEED, 1, 1, 1, 8, 0, 50000, 20000, 20 * M, 0),
	/* paced: pace_hz * secs tasks (--quick: `quick`); full load: runs of `secs` (--quick: 0.1 s) */
	[R_LAT_TQ_PACED] = LAT("latency taskq 10k/s", IMPL_TASKQ_LAT, 10000, PACED_SECS, 2000),
	[R_LAT_PIPE_PACED] = LAT("latency pipe 10k/s", IMPL_PIPE_LAT, 10000, PACED_SECS, 2000),
	[R_LAT_TQ_LOAD] = LAT("latency taskq full load", IMPL_TASKQ_LAT, 0, TARGET_SECS, 0),
	[R_LAT_PIPE_LOAD] = LAT("latency pipe full load", IMPL_PIPE_LAT, 0, TARGET_SECS, 0),
	[R_IDLE] = {.name = "idle taskq consumer", .impl = IMPL_TASKQ_IDLE, .mode = MODE_IDLE, .nprod = 1,
		    .ncons = 1, .batch = 1, .size = 8, .secs = IDLE_SECS, .pilot = 1, .quick = 1, .max = 1},
};

struct row_out {
	int selected, failed, nruns;
	uint64_t n;   /* tasks asked for per run */
	uint64_t tasks; /* tasks moved per run (median: time-bounded rows vary) */
	double ntasks[RUNS];
	double secs;  /* intended length */
	int has_futex;
	double rate[RUNS], futex[RUNS], p50[RUNS], p99[RUNS], lmax[RUNS], cpu[RUNS], idle_s[RUNS], idle_fps[RUNS];
	/* medians (and extremes) over the runs */
	double med, min, max, futex_med, p50_med, p99_med, lmax_max, cpu_med, cpu_min, cpu_max, idle_s_med,
		idle_fps_med;
	uint64_t *hist; /* latency rows: every run's histogram, summed (with --csv) */
	char msg[512];
};

static struct row_out g_out[NROWS];
static int g_quick;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median_of(const double *v, int n, double *lo, double *hi)
{
	double s[RUNS];
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	if (lo)
		*lo = s[0];
	if (hi)
		*hi = s[n - 1];
	return s[n / 2];
}

/* 2 significant digits, at least `lo`. */
static uint64_t round_count(double n, uint64_t lo, uint64_t hi)
{
	if (n < (double)lo)
		return lo;
	if (n > (double)hi)
		return hi;
	uint64_t v = (uint64_t)n, unit = 1;
	while (v / unit >= 100)
		unit *= 10;
	v = v / unit * unit;
	return v < lo ? lo : v;
}

static void fail_row(const struct bench_row *row, struct row_out *o, const char *msg)
{
	o->failed = 1;
	snprintf(o->msg, sizeof o->msg, "%s", msg);
	fprintf(stderr, "FAILED: %s: %s\n", row->name, msg);
}

/* Chooses the run size of a row; -1 if a calibration run failed. */
static int calibrate(const struct bench_row *row, struct row_out *o)
{
	static struct bench_result res;
	o->secs = row->secs > 0 ? row->secs : TARGET_SECS;
	if (row->mode == MODE_IDLE) {
		o->n = 1;
		if (g_quick)
			o->secs = QUICK_IDLE_SECS;
		return 0;
	}
	if (bench_time_bounded(row)) { /* lasts o->secs; n is only a bound */
		o->n = row->max;
		if (g_quick)
			o->secs = QUICK_B2B_SECS;
		return 0;
	}
	if (g_quick) {
		o->n = row->quick;
		return 0;
	}
	if (row->pace_hz) {
		o->n = (uint64_t)((double)row->pace_hz * o->secs);
		return 0;
	}
	/* grow until one run lasts >= 0.15 s, then aim for the intended length */
	uint64_t n = row->pilot;
	fprintf(stderr, "sizing %-32s ", row->name);
	for (;;) {
		if (bench_run_once(row, n, o->secs, &res) != 0) {
			fprintf(stderr, "\n");
			fail_row(row, o, res.msg);
			return -1;
		}
		fprintf(stderr, "[%llu: %.2f M/s] ", (unsigned long long)res.total, res.rate / 1e6);
		if (res.secs >= 0.15 || n >= row->max)
			break;
		double next = res.rate * 0.15;
		if (next < 2.0 * (double)n)
			next = 2.0 * (double)n;
		if (next > 30.0 * (double)n)
			next = 30.0 * (double)n;
		n = round_count(next, n, row->max);
	}
	o->n = round_count(res.rate * o->secs, row->pilot, row->max);
	fprintf(stderr, "-> %llu\n", (unsigned long long)o->n);
	return 0;
}

static void run_row(const struct bench_row *row, struct row_out *o, int round, int runs)
{
	static struct bench_result res; /* a latency histogram: not on the stack */
	fprintf(stderr, "[%d/%d] %-32s ", round + 1, runs, row->name);
	if (bench_run_once(row, o->n, o->secs, &res) != 0) {
		fprintf(stderr, "\n");
		fail_row(row, o, res.msg);
		return;
	}
	if (o->hist)
		for (unsigned b = 0; b < BENCH_LAT_BUCKETS; b++)
			o->hist[b] += res.lat_hist[b];
	int k = o->nruns++;
	o->ntasks[k] = (double)res.total;
	o->rate[k] = res.rate;
	o->has_futex = res.has_futex;
	o->futex[k] = res.futex_per_task;
	o->p50[k] = res.p50_us;
	o->p99[k] = res.p99_us;
	o->lmax[k] = res.max_us;
	o->cpu[k] = res.idle_cpu_pct;
	o->idle_s[k] = res.idle_secs;
	o->idle_fps[k] = res.idle_futex_per_s;
	switch (row->mode) {
	case MODE_THROUGHPUT:
		fprintf(stderr, "%9.2f M/s", res.rate / 1e6);
		break;
	case MODE_LATENCY:
		fprintf(stderr, "%9.0f /s  p50 %.2f us  p99 %.2f us", res.rate, res.p50_us, res.p99_us);
		break;
	case MODE_IDLE:
		fprintf(stderr, "CPU %.4f%% over %.2f s, %.1f futex calls/s", res.idle_cpu_pct, res.idle_secs,
			res.idle_futex_per_s);
		break;
	}
	if (res.has_futex && row->mode != MODE_IDLE)
		fprintf(stderr, "  futex/task %.4f", res.futex_per_task);
	fprintf(stderr, "\n");
}

static void summarize(struct row_out *o)
{
	int n = o->nruns;
	if (n == 0)
		return;
	o->med = median_of(o->rate, n, &o->min, &o->max);
	o->tasks = (uint64_t)median_of(o->ntasks, n, NULL, NULL);
	o->futex_med = median_of(o->futex, n, NULL, NULL);
	o->p50_med = median_of(o->p50, n, NULL, NULL);
	o->p99_med = median_of(o->p99, n, NULL, NULL);
	median_of(o->lmax, n, NULL, &o->lmax_max);
	o->cpu_med = median_of(o->cpu, n, &o->cpu_min, &o->cpu_max);
	o->idle_s_med = median_of(o->idle_s, n, NULL, NULL);
	o->idle_fps_med = median_of(o->idle_fps, n, NULL, NULL);
}

static int row_ok(size_t i)
{
	return g_out[i].selected && !g_out[i].failed && g_out[i].nruns > 0;
}

/* ---------------------------------------------------------------- machine */

static struct {
	char model[256], kernel[128], clocksource[64], load[64], load_after[64], date[64], date_iso[64];
	int nproc, online;
	double seconds;
	double others_cores, steal_cores; /* average cores used by other processes / stolen by the host; < 0: unknown */
} g_mach;

/* The machine's CPU time (busy, and stolen) from /proc/stat, and ours. */
struct cpu_snap {
	int ok;
	double busy_s, steal_s, ours_s;
};

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void cpu_snap(struct cpu_snap *c)
{
	memset(c, 0, sizeof *c);
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return;
	unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
		   &softirq, &steal) == 8) {
		double hz = (double)sysconf(_SC_CLK_TCK);
		c->busy_s = (double)(user + nice + sys + irq + softirq) / hz;
		c->steal_s = (double)steal / hz;
		c->ok = hz > 0;
	}
	fclose(f);
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	c->ours_s = tv_s(self.ru_utime) + tv_s(self.ru_stime) + tv_s(kids.ru_utime) + tv_s(kids.ru_stime);
}

static void read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void read_loadavg(char *buf, size_t len)
{
	snprintf(buf, len, "?");
	FILE *f = fopen("/proc/loadavg", "r");
	if (!f)
		return;
	double a, b, c;
	if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
	fclose(f);
}

static void machine_read(void)
{
	snprintf(g_mach.model, sizeof g_mach.model, "unknown");
	snprintf(g_mach.kernel, sizeof g_mach.kernel, "unknown");
	snprintf(g_mach.clocksource, sizeof g_mach.clocksource, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "model name", 10) != 0)
				continue;
			char *p = strchr(line, ':');
			if (!p)
				continue;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			p[strcspn(p, "\n")] = 0;
			snprintf(g_mach.model, sizeof g_mach.model, "%s", p);
			break;
		}
		fclose(f);
	}
	g_mach.online = (int)sysconf(_SC_NPROCESSORS_ONLN);
	g_mach.nproc = g_mach.online;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		g_mach.nproc = CPU_COUNT(&set);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(g_mach.kernel, sizeof g_mach.kernel, "%s", u.release);
	read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", g_mach.clocksource,
			sizeof g_mach.clocksource);
	read_loadavg(g_mach.load, sizeof g_mach.load);
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(g_mach.date, sizeof g_mach.date, "%Y-%m-%d %H:%M:%S UTC", &tm);
	strftime(g_mach.date_iso, sizeof g_mach.date_iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#ifdef __clang__
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown compiler"
#endif
#ifdef __OPTIMIZE__
#define OPTIMIZED "optimized"
#else
#define OPTIMIZED "not optimized"
#endif

/* ---------------------------------------------------------------- targets */

enum tkind {
	T_RATIO,   /* median(a) / median(b) >= need */
	T_FUTEX,   /* futex calls per task of a <= need */
	T_IDLE,    /* CPU % of the idle consumer <= need */
	T_LAT_VS,  /* p50 of a <= p50 of b */
	T_LAT_ABS, /* p50 of a <= need us */
	T_ABS,     /* median(a) >= need M/s */
};

struct target {
	enum tkind kind;
	int a, b;
	double need;
	int group; /* 0: this milestone; 1: the previous one (absolute, machine-dependent) */
};

struct tresult {
	char what[128], value[64], need[48];
	double v; /* NAN: not measured */
	int pass; /* 1, 0, -1: n/a (a row failed) */
	int shown;
};

#define MAX_TARGETS 48
static struct target g_targets[MAX_TARGETS];
static int g_ntargets;

static void add_target(enum tkind kind, int a, int b, double need, int group)
{
	if (g_ntargets < MAX_TARGETS)
		g_targets[g_ntargets++] = (struct target){kind, a, b, need, group};
}

static void build_targets(void)
{
	add_target(T_RATIO, R_B64, R_PIPE64, 2.0, 0);
	add_target(T_RATIO, R_B64, R_SPSC, 0.25, 0);
	add_target(T_RATIO, R_B64INTS, R_PIPE64, 2.0, 0);
	add_target(T_RATIO, R_B64INTS, R_SPSC, 0.25, 0);
	add_target(T_RATIO, R_JSON, R_PIPE64_100, 2.0, 0);
	add_target(T_RATIO, R_B1, R_PIPE1, 10.0, 0);
	add_target(T_RATIO, R_B1, R_SEED, 3.0, 0);
	add_target(T_RATIO, R_B1AHEAD, R_PIPE1, 10.0, 0);
	add_target(T_RATIO, R_B1AHEAD, R_SEED, 3.0, 0);
	add_target(T_RATIO, R_4TO4, R_B64, 0.5, 0);
	add_target(T_RATIO, R_1TO8, R_B64, 0.5, 0);
	/* A back-to-back stats reader slows a 1,000,000-task queue by at most
	 * 10%: against the control (a third thread as busy that reads
	 * nothing), since three busy threads share two cores here whatever
	 * they do. */
	add_target(T_RATIO, R_STATSLOOP_1M, R_SPINLOOP_1M, 0.9, 0);
	for (int i = 0; i < NROWS; i++)
		if (g_rows[i].impl == IMPL_TASKQ && g_rows[i].mode == MODE_THROUGHPUT)
			add_target(T_FUTEX, i, 0, 0.01, 0);
	add_target(T_IDLE, R_IDLE, 0, 0.1, 0);
	add_target(T_LAT_VS, R_LAT_TQ_PACED, R_LAT_PIPE_PACED, 0, 0);
	add_target(T_LAT_ABS, R_LAT_TQ_LOAD, 0, 2.0, 0);
	/* the previous milestone's */
	add_target(T_ABS, R_B64, 0, 100, 1);
	add_target(T_RATIO, R_B64, R_SEED, 50, 1);
	add_target(T_ABS, R_B1, 0, 10, 1);
	add_target(T_ABS, R_1TO4, 0, 1, 1);
	add_target(T_ABS, R_4TO4, 0, 1, 1);
	add_target(T_ABS, R_1TO8, 0, 20, 1);
	add_target(T_ABS, R_JSON, 0, 20, 1);
}

static void eval_target(const struct target *t, struct tresult *r)
{
	const struct row_out *a = &g_out[t->a], *b = &g_out[t->b];
	const char *an = g_rows[t->a].name, *bn = g_rows[t->b].name;
	int two = t->kind == T_RATIO || t->kind == T_LAT_VS;
	int have = row_ok((size_t)t->a) && (!two || row_ok((size_t)t->b));
	r->v = NAN;
	r->pass = -1;
	r->shown = a->selected && (!two || b->selected); /* --only: targets of other rows are left out */
	switch (t->kind) {
	case T_RATIO:
		snprintf(r->what, sizeof r->what, "%s / %s", an, bn);
		snprintf(r->need, sizeof r->need, ">= %gx", t->need);
		if (have && b->med > 0) {
			r->v = a->med / b->med;
			snprintf(r->value, sizeof r->value, "%.2fx", r->v);
			r->pass = r->v >= t->need;
		}
		break;
	case T_FUTEX:
		snprintf(r->what, sizeof r->what, "futex calls per task, %s", an);
		snprintf(r->need, sizeof r->need, "<= %g", t->need);
		if (have) {
			r->v = a->futex_med;
			snprintf(r->value, sizeof r->value, "%.4f", r->v);
			r->pass = r->v <= t->need;
		}
		break;
	case T_IDLE:
		snprintf(r->what, sizeof r->what, "idle consumer, %% of one CPU");
		snprintf(r->need, sizeof r->need, "<= %g%%", t->need);
		if (have) {
			r->v = a->cpu_med;
			snprintf(r->value, sizeof r->value, "%.4f%%", r->v);
			r->pass = r->v <= t->need;
		}
		break;
	case T_LAT_VS:
		snprintf(r->what, sizeof r->what, "p50 at 10k/s: taskq vs pipe (us)");
		snprintf(r->need, sizeof r->need, "taskq <= pipe");
		if (have) {
			r->v = a->p50_med;
			snprintf(r->value, sizeof r->value, "%.2f vs %.2f", a->p50_med, b->p50_med);
			r->pass = a->p50_med <= b->p50_med;
		}
		break;
	case T_LAT_ABS:
		snprintf(r->what, sizeof r->what, "p50 under full load: %s (us)", an);
		snprintf(r->need, sizeof r->need, "<= %g us", t->need);
		if (have) {
			r->v = a->p50_med;
			snprintf(r->value, sizeof r->value, "%.2f", r->v);
			r->pass = r->v <= t->need;
		}
		break;
	case T_ABS:
		snprintf(r->what, sizeof r->what, "%s (M tasks/s)", an);
		snprintf(r->need, sizeof r->need, ">= %g M/s", t->need);
		if (have) {
			r->v = a->med / 1e6;
			snprintf(r->value, sizeof r->value, "%.2f", r->v);
			r->pass = r->v >= t->need;
		}
		break;
	}
	if (r->pass < 0)
		snprintf(r->value, sizeof r->value, "n/a");
}

static const char *pass_text(int pass)
{
	return pass < 0 ? "n/a" : pass ? "PASS" : "MISS";
}

/* ----------------------------------------------------------------- report */

static void print_ratio(size_t a, size_t b)
{
	static int header;
	if (!row_ok(a) || !row_ok(b) || g_out[b].med <= 0)
		return;
	if (!header++)
		printf("\nother ratios\n");
	printf("  %-32s / %-32s %8.2fx\n", g_rows[a].name, g_rows[b].name, g_out[a].med / g_out[b].med);
}

static void print_report(int runs)
{
	printf("taskq-bench, %s (%.0f s)\n", g_mach.date, g_mach.seconds);
	printf("machine: %s | %d cores (%d online) | kernel %s | clocksource %s\n", g_mach.model, g_mach.nproc,
	       g_mach.online, g_mach.kernel, g_mach.clocksource);
	printf("load:    average %s before the bench, %s after", g_mach.load, g_mach.load_after);
	if (g_mach.others_cores >= 0)
		printf("; other processes used %.2f cores on average meanwhile, the host stole %.2f",
		       g_mach.others_cores, g_mach.steal_cores);
	printf("\n");
	printf("build:   %s, %s\n", COMPILER, OPTIMIZED);
	if (g_quick)
		printf("method:  --quick: 1 small run per row (a smoke test, not a measurement)\n");
	else
		printf("method:  %d runs per row (throughput ~%.1f s each), rows interleaved run by run; medians\n", runs,
		       TARGET_SECS);
	printf("         separate processes (fork); every run checks every task arrived exactly once;\n"
	       "         taskq rows: leases on, every task acked, queue counters checked\n");

	int header = 0;
	for (size_t i = 0; i < NROWS; i++) {
		const struct row_out *o = &g_out[i];
		if (!o->selected || g_rows[i].mode != MODE_THROUGHPUT)
			continue;
		if (!header++) {
			printf("\n%-32s %10s %9s %9s %9s %8s\n", "throughput", "tasks/run", "median", "min", "max",
			       "futex");
			printf("%-32s %10s %9s %9s %9s %8s\n", "", "", "M/s", "M/s", "M/s", "/task");
		}
		if (!row_ok(i)) {
			printf("%-32s %10s %9s\n", g_rows[i].name, "-", "FAILED");
			continue;
		}
		char fx[32] = "-";
		if (o->has_futex)
			snprintf(fx, sizeof fx, "%.4f", o->futex_med);
		printf("%-32s %10llu %9.2f %9.2f %9.2f %8s\n", g_rows[i].name, (unsigned long long)o->tasks,
		       o->med / 1e6, o->min / 1e6, o->max / 1e6, fx);
	}

	int any_lat = 0;
	for (size_t i = 0; i < NROWS; i++)
		any_lat |= g_out[i].selected && g_rows[i].mode == MODE_LATENCY;
	if (any_lat) {
		printf("\n%-32s %10s %9s %9s %9s %9s %8s\n", "latency: push to take", "tasks/run", "rate", "p50", "p99",
		       "max", "futex");
		printf("%-32s %10s %9s %9s %9s %9s %8s\n", "one task per call, 1->1", "", "tasks/s", "us", "us", "us",
		       "/task");
		for (size_t i = 0; i < NROWS; i++) {
			const struct row_out *o = &g_out[i];
			if (!o->selected || g_rows[i].mode != MODE_LATENCY)
				continue;
			if (!row_ok(i)) {
				printf("%-32s %10s %9s\n", g_rows[i].name, "-", "FAILED");
				continue;
			}
			char fx[32] = "-";
			if (o->has_futex)
				snprintf(fx, sizeof fx, "%.4f", o->futex_med);
			printf("%-32s %10llu %9.0f %9.2f %9.2f %9.1f %8s\n", g_rows[i].name,
			       (unsigned long long)o->tasks, o->med, o->p50_med, o->p99_med, o->lmax_max, fx);
		}
		printf("  10k/s: the producer sleeps until each task is due, the consumer waits idle in between\n"
		       "  (tq_take with a timeout / a blocking read). full load: each task is pushed as soon as the\n"
		       "  previous one was taken (one in flight, back to back). p50 / p99: medians over the runs;\n"
		       "  max: the largest of any run.\n");
	}

	if (g_out[R_IDLE].selected) {
		const struct row_out *o = &g_out[R_IDLE];
		printf("\nidle: a taskq consumer blocked in tq_take on an empty queue\n");
		if (!row_ok(R_IDLE))
			printf("  %s: FAILED\n", g_rows[R_IDLE].name);
		else
			printf("  %s: %.4f%% of one CPU (min %.4f, max %.4f) over %.2f s waits (getrusage user + "
			       "system), %.1f futex calls/s\n",
			       g_rows[R_IDLE].name, o->cpu_med, o->cpu_min, o->cpu_max, o->idle_s_med, o->idle_fps_med);
	}

	struct tresult tr;
	int npass = 0, nmiss = 0, nna = 0;
	printf("\ntargets (ratios of medians of this run)\n");
	for (int g = 0; g < 2; g++) {
		int shown = 0;
		for (int i = 0; i < g_ntargets; i++) {
			if (g_targets[i].group != g)
				continue;
			eval_target(&g_targets[i], &tr);
			if (!tr.shown)
				continue;
			if (g == 1 && !shown++)
				printf("previous milestone (absolute, machine-dependent)\n");
			if (g == 0) {
				npass += tr.pass == 1;
				nmiss += tr.pass == 0;
				nna += tr.pass < 0;
			}
			printf("  %-68s %14s  %-13s %s\n", tr.what, tr.value, tr.need, pass_text(tr.pass));
		}
		if (g == 0)
			printf("  this milestone: %d PASS, %d MISS%s\n", npass, nmiss, nna ? ", some n/a (failed rows)" : "");
	}

	print_ratio(R_B64INTS, R_B64);
	print_ratio(R_B1LATER, R_PIPE1);
	print_ratio(R_B1LATER, R_B1AHEAD);
	print_ratio(R_B64, R_SEED);
	print_ratio(R_B64, R_SEQPACKET64);
	print_ratio(R_B64, R_MQ64);
	print_ratio(R_B64, R_MQ1);
	print_ratio(R_JSON, R_SPSC100);
	print_ratio(R_PIPE64, R_SPSC);
	print_ratio(R_STATS10, R_B64);
	print_ratio(R_STATSLOOP, R_B64);
	print_ratio(R_SPINLOOP, R_B64);
	print_ratio(R_STATSLOOP, R_SPINLOOP);
	print_ratio(R_B64_1M, R_B64);
	print_ratio(R_STATSLOOP_1M, R_B64_1M);
	print_ratio(R_SPINLOOP_1M, R_B64_1M);

	int bad = 0;
	for (size_t i = 0; i < NROWS; i++)
		bad |= g_out[i].failed;
	if (bad) {
		printf("\nFAILED rows (a task lost, duplicated or corrupted, or a process crashed or hung):\n");
		for (size_t i = 0; i < NROWS; i++)
			if (g_out[i].failed)
				printf("  %s: %s\n", g_rows[i].name, g_out[i].msg);
	}
}

/* ------------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

static void json_runs(FILE *f, const char *key, const double *v, int n, double scale)
{
	fprintf(f, ", \"%s\": [", key);
	for (int i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		json_num(f, v[i] * scale);
	}
	fputc(']', f);
}

static const char *impl_name(enum bench_impl impl)
{
	switch (impl) {
	case IMPL_TASKQ:
	case IMPL_TASKQ_LAT:
	case IMPL_TASKQ_IDLE:
		return "taskq";
	case IMPL_PIPE:
	case IMPL_PIPE_LAT:
		return "pipe";
	case IMPL_MQ:
		return "posix_mq";
	case IMPL_SEED:
		return "seed_classic";
	case IMPL_SPSC:
		return "spsc_ring";
	case IMPL_SEQPACKET:
		return "unix_seqpacket";
	}
	return "?";
}

static int write_json(const char *path, int runs, int bad)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "taskq-bench: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"tool\": \"taskq-bench\",\n  \"date_utc\": ");
	json_str(f, g_mach.date_iso);
	fprintf(f, ",\n  \"seconds\": %.1f,\n  \"quick\": %s,\n  \"runs_per_row\": %d,\n", g_mach.seconds,
		g_quick ? "true" : "false", runs);
	fprintf(f, "  \"machine\": {\"cpu\": ");
	json_str(f, g_mach.model);
	fprintf(f, ", \"cores\": %d, \"online\": %d, \"kernel\": ", g_mach.nproc, g_mach.online);
	json_str(f, g_mach.kernel);
	fprintf(f, ", \"clocksource\": ");
	json_str(f, g_mach.clocksource);
	fprintf(f, ", \"loadavg_before\": ");
	json_str(f, g_mach.load);
	fprintf(f, ", \"loadavg_after\": ");
	json_str(f, g_mach.load_after);
	fprintf(f, ", \"other_processes_cores\": ");
	json_num(f, g_mach.others_cores >= 0 ? g_mach.others_cores : NAN);
	fprintf(f, ", \"steal_cores\": ");
	json_num(f, g_mach.others_cores >= 0 ? g_mach.steal_cores : NAN);
	fprintf(f, ", \"compiler\": ");
	json_str(f, COMPILER);
	fprintf(f, "},\n  \"rows\": [");
	int first = 1;
	for (size_t i = 0; i < NROWS; i++) {
		const struct bench_row *row = &g_rows[i];
		const struct row_out *o = &g_out[i];
		if (!o->selected)
			continue;
		fprintf(f, "%s\n    {\"name\": ", first ? "" : ",");
		first = 0;
		json_str(f, row->name);
		static const char *const modes[] = {"throughput", "latency", "idle"};
		fprintf(f, ", \"mode\": \"%s\", \"impl\": \"%s\", \"producers\": %d, \"consumers\": %d, \"batch\": %u, "
			   "\"task_bytes\": %u, \"ok\": %s",
			modes[row->mode], impl_name(row->impl), row->nprod, row->ncons, row->batch,
			row->size ? row->size : 8, row_ok(i) ? "true" : "false");
		if (o->failed) {
			fprintf(f, ", \"error\": ");
			json_str(f, o->msg);
		}
		if (row_ok(i)) {
			fprintf(f, ", \"tasks_per_run\": %llu", (unsigned long long)o->tasks);
			if (row->mode == MODE_THROUGHPUT) {
				fprintf(f, ", \"median_tasks_per_s\": ");
				json_num(f, o->med);
				fprintf(f, ", \"min_tasks_per_s\": ");
				json_num(f, o->min);
				fprintf(f, ", \"max_tasks_per_s\": ");
				json_num(f, o->max);
				json_runs(f, "runs_tasks_per_s", o->rate, o->nruns, 1);
			} else if (row->mode == MODE_LATENCY) {
				fprintf(f, ", \"pace_per_s\": %u, \"rate_per_s\": ", row->pace_hz);
				json_num(f, o->med);
				fprintf(f, ", \"p50_us\": ");
				json_num(f, o->p50_med);
				fprintf(f, ", \"p99_us\": ");
				json_num(f, o->p99_med);
				fprintf(f, ", \"max_us\": ");
				json_num(f, o->lmax_max);
				json_runs(f, "runs_p50_us", o->p50, o->nruns, 1);
				json_runs(f, "runs_p99_us", o->p99, o->nruns, 1);
			} else {
				fprintf(f, ", \"wait_s\": ");
				json_num(f, o->idle_s_med);
				fprintf(f, ", \"cpu_percent\": ");
				json_num(f, o->cpu_med);
				fprintf(f, ", \"futex_calls_per_s\": ");
				json_num(f, o->idle_fps_med);
				json_runs(f, "runs_cpu_percent", o->cpu, o->nruns, 1);
			}
			if (o->has_futex && row->mode != MODE_IDLE) {
				fprintf(f, ", \"futex_per_task\": ");
				json_num(f, o->futex_med);
			}
		}
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"targets\": [");
	struct tresult tr;
	first = 1;
	for (int i = 0; i < g_ntargets; i++) {
		eval_target(&g_targets[i], &tr);
		if (!tr.shown)
			continue;
		fprintf(f, "%s\n    {\"target\": ", first ? "" : ",");
		first = 0;
		json_str(f, tr.what);
		fprintf(f, ", \"milestone\": \"%s\", \"value\": ", g_targets[i].group ? "previous" : "current");
		json_num(f, tr.v);
		fprintf(f, ", \"need\": ");
		json_str(f, tr.need);
		fprintf(f, ", \"pass\": %s}", tr.pass < 0 ? "null" : tr.pass ? "true" : "false");
	}
	fprintf(f, "\n  ],\n  \"ok\": %s\n}\n", bad ? "false" : "true");
	if (fclose(f) != 0) {
		fprintf(stderr, "taskq-bench: writing %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ batch sweep */

/* taskq int 1->1 and, as the baseline, the pipe with as many 8-byte tasks
 * per write, at each of these batch sizes: throughput against batch size. */
static const unsigned g_sweep_batches[] = {1, 4, 16, 64, 256};
#define NSWEEP_BATCHES (sizeof g_sweep_batches / sizeof g_sweep_batches[0])
#define NSWEEP (2 * NSWEEP_BATCHES) /* taskq at [b], the pipe at [NSWEEP_BATCHES + b] */
#define SWEEP_RUNS 3
#define SWEEP_SECS 0.3
static struct bench_row g_sweep_rows[NSWEEP];
static struct row_out g_sweep_out[NSWEEP];
static char g_sweep_names[NSWEEP][48];

static void sweep_build(void)
{
	for (size_t b = 0; b < NSWEEP_BATCHES; b++) {
		unsigned n = g_sweep_batches[b];
		size_t t = b, p = NSWEEP_BATCHES + b;
		snprintf(g_sweep_names[t], sizeof g_sweep_names[t], "sweep taskq int 1->1 batch %u", n);
		snprintf(g_sweep_names[p], sizeof g_sweep_names[p], "sweep pipe %u tasks per write", n);
		g_sweep_rows[t] = (struct bench_row)TPUT(g_sweep_names[t], IMPL_TASKQ, 1, 1, n, 8, 0, 200000, 20000,
							 150 * M, 0);
		g_sweep_rows[p] = (struct bench_row)TPUT(g_sweep_names[p], IMPL_PIPE, 1, 1, n, 8, 0, 50000, 20000,
							 200 * M, 0);
		g_sweep_rows[t].secs = g_sweep_rows[p].secs = SWEEP_SECS;
		g_sweep_out[t].selected = g_sweep_out[p].selected = 1;
	}
}

static void print_sweep(void)
{
	printf("\nbatch sweep: tasks per call, 1->1, 8-byte tasks (%s)\n", g_quick ? "1 small run" : "medians of 3 runs");
	printf("  %-8s %14s %14s %10s\n", "batch", "taskq M/s", "pipe M/s", "ratio");
	for (size_t b = 0; b < NSWEEP_BATCHES; b++) {
		const struct row_out *t = &g_sweep_out[b], *p = &g_sweep_out[NSWEEP_BATCHES + b];
		char tv[32] = "FAILED", pv[32] = "FAILED", ratio[32] = "-";
		if (!t->failed && t->nruns)
			snprintf(tv, sizeof tv, "%.2f", t->med / 1e6);
		if (!p->failed && p->nruns)
			snprintf(pv, sizeof pv, "%.2f", p->med / 1e6);
		if (!t->failed && t->nruns && !p->failed && p->nruns && p->med > 0)
			snprintf(ratio, sizeof ratio, "%.2fx", t->med / p->med);
		printf("  %-8u %14s %14s %10s\n", g_sweep_batches[b], tv, pv, ratio);
	}
}

/* -------------------------------------------------------------------- CSV */

/* A CSV field (RFC 4180): quoted if it holds a comma, a quote or a newline. */
static void csv_str(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
}

static FILE *csv_open(const char *dir, const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "taskq-bench: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

static int csv_close(FILE *f, const char *path)
{
	if (fclose(f) != 0) {
		fprintf(stderr, "taskq-bench: writing %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The CSV files in dir (main made it), each with a header line:
 *   run.csv         key,value: when, where, how (date_utc, cpu, cores, ...)
 *   throughput.csv  every throughput row of the table: taskq's and the
 *                   baselines' (kind), medians, minima, maxima (tasks/s)
 *   batch.csv       the batch sweep: batch,taskq_tasks_per_s,pipe_tasks_per_s
 *                   (medians; empty where a row failed)
 *   latency.csv     each latency row's push-to-take distribution over all its
 *                   runs: row,latency_us,fraction (the share of tasks taken
 *                   within latency_us, at each histogram bucket's midpoint)
 * Returns 0, or -1 after a message.
 */
static int write_csv(const char *dir)
{
	char path[4200];
	FILE *f;
	int rc = 0;

	if (!(f = csv_open(dir, "run.csv", path, sizeof path)))
		return -1;
	fprintf(f, "key,value\ndate_utc,%s\ncpu,", g_mach.date_iso);
	csv_str(f, g_mach.model);
	fprintf(f, "\ncores,%d\nkernel,", g_mach.nproc);
	csv_str(f, g_mach.kernel);
	fprintf(f, "\nquick,%d\nseconds,%.1f\n", g_quick, g_mach.seconds);
	rc |= csv_close(f, path);

	if (!(f = csv_open(dir, "throughput.csv", path, sizeof path)))
		return -1;
	fprintf(f, "row,impl,kind,producers,consumers,batch,task_bytes,median_tasks_per_s,min_tasks_per_s,"
		   "max_tasks_per_s\n");
	for (size_t i = 0; i < NROWS; i++) {
		const struct bench_row *row = &g_rows[i];
		const struct row_out *o = &g_out[i];
		if (row->mode != MODE_THROUGHPUT || !row_ok(i))
			continue;
		csv_str(f, row->name);
		fprintf(f, ",%s,%s,%d,%d,%u,%u,", impl_name(row->impl), row->impl == IMPL_TASKQ ? "taskq" : "baseline",
			row->nprod, row->ncons, row->batch, row->size ? row->size : 8);
		csv_num(f, o->med);
		fputc(',', f);
		csv_num(f, o->min);
		fputc(',', f);
		csv_num(f, o->max);
		fputc('\n', f);
	}
	rc |= csv_close(f, path);

	if (!(f = csv_open(dir, "batch.csv", path, sizeof path)))
		return -1;
	fprintf(f, "batch,taskq_tasks_per_s,pipe_tasks_per_s\n");
	for (size_t b = 0; b < NSWEEP_BATCHES; b++) {
		const struct row_out *t = &g_sweep_out[b], *p = &g_sweep_out[NSWEEP_BATCHES + b];
		fprintf(f, "%u,", g_sweep_batches[b]);
		csv_num(f, !t->failed && t->nruns ? t->med : NAN);
		fputc(',', f);
		csv_num(f, !p->failed && p->nruns ? p->med : NAN);
		fputc('\n', f);
	}
	rc |= csv_close(f, path);

	if (!(f = csv_open(dir, "latency.csv", path, sizeof path)))
		return -1;
	fprintf(f, "row,latency_us,fraction\n");
	for (size_t i = 0; i < NROWS; i++) {
		const struct row_out *o = &g_out[i];
		if (g_rows[i].mode != MODE_LATENCY || !row_ok(i) || !o->hist)
			continue;
		uint64_t total = 0, seen = 0;
		for (unsigned b = 0; b < BENCH_LAT_BUCKETS; b++)
			total += o->hist[b];
		for (unsigned b = 0; b < BENCH_LAT_BUCKETS && total; b++) {
			if (!o->hist[b])
				continue;
			seen += o->hist[b];
			csv_str(f, g_rows[i].name);
			fprintf(f, ",%.4f,%.6f\n", bench_lat_value(b) / 1e3, (double)seen / (double)total);
		}
	}
	rc |= csv_close(f, path);
	return rc ? -1 : 0;
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f, "usage: taskq-bench [--quick] [--only NAME] [--json FILE] [--csv DIR]\nrows:\n");
	for (size_t i = 0; i < NROWS; i++)
		fprintf(f, "  %s\n", g_rows[i].name);
	fprintf(f, "and, alone: --only wedge (the seed's ring and taskq, a consumer killed holding its lock)\n"
		   "           --only due (delayed tasks: how late after their due time, 10,000 and 1,000,000 slots)\n"
		   "--csv DIR: also the batch sweep (taskq int 1->1 and the pipe, 1, 4, 16, 64 and 256\n"
		   "tasks per call), and CSV files of everything in DIR (made if missing) for\n"
		   "scripts/bench-plots.sh\n");
}

int main(int argc, char **argv)
{
	const char *only = NULL, *json = NULL, *csv = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			g_quick = 1;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strncmp(argv[i], "--only=", 7) == 0) {
			only = argv[i] + 7;
		} else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
			json = argv[++i];
		} else if (strncmp(argv[i], "--json=", 7) == 0) {
			json = argv[i] + 7;
		} else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
			csv = argv[++i];
		} else if (strncmp(argv[i], "--csv=", 6) == 0) {
			csv = argv[i] + 6;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "taskq-bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	/* The modes that run alone, with a report of their own. */
	static const struct {
		const char *name;
		int (*run)(void);
	} alone[] = {{"due", bench_due_run}, {"wedge", bench_wedge_run}};
	for (size_t i = 0; only && i < sizeof alone / sizeof alone[0]; i++) {
		if (strcmp(only, alone[i].name) != 0)
			continue;
		if (json || csv) {
			fprintf(stderr, "taskq-bench: --only %s writes no JSON or CSV\n", alone[i].name);
			return 2;
		}
		bench_install_handlers();
		bench_cleanup_leftovers();
		setvbuf(stdout, NULL, _IOLBF, 0);
		return alone[i].run();
	}
	/* --only: the row of that exact name, else every row whose name contains it */
	int nsel = 0;
	for (size_t i = 0; i < NROWS; i++) {
		g_out[i].selected = !only || strcmp(g_rows[i].name, only) == 0;
		nsel += g_out[i].selected;
	}
	if (only && nsel == 0)
		for (size_t i = 0; i < NROWS; i++) {
			g_out[i].selected = strcasestr(g_rows[i].name, only) != NULL;
			nsel += g_out[i].selected;
		}
	if (nsel == 0) {
		fprintf(stderr, "taskq-bench: --only '%s' matches no row\n", only);
		usage(stderr);
		return 2;
	}

	/* the CSV directory before the runs, not after */
	if (csv && mkdir(csv, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "taskq-bench: --csv: cannot make %s: %s\n", csv, strerror(errno));
		return 2;
	}
	machine_read();
	build_targets();
	bench_rec_init();
	bench_install_handlers();
	bench_cleanup_leftovers();
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t t_start = bench_now_ns();
	struct cpu_snap c0, c1;
	cpu_snap(&c0);
	int runs = g_quick ? 1 : RUNS;

	for (size_t i = 0; i < NROWS; i++) {
		if (csv && g_rows[i].mode == MODE_LATENCY && !(g_out[i].hist = calloc(BENCH_LAT_BUCKETS, sizeof(uint64_t)))) {
			fprintf(stderr, "taskq-bench: out of memory\n");
			return 1;
		}
		if (g_out[i].selected)
			calibrate(&g_rows[i], &g_out[i]);
	}
	for (int k = 0; k < runs; k++)
		for (size_t i = 0; i < NROWS; i++)
			if (g_out[i].selected && !g_out[i].failed)
				run_row(&g_rows[i], &g_out[i], k, runs);
	for (size_t i = 0; i < NROWS; i++)
		summarize(&g_out[i]);
	/* The batch sweep: its own rows, in rounds of their own, after the table's. */
	int sweep_runs = g_quick ? 1 : SWEEP_RUNS;
	if (csv) {
		sweep_build();
		for (size_t i = 0; i < NSWEEP; i++)
			calibrate(&g_sweep_rows[i], &g_sweep_out[i]);
		for (int k = 0; k < sweep_runs; k++)
			for (size_t i = 0; i < NSWEEP; i++)
				if (!g_sweep_out[i].failed)
					run_row(&g_sweep_rows[i], &g_sweep_out[i], k, sweep_runs);
		for (size_t i = 0; i < NSWEEP; i++)
			summarize(&g_sweep_out[i]);
	}
	g_mach.seconds = (double)(bench_now_ns() - t_start) / 1e9;
	cpu_snap(&c1);
	g_mach.others_cores = -1;
	if (c0.ok && c1.ok && g_mach.seconds > 0) {
		double others = (c1.busy_s - c0.busy_s) - (c1.ours_s - c0.ours_s);
		g_mach.others_cores = (others > 0 ? others : 0) / g_mach.seconds;
		g_mach.steal_cores = (c1.steal_s - c0.steal_s) / g_mach.seconds;
	}
	read_loadavg(g_mach.load_after, sizeof g_mach.load_after);

	fprintf(stderr, "\n");
	print_report(runs);
	int bad = 0;
	for (size_t i = 0; i < NROWS; i++)
		bad |= g_out[i].failed;
	if (csv) {
		print_sweep();
		for (size_t i = 0; i < NSWEEP; i++)
			bad |= g_sweep_out[i].failed;
	}
	int json_rc = json ? write_json(json, runs, bad) : 0;
	int csv_rc = csv ? write_csv(csv) : 0;
	for (size_t i = 0; i < NROWS; i++)
		free(g_out[i].hist);
	if (bad)
		return 1;
	return json_rc != 0 || csv_rc != 0 ? 2 : 0;
}
