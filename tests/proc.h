/* SPDX-License-Identifier: MIT */
/*
 * proc.h - running the project's programs from tests: fork+exec with pipes
 * for stdin, stdout and stderr, a deadline, and the captured output. Shared
 * by the tests of the taskq command and of the demo. Everything is static,
 * so each test file has its own copy of the child list.
 */
#ifndef TQT_PROC_H
#define TQT_PROC_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef RUN_DEADLINE_MS
#define RUN_DEADLINE_MS 30000u
#endif

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

static inline void remember_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
}

static inline void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static inline void buf_add(struct buf *b, const char *p, size_t n)
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

static inline void join_argv(char *dst, size_t size, char *const argv[])
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
static inline void proc_start(struct proc *p, char *const argv[], const char *stdin_text, int flags)
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
static inline void proc_pump(struct proc *p, int timeout_ms)
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

static inline void out_free(struct out *o)
{
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

/* Waits up to timeout_ms for the child to exit, reading its output, and
 * fills o. Grandchildren may keep the pipes open: EOF is not waited for,
 * but everything written before the exit is read. On timeout the child is
 * SIGKILLed and o->status is -1. */
static inline void proc_finish(struct proc *p, unsigned timeout_ms, struct out *o)
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
static inline void signal_until_exit(struct proc *p, int sig, unsigned timeout_ms, struct out *o)
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
static inline int run_ex(char *const argv[], const char *stdin_text, int flags, struct out *o)
{
	struct proc p;
	proc_start(&p, argv, stdin_text, flags);
	proc_finish(&p, RUN_DEADLINE_MS, o);
	return o->status;
}

static inline int run(char *const argv[], const char *stdin_text, struct out *o)
{
	return run_ex(argv, stdin_text, 0, o);
}

/* Set once this test process has its own /dev/shm (enter_private_shm). */
static bool private_shm;

/* Moves this test process into its own mount namespace with a fresh tmpfs
 * on /dev/shm, if the machine allows it. */
static inline void enter_private_shm(void)
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

#endif
