/*
 * main.c - the taskq benchmark driver: the rows, run sizing, the table.
 *
 *   taskq-bench              every row, 3 runs each of ~0.6 s, median
 *   taskq-bench --quick      small counts, 1 run each
 *   taskq-bench --only NAME  one row (exact name, or a unique substring)
 *
 * Exit status: 0, or 1 when a run lost, duplicated or corrupted a task (or a
 * child crashed or hung); a missed performance target does not count.
 */
#include "bench.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <unistd.h>

#define RUNS 3
#define TARGET_SECS 0.6 /* a run's intended length */
#define SEED_FACTOR 50.0

#define M 1000000ull
static const struct bench_row g_rows[] = {
	{"taskq int 1->1 batch 64", IMPL_TASKQ, 1, 1, 64, 0, 100e6, 1, 1 * M, 200000, 150 * M, 0},
	{"taskq int 1->1 batch 1", IMPL_TASKQ, 1, 1, 1, 0, 10e6, 0, 200000, 100000, 60 * M, 0},
	{"taskq int 1->4 batch 64", IMPL_TASKQ, 1, 4, 64, 0, 1e6, 0, 1 * M, 200000, 100 * M, 0},
	{"taskq int 4->4 batch 64", IMPL_TASKQ, 4, 4, 64, 0, 1e6, 0, 1 * M, 200000, 100 * M, 0},
	{"taskq int 1->8 batch 64", IMPL_TASKQ, 1, 8, 64, 0, 20e6, 0, 1 * M, 200000, 100 * M, 0},
	{"taskq json100 1->1 batch 64", IMPL_TASKQ, 1, 1, 64, 1, 20e6, 0, 1 * M, 200000, 100 * M, 0},
	{"taskq int 1->1 b64 +stats 10/s", IMPL_TASKQ, 1, 1, 64, 0, 1e6, 0, 1 * M, 200000, 150 * M, 10},
	{"taskq int 1->1 b64 +stats loop", IMPL_TASKQ, 1, 1, 64, 0, 1e6, 0, 1 * M, 200000, 150 * M, -1},
	{"pipe one task per write", IMPL_PIPE, 1, 1, 1, 0, 0, 0, 50000, 20000, 20 * M, 0},
	{"pipe 64 tasks per write", IMPL_PIPE, 1, 1, 64, 0, 0, 0, 200000, 50000, 200 * M, 0},
	{"posix mq one task per message", IMPL_MQ, 1, 1, 1, 0, 0, 0, 50000, 20000, 20 * M, 0},
	{"seed classic", IMPL_SEED, 1, 1, 1, 0, 0, 0, 50000, 20000, 20 * M, 0},
};
#define NROWS (sizeof g_rows / sizeof g_rows[0])

enum { ROW_B64 = 0, ROW_STATS10 = 6, ROW_STATSLOOP = 7, ROW_PIPE64 = 9, ROW_MQ = 10, ROW_SEED = 11 };

struct row_out {
	int ran, failed;
	uint64_t tasks;
	double median, min, max, secs; /* rates in tasks/s; secs of the median run */
	char msg[512];
};

static struct row_out g_out[NROWS];
static int g_quick;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
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

static void measure(size_t idx)
{
	const struct bench_row *row = &g_rows[idx];
	struct row_out *o = &g_out[idx];
	struct bench_result res;
	uint64_t n = g_quick ? row->quick : row->pilot;
	int runs = g_quick ? 1 : RUNS;
	o->ran = 1;
	fprintf(stderr, "%-30s ", row->name);

	if (!g_quick) {
		/* size the runs: grow until one lasts >= 0.15 s, then aim for TARGET_SECS */
		for (;;) {
			if (bench_run_once(row, n, &res) != 0)
				goto failed;
			fprintf(stderr, "[%llu: %.1f M/s] ", (unsigned long long)res.total, res.rate / 1e6);
			if (res.secs >= 0.15 || n >= row->max)
				break;
			double next = res.rate * 0.15;
			if (next < 2.0 * (double)n)
				next = 2.0 * (double)n;
			if (next > 30.0 * (double)n)
				next = 30.0 * (double)n;
			n = round_count(next, n, row->max);
		}
		n = round_count(res.rate * TARGET_SECS, row->pilot, row->max);
	}

	double rates[RUNS], secs[RUNS];
	for (int i = 0; i < runs; i++) {
		if (bench_run_once(row, n, &res) != 0)
			goto failed;
		rates[i] = res.rate;
		secs[i] = res.secs;
		o->tasks = res.total;
		fprintf(stderr, "%.1f ", res.rate / 1e6);
	}
	double sorted[RUNS];
	memcpy(sorted, rates, sizeof(double) * (size_t)runs);
	qsort(sorted, (size_t)runs, sizeof(double), cmp_double);
	o->min = sorted[0];
	o->max = sorted[runs - 1];
	o->median = sorted[runs / 2];
	for (int i = 0; i < runs; i++)
		if (rates[i] == o->median)
			o->secs = secs[i];
	fprintf(stderr, "M/s\n");
	return;
failed:
	o->failed = 1;
	snprintf(o->msg, sizeof o->msg, "%s", res.msg);
	fprintf(stderr, "\nFAILED: %s: %s\n", row->name, res.msg);
}

static char g_load_at_start[64] = "?";

static void read_loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	if (!f)
		return;
	double a, b, c;
	if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(g_load_at_start, sizeof g_load_at_start, "%.2f %.2f %.2f", a, b, c);
	fclose(f);
}

static void machine_line(void)
{
	char model[256] = "unknown";
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
			snprintf(model, sizeof model, "%s", p);
			break;
		}
		fclose(f);
	}
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		ncpu = CPU_COUNT(&set);
	struct utsname u;
	const char *rel = uname(&u) == 0 ? u.release : "unknown";
	printf("machine: %s | nproc %d | kernel %s | load average before the bench: %s\n", model, ncpu,
	       rel, g_load_at_start);
}

static const char *target_text(size_t i, char *buf, size_t len)
{
	const struct bench_row *row = &g_rows[i];
	const struct row_out *o = &g_out[i];
	if (row->target_mps <= 0 && !row->vs_seed)
		return "-";
	if (o->failed)
		return "FAILED";
	int pass = o->median >= row->target_mps;
	char extra[64] = "";
	if (row->vs_seed) {
		const struct row_out *s = &g_out[ROW_SEED];
		if (s->ran && !s->failed && s->median > 0) {
			pass = pass && o->median >= SEED_FACTOR * s->median;
			snprintf(extra, sizeof extra, ", >=%.0fx seed", SEED_FACTOR);
		} else {
			snprintf(extra, sizeof extra, "; seed n/a");
		}
	}
	snprintf(buf, len, "%s (>=%g M/s%s)", pass ? "pass" : "MISS", row->target_mps / 1e6, extra);
	return buf;
}

static void ratio_line(size_t base, size_t other, double need)
{
	const struct row_out *a = &g_out[base], *b = &g_out[other];
	printf("  / %-30s ", g_rows[other].name);
	if (!a->ran || a->failed || !b->ran || b->failed || b->median <= 0) {
		printf("n/a\n");
		return;
	}
	double x = a->median / b->median;
	if (need > 0)
		printf("%8.1fx   target >= %.0fx: %s\n", x, need, x >= need ? "pass" : "MISS");
	else
		printf("%8.1fx\n", x);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: taskq-bench [--quick] [--only NAME]\nrows:\n");
	for (size_t i = 0; i < NROWS; i++)
		fprintf(f, "  %s\n", g_rows[i].name);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			g_quick = 1;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strncmp(argv[i], "--only=", 7) == 0) {
			only = argv[i] + 7;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "taskq-bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	size_t only_idx = NROWS;
	if (only) {
		for (size_t i = 0; i < NROWS; i++)
			if (strcmp(g_rows[i].name, only) == 0)
				only_idx = i;
		if (only_idx == NROWS) {
			int hits = 0;
			for (size_t i = 0; i < NROWS; i++)
				if (strcasestr(g_rows[i].name, only)) {
					only_idx = i;
					hits++;
				}
			if (hits != 1) {
				fprintf(stderr, "taskq-bench: --only '%s' matches %d rows\n", only, hits);
				usage(stderr);
				return 2;
			}
		}
	}

	read_loadavg();
	bench_install_handlers();
	bench_cleanup_leftovers();
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (size_t i = 0; i < NROWS; i++)
		if (only_idx == NROWS || only_idx == i)
			measure(i);

	printf("\ntaskq-bench: tasks/s between separate processes (fork), %s; "
	       "every run verified exactly-once\n",
	       g_quick ? "--quick: 1 small run each" : "median of 3 runs of ~0.6 s");
	machine_line();
	printf("\n%-30s %10s %9s %9s %9s %8s  %s\n", "row", "tasks/run", "median", "min", "max",
	       "time", "target");
	printf("%-30s %10s %9s %9s %9s %8s  %s\n", "", "", "M/s", "M/s", "M/s", "s", "");
	int bad = 0;
	for (size_t i = 0; i < NROWS; i++) {
		const struct row_out *o = &g_out[i];
		char tbuf[96];
		if (!o->ran)
			continue;
		if (o->failed) {
			bad = 1;
			printf("%-30s %10s %9s %9s %9s %8s  %s\n", g_rows[i].name, "-", "FAILED", "-", "-", "-",
			       target_text(i, tbuf, sizeof tbuf));
			continue;
		}
		printf("%-30s %10llu %9.2f %9.2f %9.2f %8.3f  %s\n", g_rows[i].name,
		       (unsigned long long)o->tasks, o->median / 1e6, o->min / 1e6, o->max / 1e6, o->secs,
		       target_text(i, tbuf, sizeof tbuf));
	}
	if (g_out[ROW_B64].ran) {
		printf("\nratios: %s divided by\n", g_rows[ROW_B64].name);
		ratio_line(ROW_B64, ROW_SEED, SEED_FACTOR);
		ratio_line(ROW_B64, ROW_PIPE64, 0);
		ratio_line(ROW_B64, ROW_MQ, 0);
		printf("what reading stats costs (same row, a reader calling tq_stats_get meanwhile):\n");
		ratio_line(ROW_STATS10, ROW_B64, 0);
		ratio_line(ROW_STATSLOOP, ROW_B64, 0);
	}
	if (bad) {
		printf("\nFAILED rows (a task lost, duplicated or corrupted, or a process crashed or hung):\n");
		for (size_t i = 0; i < NROWS; i++)
			if (g_out[i].failed)
				printf("  %s: %s\n", g_rows[i].name, g_out[i].msg);
	}
	return bad ? 1 : 0;
}
