/* SPDX-License-Identifier: MIT */
/*
 * cmd_stats.c - taskq info and stats, and the stats JSON shared with serve.
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
	tq_proc_info *p = NULL;
	int n = 0;
	cJSON *o = cJSON_CreateObject();

	tq_stats_get(q, &s);
	tq_config_get(q, &cfg);
	if (with_procs) {
		p = calloc(TQ_MAX_PROCS, sizeof(*p));
		n = p ? tq_procs(q, p, TQ_MAX_PROCS) : 0;
	}
	/* After everything it is compared with: a time another process wrote
	 * after an earlier now would make a negative age. */
	uint64_t now = tq_now_ns();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "state", cli_state_name(s.run_state));
	cJSON_AddNumberToObject(o, "capacity", s.capacity);
	cJSON_AddNumberToObject(o, "ready", s.ready);
	cJSON_AddNumberToObject(o, "leased", s.leased);
	cJSON_AddNumberToObject(o, "delayed", s.delayed);
	cJSON_AddNumberToObject(o, "dead", s.dead);
	cJSON_AddNumberToObject(o, "free", s.free_slots);
	cJSON_AddNumberToObject(o, "slots", s.slots);
	cJSON_AddNumberToObject(o, "dead_capacity", s.dead_capacity);
	cJSON_AddNumberToObject(o, "dead_over", s.dead_over);
	cJSON_AddBoolToObject(o, "dead_full", s.dead >= s.dead_capacity);
	cJSON_AddNumberToObject(o, "delay_capacity", s.delay_capacity);
	cJSON_AddNumberToObject(o, "delay_over", s.delay_over);
	cJSON_AddBoolToObject(o, "delay_full", s.delayed >= s.delay_capacity);
	cJSON_AddNumberToObject(o, "processes", s.procs);
	cJSON_AddNumberToObject(o, "recoveries", s.recoveries);
	cJSON_AddNumberToObject(o, "oldest_ready_age_seconds",
				(double)cli_age_ns(now, s.oldest_ready_ns) / 1e9);
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
		cJSON_AddNumberToObject(c, "payload_bytes", (double)cfg.payload_bytes);
		char mode[8];
		snprintf(mode, sizeof(mode), "%03o", (unsigned)cfg.mode);
		cJSON_AddStringToObject(c, "mode", mode);
		cJSON_AddNumberToObject(c, "max_attempts", cfg.max_attempts);
		cJSON_AddNumberToObject(c, "dead_capacity", cfg.dead_capacity);
		cJSON_AddNumberToObject(c, "delay_capacity", cfg.delay_capacity);
		cJSON_AddNumberToObject(c, "lease_seconds", (double)cfg.lease_ns / 1e9);
		cJSON_AddNumberToObject(c, "backoff_seconds", (double)cfg.backoff_base_ns / 1e9);
		cJSON_AddNumberToObject(c, "backoff_max_seconds", (double)cfg.backoff_max_ns / 1e9);
	}
	if (with_procs) {
		cJSON *arr = cJSON_AddArrayToObject(o, "process_list");
		for (int i = 0; i < n; i++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "pid", p[i].pid);
			cJSON_AddNumberToObject(e, "slot", p[i].slot);
			cJSON_AddNumberToObject(e, "attached_seconds", (double)cli_age_ns(now, p[i].attached_ns) / 1e9);
			cJSON_AddNumberToObject(e, "last_seen_seconds_ago", (double)cli_age_ns(now, p[i].last_seen_ns) / 1e9);
			cJSON_AddNumberToObject(e, "in_progress", p[i].leased);
			cJSON_AddNumberToObject(e, "done_per_second", p[i].done_per_s);
			cJSON_AddStringToObject(e, "state", p[i].waiting == 1 ? "waiting for tasks"
							    : p[i].waiting == 2 ? "waiting for room" : "busy");
			cJSON_AddItemToObject(e, "counters", cli_counters_json(&p[i].counters));
			cJSON_AddItemToArray(arr, e);
		}
	}
	free(p);
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
	printf("  tasks:   %.0f ready, %.0f in progress, %.0f delayed (retry), %.0f dead; %.0f free of %.0f"
	       " (capacity %.0f + dead-letter area %.0f + delay area %.0f)\n",
	       NUM(o, "ready"), NUM(o, "leased"), NUM(o, "delayed"), NUM(o, "dead"), NUM(o, "free"), NUM(o, "slots"),
	       NUM(o, "capacity"), NUM(o, "dead_capacity"), NUM(o, "delay_capacity"));
	if (NUM(o, "delayed") >= NUM(o, "delay_capacity"))
		printf("  DELAY AREA FULL: %.0f delayed of %.0f, %.0f over, taking room from the capacity;\n"
		       "           a larger --delay-capacity (taskq create) keeps retries apart\n",
		       NUM(o, "delayed"), NUM(o, "delay_capacity"), NUM(o, "delay_over"));
	if (NUM(o, "dead") >= NUM(o, "dead_capacity"))
		printf("  DEAD-LETTER AREA FULL: %.0f dead of %.0f, %.0f over, taking room from the capacity;\n"
		       "           taskq dead %s list|kick|purge makes room\n",
		       NUM(o, "dead"), NUM(o, "dead_capacity"), NUM(o, "dead_over"),
		       cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")));
	printf("  totals:  %llu pushed, %llu taken, %llu acked, %llu failed, %llu retried, %llu dead\n",
	       U64(t, "pushed"), U64(t, "taken"), U64(t, "acked"), U64(t, "failed"), U64(t, "retried"),
	       U64(t, "dead"));
	printf("           %llu leases expired, %llu returned from dead processes, %llu died with the dead-letter area full, %llu lost acks\n",
	       U64(t, "expired"), U64(t, "recovered"), U64(t, "dead_overflow"), U64(t, "lost"));
	cJSON *rd = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "rates"), "done_per_second");
	printf("  done/s:  %.0f (1 s), %.0f (10 s), %.0f (60 s)\n", NUM(rd, "1s"), NUM(rd, "10s"), NUM(rd, "60s"));
	cJSON *lat = cJSON_GetObjectItem(o, "latency_seconds");
	const char *lname[2] = {"queue_wait", "processing"};
	for (int i = 0; i < 2; i++) {
		cJSON *l = cJSON_GetObjectItem(lat, lname[i]);
#define DUR(obj, k) cli_duration_text((char[32]){0}, 32, (uint64_t)(NUM((obj), (k)) * 1e9 + 0.5))
		printf("  %-11s p50 %s, p90 %s, p99 %s, max %s, mean %s (%llu tasks)\n", lname[i], DUR(l, "p50"),
		       DUR(l, "p90"), DUR(l, "p99"), DUR(l, "max"), DUR(l, "mean"), U64(l, "count"));
	}
	printf("  oldest ready task: %s; processes attached: %.0f; dead processes recovered: %.0f\n",
	       NUM(o, "ready") > 0 ? DUR(o, "oldest_ready_age_seconds") : "-", NUM(o, "processes"), NUM(o, "recoveries"));
#undef DUR
	cJSON *a = cJSON_GetObjectItem(o, "payload_area");
	if (a)
		printf("  payload area: %.0f of %.0f B held (%.1f%%), longest free run %.0f B\n", NUM(a, "held_bytes"),
		       NUM(a, "bytes"), NUM(a, "bytes") > 0 ? 100.0 * NUM(a, "held_bytes") / NUM(a, "bytes") : 0.0,
		       NUM(a, "largest_free_bytes"));
	cJSON *c = cJSON_GetObjectItem(o, "config");
	if (c)
		printf("  config:  capacity %.0f, max payload %.0f B, payload area %.0f B, mode %s, max attempts %.0f,\n"
		       "           dead capacity %.0f, delay capacity %.0f, lease %.3f s, backoff %.3f s .. %.3f s\n",
		       NUM(c, "capacity"), NUM(c, "max_payload"), NUM(c, "payload_bytes"),
		       cJSON_GetStringValue(cJSON_GetObjectItem(c, "mode")),
		       NUM(c, "max_attempts"), NUM(c, "dead_capacity"), NUM(c, "delay_capacity"), NUM(c, "lease_seconds"),
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

enum { O_JSON = 'j' };

static const struct cli_opt show_opts[] = {
	{O_JSON, true, "json", NULL, "print the snapshot as one JSON object"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command info_cmd = {
	.name = "info",
	.args = "NAME",
	.about = "The queue's configuration, run state, task counts and totals.\n",
	.opts = show_opts,
};

static const struct cli_command stats_cmd = {
	.name = "stats",
	.args = "NAME",
	.about = "A snapshot: tasks by state, totals since creation, attached processes.\n",
	.more = "taskq stats --nats URL --stream S [NAME]: every machine's bridges of stream S\n"
		"instead, a row each and the totals (taskq bridge stats; docs/cluster.md).\n",
	.opts = show_opts,
};

static int show(int argc, char **argv, bool with_config, const struct cli_command *cmd)
{
	bool json = false;
	tq_queue *q;
	int rc = cli_opts_json_only(cmd, O_JSON, argc, argv, &json);

	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_command_usage(cmd);
	if ((rc = cli_open_observer(argv[optind], &q)))
		return rc;
	cJSON *o = cli_stats_json(q, argv[optind], with_config, true);
	uint64_t held, total, largest;
	if (with_config && tq_payload_area(q, &held, &total, &largest) == 0) {
		/* A scan of the area's owner words: info only, not stats or serve. */
		cJSON *a = cJSON_AddObjectToObject(o, "payload_area");
		cJSON_AddNumberToObject(a, "bytes", (double)total);
		cJSON_AddNumberToObject(a, "held_bytes", (double)held);
		cJSON_AddNumberToObject(a, "largest_free_bytes", (double)largest);
	}
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
	return show(argc, argv, true, &info_cmd);
}

int cmd_stats(int argc, char **argv)
{
	return show(argc, argv, false, &stats_cmd);
}
