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

static int usage_error(const char *usage)
{
	fprintf(stderr, "usage: taskq %s\n", usage);
	return EX_USAGE_;
}

/* ----------------------------------------------------------------- push */

struct input {
	char **item;
	size_t *len;
	size_t n, cap;
	bool from_stdin;
};

static bool input_add(struct input *in, char *s, size_t len)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 256;
		char **item = realloc(in->item, cap * sizeof(*item));
		size_t *l = item ? realloc(in->len, cap * sizeof(*l)) : NULL;
		if (item)
			in->item = item;
		if (!item || !l)
			return false;
		in->len = l;
		in->cap = cap;
	}
	in->item[in->n] = s;
	in->len[in->n++] = len;
	return true;
}

static void input_free(struct input *in)
{
	if (in->from_stdin)
		for (size_t i = 0; i < in->n; i++)
			free(in->item[i]);
	free(in->item);
	free(in->len);
}

static int read_stdin(struct input *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	in->from_stdin = true;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		char *copy = malloc((size_t)len + 1);
		if (!copy || !input_add(in, copy, (size_t)len)) {
			free(copy);
			free(line);
			cli_err("out of memory reading stdin");
			return EX_FAIL;
		}
		memcpy(copy, line, (size_t)len + 1);
	}
	free(line);
	if (ferror(stdin)) {
		cli_err("reading stdin: %s", strerror(errno));
		return EX_FAIL;
	}
	return 0;
}

/* Checks every input before anything is pushed; fills tasks. */
static int validate_inputs(const struct input *in, int kind, uint32_t max_payload, tq_task *t)
{
	const char *what = in->from_stdin ? "line" : "argument";

	for (size_t i = 0; i < in->n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].kind = (uint16_t)kind;
		if (kind == TQ_KIND_INT) {
			if (!cli_parse_u64(in->item[i], 0, UINT64_MAX, &t[i].value)) {
				cli_err("%s %zu: '%.40s' is not an unsigned 64-bit integer; nothing pushed", what,
					i + 1, in->item[i]);
				return EX_BADINPUT;
			}
			continue;
		}
		if (in->len[i] > max_payload) {
			cli_err("%s %zu: %zu bytes exceeds the queue's max payload of %u; nothing pushed", what,
				i + 1, in->len[i], max_payload);
			return EX_BADINPUT;
		}
		if (kind == TQ_KIND_JSON) {
			const char *end = NULL;
			cJSON *j = cJSON_ParseWithLengthOpts(in->item[i], in->len[i], &end, false);
			bool ok = j && end == in->item[i] + in->len[i];
			if (j && !ok) /* trailing text: allow only whitespace */
				for (ok = true; end < in->item[i] + in->len[i]; end++)
					if (*end != ' ' && *end != '\t')
						ok = false;
			cJSON_Delete(j);
			if (!ok) {
				const char *at = end ? end : cJSON_GetErrorPtr();
				size_t off = at && at >= in->item[i] && at <= in->item[i] + in->len[i]
						     ? (size_t)(at - in->item[i]) : 0;
				cli_err("%s %zu: invalid JSON at byte %zu; nothing pushed", what, i + 1, off);
				return EX_BADINPUT;
			}
		}
		t[i].data = in->item[i];
		t[i].len = (uint32_t)in->len[i];
	}
	return 0;
}

int cmd_push(int argc, char **argv)
{
	static const char *usage = "push NAME [--kind int|string|json] [--json] [--timeout SEC] [--quiet] [VALUE...]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'J'}, {"kind", required_argument, 0, 'k'},
		{"timeout", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'}, {0, 0, 0, 0}};
	int kind = TQ_KIND_STRING, c;
	uint64_t timeout = TQ_WAIT_FOREVER;
	bool quiet = false;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hk:t:q", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("usage: taskq %s\n\nPushes one task per VALUE, or with no VALUE one per line of stdin.\n"
			       "--kind int|string|json (default string); --json is --kind json and checks that\n"
			       "each task is valid JSON. Every input is checked before anything is pushed: one\n"
			       "bad input pushes nothing (exit 5). Prints the id of each task accepted.\n"
			       "--timeout SEC: how long to wait while the queue is full (default: no limit).\n", usage);
			return 0;
		case 'J': kind = TQ_KIND_JSON; break;
		case 'q': quiet = true; break;
		case 'k':
			if (!strcmp(optarg, "int")) kind = TQ_KIND_INT;
			else if (!strcmp(optarg, "string")) kind = TQ_KIND_STRING;
			else if (!strcmp(optarg, "json")) kind = TQ_KIND_JSON;
			else {
				cli_err("invalid --kind '%s' (int, string or json)", optarg);
				return EX_USAGE_;
			}
			break;
		case 't':
			if (!cli_parse_seconds(optarg, 1e9, &timeout)) {
				cli_err("invalid --timeout '%s'", optarg);
				return EX_USAGE_;
			}
			break;
		default:
			return usage_error(usage);
		}
	}
	if (optind >= argc)
		return usage_error(usage);
	const char *name = argv[optind++];
	tq_queue *q;
	int rc = cli_open(name, &q);
	if (rc)
		return rc;
	struct input in = {0};
	if (optind < argc) {
		for (int i = optind; i < argc; i++)
			if (!input_add(&in, argv[i], strlen(argv[i]))) {
				rc = EX_FAIL;
				goto out;
			}
	} else if ((rc = read_stdin(&in))) {
		goto out;
	}
	tq_config cfg;
	tq_config_get(q, &cfg);
	tq_task *t = calloc(in.n ? in.n : 1, sizeof(*t));
	if (!t) {
		cli_err("out of memory");
		rc = EX_FAIL;
		goto out;
	}
	if ((rc = validate_inputs(&in, kind, cfg.max_payload, t)))
		goto out_t;
	size_t done = 0;
	while (done < in.n) {
		size_t n = in.n - done < 64 ? in.n - done : 64;
		int k = tq_push(q, t + done, n, timeout);
		if (k < 0) {
			cli_err("%s: %s; %zu of %zu tasks pushed", name, tq_strerror(k), done, in.n);
			rc = cli_exit_for(k);
			break;
		}
		for (int i = 0; !quiet && i < k; i++)
			printf("%llu\n", (unsigned long long)t[done + (size_t)i].id);
		done += (size_t)k;
	}
out_t:
	free(t);
out:
	input_free(&in);
	tq_close(q);
	return rc;
}

/* ----------------------------------------------------------------- take */

/* Prints one task: as a JSON array element (streamed, so that each batch is
 * written before it is acknowledged), or as a line. */
static void print_task(const tq_task *t, bool verbose, bool json, bool first)
{
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)t->id);
		cJSON_AddStringToObject(o, "kind", cli_kind_name(t->kind));
		cJSON_AddNumberToObject(o, "attempt", t->attempt);
		if (t->kind == TQ_KIND_INT) {
			cJSON_AddNumberToObject(o, "value", (double)t->value);
		} else {
			char *s = strndup(t->data, t->len);
			cJSON_AddStringToObject(o, "data", s ? s : "");
			free(s);
		}
		char *txt = cJSON_PrintUnformatted(o);
		printf("%s%s", first ? "[\n  " : ",\n  ", txt ? txt : "{}");
		cJSON_free(txt);
		cJSON_Delete(o);
		return;
	}
	if (verbose)
		printf("%llu\t%s\t%u\t", (unsigned long long)t->id, cli_kind_name(t->kind), t->attempt);
	if (t->kind == TQ_KIND_INT)
		printf("%llu\n", (unsigned long long)t->value);
	else
		printf("%.*s\n", (int)t->len, (const char *)t->data);
}

int cmd_take(int argc, char **argv)
{
	static const char *usage = "take NAME [-n COUNT] [--timeout SEC] [--verbose] [--json]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {"count", required_argument, 0, 'n'},
		{"timeout", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'}, {0, 0, 0, 0}};
	uint64_t count = 1, timeout = 0;
	bool json = false, verbose = false;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hjn:t:v", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("usage: taskq %s\n\nTakes up to COUNT tasks (default 1), prints them (the payload, or the\n"
			       "integer, one per line; --verbose adds id, kind and attempt), then acknowledges\n"
			       "them. Tasks are acknowledged only once the output is written; if it cannot be,\n"
			       "they go back to the queue. --timeout SEC waits for tasks (default: none);\n"
			       "finding none exits with status 6.\n", usage);
			return 0;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'n':
			if (!cli_parse_u64(optarg, 1, 1000000000, &count)) {
				cli_err("invalid count '%s'", optarg);
				return EX_USAGE_;
			}
			break;
		case 't':
			if (!cli_parse_seconds(optarg, 1e9, &timeout)) {
				cli_err("invalid --timeout '%s'", optarg);
				return EX_USAGE_;
			}
			break;
		default:
			return usage_error(usage);
		}
	}
	if (optind != argc - 1)
		return usage_error(usage);
	tq_queue *q;
	int rc = cli_open(argv[optind], &q);
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
		for (int i = 0; i < n; i++)
			print_task(&t[i], verbose, json, got == 0 && i == 0);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			cli_err("cannot write the tasks: %s; they stay in the queue", strerror(errno));
			tq_close(q); /* returns the leases */
			return EX_FAIL;
		}
		tq_ack(q, t, (size_t)n);
		got += (uint64_t)n;
	}
	if (json) {
		printf(got ? "\n]\n" : "[]\n");
		fflush(stdout);
	}
	tq_close(q);
	if (got == 0 && err) {
		cli_err("%s: %s", argv[optind],
			err == TQ_EAGAIN || err == TQ_ETIMEDOUT ? "no task ready" : tq_strerror(err));
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

static void feed(int fd, const tq_task *t)
{
	char num[24];
	const char *p = t->data;
	size_t len = t->len;

	if (t->kind == TQ_KIND_INT) {
		len = (size_t)snprintf(num, sizeof(num), "%llu\n", (unsigned long long)t->value);
		p = num;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the command does not read its stdin: fine */
		p += w;
		len -= (size_t)w;
	}
	close(fd);
}

/* Waits for the command, extending the lease while it runs. */
static int wait_command(struct work_ctx *w, const tq_task *t, pid_t pid, char *msg, size_t msg_size)
{
	tq_config cfg;
	tq_config_get(w->q, &cfg);
	uint64_t start = tq_now_ns(), touched = start;
	int pfd = pidfd_open_(pid), status = 0;

	for (;;) {
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			(void)poll(&p, 1, 100);
		} else {
			usleep(10000);
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
			snprintf(msg, msg_size, "timed out after %.1f s", (double)w->task_timeout / 1e9);
			if (pfd >= 0)
				close(pfd);
			return 124;
		}
	}
	if (pfd >= 0)
		close(pfd);
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status) == 0)
			return 0;
		snprintf(msg, msg_size, "exit status %d", WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	snprintf(msg, msg_size, "killed by signal %d", WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

static int run_command(const tq_task *t, void *arg, char *msg, size_t msg_size)
{
	struct work_ctx *w = arg;
	char buf[4][TQ_NAME_MAX + 32];
	int fds[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	pid_t pid;

	char **env = task_env(w, t, buf);
	if (!env || pipe2(fds, O_CLOEXEC) != 0) {
		free(env);
		snprintf(msg, msg_size, "cannot start the command: %s", strerror(errno));
		return 126;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
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
	if (rc != 0) {
		close(fds[1]);
		snprintf(msg, msg_size, "cannot run %s: %s", w->cmd[0], strerror(rc));
		return 127;
	}
	feed(fds[1], t);
	rc = wait_command(w, t, pid, msg, msg_size);
	if (rc) {
		char qb[120];
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

int cmd_work(int argc, char **argv)
{
	static const char *usage = "work NAME [--concurrency N] [--batch N] [--idle-exit SEC] [--max-tasks N]\n"
				   "       [--task-timeout SEC] [--json] [LOG OPTIONS] -- COMMAND [ARG...]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'},
		{"concurrency", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
		{"idle-exit", required_argument, 0, 'i'}, {"max-tasks", required_argument, 0, 'm'},
		{"task-timeout", required_argument, 0, 'T'}, CLI_LOG_OPTIONS, {0, 0, 0, 0}};
	uint64_t conc = 1, batch = 1, max_tasks = 0, idle = 0, task_timeout = 0;
	struct log_config lc;
	log_config_init(&lc);
	bool json = false;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hjc:b:i:m:T:", opts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'h':
			printf("usage: taskq %s\n\nRuns COMMAND once per task, with the payload (or the integer and a newline)\n"
			       "on its stdin and TASKQ_QUEUE, TASKQ_TASK_ID, TASKQ_TASK_KIND, TASKQ_TASK_ATTEMPT\n"
			       "in its environment. Exit status 0 acknowledges the task; anything else fails it\n"
			       "(retried with backoff, then dead). Leases are extended while a command runs.\n"
			       "--concurrency N commands at once (default 1); --batch N tasks taken at once per\n"
			       "runner (default 1); --idle-exit SEC: exit after SEC without tasks;\n"
			       "--max-tasks N: exit after N tasks per runner; --task-timeout SEC: kill a command\n"
			       "running longer (the task fails). Ctrl+C or SIGTERM: finish the running commands,\n"
			       "acknowledge, exit 0; a second one exits at once (the tasks return to the queue).\n%s",
			       usage, CLI_LOG_HELP);
			return 0;
		case 'j': json = true; break;
		case 'c': ok = cli_parse_u64(optarg, 1, 256, &conc); break;
		case 'b': ok = cli_parse_u64(optarg, 1, TQ_MAX_BATCH, &batch); break;
		case 'm': ok = cli_parse_u64(optarg, 1, UINT64_MAX, &max_tasks); break;
		case 'i': ok = cli_parse_seconds(optarg, 1e9, &idle) && idle > 0; break;
		case 'T': ok = cli_parse_seconds(optarg, 1e9, &task_timeout) && task_timeout > 0; break;
		default:
			if (cli_log_option(c, optarg, &lc, &ok))
				break;
			return usage_error(usage);
		}
		if (!ok) {
			cli_err("invalid value '%s'", optarg);
			return EX_USAGE_;
		}
	}
	if (optind + 1 >= argc)
		return usage_error(usage);
	const char *name = argv[optind];
	char **cmd = argv + optind + 1;
	if (!strcmp(cmd[0], "--"))
		cmd++;
	if (!cmd[0])
		return usage_error(usage);

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
		  (unsigned long long)batch, log_quote(qb, sizeof(qb), cmd[0]));
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
		cJSON_AddNumberToObject(o, "handled", (double)total.handled);
		cJSON_AddNumberToObject(o, "acked", (double)total.acked);
		cJSON_AddNumberToObject(o, "failed", (double)total.failed);
		cJSON_AddNumberToObject(o, "lost", (double)total.lost);
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
