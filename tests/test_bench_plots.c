/* SPDX-License-Identifier: MIT */
/*
 * test_bench_plots.c - make bench's output: `taskq-bench --quick --csv DIR`
 * writes the CSV files scripts/bench-plots.sh reads (their columns, the
 * throughput rows of taskq and of the baselines, the batch sweep's five
 * sizes, each latency row's distribution), and the script turns them into
 * SVG charts with gnuplot. --quick is a few seconds of small runs; nothing
 * here looks at the numbers beyond their being there and consistent.
 */
#include <criterion/criterion.h>

#include <sys/stat.h>

#include "proc.h"
#include "util.h"

#define BENCH_BIN TQ_BIN_DIR "/bench/taskq-bench"
#define PLOTS_SH TQ_SRC_DIR "/scripts/bench-plots.sh"

static char dir[64] = "", csv[128], plots[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tqt-bench-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(csv, sizeof(csv), "%s/csv", dir);
	snprintf(plots, sizeof(plots), "%s/plots", dir);
}

static void teardown(void)
{
	if (!dir[0])
		return;
	char *argv[] = {"/bin/rm", "-rf", dir, NULL};
	struct out o = {0};
	run(argv, NULL, &o);
	out_free(&o);
}

TestSuite(bench_plots, .init = setup, .fini = teardown, .timeout = 120);

/* The whole of a file, NUL-ended (abort()s the test if unreadable). */
static char *slurp(const char *dirname, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dirname, name);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	struct buf b = {0};
	char tmp[8192];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	return b.p ? b.p : strdup("");
}

/* The lines after the header, which must be `header`. */
static char *body_after(char *text, const char *header, const char *name)
{
	size_t len = strlen(header);
	cr_assert(!strncmp(text, header, len) && text[len] == '\n', "%s: header is not '%s':\n%.200s", name, header,
		  text);
	return text + len + 1;
}

Test(bench_plots, csv_files_and_svg_charts)
{
	char *argv[] = {BENCH_BIN, "--quick", "--csv", csv, NULL};
	struct out o = {0};
	cr_assert_eq(run(argv, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	cr_assert(strstr(o.out, "batch sweep"), "the report shows the sweep:\n%s", o.out);
	out_free(&o);

	/* throughput.csv: rows of taskq and of the baselines, medians within min..max */
	char *t = slurp(csv, "throughput.csv");
	char *line = body_after(t, "row,impl,kind,producers,consumers,batch,task_bytes,median_tasks_per_s,"
				   "min_tasks_per_s,max_tasks_per_s", "throughput.csv");
	int taskq = 0, baseline = 0;
	for (char *save = NULL, *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[128], impl[32], kind[32];
		int np, nc;
		unsigned batch, bytes;
		double med, lo, hi;
		cr_assert_eq(sscanf(l, "%127[^,],%31[^,],%31[^,],%d,%d,%u,%u,%lf,%lf,%lf", name, impl, kind, &np, &nc,
				    &batch, &bytes, &med, &lo, &hi),
			     10, "throughput.csv: %s", l);
		cr_assert(lo > 0 && lo <= med && med <= hi, "throughput.csv: %s", l);
		taskq += !strcmp(kind, "taskq");
		baseline += !strcmp(kind, "baseline");
	}
	cr_assert_geq(taskq, 2, "taskq rows in throughput.csv");
	cr_assert_geq(baseline, 2, "baseline rows in throughput.csv");
	free(t);

	/* batch.csv: 1, 4, 16, 64, 256, each with both rates */
	char *b = slurp(csv, "batch.csv");
	line = body_after(b, "batch,taskq_tasks_per_s,pipe_tasks_per_s", "batch.csv");
	const unsigned want[] = {1, 4, 16, 64, 256};
	size_t k = 0;
	for (char *save = NULL, *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save), k++) {
		unsigned batch;
		double tq, pipe;
		cr_assert_eq(sscanf(l, "%u,%lf,%lf", &batch, &tq, &pipe), 3, "batch.csv: %s", l);
		cr_assert(k < 5 && batch == want[k], "batch.csv: %s", l);
		cr_assert(tq > 0 && pipe > 0, "batch.csv: %s", l);
	}
	cr_assert_eq(k, 5, "batch.csv has the five batch sizes");
	free(b);

	/* latency.csv: per row, latencies and shares rising to 1 */
	char *lat = slurp(csv, "latency.csv");
	line = body_after(lat, "row,latency_us,fraction", "latency.csv");
	char last[128] = "";
	double prev_us = 0, prev_frac = 0;
	int rows = 0;
	for (char *save = NULL, *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[128];
		double us, frac;
		cr_assert_eq(sscanf(l, "%127[^,],%lf,%lf", name, &us, &frac), 3, "latency.csv: %s", l);
		if (strcmp(name, last)) {
			cr_assert(!rows || prev_frac > 0.999999, "latency.csv: %s ends below 1", last);
			snprintf(last, sizeof(last), "%s", name);
			rows++;
			prev_us = 0;
			prev_frac = 0;
		}
		cr_assert(us >= 0 && us > prev_us - 1e-9 && frac > prev_frac && frac <= 1.0000001, "latency.csv: %s", l);
		prev_us = us;
		prev_frac = frac;
	}
	cr_assert_geq(rows, 2, "latency rows in latency.csv");
	cr_assert(prev_frac > 0.999999, "latency.csv: %s ends below 1", last);
	free(lat);

	char *r = slurp(csv, "run.csv");
	cr_assert(strstr(r, "key,value\n") == r && strstr(r, "\nquick,1\n") && strstr(r, "\ndate_utc,"), "%s", r);
	free(r);

	/* the charts */
	char *sh[] = {PLOTS_SH, csv, plots, NULL};
	cr_assert_eq(run(sh, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	const char *svgs[] = {"bench-throughput.svg", "bench-batch.svg", "bench-latency.svg"};
	for (size_t i = 0; i < sizeof(svgs) / sizeof(svgs[0]); i++) {
		cr_assert(strstr(o.out, svgs[i]), "the script names %s:\n%s", svgs[i], o.out);
		char *svg = slurp(plots, svgs[i]);
		cr_assert(strstr(svg, "<svg") && strstr(svg, "</svg>"), "%s is not SVG:\n%.300s", svgs[i], svg);
		cr_assert_gt(strlen(svg), 2000, "%s is nearly empty", svgs[i]);
		free(svg);
	}
	out_free(&o);
}

Test(bench_plots, bad_directories_are_refused_before_running)
{
	struct out o = {0};
	char *argv[] = {BENCH_BIN, "--quick", "--csv", "/proc/tqt-no-such-dir/csv", NULL};
	cr_assert_eq(run(argv, NULL, &o), 2, "%s: %s", o.cmd, o.err);
	cr_assert(strstr(o.err, "--csv"), "%s", o.err);
	cr_assert(!strstr(o.out, "taskq-bench,"), "no table: it stopped before the runs:\n%s", o.out);
	out_free(&o);

	/* the script: its usage, and a directory without CSV files */
	char *usage[] = {PLOTS_SH, csv, NULL};
	cr_assert_eq(run(usage, NULL, &o), 2, "%s", o.err);
	cr_assert_eq(mkdir(csv, 0700), 0);
	char *empty[] = {PLOTS_SH, csv, plots, NULL};
	cr_assert_eq(run(empty, NULL, &o), 1, "%s", o.err);
	cr_assert(strstr(o.err, "no CSV"), "%s", o.err);
	out_free(&o);
}
