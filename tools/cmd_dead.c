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
	return cli_json_add_payload(o, data, len);
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
			cJSON *o = cJSON_CreateObject();
			bool ok = o && cli_json_add_u64(o, "id", d[i].id) &&
				  cJSON_AddStringToObject(o, "kind", cli_kind_name(d[i].kind)) &&
				  cJSON_AddNumberToObject(o, "attempts", d[i].attempts) &&
				  cJSON_AddNumberToObject(o, "last_error", d[i].last_err) &&
				  cli_json_add_bytes(o, "last_message", d[i].last_msg, mlen) &&
				  cJSON_AddNumberToObject(o, "dead_seconds", (double)(now - d[i].died_ns) / 1e9) &&
				  print_payload_json(o, &d[i], p, plen);
			if (!ok || !cJSON_AddItemToArray(arr, o)) {
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

int cmd_dead(int argc, char **argv)
{
	static const char *usage = "dead NAME [list | kick ID|--all | purge ID|--all] [--json]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {"all", no_argument, 0, 'a'}, {0, 0, 0, 0}};
	bool json = false, all = false;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hja", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: taskq %s\n\nlist (the default): dead tasks, oldest first: id, kind, attempts,\n"
			       "last error, message, payload (its bytes as they are, as taskq take prints\n"
			       "them; with --json as in taskq take --json: data, and data_base64 when it is not\n"
			       "valid UTF-8). kick: back to ready with attempts reset. purge: delete. --all\n"
			       "applies kick/purge to every dead task. The message is the whole failure\n"
			       "reason (up to 1023 bytes; for tasks beyond the dead-letter area's capacity,\n"
			       "its first 47). Kick and purge return room at once: when the area is full\n"
			       "(taskq stats says so), dead tasks take room from the queue's capacity.\n", usage);
			return 0;
		}
		if (c == 'j') json = true;
		else if (c == 'a') all = true;
		else return cli_usage_error(usage);
	}
	int left = argc - optind;
	if (left < 1 || left > 3)
		return cli_usage_error(usage);
	const char *name = argv[optind], *verb = left > 1 ? argv[optind + 1] : "list";
	uint64_t id = TQ_ALL;
	bool list = !strcmp(verb, "list");
	if (list ? left != 2 && left != 1 : (strcmp(verb, "kick") && strcmp(verb, "purge")))
		return cli_usage_error(usage);
	if (!list) {
		if (all == (left == 3))
			return cli_usage_error(usage);
		if (left == 3 && !cli_parse_u64(argv[optind + 2], 1, UINT64_MAX - 1, &id)) {
			cli_err("invalid task id '%s'", argv[optind + 2]);
			return EX_USAGE_;
		}
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
			cli_err("%s", tq_strerror(n));
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

static void event_line(const tq_event_info *e, cJSON *arr)
{
	struct timespec real;
	clock_gettime(CLOCK_REALTIME, &real);
	uint64_t now_real = (uint64_t)real.tv_sec * CLI_SEC + (uint64_t)real.tv_nsec, mono = tq_now_ns();
	uint64_t at = now_real - (mono > e->t_ns ? mono - e->t_ns : 0);
	time_t secs = (time_t)(at / CLI_SEC);
	struct tm tm;
	char when[64];
	gmtime_r(&secs, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03lluZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned long long)(at % CLI_SEC / 1000000));
	char detail[4 * TQ_EVENT_MSG_MAX + 128];
	switch (e->type) {
	case TQ_EV_CREATED:
		snprintf(detail, sizeof(detail), "capacity=%llu max_payload=%llu", (unsigned long long)e->a,
			 (unsigned long long)e->b);
		break;
	case TQ_EV_PROC_DIED:
		snprintf(detail, sizeof(detail), "dead_pid=%llu tasks_returned=%llu", (unsigned long long)e->a,
			 (unsigned long long)e->b);
		break;
	case TQ_EV_DEAD: {
		char m[4 * sizeof(e->msg) + 4];
		snprintf(detail, sizeof(detail), "task=%llu attempts=%llu error=\"%s\"", (unsigned long long)e->a,
			 (unsigned long long)e->b, cli_text_escape(m, sizeof(m), e->msg, strnlen(e->msg, sizeof(e->msg))));
		break;
	}
	case TQ_EV_DEAD_FULL:
		snprintf(detail, sizeof(detail),
			 "task=%llu dead_capacity=%llu dead-letter area full: dead tasks now take room from the capacity",
			 (unsigned long long)e->a, (unsigned long long)e->b);
		break;
	case TQ_EV_STATE:
		snprintf(detail, sizeof(detail), "state=%s", cli_state_name((int)e->a));
		break;
	default:
		snprintf(detail, sizeof(detail), "count=%llu", (unsigned long long)e->a);
		break;
	}
	if (arr) {
		cJSON *o = cJSON_CreateObject();
		cli_json_add_u64(o, "seq", e->seq);
		cJSON_AddStringToObject(o, "time", when);
		cJSON_AddNumberToObject(o, "pid", e->pid);
		cJSON_AddStringToObject(o, "event", tq_event_name(e->type));
		cli_json_add_u64(o, "a", e->a);
		cli_json_add_u64(o, "b", e->b);
		/* From shared memory: bounded, and escaped to valid UTF-8. */
		cli_json_add_bytes(o, "message", e->msg, strnlen(e->msg, sizeof(e->msg)));
		cJSON_AddItemToArray(arr, o);
		return;
	}
	printf("time=%s seq=%llu pid=%d event=%s %s\n", when, (unsigned long long)e->seq, e->pid,
	       tq_event_name(e->type), detail);
}

static volatile sig_atomic_t log_stop;
static void on_log_signal(int sig)
{
	(void)sig;
	log_stop = 1;
}

int cmd_log(int argc, char **argv)
{
	static const char *usage = "log NAME [--follow] [--json]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {"follow", no_argument, 0, 'f'}, {0, 0, 0, 0}};
	bool json = false, follow = false;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "hjf", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: taskq %s\n\nThe queue's recent events, oldest first, from a fixed ring of the last\n"
			       "256 kept in shared memory: processes found dead and recovered, tasks\n"
			       "dead-lettered (the first 127 bytes of the reason), the dead-letter area\n"
			       "becoming full, leases expired, run-state changes. --follow keeps printing\n"
			       "new events until interrupted.\n", usage);
			return 0;
		}
		if (c == 'j') json = true;
		else if (c == 'f') follow = true;
		else return cli_usage_error(usage);
	}
	if (optind != argc - 1 || (json && follow))
		return cli_usage_error(usage);
	tq_queue *q;
	int rc = cli_open(argv[optind], &q);
	if (rc)
		return rc;
	signal(SIGINT, on_log_signal);
	signal(SIGTERM, on_log_signal);
	tq_event_info ev[64];
	uint64_t after = 0;
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	do {
		int n;
		while ((n = tq_events(q, after, ev, 64)) > 0) {
			for (int i = 0; i < n; i++)
				event_line(&ev[i], arr);
			after = ev[n - 1].seq;
		}
		fflush(stdout);
		if (follow && !log_stop)
			usleep(200000);
	} while (follow && !log_stop);
	tq_close(q);
	if (arr)
		cli_print_json(arr);
	return 0;
}

/* ------------------------------------------------------------- recover */

int cmd_recover(int argc, char **argv)
{
	static const char *usage = "recover NAME [--json]";
	bool json = false;
	tq_queue *q;
	int rc = cli_simple_opts(argc, argv, usage,
			     "\nDetects dead processes and returns their tasks, expires overdue leases and\n"
			     "moves due retries to ready, now (every attached process also does this by\n"
			     "itself every 100 ms).\n", &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_usage_error(usage);
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

