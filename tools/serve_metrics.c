/* SPDX-License-Identifier: MIT */
/*
 * serve_metrics.c - taskq serve's /metrics: every served queue's numbers
 * in the Prometheus text format 0.0.4 (docs/metrics.md), the server's own
 * connection counts, and the lines of the bridges' --bridge-metrics files.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "serve.h"

#define BRIDGE_FILE_MAX (256 * 1024)  /* bytes read of one --bridge-metrics file */
#define BRIDGE_FILE_STALE_S 10        /* older than this: its bridge has stopped */

/* ------------------------------------------------------ growable buffer */

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
 * by pid (one process may hold several handles); this server, an
 * observer, is not among them. */
static int take_snapshot(const struct served *sv, struct snapshot *sn)
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
		{"taskq_dead_overflow_total", "Tasks that went dead while the dead-letter area was full (kept; they take room from the capacity).", offsetof(tq_counters, dead_overflow)},
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
	family(b, "taskq_capacity_tasks", "gauge", "Tasks the queue holds for producers: ready, in progress, delayed, and dead beyond the dead-letter area.");
	FOR_EACH_Q sample_u64(b, "taskq_capacity_tasks", sn[i].name, NULL, sn[i].s.capacity);
	family(b, "taskq_dead_capacity_tasks", "gauge", "Dead tasks the dead-letter area holds without taking room from the capacity.");
	FOR_EACH_Q sample_u64(b, "taskq_dead_capacity_tasks", sn[i].name, NULL, sn[i].s.dead_capacity);
	family(b, "taskq_dead_over_tasks", "gauge", "Dead tasks beyond the dead-letter area, taking room from the capacity (taskq dead NAME purge|kick clears them).");
	FOR_EACH_Q sample_u64(b, "taskq_dead_over_tasks", sn[i].name, NULL, sn[i].s.dead_over);
	family(b, "taskq_delay_capacity_tasks", "gauge", "Delayed tasks (retries waiting, delayed pushes) the delay area holds without taking room from the capacity.");
	FOR_EACH_Q sample_u64(b, "taskq_delay_capacity_tasks", sn[i].name, NULL, sn[i].s.delay_capacity);
	family(b, "taskq_delay_over_tasks", "gauge", "Delayed tasks beyond the delay area, taking room from the capacity (a larger --delay-capacity keeps them apart).");
	FOR_EACH_Q sample_u64(b, "taskq_delay_over_tasks", sn[i].name, NULL, sn[i].s.delay_over);
	family(b, "taskq_processes", "gauge", "Processes attached to the queue (observers such as this server not counted).");
	FOR_EACH_Q sample_u64(b, "taskq_processes", sn[i].name, NULL, sn[i].s.procs);
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

/* The server's own connections: what the limits and deadlines did. */
static void render_server_metrics(struct buf *b, const struct serve_limits *l)
{
	struct serve_conn_stats cs;

	serve_conn_stats_get(&cs);
	family(b, "taskq_http_connections", "gauge", "HTTP connections open now, this one included.");
	buf_printf(b, "taskq_http_connections %u\n", cs.open);
	family(b, "taskq_http_connections_limit", "gauge", "HTTP connections open at once at most (--max-connections).");
	buf_printf(b, "taskq_http_connections_limit %u\n", l->max);
	family(b, "taskq_http_connections_refused_total", "counter",
	       "HTTP connections closed at accept by a limit: per client address, all slots taken, or only reserved ones left.");
	for (int k = SERVE_REFUSE_PER_ADDR; k <= SERVE_REFUSE_RESERVE; k++)
		buf_printf(b, "taskq_http_connections_refused_total{reason=\"%s\"} %llu\n", serve_refusal_names[k],
			   (unsigned long long)cs.refused[k]);
	family(b, "taskq_http_connections_timed_out_total", "counter",
	       "HTTP connections closed past a deadline: a request not in within --request-timeout, an answer not taken or an idle keep-alive within --timeout.");
	for (int k = PH_REQUEST; k <= PH_IDLE; k++)
		buf_printf(b, "taskq_http_connections_timed_out_total{phase=\"%s\"} %llu\n", serve_phase_names[k],
			   (unsigned long long)cs.timed_out[k]);
}

/* ------------------------------------------------------ bridges' metrics */

/* A line of a bridge's metrics file that may be served: a taskq_bridge_
 * sample, or its HELP or TYPE, in printable ASCII. Its family name into
 * fam (the metric name, for grouping); 0 if the line is refused. */
static size_t bridge_line_family(const char *l, size_t len, const char **fam)
{
	static const char *const pre[3] = {"# HELP ", "# TYPE ", ""};
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)l[i] < 0x20 || (unsigned char)l[i] > 0x7e)
			return 0;
	for (int k = 0; k < 3; k++) {
		size_t pl = strlen(pre[k]);
		if (len > pl + 13 && !strncmp(l, pre[k], pl) && !strncmp(l + pl, "taskq_bridge_", 13)) {
			size_t n = 0;
			while (pl + n < len && l[pl + n] != ' ' && l[pl + n] != '{')
				n++;
			*fam = l + pl;
			return n;
		}
	}
	return 0;
}

/*
 * The bridges' metrics (--bridge-metrics FILE...), appended to /metrics:
 * only taskq_bridge_ lines, grouped by family across the files (a family's
 * HELP and TYPE once, then its samples of every bridge), and nothing of a
 * file not rewritten for BRIDGE_FILE_STALE_S seconds (its bridge stopped).
 */
static void render_bridge_metrics(struct buf *b, const struct server *srv)
{
	char *text[MAX_BRIDGE_FILES] = {0};
	size_t len[MAX_BRIDGE_FILES] = {0};
	time_t now = time(NULL);

	for (size_t i = 0; i < srv->nbridge_files; i++) {
		struct stat st;
		FILE *f = fopen(srv->bridge_files[i], "r");
		if (!f)
			continue;
		if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime <= BRIDGE_FILE_STALE_S &&
		    (text[i] = malloc(BRIDGE_FILE_MAX)))
			len[i] = fread(text[i], 1, BRIDGE_FILE_MAX, f);
		fclose(f);
	}
	/* Every line that may be served, once: its file, its text, its family. */
	struct bline {
		size_t file;
		const char *l, *fam;
		size_t len, famlen;
	} *ls = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < srv->nbridge_files; i++) {
		for (size_t off = 0; text[i] && off < len[i];) {
			const char *l = text[i] + off, *nl = memchr(l, '\n', len[i] - off);
			size_t ll = nl ? (size_t)(nl - l) : len[i] - off, fl;
			const char *fam;
			off += ll + 1;
			if (!(fl = bridge_line_family(l, ll, &fam)))
				continue;
			if (n == cap) {
				struct bline *g = realloc(ls, (cap = cap ? 2 * cap : 64) * sizeof *ls);
				if (!g) {
					b->oom = true;
					goto out;
				}
				ls = g;
			}
			ls[n++] = (struct bline){i, l, fam, ll, fl};
		}
	}
	/* Each family in the order its first HELP comes: that HELP's file's #
	 * lines, then the samples of that file and of every later one. */
	for (size_t r = 0; r < n; r++) {
		if (strncmp(ls[r].l, "# HELP ", 7))
			continue;
		bool first = true;
		for (size_t k = 0; k < r && first; k++)
			first = !(ls[k].famlen == ls[r].famlen && !strncmp(ls[k].fam, ls[r].fam, ls[r].famlen) &&
				  !strncmp(ls[k].l, "# HELP ", 7));
		if (!first)
			continue;
		for (size_t k = 0; k < n; k++) {
			bool same = ls[k].famlen == ls[r].famlen && !strncmp(ls[k].fam, ls[r].fam, ls[r].famlen);
			bool meta = ls[k].l[0] == '#';
			if (same && ls[k].file >= ls[r].file && (!meta || ls[k].file == ls[r].file))
				buf_printf(b, "%.*s\n", (int)ls[k].len, ls[k].l);
		}
	}
out:
	free(ls);
	for (size_t i = 0; i < srv->nbridge_files; i++)
		free(text[i]);
}

int serve_render_metrics(const struct server *srv, struct buf *b)
{
	struct snapshot *sn = calloc(srv->nqueues, sizeof(*sn));
	int rc = sn ? 0 : TQ_ENOMEM;

	for (size_t i = 0; i < srv->nqueues && !rc; i++)
		rc = take_snapshot(&srv->queues[i], &sn[i]);
	if (!rc) {
		render_metrics(b, sn, srv->nqueues);
		render_server_metrics(b, &srv->limits);
		render_bridge_metrics(b, srv);
		if (b->oom)
			rc = TQ_ENOMEM;
	}
	for (size_t i = 0; sn && i < srv->nqueues; i++)
		free(sn[i].procs);
	free(sn);
	return rc;
}
