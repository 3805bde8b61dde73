/*
 * cmd_admin.c - taskq create, info, stats, dead, recover, stop, pause,
 * resume, ls, destroy, clean.
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

#define SEC 1000000000ull

static int usage_error(const char *usage)
{
	fprintf(stderr, "usage: taskq %s\n", usage);
	return EX_USAGE_;
}

/* Parses options that are only --help and --json; returns -1 to go on. */
static int simple_opts(int argc, char **argv, const char *usage, const char *help, bool *json)
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
			return usage_error(usage);
	}
	return -1;
}

/* -------------------------------------------------------------- create */

int cmd_create(int argc, char **argv)
{
	static const char *usage = "create NAME [--capacity N] [--max-payload BYTES] [--mode OCTAL]\n"
				   "       [--max-attempts N] [--dead-capacity N] [--lease SEC]\n"
				   "       [--backoff SEC] [--backoff-max SEC] [--exist-ok] [--json]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'},
		{"capacity", required_argument, 0, 'c'}, {"max-payload", required_argument, 0, 'p'},
		{"mode", required_argument, 0, 'm'}, {"max-attempts", required_argument, 0, 'a'},
		{"dead-capacity", required_argument, 0, 'd'}, {"lease", required_argument, 0, 'l'},
		{"backoff", required_argument, 0, 'b'}, {"backoff-max", required_argument, 0, 'B'},
		{"exist-ok", no_argument, 0, 'e'}, {0, 0, 0, 0}};
	tq_config cfg;
	bool json = false, exist_ok = false, backoff_set = false, backoff_max_set = false;
	uint64_t v;
	int c;

	tq_config_init(&cfg);
	optind = 0;
	while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
		const char *bad = NULL;
		switch (c) {
		case 'h':
			printf("usage: taskq %s\n\n"
			       "Creates queue NAME. Defaults: capacity 10000 tasks, max-payload 4096 bytes,\n"
			       "mode 600, max-attempts 5, dead-capacity capacity/10, lease 30 s,\n"
			       "backoff 0.1 s doubling per attempt up to backoff-max 60 s.\n"
			       "--backoff above --backoff-max is refused (exit 2). Given alone, --backoff\n"
			       "above the default backoff-max raises backoff-max to it, and --backoff-max\n"
			       "below the default backoff lowers backoff to it.\n"
			       "--exist-ok: succeed if the queue exists (its configuration is kept).\n", usage);
			return 0;
		case 'j': json = true; break;
		case 'e': exist_ok = true; break;
		case 'c':
			if (cli_parse_u64(optarg, 1, TQ_MAX_CAPACITY, &v)) cfg.capacity = (uint32_t)v; else bad = "--capacity";
			break;
		case 'p':
			if (cli_parse_u64(optarg, 0, TQ_MAX_PAYLOAD, &v)) cfg.max_payload = (uint32_t)v; else bad = "--max-payload";
			break;
		case 'm': {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			if (*optarg && !*end && m <= 0777) cfg.mode = (mode_t)m; else bad = "--mode";
			break;
		}
		case 'a':
			if (cli_parse_u64(optarg, 1, 65535, &v)) cfg.max_attempts = (uint32_t)v; else bad = "--max-attempts";
			break;
		case 'd':
			if (cli_parse_u64(optarg, 1, TQ_MAX_CAPACITY, &v)) cfg.dead_capacity = (uint32_t)v; else bad = "--dead-capacity";
			break;
		case 'l':
			if (!cli_parse_seconds(optarg, 365 * 86400.0, &cfg.lease_ns) || cfg.lease_ns < 1000000) bad = "--lease";
			break;
		case 'b':
			if (!cli_parse_seconds(optarg, 86400.0, &cfg.backoff_base_ns)) bad = "--backoff";
			backoff_set = true;
			break;
		case 'B':
			if (!cli_parse_seconds(optarg, 365 * 86400.0, &cfg.backoff_max_ns)) bad = "--backoff-max";
			backoff_max_set = true;
			break;
		default:
			return usage_error(usage);
		}
		if (bad) {
			cli_err("invalid value '%s' for %s", optarg, bad);
			return EX_USAGE_;
		}
	}
	if (optind != argc - 1)
		return usage_error(usage);
	/* Both given: the user's numbers contradict each other; say so rather
	 * than pick one. One given: the other one's default gives way. */
	if (cfg.backoff_max_ns < cfg.backoff_base_ns) {
		if (backoff_set && backoff_max_set) {
			cli_err("--backoff %.9g s exceeds --backoff-max %.9g s", (double)cfg.backoff_base_ns / 1e9,
				(double)cfg.backoff_max_ns / 1e9);
			return EX_USAGE_;
		}
		if (backoff_set)
			cfg.backoff_max_ns = cfg.backoff_base_ns;
		else
			cfg.backoff_base_ns = cfg.backoff_max_ns;
	}
	if (cfg.dead_capacity > cfg.capacity) {
		cli_err("--dead-capacity %u exceeds --capacity %u", cfg.dead_capacity, cfg.capacity);
		return EX_USAGE_;
	}
	const char *name = argv[optind];
	tq_queue *q;
	int rc = tq_create(name, &cfg, &q);
	bool existed = false;
	if (rc == TQ_EEXIST && exist_ok) {
		existed = true;
		rc = tq_open(name, &q);
	}
	if (rc) {
		cli_err("%s: %s", name, tq_strerror(rc));
		return rc == TQ_EEXIST ? EX_FAIL : cli_exit_for(rc);
	}
	tq_config_get(q, &cfg);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddBoolToObject(o, "created", !existed);
		cJSON_AddNumberToObject(o, "capacity", cfg.capacity);
		cJSON_AddNumberToObject(o, "max_payload", cfg.max_payload);
		cli_print_json(o);
	} else {
		printf("%s %s: capacity %u tasks, max payload %u bytes\n", existed ? "exists" : "created",
		       name, cfg.capacity, cfg.max_payload);
	}
	tq_close(q);
	return 0;
}

/* ------------------------------------------------------- info and stats */

cJSON *cli_latency_json(const tq_latency *l)
{
	cJSON *o = cJSON_CreateObject();

	cli_json_add_u64(o, "count", l->count);
	cJSON_AddNumberToObject(o, "mean", (double)l->mean_ns / 1e9);
	cJSON_AddNumberToObject(o, "p50", (double)l->p50_ns / 1e9);
	cJSON_AddNumberToObject(o, "p90", (double)l->p90_ns / 1e9);
	cJSON_AddNumberToObject(o, "p99", (double)l->p99_ns / 1e9);
	cJSON_AddNumberToObject(o, "max", l->max_ns == UINT64_MAX ? -1 : (double)l->max_ns / 1e9);
	return o;
}

cJSON *cli_stats_json(tq_queue *q, const char *name, bool with_config, bool with_procs)
{
	tq_stats s;
	tq_config cfg;
	uint64_t now = tq_now_ns();
	cJSON *o = cJSON_CreateObject();

	tq_stats_get(q, &s);
	tq_config_get(q, &cfg);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "state", cli_state_name(s.run_state));
	cJSON_AddNumberToObject(o, "capacity", s.capacity);
	cJSON_AddNumberToObject(o, "ready", s.ready);
	cJSON_AddNumberToObject(o, "leased", s.leased);
	cJSON_AddNumberToObject(o, "delayed", s.delayed);
	cJSON_AddNumberToObject(o, "dead", s.dead);
	cJSON_AddNumberToObject(o, "free", s.free_slots);
	cJSON_AddNumberToObject(o, "processes", s.procs - 1); /* not this command */
	cJSON_AddNumberToObject(o, "recoveries", s.recoveries);
	cJSON_AddNumberToObject(o, "oldest_ready_age_seconds",
				s.oldest_ready_ns ? (double)(now - s.oldest_ready_ns) / 1e9 : 0);
	cJSON_AddItemToObject(o, "totals", cli_counters_json(&s.total));
	cJSON *rates = cJSON_AddObjectToObject(o, "rates");
	static const char *win[3] = {"1s", "10s", "60s"};
	cJSON *rp = cJSON_AddObjectToObject(rates, "pushed_per_second");
	cJSON *rd = cJSON_AddObjectToObject(rates, "done_per_second");
	for (int w = 0; w < 3; w++) {
		cJSON_AddNumberToObject(rp, win[w], s.pushed_per_s[w]);
		cJSON_AddNumberToObject(rd, win[w], s.done_per_s[w]);
	}
	cJSON *lat = cJSON_AddObjectToObject(o, "latency_seconds");
	cJSON_AddItemToObject(lat, "queue_wait", cli_latency_json(&s.wait));
	cJSON_AddItemToObject(lat, "processing", cli_latency_json(&s.processing));
	if (with_config) {
		cJSON *c = cJSON_AddObjectToObject(o, "config");
		cJSON_AddNumberToObject(c, "capacity", cfg.capacity);
		cJSON_AddNumberToObject(c, "max_payload", cfg.max_payload);
		char mode[8];
		snprintf(mode, sizeof(mode), "%03o", (unsigned)cfg.mode);
		cJSON_AddStringToObject(c, "mode", mode);
		cJSON_AddNumberToObject(c, "max_attempts", cfg.max_attempts);
		cJSON_AddNumberToObject(c, "dead_capacity", cfg.dead_capacity);
		cJSON_AddNumberToObject(c, "lease_seconds", (double)cfg.lease_ns / 1e9);
		cJSON_AddNumberToObject(c, "backoff_seconds", (double)cfg.backoff_base_ns / 1e9);
		cJSON_AddNumberToObject(c, "backoff_max_seconds", (double)cfg.backoff_max_ns / 1e9);
	}
	if (with_procs) {
		tq_proc_info *p = calloc(TQ_MAX_PROCS, sizeof(*p));
		int n = p ? tq_procs(q, p, TQ_MAX_PROCS) : 0;
		cJSON *arr = cJSON_AddArrayToObject(o, "process_list");
		for (int i = 0; i < n; i++) {
			if (p[i].pid == (int32_t)getpid())
				continue;
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "pid", p[i].pid);
			cJSON_AddNumberToObject(e, "slot", p[i].slot);
			cJSON_AddNumberToObject(e, "attached_seconds", (double)(now - p[i].attached_ns) / 1e9);
			cJSON_AddNumberToObject(e, "last_seen_seconds_ago", (double)(now - p[i].last_seen_ns) / 1e9);
			cJSON_AddNumberToObject(e, "in_progress", p[i].leased);
			cJSON_AddNumberToObject(e, "done_per_second", p[i].done_per_s);
			cJSON_AddStringToObject(e, "state", p[i].waiting == 1 ? "waiting for tasks"
							    : p[i].waiting == 2 ? "waiting for room" : "busy");
			cJSON_AddItemToObject(e, "counters", cli_counters_json(&p[i].counters));
			cJSON_AddItemToArray(arr, e);
		}
		free(p);
	}
	return o;
}

/* A 64-bit counter of a cli_stats_json object (exact, unlike NUM). */
static unsigned long long json_u64(const cJSON *obj, const char *key)
{
	uint64_t v = 0;

	cli_json_get_u64(cJSON_GetObjectItem(obj, key), &v);
	return (unsigned long long)v;
}

static void print_stats_text(cJSON *o)
{
	cJSON *t = cJSON_GetObjectItem(o, "totals");
#define NUM(obj, k) cJSON_GetNumberValue(cJSON_GetObjectItem((obj), (k)))
#define U64(obj, k) json_u64((obj), (k))
	printf("queue %s: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")));
	printf("  tasks:   %.0f ready, %.0f in progress, %.0f delayed (retry), %.0f dead; %.0f free of %.0f\n",
	       NUM(o, "ready"), NUM(o, "leased"), NUM(o, "delayed"), NUM(o, "dead"), NUM(o, "free"),
	       NUM(o, "capacity"));
	printf("  totals:  %llu pushed, %llu taken, %llu acked, %llu failed, %llu retried, %llu dead\n",
	       U64(t, "pushed"), U64(t, "taken"), U64(t, "acked"), U64(t, "failed"), U64(t, "retried"),
	       U64(t, "dead"));
	printf("           %llu leases expired, %llu returned from dead processes, %llu dead dropped, %llu lost acks\n",
	       U64(t, "expired"), U64(t, "recovered"), U64(t, "dead_dropped"), U64(t, "lost"));
	cJSON *rd = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "rates"), "done_per_second");
	printf("  done/s:  %.0f (1 s), %.0f (10 s), %.0f (60 s)\n", NUM(rd, "1s"), NUM(rd, "10s"), NUM(rd, "60s"));
	cJSON *lat = cJSON_GetObjectItem(o, "latency_seconds");
	const char *lname[2] = {"queue_wait", "processing"};
	for (int i = 0; i < 2; i++) {
		cJSON *l = cJSON_GetObjectItem(lat, lname[i]);
		printf("  %-11s p50 %.6f s, p90 %.6f s, p99 %.6f s, max %.6f s, mean %.6f s (%llu tasks)\n",
		       lname[i], NUM(l, "p50"), NUM(l, "p90"), NUM(l, "p99"), NUM(l, "max"), NUM(l, "mean"), U64(l, "count"));
	}
	printf("  oldest ready task: %.3f s; processes attached: %.0f; dead processes recovered: %.0f\n",
	       NUM(o, "oldest_ready_age_seconds"), NUM(o, "processes"), NUM(o, "recoveries"));
	cJSON *c = cJSON_GetObjectItem(o, "config");
	if (c)
		printf("  config:  capacity %.0f, max payload %.0f B, mode %s, max attempts %.0f, dead capacity %.0f,\n"
		       "           lease %.3f s, backoff %.3f s .. %.3f s\n",
		       NUM(c, "capacity"), NUM(c, "max_payload"), cJSON_GetStringValue(cJSON_GetObjectItem(c, "mode")),
		       NUM(c, "max_attempts"), NUM(c, "dead_capacity"), NUM(c, "lease_seconds"),
		       NUM(c, "backoff_seconds"), NUM(c, "backoff_max_seconds"));
	cJSON *pl = cJSON_GetObjectItem(o, "process_list");
	cJSON *e;
	if (pl && cJSON_GetArraySize(pl) > 0) {
		printf("  %8s %10s %10s %10s %10s %8s %8s  %s\n", "pid", "pushed", "taken", "acked", "failed",
		       "holding", "seen", "state");
		cJSON_ArrayForEach(e, pl) {
			cJSON *k = cJSON_GetObjectItem(e, "counters");
			printf("  %8.0f %10llu %10llu %10llu %10llu %8.0f %7.1fs  %s\n", NUM(e, "pid"), U64(k, "pushed"),
			       U64(k, "taken"), U64(k, "acked"), U64(k, "failed"), NUM(e, "in_progress"),
			       NUM(e, "last_seen_seconds_ago"), cJSON_GetStringValue(cJSON_GetObjectItem(e, "state")));
		}
	}
#undef NUM
#undef U64
}

static int show(int argc, char **argv, bool with_config, const char *usage, const char *help)
{
	bool json = false;
	tq_queue *q;
	int rc = simple_opts(argc, argv, usage, help, &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return usage_error(usage);
	if ((rc = cli_open(argv[optind], &q)))
		return rc;
	cJSON *o = cli_stats_json(q, argv[optind], with_config, true);
	tq_close(q);
	if (json)
		cli_print_json(o);
	else {
		print_stats_text(o);
		cJSON_Delete(o);
	}
	return 0;
}

int cmd_info(int argc, char **argv)
{
	return show(argc, argv, true, "info NAME [--json]",
		    "\nThe queue's configuration, run state, task counts and totals.\n");
}

int cmd_stats(int argc, char **argv)
{
	return show(argc, argv, false, "stats NAME [--json]",
		    "\nA snapshot: tasks by state, totals since creation, attached processes.\n"
		    "--nats URL --stream S [NAME]: every machine's bridges of stream S instead, a\n"
		    "row each and the totals (taskq bridge stats; docs/cluster.md).\n");
}

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
	tq_config_get(q, &cfg);
	size_t max = cfg.dead_capacity + 64;
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
			       "applies kick/purge to every dead task.\n", usage);
			return 0;
		}
		if (c == 'j') json = true;
		else if (c == 'a') all = true;
		else return usage_error(usage);
	}
	int left = argc - optind;
	if (left < 1 || left > 3)
		return usage_error(usage);
	const char *name = argv[optind], *verb = left > 1 ? argv[optind + 1] : "list";
	uint64_t id = TQ_ALL;
	bool list = !strcmp(verb, "list");
	if (list ? left != 2 && left != 1 : (strcmp(verb, "kick") && strcmp(verb, "purge")))
		return usage_error(usage);
	if (!list) {
		if (all == (left == 3))
			return usage_error(usage);
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
	uint64_t now_real = (uint64_t)real.tv_sec * SEC + (uint64_t)real.tv_nsec, mono = tq_now_ns();
	uint64_t at = now_real - (mono > e->t_ns ? mono - e->t_ns : 0);
	time_t secs = (time_t)(at / SEC);
	struct tm tm;
	char when[64];
	gmtime_r(&secs, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03lluZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned long long)(at % SEC / 1000000));
	char detail[256];
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
	case TQ_EV_DEAD_DROPPED:
		snprintf(detail, sizeof(detail), "task=%llu", (unsigned long long)e->a);
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
			       "dead-lettered or dropped, leases expired, run-state changes. --follow keeps\n"
			       "printing new events until interrupted.\n", usage);
			return 0;
		}
		if (c == 'j') json = true;
		else if (c == 'f') follow = true;
		else return usage_error(usage);
	}
	if (optind != argc - 1 || (json && follow))
		return usage_error(usage);
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
	int rc = simple_opts(argc, argv, usage,
			     "\nDetects dead processes and returns their tasks, expires overdue leases and\n"
			     "moves due retries to ready, now (every attached process also does this by\n"
			     "itself every 100 ms).\n", &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return usage_error(usage);
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

/* ------------------------------------------------------ run state verbs */

static int set_state(int argc, char **argv, int state, const char *usage, const char *help)
{
	bool json = false;
	tq_queue *q;
	int rc = simple_opts(argc, argv, usage, help, &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return usage_error(usage);
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
		else return usage_error(usage);
	}
	if (optind != argc - 1)
		return usage_error(usage);
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

/* ------------------------------------------------------ ls, clean, destroy */

/*
 * ls, clean and destroy look at /dev/shm/taskq.* without trusting it. Each
 * entry is first looked at with fstatat, without opening it, so a FIFO or
 * a device named like a queue is never opened. Only a regular file owned
 * by the caller is opened (read-only, O_NOFOLLOW | O_NONBLOCK, to read the
 * first 8 bytes of its header, the magic that creation writes last), and
 * only such a file that looks finished is attached to with tq_open, which
 * maps it and writes into it. Another user's segment is never mapped: its
 * owner can change it at any time, or truncate it under the mapping. In
 * /dev/shm (sticky) nobody but its owner or root can replace a file
 * between these checks, so a file checked as the caller's stays the
 * caller's.
 */
#define SHM_DIR "/dev/shm"
#define SHM_PREFIX "taskq."
/* A segment whose creator died before it was whole (empty, or its magic
 * still zero) is removed by clean once unchanged for this long: a living
 * creator finishes in milliseconds. */
#define HALF_CREATED_AGE_S 60

enum seg_class {
	SEG_GONE,       /* not there (any more) */
	SEG_QUEUE,      /* the caller's, looks finished: opened (err, stats) */
	SEG_HALF,       /* the caller's, empty or its magic zero: half-created */
	SEG_OTHER_USER, /* another user's: not inspected */
	SEG_NOT_FILE,   /* not a regular file (type says what) */
	SEG_BAD_NAME,   /* taskq.X where X is not a queue name */
	SEG_ERROR,      /* could not be inspected (err) */
};

struct qinfo {
	char name[256];       /* after "taskq.": any bytes */
	char shown[4 * 256];  /* name, safe for a terminal */
	int cls;              /* enum seg_class */
	uid_t uid;
	const char *type;     /* SEG_NOT_FILE: "a FIFO", ... */
	bool old;             /* SEG_HALF: unchanged for HALF_CREATED_AGE_S */
	int err;              /* SEG_QUEUE, SEG_ERROR: 0 or the TQ_E* code */
	tq_stats s;
	int others;           /* attached processes besides this command */
	uint32_t held;        /* tasks in any state */
	tq_queue *q;          /* SEG_QUEUE, err 0, when asked: still attached */
};

static const char *file_type(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

static int errno_tq(int e)
{
	return e == EACCES || e == EPERM ? TQ_EPERM : e == ENOMEM ? TQ_ENOMEM : TQ_ESYS;
}

/* Classifies dir/taskq.NAME; with attach, keeps a queue's handle open. */
static void inspect(int dir, const char *name, bool attach, struct qinfo *qi)
{
	char file[sizeof(SHM_PREFIX) + sizeof(qi->name)];
	struct stat st, fst;
	uint64_t magic = 1;

	memset(qi, 0, sizeof(*qi));
	snprintf(qi->name, sizeof(qi->name), "%s", name);
	cli_text_escape(qi->shown, sizeof(qi->shown), qi->name, strlen(qi->name));
	snprintf(file, sizeof(file), SHM_PREFIX "%s", qi->name);
	if (fstatat(dir, file, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		qi->cls = errno == ENOENT ? SEG_GONE : SEG_ERROR;
		qi->err = errno_tq(errno);
		return;
	}
	qi->uid = st.st_uid;
	if (!S_ISREG(st.st_mode)) {
		qi->cls = SEG_NOT_FILE;
		qi->type = file_type(st.st_mode);
		return;
	}
	if (!cli_queue_name_ok(qi->name)) {
		qi->cls = SEG_BAD_NAME;
		return;
	}
	if (st.st_uid != geteuid()) {
		qi->cls = SEG_OTHER_USER;
		return;
	}
	int fd = openat(dir, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		qi->cls = errno == ENOENT ? SEG_GONE : errno == ELOOP ? SEG_NOT_FILE : SEG_ERROR;
		qi->type = file_type(S_IFLNK);
		qi->err = errno_tq(errno);
		return;
	}
	/* What was opened is what was checked: the same file, still the
	 * caller's regular file (else it changed hands or was replaced while
	 * looked at; it is left alone). */
	if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino || !S_ISREG(fst.st_mode) ||
	    fst.st_uid != geteuid()) {
		close(fd);
		qi->cls = SEG_GONE;
		return;
	}
	bool half = fst.st_size == 0 ||
		    (fst.st_size >= 8 && pread(fd, &magic, sizeof(magic), 0) == sizeof(magic) && magic == 0);
	close(fd);
	if (half) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		qi->cls = SEG_HALF;
		qi->old = now.tv_sec - fst.st_mtim.tv_sec >= HALF_CREATED_AGE_S;
		return;
	}
	tq_queue *q;
	qi->cls = SEG_QUEUE;
	qi->err = tq_open(qi->name, &q);
	if (qi->err)
		return;
	tq_stats_get(q, &qi->s);
	qi->others = (int)qi->s.procs - 1;
	qi->held = qi->s.ready + qi->s.leased + qi->s.delayed + qi->s.dead;
	if (attach)
		qi->q = q;
	else
		tq_close(q);
}

/* "user nobody (uid 65534)", or "uid 65534" if the user has no name. */
static const char *owner_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res && res->pw_name)
		snprintf(buf, size, "user %.64s (uid %u)", res->pw_name, (unsigned)uid);
	else
		snprintf(buf, size, "uid %u", (unsigned)uid);
	return buf;
}

/* Why an entry is not an inspected queue: a line of ls and clean. */
static const char *seg_note(const struct qinfo *qi, char *buf, size_t size)
{
	char who[120];

	switch (qi->cls) {
	case SEG_OTHER_USER:
		snprintf(buf, size, "owned by %s: not inspected", owner_name(qi->uid, who, sizeof(who)));
		break;
	case SEG_NOT_FILE:
		snprintf(buf, size, "not a taskq queue: %s", qi->type);
		break;
	case SEG_BAD_NAME:
		snprintf(buf, size, "not a taskq queue: not a valid queue name");
		break;
	case SEG_HALF:
		snprintf(buf, size, qi->old ? "half-created: its creator died (unchanged for %d s or more)"
					    : "half-created: being created, or its creator died less than %d s ago",
			 HALF_CREATED_AGE_S);
		break;
	default:
		snprintf(buf, size, "%s", tq_strerror(qi->err));
		break;
	}
	return buf;
}

/* Calls fn for every taskq.* entry of /dev/shm. */
static int for_each_queue(void (*fn)(const struct qinfo *, void *), void *arg, bool attach)
{
	DIR *d = opendir(SHM_DIR);
	struct dirent *e;

	if (!d) {
		cli_err("%s: cannot list: %s", SHM_DIR, strerror(errno));
		return EX_FAIL;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, SHM_PREFIX, strlen(SHM_PREFIX)) || !e->d_name[strlen(SHM_PREFIX)])
			continue;
		struct qinfo qi;
		inspect(dirfd(d), e->d_name + strlen(SHM_PREFIX), attach, &qi);
		if (qi.cls != SEG_GONE)
			fn(&qi, arg);
		tq_close(qi.q);
	}
	closedir(d);
	return 0;
}

static bool is_queue(const struct qinfo *qi)
{
	return qi->cls == SEG_QUEUE && qi->err == 0;
}

static bool is_stale(const struct qinfo *qi)
{
	return is_queue(qi) && qi->others == 0;
}

static void ls_one(const struct qinfo *qi, void *arg)
{
	cJSON *arr = arg;
	char note[300];

	if (arr) {
		cJSON *o = cJSON_CreateObject();
		cli_json_add_bytes(o, "name", qi->name, strlen(qi->name));
		if (qi->cls != SEG_ERROR)
			cJSON_AddNumberToObject(o, "owner_uid", qi->uid);
		/* Looked inside: only the caller's own regular files are. */
		cJSON_AddBoolToObject(o, "inspected", qi->cls == SEG_QUEUE || qi->cls == SEG_HALF);
		if (!is_queue(qi)) {
			cJSON_AddStringToObject(o, "error", seg_note(qi, note, sizeof(note)));
		} else {
			cJSON_AddStringToObject(o, "state", cli_state_name(qi->s.run_state));
			cJSON_AddNumberToObject(o, "capacity", qi->s.capacity);
			cJSON_AddNumberToObject(o, "ready", qi->s.ready);
			cJSON_AddNumberToObject(o, "leased", qi->s.leased);
			cJSON_AddNumberToObject(o, "delayed", qi->s.delayed);
			cJSON_AddNumberToObject(o, "dead", qi->s.dead);
			cJSON_AddNumberToObject(o, "processes", qi->others);
			cJSON_AddBoolToObject(o, "stale", is_stale(qi));
		}
		cJSON_AddItemToArray(arr, o);
		return;
	}
	if (!is_queue(qi))
		printf("%-24s %-9s %s\n", qi->shown, "-", seg_note(qi, note, sizeof(note)));
	else
		printf("%-24s %-9s %8u %8u %8u %8u %6d%s\n", qi->shown, cli_state_name(qi->s.run_state), qi->s.ready,
		       qi->s.leased, qi->s.delayed, qi->s.dead, qi->others,
		       is_stale(qi) ? "  stale: no live process attached" : "");
}

int cmd_ls(int argc, char **argv)
{
	static const char *usage = "ls [--json]";
	bool json = false;
	int rc = simple_opts(argc, argv, usage,
			     "\nThe queues on this machine: run state, tasks ready / in progress / delayed /\n"
			     "dead, attached processes. A queue is stale when no live process is attached\n"
			     "(opening it here also recovers the tasks of dead ones). Only the caller's own\n"
			     "queues are opened: another user's is listed as owned by that user, not\n"
			     "inspected; anything else named taskq.* (a FIFO, a directory, a link, a file\n"
			     "that is not a queue) is listed as not a taskq queue, and never opened in a\n"
			     "way that could wait. --json: an array of objects: name, owner_uid, inspected,\n"
			     "and either the queue's state and counts, or error (why not).\n", &json);

	if (rc >= 0)
		return rc;
	if (optind != argc)
		return usage_error(usage);
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	if (!json)
		printf("%-24s %-9s %8s %8s %8s %8s %6s\n", "NAME", "STATE", "READY", "LEASED", "DELAYED", "DEAD", "PROCS");
	rc = for_each_queue(ls_one, arr, false);
	if (json)
		cli_print_json(arr);
	return rc;
}

struct clean_ctx {
	bool force, dry_run, json;
	int removed, kept;
	cJSON *arr;
};

static void clean_one(const struct qinfo *qi, void *arg)
{
	struct clean_ctx *c = arg;
	const char *why = NULL;
	char note[300];

	if (qi->cls == SEG_HALF && qi->old)
		why = "half-created (its creator died)";
	else if (is_stale(qi) && qi->held == 0)
		why = "stale, empty";
	else if (is_stale(qi) && c->force)
		why = "stale, tasks discarded (--force)";
	if (!why) {
		c->kept++;
		if (is_stale(qi))
			fprintf(stderr, "taskq: clean: kept %s: stale but holds %u tasks (--force discards them)\n",
				qi->shown, qi->held);
		else if (qi->cls == SEG_OTHER_USER)
			fprintf(stderr, "taskq: clean: skipped %s: %s (only the caller's own queues are cleaned)\n",
				qi->shown, seg_note(qi, note, sizeof(note)));
		else if (!is_queue(qi))
			fprintf(stderr, "taskq: clean: kept %s: %s\n", qi->shown, seg_note(qi, note, sizeof(note)));
		return;
	}
	/* A queue is removed while still attached here: a process that opens
	 * it by name from now on finds nothing, rather than a queue about to go. */
	int rc = c->dry_run ? 0 : tq_destroy(qi->name);
	if (rc) {
		cli_err("%s: %s", qi->shown, tq_strerror(rc));
		c->kept++;
		return;
	}
	c->removed++;
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", qi->name); /* a valid queue name: plain ASCII */
		cJSON_AddStringToObject(o, "reason", why);
		cJSON_AddNumberToObject(o, "tasks_discarded", qi->held);
		cJSON_AddItemToArray(c->arr, o);
	} else {
		printf("%s %s: %s\n", c->dry_run ? "would remove" : "removed", qi->name, why);
	}
}

int cmd_clean(int argc, char **argv)
{
	static const char *usage = "clean [--force] [--dry-run] [--json]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'j'}, {"force", no_argument, 0, 'f'},
		{"dry-run", no_argument, 0, 'n'}, {0, 0, 0, 0}};
	struct clean_ctx c = {0};
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "hjfn", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: taskq %s\n\nRemoves the caller's queues that no live process is attached to and\n"
			       "that hold no task, and the caller's segments whose creator died while\n"
			       "creating them (empty, or with no header yet, and unchanged for %d s). A stale\n"
			       "queue that still holds tasks is kept unless --force. Only regular files owned\n"
			       "by the caller are ever removed: other users' queues are skipped (and not\n"
			       "opened), and anything named taskq.* that is not provably a taskq queue (a\n"
			       "FIFO, a directory, a link, a file that is not a queue) is kept; each is named\n"
			       "on stderr. --dry-run: say what would be removed, remove nothing. --json: an\n"
			       "array of the queues removed: name, reason, tasks_discarded.\n",
			       usage, HALF_CREATED_AGE_S);
			return 0;
		}
		if (o == 'j') c.json = true;
		else if (o == 'f') c.force = true;
		else if (o == 'n') c.dry_run = true;
		else return usage_error(usage);
	}
	if (optind != argc)
		return usage_error(usage);
	c.arr = c.json ? cJSON_CreateArray() : NULL;
	int rc = for_each_queue(clean_one, &c, true);
	if (c.json)
		cli_print_json(c.arr);
	else if (c.removed == 0)
		printf("nothing to clean\n");
	return rc;
}

int cmd_destroy(int argc, char **argv)
{
	static const char *usage = "destroy NAME [--force]";
	static const struct option opts[] = {
		{"help", no_argument, 0, 'h'}, {"force", no_argument, 0, 'f'}, {0, 0, 0, 0}};
	bool force = false;
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: taskq %s\n\nRemoves queue NAME. Refused while processes are attached or\n"
			       "tasks are held (ready, in progress, delayed or dead) unless --force. Without\n"
			       "--force it also refuses what it cannot inspect: a half-created queue, a\n"
			       "segment that is not a queue or not a regular file (exit 4), another user's\n"
			       "queue (exit 1; it is never opened).\n", usage);
			return 0;
		}
		if (o == 'f') force = true;
		else return usage_error(usage);
	}
	if (optind != argc - 1)
		return usage_error(usage);
	const char *name = argv[optind];
	char note[300];
	struct qinfo qi;
	if (!cli_queue_name_ok(name)) {
		cli_err("%s: %s", cli_text_escape(note, sizeof(note), name, strlen(name)), tq_strerror(TQ_ENAME));
		return EX_USAGE_;
	}
	int dir = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		cli_err("%s: %s", SHM_DIR, strerror(errno));
		return EX_FAIL;
	}
	inspect(dir, name, false, &qi);
	close(dir);
	switch (qi.cls) {
	case SEG_GONE:
		cli_err("%s: %s", name, tq_strerror(TQ_ENOENT));
		return EX_NOQUEUE;
	case SEG_ERROR:
		cli_err("%s: %s", name, tq_strerror(qi.err));
		return cli_exit_for(qi.err);
	case SEG_QUEUE:
		if (qi.err && qi.err != TQ_EBADQUEUE && qi.err != TQ_EINIT && qi.err != TQ_EVERSION) {
			cli_err("%s: %s", name, tq_strerror(qi.err));
			return cli_exit_for(qi.err);
		}
		if (qi.err && !force) {
			cli_err("%s: %s; --force removes it anyway", name, tq_strerror(qi.err));
			return EX_BADQUEUE;
		}
		if (!qi.err && !force && (qi.others > 0 || qi.held > 0)) {
			cli_err("%s: %d processes attached, %u tasks held; --force destroys it anyway", name,
				qi.others, qi.held);
			return EX_FAIL;
		}
		break;
	default:
		if (!force) {
			cli_err("%s: %s; --force removes it anyway", name, seg_note(&qi, note, sizeof(note)));
			return qi.cls == SEG_OTHER_USER ? EX_FAIL : EX_BADQUEUE;
		}
		break;
	}
	int rc = tq_destroy(name);
	if (rc) {
		cli_err("%s: %s", name, tq_strerror(rc));
		return cli_exit_for(rc);
	}
	printf("destroyed %s\n", name);
	return 0;
}
