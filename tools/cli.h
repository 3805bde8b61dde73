/* SPDX-License-Identifier: MIT */
/*
 * cli.h - shared pieces of the taskq command's subcommands.
 */
#ifndef TQ_CLI_H
#define TQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>

#include <cjson/cJSON.h>

#include "parse.h"
#include "taskq.h"

/* Exit statuses of every taskq subcommand (documented in `taskq --help`). */
enum {
	EX_OK_ = 0,
	EX_FAIL = 1,     /* any other failure */
	EX_USAGE_ = 2,   /* bad subcommand, option, argument or queue name */
	EX_NOQUEUE = 3,  /* no such queue */
	EX_BADQUEUE = 4, /* not a taskq queue, another layout version, or half-created */
	EX_BADINPUT = 5, /* invalid task input: nothing from it on was pushed (push --help) */
	EX_EMPTY = 6,    /* nothing to take, or room to push, within the timeout */
	EX_STOPPED = 7,  /* the queue is draining or stopped */
	EX_REFUSED = 8,  /* the remote end refused: authentication (HTTP 401/403) */
	EX_EXISTS = 9,   /* create: the queue exists already (and no --exist-ok) */
};

extern const char *cli_cmd; /* the running subcommand, for messages */

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_exit_for(int tq_err);
/* Opens a queue or prints why not; returns 0 or an exit status. */
int cli_open(const char *name, tq_queue **q);
/* The same as an observer (tq_open_observer), for commands that only look
 * (or set the run state): never counted or listed as a process, never
 * keeping `taskq destroy` from removing the queue. */
int cli_open_observer(const char *name, tq_queue **q);
/* Prints "usage: taskq USAGE" to stderr; returns EX_USAGE_. */
int cli_usage_error(const char *usage);
/* ------------------------------------------------- options and --help */

/*
 * A subcommand's options as one table, from which both the getopt_long
 * options and the --help text are made, so that every option a command
 * takes is in its help, spelled as it is taken.
 */
struct cli_opt {
	int key;          /* what cli_opts_next returns for it (> 0) */
	bool has_short;   /* key (a letter) is also its short option, -k */
	const char *name; /* the long option, without "--" */
	const char *arg;  /* the name of its argument in the help ("N", "SEC"); NULL: none */
	const char *help; /* its help: lines of at most 52 columns, separated by \n */
};

struct cli_command {
	const char *name;  /* the subcommand */
	const char *args;  /* the arguments before the options in the usage: "NAME" */
	const char *tail;  /* after the options in the usage ("[VALUE...]"), or NULL */
	const char *usage; /* the whole usage after "taskq ", or NULL: made of the above */
	const char *about; /* what the command does: the text between usage and options */
	const char *more;  /* text after the options, or NULL */
	const struct cli_opt *opts; /* ends with an entry of key 0; --help is added */
};

/* --pretty is taken out of every command line by main (cli_json_pretty);
 * a command whose --json prints something lists it with this entry. */
#define CLI_OPT_PRETTY_KEY 0x7f01
#define CLI_OPT_PRETTY {CLI_OPT_PRETTY_KEY, false, "pretty", NULL, "with --json: indented, on several lines"}
extern bool cli_json_pretty;

#define CLI_MAX_OPTS 32
struct cli_parser {
	const struct cli_command *cmd;
	const struct cli_opt *cur; /* the option cli_opts_next returned last */
	struct option lo[CLI_MAX_OPTS + 2]; /* getopt_long's table */
	char so[3 * CLI_MAX_OPTS + 4];
};

enum { CLI_OPT_END = -1, CLI_OPT_HELP = -2, CLI_OPT_BAD = -3 };
void cli_parser_init(struct cli_parser *p, const struct cli_command *cmd);
/* The next option of argv (getopt_long: optarg holds its argument): its
 * key, or CLI_OPT_END when there are none left (optind: the first
 * argument), CLI_OPT_HELP after printing the help to stdout (exit 0), or
 * CLI_OPT_BAD after printing the usage to stderr (exit EX_USAGE_). */
int cli_opts_next(struct cli_parser *p, int argc, char **argv);
void cli_print_help(const struct cli_command *cmd);
/* Prints the usage to stderr; returns EX_USAGE_. */
int cli_command_usage(const struct cli_command *cmd);
/* Parses the options of a command that takes only --help and --json (the
 * option whose key is json_key): sets *json; returns -1 to go on, or the
 * exit status (0 after --help). */
int cli_opts_json_only(const struct cli_command *cmd, int json_key, int argc, char **argv, bool *json);
/* The current option's argument (optarg) as an integer in [min, max] or a
 * duration in [min_ns, max_s]; false after saying on stderr which option,
 * what was given, and the range. */
bool cli_opt_u64(const struct cli_parser *p, uint64_t min, uint64_t max, uint64_t *out);
bool cli_opt_seconds(const struct cli_parser *p, uint64_t min_ns, double max_s, uint64_t *ns);
/* The same for a value of what (an option's name, "task id"). */
bool cli_value_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool cli_value_seconds(const char *what, const char *s, uint64_t min_ns, double max_s, uint64_t *ns);

/* args joined by blanks, each quoted when it holds a blank or a quote (for
 * logs); cut at size - 1 bytes. Returns buf. */
char *cli_join_args(char *buf, size_t size, char *const *args);

#define CLI_SEC 1000000000ull

/* How long ago CLOCK_MONOTONIC time t was, at now (0 for t == 0). Clamped
 * at 0: a time from shared memory can be later than a now read before it
 * (another process wrote it since), or forged. Read now after the data. */
static inline uint64_t cli_age_ns(uint64_t now, uint64_t t)
{
	return t && now > t ? now - t : 0;
}

/* cli_parse_u64, cli_parse_seconds and the other parsers: parse.h. */

const char *cli_state_name(int state);
const char *cli_kind_name(int kind);
/* An event's details, each labelled: "id=12 attempts=5 msg=\"...\"". */
char *cli_event_detail(char *buf, size_t size, const tq_event_info *e);

/* Prints a cJSON object (and frees it) on one line, or indented over
 * several with --pretty (cli_json_pretty). */
void cli_print_json(cJSON *obj);
/* Counters as exact integers (cli_json_add_u64). */
cJSON *cli_counters_json(const tq_counters *c);
cJSON *cli_latency_json(const tq_latency *l);
/* The snapshot behind `stats --json` (and the HTTP /stats): task counts,
 * totals, rates, latency; optionally the configuration and the processes.
 * q is an observer handle (cli_open_observer): every process counted and
 * listed is another one. */
cJSON *cli_stats_json(tq_queue *q, const char *name, bool with_config, bool with_procs);
/* One dead task as `taskq dead --json` lists it (and the HTTP /dead): id,
 * kind, attempts, last_error, last_message, dead_seconds (now: tq_now_ns),
 * and its payload, len bytes of data. NULL when out of memory. */
cJSON *cli_dead_json(const tq_dead_info *d, const char *data, size_t len, uint64_t now);
/* One event as `taskq log --json` prints it (and the HTTP /events): seq,
 * time, pid, event, a, b, their names, message. */
cJSON *cli_event_json(const tq_event_info *e);
/* When the event happened, as an ISO 8601 UTC time with milliseconds, in when. */
char *cli_event_time(const tq_event_info *e, char *when, size_t size);

/* Logging options shared by long-running commands (work, serve). */
struct log_config;
#define CLI_LOG_OPTS                                                                          \
	{0x1001, false, "log-file", "FILE", "log to FILE instead of stderr"},                      \
	{0x1002, false, "log-max-bytes", "N", "rotate the log file at N bytes (1024 or more;\n"     \
					      "default 10485760)"},                               \
	{0x1003, false, "log-max-files", "N", "rotated log files kept (1 to 100; default 5)"},     \
	{0x1004, false, "log-level", "LEVEL", "debug, info, warn or error (default info)"}
#define CLI_LOG_HELP                                                                       \
	"Logs: one logfmt line per event to stderr, or with --log-file to FILE, rotated at\n"   \
	"--log-max-bytes, keeping --log-max-files old files.\n"
/* Applies one of CLI_LOG_OPTS; false if c is not one. ok: the value is
 * valid; if not, the option, the value and what it must be are said. */
bool cli_log_option(int c, const char *arg, struct log_config *lc, bool *ok);

/* Bearer tokens for taskq serve and the --url forms (cmd_remote.c): at most
 * CLI_TOKEN_MAX visible ASCII characters. Both return 0 or an exit status
 * (after a message); the env form leaves "" when TASKQ_TOKEN is unset. */
#define CLI_TOKEN_MAX 4096
int cli_read_token_file(const char *path, char *out, size_t size);
int cli_token_from_env(char *out, size_t size);
/* True when argv (a subcommand's) has --url, --token-file or --cacert: the remote
 * form of stop / pause / resume, run by cli_remote_state (cmd is "stop",
 * "pause" or "resume"; argv as the subcommand's). */
bool cli_has_remote_opts(int argc, char **argv);
int cli_remote_state(int argc, char **argv, const char *cmd);

/* Subcommands: argc/argv start at the subcommand's name. */
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_take(int argc, char **argv);
int cmd_work(int argc, char **argv);
int cmd_dead(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_clean(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_top(int argc, char **argv);

#endif
