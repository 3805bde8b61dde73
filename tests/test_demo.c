/* SPDX-License-Identifier: MIT */
/*
 * test_demo.c - run.sh's demo end to end, through build/taskq-demo (the
 * program run.sh execs): the Ctrl+C drain and its summary, checked against
 * the library's own statistics of the same queue; the second Ctrl+C that
 * stops at once and the next run that delivers what was left; a drain
 * started by `taskq stop`; a second demo refused on a queue the first one
 * is using, and one that joins it on purpose; --serve's address checked
 * before anything starts, and a server that cannot listen failing the
 * start; SIGHUP; logs kept off stdout; options.
 *
 * As in test_cli.c, each test runs in a private mount namespace with its
 * own /dev/shm where the machine allows it, and kills what it started and
 * destroys its queues in the suite's .fini. Nothing waits on a timer for a
 * race: every wait polls a condition (the queue's counters or run state,
 * a child's exit) with a deadline.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#define TASKQ TQ_BIN_DIR "/taskq"
#define DEMO TQ_BIN_DIR "/taskq-demo"

#define RUN_DEADLINE_MS 30000u


/* ------------------------------------------------------ child processes */

#include "proc.h"




/* ------------------------------------------------------ queues */

#define MAX_QUEUES 8
static char queues[MAX_QUEUES][TQ_NAME_MAX + 1];

static const char *qname(const char *what)
{
	for (int i = 0; i < MAX_QUEUES; i++)
		if (!queues[i][0]) {
			snprintf(queues[i], sizeof(queues[i]), "tqt-demo-%s-%ld", what, (long)getpid());
			return queues[i];
		}
	abort();
}

static bool shm_exists(const char *name)
{
	char path[TQ_NAME_MAX + 32];
	struct stat st;
	snprintf(path, sizeof(path), "/dev/shm/taskq.%s", name);
	return stat(path, &st) == 0;
}

static void demo_init(void)
{
	memset(queues, 0, sizeof(queues));
	memset(children, 0, sizeof(children));
	enter_private_shm();
}

static void demo_fini(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL); /* its children have PDEATHSIG SIGKILL */
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	for (int i = 0; i < MAX_QUEUES; i++)
		if (queues[i][0]) {
			tq_destroy(queues[i]);
			queues[i][0] = '\0';
		}
}

TestSuite(demo, .init = demo_init, .fini = demo_fini, .timeout = 60);

#define assert_status(o, code)                                                                        \
	cr_assert_eq((o)->status, (code), "`%s`: exit status %d, want %d\nstdout: %s\nstderr: %s", (o)->cmd, \
		     (o)->status, (code), (o)->out, (o)->err)
#define assert_contains(hay, needle, what)                                                            \
	cr_assert(strstr((hay), (needle)) != NULL, "%s: '%s' not found in:\n%s", (what), (needle), (hay))

/* Starts the demo on queue `name` with extra options (NULL-terminated). */
static void demo_start(struct proc *p, const char *name, ...)
{
	char *argv[40];
	int n = 0;
	argv[n++] = (char *)DEMO;
	argv[n++] = "--queue";
	argv[n++] = (char *)name;
	argv[n++] = "--quiet";
	va_list ap;
	va_start(ap, name);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 39)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	proc_start(p, argv, NULL, 0);
}

/* True while the child has not exited (it is not reaped). */
static bool alive(const struct proc *p)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return !(waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == p->pid);
}

/* Fails the test with the demo's output if it exited early. */
static void assert_alive(struct proc *p, const char *when)
{
	if (alive(p))
		return;
	struct out o = {0};
	proc_finish(p, 1000, &o);
	cr_assert_fail("taskq-demo exited %s: status %d\nstdout: %s\nstderr: %s", when, o.status, o.out, o.err);
}

/* Opens the demo's queue once the demo has created it. */
static tq_queue *open_demo_queue(struct proc *p, const char *name)
{
	uint64_t deadline = tqt_now_ms() + 20000;
	tq_queue *q = NULL;
	for (;;) {
		int rc = tq_open(name, &q);
		if (rc == 0)
			return q;
		cr_assert(rc == TQ_ENOENT || rc == TQ_EINIT, "tq_open %s: %s", name, tq_strerror(rc));
		assert_alive(p, "before its queue existed");
		cr_assert(tqt_now_ms() < deadline, "the demo never created queue %s", name);
		proc_pump(p, 5);
	}
}

static tq_stats stats(tq_queue *q)
{
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	return s;
}

/* Waits until at least `acked` tasks were acknowledged since creation. */
static void wait_progress(struct proc *p, tq_queue *q, uint64_t acked)
{
	uint64_t deadline = tqt_now_ms() + 30000;
	for (;;) {
		tq_stats s = stats(q);
		if (s.total.acked >= acked)
			return;
		assert_alive(p, "while working");
		cr_assert(tqt_now_ms() < deadline, "no progress: %llu acked, %llu pushed",
			  (unsigned long long)s.total.acked, (unsigned long long)s.total.pushed);
		proc_pump(p, 10);
	}
}

static void wait_run_state(struct proc *p, tq_queue *q, int state)
{
	uint64_t deadline = tqt_now_ms() + 20000;
	while (tq_run_state(q) != state) {
		assert_alive(p, "before the run state changed");
		cr_assert(tqt_now_ms() < deadline, "run state %d, want %d", tq_run_state(q), state);
		proc_pump(p, 2);
	}
}

/* The demo groups digits in big counts ("26,106,906"): removes the commas
 * between digits, in place, so that the numbers parse. */
static void ungroup(char *s)
{
	size_t k = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == ',' && i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9' && s[i + 1] >= '0' && s[i + 1] <= '9')
			continue;
		s[k++] = s[i];
	}
	s[k] = '\0';
}

struct summary {
	unsigned long long in, done, dead, pending, produced;
};

/* Parses "every task accounted for: N in = D done + X dead + P pending" and
 * "summary: K tasks produced". */
static struct summary parse_summary(const char *grouped)
{
	struct summary s;
	char *out = strdup(grouped);
	cr_assert(out);
	ungroup(out);
	const char *p = strstr(out, "every task accounted for: ");
	cr_assert(p, "no accounting line in:\n%s", out);
	cr_assert_eq(sscanf(p, "every task accounted for: %llu in = %llu done + %llu dead + %llu pending", &s.in,
			    &s.done, &s.dead, &s.pending),
		     4, "cannot parse: %.120s", p);
	p = strstr(out, "summary: ");
	cr_assert(p, "no summary line in:\n%s", out);
	cr_assert_eq(sscanf(p, "summary: %llu tasks produced", &s.produced), 1, "cannot parse: %.120s", p);
	cr_assert_eq(s.in, s.done + s.dead + s.pending, "the summary does not add up: %.200s", p);
	free(out);
	return s;
}

static uint32_t pending_of(const tq_stats *s)
{
	return s->ready + s->leased + s->delayed;
}

/* The library's totals: every task pushed is acked, dead or still held. */
static void assert_conserved(const tq_stats *s)
{
	cr_assert_eq(s->total.pushed, s->total.acked + s->total.dead + pending_of(s),
		     "pushed %llu != acked %llu + dead %llu + pending %u (ready %u, leased %u, delayed %u)",
		     (unsigned long long)s->total.pushed, (unsigned long long)s->total.acked,
		     (unsigned long long)s->total.dead, pending_of(s), s->ready, s->leased, s->delayed);
}

/* ================================================================ tests */

Test(demo, sigint_drains_and_accounts_for_every_task)
{
	const char *name = qname("drain");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--rate", "20000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	cr_assert_eq(kill(p.pid, SIGINT), 0);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "interrupted: draining", "the demo's output");
	assert_contains(o.out, "every task accounted for", "the demo's output");
	cr_assert_null(strstr(o.out, "MISMATCH"), "%s", o.out);
	struct summary sm = parse_summary(o.out);

	/* The same numbers, from the library, after the demo is gone. */
	tq_stats s = stats(q);
	cr_assert_eq(sm.produced, s.total.pushed, "%s", o.out);
	cr_assert_eq(sm.in, s.total.pushed, "a fresh queue: every task in was produced by this run");
	cr_assert_eq(sm.done, s.total.acked);
	cr_assert_eq(sm.dead, s.total.dead);
	cr_assert_eq(sm.pending, pending_of(&s));
	cr_assert_eq(s.leased, 0, "the drain acknowledged everything taken");
	cr_assert_gt(sm.done, 0);
	assert_conserved(&s);
	cr_assert_eq(s.run_state, TQ_DRAINING);
	tq_close(q);
	out_free(&o);
}

/* Ctrl+C, then Ctrl+C again while the consumers are still finishing slow
 * tasks: exit 130 at once; the next run says tasks were left and delivers
 * them, and every task is still accounted for. */
Test(demo, second_sigint_stops_at_once_and_the_next_run_delivers_the_rest)
{
	const char *name = qname("twice");
	struct proc p;
	struct out o = {0};

	/* --work 100000: about a second or more per batch of 64: the drain is slow. */
	demo_start(&p, name, "--rate", "5000", "--work", "100000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	cr_assert_eq(kill(p.pid, SIGINT), 0);
	wait_run_state(&p, q, TQ_DRAINING); /* the first Ctrl+C was taken: draining */
	/* Standard signals do not queue; repeat until it exits. */
	signal_until_exit(&p, SIGINT, 30000, &o);
	assert_status(&o, 130);
	ungroup(o.out);
	assert_contains(o.out, "stopped at once", "after the second Ctrl+C");
	cr_assert_null(strstr(o.out, "every task accounted for"), "%s", o.out);
	unsigned in_progress = 0, ready = 0;
	const char *line = strstr(o.out, "stopped at once: ");
	cr_assert_eq(sscanf(line, "stopped at once: %u tasks in progress and %u ready", &in_progress, &ready), 2,
		     "%s", line);
	cr_assert_gt(in_progress + ready, 0, "the stop left nothing behind?\n%s", o.out);
	cr_assert_eq(tq_run_state(q), TQ_STOPPED);

	/* The next run: tasks left by the earlier one are delivered. This
	 * process lets go of the queue first: a run refuses a queue that live
	 * processes it did not start have open. */
	tq_close(q);
	demo_start(&p, name, "--duration", "1", "--rate", "2000", "--consumers", "2", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	ungroup(o.out);
	char first[512];
	snprintf(first, sizeof(first), "queue %s exists: ", name);
	cr_assert(!strncmp(o.out, first, strlen(first)), "first line:\n%s", o.out);
	const char *nl = strchr(o.out, '\n');
	cr_assert(nl && strstr(o.out, "left by an earlier run") < nl, "first line:\n%s", o.out);
	unsigned left = 0;
	cr_assert_eq(sscanf(o.out + strlen(first), "%u tasks left by an earlier run", &left), 1, "%s", o.out);
	cr_assert_gt(left, 0);
	cr_assert_leq(left, in_progress + ready, "left %u, the stop reported %u + %u", left, in_progress, ready);
	assert_contains(o.out, "were left by an earlier run", "the summary");
	assert_contains(o.out, "every task accounted for", "the second run");
	struct summary sm = parse_summary(o.out);
	cr_assert_eq(sm.in, left + sm.produced, "%s", o.out);
	cr_assert_eq(tq_open(name, &q), 0);

	tq_stats s = stats(q);
	cr_assert_eq(s.leased, 0, "nothing is leased after the second run");
	assert_conserved(&s);
	cr_assert_eq(sm.pending, pending_of(&s));
	tq_close(q);
	out_free(&o);
}

/* Two signals that arrive together (Ctrl+C and a SIGTERM, which do not
 * merge as two SIGINTs would) are a first and a second: stop at once. The
 * demo is stopped while they are sent, so both are pending when it runs. */
Test(demo, sigint_and_sigterm_together_stop_at_once)
{
	const char *name = qname("both");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--rate", "5000", "--work", "100000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	cr_assert_eq(kill(p.pid, SIGSTOP), 0);
	cr_assert_eq(kill(p.pid, SIGINT), 0);
	cr_assert_eq(kill(p.pid, SIGTERM), 0);
	cr_assert_eq(kill(p.pid, SIGCONT), 0);
	proc_finish(&p, 45000, &o);
	cr_assert_eq(o.status, 130, "two signals: exit %d, want 130 (stopped at once)\nstdout: %s", o.status, o.out);
	assert_contains(o.out, "stopped at once", "after two signals");
	tq_close(q);
	out_free(&o);
}

Test(demo, taskq_stop_drains_a_running_demo)
{
	const char *name = qname("stop");
	struct proc p;
	struct out o = {0}, so = {0};

	demo_start(&p, name, "--rate", "20000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	char *stop[] = {TASKQ, "stop", (char *)name, NULL};
	run(stop, NULL, &so);
	assert_status(&so, 0);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "taskq stop: draining", "the demo's output");
	assert_contains(o.out, "every task accounted for", "the demo's output");
	struct summary sm = parse_summary(o.out);
	tq_stats s = stats(q);
	cr_assert_eq(sm.in, s.total.pushed);
	cr_assert_eq(sm.done, s.total.acked);
	cr_assert_eq(sm.dead, s.total.dead);
	cr_assert_eq(sm.pending, pending_of(&s));
	cr_assert_eq(s.leased, 0);
	assert_conserved(&s);
	tq_close(q);
	out_free(&so);
	out_free(&o);
}

/* --total: it stops producing, finishes everything and exits by itself. A
 * fresh queue: nothing is said to be left by an earlier run; big counts
 * are grouped; logfmt lines go neither to stdout nor, at the default level
 * warn, to stderr on a run without trouble. */
Test(demo, total_runs_to_completion)
{
	const char *name = qname("total");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--total", "2000", "--consumers", "2", "--batch", "16", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "all tasks done", "the demo's output");
	assert_contains(o.out, "summary: 2,000 tasks produced", "the demo's output (digits grouped)");
	cr_assert_null(strstr(o.out, "left by an earlier run"), "a fresh queue:\n%s", o.out);
	cr_assert_null(strstr(o.out, "exists"), "a fresh queue:\n%s", o.out);
	cr_assert_null(strstr(o.out, "level="), "logfmt on stdout:\n%s", o.out);
	cr_assert_null(strstr(o.out, "event="), "logfmt on stdout:\n%s", o.out);
	cr_assert_eq(o.err_len, 0, "stderr of a clean run: %s", o.err);
	struct summary sm = parse_summary(o.out);
	cr_assert_eq(sm.produced, 2000);
	cr_assert_eq(sm.in, 2000);
	cr_assert_eq(sm.pending, 0);
	cr_assert_eq(sm.done + sm.dead, 2000);
	tq_queue *q;
	cr_assert_eq(tq_open(name, &q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.pushed, 2000);
	cr_assert_eq(s.total.acked, sm.done);
	cr_assert_eq(pending_of(&s), 0);
	tq_close(q);

	/* Again on the same queue, now empty: still nothing "left". */
	demo_start(&p, name, "--total", "100", "--consumers", "2", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	cr_assert_null(strstr(o.out, "left by an earlier run"), "an empty queue:\n%s", o.out);
	out_free(&o);
}

/* Every task bad: more dead letters than the dead-letter area holds. The
 * demo's handler logs each one it purges (on stderr at --log-level info),
 * so the run finishes with every task accounted for, nothing dropped
 * unseen: what it purged plus what is still dead is every task. */
Test(demo, dead_letters_are_logged_and_purged_to_keep_room)
{
	const char *name = qname("deadkeep");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--total", "200", "--mix", "100", "--bad", "100", "--capacity", "100",
		   "--consumers", "2", "--batch", "8", "--log-level", "info", NULL);
	proc_finish(&p, 55000, &o);
	assert_status(&o, 0);
	struct summary sm = parse_summary(o.out);
	cr_assert_eq(sm.produced, 200);
	cr_assert_eq(sm.dead, 200, "every task is bad:\n%s", o.out);
	unsigned long long purged = 0, lines = 0;
	const char *at = strstr(o.out, " dead letters purged to keep room");
	if (at) {
		while (at > o.out && (at[-1] == ',' || (at[-1] >= '0' && at[-1] <= '9')))
			at--;
		char digits[32];
		size_t k = 0;
		for (; *at && *at != ' ' && k < sizeof(digits) - 1; at++)
			if (*at != ',')
				digits[k++] = *at;
		digits[k] = '\0';
		purged = strtoull(digits, NULL, 10);
	}
	for (const char *l = o.err; (l = strstr(l, "event=dead_letter_purged")) != NULL; l++)
		lines++;
	cr_assert_eq(lines, purged, "%llu purge lines logged, %llu purged in the summary", lines, purged);
	tq_queue *q;
	cr_assert_eq(tq_open(name, &q), 0);
	tq_stats s = stats(q);
	cr_assert_gt(purged, s.dead_capacity, "the area (%u) overflowed, so the handler purged: %s", s.dead_capacity,
		     o.out);
	cr_assert_eq(purged + s.dead, 200, "purged %llu + still dead %u", purged, s.dead);
	cr_assert_eq(s.total.dead, 200);
	assert_conserved(&s);
	tq_close(q);
	out_free(&o);
}

/* Logs: with --log-level info they come on stderr, never on stdout; with
 * --log-file they go to the file. */
Test(demo, logs_stay_off_stdout)
{
	const char *name = qname("logs");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--total", "200", "--consumers", "2", "--log-level", "info", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	cr_assert_null(strstr(o.out, "event="), "logfmt on stdout:\n%s", o.out);
	assert_contains(o.err, "event=demo_started", "stderr at --log-level info");
	assert_contains(o.err, "event=summary", "stderr at --log-level info");

	char path[] = "/tmp/tqt-demo-log-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	demo_start(&p, name, "--total", "200", "--consumers", "2", "--log-file", path, NULL);
	proc_finish(&p, 45000, &o);
	char text[8192] = "";
	FILE *f = fopen(path, "r");
	cr_assert(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(path);
	assert_status(&o, 0);
	cr_assert_null(strstr(o.out, "event="), "logfmt on stdout:\n%s", o.out);
	cr_assert_eq(o.err_len, 0, "stderr with --log-file: %s", o.err);
	assert_contains(text, "event=demo_started", "the log file");
	assert_contains(text, "event=summary", "the log file");
	out_free(&o);
}

Test(demo, help_and_bad_options)
{
	struct out o = {0};
	const char *name = qname("opts");

	char *help[] = {DEMO, "--help", NULL};
	run(help, NULL, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "usage:", "--help");
	static const char *every[] = {"--producers", "--consumers", "--rate", "--total", "--duration", "--mix",
				      "--batch", "--bad", "--work", "--queue", "--capacity", "--join", "--quiet",
				      "--serve", "--token-file", "--log-file", "--log-level", "--log-max-bytes",
				      "--log-max-files", "--help"};
	for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "%s ", every[i]); /* the whole name, then its argument or text */
		assert_contains(o.out, opt, "--help");
	}
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	char *h[] = {DEMO, "-h", NULL};
	run(h, NULL, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "usage:", "-h");

	const char *bad[][2] = {
		{"--bogus"}, {"--rate", "-5"}, {"--rate", "x"}, {"--consumers", "0"}, {"--producers", "65"},
		{"--duration", "0"}, {"--duration", "x"}, {"--duration", "-1"}, {"--mix", "101"},
		{"--bad", "101"}, {"--batch", "0"}, {"--work", "0"}, {"--capacity", "0"}, {"--total", "0"},
		{"extra"}, {"--rate"}, {"--log-level", "loud"}, {"--token-file", "/dev/null"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {DEMO, "--queue", (char *)name, (char *)bad[i][0], (char *)bad[i][1], NULL};
		run(argv, NULL, &o);
		assert_status(&o, 2);
		cr_assert(o.err_len > 0, "`%s`: no message", o.cmd);
		cr_assert(!shm_exists(name), "`%s` created the queue", o.cmd);
	}
	out_free(&o);
}

/* Reads the demo's output until `needle` is in its stdout (deadline). */
static void wait_output(struct proc *p, const char *needle)
{
	uint64_t deadline = tqt_now_ms() + 30000;
	while (!p->out.p || !strstr(p->out.p, needle)) {
		assert_alive(p, "before its output said so");
		cr_assert(tqt_now_ms() < deadline, "'%s' never came; stdout so far:\n%s", needle,
			  p->out.p ? p->out.p : "");
		proc_pump(p, 20);
	}
}

/* SIGINT to a demo that owns its queue: it drains, exits 0, and its summary
 * is the library's count of the same queue. */
static void drain_and_check(struct proc *p, tq_queue *q, int sig, struct out *o)
{
	cr_assert_eq(kill(p->pid, sig), 0);
	proc_finish(p, 45000, o);
	assert_status(o, 0);
	assert_contains(o->out, "interrupted: draining", "the demo's output");
	cr_assert_null(strstr(o->out, "MISMATCH"), "%s", o->out);
	struct summary sm = parse_summary(o->out);
	tq_stats s = stats(q);
	cr_assert_eq(sm.in, s.total.pushed, "%s", o->out);
	cr_assert_eq(sm.done, s.total.acked);
	cr_assert_eq(sm.dead, s.total.dead);
	cr_assert_eq(sm.pending, pending_of(&s));
	cr_assert_eq(s.leased, 0, "the drain acknowledged everything taken");
	assert_conserved(&s);
}

Test(demo, sighup_drains_like_sigint)
{
	const char *name = qname("hup");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--rate", "20000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	drain_and_check(&p, q, SIGHUP, &o);
	assert_contains(o.out, "(SIGHUP)", "the demo's output");
	assert_contains(o.out, "every task accounted for", "the demo's output");
	cr_assert_eq(tq_run_state(q), TQ_DRAINING);
	tq_close(q);
	out_free(&o);
}

/* A second demo on the queue a first one is running on is refused, naming
 * the first one's processes, and touches nothing: the first goes on and
 * its accounting balances. */
Test(demo, second_demo_on_a_live_queue_is_refused)
{
	const char *name = qname("busy");
	struct proc p;
	struct out o = {0}, o2 = {0};

	demo_start(&p, name, "--rate", "20000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	wait_output(&p, "capacity"); /* all its processes are up */

	char *second[] = {DEMO, "--queue", (char *)name, "--quiet", "--duration", "1", NULL};
	run(second, NULL, &o2);
	cr_assert_neq(o2.status, 0, "the second demo joined a live queue:\n%s", o2.out);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %d", (int)p.pid);
	assert_contains(o2.err, "in use by", "the refusal");
	assert_contains(o2.err, pid, "the refusal names the first demo");
	assert_contains(o2.err, "--join", "the refusal says how to proceed");
	assert_contains(o2.err, "--queue NAME", "the refusal says how to proceed");
	cr_assert_null(strstr(o2.out, "summary"), "%s", o2.out);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING, "the refused demo changed the run state");
	assert_alive(&p, "after a second demo was refused");
	uint64_t acked = stats(q).total.acked;
	wait_progress(&p, q, acked + 1); /* the first one still works */

	drain_and_check(&p, q, SIGINT, &o);
	assert_contains(o.out, "every task accounted for", "the first demo");
	cr_assert_null(strstr(o.out, "joined"), "%s", o.out);
	tq_close(q);
	out_free(&o);
	out_free(&o2);
}

/* --join: the second demo runs beside the first, its Ctrl+C drains only its
 * own processes (the queue keeps running), its summary counts only its
 * work; the first one's accounting, which includes the joined tasks,
 * balances. */
Test(demo, join_on_purpose_drains_and_counts_only_its_own)
{
	const char *name = qname("join");
	struct proc p, p2;
	struct out o = {0}, o2 = {0};

	demo_start(&p, name, "--rate", "20000", "--consumers", "2", NULL);
	tq_queue *q = open_demo_queue(&p, name);
	wait_progress(&p, q, 1);
	wait_output(&p, "capacity");

	demo_start(&p2, name, "--join", "--rate", "5000", "--consumers", "1", NULL);
	wait_output(&p2, "capacity"); /* started: its processes opened the queue */
	assert_contains(p2.out.p, "joining queue", "the joining demo");
	uint64_t pushed = stats(q).total.pushed, deadline = tqt_now_ms() + 30000;
	while (stats(q).total.pushed < pushed + 2000) { /* both push: 25,000/s in all */
		assert_alive(&p2, "while joined");
		cr_assert(tqt_now_ms() < deadline, "no tasks pushed while joined");
		proc_pump(&p2, 10);
	}
	cr_assert_eq(kill(p2.pid, SIGINT), 0);
	proc_finish(&p2, 45000, &o2);
	assert_status(&o2, 0);
	ungroup(o2.out);
	assert_contains(o2.out, "summary (joined queue", "the joined demo");
	assert_contains(o2.out, "accounting skipped", "the joined demo");
	cr_assert_null(strstr(o2.out, "every task accounted for"), "%s", o2.out);
	unsigned long long mine = 0;
	const char *line = strstr(o2.out, "this run pushed ");
	cr_assert(line, "%s", o2.out);
	cr_assert_eq(sscanf(line, "this run pushed %llu tasks", &mine), 1, "%s", line);

	cr_assert_eq(tq_run_state(q), TQ_RUNNING, "the joined demo's Ctrl+C drained the queue");
	assert_alive(&p, "after the joined demo stopped");
	uint64_t acked = stats(q).total.acked;
	wait_progress(&p, q, acked + 1);

	drain_and_check(&p, q, SIGINT, &o);
	assert_contains(o.out, "every task accounted for", "the first demo");
	struct summary sm = parse_summary(o.out);
	cr_assert_geq(sm.produced, mine, "the owner counts every task pushed, the joined ones too");
	if (mine)
		assert_contains(o.out, "pushed by processes that joined", "the owner's summary");
	tq_close(q);
	out_free(&o);
	out_free(&o2);
}

/* --serve without a port, or with a bad one: refused before anything
 * starts (no queue is created), with a message and exit status 2. */
Test(demo, serve_address_checked_before_starting)
{
	const char *name = qname("srvarg");
	struct out o = {0};
	const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http", "127.0.0.1:-1",
			     "[::1]", "::1:9740", "no-such-host.invalid:9740"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {DEMO, "--queue", (char *)name, "--quiet", "--serve", (char *)bad[i], NULL};
		run(argv, NULL, &o);
		assert_status(&o, 2);
		assert_contains(o.err, "--serve", o.cmd);
		assert_contains(o.err, bad[i], o.cmd);
		cr_assert_null(strstr(o.out, "serving"), "`%s` announced a server:\n%s", o.cmd, o.out);
		cr_assert(!shm_exists(name), "`%s` created the queue", o.cmd);
	}
	char *noport[] = {DEMO, "--queue", (char *)name, "--serve", "127.0.0.1", NULL};
	run(noport, NULL, &o);
	assert_contains(o.err, "no port", "--serve 127.0.0.1");
	out_free(&o);
}

/* A server that cannot listen (its port is taken) fails the start: exit
 * status 1 with taskq serve's message, nothing announced, no producer or
 * consumer run, and the queue this run created is removed. */
Test(demo, serve_that_cannot_listen_fails_the_start)
{
	const char *name = qname("srvbusy");
	struct out o = {0};

	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s, 1), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));

	char *argv[] = {DEMO, "--queue", (char *)name, "--quiet", "--serve", addr, NULL};
	run(argv, NULL, &o);
	close(s);
	assert_status(&o, 1);
	assert_contains(o.err, "cannot listen", "taskq serve's message");
	assert_contains(o.err, "taskq serve failed to start", "the demo's message");
	cr_assert_null(strstr(o.out, "serving"), "announced a server that is not running:\n%s", o.out);
	cr_assert_null(strstr(o.out, "capacity"), "announced a run that did not start:\n%s", o.out);
	cr_assert(!shm_exists(name), "the queue this run created is left behind");
	out_free(&o);
}

/* Without a token the announcement says read-only, with the port actually
 * listened on (port 0: any free one), and that port answers. */
Test(demo, serve_without_token_is_announced_read_only)
{
	const char *name = qname("srvro");
	struct proc p;
	struct out o = {0};

	unsetenv("TASKQ_TOKEN");
	demo_start(&p, name, "--rate", "2000", "--consumers", "2", "--serve", "127.0.0.1:0", NULL);
	wait_output(&p, "\nserving");
	const char *line = strstr(p.out.p, "\nserving") + 1;
	static const char ro[] = "serving metrics and stats, read-only, on http://127.0.0.1:";
	cr_assert(!strncmp(line, ro, strlen(ro)), "%s", line);
	unsigned port = 0;
	cr_assert_eq(sscanf(line + strlen(ro), "%u", &port), 1, "%s", line);
	cr_assert(port > 0 && port < 65536, "%s", line);
	cr_assert_null(strstr(p.out.p, "control on"), "%s", p.out.p);

	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof(a)), 0, "nothing listens on the announced port %u",
		     port);
	close(s);

	tq_queue *q = open_demo_queue(&p, name);
	drain_and_check(&p, q, SIGINT, &o);
	tq_close(q);
	out_free(&o);
}

/* With a token, control is on, and the announcement says so. */
Test(demo, serve_with_token_is_announced_with_control)
{
	const char *name = qname("srvctl");
	struct proc p;
	struct out o = {0};
	char path[] = "/tmp/tqt-demo-token-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "s3cret-token\n", 13), 13);
	close(fd);

	demo_start(&p, name, "--rate", "2000", "--consumers", "2", "--serve", "127.0.0.1:0", "--token-file", path,
		   NULL);
	wait_output(&p, "\nserving");
	unlink(path);
	assert_contains(p.out.p, "serving metrics, stats and control on http://127.0.0.1:", "the announcement");
	cr_assert_null(strstr(p.out.p, "read-only"), "%s", p.out.p);
	tq_queue *q = open_demo_queue(&p, name);
	drain_and_check(&p, q, SIGINT, &o);
	tq_close(q);
	out_free(&o);
}
