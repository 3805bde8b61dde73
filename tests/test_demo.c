/*
 * test_demo.c - run.sh's demo end to end, through build/taskq-demo (the
 * program run.sh execs): the Ctrl+C drain and its summary, checked against
 * the library's own statistics of the same queue; the second Ctrl+C that
 * stops at once and the next run that delivers what was left; a drain
 * started by `taskq stop`; options.
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
#include <sys/mount.h>
#include <sys/stat.h>

#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#define TASKQ TQ_BIN_DIR "/taskq"
#define DEMO TQ_BIN_DIR "/taskq-demo"

#define RUN_DEADLINE_MS 30000u

static bool private_shm;

/* ------------------------------------------------------ child processes */

struct buf {
	char *p;
	size_t len, cap;
};

struct out {
	char cmd[512];     /* the command line, for messages */
	char *out, *err;   /* NUL-terminated captures ("" when nothing) */
	size_t out_len, err_len;
	int status;        /* exit code; 128 + signal if a signal ended it; -1 on timeout */
	int sig;           /* the signal that ended it, or 0 */
};

enum {
	RUN_STDOUT_CLOSED = 1, /* stdout is a pipe nobody reads (read end closed) */
	RUN_SIGPIPE_IGN = 2,   /* start with SIGPIPE ignored (default: SIG_DFL) */
};

struct proc {
	pid_t pid;
	int in_fd, out_fd, err_fd;
	const char *in;
	size_t in_len, in_off;
	struct buf out, err;
	char cmd[512];
};

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];

static void remember_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
}

static void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static void buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			abort();
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void join_argv(char *dst, size_t size, char *const argv[])
{
	size_t k = 0;
	dst[0] = '\0';
	for (int i = 0; argv[i] && k + 1 < size; i++) {
		int n = snprintf(dst + k, size - k, "%s%s", i ? " " : "", argv[i]);
		if (n < 0)
			break;
		k += (size_t)n;
	}
}

/* Starts argv[0] (a path) with stdin fed from stdin_text (NULL: /dev/null)
 * and stdout / stderr captured. */
static void proc_start(struct proc *p, char *const argv[], const char *stdin_text, int flags)
{
	int in[2] = {-1, -1}, out[2], err[2];

	memset(p, 0, sizeof(*p));
	join_argv(p->cmd, sizeof(p->cmd), argv);
	if (stdin_text && pipe2(in, O_CLOEXEC) != 0)
		abort();
	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
		abort();
	if (flags & RUN_STDOUT_CLOSED) {
		close(out[0]); /* nobody will ever read: writes get EPIPE / SIGPIPE */
		out[0] = -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		int null = stdin_text ? -1 : open("/dev/null", O_RDONLY);
		dup2(stdin_text ? in[0] : null, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGPIPE, (flags & RUN_SIGPIPE_IGN) ? SIG_IGN : SIG_DFL);
		execv(argv[0], argv);
		static const char m[] = "test: exec failed\n";
		(void)!write(2, m, sizeof(m) - 1);
		_exit(127);
	}
	remember_child(pid);
	p->pid = pid;
	if (stdin_text) {
		close(in[0]);
		p->in_fd = in[1];
		p->in = stdin_text;
		p->in_len = strlen(stdin_text);
		fcntl(p->in_fd, F_SETFL, O_NONBLOCK);
		if (p->in_len == 0) {
			close(p->in_fd);
			p->in_fd = -1;
		}
	} else {
		p->in_fd = -1;
	}
	close(out[1]);
	close(err[1]);
	p->out_fd = out[0];
	p->err_fd = err[0];
	if (p->out_fd >= 0)
		fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
}

/* Moves data between the pipes for up to timeout_ms. */
static void proc_pump(struct proc *p, int timeout_ms)
{
	struct pollfd f[3];
	int n = 0;
	if (p->in_fd >= 0)
		f[n++] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
	if (p->out_fd >= 0)
		f[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
	if (p->err_fd >= 0)
		f[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
	if (n == 0) {
		if (timeout_ms > 0)
			tqt_sleep_ms((unsigned)timeout_ms);
		return;
	}
	if (poll(f, (nfds_t)n, timeout_ms) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		if (!f[i].revents)
			continue;
		if (f[i].fd == p->in_fd) {
			ssize_t w = write(p->in_fd, p->in + p->in_off, p->in_len - p->in_off);
			if (w > 0)
				p->in_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || p->in_off == p->in_len) {
				close(p->in_fd);
				p->in_fd = -1;
			}
			continue;
		}
		int *fd = f[i].fd == p->out_fd ? &p->out_fd : &p->err_fd;
		struct buf *b = f[i].fd == p->out_fd ? &p->out : &p->err;
		for (;;) {
			char tmp[8192];
			ssize_t r = read(*fd, tmp, sizeof(tmp));
			if (r > 0) {
				buf_add(b, tmp, (size_t)r);
				continue;
			}
			if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(*fd);
				*fd = -1;
			}
			break;
		}
	}
}

static void out_free(struct out *o)
{
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

/* Waits up to timeout_ms for the child to exit, reading its output, and
 * fills o. Grandchildren may keep the pipes open: EOF is not waited for,
 * but everything written before the exit is read. On timeout the child is
 * SIGKILLed and o->status is -1. */
static void proc_finish(struct proc *p, unsigned timeout_ms, struct out *o)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	int st = 0;
	bool timed_out = false;

	out_free(o);
	for (;;) {
		proc_pump(p, 20);
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid)
			break;
		if (r < 0 && errno != EINTR)
			abort();
		if (tqt_now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
				;
			timed_out = true;
			break;
		}
	}
	forget_child(p->pid);
	if (p->in_fd >= 0)
		close(p->in_fd);
	p->in_fd = -1;
	/* What the child wrote before exiting is in the pipes now. */
	for (int i = 0; i < 50 && (p->out_fd >= 0 || p->err_fd >= 0); i++) {
		size_t before = p->out.len + p->err.len;
		proc_pump(p, i == 0 ? 1 : 0);
		if (p->out.len + p->err.len == before && i > 2)
			break;
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->out_fd = p->err_fd = -1;
	snprintf(o->cmd, sizeof(o->cmd), "%s", p->cmd);
	o->out = p->out.p ? p->out.p : strdup("");
	o->err = p->err.p ? p->err.p : strdup("");
	o->out_len = p->out.len;
	o->err_len = p->err.len;
	p->out.p = p->err.p = NULL;
	if (timed_out)
		o->status = -1;
	else if (WIFEXITED(st))
		o->status = WEXITSTATUS(st);
	else if (WIFSIGNALED(st)) {
		o->sig = WTERMSIG(st);
		o->status = 128 + o->sig;
	} else
		o->status = -2;
}

/* Sends sig every 50 ms until the child exits (at most timeout_ms). */
static void signal_until_exit(struct proc *p, int sig, unsigned timeout_ms, struct out *o)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	siginfo_t si;
	for (;;) {
		kill(p->pid, sig);
		proc_pump(p, 50);
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == p->pid)
			break;
		if (tqt_now_ms() > deadline)
			break;
	}
	uint64_t now = tqt_now_ms();
	proc_finish(p, now < deadline ? (unsigned)(deadline - now) : 1, o);
}

/* Runs argv to completion (with a deadline) and captures everything. */
static int run_ex(char *const argv[], const char *stdin_text, int flags, struct out *o)
{
	struct proc p;
	proc_start(&p, argv, stdin_text, flags);
	proc_finish(&p, RUN_DEADLINE_MS, o);
	return o->status;
}

static int run(char *const argv[], const char *stdin_text, struct out *o)
{
	return run_ex(argv, stdin_text, 0, o);
}


/* Moves this test process into its own mount namespace with a fresh tmpfs
 * on /dev/shm, if the machine allows it. */
static void enter_private_shm(void)
{
	if (unshare(CLONE_NEWNS) != 0) {
		uid_t uid = getuid();
		gid_t gid = getgid();
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
			return;
		char m[64];
		int fd = open("/proc/self/setgroups", O_WRONLY);
		if (fd >= 0) {
			(void)!write(fd, "deny", 4);
			close(fd);
		}
		fd = open("/proc/self/uid_map", O_WRONLY);
		if (fd < 0)
			return;
		int n = snprintf(m, sizeof(m), "0 %u 1", (unsigned)uid);
		bool ok = write(fd, m, (size_t)n) == n;
		close(fd);
		fd = open("/proc/self/gid_map", O_WRONLY);
		if (fd < 0)
			return;
		n = snprintf(m, sizeof(m), "0 %u 1", (unsigned)gid);
		ok = ok && write(fd, m, (size_t)n) == n;
		close(fd);
		if (!ok)
			return;
	}
	/* Never let the new mount propagate back to the machine's /dev/shm. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return;
	if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
		return;
	private_shm = true;
}


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

struct summary {
	unsigned long long in, done, dead, pending, produced;
};

/* Parses "every task accounted for: N in = D done + X dead + P pending" and
 * "summary: K tasks produced". */
static struct summary parse_summary(const char *out)
{
	struct summary s;
	const char *p = strstr(out, "every task accounted for: ");
	cr_assert(p, "no accounting line in:\n%s", out);
	cr_assert_eq(sscanf(p, "every task accounted for: %llu in = %llu done + %llu dead + %llu pending", &s.in,
			    &s.done, &s.dead, &s.pending),
		     4, "cannot parse: %.120s", p);
	p = strstr(out, "summary: ");
	cr_assert(p, "no summary line in:\n%s", out);
	cr_assert_eq(sscanf(p, "summary: %llu tasks produced", &s.produced), 1, "cannot parse: %.120s", p);
	cr_assert_eq(s.in, s.done + s.dead + s.pending, "the summary does not add up: %.200s", p);
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
	assert_contains(o.out, "stopped at once", "after the second Ctrl+C");
	cr_assert_null(strstr(o.out, "every task accounted for"), "%s", o.out);
	unsigned in_progress = 0, ready = 0;
	const char *line = strstr(o.out, "stopped at once: ");
	cr_assert_eq(sscanf(line, "stopped at once: %u tasks in progress and %u ready", &in_progress, &ready), 2,
		     "%s", line);
	cr_assert_gt(in_progress + ready, 0, "the stop left nothing behind?\n%s", o.out);
	cr_assert_eq(tq_run_state(q), TQ_STOPPED);

	/* The next run: tasks left by the earlier one are delivered. */
	demo_start(&p, name, "--duration", "1", "--rate", "2000", "--consumers", "2", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
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

/* --total: it stops producing, finishes everything and exits by itself. */
Test(demo, total_runs_to_completion)
{
	const char *name = qname("total");
	struct proc p;
	struct out o = {0};

	demo_start(&p, name, "--total", "500", "--consumers", "2", "--batch", "16", NULL);
	proc_finish(&p, 45000, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "all tasks done", "the demo's output");
	struct summary sm = parse_summary(o.out);
	cr_assert_eq(sm.produced, 500);
	cr_assert_eq(sm.in, 500);
	cr_assert_eq(sm.pending, 0);
	cr_assert_eq(sm.done + sm.dead, 500);
	tq_queue *q;
	cr_assert_eq(tq_open(name, &q), 0);
	tq_stats s = stats(q);
	cr_assert_eq(s.total.pushed, 500);
	cr_assert_eq(s.total.acked, sm.done);
	cr_assert_eq(pending_of(&s), 0);
	tq_close(q);
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
	assert_contains(o.out, "--queue", "--help");
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	char *h[] = {DEMO, "-h", NULL};
	run(h, NULL, &o);
	assert_status(&o, 0);
	assert_contains(o.out, "usage:", "-h");

	const char *bad[][2] = {
		{"--bogus"}, {"--rate", "-5"}, {"--rate", "x"}, {"--consumers", "0"}, {"--producers", "65"},
		{"--duration", "0"}, {"--duration", "x"}, {"--duration", "-1"}, {"--mix", "101"},
		{"--bad", "101"}, {"--batch", "0"}, {"--work", "0"}, {"--capacity", "0"}, {"--total", "0"},
		{"extra"}, {"--rate"},
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
