/* SPDX-License-Identifier: MIT */
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
#include "version.h"

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

/* ------------------------------------------------- options and --help */

bool cli_json_pretty;

static const struct cli_opt help_opt = {'h', true, "help", NULL, "print this help and exit"};

void cli_parser_init(struct cli_parser *p, const struct cli_command *cmd)
{
	size_t n = 0, k = 0;

	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->lo[n++] = (struct option){help_opt.name, no_argument, NULL, help_opt.key};
	p->so[k++] = (char)help_opt.key;
	for (const struct cli_opt *o = cmd->opts; o && o->key; o++) {
		if (n == CLI_MAX_OPTS) {
			cli_err("internal error: more than %d options", CLI_MAX_OPTS);
			abort();
		}
		p->lo[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL, o->key};
		if (o->has_short) {
			p->so[k++] = (char)o->key;
			if (o->arg)
				p->so[k++] = ':';
		}
	}
	p->lo[n] = (struct option){NULL, 0, NULL, 0};
	p->so[k] = '\0';
	optind = 0;
}

int cli_opts_next(struct cli_parser *p, int argc, char **argv)
{
	int c = getopt_long(argc, argv, p->so, p->lo, NULL);

	p->cur = NULL;
	if (c == -1)
		return CLI_OPT_END;
	if (c == help_opt.key) {
		cli_print_help(p->cmd);
		return CLI_OPT_HELP;
	}
	for (const struct cli_opt *o = p->cmd->opts; o && o->key; o++)
		if (o->key == c) {
			p->cur = o;
			return c;
		}
	cli_command_usage(p->cmd); /* getopt_long said what was wrong */
	return CLI_OPT_BAD;
}

/* Appends piece to the usage in buf, starting a new line before column 80. */
static void usage_add(char *buf, size_t size, size_t *col, const char *piece)
{
	size_t len = strlen(buf), n = strlen(piece);

	if (*col + 1 + n > 79 && *col > 8) {
		snprintf(buf + len, size - len, "\n        %s", piece);
		*col = 8 + n;
	} else {
		snprintf(buf + len, size - len, "%s%s", len ? " " : "", piece);
		*col += (len ? 1 : 0) + n;
	}
}

static const char *command_usage(const struct cli_command *cmd, char *buf, size_t size)
{
	size_t col = strlen("usage: taskq ");
	char piece[128];

	if (cmd->usage)
		return cmd->usage;
	buf[0] = '\0';
	usage_add(buf, size, &col, cmd->name);
	if (cmd->args)
		usage_add(buf, size, &col, cmd->args);
	for (const struct cli_opt *o = cmd->opts; o && o->key; o++) {
		snprintf(piece, sizeof(piece), "[--%s%s%s]", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		usage_add(buf, size, &col, piece);
	}
	if (cmd->tail)
		usage_add(buf, size, &col, cmd->tail);
	return buf;
}

static void print_option(const struct cli_opt *o)
{
	char label[96];

	snprintf(label, sizeof(label), "%s--%s%s%s", o->has_short ? (char[]){'-', (char)o->key, ',', ' ', 0} : "    ",
		 o->name, o->arg ? " " : "", o->arg ? o->arg : "");
	if (strlen(label) <= 24)
		printf("  %-24s ", label);
	else
		printf("  %s\n%27s", label, "");
	for (const char *h = o->help; *h; h++) {
		putchar(*h);
		if (*h == '\n' && h[1])
			printf("%27s", "");
	}
	putchar('\n');
}

void cli_print_help(const struct cli_command *cmd)
{
	char usage[1024];

	printf("usage: taskq %s\n\n%s\nOptions:\n", command_usage(cmd, usage, sizeof(usage)), cmd->about);
	for (const struct cli_opt *o = cmd->opts; o && o->key; o++)
		print_option(o);
	print_option(&help_opt);
	if (cmd->more)
		printf("\n%s", cmd->more);
}

int cli_command_usage(const struct cli_command *cmd)
{
	char usage[1024];

	return cli_usage_error(command_usage(cmd, usage, sizeof(usage)));
}

int cli_opts_json_only(const struct cli_command *cmd, int json_key, int argc, char **argv, bool *json)
{
	struct cli_parser p;
	int c;

	cli_parser_init(&p, cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (c == CLI_OPT_HELP)
			return 0;
		if (c != json_key)
			return c == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(cmd);
		*json = true;
	}
	return -1;
}

bool cli_value_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char q[100], range[100];

	if (cli_parse_u64(s, min, max, out))
		return true;
	cli_err("invalid %s '%s': %s", what, cli_text_escape(q, sizeof(q), s, strlen(s)),
		cli_u64_range(range, sizeof(range), min, max));
	return false;
}

bool cli_value_seconds(const char *what, const char *s, uint64_t min_ns, double max_s, uint64_t *ns)
{
	char q[100], range[120];
	uint64_t v;

	if (cli_parse_seconds(s, max_s, &v) && v >= min_ns) {
		*ns = v;
		return true;
	}
	cli_err("invalid %s '%s': %s", what, cli_text_escape(q, sizeof(q), s, strlen(s)),
		cli_seconds_range(range, sizeof(range), min_ns, (uint64_t)(max_s * 1e9)));
	return false;
}

bool cli_opt_u64(const struct cli_parser *p, uint64_t min, uint64_t max, uint64_t *out)
{
	char what[64];

	snprintf(what, sizeof(what), "--%s", p->cur ? p->cur->name : "?");
	return cli_value_u64(what, optarg, min, max, out);
}

bool cli_opt_seconds(const struct cli_parser *p, uint64_t min_ns, double max_s, uint64_t *ns)
{
	char what[64];

	snprintf(what, sizeof(what), "--%s", p->cur ? p->cur->name : "?");
	return cli_value_seconds(what, optarg, min_ns, max_s, ns);
}

char *cli_join_args(char *buf, size_t size, char *const *args)
{
	size_t k = 0;

#define PUTC(ch) do { if (k + 1 < size) buf[k++] = (ch); } while (0)
	for (size_t i = 0; args[i]; i++) {
		const char *a = args[i];
		bool quote = !*a || strpbrk(a, " \t\n'\"\\") != NULL;
		if (i)
			PUTC(' ');
		if (quote)
			PUTC('\'');
		for (; *a; a++) {
			if (*a == '\'') { /* 'it'\''s' */
				PUTC('\'');
				PUTC('\\');
				PUTC('\'');
			}
			PUTC(*a);
		}
		if (quote)
			PUTC('\'');
	}
#undef PUTC
	if (size)
		buf[k < size ? k : size - 1] = '\0';
	return buf;
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
	uint64_t v = 0;

	switch (c) {
	case 0x1001:
		lc->path = arg;
		if (!(*ok = *arg != '\0'))
			cli_err("invalid --log-file '': a file name");
		return true;
	case 0x1002:
		*ok = cli_value_u64("--log-max-bytes", arg, 1024, UINT64_MAX / 2, &v);
		lc->max_bytes = v;
		return true;
	case 0x1003:
		*ok = cli_value_u64("--log-max-files", arg, 1, 100, &v);
		lc->max_files = (unsigned)v;
		return true;
	case 0x1004: {
		char q[100];
		lc->level = log_level_parse(arg);
		if (!(*ok = lc->level >= 0))
			cli_err("invalid --log-level '%s': debug, info, warn or error",
				cli_text_escape(q, sizeof(q), arg, strlen(arg)));
		return true;
	}
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
	char *txt = cli_json_pretty ? cJSON_Print(obj) : cJSON_PrintUnformatted(obj);

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
	cli_json_add_u64(o, "dead_overflow", c->dead_overflow);
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

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Edits (insert, delete, replace, swap two neighbours) from a to b, for
 * names of at most 31 characters (more: SIZE_MAX). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[32][32];

	if (la > 31 || lb > 31)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		for (size_t j = 0; j <= lb; j++) {
			if (i == 0 || j == 0) {
				d[i][j] = i + j;
				continue;
			}
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

/* The command meant by an unknown one, or NULL: the only command it is
 * the start of (two letters or more), else the one closest to it, at most
 * two edits away (and fewer than its length). */
static const char *nearest_command(const char *s)
{
	size_t n = strlen(s), best = SIZE_MAX, prefixed = 0;
	const char *near = NULL, *prefix = NULL;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (n >= 2 && !strncmp(commands[i].name, s, n)) {
			prefix = commands[i].name;
			prefixed++;
		}
		size_t d = edit_distance(s, commands[i].name);
		if (d < best) {
			best = d;
			near = commands[i].name;
		}
	}
	if (prefixed == 1)
		return prefix;
	return best <= 2 && best < n ? near : NULL;
}

/* Takes every --pretty before a "--" out of argv (setting cli_json_pretty);
 * returns the new argc. */
static int take_pretty(int argc, char **argv)
{
	int k = 2;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[k++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--pretty"))
			cli_json_pretty = true;
		else
			argv[k++] = argv[i];
	}
	argv[k] = NULL;
	return k;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: taskq COMMAND [OPTIONS] ...\n"
		   "       taskq COMMAND --help\n"
		   "       taskq --version\n\n"
		   "A crash-safe task queue in shared memory. Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nQueues are named 1-200 characters of A-Z a-z 0-9 _ . - (not starting with '.');\n"
		   "queue NAME lives in /dev/shm/taskq.NAME. Durations are in seconds, with decimals\n"
		   "allowed (0.5, .25; no sign or exponent). --json output is valid UTF-8, and its\n"
		   "64-bit integers (ids, values, counters) are exact. It is one compact JSON\n"
		   "document a line (take and log: one a task, one an event); --pretty, given to any\n"
		   "command with --json, indents it over several lines instead.\n\n"
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
		   "  8  the remote end refused: authentication (stop/pause/resume --url)\n"
		   "  9  the queue exists already (create without --exist-ok)\n");
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
		printf("taskq %s\n", TQ_VERSION_STRING);
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
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			cli_cmd = commands[i].name;
			if (commands[i].fn != cmd_bridge) /* taskq-bridge reads its own --pretty */
				argc = take_pretty(argc, argv);
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	char q[100];
	const char *near = nearest_command(argv[1]);
	cli_text_escape(q, sizeof(q), argv[1], strlen(argv[1]));
	if (near)
		fprintf(stderr, "taskq: unknown command '%s'; did you mean '%s'? (taskq --help lists them)\n", q, near);
	else
		fprintf(stderr, "taskq: unknown command '%s' (taskq --help lists them)\n", q);
	return EX_USAGE_;
}
