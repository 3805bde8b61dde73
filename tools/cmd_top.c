/* SPDX-License-Identifier: MIT */
/*
 * cmd_top.c - taskq top: a live dashboard of one queue (ncurses), or plain
 * text frames with --batch (for scripts, logs and terminals without curses).
 */
#include <getopt.h>
#include <locale.h>
#include <ncurses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define HISTORY 240
#define MAXPROCS 64

struct proc_rate {
	int32_t pid;
	uint64_t acked;
	double rate;
};

/* One figure over the last frames, newest last. */
struct series {
	double v[HISTORY];
	int n;
};

enum { S_DONE, S_PUSHED, S_FAILED, S_PENDING, S_HELD, S__N };

struct top {
	tq_queue *q;
	const char *name;
	tq_stats s;
	struct series hist[S__N]; /* per frame: done/s, pushed/s, failed/s, ready, in progress */
	uint64_t interval_ns;
	uint64_t last_acked, last_pushed, last_failed, last_ns;
	tq_proc_info procs[MAXPROCS];
	struct proc_rate prev[MAXPROCS];
	double prate[MAXPROCS];
	int nprocs, nprev;
	tq_event_info ev[8];
	int nev;
	bool utf8;
};

static volatile sig_atomic_t top_stop;

static void on_top_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

static void human(char *buf, size_t size, double v)
{
	if (v >= 1e9)
		snprintf(buf, size, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, size, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, size, "%.1fk", v / 1e3);
	else
		snprintf(buf, size, "%.0f", v);
}

static void dur(char *buf, size_t size, uint64_t ns)
{
	if (ns == UINT64_MAX)
		snprintf(buf, size, "inf");
	else if (ns >= 1000000000ull)
		snprintf(buf, size, "%.2fs", (double)ns / 1e9);
	else if (ns >= 1000000ull)
		snprintf(buf, size, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%.1fus", (double)ns / 1e3);
}

/* Reads everything once; rates come from the change since the last read. */
static void series_add(struct series *h, double v)
{
	if (h->n == HISTORY) {
		memmove(h->v, h->v + 1, sizeof(double) * (HISTORY - 1));
		h->n--;
	}
	h->v[h->n++] = v;
}

/* Per second, from two readings of a counter dt seconds apart (0 if it
 * went back: a queue created anew under the same name). */
static double rate(uint64_t now, uint64_t before, double dt)
{
	return dt > 0 && now >= before ? (double)(now - before) / dt : 0;
}

static void sample(struct top *t)
{
	uint64_t now = tq_now_ns();

	tq_stats_get(t->q, &t->s);
	if (t->last_ns) {
		double dt = (double)(now - t->last_ns) / 1e9;
		series_add(&t->hist[S_DONE], rate(t->s.total.acked, t->last_acked, dt));
		series_add(&t->hist[S_PUSHED], rate(t->s.total.pushed, t->last_pushed, dt));
		series_add(&t->hist[S_FAILED], rate(t->s.total.failed, t->last_failed, dt));
	}
	series_add(&t->hist[S_PENDING], t->s.ready);
	series_add(&t->hist[S_HELD], t->s.leased);
	int n = tq_procs(t->q, t->procs, MAXPROCS);
	int k = 0;
	for (int i = 0; i < n && i < MAXPROCS; i++) {
		t->procs[k] = t->procs[i];
		t->prate[k] = 0;
		for (int j = 0; j < t->nprev; j++)
			if (t->prev[j].pid == t->procs[k].pid && t->last_ns && now > t->last_ns &&
			    t->procs[k].counters.acked >= t->prev[j].acked) /* not a new record of that pid */
				t->prate[k] = (double)(t->procs[k].counters.acked - t->prev[j].acked) /
					      ((double)(now - t->last_ns) / 1e9);
		k++;
	}
	t->nprocs = k;
	for (int i = 0; i < k; i++)
		t->prev[i] = (struct proc_rate){t->procs[i].pid, t->procs[i].counters.acked, t->prate[i]};
	t->nprev = k;
	t->last_acked = t->s.total.acked;
	t->last_pushed = t->s.total.pushed;
	t->last_failed = t->s.total.failed;
	t->last_ns = now;
	tq_event_info all[256];
	int ne = tq_events(t->q, 0, all, 256);
	t->nev = 0;
	for (int i = ne > 5 ? ne - 5 : 0; i < ne; i++)
		t->ev[t->nev++] = all[i];
}

/* The sparkline of the last `width` frames of a series, scaled to its
 * largest value in them, which *max returns. */
static void sparkline(const struct top *t, const struct series *h, char *out, size_t size, int width, double *max_out)
{
	static const char *blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
	static const char ascii[] = "_.-=+*#@";
	int from = h->n > width ? h->n - width : 0;
	double max = 0;
	size_t k = 0;

	for (int i = from; i < h->n; i++)
		if (h->v[i] > max)
			max = h->v[i];
	*max_out = max;
	out[0] = '\0';
	for (int i = from; i < h->n && k + 4 < size; i++) {
		int lvl = max > 0 ? (int)(h->v[i] / max * 7.0 + 0.5) : 0;
		if (t->utf8) {
			size_t l = strlen(blocks[lvl]);
			memcpy(out + k, blocks[lvl], l);
			k += l;
		} else {
			out[k++] = ascii[lvl];
		}
		out[k] = '\0';
	}
}

static void emit_text(int row, const char *line, bool bold, void *arg);

/* Renders one frame as lines of text; emit() prints each (emit_text: the
 * batch mode, where no key is read). */
static void render(struct top *t, int width, void (*emit)(int row, const char *line, bool bold, void *arg), void *arg)
{
	char line[HISTORY * 4 + 256], a[32], b[32], c[32], d[32], e[32];
	int row = 0;
	const tq_stats *s = &t->s;
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);

	snprintf(line, sizeof(line), "taskq top - queue %s (%s)   %02d:%02d:%02d%s", t->name,
		 cli_state_name(s->run_state), tm.tm_hour, tm.tm_min, tm.tm_sec, emit == emit_text ? "" : "   q quits");
	emit(row++, line, true, arg);
	snprintf(line, sizeof(line), "tasks    ready %u   in progress %u   retrying %u   dead %u   free %u of %u",
		 s->ready, s->leased, s->delayed, s->dead, s->free_slots, s->slots);
	emit(row++, line, false, arg);
	snprintf(line, sizeof(line), "totals   pushed %llu   done %llu   failed %llu   retried %llu   dead %llu",
		 (unsigned long long)s->total.pushed, (unsigned long long)s->total.acked,
		 (unsigned long long)s->total.failed, (unsigned long long)s->total.retried,
		 (unsigned long long)s->total.dead);
	emit(row++, line, false, arg);
	snprintf(line, sizeof(line), "         leases expired %llu   returned from dead processes %llu   dead processes %u",
		 (unsigned long long)s->total.expired, (unsigned long long)s->total.recovered, s->recoveries);
	emit(row++, line, false, arg);
	const struct series *dh = &t->hist[S_DONE];
	human(a, sizeof(a), dh->n ? dh->v[dh->n - 1] : 0);
	human(b, sizeof(b), s->done_per_s[1]);
	human(c, sizeof(c), s->done_per_s[2]);
	human(d, sizeof(d), s->pushed_per_s[1]);
	snprintf(line, sizeof(line), "done/s   %s now   %s (10 s)   %s (60 s)      pushed/s %s (10 s)", a, b, c, d);
	emit(row++, line, true, arg);
	/* The last minute (as many frames as fit), one mark a frame. */
	char spark[HISTORY * 4 + 1];
	uint64_t per_min = t->interval_ns ? 60000000000ull / t->interval_ns : HISTORY;
	int sw = width - 32;
	sw = sw < 10 ? 10 : sw > HISTORY ? HISTORY : sw;
	if ((uint64_t)sw > per_min)
		sw = per_min < 10 ? 10 : (int)per_min;
	static const char *label[S__N] = {"done/s", "pushed/s", "failed/s", "pending", "held"};
	for (int i = 0; i < S__N; i++) {
		double max;
		const struct series *h = &t->hist[i];
		sparkline(t, h, spark, sizeof(spark), sw, &max);
		human(a, sizeof(a), h->n ? h->v[h->n - 1] : 0);
		human(b, sizeof(b), max);
		snprintf(line, sizeof(line), "%-8s %s  now %s  max %s", label[i], spark, a, b);
		emit(row++, line, false, arg);
	}
	const tq_latency *l[2] = {&s->wait, &s->processing};
	const char *ln[2] = {"wait", "process"};
	for (int i = 0; i < 2; i++) {
		dur(a, sizeof(a), l[i]->p50_ns);
		dur(b, sizeof(b), l[i]->p90_ns);
		dur(c, sizeof(c), l[i]->p99_ns);
		dur(d, sizeof(d), l[i]->max_ns);
		dur(e, sizeof(e), l[i]->mean_ns);
		snprintf(line, sizeof(line), "%-8s p50 %-9s p90 %-9s p99 %-9s max %-9s mean %s", ln[i], a, b, c, d, e);
		emit(row++, line, false, arg);
	}
	/* Ages from now, read after the sample (clamped all the same). */
	uint64_t now_ns = tq_now_ns();
	s->oldest_ready_ns ? dur(a, sizeof(a), cli_age_ns(now_ns, s->oldest_ready_ns)) : (void)snprintf(a, sizeof(a), "-");
	snprintf(line, sizeof(line), "oldest ready task waiting %s   processes attached %d", a, t->nprocs);
	emit(row++, line, false, arg);
	emit(row++, "", false, arg);
	snprintf(line, sizeof(line), "%8s  %-17s %8s %9s %12s %12s %8s", "PID", "STATE", "HOLDING", "DONE/S", "DONE",
		 "FAILED", "SEEN");
	emit(row++, line, true, arg);
	for (int i = 0; i < t->nprocs; i++) {
		const tq_proc_info *p = &t->procs[i];
		human(a, sizeof(a), t->prate[i]);
		dur(b, sizeof(b), cli_age_ns(now_ns, p->last_seen_ns));
		snprintf(line, sizeof(line), "%8d  %-17s %8u %9s %12llu %12llu %8s", p->pid,
			 p->waiting == 1 ? "waiting for tasks" : p->waiting == 2 ? "waiting for room" : "busy",
			 p->leased, a, (unsigned long long)p->counters.acked, (unsigned long long)p->counters.failed, b);
		emit(row++, line, false, arg);
	}
	emit(row++, "", false, arg);
	emit(row++, "recent events", true, arg);
	for (int i = 0; i < t->nev; i++) {
		const tq_event_info *ev = &t->ev[i];
		dur(a, sizeof(a), cli_age_ns(now_ns, ev->t_ns));
		snprintf(line, sizeof(line), "  %9s ago  pid %-7d %-15s %s", a, ev->pid, tq_event_name(ev->type),
			 cli_event_detail((char[200]){0}, 200, ev));
		emit(row++, line, false, arg);
	}
}

static void emit_text(int row, const char *line, bool bold, void *arg)
{
	(void)row;
	(void)bold;
	(void)arg;
	puts(line);
}

static void emit_curses(int row, const char *line, bool bold, void *arg)
{
	(void)arg;
	if (row >= LINES)
		return;
	if (bold)
		attron(A_BOLD);
	mvaddnstr(row, 0, line, COLS > 0 ? COLS : 80);
	if (bold)
		attroff(A_BOLD);
}

enum { O_INTERVAL = 'i', O_BATCH = 'b', O_ITERATIONS = 'n' };

static const struct cli_opt top_opts[] = {
	{O_INTERVAL, true, "interval", "SEC", "between frames (0.1 to 3600; default 1)"},
	{O_BATCH, true, "batch", NULL, "print plain-text frames instead (the default\nwhen stdout is not a terminal)"},
	{O_ITERATIONS, true, "iterations", "N", "stop after N frames"},
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command top_cmd = {
	.name = "top",
	.args = "NAME",
	.about = "A live dashboard: task counts, totals, rates, the last minute of done/s,\n"
		 "pushed/s, failed/s, pending and held (in progress) as sparklines, latency\n"
		 "percentiles, the attached processes and recent events. q quits; the screen\n"
		 "follows window resizes.\n",
	.more = "taskq top --nats URL --stream S [NAME] [--wait SEC] [--iterations N]: every\n"
		"machine's bridges of stream S instead, a row each and the totals, refreshed\n"
		"every --wait (taskq bridge top; docs/cluster.md). Ctrl+C quits.\n",
	.opts = top_opts,
};

int cmd_top(int argc, char **argv)
{
	struct cli_parser p;
	uint64_t interval = 1000000000ull, iterations = 0;
	bool batch = false;
	int c;

	cli_parser_init(&p, &top_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case O_BATCH: batch = true; break;
		case O_INTERVAL:
			if (!cli_opt_seconds(&p, 100000000ull, 3600, &interval))
				return EX_USAGE_;
			break;
		case O_ITERATIONS:
			if (!cli_opt_u64(&p, 1, UINT64_MAX, &iterations))
				return EX_USAGE_;
			break;
		default: return cli_command_usage(&top_cmd);
		}
	}
	if (optind != argc - 1)
		return cli_command_usage(&top_cmd);
	struct top *t = calloc(1, sizeof(*t));
	if (!t)
		return EX_FAIL;
	t->name = argv[optind];
	t->interval_ns = interval;
	int rc = cli_open_observer(t->name, &t->q); /* never counted among the processes it shows */
	if (rc) {
		free(t);
		return rc;
	}
	signal(SIGINT, on_top_signal);
	signal(SIGTERM, on_top_signal);
	if (!isatty(1))
		batch = true;
	setlocale(LC_ALL, "");
	const char *cs = setlocale(LC_CTYPE, NULL);
	t->utf8 = cs && (strstr(cs, "UTF-8") || strstr(cs, "utf8"));
	sample(t);
	if (batch) {
		for (uint64_t n = 0; !top_stop && (!iterations || n < iterations); n++) {
			if (n) {
				struct timespec ts = {(time_t)(interval / 1000000000ull), (long)(interval % 1000000000ull)};
				nanosleep(&ts, NULL);
				sample(t);
			}
			render(t, 100, emit_text, NULL);
			puts("");
			fflush(stdout);
		}
	} else {
		initscr();
		cbreak();
		noecho();
		keypad(stdscr, TRUE);
		curs_set(0);
		timeout((int)(interval / 1000000ull));
		for (uint64_t n = 0; !top_stop && (!iterations || n < iterations); n++) {
			erase();
			render(t, COLS, emit_curses, NULL);
			refresh();
			int ch = getch(); /* waits up to the interval; KEY_RESIZE redraws */
			if (ch == 'q' || ch == 'Q')
				break;
			if (ch == KEY_RESIZE)
				continue;
			sample(t);
		}
		endwin();
	}
	tq_close(t->q);
	free(t);
	return 0;
}
