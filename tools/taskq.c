/*
 * taskq.c - the taskq command: dispatch, shared helpers, usage.
 */
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

const char *cli_cmd = "taskq";

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "taskq: %s: ", cli_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_exit_for(int e)
{
	switch (e) {
	case 0: return EX_OK_;
	case TQ_ENAME: case TQ_EINVAL: return EX_USAGE_;
	case TQ_ENOENT: return EX_NOQUEUE;
	case TQ_EBADQUEUE: case TQ_EVERSION: case TQ_EINIT: return EX_BADQUEUE;
	case TQ_E2BIG: return EX_BADINPUT;
	case TQ_EAGAIN: case TQ_ETIMEDOUT: return EX_EMPTY;
	case TQ_ESTOPPED: return EX_STOPPED;
	default: return EX_FAIL;
	}
}

int cli_usage_error(const char *usage)
{
	fprintf(stderr, "usage: taskq %s\n", usage);
	return EX_USAGE_;
}

int cli_simple_opts(int argc, char **argv, const char *usage, const char *help, bool *json)
{
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {0, 0, 0, 0}};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: taskq %s\n%s", usage, help);
			return 0;
		}
		if (c == 'j' && json)
			*json = true;
		else
			return cli_usage_error(usage);
	}
	return -1;
}

int cli_open(const char *name, tq_queue **q)
{
	int rc = tq_open(name, q);

	if (rc) {
		cli_err("%s: %s", name, tq_strerror(rc));
		return cli_exit_for(rc);
	}
	return 0;
}

int cli_open_observer(const char *name, tq_queue **q)
{
	int rc = tq_open_observer(name, q);

	if (rc) {
		cli_err("%s: %s", name, tq_strerror(rc));
		return cli_exit_for(rc);
	}
	return 0;
}

bool cli_log_option(int c, const char *arg, struct log_config *lc, bool *ok)
{
	uint64_t v;

	switch (c) {
	case 0x1001: lc->path = arg; *ok = *arg != '\0'; return true;
	case 0x1002: *ok = cli_parse_u64(arg, 1024, UINT64_MAX / 2, &v); lc->max_bytes = v; return true;
	case 0x1003: *ok = cli_parse_u64(arg, 1, 100, &v); lc->max_files = (unsigned)v; return true;
	case 0x1004: lc->level = log_level_parse(arg); *ok = lc->level >= 0; return true;
	default: return false;
	}
}

const char *cli_state_name(int s)
{
	switch (s) {
	case TQ_RUNNING: return "running";
	case TQ_DRAINING: return "draining";
	case TQ_STOPPED: return "stopped";
	case TQ_PAUSED: return "paused";
	default: return "invalid";
	}
}

const char *cli_kind_name(int k)
{
	switch (k) {
	case TQ_KIND_INT: return "int";
	case TQ_KIND_STRING: return "string";
	case TQ_KIND_JSON: return "json";
	default: return "invalid";
	}
}

void cli_print_json(cJSON *obj)
{
	char *txt = cJSON_Print(obj);

	if (txt) {
		puts(txt);
		cJSON_free(txt);
	}
	cJSON_Delete(obj);
}

cJSON *cli_counters_json(const tq_counters *c)
{
	cJSON *o = cJSON_CreateObject();

	cli_json_add_u64(o, "pushed", c->pushed);
	cli_json_add_u64(o, "taken", c->taken);
	cli_json_add_u64(o, "acked", c->acked);
	cli_json_add_u64(o, "failed", c->failed);
	cli_json_add_u64(o, "retried", c->retried);
	cli_json_add_u64(o, "dead", c->dead);
	cli_json_add_u64(o, "expired", c->expired);
	cli_json_add_u64(o, "recovered", c->recovered);
	cli_json_add_u64(o, "dead_dropped", c->dead_dropped);
	cli_json_add_u64(o, "lost", c->lost);
	return o;
}

/* taskq bridge ...: runs taskq-bridge from this program's directory (or
 * PATH), so that this command needs no NATS library itself. */
static int cmd_bridge(int argc, char **argv)
{
	char self[4096], bin[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char **args = calloc((size_t)argc + 1, sizeof *args);

	if (!args) {
		cli_err("out of memory");
		return EX_FAIL;
	}
	args[0] = "taskq bridge"; /* its usage then names `taskq bridge` */
	for (int i = 1; i < argc; i++)
		args[i] = argv[i];
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(bin, sizeof bin, "%s/taskq-bridge", self);
			if (access(bin, X_OK) == 0)
				execv(bin, args);
		}
	}
	execvp("taskq-bridge", args);
	cli_err("cannot run taskq-bridge (installed beside taskq, or on PATH?): %s", strerror(errno));
	free(args);
	return EX_FAIL;
}

struct subcommand {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
};

static const struct subcommand commands[] = {
	{"create", cmd_create, "create a queue"},
	{"info", cmd_info, "a queue's configuration and a stats snapshot"},
	{"stats", cmd_stats, "a stats snapshot, with the attached processes"},
	{"push", cmd_push, "push tasks from arguments, or one per line from stdin"},
	{"take", cmd_take, "take tasks, print them, acknowledge them"},
	{"work", cmd_work, "run a command for each task (payload on stdin)"},
	{"dead", cmd_dead, "list, kick (retry) or purge dead tasks"},
	{"recover", cmd_recover, "recover dead processes and overdue leases now"},
	{"stop", cmd_stop, "set the run state to draining (default) or stopped"},
	{"pause", cmd_pause, "set the run state to paused: consumers take nothing"},
	{"resume", cmd_resume, "set the run state back to running"},
	{"top", cmd_top, "a live dashboard of a queue"},
	{"log", cmd_log, "the queue's recent events (deaths, recoveries, dead letters, state changes)"},
	{"ls", cmd_ls, "list the queues on this machine, flagging abandoned or broken ones"},
	{"destroy", cmd_destroy, "remove a queue"},
	{"clean", cmd_clean, "remove unused queues (no process attached, no task held) and abandoned ones"},
	{"serve", cmd_serve, "serve metrics, stats and run-state control over HTTP"},
	{"bridge", cmd_bridge, "move tasks between machines through NATS JetStream (taskq-bridge)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: taskq COMMAND [OPTIONS] ...\n"
		   "       taskq COMMAND --help\n\n"
		   "A crash-safe task queue in shared memory. Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nQueues are named 1-200 characters of A-Z a-z 0-9 _ . - (not starting with '.');\n"
		   "queue NAME lives in /dev/shm/taskq.NAME. Durations are in seconds, with decimals\n"
		   "allowed (0.5, .25; no sign or exponent). --json output is valid UTF-8, and its\n"
		   "64-bit integers (ids, values, counters) are exact.\n\n"
		   "Exit status:\n"
		   "  0  success\n"
		   "  1  failure (an operating-system or queue error)\n"
		   "  2  bad command, option, argument or queue name\n"
		   "  3  no such queue\n"
		   "  4  not a taskq queue, another layout version, or half-created\n"
		   "  5  invalid task input (bad JSON or UTF-8, payload too large, not an integer):\n"
		   "     nothing from it on was pushed (taskq push --help says what was before it)\n"
		   "  6  nothing to take, or no room to push, within the timeout\n"
		   "  7  the queue is draining or stopped (taskq resume sets it running)\n"
		   "  8  the remote end refused: authentication (stop/pause/resume --url)\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("taskq %d.%d\n", TQ_VERSION_MAJOR, TQ_VERSION_MINOR);
		return 0;
	}
	/* taskq stats|stop|top ... --nats URL ...: every machine's bridges,
	 * over NATS (taskq bridge stats|stop|top). */
	if (!strcmp(argv[1], "stats") || !strcmp(argv[1], "stop") || !strcmp(argv[1], "top")) {
		for (int i = 2; i < argc; i++)
			if (!strcmp(argv[i], "--nats") || !strncmp(argv[i], "--nats=", 7)) {
				cli_cmd = "bridge";
				return cmd_bridge(argc, argv);
			}
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			cli_cmd = commands[i].name;
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "taskq: unknown command '%s' (taskq --help lists them)\n", argv[1]);
	return EX_USAGE_;
}
