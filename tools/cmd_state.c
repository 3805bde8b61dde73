/* SPDX-License-Identifier: MIT */
/*
 * cmd_state.c - taskq stop, pause and resume (local; the --url forms are in cmd_remote.c).
 */
#include <stdio.h>

#include "cli.h"

/* ------------------------------------------------------ run state verbs */

enum { O_JSON = 'j', O_NOW = 'n', O_URL = 0x100, O_TOKEN_FILE, O_CACERT };

/* --url, --token-file and --cacert send the command to cli_remote_state before any
 * of this parsing: they are here to be in the help. */
#define REMOTE_OPTS                                                                                \
	{O_URL, false, "url", "URL", "ask the `taskq serve` at URL instead; exit status\n"              \
				   "8 if it refuses, 3 if it has no such queue"},                   \
	{O_TOKEN_FILE, false, "token-file", "FILE", "with --url: the bearer token, from FILE (default:\n" \
						    "$TASKQ_TOKEN)"},                                   \
	{O_CACERT, false, "cacert", "FILE", "with an https:// --url: verify the server's\n"            \
					     "certificate against the CA certificates in FILE\n"        \
					     "(PEM; for a self-signed one, the certificate)"}
#define JSON_OPT {O_JSON, true, "json", NULL, "print the new state as JSON: {\"state\": ...}"}

static const struct cli_opt stop_opts[] = {
	{O_NOW, true, "now", NULL, "stopped, not draining: workers exit at once and\ntheir leased tasks return to ready"},
	JSON_OPT, CLI_OPT_PRETTY, REMOTE_OPTS, {0, false, NULL, NULL, NULL},
};
static const struct cli_opt state_opts[] = {JSON_OPT, CLI_OPT_PRETTY, REMOTE_OPTS, {0, false, NULL, NULL, NULL}};

static const struct cli_command stop_cmd = {
	.name = "stop",
	.args = "NAME",
	.about = "Draining (the default): producers stop, workers finish and acknowledge what\n"
		 "they hold, then exit; ready tasks stay queued. taskq resume NAME sets the queue\n"
		 "running again.\n",
	.more = "taskq stop NAME --nats URL --stream S [--state stopped]: every machine's queue\n"
		"NAME served by a bridge of stream S, each confirming (taskq bridge stop;\n"
		"docs/cluster.md).\n",
	.opts = stop_opts,
};
static const struct cli_command pause_cmd = {
	.name = "pause",
	.args = "NAME",
	.about = "Consumers take nothing until taskq resume NAME; producers may push.\n",
	.opts = state_opts,
};
static const struct cli_command resume_cmd = {
	.name = "resume",
	.args = "NAME",
	.about = "Sets the run state back to running.\n",
	.opts = state_opts,
};

static int set_state(int argc, char **argv, const struct cli_command *cmd, int state)
{
	struct cli_parser p;
	bool json = false, now = false;
	tq_queue *q;
	int c, rc;

	cli_parser_init(&p, cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (c == CLI_OPT_HELP)
			return 0;
		if (c == O_JSON)
			json = true;
		else if (c == O_NOW)
			now = true;
		else
			return c == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(cmd);
	}
	if (optind != argc - 1)
		return cli_command_usage(cmd);
	if (now)
		state = TQ_STOPPED;
	if ((rc = cli_open(argv[optind], &q)))
		return rc;
	rc = tq_set_run_state(q, state);
	tq_close(q);
	if (rc) {
		cli_err("%s", tq_strerror(rc));
		return cli_exit_for(rc);
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "state", cli_state_name(state));
		cli_print_json(o);
	} else {
		printf("%s: %s\n", argv[optind], cli_state_name(state));
	}
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "stop");
	return set_state(argc, argv, &stop_cmd, TQ_DRAINING);
}

int cmd_pause(int argc, char **argv)
{
	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "pause");
	return set_state(argc, argv, &pause_cmd, TQ_PAUSED);
}

int cmd_resume(int argc, char **argv)
{
	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "resume");
	return set_state(argc, argv, &resume_cmd, TQ_RUNNING);
}
