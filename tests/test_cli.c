/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the taskq command end to end: every subcommand run as a real
 * child process (fork + exec, stdin/stdout/stderr on pipes, a deadline),
 * checking exit statuses against the table of `taskq --help`, that
 * messages go to stderr, and that nothing in a queue is lost.
 *
 * Each test runs in its own process; where the machine allows it (root, or
 * unprivileged user namespaces) that process first moves into a private
 * mount namespace with its own tmpfs on /dev/shm, so that `taskq ls` and
 * `taskq clean` see only this test's queues and never touch (or are
 * touched by) queues of tests running beside it. Queue names carry the pid
 * either way, and every queue is destroyed in the suite's .fini.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#define TASKQ TQ_BIN_DIR "/taskq"

#define RUN_DEADLINE_MS 30000u

/* ------------------------------------------------------ child processes */

#include "proc.h"

/* taskq ARGS... (NULL-terminated), with optional stdin text. */
#define MAX_ARGS 64
static int vtq(struct out *o, const char *stdin_text, int flags, va_list ap)
{
	char *argv[MAX_ARGS];
	int n = 0;
	argv[n++] = (char *)TASKQ;
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return flags ? run_ex(argv, stdin_text, flags, o) : run(argv, stdin_text, o);
}

static int tq(struct out *o, const char *stdin_text, ...)
{
	va_list ap;
	va_start(ap, stdin_text);
	int rc = vtq(o, stdin_text, 0, ap);
	va_end(ap);
	return rc;
}

static int tq_flags(struct out *o, const char *stdin_text, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int rc = vtq(o, stdin_text, flags, ap);
	va_end(ap);
	return rc;
}

/* ------------------------------------------------------ binary and streamed stdin */

static int vargv(char *argv[MAX_ARGS], va_list ap)
{
	int n = 0;
	argv[n++] = (char *)TASKQ;
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return n;
}

/* taskq ARGS... with stdin holding exactly len bytes (NULs allowed; the
 * first byte must not be one). */
static int tq_bin(struct out *o, const char *in, size_t len, ...)
{
	char *argv[MAX_ARGS];
	struct proc p;
	va_list ap;

	va_start(ap, len);
	vargv(argv, ap);
	va_end(ap);
	cr_assert(len > 0 && in[0] != '\0');
	proc_start(&p, argv, in, 0);
	p.in_len = len; /* proc_start counted up to the first NUL */
	proc_finish(&p, RUN_DEADLINE_MS, o);
	return o->status;
}

/* Starts taskq (argv) with stdin from in_fd, stdout and stderr captured. */
static void spawn_tq(struct proc *p, int in_fd, char *const argv[])
{
	int out[2], err[2];

	memset(p, 0, sizeof(*p));
	join_argv(p->cmd, sizeof(p->cmd), argv);
	cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(in_fd, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	remember_child(pid);
	close(out[1]);
	close(err[1]);
	p->pid = pid;
	p->in_fd = -1;
	p->out_fd = out[0];
	p->err_fd = err[0];
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
}

/* Waits (with the run deadline) for a spawn_tq child, reading its output;
 * fills o as proc_finish does and *ru with its resource use (wait4). */
static void finish_tq(struct proc *p, struct out *o, struct rusage *ru)
{
	uint64_t deadline = tqt_now_ms() + RUN_DEADLINE_MS;
	int st = 0;
	bool timed_out = false;

	out_free(o);
	memset(ru, 0, sizeof(*ru));
	for (;;) {
		proc_pump(p, 10);
		pid_t r = wait4(p->pid, &st, WNOHANG, ru);
		if (r == p->pid)
			break;
		cr_assert(r == 0 || errno == EINTR, "wait4: %s", strerror(errno));
		if (tqt_now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			while (wait4(p->pid, &st, 0, ru) < 0 && errno == EINTR)
				;
			timed_out = true;
			break;
		}
	}
	forget_child(p->pid);
	for (int i = 0; i < 1000 && (p->out_fd >= 0 || p->err_fd >= 0); i++)
		proc_pump(p, 10); /* to EOF: the child is gone, nobody else holds the pipes */
	snprintf(o->cmd, sizeof(o->cmd), "%s", p->cmd);
	o->out = p->out.p ? p->out.p : strdup("");
	o->err = p->err.p ? p->err.p : strdup("");
	o->out_len = p->out.len;
	o->err_len = p->err.len;
	p->out.p = p->err.p = NULL;
	o->status = timed_out ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the reader is gone (it refused a line): fine */
		p += w;
		n -= (size_t)w;
	}
}

/* Streams for stdin, written by a child process so that the test process
 * never holds them: head, then `big` bytes of 'x', then tail. */
struct big_line {
	const char *head, *tail;
	uint64_t big;
};

static void gen_big_line(int fd, const void *arg)
{
	const struct big_line *g = arg;
	static char chunk[1 << 16];

	memset(chunk, 'x', sizeof(chunk));
	write_all(fd, g->head, strlen(g->head));
	for (uint64_t left = g->big; left > 0;) {
		size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		write_all(fd, chunk, n);
		left -= n;
	}
	write_all(fd, g->tail, strlen(g->tail));
}

/* n lines, line i being i as 8 digits padded with 'y' to width bytes. */
struct numbered_lines {
	unsigned n, width;
};

static void gen_numbered_lines(int fd, const void *arg)
{
	const struct numbered_lines *g = arg;
	static char chunk[1 << 16];
	size_t k = 0;

	for (unsigned i = 0; i < g->n; i++) {
		char num[16];
		snprintf(num, sizeof(num), "%08u", i % 100000000u);
		/* The line in pieces that fit the chunk: 8 digits, 'y's, newline. */
		for (size_t done = 0, len = (size_t)g->width + 1; done < len;) {
			if (k == sizeof(chunk)) {
				write_all(fd, chunk, k);
				k = 0;
			}
			size_t n = len - done < sizeof(chunk) - k ? len - done : sizeof(chunk) - k;
			for (size_t j = 0; j < n; j++) {
				size_t at = done + j;
				chunk[k + j] = at < 8 ? num[at] : at == len - 1 ? '\n' : 'y';
			}
			k += n;
			done += n;
		}
	}
	write_all(fd, chunk, k);
}

/* taskq ARGS... with stdin the output of gen(arg), run in a child; *ru is
 * taskq's resource use (its peak memory: ru_maxrss, in KiB). */
static int tq_streamed(struct out *o, struct rusage *ru, void (*gen)(int, const void *), const void *arg, ...)
{
	char *argv[MAX_ARGS];
	int in[2];
	struct proc p;
	va_list ap;

	va_start(ap, arg);
	vargv(argv, ap);
	va_end(ap);
	cr_assert(pipe2(in, O_CLOEXEC) == 0);
	fflush(NULL);
	pid_t w = fork();
	cr_assert(w >= 0);
	if (w == 0) {
		close(in[0]);
		signal(SIGPIPE, SIG_DFL);
		gen(in[1], arg);
		_exit(0);
	}
	remember_child(w);
	close(in[1]);
	spawn_tq(&p, in[0], argv);
	close(in[0]);
	finish_tq(&p, o, ru);
	int ws = tqt_wait(w, 10000); /* done, or killed by SIGPIPE: taskq stopped reading */
	forget_child(w);
	cr_assert(ws == 0 || ws == 128 + SIGPIPE, "the stream writer ended with %d", ws);
	return o->status;
}

/* An independent UTF-8 check: every sequence well formed (no overlong
 * form, surrogate or code point above U+10FFFF). */
static bool utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t c = p[i], cp;
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n)
			return false;
		cp = len == 1 ? c : c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

#define assert_json_output(o)                                                                         \
	do {                                                                                          \
		cr_assert(js_valid((o)->out), "`%s`: not JSON:\n%s", (o)->cmd, (o)->out);             \
		cr_assert(utf8_ok((o)->out, (o)->out_len), "`%s`: --json output is not valid UTF-8:\n%s", \
			  (o)->cmd, (o)->out);                                                        \
	} while (0)

/* Exit status `code`, and messages on stderr only (unless stdout_ok). */
#define assert_status(o, code)                                                                        \
	cr_assert_eq((o)->status, (code), "`%s`: exit status %d, want %d\nstdout: %s\nstderr: %s", (o)->cmd, \
		     (o)->status, (code), (o)->out, (o)->err)
#define assert_fails(o, code)                                                                        \
	do {                                                                                         \
		assert_status(o, code);                                                              \
		cr_assert_eq((o)->out_len, 0, "`%s`: wrote to stdout on failure: %s", (o)->cmd, (o)->out); \
		cr_assert((o)->err_len > 0, "`%s`: exit %d without a message on stderr", (o)->cmd,      \
			  (o)->status);                                                              \
	} while (0)
#define assert_ok(o)                                                                                  \
	do {                                                                                          \
		assert_status(o, 0);                                                                  \
	} while (0)
#define assert_contains(hay, needle, what)                                                            \
	cr_assert(strstr((hay), (needle)) != NULL, "%s: '%s' not found in:\n%s", (what), (needle), (hay))

/* ------------------------------------------------------ a minimal JSON reader */

static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *js_skip(const char *p);

static const char *js_skip_string(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!p[1])
				return NULL;
			p++;
		} else if (*p == '"') {
			return p + 1;
		} else if ((unsigned char)*p < 0x20) {
			return NULL;
		}
	}
	return NULL;
}

/* Skips one JSON value at p (no leading whitespace); NULL if malformed. */
static const char *js_skip(const char *p)
{
	if (*p == '"')
		return js_skip_string(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		p = js_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = js_skip_string(p);
				if (!p)
					return NULL;
				p = js_ws(p);
				if (*p != ':')
					return NULL;
				p = js_ws(p + 1);
			}
			p = js_skip(p);
			if (!p)
				return NULL;
			p = js_ws(p);
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p = js_ws(p + 1);
		}
	}
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	char *end;
	(void)strtod(p, &end);
	return end == p ? NULL : end;
}

/* True if s is exactly one JSON value (surrounded by whitespace). */
static bool js_valid(const char *s)
{
	const char *p = js_skip(js_ws(s));
	return p && *js_ws(p) == '\0';
}

/* The value at path ("totals.acked", "0.id", "config.mode") or NULL. */
static const char *jget(const char *json, const char *path)
{
	const char *p = js_ws(json);
	while (*path) {
		const char *dot = strchr(path, '.');
		size_t klen = dot ? (size_t)(dot - path) : strlen(path);
		if (*p == '{') {
			p = js_ws(p + 1);
			bool found = false;
			while (*p == '"') {
				const char *kend = js_skip_string(p);
				if (!kend)
					return NULL;
				bool match = (size_t)(kend - p - 2) == klen && !strncmp(p + 1, path, klen);
				p = js_ws(kend);
				if (*p != ':')
					return NULL;
				p = js_ws(p + 1);
				if (match) {
					found = true;
					break;
				}
				p = js_skip(p);
				if (!p)
					return NULL;
				p = js_ws(p);
				if (*p == ',')
					p = js_ws(p + 1);
			}
			if (!found)
				return NULL;
		} else if (*p == '[') {
			char *end;
			long idx = strtol(path, &end, 10);
			if (end != path + klen || idx < 0)
				return NULL;
			p = js_ws(p + 1);
			for (long i = 0; i < idx; i++) {
				if (*p == ']')
					return NULL;
				p = js_skip(p);
				if (!p)
					return NULL;
				p = js_ws(p);
				if (*p != ',')
					return NULL;
				p = js_ws(p + 1);
			}
			if (*p == ']')
				return NULL;
		} else {
			return NULL;
		}
		path += klen + (dot ? 1 : 0);
	}
	return p;
}

static double jnum(const char *json, const char *path)
{
	const char *v = jget(json, path);
	char *end;
	if (!v)
		return NAN;
	double d = strtod(v, &end);
	return end == v ? NAN : d;
}

/* Copies the string at path (simple escapes decoded); false if not a string. */
static bool jstr(const char *json, const char *path, char *out, size_t size)
{
	const char *v = jget(json, path);
	if (!v || *v != '"' || size == 0)
		return false;
	size_t k = 0;
	for (v++; *v && *v != '"'; v++) {
		char c = *v;
		if (c == '\\') {
			v++;
			switch (*v) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': c = '?'; v += 4; break;
			default: c = *v; break;
			}
		}
		if (k + 1 < size)
			out[k++] = c;
	}
	out[k] = '\0';
	return *v == '"';
}

/* NDJSON (one JSON document a line, each line ending in a newline, none
 * empty) as one JSON array, for jget paths "0.id": the array in *arr
 * (malloc'd; the caller frees it), the number of lines returned. Asserts
 * that every line is one compact JSON value. */
static int ndjson_array(const char *s, char **arr)
{
	size_t len = strlen(s);
	char *a = malloc(len + 3), *k = a;
	int n = 0;

	cr_assert(a);
	*k++ = '[';
	while (*s) {
		const char *nl = strchr(s, '\n');
		cr_assert(nl, "an NDJSON line without its newline: %s", s);
		cr_assert(nl > s, "an empty line in NDJSON");
		char line[65536];
		size_t n_ = (size_t)(nl - s);
		cr_assert(n_ < sizeof(line));
		memcpy(line, s, n_);
		line[n_] = '\0';
		cr_assert(js_valid(line) && *line != ' ', "NDJSON line %d is not one JSON value: %s", n + 1, line);
		if (n++)
			*k++ = ',';
		memcpy(k, s, n_);
		k += n_;
		s = nl + 1;
	}
	*k++ = ']';
	*k = '\0';
	*arr = a;
	return n;
}

/* Elements of the array at path ("" for the top level); -1 if not an array. */
static int jlen(const char *json, const char *path)
{
	const char *p = *path ? jget(json, path) : js_ws(json);
	if (!p || *p != '[')
		return -1;
	p = js_ws(p + 1);
	if (*p == ']')
		return 0;
	int n = 0;
	for (;;) {
		p = js_skip(p);
		if (!p)
			return -1;
		n++;
		p = js_ws(p);
		if (*p != ',')
			return *p == ']' ? n : -1;
		p = js_ws(p + 1);
	}
}

#define assert_jnum(json, path, want)                                                                 \
	do {                                                                                          \
		double got_ = jnum((json), (path));                                                   \
		cr_assert(got_ == (double)(want), "JSON %s = %g, want %g in:\n%s", (path), got_,      \
			  (double)(want), (json));                                                    \
	} while (0)
#define assert_jstr(json, path, want)                                                                 \
	do {                                                                                          \
		char got_[4096];                                                                      \
		cr_assert(jstr((json), (path), got_, sizeof(got_)), "JSON %s: no string in:\n%s",    \
			  (path), (json));                                                            \
		cr_assert_str_eq(got_, (want), "JSON %s = '%s', want '%s'", (path), got_, (want));    \
	} while (0)

/* ------------------------------------------------------ text helpers */

/* Parses stdout made of one unsigned integer per line; returns the count,
 * or -1 if some line is not one. */
static int parse_ids(const char *s, uint64_t *ids, int max)
{
	int n = 0;
	while (*s) {
		char *end;
		if (*s < '0' || *s > '9')
			return -1;
		unsigned long long v = strtoull(s, &end, 10);
		if (*end != '\n' || n >= max)
			return -1;
		ids[n++] = v;
		s = end + 1;
	}
	return n;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Splits a `take --verbose` line "ID\tKIND\tATTEMPT\tPAYLOAD\n" into the
 * starts of its four fields; false if it is not one. */
static bool split_verbose(const char *p, const char *f[4])
{
	f[0] = p;
	for (int i = 1; i < 4; i++) {
		const char *tab = strchr(f[i - 1], '\t');
		const char *nl = strchr(f[i - 1], '\n');
		if (!tab || (nl && nl < tab))
			return false;
		f[i] = tab + 1;
	}
	return *f[0] >= '0' && *f[0] <= '9';
}

/* 1 / 0 for a JSON true / false at path, -1 otherwise. */
static int jbool(const char *json, const char *path)
{
	const char *v = jget(json, path);
	if (v && !strncmp(v, "true", 4))
		return 1;
	if (v && !strncmp(v, "false", 5))
		return 0;
	return -1;
}

/* ------------------------------------------------------ queues and files */

#define MAX_QUEUES 16
static char queues[MAX_QUEUES][TQ_NAME_MAX + 1];
static char tmpdir[256];

/* A unique queue name, destroyed at the end of the test. */
static const char *qname(const char *what)
{
	for (int i = 0; i < MAX_QUEUES; i++)
		if (!queues[i][0]) {
			snprintf(queues[i], sizeof(queues[i]), "tqt-cli-%s-%ld", what, (long)getpid());
			return queues[i];
		}
	abort();
}

static void shm_file(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/dev/shm/taskq.%s", name);
}

static bool shm_exists(const char *name)
{
	char path[TQ_NAME_MAX + 32];
	struct stat st;
	shm_file(path, sizeof(path), name);
	return stat(path, &st) == 0;
}

/* A segment named like a queue that is not one. */
static void make_garbage_segment(const char *name, size_t size)
{
	char obj[TQ_NAME_MAX + 16];
	snprintf(obj, sizeof(obj), "/taskq.%s", name);
	int fd = shm_open(obj, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0, "shm_open %s: %s", obj, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	char junk[512];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37 + 11);
	for (size_t off = 0; off + sizeof(junk) <= size; off += sizeof(junk))
		cr_assert_eq(pwrite(fd, junk, sizeof(junk), (off_t)off), (ssize_t)sizeof(junk));
	close(fd);
}

static tq_stats lib_stats(const char *name)
{
	tq_queue *q;
	tq_stats s;
	int rc = tq_open(name, &q);
	cr_assert_eq(rc, 0, "tq_open %s: %s", name, tq_strerror(rc));
	cr_assert_eq(tq_stats_get(q, &s), 0);
	tq_close(q);
	return s;
}

static const char *tmp_path(char *buf, size_t size, const char *file)
{
	snprintf(buf, size, "%s/%s", tmpdir, file);
	return buf;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b = {0};
	buf_add(&b, "", 0);
	if (!f)
		return b.p;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	return b.p;
}


static void cli_init(void)
{
	memset(queues, 0, sizeof(queues));
	memset(children, 0, sizeof(children));
	enter_private_shm();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tqt-cli-%ld-XXXXXX", (long)getpid());
	if (!mkdtemp(tmpdir))
		tmpdir[0] = '\0';
}

static void cli_fini(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	for (int i = 0; i < MAX_QUEUES; i++)
		if (queues[i][0]) {
			tq_destroy(queues[i]);
			char obj[TQ_NAME_MAX + 16];
			snprintf(obj, sizeof(obj), "/taskq.%.*s", TQ_NAME_MAX, queues[i]);
			shm_unlink(obj); /* the non-queue segments too */
			queues[i][0] = '\0';
		}
	if (tmpdir[0]) {
		/* A failed test may leave a command (started by taskq work in its
		 * own process group) blocked reading the FIFO: let it go. */
		char fifo[600];
		tmp_path(fifo, sizeof(fifo), "fifo");
		for (int i = 0; i < 1000; i++) {
			int fd = open(fifo, O_WRONLY | O_NONBLOCK);
			if (fd < 0)
				break; /* ENXIO: no reader left (or no FIFO) */
			for (int k = 0; k < 16; k++)
				(void)!write(fd, "go\n", 3);
			close(fd);
			tqt_sleep_ms(2);
		}
		DIR *d = opendir(tmpdir);
		struct dirent *e;
		char path[600];
		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlink(tmp_path(path, sizeof(path), e->d_name));
		if (d)
			closedir(d);
		rmdir(tmpdir);
	}
}

TestSuite(cli, .init = cli_init, .fini = cli_fini, .timeout = 60);

/* Creates a queue with `taskq create NAME [options...]`, asserting success. */
#define create_ok(name, ...)                                                                          \
	do {                                                                                          \
		struct out co_ = {0};                                                                 \
		tq(&co_, NULL, "create", (name), ##__VA_ARGS__, NULL);                                \
		assert_ok(&co_);                                                                      \
		out_free(&co_);                                                                       \
	} while (0)

/* Pushes the given values (string kind), asserting success. */
#define push_ok(name, ...)                                                                            \
	do {                                                                                          \
		struct out po_ = {0};                                                                 \
		tq(&po_, NULL, "push", (name), __VA_ARGS__, NULL);                                    \
		assert_ok(&po_);                                                                      \
		out_free(&po_);                                                                       \
	} while (0)

/* ================================================================ help */

static const char *const listed_commands[] = {"create", "info", "stats", "push", "take", "work", "dead",
					      "recover", "stop", "pause", "resume", "ls", "destroy", "clean"};

Test(cli, help_top_level)
{
	struct out o = {0};
	const char *forms[] = {"--help", "-h", "help"};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		tq(&o, NULL, forms[i], NULL);
		assert_ok(&o);
		cr_assert_eq(o.err_len, 0, "`%s` wrote to stderr: %s", o.cmd, o.err);
		assert_contains(o.out, "usage: taskq COMMAND", o.cmd);
		for (size_t c = 0; c < sizeof(listed_commands) / sizeof(listed_commands[0]); c++) {
			char line[64];
			snprintf(line, sizeof(line), "\n  %s ", listed_commands[c]);
			assert_contains(o.out, line, "the command list");
		}
		/* The exit status table the other tests check against. */
		const char *rows[] = {"  0  success", "  1  failure", "  2  bad command", "  3  no such queue",
				      "  4  not a taskq queue", "  5  invalid task input", "  6  nothing to take",
				      "  7  the queue is draining or stopped"};
		for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
			assert_contains(o.out, rows[r], "the exit status table");
	}
	/* No command at all: the usage goes to stderr, status 2. */
	tq(&o, NULL, NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "usage: taskq", "bare taskq");
	out_free(&o);
}

/* Every subcommand, those of the brief and whatever else `taskq --help`
 * lists, answers --help with its usage on stdout and status 0. */
Test(cli, help_every_subcommand)
{
	struct out top = {0}, o = {0};
	char names[64][32];
	int n = 0;

	for (size_t c = 0; c < sizeof(listed_commands) / sizeof(listed_commands[0]); c++)
		snprintf(names[n++], sizeof(names[0]), "%s", listed_commands[c]);
	tq(&top, NULL, "--help", NULL);
	assert_ok(&top);
	const char *p = strstr(top.out, "Commands:\n");
	cr_assert(p, "no command list in taskq --help");
	for (p = strchr(p, '\n') + 1; p[0] == ' ' && p[1] == ' ' && p[2] != ' ' && n < 64;) {
		char w[32];
		if (sscanf(p, " %31s", w) == 1) {
			bool dup = false;
			for (int i = 0; i < n; i++)
				dup = dup || !strcmp(names[i], w);
			if (!dup)
				snprintf(names[n++], sizeof(names[0]), "%s", w);
		}
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	for (int i = 0; i < n; i++) {
		char want[128];
		tq(&o, NULL, names[i], "--help", NULL);
		assert_ok(&o);
		snprintf(want, sizeof(want), "usage: taskq %.31s", names[i]);
		cr_assert(!strncmp(o.out, want, strlen(want)), "`%s`: stdout does not start with '%s':\n%s", o.cmd,
			  want, o.out);
		cr_assert_eq(o.err_len, 0, "`%s` wrote to stderr: %s", o.cmd, o.err);
		/* -h too */
		tq(&o, NULL, names[i], "-h", NULL);
		assert_ok(&o);
		cr_assert(!strncmp(o.out, want, strlen(want)), "`%s`: %s", o.cmd, o.out);
	}
	out_free(&o);
	out_free(&top);
}

Test(cli, usage_errors_exit_2)
{
	struct out o = {0};
	const char *q = qname("usage");
	const char *xn = qname("xnew");
	create_ok(q);

	tq(&o, NULL, "frobnicate", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "frobnicate", "unknown command");

	/* An unknown flag, on every subcommand. */
	const char *unknown[][6] = {
		{"create", xn, "--bogus"}, {"info", q, "--bogus"}, {"stats", q, "--bogus"},
		{"push", q, "--bogus", "a"}, {"take", q, "--bogus"}, {"work", q, "--bogus", "--", "true"},
		{"dead", q, "--bogus"}, {"recover", q, "--bogus"}, {"stop", q, "--bogus"},
		{"pause", q, "--bogus"}, {"resume", q, "--bogus"}, {"ls", "--bogus"},
		{"destroy", q, "--bogus"}, {"clean", "--bogus"}, {"take", q, "-Z"},
	};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		tq(&o, NULL, unknown[i][0], unknown[i][1], unknown[i][2], unknown[i][3], unknown[i][4], NULL);
		assert_fails(&o, 2);
	}
	/* Missing arguments and missing option values. */
	const char *missing[][5] = {
		{"create"}, {"info"}, {"stats"}, {"push"}, {"take"}, {"work"}, {"work", q},
		{"work", q, "--"}, {"dead"}, {"recover"}, {"stop"}, {"pause"}, {"resume"}, {"destroy"},
		{"create", xn, "--capacity"}, {"take", q, "-n"}, {"take", q, "--timeout"},
		{"push", q, "--kind"}, {"work", q, "--concurrency"},
	};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		tq(&o, NULL, missing[i][0], missing[i][1], missing[i][2], missing[i][3], NULL);
		assert_fails(&o, 2);
	}
	/* Too many arguments. */
	const char *extra[][4] = {
		{"info", q, "extra"}, {"stats", q, "extra"}, {"take", q, "extra"}, {"recover", q, "extra"},
		{"stop", q, "extra"}, {"pause", q, "extra"}, {"resume", q, "extra"}, {"ls", "extra"},
		{"clean", "extra"}, {"destroy", q, "extra"}, {"create", xn, "extra"},
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		tq(&o, NULL, extra[i][0], extra[i][1], extra[i][2], NULL);
		assert_fails(&o, 2);
	}
	/* Bad option values outside create. */
	const char *badval[][5] = {
		{"take", q, "-n", "0"}, {"take", q, "-n", "x"}, {"take", q, "--timeout", "-1"},
		{"take", q, "--timeout", "soon"}, {"push", q, "--kind", "float"},
		{"push", q, "--timeout", "x"}, {"work", q, "--concurrency", "0"},
		{"work", q, "--batch", "0"}, {"work", q, "--idle-exit", "0"}, {"work", q, "--max-tasks", "0"},
		{"work", q, "--task-timeout", "x"},
	};
	for (size_t i = 0; i < sizeof(badval) / sizeof(badval[0]); i++) {
		tq(&o, NULL, badval[i][0], badval[i][1], badval[i][2], badval[i][3], "--", "true", NULL);
		assert_fails(&o, 2);
	}
	/* Nothing of the above created anything or touched the queue. */
	cr_assert(!shm_exists(xn), "a failed create left %s", xn);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 0);
	cr_assert_eq(s.run_state, TQ_RUNNING);
	out_free(&o);
}

/* ================================================================ create */

Test(cli, create_defaults)
{
	struct out o = {0};
	const char *q = qname("cdef");
	char line[300];

	tq(&o, NULL, "create", q, NULL);
	assert_ok(&o);
	snprintf(line, sizeof(line),
		 "created %s: capacity 10000 tasks, max payload 4096 bytes, payload area 40960000 bytes\n", q);
	cr_assert_str_eq(o.out, line);
	cr_assert_eq(o.err_len, 0, "%s", o.err);

	tq(&o, NULL, "info", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "info --json is not JSON:\n%s", o.out);
	assert_jstr(o.out, "name", q);
	assert_jstr(o.out, "state", "running");
	assert_jnum(o.out, "capacity", 10000);
	assert_jnum(o.out, "config.capacity", 10000);
	assert_jnum(o.out, "config.max_payload", 4096);
	assert_jnum(o.out, "config.payload_bytes", 40960000); /* capacity x max_payload: under 64 MiB */
	assert_jstr(o.out, "config.mode", "600");
	assert_jnum(o.out, "config.max_attempts", 5);
	assert_jnum(o.out, "config.dead_capacity", 1000);
	assert_jnum(o.out, "config.lease_seconds", 30);
	assert_jnum(o.out, "config.backoff_seconds", 0.1);
	assert_jnum(o.out, "config.backoff_max_seconds", 60);
	assert_jnum(o.out, "ready", 0);
	assert_jnum(o.out, "config.delay_capacity", 500);
	assert_jnum(o.out, "free", 11500); /* slots: the capacity, the dead-letter and delay areas */
	assert_jnum(o.out, "totals.pushed", 0);

	char path[300];
	struct stat st;
	shm_file(path, sizeof(path), q);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);

	/* Existing: 9 without --exist-ok, message on stderr. */
	tq(&o, NULL, "create", q, NULL);
	assert_fails(&o, 9);
	assert_contains(o.err, q, "create existing");
	assert_contains(o.err, "already exists", "create existing");
	out_free(&o);
}

Test(cli, create_options_and_exist_ok)
{
	struct out o = {0};
	const char *q = qname("copt");

	tq(&o, NULL, "create", q, "--capacity", "64", "--max-payload", "100", "--mode", "640", "--max-attempts",
	   "3", "--dead-capacity", "8", "--delay-capacity", "16", "--lease", "2.5", "--backoff", "0.25",
	   "--backoff-max", "4", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "create --json:\n%s", o.out);
	assert_jstr(o.out, "name", q);
	cr_assert_eq(jbool(o.out, "created"), 1, "%s", o.out);
	assert_jnum(o.out, "capacity", 64);
	assert_jnum(o.out, "max_payload", 100);

	tq(&o, NULL, "info", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "config.capacity", 64);
	assert_jnum(o.out, "config.max_payload", 100);
	assert_jstr(o.out, "config.mode", "640");
	assert_jnum(o.out, "config.max_attempts", 3);
	assert_jnum(o.out, "config.dead_capacity", 8);
	assert_jnum(o.out, "config.delay_capacity", 16);
	assert_jnum(o.out, "slots", 88);
	assert_jnum(o.out, "config.lease_seconds", 2.5);
	assert_jnum(o.out, "config.backoff_seconds", 0.25);
	assert_jnum(o.out, "config.backoff_max_seconds", 4);
	char path[300];
	struct stat st;
	shm_file(path, sizeof(path), q);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);

	/* --exist-ok: success, the configuration is kept. */
	tq(&o, NULL, "create", q, "--capacity", "5", "--exist-ok", NULL);
	assert_ok(&o);
	assert_contains(o.out, "exists", "create --exist-ok");
	assert_contains(o.out, "capacity 64 tasks", "create --exist-ok keeps the configuration");
	tq(&o, NULL, "create", q, "--exist-ok", "--json", NULL);
	assert_ok(&o);
	cr_assert_eq(jbool(o.out, "created"), 0, "%s", o.out);
	assert_jnum(o.out, "capacity", 64);

	/* --payload-bytes: a byte count with K, M or G, rounded up to 64,
	 * within one largest payload and every slot's. */
	const char *qb = qname("copt3");
	tq(&o, NULL, "create", qb, "--capacity", "64", "--max-payload", "100", "--payload-bytes", "1K", "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "payload_bytes", 1024);
	tq(&o, NULL, "info", qb, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "config.payload_bytes", 1024);
	tq(&o, NULL, "destroy", qb, NULL);
	assert_ok(&o);
	tq(&o, NULL, "create", qb, "--max-payload", "100", "--payload-bytes", "100", NULL);
	assert_ok(&o);
	assert_contains(o.out, "payload area 128 bytes", "rounded up to 64");
	tq(&o, NULL, "destroy", qb, NULL);
	const char *bad[] = {"12X", "K", "-1", "0", "99999999999999999999", "18014398509481984G", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tq(&o, NULL, "create", qb, "--payload-bytes", bad[i], NULL);
		assert_fails(&o, 2);
		assert_contains(o.err, "--payload-bytes", "a bad size is named");
		cr_assert(!shm_exists(qb));
	}
	tq(&o, NULL, "create", qb, "--max-payload", "100", "--payload-bytes", "64", NULL);
	cr_assert_neq(o.status, 0, "below one largest payload (128): refused");
	assert_contains(o.err, qb, "named");
	cr_assert(!shm_exists(qb));
	tq(&o, NULL, "create", qb, "--capacity", "10", "--max-payload", "64", "--payload-bytes", "2G", NULL);
	cr_assert_neq(o.status, 0, "above every slot's largest payload: refused");
	cr_assert(!shm_exists(qb));

	/* --backoff above --backoff-max, both given: refused (create_backoff_above_max). */
	const char *q2 = qname("copt2");
	tq(&o, NULL, "create", q2, "--backoff", "2", "--backoff-max", "1", NULL);
	assert_fails(&o, 2);
	cr_assert(!shm_exists(q2));
	/* The longest name is fine. */
	char *q3 = (char *)qname("tmp");
	int k = snprintf(q3, TQ_NAME_MAX + 1, "tqt-cli-long-%ld-", (long)getpid());
	memset(q3 + k, 'n', (size_t)(TQ_NAME_MAX - k));
	q3[TQ_NAME_MAX] = '\0';
	cr_assert_eq(strlen(q3), TQ_NAME_MAX);
	tq(&o, NULL, "create", q3, NULL);
	assert_ok(&o);
	out_free(&o);
}

Test(cli, create_bad_values_and_names)
{
	struct out o = {0};
	const char *q = qname("cbad");
	const char *bad[][4] = {
		{"--capacity", "0"}, {"--capacity", "-1"}, {"--capacity", "16777217"}, {"--capacity", "abc"},
		{"--capacity", ""}, {"--capacity", "+5"}, {"--max-payload", "16777217"}, {"--max-payload", "x"},
		{"--mode", "800"}, {"--mode", "1000"}, {"--mode", "rw"}, {"--mode", ""},
		{"--max-attempts", "0"}, {"--max-attempts", "65536"}, {"--dead-capacity", "0"},
		{"--dead-capacity", "11", "--capacity", "10"}, {"--delay-capacity", "0"},
		{"--delay-capacity", "11", "--capacity", "10"}, {"--delay-capacity", "x"}, {"--lease", "0"}, {"--lease", "0.0001"},
		{"--lease", "-1"}, {"--lease", "abc"}, {"--lease", "inf"}, {"--backoff", "-0.5"},
		{"--backoff", "nan"}, {"--backoff-max", "x"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tq(&o, NULL, "create", q, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
		assert_fails(&o, 2);
		cr_assert(!shm_exists(q), "`%s` created the queue", o.cmd);
	}
	char toolong[TQ_NAME_MAX + 2];
	memset(toolong, 'a', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = '\0';
	const char *names[] = {"bad/name", ".hidden", "", "sp ace", "a*b", "semi;colon", "tab\tname", toolong};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		tq(&o, NULL, "create", names[i], NULL);
		assert_fails(&o, 2);
	}
	/* And a bad name is a usage error for the other commands too. */
	const char *cmds[] = {"info", "stats", "take", "recover", "stop", "pause", "resume", "destroy", "dead"};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		tq(&o, NULL, cmds[i], "bad/name", NULL);
		assert_fails(&o, 2);
	}
	tq(&o, NULL, "push", "bad/name", "x", NULL);
	assert_fails(&o, 2);
	out_free(&o);
}

/* ================================================================ info, stats */

Test(cli, info_and_stats_text_and_json)
{
	struct out o = {0};
	const char *q = qname("info");
	char want[300];

	create_ok(q, "--capacity", "50");
	push_ok(q, "a", "b", "c");
	tq(&o, NULL, "take", q, NULL);
	assert_ok(&o);

	tq(&o, NULL, "info", q, NULL);
	assert_ok(&o);
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	snprintf(want, sizeof(want), "queue %s: running\n", q);
	cr_assert(!strncmp(o.out, want, strlen(want)), "info text:\n%s", o.out);
	assert_contains(o.out, "2 ready, 0 in progress, 0 delayed (retry), 0 dead; 55 free of 57 (capacity 50 + dead-letter area 5 + delay area 2)", "info text");
	assert_contains(o.out, "3 pushed, 1 taken, 1 acked, 0 failed, 0 retried, 0 dead", "info text");
	assert_contains(o.out, "config:  capacity 50", "info text");

	tq(&o, NULL, "stats", q, NULL);
	assert_ok(&o);
	cr_assert(!strncmp(o.out, want, strlen(want)), "stats text:\n%s", o.out);
	assert_contains(o.out, "2 ready, 0 in progress", "stats text");
	cr_assert_null(strstr(o.out, "config:"), "stats shows no configuration:\n%s", o.out);

	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "stats --json:\n%s", o.out);
	assert_jstr(o.out, "name", q);
	assert_jstr(o.out, "state", "running");
	assert_jnum(o.out, "capacity", 50);
	assert_jnum(o.out, "ready", 2);
	assert_jnum(o.out, "leased", 0);
	assert_jnum(o.out, "delayed", 0);
	assert_jnum(o.out, "dead", 0);
	assert_jnum(o.out, "free", 55);
	assert_jnum(o.out, "processes", 0);
	assert_jnum(o.out, "totals.pushed", 3);
	assert_jnum(o.out, "totals.taken", 1);
	assert_jnum(o.out, "totals.acked", 1);
	cr_assert_null(jget(o.out, "config"), "stats --json has no config");
	cr_assert_eq(jlen(o.out, "process_list"), 0);

	/* A process attached (this one, through the library) is counted and listed. */
	tq_queue *h;
	cr_assert_eq(tq_open(q, &h), 0);
	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "processes", 1);
	cr_assert_eq(jlen(o.out, "process_list"), 1, "%s", o.out);
	assert_jnum(o.out, "process_list.0.pid", getpid());
	tq(&o, NULL, "stats", q, NULL);
	assert_ok(&o);
	char pid[32];
	snprintf(pid, sizeof(pid), " %ld ", (long)getpid());
	assert_contains(o.out, pid, "stats text lists the attached process");
	tq_close(h);

	tq(&o, NULL, "info", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out));
	assert_jnum(o.out, "config.capacity", 50);
	assert_jnum(o.out, "ready", 2);

	/* No such queue: 3, for both. */
	const char *missing = qname("nosuch");
	tq(&o, NULL, "info", missing, NULL);
	assert_fails(&o, 3);
	assert_contains(o.err, missing, "info on a missing queue");
	tq(&o, NULL, "stats", missing, "--json", NULL);
	assert_fails(&o, 3);
	out_free(&o);
}

/* A process that pushes, takes and acks until *stop is set: its
 * last_seen time changes all the time. */
struct busy_arg {
	const char *q;
	volatile int *stop;
};

static int busy_loop(void *arg)
{
	const struct busy_arg *b = arg;
	tq_queue *h;
	tq_task t;

	if (tq_open(b->q, &h))
		return 1;
	while (!__atomic_load_n(b->stop, __ATOMIC_RELAXED)) {
		if (tq_push_int(h, 1, 0) || tq_take(h, &t, 1, 0) != 1 || tq_ack(h, &t, 1))
			return 2;
	}
	tq_close(h);
	return 0;
}

/* Ages of a process's times are never negative, however busy it is (a
 * clock read before the process list made them wrap around to 2^64 ns). */
Test(cli, stats_ages_of_a_busy_process_are_sane)
{
	struct out o = {0};
	const char *q = qname("busyage");
	volatile int *stop = tqt_shared(sizeof(int));

	create_ok(q);
	struct busy_arg b = {q, stop};
	pid_t w = tqt_fork(busy_loop, &b);
	remember_child(w); /* killed by the suite's .fini if an assertion fails */
	/* Until the worker is attached and listed. */
	for (int i = 0; i < 500; i++) {
		tq(&o, NULL, "stats", q, "--json", NULL);
		assert_ok(&o);
		if (jlen(o.out, "process_list") == 1)
			break;
		tqt_sleep_ms(10);
	}
	cr_assert_eq(jlen(o.out, "process_list"), 1, "%s", o.out);
	for (int i = 0; i < 20; i++) {
		tq(&o, NULL, "stats", q, "--json", NULL);
		assert_ok(&o);
		double seen = jnum(o.out, "process_list.0.last_seen_seconds_ago");
		double attached = jnum(o.out, "process_list.0.attached_seconds");
		cr_assert(seen >= 0 && seen < 3600, "last_seen_seconds_ago %g:\n%s", seen, o.out);
		cr_assert(attached >= 0 && attached < 3600, "attached_seconds %g:\n%s", attached, o.out);
		tq(&o, NULL, "stats", q, NULL);
		assert_ok(&o);
		cr_assert_null(strstr(o.out, "18446744073"), "a wrapped-around age:\n%s", o.out);
	}
	__atomic_store_n(stop, 1, __ATOMIC_RELAXED);
	cr_assert_eq(tqt_wait(w, 20000), 0);
	forget_child(w);
	out_free(&o);
}

/* ================================================================ push */

Test(cli, push_from_arguments_and_stdin_all_kinds)
{
	struct out o = {0};
	const char *q = qname("push");
	uint64_t ids[64];
	uint64_t last = 0;

	create_ok(q);
	/* Strings from arguments: one id per line, increasing. */
	tq(&o, NULL, "push", q, "alpha", "beta gamma", "", NULL);
	assert_ok(&o);
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	cr_assert_eq(parse_ids(o.out, ids, 64), 3, "ids:\n%s", o.out);
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(ids[i], last);
		last = ids[i];
	}
	/* Strings from stdin, CRLF and a last line without newline. */
	tq(&o, "one\ntwo\r\nthree", "push", q, NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 64), 3, "ids:\n%s", o.out);
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(ids[i], last);
		last = ids[i];
	}
	/* Integers, both ways. */
	tq(&o, NULL, "push", q, "--kind", "int", "0", "18446744073709551615", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 64), 2);
	tq(&o, "7\n42\n", "push", q, "--kind", "int", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 64), 2);
	/* JSON, both ways, --json and --kind json. */
	tq(&o, NULL, "push", q, "--json", "{\"a\":1}", "[1,2]  ", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 64), 2);
	tq(&o, "{\"b\":\"x y\"}\n\"str\"\n", "push", q, "--kind", "json", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 64), 2);
	/* --quiet: no ids. Empty stdin: nothing, success. */
	tq(&o, NULL, "push", q, "--quiet", "quiet", NULL);
	assert_ok(&o);
	cr_assert_eq(o.out_len, 0);
	tq(&o, "", "push", q, NULL);
	assert_ok(&o);
	cr_assert_eq(o.out_len, 0);

	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 15);
	cr_assert_eq(s.ready, 15);

	/* Everything comes back, in order, with its kind. */
	tq(&o, NULL, "take", q, "-n", "100", "--verbose", NULL);
	assert_ok(&o);
	const char *want[][2] = {
		{"string", "alpha"}, {"string", "beta gamma"}, {"string", ""}, {"string", "one"},
		{"string", "two"}, {"string", "three"}, {"int", "0"}, {"int", "18446744073709551615"},
		{"int", "7"}, {"int", "42"}, {"json", "{\"a\":1}"}, {"json", "[1,2]  "},
		{"json", "{\"b\":\"x y\"}"}, {"json", "\"str\""}, {"string", "quiet"},
	};
	const char *p = o.out;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *fields[4];
		cr_assert(split_verbose(p, fields), "task %zu: bad line in:\n%s", i, o.out);
		cr_assert(!strncmp(fields[1], want[i][0], strlen(want[i][0])) && fields[1][strlen(want[i][0])] == '\t',
			  "task %zu: kind in %.40s", i, p);
		cr_assert(!strncmp(fields[2], "1\t", 2), "task %zu: attempt in %.40s", i, p);
		p = fields[3];
		const char *nl = strchr(p, '\n');
		cr_assert(nl);
		cr_assert(strlen(want[i][1]) == (size_t)(nl - p) && !strncmp(p, want[i][1], (size_t)(nl - p)),
			  "task %zu: payload '%.*s', want '%s'", i, (int)(nl - p), p, want[i][1]);
		p = nl + 1;
	}
	cr_assert_eq(*p, '\0', "more output than tasks:\n%s", p);
	s = lib_stats(q);
	cr_assert_eq(s.total.acked, 15);
	cr_assert_eq(s.ready, 0);
	out_free(&o);
}

/* From stdin, the lines before a bad one are pushed and counted on stderr;
 * with --atomic, or from arguments, nothing is. */
Test(cli, push_bad_json_line_3_of_5)
{
	struct out o = {0};
	const char *q = qname("badjson");
	uint64_t ids[8];

	create_ok(q);
	tq(&o, "{\"a\":1}\n[1]\n{bad\n2\n\"s\"\n", "push", q, "--json", NULL);
	assert_status(&o, 5);
	assert_contains(o.err, "line 3", "the bad line is named");
	assert_contains(o.err, "2 tasks pushed (lines 1-2), none from line 3 on", "what went in is said");
	cr_assert_eq(parse_ids(o.out, ids, 8), 2, "the ids of lines 1-2:\n%s", o.out);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 2);
	cr_assert_eq(s.ready, 2);
	tq(&o, NULL, "take", q, "-n", "10", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "{\"a\":1}\n[1]\n");

	/* --atomic: nothing at all. */
	tq(&o, "{\"a\":1}\n[1]\n{bad\n2\n\"s\"\n", "push", q, "--json", "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 3", "the bad line is named");
	assert_contains(o.err, "nothing pushed", "--atomic");
	tq(&o, "{\"a\":1}\n[1]\n{\"x\":1} trailing\n2\n\"s\"\n", "push", q, "--kind", "json", "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 3", "trailing text after the JSON value");
	tq(&o, NULL, "push", q, "--json", "1", "2", "{", "4", "5", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "argument 3", "the bad argument is named");
	assert_contains(o.err, "nothing pushed", "arguments are all checked first");
	tq(&o, "1\n2\n\n4\n5\n", "push", q, "--json", "--atomic", NULL);
	assert_fails(&o, 5); /* an empty line is not JSON */
	assert_contains(o.err, "line 3", "an empty line");

	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "totals.pushed", 2);
	assert_jnum(o.out, "ready", 0);
	out_free(&o);
}

Test(cli, push_oversized_and_not_integer_push_nothing)
{
	struct out o = {0};
	const char *q = qname("big");

	create_ok(q, "--max-payload", "8");
	tq(&o, NULL, "push", q, "12345678", NULL); /* exactly max: fine */
	assert_ok(&o);
	tq(&o, NULL, "push", q, "123456789", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "max payload", "oversized");
	tq(&o, "ok\nfine\n123456789\nok\n", "push", q, "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 3", "oversized line");
	assert_contains(o.err, "9 bytes exceeds the queue's max payload of 8", "oversized line");
	tq(&o, NULL, "push", q, "--json", "[1,2,3,4,5]", NULL);
	assert_fails(&o, 5);
	/* A CRLF line of exactly max payload fits: the CR is not the task's. */
	tq(&o, "12345678\r\n", "push", q, "--atomic", "--quiet", NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, "-n", "2", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "12345678\n12345678\n");
	tq(&o, NULL, "push", q, "12345678", NULL); /* put the first one back */
	assert_ok(&o);

	const char *notint[] = {"x", "-1", "1.5", "", "1 ", "0x10", "18446744073709551616", "+3", "1e3"};
	for (size_t i = 0; i < sizeof(notint) / sizeof(notint[0]); i++) {
		tq(&o, NULL, "push", q, "--kind", "int", "--", "1", notint[i], NULL);
		assert_fails(&o, 5);
	}
	tq(&o, "1\n2\nthree\n", "push", q, "--kind", "int", "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 3", "not an integer");
	assert_contains(o.err, "'three' is not an unsigned 64-bit integer", "not an integer");

	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 3, "only the single pushes went in");
	cr_assert_eq(s.ready, 1);
	out_free(&o);
}

/* " -1" is not an unsigned integer: strtoull skips the blank and negates. */
Test(cli, push_int_rejects_a_blank_then_a_sign)
{
	struct out o = {0};
	const char *q = qname("sign");

	create_ok(q);
	const char *bad[] = {" -1", "\t-5", " +7", " 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tq(&o, NULL, "push", q, "--kind", "int", bad[i], NULL);
		cr_expect_eq(o.status, 5, "`push --kind int '%s'`: exit %d, want 5; stdout: %s", bad[i], o.status,
			     o.out);
	}
	tq(&o, NULL, "take", q, "-n", "10", NULL);
	cr_assert_eq(o.out_len, 0, "pushed from a signed value:\n%s", o.out);
	out_free(&o);
}

Test(cli, push_unknown_queue_and_full_queue)
{
	struct out o = {0};
	const char *missing = qname("nosuch");
	const char *q = qname("full");

	tq(&o, NULL, "push", missing, "a", NULL);
	assert_fails(&o, 3);
	assert_contains(o.err, missing, "push to a missing queue");
	tq(&o, "a\n", "push", missing, NULL);
	assert_fails(&o, 3);
	cr_assert(!shm_exists(missing));

	/* No room within the timeout: 6, the ids of what went in are printed. */
	create_ok(q, "--capacity", "2");
	tq(&o, NULL, "push", q, "--timeout", "0", "a", "b", "c", NULL);
	assert_status(&o, 6);
	uint64_t ids[8];
	cr_assert_eq(parse_ids(o.out, ids, 8), 2, "ids of the accepted tasks:\n%s", o.out);
	cr_assert(o.err_len > 0);
	tq(&o, NULL, "push", q, "--timeout", "0.05", "d", NULL);
	assert_fails(&o, 6);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.ready, 2);
	cr_assert_eq(s.total.pushed, 2);
	out_free(&o);
}

/* A segment called taskq.NAME that is not a queue: 4 for every command that
 * opens it; create refuses (1), destroy needs --force. */
Test(cli, not_a_taskq_queue_exit_4)
{
	struct out o = {0};
	const char *q = qname("garbage");
	const char *z = qname("empty");

	make_garbage_segment(q, 1 << 16);
	make_garbage_segment(z, 0);
	const char *names[] = {q, z};
	for (int k = 0; k < 2; k++) {
		const char *n = names[k];
		tq(&o, NULL, "push", n, "a", NULL);
		assert_fails(&o, 4);
		tq(&o, "a\n", "push", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "take", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "info", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "stats", n, "--json", NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "dead", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "recover", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "stop", n, NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "work", n, "--idle-exit", "0.1", "--", "true", NULL);
		assert_fails(&o, 4);
		tq(&o, NULL, "create", n, NULL); /* the name is taken */
		assert_fails(&o, 9);
		tq(&o, NULL, "create", n, "--exist-ok", NULL);
		assert_fails(&o, 4);
	}
	/* Never modified by any of that. */
	char path[300];
	struct stat st;
	shm_file(path, sizeof(path), q);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 1 << 16);

	tq(&o, NULL, "destroy", q, NULL);
	assert_fails(&o, 4);
	cr_assert(shm_exists(q));
	tq(&o, NULL, "destroy", q, "--force", NULL);
	assert_ok(&o);
	cr_assert(!shm_exists(q));
	out_free(&o);
}

/* A 200 MiB line into a queue of 16-byte payloads: refused by its line
 * number with taskq's memory far below the line's size (it is counted, not
 * kept); the line before it is pushed, nothing after it. */
Test(cli, push_oversize_line_is_refused_in_bounded_memory)
{
	struct out o = {0};
	struct rusage ru;
	const char *q = qname("bigline");
	uint64_t ids[4];

	create_ok(q, "--max-payload", "16");
	struct big_line g = {"first\n", "\nafter\n", 200u << 20};
	tq_streamed(&o, &ru, gen_big_line, &g, "push", q, NULL);
	assert_status(&o, 5);
	assert_contains(o.err, "line 2: 209715200 bytes exceeds the queue's max payload of 16", "the line is named");
	assert_contains(o.err, "1 task pushed (line 1), none from line 2 on", "what went in is said");
	cr_assert_eq(parse_ids(o.out, ids, 4), 1, "%s", o.out);
	cr_assert_lt(ru.ru_maxrss, 64 * 1024, "taskq push peaked at %ld KiB for a 200 MiB line", ru.ru_maxrss);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 1);
	tq(&o, NULL, "take", q, "-n", "5", NULL);
	cr_assert_str_eq(o.out, "first\n");

	/* --atomic too reads the line with a bounded buffer; nothing goes in. */
	tq_streamed(&o, &ru, gen_big_line, &g, "push", q, "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 2: 209715200 bytes exceeds", "--atomic names the line");
	assert_contains(o.err, "nothing pushed", "--atomic");
	cr_assert_lt(ru.ru_maxrss, 64 * 1024, "taskq push --atomic peaked at %ld KiB", ru.ru_maxrss);
	cr_assert_eq(lib_stats(q).total.pushed, 1);
	out_free(&o);
}

/* Takes n numbered lines (gen_numbered_lines) from the queue through the
 * library, checking order and content: the consumer of a stream. */
struct drainer {
	const char *name;
	unsigned n, width;
};

static int drain_numbered(void *arg)
{
	const struct drainer *d = arg;
	tq_queue *q;
	tq_task t[64];
	char want[16];

	bool bad = false;

	if (tq_open(d->name, &q) != 0)
		return 1;
	/* Takes everything even after a mismatch, so that the producer ends. */
	for (unsigned got = 0; got < d->n;) {
		int k = tq_take(q, t, 64, 20000000000ull);
		if (k < 0)
			return 3;
		for (int i = 0; i < k; i++, got++) {
			snprintf(want, sizeof(want), "%08u", got);
			if (t[i].len != d->width || memcmp(t[i].data, want, 8))
				bad = true;
		}
		tq_ack(q, t, (size_t)k);
	}
	tq_close(q);
	return bad ? 2 : 0;
}

/* About 100 MB of lines into a queue of 256 tasks being drained: every
 * line arrives once, in order, and taskq's memory stays bounded by its
 * batch, not by the input. */
Test(cli, push_streams_input_larger_than_queue_and_memory)
{
	struct out o = {0};
	struct rusage ru;
	const char *q = qname("stream");

	create_ok(q, "--capacity", "256", "--max-payload", "1024");
	struct numbered_lines g = {100000, 1000};
	struct drainer d = {q, g.n, g.width};
	pid_t drain = tqt_fork(drain_numbered, &d);
	remember_child(drain);
	tq_streamed(&o, &ru, gen_numbered_lines, &g, "push", q, "--quiet", NULL);
	assert_ok(&o);
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	int st = tqt_wait(drain, 30000);
	forget_child(drain);
	cr_assert_eq(st, 0, "the consumer ended with %d (2: a line out of order or changed)", st);
	cr_assert_lt(ru.ru_maxrss, 64 * 1024, "taskq push peaked at %ld KiB for ~100 MB of input", ru.ru_maxrss);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, g.n);
	cr_assert_eq(s.total.acked, g.n);
	out_free(&o);
}

/* Lines are pushed as they are read, not at the end of stdin: a producer
 * that writes two lines and the start of a third, then waits, sees the two
 * in the queue; the third, finished later, arrives whole. Then a bad line:
 * what came before stays, exit 5. */
Test(cli, push_pushes_lines_before_stdin_ends)
{
	struct out o = {0};
	struct rusage ru;
	struct proc p;
	const char *q = qname("live");
	int in[2];
	uint64_t ids[8];

	create_ok(q, "--max-payload", "8");
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	char *argv[] = {(char *)TASKQ, "push", (char *)q, NULL};
	spawn_tq(&p, in[0], argv);
	close(in[0]);
	cr_assert_eq(write(in[1], "a\nb\npar", 7), 7);
	uint64_t deadline = tqt_now_ms() + 10000;
	tq_stats s = lib_stats(q);
	while (s.ready < 2 && tqt_now_ms() < deadline) {
		proc_pump(&p, 10);
		s = lib_stats(q);
	}
	cr_assert_eq(s.ready, 2, "the lines written so far were not pushed while stdin stayed open");
	const char *rest = "tial\nx\n123456789\nnever\n";
	cr_assert_eq(write(in[1], rest, strlen(rest)), (ssize_t)strlen(rest));
	close(in[1]);
	finish_tq(&p, &o, &ru);
	assert_status(&o, 5);
	assert_contains(o.err, "line 5: 9 bytes exceeds", "the bad line");
	assert_contains(o.err, "4 tasks pushed (lines 1-4), none from line 5 on", "the count");
	cr_assert_eq(parse_ids(o.out, ids, 8), 4, "%s", o.out);
	s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 4);
	tq(&o, NULL, "take", q, "-n", "10", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "a\nb\npartial\nx\n", "a line split across reads arrives whole");
	out_free(&o);
}

/* --atomic holds at most 65536 lines and 64 MiB; more pushes nothing. */
Test(cli, push_atomic_is_bounded)
{
	struct out o = {0};
	struct rusage ru;
	const char *q = qname("atomic"), *big = qname("atomicb");

	signal(SIGPIPE, SIG_IGN); /* a taskq that stops reading is a test failure, not a test crash */
	create_ok(q, "--capacity", "70000");
	size_t n = 65537;
	char *in = malloc(2 * n + 1);
	cr_assert(in);
	for (size_t i = 0; i < n; i++)
		memcpy(in + 2 * i, "x\n", 2);
	in[2 * n] = '\0';
	tq(&o, in, "push", q, "--atomic", "--quiet", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "65536 lines", "the line bound");
	assert_contains(o.err, "nothing pushed", "the line bound");
	cr_assert_eq(lib_stats(q).total.pushed, 0);
	in[2 * (n - 1)] = '\0'; /* exactly 65536: fine */
	tq(&o, in, "push", q, "--atomic", "--quiet", NULL);
	assert_ok(&o);
	cr_assert_eq(lib_stats(q).ready, 65536);
	free(in);

	/* 65 lines of 1 MB: more than 64 MiB. */
	create_ok(big, "--capacity", "1", "--max-payload", "1048576");
	struct numbered_lines g = {65, 1048000};
	tq_streamed(&o, &ru, gen_numbered_lines, &g, "push", big, "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "64 MiB", "the byte bound");
	cr_assert_eq(lib_stats(big).total.pushed, 0);
	out_free(&o);
}

/* Integers are digits and nothing else: a NUL inside a line is not the
 * end of the number. Strings are any bytes, NUL included. */
Test(cli, push_lines_with_nul_bytes)
{
	struct out o = {0};
	const char *q = qname("nul");

	create_ok(q);
	tq_bin(&o, "1\0junk\n", 7, "push", q, "--kind", "int", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 1: '1\\x00junk' is not an unsigned 64-bit integer", "a NUL in an integer");
	tq_bin(&o, "7\n8\0\n", 5, "push", q, "--kind", "int", "--atomic", NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "line 2", "a NUL in an integer");
	cr_assert_eq(lib_stats(q).total.pushed, 0);

	tq_bin(&o, "a\0b\n", 4, "push", q, NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, NULL);
	assert_ok(&o);
	cr_assert_eq(o.out_len, 4, "the payload a\\0b and a newline, got %zu bytes", o.out_len);
	cr_assert(!memcmp(o.out, "a\0b\n", 4));
	out_free(&o);
}

/* JSON tasks are valid UTF-8 JSON, named by line or argument otherwise. */
Test(cli, push_json_must_be_valid_utf8)
{
	struct out o = {0};
	const char *q = qname("utf8");

	create_ok(q);
	const char *bad[][2] = {
		{"\"\xff\"", "not valid UTF-8 at byte 1"},
		{"\"\xc0\xaf\"", "not valid UTF-8 at byte 1"},          /* overlong '/' */
		{"\"\xed\xa0\x80\"", "not valid UTF-8 at byte 1"},      /* an encoded surrogate */
		{"\"\xf4\x90\x80\x80\"", "not valid UTF-8 at byte 1"},  /* above U+10FFFF */
		{"[1, \"ok\", \"\xe2\x82\"]", "not valid UTF-8 at byte 11"}, /* truncated */
		{"\"\\ud800\"", "unpaired surrogate"},
		{"\"\\udc00\\ud800\"", "unpaired surrogate"},
		{"\"a\tb\"", "control character"},
		{"[1,]", "invalid JSON at byte 3"},
		{"01", "invalid JSON at byte 1"},
		{"{\"a\" 1}", "expected ':'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tq(&o, NULL, "push", q, "--json", "[]", bad[i][0], NULL);
		assert_fails(&o, 5);
		assert_contains(o.err, "argument 2", bad[i][0]);
		assert_contains(o.err, bad[i][1], bad[i][0]);
		char line[64];
		snprintf(line, sizeof(line), "[]\n%s\n", bad[i][0]);
		tq(&o, line, "push", q, "--json", "--atomic", NULL);
		assert_fails(&o, 5);
		assert_contains(o.err, "line 2", bad[i][0]);
		assert_contains(o.err, bad[i][1], bad[i][0]);
	}
	cr_assert_eq(lib_stats(q).total.pushed, 0);

	/* Valid: UTF-8 as it is, escapes, a surrogate pair, 1000 levels deep. */
	tq(&o, "\"h\xc3\xa9llo \xf0\x9f\x98\x80 \\u00e9 \\ud83d\\ude00\"\n", "push", q, "--json", NULL);
	assert_ok(&o);
	char deep[2101];
	memset(deep, '[', 1000);
	memset(deep + 1000, ']', 1000);
	deep[2000] = '\0';
	tq(&o, NULL, "push", q, "--json", "--quiet", deep, NULL);
	assert_ok(&o);
	deep[0] = '{'; /* not closed as an object: refused, not a crash */
	tq(&o, NULL, "push", q, "--json", deep, NULL);
	assert_fails(&o, 5);
	char deeper[2101];
	memset(deeper, '[', 1001);
	memset(deeper + 1001, ']', 1001);
	deeper[2002] = '\0';
	tq(&o, NULL, "push", q, "--json", deeper, NULL);
	assert_fails(&o, 5);
	assert_contains(o.err, "nested too deep", "1001 levels");

	tq(&o, NULL, "take", q, "--json", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	assert_contains(o.out, "h\xc3\xa9llo \xf0\x9f\x98\x80", "UTF-8 goes out as it came in");
	out_free(&o);
}

/* ================================================================ take */

Test(cli, take_prints_and_acks)
{
	struct out o = {0};
	const char *q = qname("take");

	create_ok(q);
	push_ok(q, "first", "second", "third");
	tq(&o, NULL, "take", q, NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "first\n");
	cr_assert_eq(o.err_len, 0, "%s", o.err);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.acked, 1);
	cr_assert_eq(s.ready, 2);
	cr_assert_eq(s.leased, 0);

	/* -n more than there are: what there is, status 0. */
	tq(&o, NULL, "take", q, "-n", "5", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "second\nthird\n");
	s = lib_stats(q);
	cr_assert_eq(s.total.acked, 3);
	cr_assert_eq(s.ready, 0);

	/* Empty: 6, with or without a wait. */
	tq(&o, NULL, "take", q, NULL);
	assert_fails(&o, 6);
	tq(&o, NULL, "take", q, "--timeout", "0.2", NULL);
	assert_fails(&o, 6);
	tq(&o, NULL, "take", q, "-n", "3", "--json", NULL);
	assert_status(&o, 6); /* stdout may carry an empty array */
	cr_assert(o.out_len == 0 || js_valid(o.out), "%s", o.out);
	cr_assert(jlen(o.out, "") <= 0);
	cr_assert(o.err_len > 0);

	/* Unknown queue: 3. */
	tq(&o, NULL, "take", qname("nosuch"), NULL);
	assert_fails(&o, 3);

	/* More than one batch of 64. */
	char in[2000] = "";
	for (int i = 0; i < 150; i++)
		snprintf(in + strlen(in), sizeof(in) - strlen(in), "t%d\n", i);
	tq(&o, in, "push", q, "--quiet", NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, "--count", "150", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, in);
	s = lib_stats(q);
	cr_assert_eq(s.total.acked, 153);
	cr_assert_eq(s.ready, 0);
	out_free(&o);
}

Test(cli, take_json_and_verbose)
{
	struct out o = {0};
	const char *q = qname("takej");
	uint64_t ids[3];

	create_ok(q);
	tq(&o, NULL, "push", q, "--kind", "int", "42", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 1), 1);
	tq(&o, NULL, "push", q, "hi \"there\"", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids + 1, 1), 1);
	tq(&o, NULL, "push", q, "--json", "{\"a\":[1,2]}", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids + 2, 1), 1);

	tq(&o, NULL, "take", q, "-n", "2", "--json", NULL);
	assert_ok(&o);
	char *arr;
	cr_assert_eq(ndjson_array(o.out, &arr), 2, "take --json: one line a task:\n%s", o.out);
	assert_jnum(arr, "0.id", ids[0]);
	assert_jstr(arr, "0.kind", "int");
	assert_jnum(arr, "0.value", 42);
	assert_jnum(arr, "0.attempt", 1);
	assert_jnum(arr, "1.id", ids[1]);
	assert_jstr(arr, "1.kind", "string");
	assert_jstr(arr, "1.data", "hi \"there\"");
	free(arr);

	tq(&o, NULL, "take", q, "--verbose", NULL);
	assert_ok(&o);
	char want[128];
	snprintf(want, sizeof(want), "%llu\tjson\t1\t{\"a\":[1,2]}\n", (unsigned long long)ids[2]);
	cr_assert_str_eq(o.out, want);

	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.acked, 3);
	cr_assert_eq(s.ready, 0);
	out_free(&o);
}

/* stdout a pipe nobody reads: the tasks must go back to the queue, whether
 * SIGPIPE kills taskq or the write fails with EPIPE. */
static void take_into_closed_pipe(const char *q, int flags, const char *n, bool json, unsigned ntasks)
{
	struct out o = {0};
	char in[8192] = "";
	const char *sigpipe = (flags & RUN_SIGPIPE_IGN) ? "ignored" : "default";

	for (unsigned i = 0; i < ntasks; i++)
		snprintf(in + strlen(in), sizeof(in) - strlen(in), "task-%u\n", i);
	tq(&o, in, "push", q, "--quiet", NULL);
	assert_ok(&o);
	tq_stats before = lib_stats(q);
	cr_assert_eq(before.ready, ntasks);
	if (json)
		tq_flags(&o, NULL, flags | RUN_STDOUT_CLOSED, "take", q, "-n", n, "--json", NULL);
	else
		tq_flags(&o, NULL, flags | RUN_STDOUT_CLOSED, "take", q, "-n", n, NULL);
	int status = o.status;
	char cmd[sizeof(o.cmd)], err[512];
	snprintf(cmd, sizeof(cmd), "%s", o.cmd);
	snprintf(err, sizeof(err), "%s", o.err);

	/* Opening the queue recovers a taskq that SIGPIPE killed. */
	tq_stats after = lib_stats(q);
	cr_expect(after.ready == ntasks && after.leased == 0 && after.total.acked == before.total.acked,
		  "`%s` into a closed pipe (SIGPIPE %s, exit %d): %u tasks should be ready again; "
		  "%u ready, %u leased, %llu acked", cmd, sigpipe, status, ntasks, after.ready, after.leased,
		  (unsigned long long)(after.total.acked - before.total.acked));
	if (flags & RUN_SIGPIPE_IGN)
		cr_expect(status == 1 && err[0], "`%s` (SIGPIPE ignored): exit %d, want 1 and a message; stderr: %s",
			  cmd, status, err);
	else
		cr_expect(status == 128 + SIGPIPE || status == 1, "`%s` (SIGPIPE default): exit %d; stderr: %s", cmd,
			  status, err);
	/* Empty it for the next case. */
	tq(&o, NULL, "take", q, "-n", "1000", NULL);
	out_free(&o);
}

Test(cli, take_to_closed_stdout_loses_nothing)
{
	const char *q = qname("epipe");
	create_ok(q);
	take_into_closed_pipe(q, RUN_SIGPIPE_IGN, "3", false, 3);
	take_into_closed_pipe(q, 0, "3", false, 3);
	take_into_closed_pipe(q, RUN_SIGPIPE_IGN, "100", false, 3);
	take_into_closed_pipe(q, 0, "100", false, 3);
	take_into_closed_pipe(q, RUN_SIGPIPE_IGN, "3", true, 3);
	take_into_closed_pipe(q, 0, "3", true, 3);
}

/* --json with COUNT above what one take returns (fewer ready, or more than
 * one batch of 64): every batch but the last is acknowledged before the
 * JSON is written. */
Test(cli, take_json_to_closed_stdout_loses_nothing)
{
	const char *q = qname("epipej");
	create_ok(q);
	take_into_closed_pipe(q, RUN_SIGPIPE_IGN, "10", true, 3);
	take_into_closed_pipe(q, 0, "10", true, 3);
	take_into_closed_pipe(q, RUN_SIGPIPE_IGN, "70", true, 70);
}

/* ================================================================ work */

Test(cli, work_acks_exit_0_and_fails_the_rest)
{
	struct out o = {0};
	const char *q = qname("work");

	create_ok(q, "--max-attempts", "2", "--backoff", "0.01");
	push_ok(q, "good", "bad", "good2");
	/* good, bad (attempt 1), good2, bad (attempt 2): four runs. */
	tq(&o, NULL, "work", q, "--max-tasks", "4", "--json", "--", "/bin/sh", "-c", "read x; test \"$x\" != bad",
	   NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "work --json:\n%s", o.out);
	assert_jnum(o.out, "handled", 4);
	assert_jnum(o.out, "acked", 2);
	assert_jnum(o.out, "failed", 2);
	assert_jnum(o.out, "lost", 0);

	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "totals.acked", 2);
	assert_jnum(o.out, "totals.failed", 2);
	assert_jnum(o.out, "totals.retried", 1);
	assert_jnum(o.out, "totals.dead", 1);
	assert_jnum(o.out, "dead", 1);
	assert_jnum(o.out, "ready", 0);
	assert_jnum(o.out, "leased", 0);
	assert_jnum(o.out, "delayed", 0);

	tq(&o, NULL, "dead", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert_eq(jlen(o.out, ""), 1, "%s", o.out);
	assert_jstr(o.out, "0.data", "bad");
	assert_jnum(o.out, "0.attempts", 2);
	assert_jstr(o.out, "0.last_message", "exit status 1");

	/* Without --json: the summary goes to stderr, stdout is the commands'. */
	push_ok(q, "x");
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "/bin/sh", "-c", "cat; echo", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "x\n");
	cr_assert(o.err_len > 0);
	/* A command that cannot run fails the task. */
	push_ok(q, "y");
	tq(&o, NULL, "work", q, "--max-tasks", "2", "--", "/nonexistent/command", NULL);
	assert_ok(&o);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.dead, 2);
	cr_assert_eq(s.total.acked, 3);
	out_free(&o);
}

/* The reason a command gives on its stderr is the failure reason: "exit
 * status 3: <the tail of its stderr>", in taskq dead list (text and
 * --json) and in the work log; the stderr still reaches work's stderr. A
 * 900-byte reason is kept whole. */
Test(cli, work_keeps_the_stderr_tail_as_the_reason)
{
	struct out o = {0};
	const char *q = qname("workreason");

	create_ok(q, "--max-attempts", "1");
	push_ok(q, "a");
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "sh", "-c", "echo reason-xyz >&2; exit 3", NULL);
	assert_ok(&o);
	assert_contains(o.err, "reason-xyz", "the command's stderr, passed on");
	assert_contains(o.err, "exit status 3: reason-xyz", "the work log line");
	tq(&o, NULL, "dead", q, "list", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	assert_jstr(o.out, "0.last_message", "exit status 3: reason-xyz");
	tq(&o, NULL, "dead", q, "list", NULL);
	assert_ok(&o);
	assert_contains(o.out, "exit status 3: reason-xyz", "dead list");
	tq(&o, NULL, "log", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "reason-xyz", "the task_dead event");

	/* 900 bytes of reason: all of it. */
	char want[1000];
	strcpy(want, "exit status 3: ");
	size_t w = strlen(want);
	for (int i = 0; i < 900; i++)
		want[w++] = 'x';
	want[w] = '\0';
	push_ok(q, "b");
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "sh", "-c", "head -c 900 /dev/zero | tr '\\0' x >&2; exit 3",
	   NULL);
	assert_ok(&o);
	tq(&o, NULL, "dead", q, "list", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert_eq(jlen(o.out, ""), 2, "%s", o.out);
	assert_jstr(o.out, "1.last_message", want);
	out_free(&o);
}

/* The dead-letter area full: taskq stats says so and by how much, and a
 * purge makes the room back. */
Test(cli, stats_says_the_dead_area_is_full)
{
	struct out o = {0};
	const char *q = qname("deadfull");

	create_ok(q, "--capacity", "10", "--dead-capacity", "2", "--max-attempts", "1");
	push_ok(q, "a", "b", "c");
	tq(&o, NULL, "work", q, "--max-tasks", "3", "--", "false", NULL);
	assert_ok(&o);
	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "dead", 3);
	assert_jnum(o.out, "dead_capacity", 2);
	assert_jnum(o.out, "dead_over", 1);
	assert_jnum(o.out, "slots", 13);
	assert_jnum(o.out, "free", 10);
	assert_jnum(o.out, "totals.dead_overflow", 1);
	tq(&o, NULL, "stats", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "DEAD-LETTER AREA FULL: 3 dead of 2, 1 over", "stats text");
	tq(&o, NULL, "log", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "event=dead_full", "the event");
	tq(&o, NULL, "dead", q, "purge", "--all", NULL);
	assert_ok(&o);
	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "dead", 0);
	assert_jnum(o.out, "dead_over", 0);
	assert_jnum(o.out, "free", 13);
	out_free(&o);
}

Test(cli, work_sets_task_environment)
{
	struct out o = {0};
	const char *q = qname("env");
	uint64_t ids[3];

	create_ok(q);
	tq(&o, NULL, "push", q, "--kind", "int", "10", "20", "30", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 3), 3);
	tq(&o, NULL, "work", q, "--max-tasks", "3", "--", "/bin/sh", "-c",
	   "read v; echo \"$TASKQ_TASK_ID $v $TASKQ_TASK_KIND $TASKQ_TASK_ATTEMPT $TASKQ_QUEUE\"", NULL);
	assert_ok(&o);
	char want[1024] = "";
	for (int i = 0; i < 3; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%llu %d int 1 %s\n",
			 (unsigned long long)ids[i], 10 * (i + 1), q);
	cr_assert_str_eq(o.out, want);
	out_free(&o);
}

/* Queue names may be 200 bytes; the command must see all of TASKQ_QUEUE. */
Test(cli, work_environment_with_longest_queue_name)
{
	struct out o = {0};
	const char *slot = qname("tmp");
	char *q = (char *)slot;
	int n = snprintf(q, TQ_NAME_MAX + 1, "tqt-cli-envlong-%ld-", (long)getpid());
	memset(q + n, 'q', (size_t)(TQ_NAME_MAX - n));
	q[TQ_NAME_MAX] = '\0';

	create_ok(q);
	push_ok(q, "x");
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "/bin/sh", "-c", "printf '%s\\n' \"$TASKQ_QUEUE\"",
	   NULL);
	assert_ok(&o);
	char want[TQ_NAME_MAX + 2];
	snprintf(want, sizeof(want), "%s\n", q);
	cr_assert_str_eq(o.out, want, "TASKQ_QUEUE is %zu bytes, the name %zu", o.out_len ? o.out_len - 1 : 0,
			 strlen(q));
	out_free(&o);
}

Test(cli, work_idle_exit)
{
	struct out o = {0};
	const char *q = qname("idle");

	create_ok(q);
	tq(&o, NULL, "work", q, "--idle-exit", "0.2", "--", "true", NULL);
	assert_ok(&o);
	push_ok(q, "a", "b");
	tq(&o, NULL, "work", q, "--idle-exit", "0.3", "--concurrency", "2", "--", "true", NULL);
	assert_ok(&o);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.acked, 2);
	cr_assert_eq(s.ready, 0);
	/* Unknown queue: 3. */
	tq(&o, NULL, "work", qname("nosuch"), "--idle-exit", "0.1", "--", "true", NULL);
	assert_fails(&o, 3);
	out_free(&o);
}

Test(cli, work_concurrency_3_handles_each_task_once)
{
	struct out o = {0};
	const char *q = qname("conc");
	enum { N = 60 };
	uint64_t ids[N];
	char in[N * 8] = "";

	create_ok(q);
	for (int i = 0; i < N; i++)
		snprintf(in + strlen(in), sizeof(in) - strlen(in), "%d\n", i);
	tq(&o, in, "push", q, "--kind", "int", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, N), N);

	char file[300];
	tmp_path(file, sizeof(file), "ids");
	/* Idle-exit ends it; if a very slow machine idles a runner out early,
	 * run again (each id must still appear once in all). */
	for (int round = 0; round < 5; round++) {
		tq(&o, NULL, "work", q, "--concurrency", "3", "--idle-exit", "1", "--", "/bin/sh", "-c",
		   "echo \"$TASKQ_TASK_ID\" >> \"$0\"", file, NULL);
		assert_ok(&o);
		tq_stats s = lib_stats(q);
		if (s.ready == 0 && s.leased == 0 && s.delayed == 0)
			break;
	}
	char *got = read_file(file);
	uint64_t seen[N + 8];
	int n = parse_ids(got, seen, N + 8);
	cr_assert_eq(n, N, "%d lines in the id file:\n%s", n, got);
	for (int i = 0; i < N; i++) {
		int times = 0;
		for (int j = 0; j < n; j++)
			times += seen[j] == ids[i];
		cr_assert_eq(times, 1, "task %llu handled %d times", (unsigned long long)ids[i], times);
	}
	free(got);
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.acked, N);
	cr_assert_eq(s.total.taken, N);
	cr_assert_eq(s.ready, 0);
	out_free(&o);
}

/* Waits until `path` has at least `lines` lines. */
static bool wait_lines(const char *path, int lines, unsigned timeout_ms)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	for (;;) {
		char *s = read_file(path);
		int n = count_lines(s);
		free(s);
		if (n >= lines)
			return true;
		if (tqt_now_ms() > deadline)
			return false;
		tqt_sleep_ms(5);
	}
}

/* Lets a command blocked reading the FIFO go. */
static bool open_fifo_and_release(const char *fifo, unsigned timeout_ms)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	for (;;) {
		int fd = open(fifo, O_WRONLY | O_NONBLOCK);
		if (fd >= 0) {
			bool ok = write(fd, "go\n", 3) == 3;
			close(fd);
			return ok;
		}
		if (errno != ENXIO || tqt_now_ms() > deadline)
			return false;
		tqt_sleep_ms(5);
	}
}

/* Waits until signal sig sent to process pid has been handled: pending
 * nowhere (process-wide or in any thread) and every thread asleep again,
 * i.e. the handler has run and returned. Reads /proc; false on timeout. */
static bool wait_signal_handled(pid_t pid, int sig, unsigned timeout_ms)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	unsigned long long bit = 1ull << (sig - 1);
	char path[128], line[256];

	for (;;) {
		bool pending = false, running = false, any = false;
		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
		FILE *f = fopen(path, "r");
		if (!f)
			return false;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "ShdPnd:", 7))
				pending = pending || (strtoull(line + 7, NULL, 16) & bit);
		fclose(f);
		snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/task/%.24s/status", (long)pid, e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			any = true;
			while (fgets(line, sizeof(line), f)) {
				if (!strncmp(line, "SigPnd:", 7))
					pending = pending || (strtoull(line + 7, NULL, 16) & bit);
				else if (!strncmp(line, "State:", 6))
					running = running || !strchr(line + 6, 'S');
			}
			fclose(f);
		}
		if (d)
			closedir(d);
		if (any && !pending && !running)
			return true;
		if (tqt_now_ms() > deadline)
			return false;
		tqt_sleep_ms(1);
	}
}

#define SLOW_COMMAND                                                                                  \
	"echo \"$TASKQ_TASK_ID\" >> \"$0/started\"; read x < \"$0/fifo\"; echo \"$TASKQ_TASK_ID\" >> \"$0/done\""

Test(cli, work_sigint_finishes_the_running_command)
{
	struct out o = {0};
	const char *q = qname("sigint");
	char fifo[300], started[300], done[300];
	uint64_t ids[3];

	create_ok(q);
	tq(&o, NULL, "push", q, "a", "b", "c", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 3), 3);
	cr_assert_eq(mkfifo(tmp_path(fifo, sizeof(fifo), "fifo"), 0600), 0);
	tmp_path(started, sizeof(started), "started");
	tmp_path(done, sizeof(done), "done");

	char *argv[] = {TASKQ, "work", (char *)q, "--", "/bin/sh", "-c", SLOW_COMMAND, tmpdir, NULL};
	struct proc p;
	proc_start(&p, argv, NULL, 0);
	cr_assert(wait_lines(started, 1, 20000), "the command never started");
	cr_assert_eq(kill(p.pid, SIGINT), 0);
	/* Delivery is asynchronous: let the command go only once taskq has
	 * handled the signal, or it might finish first and taskq rightly take
	 * the next task before it hears of the Ctrl+C. */
	cr_assert(wait_signal_handled(p.pid, SIGINT, 20000), "SIGINT never handled");
	/* The command is still running: the task is held, nothing acked. */
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.acked, 0);
	cr_assert(open_fifo_and_release(fifo, 20000), "cannot release the command");
	proc_finish(&p, 30000, &o);
	char *st = read_file(started), *dn = read_file(done);
	cr_assert_eq(o.status, 0, "`%s`: exit %d, want 0\nstderr: %s\ncommands started: [%s], done: [%s]", o.cmd,
		     o.status, o.err, st, dn);

	char want[64];
	snprintf(want, sizeof(want), "%llu\n", (unsigned long long)ids[0]);
	cr_assert_str_eq(st, want, "no command may start after SIGINT");
	cr_assert_str_eq(dn, want, "the running command finished");
	free(st);
	free(dn);
	s = lib_stats(q);
	cr_assert_eq(s.total.acked, 1, "the finished task was acked");
	cr_assert_eq(s.ready, 2);
	cr_assert_eq(s.leased, 0);
	out_free(&o);
}

Test(cli, work_second_sigint_exits_at_once_tasks_return)
{
	struct out o = {0};
	const char *q = qname("sigint2");
	char fifo[300], started[300];

	create_ok(q);
	push_ok(q, "a", "b", "c");
	cr_assert_eq(mkfifo(tmp_path(fifo, sizeof(fifo), "fifo"), 0600), 0);
	tmp_path(started, sizeof(started), "started");

	char *argv[] = {TASKQ, "work", (char *)q, "--", "/bin/sh", "-c", SLOW_COMMAND, tmpdir, NULL};
	struct proc p;
	proc_start(&p, argv, NULL, 0);
	cr_assert(wait_lines(started, 1, 20000), "the command never started");
	/* Standard signals do not queue: two kill()s in a row may arrive as one.
	 * Keep sending until it exits; the first drains, any later one stops. */
	signal_until_exit(&p, SIGINT, 30000, &o);
	open_fifo_and_release(fifo, 5000); /* the orphaned command */
	assert_status(&o, 130);
	/* info only looks (an observer): the dead worker's task is still
	 * leased; recovery returns it. */
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "ready", 2);
	assert_jnum(o.out, "leased", 1);
	assert_jnum(o.out, "processes", 0);
	tq(&o, NULL, "recover", q, NULL);
	assert_ok(&o);
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "ready", 3);
	assert_jnum(o.out, "leased", 0);
	assert_jnum(o.out, "totals.acked", 0);
	out_free(&o);
}

/* ================================================================ dead */

Test(cli, dead_list_kick_purge)
{
	struct out o = {0};
	const char *q = qname("dead");
	uint64_t ids[3];

	create_ok(q, "--max-attempts", "1");
	tq(&o, NULL, "push", q, "x", "y", "z", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, ids, 3), 3);
	tq(&o, NULL, "work", q, "--max-tasks", "3", "--", "false", NULL);
	assert_ok(&o);

	tq(&o, NULL, "dead", q, NULL);
	assert_ok(&o);
	cr_assert_eq(count_lines(o.out), 3, "%s", o.out);
	char want[128];
	snprintf(want, sizeof(want), "%llu\tstring\tattempts=1\t", (unsigned long long)ids[0]);
	cr_assert(!strncmp(o.out, want, strlen(want)), "dead list:\n%s", o.out);
	assert_contains(o.out, "exit status 1\tx\n", "dead list");
	tq(&o, NULL, "dead", q, "list", NULL);
	assert_ok(&o);
	cr_assert_eq(count_lines(o.out), 3);

	tq(&o, NULL, "dead", q, "list", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert_eq(jlen(o.out, ""), 3);
	const char *data[] = {"x", "y", "z"};
	for (int i = 0; i < 3; i++) {
		char path[32];
		snprintf(path, sizeof(path), "%d.id", i);
		assert_jnum(o.out, path, ids[i]);
		snprintf(path, sizeof(path), "%d.data", i);
		assert_jstr(o.out, path, data[i]);
		snprintf(path, sizeof(path), "%d.kind", i);
		assert_jstr(o.out, path, "string");
		snprintf(path, sizeof(path), "%d.attempts", i);
		assert_jnum(o.out, path, 1);
	}

	char id0[32], id1[32];
	snprintf(id0, sizeof(id0), "%llu", (unsigned long long)ids[0]);
	snprintf(id1, sizeof(id1), "%llu", (unsigned long long)ids[1]);
	tq(&o, NULL, "dead", q, "kick", id0, NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "kicked 1 dead task\n");
	tq_stats s = lib_stats(q);
	cr_assert_eq(s.ready, 1);
	cr_assert_eq(s.dead, 2);
	tq(&o, NULL, "dead", q, "kick", id0, NULL); /* not dead any more */
	assert_fails(&o, 1);
	assert_contains(o.err, id0, "kick of a task that is not dead");

	tq(&o, NULL, "dead", q, "purge", id1, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out));
	assert_jnum(o.out, "purged", 1);
	s = lib_stats(q);
	cr_assert_eq(s.dead, 1);
	tq(&o, NULL, "dead", q, "purge", id1, NULL);
	assert_fails(&o, 1);
	tq(&o, NULL, "dead", q, "kick", "999999", NULL);
	assert_fails(&o, 1);
	tq(&o, NULL, "dead", q, "purge", "999999", NULL);
	assert_fails(&o, 1);

	tq(&o, NULL, "dead", q, "kick", "--all", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "kicked 1 dead task\n");
	s = lib_stats(q);
	cr_assert_eq(s.ready, 2);
	cr_assert_eq(s.dead, 0);
	tq(&o, NULL, "dead", q, "kick", "--all", "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "kicked", 0);

	/* Kicked tasks come back with their attempts reset: dead again after one. */
	tq(&o, NULL, "work", q, "--max-tasks", "2", "--", "false", NULL);
	assert_ok(&o);
	tq(&o, NULL, "dead", q, "--json", NULL);
	cr_assert_eq(jlen(o.out, ""), 2, "%s", o.out);
	tq(&o, NULL, "dead", q, "purge", "--all", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "purged 2 dead tasks\n");
	tq(&o, NULL, "dead", q, NULL);
	assert_ok(&o);
	cr_assert_eq(o.out_len, 0);
	tq(&o, NULL, "dead", q, "--json", NULL);
	assert_ok(&o);
	cr_assert_eq(jlen(o.out, ""), 0, "%s", o.out);
	s = lib_stats(q);
	cr_assert_eq(s.dead + s.ready + s.leased + s.delayed, 0);
	cr_assert_eq(s.total.pushed, 3);

	/* Usage. */
	const char *usage[][4] = {{"kick"}, {"purge"}, {"kick", id0, "--all"}, {"kick", "abc"}, {"kick", "0"},
				  {"frob"}, {"list", "extra"}, {"kick", "-5"}};
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		tq(&o, NULL, "dead", q, usage[i][0], usage[i][1], usage[i][2], NULL);
		assert_fails(&o, 2);
	}
	tq(&o, NULL, "dead", qname("nosuch"), NULL);
	assert_fails(&o, 3);
	tq(&o, NULL, "dead", qname("nosuch2"), "kick", "--all", NULL);
	assert_fails(&o, 3);
	out_free(&o);
}

Test(cli, dead_list_int_tasks)
{
	struct out o = {0};
	const char *q = qname("deadint");

	create_ok(q, "--max-attempts", "1");
	tq(&o, NULL, "push", q, "--kind", "int", "77", NULL);
	assert_ok(&o);
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "/bin/sh", "-c", "exit 3", NULL);
	assert_ok(&o);
	tq(&o, NULL, "dead", q, "--json", NULL);
	assert_ok(&o);
	assert_jstr(o.out, "0.kind", "int");
	assert_jnum(o.out, "0.value", 77);
	assert_jstr(o.out, "0.last_message", "exit status 3");
	tq(&o, NULL, "dead", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "\tint\tattempts=1\t", "dead list");
	assert_contains(o.out, "\t77\n", "dead list");
	out_free(&o);
}

/* ================================================================ run state */

Test(cli, stop_pause_resume)
{
	struct out o = {0};
	const char *q = qname("state");
	char want[300];

	create_ok(q);
	push_ok(q, "a", "b");

	tq(&o, NULL, "stop", q, NULL);
	assert_ok(&o);
	snprintf(want, sizeof(want), "%s: draining\n", q);
	cr_assert_str_eq(o.out, want);
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_jstr(o.out, "state", "draining");
	tq(&o, NULL, "push", q, "c", NULL);
	assert_fails(&o, 7);
	tq(&o, "c\n", "push", q, NULL);
	assert_fails(&o, 7);
	tq(&o, NULL, "take", q, NULL);
	assert_fails(&o, 7);
	tq(&o, NULL, "take", q, "--timeout", "0.2", NULL);
	assert_fails(&o, 7);
	tq(&o, NULL, "work", q, "--", "true", NULL); /* returns at once: draining */
	assert_ok(&o);

	tq(&o, NULL, "resume", q, NULL);
	assert_ok(&o);
	snprintf(want, sizeof(want), "%s: running\n", q);
	cr_assert_str_eq(o.out, want);
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_jstr(o.out, "state", "running");

	tq(&o, NULL, "pause", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out));
	assert_jstr(o.out, "state", "paused");
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_jstr(o.out, "state", "paused");
	tq(&o, NULL, "take", q, "--timeout", "0", NULL);
	assert_fails(&o, 6);
	tq(&o, NULL, "take", q, "--timeout", "0.2", NULL);
	assert_fails(&o, 6);
	tq(&o, NULL, "push", q, "c", NULL); /* producers may push while paused */
	assert_ok(&o);
	tq(&o, NULL, "resume", q, NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, "-n", "10", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "a\nb\nc\n");

	tq(&o, NULL, "stop", q, "--now", "--json", NULL);
	assert_ok(&o);
	assert_jstr(o.out, "state", "stopped");
	tq(&o, NULL, "info", q, "--json", NULL);
	assert_jstr(o.out, "state", "stopped");
	tq(&o, NULL, "push", q, "d", NULL);
	assert_fails(&o, 7);
	tq(&o, NULL, "take", q, NULL);
	assert_fails(&o, 7);
	tq(&o, NULL, "stop", q, "--json", NULL);
	assert_ok(&o);
	assert_jstr(o.out, "state", "draining");
	tq(&o, NULL, "resume", q, "--json", NULL);
	assert_jstr(o.out, "state", "running");

	tq_stats s = lib_stats(q);
	cr_assert_eq(s.total.pushed, 3);
	cr_assert_eq(s.total.acked, 3);

	const char *missing = qname("nosuch");
	const char *verbs[] = {"stop", "pause", "resume"};
	for (int i = 0; i < 3; i++) {
		tq(&o, NULL, verbs[i], missing, NULL);
		assert_fails(&o, 3);
	}
	out_free(&o);
}

/* Repeated flags are harmless. */
Test(cli, stop_with_repeated_json_flag)
{
	struct out o = {0};
	const char *q = qname("stopjj");
	create_ok(q);
	tq(&o, NULL, "stop", q, "--json", "--json", NULL);
	cr_assert(o.status == 0 || o.status == 2, "`%s`: status %d", o.cmd, o.status);
	tq(&o, NULL, "stop", q, "-jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj", NULL);
	cr_assert(o.status == 0 || o.status == 2, "`%s`: status %d (a crash?)\n%s", o.cmd, o.status, o.err);
	tq(&o, NULL, "stop", q, "--now", "--now", "--json", NULL);
	assert_ok(&o);
	assert_jstr(o.out, "state", "stopped");
	out_free(&o);
}

/* ================================================================ recover */

struct killer_arg {
	const char *name;
	unsigned take;
};

/* A child that takes tasks through the library and dies holding them. */
static int take_and_die(void *arg)
{
	struct killer_arg *k = arg;
	tq_queue *q;
	tq_task t[16];
	if (tq_open(k->name, &q) != 0)
		return 10;
	int n = tq_take(q, t, k->take, 0);
	if (n != (int)k->take)
		return 11;
	kill(getpid(), SIGKILL);
	return 12;
}

Test(cli, recover_returns_tasks_of_a_killed_process)
{
	struct out o = {0};
	const char *q = qname("recover");
	tq_queue *h;

	create_ok(q);
	push_ok(q, "a", "b", "c", "d");
	/* Attached before the child dies, so that opening does not recover it. */
	cr_assert_eq(tq_open(q, &h), 0);
	struct killer_arg k = {q, 3};
	int st = tqt_wait(tqt_fork(take_and_die, &k), 20000);
	cr_assert_eq(st, 128 + SIGKILL, "the child ended with %d", st);
	tq_stats s;
	cr_assert_eq(tq_stats_get(h, &s), 0);
	cr_assert_eq(s.leased, 3, "the dead child's tasks are still leased");
	cr_assert_eq(s.ready, 1);

	tq(&o, NULL, "recover", q, "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	assert_jnum(o.out, "ready", 4);
	assert_jnum(o.out, "leased", 0);
	cr_assert_geq(jnum(o.out, "recoveries_total"), 1, "%s", o.out);

	cr_assert_eq(tq_stats_get(h, &s), 0);
	cr_assert_eq(s.ready, 4);
	cr_assert_eq(s.leased, 0);
	cr_assert_eq(s.total.recovered, 3);
	tq_close(h);

	tq(&o, NULL, "recover", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "4 ready, 0 in progress", "recover text");
	tq(&o, NULL, "take", q, "-n", "10", NULL);
	assert_ok(&o);
	cr_assert_eq(count_lines(o.out), 4, "%s", o.out);
	const char *each[] = {"a\n", "b\n", "c\n", "d\n"};
	for (int i = 0; i < 4; i++)
		cr_assert(!strncmp(o.out, each[i], 2) || strstr(o.out, each[i]), "%s missing: %s", each[i], o.out);
	tq(&o, NULL, "recover", qname("nosuch"), NULL);
	assert_fails(&o, 3);
	out_free(&o);
}

/* ================================================================ ls, clean, destroy */

/* The line of `taskq ls` for queue name, or NULL. */
static const char *ls_line(const char *out, const char *name, char *line, size_t size)
{
	const char *p = out;
	size_t n = strlen(name);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > n && !strncmp(p, name, n) && p[n] == ' ') {
			snprintf(line, size, "%.*s", (int)len, p);
			return line;
		}
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* The element of a JSON array of objects whose "name" is name. */
static int json_find_name(const char *json, const char *name, char *path, size_t size)
{
	int n = jlen(json, "");
	for (int i = 0; i < n; i++) {
		char k[32], v[TQ_NAME_MAX + 1];
		snprintf(k, sizeof(k), "%d.name", i);
		if (jstr(json, k, v, sizeof(v)) && !strcmp(v, name)) {
			snprintf(path, size, "%d.", i);
			return i;
		}
	}
	return -1;
}

/* prefix ("3.") + key, in a static buffer: a path for jget & co. */
static const char *at_key(const char *prefix, const char *key)
{
	static char path[64];
	snprintf(path, sizeof(path), "%s%s", prefix, key);
	return path;
}

#define assert_jnum_at(json, prefix, key, want)                                                       \
	do {                                                                                          \
		char p_[64];                                                                          \
		snprintf(p_, sizeof(p_), "%s%s", (prefix), (key));                                    \
		assert_jnum((json), p_, (want));                                                      \
	} while (0)

/* A queue nobody works on is said to have no processes attached, never
 * called stale; stale is for what is abandoned or broken. */
Test(cli, ls_says_no_processes_attached_and_stale_only_for_broken)
{
	struct out o = {0};
	const char *empty = qname("lsempty"), *held = qname("lsheld"), *live = qname("lslive"),
		   *junk = qname("lsjunk");
	char line[512];

	create_ok(empty);
	create_ok(held);
	push_ok(held, "a", "b");
	create_ok(live);
	tq_queue *h;
	cr_assert_eq(tq_open(live, &h), 0); /* this process stays attached */
	make_garbage_segment(junk, 4096);

	tq(&o, NULL, "ls", NULL);
	assert_ok(&o);
	cr_assert(!strncmp(o.out, "NAME", 4), "header:\n%s", o.out);
	cr_assert(ls_line(o.out, empty, line, sizeof(line)), "%s missing:\n%s", empty, o.out);
	assert_contains(line, "no processes attached", "an empty queue nobody is attached to");
	cr_assert_null(strstr(line, "stale"), "an idle queue is not stale: %s", line);
	cr_assert(ls_line(o.out, held, line, sizeof(line)), "%s missing:\n%s", held, o.out);
	assert_contains(line, "no processes attached", "a queue with tasks nobody is attached to");
	cr_assert_null(strstr(line, "stale"), "a queue waiting for workers is not stale: %s", line);
	unsigned ready = 99;
	char state[32];
	cr_assert_eq(sscanf(line + strlen(held), " %31s %u", state, &ready), 2, "%s", line);
	cr_assert_str_eq(state, "running");
	cr_assert_eq(ready, 2, "%s", line);
	cr_assert(ls_line(o.out, live, line, sizeof(line)), "%s missing:\n%s", live, o.out);
	cr_assert_null(strstr(line, "stale"), "a queue with a live process is not stale: %s", line);
	cr_assert_null(strstr(line, "no processes"), "a queue with a live process: %s", line);
	cr_assert(ls_line(o.out, junk, line, sizeof(line)), "%s missing:\n%s", junk, o.out);
	assert_contains(line, "not a taskq queue", "a foreign segment");
	assert_contains(line, "stale", "a segment that cannot be used");
	if (private_shm)
		cr_assert_eq(count_lines(o.out), 5, "a private /dev/shm holds only this test's 4 queues:\n%s", o.out);

	tq(&o, NULL, "ls", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	char at[32];
	cr_assert_geq(json_find_name(o.out, empty, at, sizeof(at)), 0, "%s", o.out);
	cr_assert_eq(jbool(o.out, at_key(at, "stale")), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "ready", 0);
	assert_jnum_at(o.out, at, "processes", 0);
	cr_assert_geq(json_find_name(o.out, held, at, sizeof(at)), 0);
	cr_assert_eq(jbool(o.out, at_key(at, "stale")), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "ready", 2);
	cr_assert_geq(json_find_name(o.out, live, at, sizeof(at)), 0);
	cr_assert_eq(jbool(o.out, at_key(at, "stale")), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "processes", 1);
	cr_assert_geq(json_find_name(o.out, junk, at, sizeof(at)), 0);
	cr_assert_not_null(jget(o.out, at_key(at, "error")));
	cr_assert_eq(jbool(o.out, at_key(at, "stale")), 1, "%s", o.out);
	tq_close(h);

	/* ls changed nothing. */
	cr_assert_eq(lib_stats(held).ready, 2);
	out_free(&o);
}

Test(cli, clean_removes_only_unattached_empty_queues_unless_force)
{
	struct out o = {0};
	if (!private_shm)
		cr_skip_test("no private /dev/shm here: taskq clean would touch other tests' queues");
	const char *empty = qname("clempty"), *held = qname("clheld"), *live = qname("cllive"),
		   *junk = qname("cljunk"), *dead = qname("cldead");

	create_ok(empty);
	create_ok(held);
	push_ok(held, "a", "b");
	create_ok(dead, "--max-attempts", "1");
	push_ok(dead, "x");
	tq(&o, NULL, "work", dead, "--max-tasks", "1", "--", "false", NULL);
	assert_ok(&o);
	create_ok(live);
	tq_queue *h;
	cr_assert_eq(tq_open(live, &h), 0);
	make_garbage_segment(junk, 4096);

	/* --dry-run removes nothing. */
	tq(&o, NULL, "clean", "--dry-run", NULL);
	assert_ok(&o);
	char want[300];
	snprintf(want, sizeof(want), "would remove %s", empty);
	assert_contains(o.out, want, "clean --dry-run");
	cr_assert_null(strstr(o.out, held), "%s", o.out);
	tq(&o, NULL, "clean", "--dry-run", "--force", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert_eq(jlen(o.out, ""), 3, "would remove empty, held and dead:\n%s", o.out);
	const char *all[] = {empty, held, live, junk, dead};
	for (int i = 0; i < 5; i++)
		cr_assert(shm_exists(all[i]), "--dry-run removed %s", all[i]);

	/* Without --force: only the empty one nobody is attached to; the others are kept, said on stderr. */
	tq(&o, NULL, "clean", NULL);
	assert_ok(&o);
	snprintf(want, sizeof(want), "removed %s", empty);
	assert_contains(o.out, want, "clean");
	assert_contains(o.err, held, "clean says why it keeps an unattached queue with tasks");
	assert_contains(o.err, dead, "clean keeps an unattached queue with dead tasks");
	cr_assert(!shm_exists(empty));
	cr_assert(shm_exists(held) && shm_exists(dead) && shm_exists(live) && shm_exists(junk));
	cr_assert_eq(lib_stats(held).ready, 2);

	tq(&o, NULL, "clean", "--force", "--json", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert_eq(jlen(o.out, ""), 2, "%s", o.out);
	char at[32];
	cr_assert_geq(json_find_name(o.out, held, at, sizeof(at)), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "tasks_discarded", 2);
	cr_assert(!shm_exists(held) && !shm_exists(dead));
	cr_assert(shm_exists(live), "a queue with a live process is never cleaned");
	cr_assert(shm_exists(junk), "a segment that is not a queue is never cleaned");

	tq(&o, NULL, "clean", NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "nothing to clean\n");
	tq_close(h);
	out_free(&o);
}

/* Observers (top, stats, ls...) are not processes of the queue: with a
 * `taskq top` open, stats lists no process and destroy needs no --force. */
Test(cli, top_is_an_observer_destroy_succeeds_beside_it)
{
	struct out o = {0};
	const char *q = qname("topobs");
	char *argv[] = {(char *)TASKQ, "top", (char *)q, "--batch", "--interval", "0.1", NULL};
	struct proc top;

	create_ok(q);
	proc_start(&top, argv, NULL, 0);
	/* Its first frame: it is attached. */
	for (int i = 0; i < 1000 && !(top.out.p && strstr(top.out.p, "taskq top - queue")); i++)
		proc_pump(&top, 10);
	cr_assert(top.out.p && strstr(top.out.p, "taskq top - queue"), "no frame from taskq top");
	cr_assert(strstr(top.out.p, "processes attached 0"), "top counts itself:\n%s", top.out.p);

	tq(&o, NULL, "stats", q, "--json", NULL);
	assert_ok(&o);
	assert_jnum(o.out, "processes", 0);
	cr_assert_eq(jlen(o.out, "process_list"), 0, "%s", o.out);
	tq(&o, NULL, "ls", "--json", NULL);
	assert_ok(&o);
	char at[32];
	cr_assert_geq(json_find_name(o.out, q, at, sizeof(at)), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "processes", 0);
	tq(&o, NULL, "destroy", q, NULL);
	assert_ok(&o);
	cr_assert(!shm_exists(q));

	signal_until_exit(&top, SIGTERM, 10000, &o);
	assert_ok(&o);
	out_free(&o);
}

/* taskq top's last minute: a sparkline a figure, with its latest value
 * and its largest, read from the queue at each frame. */
Test(cli, top_shows_the_last_minute_of_each_figure)
{
	struct out o = {0};
	const char *q = qname("topmin");

	create_ok(q);
	for (int i = 0; i < 5; i++)
		push_ok(q, "x");
	tq(&o, NULL, "top", q, "--batch", "--iterations", "2", "--interval", "0.1", NULL);
	assert_ok(&o);
	const char *last = strstr(o.out, "taskq top - queue");
	cr_assert(last, "%s", o.out);
	last = strstr(last + 1, "taskq top - queue"); /* the second frame */
	cr_assert(last, "no second frame:\n%s", o.out);
	assert_contains(last, "\npending  ", "pending line");
	assert_contains(last, "now 5  max 5\n", "pending: 5 now, 5 at most");
	assert_contains(last, "\ndone/s   ", "done/s line");
	assert_contains(last, "\npushed/s ", "pushed/s line");
	assert_contains(last, "\nfailed/s ", "failed/s line");
	assert_contains(last, "\nheld     ", "held line");
	out_free(&o);
}

Test(cli, destroy_refuses_queues_holding_tasks)
{
	struct out o = {0};
	const char *q = qname("destroy"), *e = qname("destroye"), *a = qname("destroya");
	char want[300];

	create_ok(q);
	push_ok(q, "a");
	tq(&o, NULL, "destroy", q, NULL);
	assert_fails(&o, 1);
	cr_assert(shm_exists(q));
	cr_assert_eq(lib_stats(q).ready, 1, "the refused destroy kept the task");
	tq(&o, NULL, "destroy", q, "--force", NULL);
	assert_ok(&o);
	snprintf(want, sizeof(want), "destroyed %s\n", q);
	cr_assert_str_eq(o.out, want);
	cr_assert(!shm_exists(q));
	tq(&o, NULL, "destroy", q, NULL);
	assert_fails(&o, 3);

	create_ok(e);
	tq(&o, NULL, "destroy", e, NULL);
	assert_ok(&o);
	cr_assert(!shm_exists(e));

	/* A process attached: refused too. */
	create_ok(a);
	tq_queue *h;
	cr_assert_eq(tq_open(a, &h), 0);
	tq(&o, NULL, "destroy", a, NULL);
	assert_fails(&o, 1);
	cr_assert(shm_exists(a));
	tq_close(h);
	tq(&o, NULL, "destroy", a, NULL);
	assert_ok(&o);
	out_free(&o);
}

/* ================================================================ exact and binary-safe output */

/* 64-bit values are printed exactly in --json (cJSON alone would print
 * 18446744073709551615 as 1.8446744073709552e+19); payloads of any bytes
 * come out exactly in text, and as valid UTF-8 JSON with their exact bytes
 * in data_base64 when they are not UTF-8. */
Test(cli, json_output_is_exact_and_valid_utf8)
{
	struct out o = {0};
	const char *q = qname("exact");
	tq_queue *h;

	create_ok(q, "--max-attempts", "1");
	tq(&o, NULL, "push", q, "--kind", "int", "18446744073709551615", "9007199254740993", NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, "-n", "2", "--json", NULL);
	assert_ok(&o);
	char *arr;
	cr_assert_eq(ndjson_array(o.out, &arr), 2, "%s", o.out);
	free(arr);
	cr_assert(utf8_ok(o.out, o.out_len));
	assert_contains(o.out, "\"value\":18446744073709551615}", "take --json, 2^64 - 1");
	assert_contains(o.out, "\"value\":9007199254740993}", "take --json, 2^53 + 1");

	tq_bin(&o, "a\0b\n\xff\xfe\n", 7, "push", q, NULL);
	assert_ok(&o);
	cr_assert_eq(tq_open(q, &h), 0); /* the library does not check JSON tasks' bytes */
	cr_assert_eq(tq_push_data(h, TQ_KIND_JSON, "\"\xc3\x28\"", 4, 0), 0);
	tq_close(h);
	tq(&o, NULL, "take", q, "-n", "3", "--json", NULL);
	assert_ok(&o);
	cr_assert_eq(ndjson_array(o.out, &arr), 3, "%s", o.out);
	cr_assert(utf8_ok(o.out, o.out_len));
	assert_jstr(arr, "0.kind", "string");
	free(arr);
	assert_contains(o.out, "\"data\":\"a\\u0000b\"}", "a NUL in JSON");
	assert_contains(o.out, "\"data\":\"\\ufffd\\ufffd\",\"data_base64\":\"//4=\"}", "bytes that are not UTF-8");
	assert_contains(o.out, "\"data\":\"\\\"\\ufffd(\\\"\",\"data_base64\":\"IsMoIg==\",\"data_not_json\":true}",
			"a JSON task that is not UTF-8");
	cr_assert_null(strstr(o.out, "\"data\":\"a\\u0000b\",\"data_base64\""), "no base64 for valid UTF-8");

	/* Text: the bytes as they are. */
	tq_bin(&o, "a\0b\n\xff\xfe\n", 7, "push", q, "--quiet", NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, "-n", "2", NULL);
	assert_ok(&o);
	cr_assert_eq(o.out_len, 7, "%zu bytes", o.out_len);
	cr_assert(!memcmp(o.out, "a\0b\n\xff\xfe\n", 7));

	/* Dead letters: the same, through work. */
	tq_bin(&o, "a\0b\n\xff\xfe\n", 7, "push", q, "--quiet", NULL);
	tq(&o, NULL, "push", q, "--quiet", "--kind", "int", "18446744073709551615", NULL);
	tq(&o, NULL, "work", q, "--max-tasks", "3", "--", "false", NULL);
	assert_ok(&o);
	tq(&o, NULL, "dead", q, "--json", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	cr_assert_eq(jlen(o.out, ""), 3, "%s", o.out);
	assert_contains(o.out, "\"data\":\"a\\u0000b\"", "dead --json, a NUL");
	assert_contains(o.out, "\"data_base64\":\"//4=\"", "dead --json, not UTF-8");
	assert_contains(o.out, "\"value\":18446744073709551615", "dead --json, 2^64 - 1");
	tq(&o, NULL, "dead", q, NULL);
	assert_ok(&o);
	cr_assert(memmem(o.out, o.out_len, "\t18446744073709551615\n", 22), "dead text: the integer");
	cr_assert(memmem(o.out, o.out_len, "\ta\0b\n", 5), "dead text: the payload's bytes");
	cr_assert(memmem(o.out, o.out_len, "\t\xff\xfe\n", 4), "dead text: the payload's bytes");

	/* Every other --json: valid, and counters are plain integers. */
	const char *cmds[][4] = {{"stats", q, "--json"}, {"info", q, "--json"}, {"ls", "--json"},
				 {"recover", q, "--json"}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		tq(&o, NULL, cmds[i][0], cmds[i][1], cmds[i][2], NULL);
		assert_ok(&o);
		assert_json_output(&o);
		cr_assert_eq(count_lines(o.out), 1, "`%s`: one compact line:\n%s", o.cmd, o.out);
	}
	tq(&o, NULL, "log", q, "--json", NULL); /* one event a line */
	assert_ok(&o);
	cr_assert(ndjson_array(o.out, &arr) > 0);
	free(arr);
	cr_assert(utf8_ok(o.out, o.out_len));
	tq(&o, NULL, "stats", q, "--json", NULL);
	const char *v = jget(o.out, "totals.pushed");
	cr_assert(v && !strncmp(v, "10,", 3), "totals.pushed: %.20s", v ? v : "(none)");
	v = jget(o.out, "latency_seconds.queue_wait.count");
	cr_assert(v && *v >= '0' && *v <= '9', "latency count: %.20s", v ? v : "(none)");
	tq(&o, NULL, "work", q, "--idle-exit", "0.05", "--json", "--", "true", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	out_free(&o);
}

/* ================================================================ create: backoff */

Test(cli, create_backoff_above_max_is_refused)
{
	struct out o = {0};
	const char *q = qname("boff"), *up = qname("boffup"), *down = qname("boffdn");

	tq(&o, NULL, "create", q, "--backoff", "5", "--backoff-max", "1", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "--backoff 5 s exceeds --backoff-max 1 s", "the refusal");
	cr_assert(!shm_exists(q));
	tq(&o, NULL, "create", q, "--backoff-max", "1", "--backoff", "1.5", NULL);
	assert_fails(&o, 2);
	tq(&o, NULL, "create", q, "--backoff", "1", "--backoff-max", "1", NULL); /* equal: fine */
	assert_ok(&o);

	/* Alone, each moves the other's default (as create --help says). */
	tq(&o, NULL, "create", up, "--backoff", "120", NULL);
	assert_ok(&o);
	tq(&o, NULL, "info", up, "--json", NULL);
	assert_jnum(o.out, "config.backoff_seconds", 120);
	assert_jnum(o.out, "config.backoff_max_seconds", 120);
	tq(&o, NULL, "create", down, "--backoff-max", "0.05", NULL);
	assert_ok(&o);
	tq(&o, NULL, "info", down, "--json", NULL);
	assert_jnum(o.out, "config.backoff_seconds", 0.05);
	assert_jnum(o.out, "config.backoff_max_seconds", 0.05);
	tq(&o, NULL, "create", qname("boffh"), "--help", NULL);
	assert_contains(o.out, "--backoff above --backoff-max is refused", "create --help");

	/* Durations are decimal seconds, nothing else. */
	const char *bad[] = {"1e3", "0x10", "+1", "1.2.3", ".", "", " 1", "inf"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tq(&o, NULL, "create", qname("tmp2"), "--lease", bad[i], NULL);
		assert_fails(&o, 2);
		queues[MAX_QUEUES - 1][0] = '\0';
		for (int k = 0; k < MAX_QUEUES; k++)
			if (strstr(queues[k], "-tmp2-"))
				queues[k][0] = '\0';
	}
	out_free(&o);
}

/* ================================================================ hostile /dev/shm */

static void shm_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/dev/shm/taskq.%s", name);
}

/* The whole file, for checking that nobody wrote to it. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	struct stat st;
	cr_assert(fd >= 0 && fstat(fd, &st) == 0, "%s: %s", path, strerror(errno));
	char *p = malloc((size_t)st.st_size + 1);
	cr_assert(p);
	cr_assert_eq(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* Sets a file's mtime `ago` seconds back. */
static void age_file(const char *path, int ago)
{
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[1] = ts[0];
	ts[1].tv_sec -= ago;
	cr_assert_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0, "%s: %s", path, strerror(errno));
}

/* A half-created segment of the caller's: size bytes of zeros (no magic). */
static void make_half_created(const char *name, size_t size, int ago)
{
	char path[300];
	make_garbage_segment(name, 0);
	shm_path(path, sizeof(path), name);
	if (size)
		cr_assert_eq(truncate(path, (off_t)size), 0);
	if (ago)
		age_file(path, ago);
}

/* Another user's queue, unattached and empty (which clean would remove were it
 * the caller's), and another user's old half-created segment: ls lists
 * them as that user's, not inspected; clean never opens or removes them;
 * not a byte of them changes (tq_open would register in the queue). */
Test(cli, ls_and_clean_leave_other_users_queues_alone)
{
	struct out o = {0};
	const char *other = qname("otheruser"), *half = qname("otherhalf");
	char path[300], hpath[300], line[512];

	if (geteuid() != 0)
		cr_skip_test("needs root to give a segment to another user");
	create_ok(other);
	shm_path(path, sizeof(path), other);
	cr_assert_eq(chown(path, 65534, 65534), 0, "%s", strerror(errno));
	make_half_created(half, 0, 3600);
	shm_path(hpath, sizeof(hpath), half);
	cr_assert_eq(chown(hpath, 65534, 65534), 0);
	size_t len0;
	char *before = slurp(path, &len0);

	tq(&o, NULL, "ls", NULL);
	assert_ok(&o);
	cr_assert(ls_line(o.out, other, line, sizeof(line)), "%s missing:\n%s", other, o.out);
	assert_contains(line, "uid 65534", "ls names the owner");
	assert_contains(line, "not inspected", "ls says it did not look");
	cr_assert(ls_line(o.out, half, line, sizeof(line)), "%s missing:\n%s", half, o.out);
	assert_contains(line, "not inspected", "another user's half-created segment");
	tq(&o, NULL, "ls", "--json", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	char at[32];
	cr_assert_geq(json_find_name(o.out, other, at, sizeof(at)), 0, "%s", o.out);
	cr_assert_eq(jbool(o.out, at_key(at, "inspected")), 0, "%s", o.out);
	assert_jnum_at(o.out, at, "owner_uid", 65534);
	cr_assert_null(jget(o.out, at_key(at, "ready")), "no counts for a queue not inspected");

	if (private_shm) {
		tq(&o, NULL, "clean", "--force", "--dry-run", "--json", NULL);
		assert_ok(&o);
		cr_assert_eq(jlen(o.out, ""), 0, "clean would remove another user's segment:\n%s", o.out);
		assert_contains(o.err, other, "clean says it skipped it");
		tq(&o, NULL, "clean", "--force", NULL);
		assert_ok(&o);
		cr_assert_str_eq(o.out, "nothing to clean\n");
	}
	tq(&o, NULL, "destroy", other, NULL);
	assert_fails(&o, 1);
	assert_contains(o.err, "not inspected", "destroy does not open it either");
	cr_assert(shm_exists(other) && shm_exists(half));
	size_t len1;
	char *after = slurp(path, &len1);
	cr_assert(len0 == len1 && !memcmp(before, after, len0), "another user's queue was written to");
	free(before);
	free(after);
	out_free(&o);
}

/* A FIFO, a directory, a symlink and a file with a hostile name, all named
 * taskq.*: ls says what each is without opening it (a FIFO would block or
 * look half-created), clean keeps them, destroy refuses them. */
Test(cli, ls_and_clean_never_open_non_queue_files)
{
	struct out o = {0};
	const char *fifo = qname("fifo"), *dir = qname("dir"), *link = qname("link"), *real = qname("real");
	char path[300], target[300], line[512];

	if (!private_shm)
		cr_skip_test("no private /dev/shm here: the test makes a directory in it");
	create_ok(real);
	tq_queue *h;
	cr_assert_eq(tq_open(real, &h), 0); /* attached, so clean keeps it */
	shm_path(path, sizeof(path), fifo);
	cr_assert_eq(mkfifo(path, 0600), 0);
	age_file(path, 3600);
	shm_path(path, sizeof(path), dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	shm_path(path, sizeof(path), link);
	shm_path(target, sizeof(target), real);
	cr_assert_eq(symlink(target, path), 0);
	const char *evil = "/dev/shm/taskq.\xff\x1b[31mred";
	int fd = open(evil, O_CREAT | O_WRONLY | O_EXCL, 0600);
	cr_assert(fd >= 0);
	close(fd);
	age_file(evil, 3600);

	tq(&o, NULL, "ls", NULL);
	assert_ok(&o);
	cr_assert(ls_line(o.out, fifo, line, sizeof(line)), "%s missing:\n%s", fifo, o.out);
	assert_contains(line, "not a taskq queue: a FIFO", "ls, a FIFO");
	cr_assert(ls_line(o.out, dir, line, sizeof(line)), "%s missing:\n%s", dir, o.out);
	assert_contains(line, "not a taskq queue: a directory", "ls, a directory");
	cr_assert(ls_line(o.out, link, line, sizeof(line)), "%s missing:\n%s", link, o.out);
	assert_contains(line, "not a taskq queue: a symbolic link", "ls, a symlink");
	cr_assert(ls_line(o.out, "\\xff\\x1b[31mred", line, sizeof(line)), "the hostile name, escaped:\n%s", o.out);
	assert_contains(line, "not a valid queue name", "ls, a hostile name");
	cr_assert_null(strchr(o.out, '\x1b'), "an escape sequence reached the terminal");
	tq(&o, NULL, "ls", "--json", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	assert_contains(o.out, "\"name\":\"\\ufffd\\u001b[31mred\"", "ls --json, a hostile name");

	tq(&o, NULL, "clean", "--force", "--json", NULL);
	assert_ok(&o);
	cr_assert_eq(jlen(o.out, ""), 0, "clean removed something:\n%s", o.out);
	assert_contains(o.err, "a FIFO", "clean says why it keeps the FIFO");
	struct stat st;
	shm_path(path, sizeof(path), fifo);
	cr_assert(lstat(path, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was removed");
	shm_path(path, sizeof(path), dir);
	cr_assert(lstat(path, &st) == 0 && S_ISDIR(st.st_mode), "the directory was removed");
	shm_path(path, sizeof(path), link);
	cr_assert(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the symlink was removed");
	cr_assert(lstat(evil, &st) == 0, "the hostile name was removed");
	cr_assert(shm_exists(real));

	tq(&o, NULL, "destroy", fifo, NULL);
	assert_fails(&o, 4);
	assert_contains(o.err, "a FIFO", "destroy, a FIFO");
	tq(&o, NULL, "destroy", link, NULL);
	assert_fails(&o, 4);
	tq(&o, NULL, "destroy", fifo, "--force", NULL);
	assert_ok(&o);
	shm_path(path, sizeof(path), fifo);
	cr_assert(lstat(path, &st) != 0, "destroy --force removes the name");
	tq_close(h);
	shm_path(path, sizeof(path), dir);
	rmdir(path);
	unlink(evil);
	out_free(&o);
}

/* A half-created segment is removed only when provably abandoned: the
 * caller's, empty or with a zero magic, unchanged for 60 s. */
Test(cli, clean_removes_only_old_half_created_segments)
{
	struct out o = {0};
	const char *empty_old = qname("hempty"), *zero_old = qname("hzero"), *fresh = qname("hfresh");
	char line[512];

	if (!private_shm)
		cr_skip_test("no private /dev/shm here: taskq clean would touch other tests' queues");
	make_half_created(empty_old, 0, 3600);
	make_half_created(zero_old, 65536, 3600);
	make_half_created(fresh, 0, 0);

	tq(&o, NULL, "ls", NULL);
	assert_ok(&o);
	cr_assert(ls_line(o.out, empty_old, line, sizeof(line)), "%s", o.out);
	assert_contains(line, "half-created: its creator died", "ls, an old empty segment");
	cr_assert(ls_line(o.out, fresh, line, sizeof(line)), "%s", o.out);
	assert_contains(line, "half-created: being created", "ls, a new empty segment");

	tq(&o, NULL, "clean", NULL);
	assert_ok(&o);
	char want[300];
	snprintf(want, sizeof(want), "removed %s: half-created (its creator died)", empty_old);
	assert_contains(o.out, want, "clean, an old empty segment");
	snprintf(want, sizeof(want), "removed %s: half-created (its creator died)", zero_old);
	assert_contains(o.out, want, "clean, an old segment with no header");
	assert_contains(o.err, fresh, "clean says why it keeps a new one");
	cr_assert(!shm_exists(empty_old) && !shm_exists(zero_old));
	cr_assert(shm_exists(fresh), "a segment maybe still being created was removed");
	out_free(&o);
}

/* ================================================================ messages */

/* Every out-of-range or malformed value is refused naming its option, what
 * was given and the range allowed. */
Test(cli, range_errors_name_the_option_and_the_range)
{
	struct out o = {0};
	const char *q = qname("range"), *xn = qname("rangex");
	create_ok(q);

	const struct {
		const char *args[7];
		const char *want;
	} cases[] = {
		{{"take", q, "-n", "0"}, "invalid --count '0': an integer from 1 to 1000000000"},
		{{"take", q, "--count", "x"}, "invalid --count 'x': an integer from 1 to 1000000000"},
		{{"take", q, "--timeout", "soon"}, "invalid --timeout 'soon': seconds from 0 to 1000000000"},
		{{"push", q, "--delay", "-1", "a"}, "invalid --delay '-1': seconds from 0 to 31536000 (365 days)"},
		{{"push", q, "--timeout", "x", "a"}, "invalid --timeout 'x': seconds from 0 to"},
		{{"push", q, "--kind", "float", "a"}, "invalid --kind 'float': int, string or json"},
		{{"create", xn, "--capacity", "0"}, "invalid --capacity '0': an integer from 1 to 16777216"},
		{{"create", xn, "--max-payload", "16777217"}, "invalid --max-payload '16777217': an integer from 0 to 16777216"},
		{{"create", xn, "--max-attempts", "65536"}, "invalid --max-attempts '65536': an integer from 1 to 65535"},
		{{"create", xn, "--dead-capacity", "0"}, "invalid --dead-capacity '0': an integer from 1 to 16777216"},
		{{"create", xn, "--lease", "0.0001"}, "invalid --lease '0.0001': seconds from 0.001 to 31536000"},
		{{"create", xn, "--backoff", "nan"}, "invalid --backoff 'nan': seconds from 0 to 86400 (1 day)"},
		{{"create", xn, "--backoff-max", "x"}, "invalid --backoff-max 'x': seconds from 0 to 31536000"},
		{{"create", xn, "--mode", "800"}, "invalid --mode '800': octal permissions from 0 to 777"},
		{{"work", q, "--concurrency", "3000000", "--", "true"}, "invalid --concurrency '3000000': an integer from 1 to 256"},
		{{"work", q, "--batch", "0", "--", "true"}, "invalid --batch '0': an integer from 1 to 4096"},
		{{"work", q, "--max-tasks", "0", "--", "true"}, "invalid --max-tasks '0': an integer from 1 to"},
		{{"work", q, "--idle-exit", "0", "--", "true"}, "invalid --idle-exit '0': seconds from 0.001 to"},
		{{"work", q, "--task-timeout", "x", "--", "true"}, "invalid --task-timeout 'x': seconds from 0.001 to"},
		{{"work", q, "--log-max-files", "500", "--", "true"}, "invalid --log-max-files '500': an integer from 1 to 100"},
		{{"work", q, "--log-level", "loud", "--", "true"}, "invalid --log-level 'loud': debug, info, warn or error"},
		{{"top", q, "--iterations", "0"}, "invalid --iterations '0': an integer from 1 to"},
		{{"top", q, "--interval", "0.05"}, "invalid --interval '0.05': seconds from 0.1 to 3600"},
		{{"serve", q, "--timeout", "0"}, "invalid --timeout '0': an integer from 1 to 3600"},
		{{"serve", q, "--max-connections", "10001"}, "invalid --max-connections '10001': an integer from 1 to 10000"},
		{{"serve", q, "--reserved-connections", "x"}, "invalid --reserved-connections 'x': an integer from 0 to 9999"},
		{{"dead", q, "kick", "abc"}, "invalid task id 'abc': an integer from 1 to 18446744073709551614"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		tq(&o, NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL);
		assert_fails(&o, 2);
		assert_contains(o.err, cases[i].want, o.cmd);
		cr_assert(!strchr(o.err, '\n') || strchr(o.err, '\n')[1] == '\0', "`%s`: one line, said once:\n%s",
			  o.cmd, o.err);
	}
	cr_assert(!shm_exists(xn));
	cr_assert_eq(lib_stats(q).total.pushed, 0);
	out_free(&o);
}

Test(cli, take_on_a_paused_queue_says_it_is_paused)
{
	struct out o = {0};
	const char *q = qname("tpause");
	create_ok(q);
	push_ok(q, "a");

	tq(&o, NULL, "take", q, "-n", "0", NULL); /* (a usage error first: nothing taken) */
	assert_fails(&o, 2);
	tq(&o, NULL, "pause", q, NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, NULL);
	assert_fails(&o, 6);
	assert_contains(o.err, "paused", "take on a paused queue");
	assert_contains(o.err, "taskq resume", "take on a paused queue");
	cr_assert_null(strstr(o.err, "no task ready"), "%s", o.err);
	tq(&o, NULL, "resume", q, NULL);
	tq(&o, NULL, "take", q, NULL);
	assert_ok(&o);
	cr_assert_str_eq(o.out, "a\n");
	tq(&o, NULL, "take", q, NULL); /* running and empty: no task ready */
	assert_fails(&o, 6);
	assert_contains(o.err, "no task ready", "take on an empty queue");
	out_free(&o);
}

Test(cli, dead_unknown_action_lists_the_valid_ones)
{
	struct out o = {0};
	const char *q = qname("dact");
	create_ok(q);

	tq(&o, NULL, "dead", q, "kikc", "3", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "unknown action 'kikc'", "dead kikc");
	assert_contains(o.err, "list, kick or purge", "dead kikc");
	tq(&o, NULL, "dead", q, "kick", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "a task ID or --all", "dead kick");
	tq(&o, NULL, "dead", q, "purge", "3", "--all", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "not both", "dead purge ID --all");
	tq(&o, NULL, "dead", q, "list", "x", NULL);
	assert_fails(&o, 2);
	assert_contains(o.err, "usage: taskq dead", "dead list x");
	out_free(&o);
}

Test(cli, unknown_command_suggests_the_nearest)
{
	struct out o = {0};
	const struct {
		const char *typed, *meant;
	} cases[] = {{"stat", "stats"}, {"pussh", "push"}, {"tkae", "take"}, {"ressume", "resume"},
		     {"destory", "destroy"}, {"wrok", "work"}, {"cre", "create"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[64];
		tq(&o, NULL, cases[i].typed, "q", NULL);
		assert_fails(&o, 2);
		snprintf(want, sizeof(want), "did you mean '%s'?", cases[i].meant);
		assert_contains(o.err, want, o.cmd);
	}
	const char *far[] = {"frobnicate", "x", "st"};
	for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
		tq(&o, NULL, far[i], NULL);
		assert_fails(&o, 2);
		assert_contains(o.err, "unknown command", o.cmd);
		cr_assert_null(strstr(o.err, "did you mean"), "`%s`: %s", o.cmd, o.err);
	}
	out_free(&o);
}

Test(cli, create_existing_has_its_own_exit_status)
{
	struct out o = {0};
	const char *q = qname("cexist");

	tq(&o, NULL, "--help", NULL);
	assert_contains(o.out, "  9  the queue exists already", "taskq --help's exit status table");
	create_ok(q);
	tq(&o, NULL, "create", q, "--json", NULL);
	assert_fails(&o, 9);
	assert_contains(o.err, "--exist-ok", "create existing");
	tq(&o, NULL, "create", q, "--exist-ok", NULL);
	assert_ok(&o);
	out_free(&o);
}

Test(cli, work_log_records_the_whole_command)
{
	struct out o = {0};
	const char *q = qname("wlog");
	char log[600];
	create_ok(q);
	push_ok(q, "a");

	tmp_path(log, sizeof(log), "work.log");
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--log-file", log, "--", "/bin/sh", "-c", "exit 0", NULL);
	assert_ok(&o);
	char *text = read_file(log);
	assert_contains(text, "event=work_started", "the work log");
	assert_contains(text, "command=\"/bin/sh -c 'exit 0'\"", "the work log");
	free(text);
	unlink(log);
	out_free(&o);
}

/* ================================================================ output */

Test(cli, take_json_nests_json_payloads_one_task_a_line)
{
	struct out o = {0};
	const char *q = qname("tnest");
	tq_queue *h;
	char *arr;
	create_ok(q);

	tq(&o, NULL, "push", q, "--json", "--quiet", "{\n  \"a\": [1, 2.50, 18446744073709551616],\n  \"s\": \"x  y\\\\\"\n}",
	   "\"just a string\"", "null", NULL);
	assert_ok(&o);
	push_ok(q, "{\"not\": \"parsed\"}"); /* a string task that looks like JSON */
	cr_assert_eq(tq_open(q, &h), 0);
	cr_assert_eq(tq_push_data(h, TQ_KIND_JSON, "{oops", 5, 0), 0); /* the library checks no JSON */
	tq_close(h);

	tq(&o, NULL, "take", q, "-n", "10", "--json", NULL);
	assert_ok(&o);
	cr_assert_eq(ndjson_array(o.out, &arr), 5, "one line a task:\n%s", o.out);
	/* Nested, whitespace outside strings gone, numbers as written. */
	assert_contains(o.out, "\"data\":{\"a\":[1,2.50,18446744073709551616],\"s\":\"x  y\\\\\"}}\n", "a JSON task");
	assert_jstr(arr, "1.data", "just a string");
	cr_assert(jget(arr, "2.data") && !strncmp(jget(arr, "2.data"), "null}", 5), "%s", o.out);
	assert_jstr(arr, "3.kind", "string");
	assert_jstr(arr, "3.data", "{\"not\": \"parsed\"}");
	assert_jstr(arr, "4.kind", "json");
	assert_jstr(arr, "4.data", "{oops");
	cr_assert(jget(arr, "4.data_not_json") && !strncmp(jget(arr, "4.data_not_json"), "true", 4), "%s", o.out);
	cr_assert_null(jget(arr, "0.data_not_json"), "%s", o.out);
	cr_assert_null(jget(arr, "3.data_not_json"), "%s", o.out);
	free(arr);

	/* Dead letters: the same. */
	const char *d = qname("tnestd");
	create_ok(d, "--max-attempts", "1");
	tq(&o, NULL, "push", d, "--json", "--quiet", "{ \"a\" : 1 }", NULL);
	assert_ok(&o);
	tq(&o, NULL, "work", d, "--max-tasks", "1", "--", "false", NULL);
	assert_ok(&o);
	tq(&o, NULL, "dead", d, "--json", NULL);
	assert_ok(&o);
	assert_json_output(&o);
	assert_contains(o.out, "\"data\":{\"a\":1}", "dead --json, a JSON task");

	/* --pretty: the same tasks, indented over several lines. */
	push_ok(q, "p");
	tq(&o, NULL, "take", q, "--json", "--pretty", NULL);
	assert_ok(&o);
	cr_assert(js_valid(o.out), "%s", o.out);
	cr_assert(count_lines(o.out) > 1, "%s", o.out);
	assert_jstr(o.out, "data", "p");
	/* After --, --pretty is a value like any other. */
	tq(&o, NULL, "push", q, "--quiet", "--", "--pretty", NULL);
	assert_ok(&o);
	tq(&o, NULL, "take", q, NULL);
	cr_assert_str_eq(o.out, "--pretty\n");
	out_free(&o);
}

Test(cli, json_is_compact_unless_pretty)
{
	struct out o = {0};
	const char *q = qname("compact");
	create_ok(q);

	const char *cmds[][3] = {{"stats", q}, {"info", q}, {"pause", q}, {"resume", q}, {"recover", q},
				 {"dead", q}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		tq(&o, NULL, cmds[i][0], cmds[i][1], "--json", NULL);
		assert_ok(&o);
		assert_json_output(&o);
		cr_assert_eq(count_lines(o.out), 1, "`%s`: not one line:\n%s", o.cmd, o.out);
		cr_assert_null(strchr(o.out, '\t'), "`%s`: %s", o.cmd, o.out);
		tq(&o, NULL, cmds[i][0], cmds[i][1], "--json", "--pretty", NULL);
		assert_ok(&o);
		assert_json_output(&o);
		if (strcmp(cmds[i][0], "dead")) /* [] stays on one line */
			cr_assert(count_lines(o.out) > 1, "`%s`: not indented:\n%s", o.cmd, o.out);
	}
	out_free(&o);
}

/* Latencies with their units; no age for the oldest ready task when none is
 * ready; events with each field labelled. */
Test(cli, human_output_has_units_and_labels)
{
	struct out o = {0};
	const char *q = qname("human");
	uint64_t id;
	create_ok(q, "--max-attempts", "1");

	tq(&o, NULL, "stats", q, NULL);
	assert_ok(&o);
	assert_contains(o.out, "oldest ready task: -;", "stats with nothing ready");
	tq(&o, NULL, "push", q, "x", NULL);
	assert_ok(&o);
	cr_assert_eq(parse_ids(o.out, &id, 1), 1);
	tq(&o, NULL, "stats", q, NULL);
	cr_assert_null(strstr(o.out, "oldest ready task: -;"), "a task is ready:\n%s", o.out);
	tq(&o, NULL, "work", q, "--max-tasks", "1", "--", "false", NULL);
	assert_ok(&o);
	tq(&o, NULL, "stats", q, NULL);
	assert_ok(&o);
	const char *p = strstr(o.out, "queue_wait  p50 ");
	cr_assert(p, "%s", o.out);
	double v;
	char unit[8];
	cr_assert_eq(sscanf(p + strlen("queue_wait  p50 "), "%lf %7[a-z],", &v, unit), 2, "%s", o.out);
	cr_assert(!strcmp(unit, "ns") || !strcmp(unit, "us") || !strcmp(unit, "ms") || !strcmp(unit, "s"),
		  "p50 without a unit: %s", p);

	tq(&o, NULL, "log", q, NULL);
	assert_ok(&o);
	char want[128];
	snprintf(want, sizeof(want), "event=task_dead id=%llu attempts=1 msg=\"exit status 1\"\n", (unsigned long long)id);
	assert_contains(o.out, want, "log");
	assert_contains(o.out, "event=created capacity=10000 max_payload=4096\n", "log");
	out_free(&o);
}

/* The options of every subcommand (and of the --url forms of stop, pause
 * and resume): each one --help lists is taken (given before --help, an
 * unknown one would be a usage error), and appears in the usage line too. */
Test(cli, every_listed_option_is_taken)
{
	struct out o = {0}, h = {0};
	const char *url = "http://127.0.0.1:1";
	const struct {
		const char *name;
		bool remote; /* the --url form */
	} cmds[] = {{"push", false},   {"take", false},  {"create", false}, {"stop", false},  {"pause", false},
		    {"resume", false}, {"dead", false},  {"log", false},    {"recover", false}, {"ls", false},
		    {"clean", false},  {"destroy", false}, {"info", false}, {"stats", false}, {"work", false},
		    {"top", false},    {"serve", false}, {"stop", true},    {"pause", true},  {"resume", true}};
	const struct {
		const char *arg, *value;
	} values[] = {{"N", "1"}, {"BYTES", "10"}, {"OCTAL", "600"}, {"SEC", "1"}, {"COUNT", "1"},
		      {"int|string|json", "int"}, {"FILE", "/dev/null"}, {"LEVEL", "info"},
		      {"ADDR:PORT", "127.0.0.1:0"}, {"URL", "http://127.0.0.1:1"}, {"S", "ST"},
		      {"SIZE", "64K"}};
	const struct {
		const char *arg, *value; /* arg: the option, whose value is outside the above */
	} own_values[] = {{"--log-max-bytes", "1024"}};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (cmds[i].remote)
			tq(&h, NULL, cmds[i].name, "--url", url, "--help", NULL);
		else
			tq(&h, NULL, cmds[i].name, "--help", NULL);
		assert_ok(&h);
		const char *opts = strstr(h.out, "\nOptions:\n");
		cr_assert(opts, "`%s`: no option list:\n%s", h.cmd, h.out);
		int seen = 0;
		for (const char *l = opts + 10; *l == ' '; l = strchr(l, '\n') + 1) {
			char name[64] = "", arg[64] = "";
			const char *dd = strstr(l, "--");
			const char *eol = strchr(l, '\n');
			if (!dd || dd > eol || dd[-1] != ' ' || strspn(l, " ") > 6)
				continue; /* a continuation line (indented to the help's column) */
			cr_assert(sscanf(dd, "%63s %63s", name, arg) >= 1);
			if (!strcmp(name, "--help"))
				continue;
			/* --url, --token-file and --cacert of a local form: the remote
			 * form's, whose --url is not optional */
			if (!strcmp(name, "--url") ||
			    (!cmds[i].remote && (!strcmp(name, "--token-file") || !strcmp(name, "--cacert"))))
				continue;
			seen++;
			const char *value = NULL;
			for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++)
				if (!strcmp(arg, values[k].arg))
					value = values[k].value;
			for (size_t k = 0; value && k < sizeof(own_values) / sizeof(own_values[0]); k++)
				if (!strcmp(name, own_values[k].arg))
					value = own_values[k].value;
			char flag[sizeof(name) + sizeof(arg) + 4];
			snprintf(flag, sizeof(flag), "[%s%s%s]", name, value ? " " : "", value ? arg : "");
			const char *in_usage = strstr(h.out, flag); /* dead: --all is in the arguments' grammar */
			if (!in_usage && !strcmp(cmds[i].name, "dead") && !strcmp(name, "--all"))
				in_usage = strstr(h.out, "ID|--all");
			cr_assert(in_usage && in_usage < opts, "`%s`: %s is not in the usage:\n%s", h.cmd, flag, h.out);
			char *argv[8] = {(char *)TASKQ, (char *)cmds[i].name};
			int n = 2;
			if (cmds[i].remote) {
				argv[n++] = "--url";
				argv[n++] = (char *)url;
			}
			argv[n++] = name;
			if (value)
				argv[n++] = (char *)value;
			argv[n++] = "--help";
			run(argv, NULL, &o);
			assert_ok(&o);
			cr_assert(!strcmp(o.out, h.out), "`%s`: not the help", o.cmd);
		}
		cr_assert(seen >= 1, "`%s`: no option found", h.cmd);
	}
	out_free(&o);
	out_free(&h);
}

/* A push that finds no room says what fills the queue; taskq log --json
 * names each event's numbers as the text form labels them. */
Test(cli, full_push_says_why_and_log_json_names_fields)
{
	struct out o = {0};
	const char *q = qname("fullwhy");
	tq(&o, NULL, "create", q, "--capacity", "2", NULL);
	assert_ok(&o);
	tq(&o, "1\n2\n", "push", q, "--kind", "int", "--quiet", NULL);
	assert_ok(&o);
	tq(&o, "3\n", "push", q, "--kind", "int", "--timeout", "0.1", NULL);
	assert_fails(&o, 6);
	assert_contains(o.err, "the queue is full: 2 ready, 0 in progress of capacity 2",
			"a push that timed out on a full queue");
	assert_contains(o.err, "nothing pushed", "a push that timed out on a full queue");

	tq(&o, NULL, "log", q, "--json", NULL);
	assert_ok(&o);
	assert_contains(o.out, "\"event\":\"created\"", "log --json");
	assert_contains(o.out, "\"capacity\":2", "log --json: a under its name");
	out_free(&o);
}
