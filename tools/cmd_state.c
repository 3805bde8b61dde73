/*
 * cmd_state.c - taskq stop, pause and resume (local; the --url forms are in cmd_remote.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------ run state verbs */

static int set_state(int argc, char **argv, int state, const char *usage, const char *help)
{
	bool json = false;
	tq_queue *q;
	int rc = cli_simple_opts(argc, argv, usage, help, &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_usage_error(usage);
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

#define REMOTE_HELP                                                                        \
	"--url URL [--token-file FILE]: ask the `taskq serve` at URL instead (bearer token\n" \
	"from FILE or $TASKQ_TOKEN); exit status 8 if it refuses, 3 if it has no such queue.\n"

int cmd_stop(int argc, char **argv)
{
	static const char *usage = "stop NAME [--now] [--json] [--url URL [--token-file FILE]]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {"now", no_argument, 0, 'n'}, {0, 0, 0, 0}};
	bool now = false;
	int c;
	char *sub[4];
	int nsub = 0;

	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "stop");
	optind = 0;
	sub[nsub++] = argv[0];
	while ((c = getopt_long(argc, argv, "hjn", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: taskq %s\n\nDraining (the default): producers stop, workers finish and\n"
			       "acknowledge what they hold, then exit; ready tasks stay queued.\n"
			       "--now: stopped: workers exit at once; their leased tasks return to ready.\n"
			       "taskq resume NAME sets the queue running again.\n" REMOTE_HELP
			       "--nats URL --stream S [--state stopped]: every machine's queue NAME served by a\n"
			       "bridge of stream S, each confirming (taskq bridge stop; docs/cluster.md).\n",
			       usage);
			return 0;
		}
		if (c == 'n') now = true;
		else if (c == 'j') { if (nsub == 1) sub[nsub++] = "--json"; } /* once: sub[] has room for one */
		else return cli_usage_error(usage);
	}
	if (optind != argc - 1)
		return cli_usage_error(usage);
	sub[nsub++] = argv[optind];
	sub[nsub] = NULL;
	return set_state(nsub, sub, now ? TQ_STOPPED : TQ_DRAINING, usage, "");
}

int cmd_pause(int argc, char **argv)
{
	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "pause");
	return set_state(argc, argv, TQ_PAUSED, "pause NAME [--json] [--url URL [--token-file FILE]]",
			 "\nConsumers take nothing until taskq resume NAME; producers may push.\n" REMOTE_HELP);
}

int cmd_resume(int argc, char **argv)
{
	if (cli_has_remote_opts(argc, argv))
		return cli_remote_state(argc, argv, "resume");
	return set_state(argc, argv, TQ_RUNNING, "resume NAME [--json] [--url URL [--token-file FILE]]",
			 "\nSets the run state back to running.\n" REMOTE_HELP);
}

