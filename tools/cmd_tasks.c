/* SPDX-License-Identifier: MIT */
/*
 * cmd_tasks.c - taskq push, take, work.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

extern char **environ;

/* ----------------------------------------------------------------- push */

/*
 * Lines of stdin are checked and pushed in batches as they are read, so
 * memory is bounded by one batch however long the input is: PUSH_BATCH
 * tasks, whose payloads fill at most PUSH_BATCH_BYTES plus one line. Each
 * line is read straight into the batch's buffer, at most max payload + 1
 * bytes of it (room for the CR of a CRLF); the rest of a longer line is
 * counted and dropped, so an oversize line is refused without being held.
 * --atomic instead holds everything, up to ATOMIC_MAX_LINES and
 * ATOMIC_MAX_BYTES, and pushes only if every line is valid.
 */
#define PUSH_BATCH 64
#define PUSH_BATCH_BYTES (1u << 20)
#define ATOMIC_MAX_LINES 65536u
#define ATOMIC_MAX_BYTES (64u << 20)
#define NO_OFFSET SIZE_MAX

struct push {
	tq_queue *q;
	const char *name;
	const char *what;     /* "line" or "argument": how inputs are named */
	int kind;
	uint32_t max_payload;
	uint64_t timeout;
	uint64_t delay;       /* --delay: ns before the tasks become ready (0: at once) */
	bool quiet, atomic;
	tq_task *t;           /* the batch */
	size_t *off;          /* payload i is arena + off[i] (NO_OFFSET: t[i].data as is) */
	size_t n, cap;        /* tasks in the batch, room for */
	char *arena;          /* stdin payloads of the batch */
	size_t used, arena_cap;
	char intbuf[CLI_INT_LINE_MAX];
	uint64_t pushed;      /* tasks accepted so far: inputs 1..pushed */
};

static void push_free(struct push *ps)
{
	free(ps->t);
	free(ps->off);
	free(ps->arena);
}

/* "3 tasks pushed (lines 1-3), none from line 4 on", or "nothing pushed". */
static const char *pushed_summary(const struct push *ps, char *buf, size_t size)
{
	unsigned long long n = (unsigned long long)ps->pushed;

	if (n == 0)
		snprintf(buf, size, "nothing pushed");
	else if (n == 1)
		snprintf(buf, size, "1 task pushed (%s 1), none from %s 2 on", ps->what, ps->what);
	else
		snprintf(buf, size, "%llu tasks pushed (%ss 1-%llu), none from %s %llu on", n, ps->what, n, ps->what,
			 n + 1);
	return buf;
}

/* Pushes the batch, printing the ids; returns 0 or an exit status. */
static int push_flush(struct push *ps)
{
	size_t done = 0;
	int err = 0;
	char sum[200];

	for (size_t i = 0; ps->off && i < ps->n; i++)
		if (ps->off[i] != NO_OFFSET)
			ps->t[i].data = ps->arena + ps->off[i];
	while (done < ps->n) {
		size_t n = ps->n - done < PUSH_BATCH ? ps->n - done : PUSH_BATCH;
		int k = ps->delay ? tq_push_delayed(ps->q, ps->t + done, n, ps->delay, ps->timeout)
				  : tq_push(ps->q, ps->t + done, n, ps->timeout);
		if (k < 0) {
			err = k;
			break;
		}
		for (int i = 0; !ps->quiet && i < k; i++)
			printf("%llu\n", (unsigned long long)ps->t[done + (size_t)i].id);
		done += (size_t)k;
		ps->pushed += (uint64_t)k;
	}
	fflush(stdout); /* the ids of a batch as soon as it is in */
	ps->n = 0;
	ps->used = 0;
	if (err) {
		char full[300] = "";
		tq_stats st;
		if ((err == TQ_EAGAIN || err == TQ_ETIMEDOUT) && tq_stats_get(ps->q, &st) == 0) {
			/* Why there was no room: what fills the capacity. */
			int m = snprintf(full, sizeof(full), " (the queue is full: %u ready, %u in progress", st.ready,
					 st.leased);
			if (m > 0 && (size_t)m < sizeof(full) && st.delay_over)
				m += snprintf(full + m, sizeof(full) - (size_t)m,
					      ", %u delayed over the delay area of %u", st.delay_over,
					      st.delay_capacity);
			if (m > 0 && (size_t)m < sizeof(full))
				m += snprintf(full + m, sizeof(full) - (size_t)m, " of capacity %u", st.capacity);
			if (m > 0 && (size_t)m < sizeof(full) && st.dead_over)
				snprintf(full + m, sizeof(full) - (size_t)m,
					 "; the dead-letter area is full, %u dead tasks over it: taskq dead %s purge)",
					 st.dead_over, ps->name);
			else if (m > 0 && (size_t)m < sizeof(full) - 1)
				strcat(full, ")");
		}
		cli_err("%s: %s%s; %s", ps->name, tq_strerror(err), full, pushed_summary(ps, sum, sizeof(sum)));
		return cli_exit_for(err);
	}
	return 0;
}

/* A refused input: in a stream, the batch before it goes in first. */
static int push_refuse(struct push *ps, uint64_t index, const struct cli_input_result *r, const char *p,
		       size_t kept)
{
	char why[300], sum[200];
	int rc;

	cli_input_describe(why, sizeof(why), r, p, kept, ps->max_payload);
	if (ps->atomic) {
		cli_err("%s %llu: %s; nothing pushed", ps->what, (unsigned long long)index, why);
		return EX_BADINPUT;
	}
	if ((rc = push_flush(ps)))
		return rc;
	cli_err("%s %llu: %s; %s", ps->what, (unsigned long long)index, why, pushed_summary(ps, sum, sizeof(sum)));
	return EX_BADINPUT;
}

static int push_too_much(const char *what)
{
	cli_err("stdin holds more than %s (--atomic reads at most %u lines and %u MiB of tasks); "
		"nothing pushed (without --atomic, lines are pushed as they are read)",
		what, ATOMIC_MAX_LINES, ATOMIC_MAX_BYTES >> 20);
	return EX_BADINPUT;
}

/* Makes room in the batch for one more line of up to line_cap bytes and
 * says where to read it: flushes a full batch, or with --atomic grows it. */
static int push_room(struct push *ps, size_t line_cap, char **dest)
{
	int rc;

	if (ps->n == ps->cap) {
		if (!ps->atomic) {
			if ((rc = push_flush(ps)))
				return rc;
		} else {
			if (ps->cap >= ATOMIC_MAX_LINES)
				return push_too_much("65536 lines");
			size_t cap = ps->cap * 2;
			tq_task *t = realloc(ps->t, cap * sizeof(*t));
			if (t)
				ps->t = t;
			size_t *off = t ? realloc(ps->off, cap * sizeof(*off)) : NULL;
			if (!off) {
				cli_err("out of memory reading stdin; nothing pushed");
				return EX_FAIL;
			}
			ps->off = off;
			ps->cap = cap;
		}
	}
	if (ps->kind == TQ_KIND_INT) {
		*dest = ps->intbuf;
		return 0;
	}
	if (ps->arena_cap - ps->used < line_cap) {
		if (!ps->atomic) {
			if ((rc = push_flush(ps)))
				return rc;
		} else {
			size_t cap = ps->arena_cap * 2 > ps->used + line_cap ? ps->arena_cap * 2 : ps->used + line_cap;
			if (cap > ATOMIC_MAX_BYTES + line_cap)
				cap = ATOMIC_MAX_BYTES + line_cap;
			char *a = realloc(ps->arena, cap);
			if (!a) {
				cli_err("out of memory reading stdin; nothing pushed");
				return EX_FAIL;
			}
			ps->arena = a;
			ps->arena_cap = cap;
		}
	}
	*dest = ps->arena + ps->used;
	return 0;
}

/* A whole line of stdin, number lineno: checked, added to the batch. */
static int push_line(struct push *ps, struct cli_line *l, uint64_t lineno)
{
	struct cli_input_result r;
	tq_task t;

	cli_line_strip_cr(l);
	if (cli_task_input(ps->kind, l->buf, l->kept, l->len, ps->max_payload, &t, &r))
		return push_refuse(ps, lineno, &r, l->buf, l->kept);
	ps->off[ps->n] = NO_OFFSET;
	if (ps->kind != TQ_KIND_INT) {
		ps->off[ps->n] = (size_t)(l->buf - ps->arena);
		ps->used += t.len;
		if (ps->atomic && ps->used > ATOMIC_MAX_BYTES)
			return push_too_much("64 MiB of tasks");
	}
	ps->t[ps->n++] = t;
	return 0;
}

/* True if reading fd now would not wait. */
static bool input_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) > 0;
}

static int push_stdin(struct push *ps)
{
	static char rb[1 << 16];
	size_t line_cap = ps->kind == TQ_KIND_INT ? CLI_INT_LINE_MAX : (size_t)ps->max_payload + 1;
	struct cli_line l;
	bool in_line = false;
	uint64_t lineno = 0;
	char sum[200];
	int rc;

	ps->what = "line";
	ps->cap = PUSH_BATCH;
	ps->arena_cap = ps->kind == TQ_KIND_INT ? 0 : ps->atomic ? line_cap : PUSH_BATCH_BYTES + line_cap;
	ps->t = calloc(ps->cap, sizeof(*ps->t));
	ps->off = calloc(ps->cap, sizeof(*ps->off));
	ps->arena = ps->arena_cap ? malloc(ps->arena_cap) : NULL;
	if (!ps->t || !ps->off || (ps->arena_cap && !ps->arena)) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	for (;;) {
		ssize_t got = read(0, rb, sizeof(rb));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			if (!ps->atomic && (rc = push_flush(ps)))
				return rc;
			cli_err("reading stdin: %s; %s", strerror(e),
				ps->atomic ? "nothing pushed" : pushed_summary(ps, sum, sizeof(sum)));
			return EX_FAIL;
		}
		if (got == 0)
			break;
		for (size_t pos = 0; pos < (size_t)got;) {
			bool ended;
			if (!in_line) {
				char *dest;
				if ((rc = push_room(ps, line_cap, &dest)))
					return rc;
				cli_line_start(&l, dest, line_cap);
				in_line = true;
			}
			pos += cli_line_feed(&l, rb + pos, (size_t)got - pos, &ended);
			if (ended) {
				in_line = false;
				if ((rc = push_line(ps, &l, ++lineno)))
					return rc;
			}
		}
		/* Every line is pushed by the time taskq would wait for more:
		 * a slow producer's tasks do not sit here. A line begun but not
		 * ended moves to the start of the emptied batch buffer. */
		if (!ps->atomic && ps->n > 0 && !input_ready(0)) {
			if ((rc = push_flush(ps)))
				return rc;
			if (in_line && ps->kind != TQ_KIND_INT) {
				memmove(ps->arena, l.buf, l.kept);
				l.buf = ps->arena;
			}
		}
	}
	if (in_line && (rc = push_line(ps, &l, ++lineno))) /* a last line without newline */
		return rc;
	return push_flush(ps);
}

/* VALUE arguments: all checked, then pushed. */
static int push_args(struct push *ps, int argc, char **argv)
{
	struct cli_input_result r;

	ps->what = "argument";
	ps->atomic = true;
	ps->t = calloc((size_t)argc, sizeof(*ps->t));
	if (!ps->t) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]);
		if (cli_task_input(ps->kind, argv[i], len, len, ps->max_payload, &ps->t[i], &r))
			return push_refuse(ps, (uint64_t)i + 1, &r, argv[i], len);
	}
	ps->n = ps->cap = (size_t)argc;
	return push_flush(ps);
}

_Static_assert(PUSH_BATCH == 64 && PUSH_BATCH_BYTES == 1u << 20, "push --help says 64 lines, 1 MiB");
_Static_assert(ATOMIC_MAX_LINES == 65536 && ATOMIC_MAX_BYTES == 64u << 20, "push --help says 65536, 64 MiB");

enum { P_KIND = 'k', P_JSON = 0x100, P_ATOMIC, P_DELAY = 'd', P_TIMEOUT = 't', P_QUIET = 'q' };

static const struct cli_opt push_opts[] = {
	{P_KIND, true, "kind", "int|string|json", "the tasks' kind (default string)"},
	{P_JSON, false, "json", NULL, "the same as --kind json"},
	{P_ATOMIC, false, "atomic", NULL, "read all of stdin first, at most 65536 lines and\n"
					  "64 MiB of tasks (more is refused: exit 5), and\n"
					  "push nothing unless every line is valid"},
	{P_DELAY, true, "delay", "SEC", "the tasks become ready only SEC seconds after\n"
				       "they are pushed (up to 365 days); until then they\n"
				       "count as delayed"},
	{P_TIMEOUT, true, "timeout", "SEC", "how long to wait for room while the queue is full\n"
					   "(default: no limit); when it passes, exit 6: the\n"
					   "ids of the tasks pushed are printed and stderr\n"
					   "says from which line (or VALUE) on nothing was\n"
					   "pushed"},
	{P_QUIET, true, "quiet", NULL, "print no ids"},
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command push_cmd = {
	.name = "push",
	.args = "NAME",
	.tail = "[VALUE...]",
	.about = "Pushes one task per VALUE, or with no VALUE one per line of stdin, and prints\n"
		 "the id of each task pushed, one per line, as it goes in.\n"
		 "A string is any bytes; an int is an unsigned 64-bit decimal integer (digits\n"
		 "only); a JSON task is one JSON value in valid UTF-8. A line's newline, and the\n"
		 "CR of a CRLF, are not part of its task.\n"
		 "VALUEs are all checked before any is pushed: a bad one pushes nothing (exit 5).\n"
		 "Lines of stdin are checked and pushed in batches of up to 64 as they are read\n"
		 "(and whenever taskq would wait for more input), so memory stays bounded by one\n"
		 "batch (64 lines, 1 MiB plus one max payload) however long stdin is. A line\n"
		 "longer than the queue's max payload is refused without being kept. On a bad\n"
		 "line, the lines before it are pushed (their count is said on stderr), nothing\n"
		 "from it on is pushed, taskq stops reading, and the exit status is 5.\n",
	.opts = push_opts,
};

int cmd_push(int argc, char **argv)
{
	struct push ps = {.kind = TQ_KIND_STRING, .timeout = TQ_WAIT_FOREVER};
	struct cli_parser p;
	int c;

	cli_parser_init(&p, &push_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case P_JSON: ps.kind = TQ_KIND_JSON; break;
		case P_QUIET: ps.quiet = true; break;
		case P_ATOMIC: ps.atomic = true; break;
		case P_DELAY:
			if (!cli_opt_seconds(&p, 0, 365.0 * 86400.0, &ps.delay))
				return EX_USAGE_;
			break;
		case P_KIND:
			if (!strcmp(optarg, "int")) ps.kind = TQ_KIND_INT;
			else if (!strcmp(optarg, "string")) ps.kind = TQ_KIND_STRING;
			else if (!strcmp(optarg, "json")) ps.kind = TQ_KIND_JSON;
			else {
				char q[100];
				cli_err("invalid --kind '%s': int, string or json",
					cli_text_escape(q, sizeof(q), optarg, strlen(optarg)));
				return EX_USAGE_;
			}
			break;
		case P_TIMEOUT:
			if (!cli_opt_seconds(&p, 0, 1e9, &ps.timeout))
				return EX_USAGE_;
			break;
		default:
			return cli_command_usage(&push_cmd);
		}
	}
	if (optind >= argc)
		return cli_command_usage(&push_cmd);
	ps.name = argv[optind++];
	int rc = cli_open(ps.name, &ps.q);
	if (rc)
		return rc;
	tq_config cfg;
	tq_config_get(ps.q, &cfg);
	ps.max_payload = cfg.max_payload;
	if (optind < argc)
		rc = push_args(&ps, argc - optind, argv + optind);
	else
		rc = push_stdin(&ps);
	push_free(&ps);
	tq_close(ps.q);
	return rc;
}

/* ----------------------------------------------------------------- take */

/* Prints one task: one JSON document a line (NDJSON), or its payload as a
 * line. False if it could not be formatted (out of memory): the caller must
 * not acknowledge it. */
static bool print_task(const tq_task *t, bool verbose, bool json)
{
	if (json) {
		cJSON *o = cJSON_CreateObject();
		bool ok = o && cli_json_add_u64(o, "id", t->id) &&
			  cJSON_AddStringToObject(o, "kind", cli_kind_name(t->kind)) &&
			  cJSON_AddNumberToObject(o, "attempt", t->attempt) &&
			  (t->kind == TQ_KIND_INT ? cli_json_add_u64(o, "value", t->value)
						  : cli_json_add_task_data(o, t->kind, t->data, t->len));
		char *txt = !ok ? NULL : cli_json_pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
		if (txt)
			printf("%s\n", txt);
		cJSON_free(txt);
		cJSON_Delete(o);
		return txt != NULL;
	}
	if (verbose)
		printf("%llu\t%s\t%u\t", (unsigned long long)t->id, cli_kind_name(t->kind), t->attempt);
	if (t->kind == TQ_KIND_INT) {
		printf("%llu\n", (unsigned long long)t->value);
	} else {
		/* The bytes as they are: a NUL is not the end of a payload. */
		if (t->len)
			fwrite(t->data, 1, t->len, stdout);
		putchar('\n');
	}
	return true;
}

enum { T_JSON = 'j', T_COUNT = 'n', T_TIMEOUT = 't', T_VERBOSE = 'v' };

static const struct cli_opt take_opts[] = {
	{T_COUNT, true, "count", "COUNT", "take up to COUNT tasks (1 to 1000000000; default 1)"},
	{T_TIMEOUT, true, "timeout", "SEC", "wait up to SEC for tasks (default: none)"},
	{T_VERBOSE, true, "verbose", NULL, "text: id, kind and attempt before each payload,\nwith tabs"},
	{T_JSON, true, "json", NULL, "one JSON object a task, a line each (NDJSON)"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command take_cmd = {
	.name = "take",
	.args = "NAME",
	.about = "Takes up to COUNT tasks (default 1), prints them, then acknowledges them.\n"
		 "Text: each task's payload, its bytes exactly as pushed (a NUL included), or its\n"
		 "integer, then a newline. A payload holding a newline is ambiguous in text: use\n"
		 "--json.\n"
		 "--json: one object a task, each on a line of its own: id, kind, attempt, and\n"
		 "value (int) or data. A JSON task's data is its JSON value itself, nested; if\n"
		 "its bytes are not valid JSON, data is them as a string and data_not_json is\n"
		 "true. A string task's data is a JSON string (NUL and control bytes escaped, a\n"
		 "byte that is not UTF-8 as U+FFFD) with, only when the payload is not valid\n"
		 "UTF-8, data_base64 (its exact bytes). Ids and values are exact 64-bit integers.\n"
		 "Tasks are acknowledged only once the output is written; if it cannot be, they\n"
		 "go back to the queue. Finding none exits with status 6 (the message says if\n"
		 "the queue is paused); a draining or stopped queue, 7.\n",
	.opts = take_opts,
};

int cmd_take(int argc, char **argv)
{
	struct cli_parser p;
	uint64_t count = 1, timeout = 0;
	bool json = false, verbose = false;
	int c;

	cli_parser_init(&p, &take_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case T_JSON: json = true; break;
		case T_VERBOSE: verbose = true; break;
		case T_COUNT:
			if (!cli_opt_u64(&p, 1, 1000000000, &count))
				return EX_USAGE_;
			break;
		case T_TIMEOUT:
			if (!cli_opt_seconds(&p, 0, 1e9, &timeout))
				return EX_USAGE_;
			break;
		default:
			return cli_command_usage(&take_cmd);
		}
	}
	if (optind != argc - 1)
		return cli_command_usage(&take_cmd);
	const char *name = argv[optind];
	tq_queue *q;
	int rc = cli_open(name, &q);
	if (rc)
		return rc;
	tq_task t[64];
	uint64_t got = 0, until = tq_now_ns() + timeout;
	int err = 0;
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error to report, not a death */
	while (got < count) {
		uint64_t now = tq_now_ns();
		size_t want = count - got < 64 ? (size_t)(count - got) : 64;
		int n = tq_take(q, t, want, now < until ? until - now : 0);
		if (n < 0) {
			err = n;
			break;
		}
		bool formatted = true;
		for (int i = 0; i < n && formatted; i++)
			formatted = print_task(&t[i], verbose, json);
		if (!formatted) {
			cli_err("out of memory formatting the tasks; they stay in the queue");
			tq_close(q); /* returns the leases */
			return EX_FAIL;
		}
		if (fflush(stdout) != 0 || ferror(stdout)) {
			cli_err("cannot write the tasks: %s; they stay in the queue", strerror(errno));
			tq_close(q); /* returns the leases */
			return EX_FAIL;
		}
		tq_ack(q, t, (size_t)n);
		got += (uint64_t)n;
	}
	bool paused = tq_run_state(q) == TQ_PAUSED;
	tq_close(q);
	if (got == 0 && err) {
		if ((err == TQ_EAGAIN || err == TQ_ETIMEDOUT) && paused)
			cli_err("%s: the queue is paused: consumers take nothing until taskq resume %s", name, name);
		else
			cli_err("%s: %s", name, err == TQ_EAGAIN || err == TQ_ETIMEDOUT ? "no task ready" : tq_strerror(err));
		return cli_exit_for(err);
	}
	return 0;
}

/* ----------------------------------------------------------------- work */

static volatile int work_stop;   /* first signal: drain */
static volatile int work_signals;

static void on_work_signal(int sig)
{
	int saved = errno;

	(void)sig;
	if (work_signals == 0) {
		static const char m[] = "taskq: work: stopping: finishing the running commands (again to stop at once)\n";
		(void)!write(2, m, sizeof(m) - 1);
	}
	work_signals++;
	__atomic_store_n(&work_stop, 1, __ATOMIC_RELAXED);
	if (work_signals >= 2)
		_exit(130); /* leases return to ready when the queue sees this process gone */
	errno = saved;
}

struct work_ctx {
	tq_queue *q;
	const char *name;
	char **cmd;
	uint64_t task_timeout;
	tq_worker_config cfg;
	tq_worker_result res;
	int rc;
};

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Environment for one command: ours plus TASKQ_* describing the task. */
static char **task_env(const struct work_ctx *w, const tq_task *t, char buf[4][TQ_NAME_MAX + 32])
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = malloc((n + 5) * sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TASKQ_", 6))
			env[k++] = environ[i];
	snprintf(buf[0], sizeof(buf[0]), "TASKQ_QUEUE=%s", w->name);
	snprintf(buf[1], sizeof(buf[1]), "TASKQ_TASK_ID=%llu", (unsigned long long)t->id);
	snprintf(buf[2], sizeof(buf[2]), "TASKQ_TASK_KIND=%s", cli_kind_name(t->kind));
	snprintf(buf[3], sizeof(buf[3]), "TASKQ_TASK_ATTEMPT=%u", t->attempt);
	for (int i = 0; i < 4; i++)
		env[k++] = buf[i];
	env[k] = NULL;
	return env;
}

/* The last bytes a command wrote to its stderr, which is passed on to
 * this command's stderr as it comes: the failure reason. */
#define ERR_TAIL 1024
struct err_tail {
	char buf[ERR_TAIL];
	uint64_t total; /* bytes seen; buf holds the last min(total, ERR_TAIL) */
};

static void tail_add(struct err_tail *et, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		et->buf[(et->total + i) % ERR_TAIL] = p[i];
	et->total += n;
}

/* Reads what the command wrote to its stderr pipe now (non-blocking),
 * passes it on to ours and keeps its tail; false at end of file. */
static bool pump_stderr(int fd, struct err_tail *et)
{
	char chunk[4096];

	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 && errno == EAGAIN;
		tail_add(et, chunk, (size_t)r);
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(2, chunk + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* our stderr is gone: the tail is still kept */
			off += w;
		}
	}
}

/* "what: <the stderr tail>" into msg: the tail's end is kept (the last
 * lines say why), starting on a UTF-8 character, trailing blanks dropped. */
static void reason_with_tail(char *msg, size_t msg_size, const char *what, const struct err_tail *et)
{
	char t[ERR_TAIL];
	size_t n = et->total < ERR_TAIL ? (size_t)et->total : ERR_TAIL;
	uint64_t first = et->total - n;

	for (size_t i = 0; i < n; i++)
		t[i] = et->buf[(first + i) % ERR_TAIL];
	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	size_t plen = strlen(what);
	if (n == 0 || plen + 3 >= msg_size) {
		snprintf(msg, msg_size, "%s", what);
		return;
	}
	size_t room = msg_size - 1 - plen - 2, skip = n > room ? n - room : 0;
	while (skip < n && ((unsigned char)t[skip] & 0xc0) == 0x80)
		skip++; /* not in the middle of a character */
	snprintf(msg, msg_size, "%s: %.*s", what, (int)(n - skip), t + skip);
}

/* Waits for the command, writing its stdin (the payload), passing its
 * stderr on and keeping the tail of it, extending the lease while it runs. */
static int wait_command(struct work_ctx *w, const tq_task *t, pid_t pid, int in_fd, int err_fd, char *msg,
			size_t msg_size)
{
	tq_config cfg;
	tq_config_get(w->q, &cfg);
	uint64_t start = tq_now_ns(), touched = start;
	int pfd = pidfd_open_(pid), status = 0;
	struct err_tail et = {.total = 0};
	char num[24];
	const char *in = t->data;
	size_t in_left = t->len;

	if (t->kind == TQ_KIND_INT) {
		in_left = (size_t)snprintf(num, sizeof(num), "%llu\n", (unsigned long long)t->value);
		in = num;
	}
	(void)fcntl(in_fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(err_fd, F_SETFL, O_NONBLOCK);
	if (in_left == 0) {
		close(in_fd);
		in_fd = -1;
	}
	for (;;) {
		struct pollfd p[3] = {{.fd = pfd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN},
				      {.fd = in_fd, .events = POLLOUT}};
		(void)poll(p, 3, pfd >= 0 ? 100 : 10);
		if (err_fd >= 0 && !pump_stderr(err_fd, &et)) {
			close(err_fd);
			err_fd = -1;
		}
		if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t wr = write(in_fd, in, in_left);
			if (wr > 0) {
				in += wr;
				in_left -= (size_t)wr;
			}
			if ((wr < 0 && errno != EAGAIN && errno != EINTR) || in_left == 0) {
				close(in_fd); /* all written, or the command does not read it: fine */
				in_fd = -1;
			}
		}
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		uint64_t now = tq_now_ns();
		if (now - touched > cfg.lease_ns / 2) {
			tq_touch(w->q, t, 1, 0);
			touched = now;
		}
		if (w->task_timeout && now - start > w->task_timeout) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			char what[64];
			snprintf(what, sizeof(what), "timed out after %.1f s", (double)w->task_timeout / 1e9);
			if (err_fd >= 0)
				(void)pump_stderr(err_fd, &et);
			reason_with_tail(msg, msg_size, what, &et);
			if (pfd >= 0)
				close(pfd);
			if (in_fd >= 0)
				close(in_fd);
			if (err_fd >= 0)
				close(err_fd);
			return 124;
		}
	}
	/* What it wrote before it exited (a child of its own may keep the pipe
	 * open: only what is there now). */
	if (err_fd >= 0) {
		(void)pump_stderr(err_fd, &et);
		close(err_fd);
	}
	if (in_fd >= 0)
		close(in_fd);
	if (pfd >= 0)
		close(pfd);
	char what[64];
	int rc;
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status) == 0)
			return 0;
		snprintf(what, sizeof(what), "exit status %d", WEXITSTATUS(status));
		rc = WEXITSTATUS(status);
	} else {
		snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(status));
		rc = 128 + WTERMSIG(status);
	}
	reason_with_tail(msg, msg_size, what, &et);
	return rc;
}

static int run_command(const tq_task *t, void *arg, char *msg, size_t msg_size)
{
	struct work_ctx *w = arg;
	char buf[4][TQ_NAME_MAX + 32];
	int fds[2], efds[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	pid_t pid;

	char **env = task_env(w, t, buf);
	if (!env || pipe2(fds, O_CLOEXEC) != 0) {
		free(env);
		snprintf(msg, msg_size, "cannot start the command: %s", strerror(errno));
		return 126;
	}
	if (pipe2(efds, O_CLOEXEC) != 0) {
		free(env);
		close(fds[0]);
		close(fds[1]);
		snprintf(msg, msg_size, "cannot start the command: %s", strerror(errno));
		return 126;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	/* Its stderr through us: passed on to ours as it comes, its tail kept
	 * as the failure reason. */
	posix_spawn_file_actions_adddup2(&fa, efds[1], 2);
	posix_spawnattr_init(&at);
	/* Own process group: a Ctrl+C meant for taskq does not cut it short. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	sigset_t def;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	posix_spawnattr_setsigdefault(&at, &def);
	int rc = posix_spawnp(&pid, w->cmd[0], &fa, &at, w->cmd, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	close(fds[0]);
	close(efds[1]);
	if (rc != 0) {
		close(fds[1]);
		close(efds[0]);
		snprintf(msg, msg_size, "cannot run %s: %s", w->cmd[0], strerror(rc));
		return 127;
	}
	rc = wait_command(w, t, pid, fds[1], efds[0], msg, msg_size);
	if (rc) {
		char qb[4 * TQ_ERRMSG_MAX + 8];
		log_event(LOG_WARN_, "task_failed", "task=%llu attempt=%u status=%d reason=%s", (unsigned long long)t->id,
			  t->attempt, rc, log_quote(qb, sizeof(qb), msg));
	}
	return rc;
}

static void *work_thread(void *arg)
{
	struct work_ctx *w = arg;
	w->rc = tq_worker_run(w->q, run_command, w, &w->cfg, &w->res);
	return NULL;
}

enum { W_JSON = 'j', W_CONCURRENCY = 'c', W_BATCH = 'b', W_IDLE_EXIT = 'i', W_MAX_TASKS = 'm', W_TASK_TIMEOUT = 'T' };

static const struct cli_opt work_opts[] = {
	{W_CONCURRENCY, true, "concurrency", "N", "N commands at once (1 to 256; default 1)"},
	{W_BATCH, true, "batch", "N", "tasks taken at once per runner (1 to 4096;\ndefault 1)"},
	{W_IDLE_EXIT, true, "idle-exit", "SEC", "exit after SEC without tasks"},
	{W_MAX_TASKS, true, "max-tasks", "N", "exit after N tasks per runner"},
	{W_TASK_TIMEOUT, true, "task-timeout", "SEC", "kill a command running longer than SEC (its\ntask fails)"},
	{W_JSON, true, "json", NULL, "print the counts at the end as JSON: handled,\nacked, failed, lost"},
	CLI_OPT_PRETTY,
	CLI_LOG_OPTS,
	{0, false, NULL, NULL, NULL},
};
_Static_assert(TQ_MAX_BATCH == 4096, "work --help says --batch 1 to 4096");

static const struct cli_command work_cmd = {
	.name = "work",
	.args = "NAME",
	.tail = "-- COMMAND [ARG...]",
	.about = "Runs COMMAND once per task, with the payload (or the integer and a newline)\n"
		 "on its stdin and TASKQ_QUEUE, TASKQ_TASK_ID, TASKQ_TASK_KIND, TASKQ_TASK_ATTEMPT\n"
		 "in its environment. Exit status 0 acknowledges the task; anything else fails it\n"
		 "(retried with backoff, then dead), with the reason \"exit status N: <the last\n"
		 "1 KiB of its stderr>\" (taskq dead NAME list shows it). Its stderr is passed on\n"
		 "to this command's stderr as it comes. Leases are extended while a command runs.\n"
		 "Ctrl+C or SIGTERM: finish the running commands, acknowledge, exit 0; a second\n"
		 "one exits at once (the tasks return to the queue).\n",
	.more = CLI_LOG_HELP,
	.opts = work_opts,
};

int cmd_work(int argc, char **argv)
{
	struct cli_parser p;
	uint64_t conc = 1, batch = 1, max_tasks = 0, idle = 0, task_timeout = 0;
	struct log_config lc;
	log_config_init(&lc);
	bool json = false;
	int c;

	cli_parser_init(&p, &work_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		bool ok = true;
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case W_JSON: json = true; break;
		case W_CONCURRENCY: ok = cli_opt_u64(&p, 1, 256, &conc); break;
		case W_BATCH: ok = cli_opt_u64(&p, 1, TQ_MAX_BATCH, &batch); break;
		case W_MAX_TASKS: ok = cli_opt_u64(&p, 1, UINT64_MAX, &max_tasks); break;
		case W_IDLE_EXIT: ok = cli_opt_seconds(&p, 1000000, 1e9, &idle); break;
		case W_TASK_TIMEOUT: ok = cli_opt_seconds(&p, 1000000, 1e9, &task_timeout); break;
		default:
			if (cli_log_option(c, optarg, &lc, &ok))
				break;
			return cli_command_usage(&work_cmd);
		}
		if (!ok) /* the parser said why */
			return EX_USAGE_;
	}
	if (optind + 1 >= argc)
		return cli_command_usage(&work_cmd);
	const char *name = argv[optind];
	char **cmd = argv + optind + 1;
	if (!strcmp(cmd[0], "--"))
		cmd++;
	if (!cmd[0])
		return cli_command_usage(&work_cmd);

	tq_queue *q;
	int rc = cli_open(name, &q);
	if (rc)
		return rc;
	lc.queue = name;
	if (log_open(&lc) != 0) {
		cli_err("--log-file %s: %s", lc.path, strerror(errno));
		tq_close(q);
		return EX_FAIL;
	}
	char qb[300];
	log_event(LOG_INFO_, "work_started", "concurrency=%llu batch=%llu command=%s", (unsigned long long)conc,
		  (unsigned long long)batch, log_quote(qb, sizeof(qb), cli_join_args((char[256]){0}, 256, cmd)));
	struct sigaction sa = {.sa_handler = on_work_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct work_ctx *w = calloc(conc, sizeof(*w));
	pthread_t *th = calloc(conc, sizeof(*th));
	if (!w || !th) {
		cli_err("out of memory");
		tq_close(q);
		return EX_FAIL;
	}
	for (uint64_t i = 0; i < conc; i++) {
		w[i] = (struct work_ctx){.q = q, .name = name, .cmd = cmd, .task_timeout = task_timeout};
		tq_worker_config_init(&w[i].cfg);
		w[i].cfg.batch = batch;
		w[i].cfg.idle_exit_ns = idle;
		w[i].cfg.max_tasks = max_tasks;
		w[i].cfg.stop = &work_stop;
		pthread_create(&th[i], NULL, work_thread, &w[i]);
	}
	tq_worker_result total = {0};
	int err = 0;
	for (uint64_t i = 0; i < conc; i++) {
		pthread_join(th[i], NULL);
		total.handled += w[i].res.handled;
		total.acked += w[i].res.acked;
		total.failed += w[i].res.failed;
		total.lost += w[i].res.lost;
		if (w[i].rc)
			err = w[i].rc;
	}
	free(w);
	free(th);
	tq_close(q);
	log_event(err ? LOG_ERROR_ : LOG_INFO_, "work_finished", "handled=%llu acked=%llu failed=%llu lost=%llu%s%s",
		  (unsigned long long)total.handled, (unsigned long long)total.acked,
		  (unsigned long long)total.failed, (unsigned long long)total.lost, err ? " error=" : "",
		  err ? log_quote(qb, sizeof(qb), tq_strerror(err)) : "");
	log_close();
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cli_json_add_u64(o, "handled", total.handled);
		cli_json_add_u64(o, "acked", total.acked);
		cli_json_add_u64(o, "failed", total.failed);
		cli_json_add_u64(o, "lost", total.lost);
		cli_print_json(o);
	} else {
		fprintf(stderr, "taskq: work: %llu tasks: %llu acked, %llu failed, %llu leases lost\n",
			(unsigned long long)total.handled, (unsigned long long)total.acked,
			(unsigned long long)total.failed, (unsigned long long)total.lost);
	}
	if (err) {
		cli_err("%s: %s", name, tq_strerror(err));
		return cli_exit_for(err);
	}
	return 0;
}
