/* SPDX-License-Identifier: MIT */
/*
 * cmd_dead.c - taskq dead, log and recover.
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

/* ---------------------------------------------------------------- dead */

/* len: the bytes copied (tq_dead_list truncates to its stride). */
static bool print_payload_json(cJSON *o, const tq_dead_info *d, const char *data, size_t len)
{
	if (d->kind == TQ_KIND_INT)
		return cli_json_add_u64(o, "value", d->value);
	return cli_json_add_task_data(o, d->kind, data, len);
}

cJSON *cli_dead_json(const tq_dead_info *d, const char *data, size_t len, uint64_t now)
{
	/* The message comes from shared memory: bounded, and escaped. */
	size_t mlen = strnlen(d->last_msg, sizeof(d->last_msg));
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cli_json_add_u64(o, "id", d->id) && cJSON_AddStringToObject(o, "kind", cli_kind_name(d->kind)) &&
		  cJSON_AddNumberToObject(o, "attempts", d->attempts) &&
		  cJSON_AddNumberToObject(o, "last_error", d->last_err) &&
		  cli_json_add_bytes(o, "last_message", d->last_msg, mlen) &&
		  cJSON_AddNumberToObject(o, "dead_seconds", (double)cli_age_ns(now, d->died_ns) / 1e9) &&
		  print_payload_json(o, d, data, len);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int dead_list(tq_queue *q, bool json)
{
	tq_config cfg;
	tq_stats st;
	tq_config_get(q, &cfg);
	tq_stats_get(q, &st);
	/* Every dead task, however many (the area may be over-full), and some
	 * slack for those dying meanwhile. */
	size_t max = (size_t)st.dead + 64;
	size_t stride = cfg.max_payload ? cfg.max_payload : 1;
	tq_dead_info *d = calloc(max, sizeof(*d));
	char *data = calloc(max, stride);
	if (!d || !data) {
		free(d);
		free(data);
		cli_err("out of memory");
		return EX_FAIL;
	}
	int n = tq_dead_list(q, d, max, data, stride);
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	bool oom = json && !arr;
	uint64_t now = tq_now_ns();
	for (int i = 0; i < n && n > 0; i++) {
		const char *p = data + (size_t)i * stride;
		/* The message comes from shared memory: bounded, and escaped. */
		size_t mlen = strnlen(d[i].last_msg, sizeof(d[i].last_msg));
		size_t plen = d[i].len < stride ? d[i].len : stride;
		if (json) {
			cJSON *o = cli_dead_json(&d[i], p, plen, now);
			if (!o || !cJSON_AddItemToArray(arr, o)) {
				cJSON_Delete(o);
				oom = true;
				break;
			}
		} else {
			char msg[4 * sizeof(d[i].last_msg) + 4];
			printf("%llu\t%s\tattempts=%u\terror=%d\t%s\t", (unsigned long long)d[i].id,
			       cli_kind_name(d[i].kind), d[i].attempts, d[i].last_err,
			       mlen ? cli_text_escape(msg, sizeof(msg), d[i].last_msg, mlen) : "-");
			if (d[i].kind == TQ_KIND_INT) {
				printf("%llu\n", (unsigned long long)d[i].value);
			} else {
				/* The bytes as they are, as taskq take prints them. */
				fwrite(p, 1, plen, stdout);
				putchar('\n');
			}
		}
	}
	if (oom) {
		cJSON_Delete(arr);
		free(d);
		free(data);
		cli_err("out of memory");
		return EX_FAIL;
	}
	if (json)
		cli_print_json(arr);
	free(d);
	free(data);
	if (n < 0) {
		cli_err("%s", tq_strerror(n));
		return cli_exit_for(n);
	}
	return 0;
}

enum { O_JSON = 'j', O_ALL = 'a', O_FOLLOW = 'f' };

static const struct cli_opt dead_opts[] = {
	{O_ALL, true, "all", NULL, "kick or purge every dead task"},
	{O_JSON, true, "json", NULL, "list: an array of objects; kick, purge: the count"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command dead_cmd = {
	.name = "dead",
	.usage = "dead NAME [list | kick ID|--all | purge ID|--all] [--json] [--pretty]",
	.about = "list (the default): dead tasks, oldest first: id, kind, attempts, last error,\n"
		 "message, payload (its bytes as they are, as taskq take prints them; with --json\n"
		 "as in taskq take --json: value, or data, nested for a JSON task, and\n"
		 "data_base64 when it is not valid UTF-8).\n"
		 "kick: back to ready with attempts reset. purge: delete. ID: one dead task;\n"
		 "--all: every one.\n"
		 "The message is the whole failure reason (up to 1023 bytes; for tasks beyond\n"
		 "the dead-letter area's capacity, its first 47). When the area is full (taskq\n"
		 "stats says so), dead tasks take room from the queue's capacity: purge returns\n"
		 "it at once; kick moves tasks back to ready only as far as the capacity has\n"
		 "room (exit status 6 when it has none for the task named).\n",
	.opts = dead_opts,
};

/* A refused dead command line: why, then the usage. */
static int dead_usage(const char *fmt, const char *arg)
{
	char q[100];

	if (fmt)
		cli_err(fmt, arg ? cli_text_escape(q, sizeof(q), arg, strlen(arg)) : "");
	return cli_command_usage(&dead_cmd);
}

int cmd_dead(int argc, char **argv)
{
	struct cli_parser p;
	bool json = false, all = false;
	int c;

	cli_parser_init(&p, &dead_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (c == CLI_OPT_HELP)
			return 0;
		if (c == O_JSON)
			json = true;
		else if (c == O_ALL)
			all = true;
		else
			return c == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(&dead_cmd);
	}
	int left = argc - optind;
	if (left < 1)
		return dead_usage(NULL, NULL);
	const char *name = argv[optind], *verb = left > 1 ? argv[optind + 1] : "list";
	uint64_t id = TQ_ALL;
	bool list = !strcmp(verb, "list");
	if (!list && strcmp(verb, "kick") && strcmp(verb, "purge"))
		return dead_usage("unknown action '%s': list, kick or purge", verb);
	if (list && left > 2)
		return dead_usage("list takes no argument, not '%s'", argv[optind + 2]);
	if (!list) {
		if (left > 3)
			return dead_usage("one task ID at most, not '%s' too", argv[optind + 3]);
		if (all && left == 3)
			return dead_usage("a task ID or --all, not both (%s)", verb);
		if (!all && left == 2)
			return dead_usage("%s of what: a task ID or --all", verb);
		if (left == 3 && !cli_value_u64("task id", argv[optind + 2], 1, UINT64_MAX - 1, &id))
			return EX_USAGE_;
	}
	tq_queue *q;
	int rc = cli_open(name, &q);
	if (rc)
		return rc;
	if (list) {
		rc = dead_list(q, json);
		tq_close(q);
		return rc;
	}
	int n = !strcmp(verb, "kick") ? tq_dead_kick(q, id) : tq_dead_purge(q, id);
	tq_close(q);
	if (n < 0) {
		if (n == TQ_ENOTFOUND)
			cli_err("no dead task with id %llu", (unsigned long long)id);
		else
			cli_err("%s%s", tq_strerror(n), n == TQ_EAGAIN ? ": no room in the capacity to kick it (purge, or finish tasks first)" : "");
		return n == TQ_ENOTFOUND ? EX_FAIL : cli_exit_for(n);
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, !strcmp(verb, "kick") ? "kicked" : "purged", n);
		cli_print_json(o);
	} else {
		printf("%s %d dead task%s\n", !strcmp(verb, "kick") ? "kicked" : "purged", n, n == 1 ? "" : "s");
	}
	return 0;
}

/* ----------------------------------------------------------------- log */

char *cli_event_detail(char *buf, size_t size, const tq_event_info *e)
{
	unsigned long long a = (unsigned long long)e->a, b = (unsigned long long)e->b;

	switch (e->type) {
	case TQ_EV_CREATED: snprintf(buf, size, "capacity=%llu max_payload=%llu", a, b); break;
	case TQ_EV_PROC_DIED: snprintf(buf, size, "dead_pid=%llu tasks_returned=%llu", a, b); break;
	case TQ_EV_DEAD: {
		char m[4 * sizeof(e->msg) + 4];
		snprintf(buf, size, "id=%llu attempts=%llu msg=\"%s\"", a, b,
			 cli_text_escape(m, sizeof(m), e->msg, strnlen(e->msg, sizeof(e->msg))));
		break;
	}
	case TQ_EV_DEAD_FULL:
		snprintf(buf, size, "id=%llu dead_capacity=%llu note=\"dead-letter area full: dead tasks now take room from the capacity\"", a, b);
		break;
	case TQ_EV_EXPIRED: snprintf(buf, size, "leases=%llu", a); break;
	case TQ_EV_STATE: snprintf(buf, size, "state=%s", cli_state_name((int)e->a)); break;
	case TQ_EV_KICKED:
	case TQ_EV_PURGED:
		if (b)
			snprintf(buf, size, "tasks=%llu id=%llu", a, b);
		else
			snprintf(buf, size, "tasks=%llu id=all", a);
		break;
	default: snprintf(buf, size, "a=%llu b=%llu", a, b); break;
	}
	return buf;
}

char *cli_event_time(const tq_event_info *e, char *when, size_t size)
{
	struct timespec real;
	clock_gettime(CLOCK_REALTIME, &real);
	uint64_t now_real = (uint64_t)real.tv_sec * CLI_SEC + (uint64_t)real.tv_nsec, mono = tq_now_ns();
	uint64_t at = now_real - (mono > e->t_ns ? mono - e->t_ns : 0);
	time_t secs = (time_t)(at / CLI_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(when, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03lluZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned long long)(at % CLI_SEC / 1000000));
	return when;
}

cJSON *cli_event_json(const tq_event_info *e)
{
	char when[64];
	cJSON *o = cJSON_CreateObject();
	cli_event_time(e, when, sizeof(when));
	cli_json_add_u64(o, "seq", e->seq);
	cJSON_AddStringToObject(o, "time", when);
	cJSON_AddNumberToObject(o, "pid", e->pid);
	cJSON_AddStringToObject(o, "event", tq_event_name(e->type));
	cli_json_add_u64(o, "a", e->a);
	cli_json_add_u64(o, "b", e->b);
	/* a and b by name, as the text form labels them. */
	static const struct {
		int type;
		const char *a, *b;
	} names[] = {
		{TQ_EV_CREATED, "capacity", "max_payload"},
		{TQ_EV_PROC_DIED, "dead_pid", "tasks_returned"},
		{TQ_EV_DEAD, "id", "attempts"},
		{TQ_EV_DEAD_FULL, "id", "dead_capacity"},
		{TQ_EV_EXPIRED, "leases", NULL},
		{TQ_EV_KICKED, "tasks", "id"},
		{TQ_EV_PURGED, "tasks", "id"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == e->type) {
			cli_json_add_u64(o, names[i].a, e->a);
			if (names[i].b)
				cli_json_add_u64(o, names[i].b, e->b);
		}
	if (e->type == TQ_EV_STATE)
		cJSON_AddStringToObject(o, "state", cli_state_name((int)e->a));
	/* From shared memory: bounded, and escaped to valid UTF-8. */
	cli_json_add_bytes(o, "message", e->msg, strnlen(e->msg, sizeof(e->msg)));
	return o;
}

/* One event: a line of labelled fields, or with json one JSON document. */
static void event_line(const tq_event_info *e, bool json)
{
	char when[64];
	cli_event_time(e, when, sizeof(when));
	if (json) {
		cli_print_json(cli_event_json(e));
		return;
	}
	char detail[4 * TQ_EVENT_MSG_MAX + 128];
	printf("time=%s seq=%llu pid=%d event=%s %s\n", when, (unsigned long long)e->seq, e->pid,
	       tq_event_name(e->type), cli_event_detail(detail, sizeof(detail), e));
}

static volatile sig_atomic_t log_stop;
static void on_log_signal(int sig)
{
	(void)sig;
	log_stop = 1;
}

static const struct cli_opt log_opts[] = {
	{O_FOLLOW, true, "follow", NULL, "keep printing new events until interrupted"},
	{O_JSON, true, "json", NULL, "one JSON object a line (NDJSON): seq, time, pid,\n"
				       "event, a, b, message, and a and b again under\n"
				       "their names (id, attempts, capacity, state...)"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command log_cmd = {
	.name = "log",
	.args = "NAME",
	.about = "The queue's recent events, oldest first, from a fixed ring of the last 256\n"
		 "kept in shared memory: processes found dead and recovered, tasks dead-lettered\n"
		 "(the first 127 bytes of the reason), the dead-letter area becoming full,\n"
		 "leases expired, run-state changes. Text: one line an event, every\n"
		 "field labelled (time=... seq=... pid=... event=task_dead id=12 attempts=5\n"
		 "msg=\"...\").\n",
	.opts = log_opts,
};

int cmd_log(int argc, char **argv)
{
	struct cli_parser p;
	bool json = false, follow = false;
	int c;

	cli_parser_init(&p, &log_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (c == CLI_OPT_HELP)
			return 0;
		if (c == O_JSON)
			json = true;
		else if (c == O_FOLLOW)
			follow = true;
		else
			return c == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(&log_cmd);
	}
	if (optind != argc - 1)
		return cli_command_usage(&log_cmd);
	tq_queue *q;
	int rc = cli_open_observer(argv[optind], &q);
	if (rc)
		return rc;
	signal(SIGINT, on_log_signal);
	signal(SIGTERM, on_log_signal);
	tq_event_info ev[64];
	uint64_t after = 0;
	do {
		int n;
		while ((n = tq_events(q, after, ev, 64)) > 0) {
			for (int i = 0; i < n; i++)
				event_line(&ev[i], json);
			after = ev[n - 1].seq;
		}
		if (fflush(stdout) != 0 || ferror(stdout))
			break;
		if (follow && !log_stop)
			usleep(200000);
	} while (follow && !log_stop);
	tq_close(q);
	return 0;
}

/* ------------------------------------------------------------- recover */

static const struct cli_opt recover_opts[] = {
	{O_JSON, true, "json", NULL, "print recoveries_total, ready, leased as JSON"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command recover_cmd = {
	.name = "recover",
	.args = "NAME",
	.about = "Detects dead processes and returns their tasks, expires overdue leases and\n"
		 "moves due retries to ready, now (every attached process also does this by\n"
		 "itself every 100 ms).\n",
	.opts = recover_opts,
};

int cmd_recover(int argc, char **argv)
{
	bool json = false;
	tq_queue *q;
	int rc;

	if ((rc = cli_opts_json_only(&recover_cmd, O_JSON, argc, argv, &json)) >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_command_usage(&recover_cmd);
	if ((rc = cli_open(argv[optind], &q)))
		return rc;
	tq_stats before;
	tq_stats_get(q, &before); /* opening already recovered; count those too */
	int n = tq_recover(q);
	tq_stats after;
	tq_stats_get(q, &after);
	tq_close(q);
	if (n < 0) {
		cli_err("%s", tq_strerror(n));
		return cli_exit_for(n);
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "recoveries_total", after.recoveries);
		cJSON_AddNumberToObject(o, "ready", after.ready);
		cJSON_AddNumberToObject(o, "leased", after.leased);
		cli_print_json(o);
	} else {
		printf("recovered; %u dead processes recovered since creation; %u ready, %u in progress\n",
		       after.recoveries, after.ready, after.leased);
	}
	return 0;
}

