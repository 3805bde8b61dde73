/* SPDX-License-Identifier: MIT */
/*
 * cmd_create.c - taskq create.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* -------------------------------------------------------------- create */

enum { O_CAPACITY = 'c', O_PAYLOAD = 'p', O_MODE = 'm', O_ATTEMPTS = 'a', O_DEAD = 'd', O_LEASE = 'l',
       O_BACKOFF = 'b', O_BACKOFF_MAX = 'B', O_EXIST_OK = 'e', O_JSON = 'j', O_DELAY = 'D',
       O_PAYLOAD_BYTES = 'P' };

static const struct cli_opt create_opts[] = {
	{O_CAPACITY, false, "capacity", "N", "tasks held at once (1 to 16777216; default 10000)"},
	{O_PAYLOAD, false, "max-payload", "BYTES", "bytes per payload (0 to 16777216; default 4096)"},
	{O_PAYLOAD_BYTES, false, "payload-bytes", "SIZE", "bytes for the payloads of tasks in slots (retries,\ndelayed, dead, pushes beyond a lane), rounded up to\n64; a suffix K, M or G multiplies by 2^10, 2^20,\n2^30 (from max-payload to slots x max-payload;\ndefault below)"},
	{O_MODE, false, "mode", "OCTAL", "permissions of the queue's file (default 600)"},
	{O_ATTEMPTS, false, "max-attempts", "N", "attempts before a task is dead (1 to 65535;\ndefault 5)"},
	{O_DEAD, false, "dead-capacity", "N", "dead tasks kept (1 to --capacity; default\ncapacity/10)"},
	{O_DELAY, false, "delay-capacity", "N", "delayed tasks (retries waiting, delayed pushes)\nheld without taking room from the capacity (1 to\n--capacity; default capacity/20)"},
	{O_LEASE, false, "lease", "SEC", "how long a taken task is held (0.001 s to 365\ndays; default 30)"},
	{O_BACKOFF, false, "backoff", "SEC", "wait before a failed task's first retry, doubling\nper attempt (up to 1 day; default 0.1)"},
	{O_BACKOFF_MAX, false, "backoff-max", "SEC", "longest wait before a retry (up to 365 days;\ndefault 60)"},
	{O_EXIST_OK, false, "exist-ok", NULL, "succeed if the queue exists (its configuration\nis kept)"},
	{O_JSON, true, "json", NULL, "print name, created, capacity, max_payload,\npayload_bytes as JSON"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command create_cmd = {
	.name = "create",
	.args = "NAME",
	.about = "Creates queue NAME. Defaults: capacity 10000 tasks, max-payload 4096 bytes,\n"
		 "mode 600, max-attempts 5, dead-capacity capacity/10, delay-capacity\n"
		 "capacity/20, lease 30 s, backoff 0.1 s doubling per attempt up to\n"
		 "backoff-max 60 s. payload-bytes: capacity x max-payload while that is\n"
		 "at most 64 MiB, else the larger of 64 MiB and 256 bytes a task; a push\n"
		 "that finds it full waits as on a full queue.\n"
		 "--backoff above --backoff-max is refused (exit 2). Given alone, --backoff\n"
		 "above the default backoff-max raises backoff-max to it, and --backoff-max\n"
		 "below the default backoff lowers backoff to it. A queue that exists already\n"
		 "is an error (exit 9) unless --exist-ok is given.\n",
	.opts = create_opts,
};

struct create_args {
	const char *name;
	tq_config cfg;
	bool json, exist_ok;
};

/* One option of create into a; false after a message. */
static bool create_option(const struct cli_parser *p, int c, struct create_args *a, bool *backoff_set,
			  bool *backoff_max_set)
{
	tq_config *cfg = &a->cfg;
	uint64_t v;

	switch (c) {
	case O_JSON: a->json = true; return true;
	case O_EXIST_OK: a->exist_ok = true; return true;
	case O_CAPACITY:
		if (!cli_opt_u64(p, 1, TQ_MAX_CAPACITY, &v))
			return false;
		cfg->capacity = (uint32_t)v;
		return true;
	case O_PAYLOAD:
		if (!cli_opt_u64(p, 0, TQ_MAX_PAYLOAD, &v))
			return false;
		cfg->max_payload = (uint32_t)v;
		return true;
	case O_MODE: {
		char *end, q[100];
		unsigned long m = strtoul(optarg, &end, 8);
		if (*optarg >= '0' && *optarg <= '7' && !*end && m <= 0777) {
			cfg->mode = (mode_t)m;
			return true;
		}
		cli_err("invalid --mode '%s': octal permissions from 0 to 777, e.g. 600",
			cli_text_escape(q, sizeof(q), optarg, strlen(optarg)));
		return false;
	}
	case O_ATTEMPTS:
		if (!cli_opt_u64(p, 1, TQ_MAX_ATTEMPTS, &v))
			return false;
		cfg->max_attempts = (uint32_t)v;
		return true;
	case O_DEAD:
		if (!cli_opt_u64(p, 1, TQ_MAX_CAPACITY, &v))
			return false;
		cfg->dead_capacity = (uint32_t)v;
		return true;
	case O_DELAY:
		if (!cli_opt_u64(p, 1, TQ_MAX_CAPACITY, &v))
			return false;
		cfg->delay_capacity = (uint32_t)v;
		return true;
	case O_PAYLOAD_BYTES: {
		char q[100];
		if (cli_parse_bytes(optarg, 1, UINT64_MAX, &cfg->payload_bytes))
			return true;
		cli_err("invalid --payload-bytes '%s': a byte count, e.g. 65536, 512K, 256M or 2G",
			cli_text_escape(q, sizeof(q), optarg, strlen(optarg)));
		return false;
	}
	case O_LEASE: return cli_opt_seconds(p, TQ_LEASE_MIN_NS, TQ_TIME_MAX_NS / 1e9, &cfg->lease_ns);
	case O_BACKOFF: *backoff_set = true; return cli_opt_seconds(p, 0, 86400.0, &cfg->backoff_base_ns);
	case O_BACKOFF_MAX: *backoff_max_set = true; return cli_opt_seconds(p, 0, TQ_TIME_MAX_NS / 1e9, &cfg->backoff_max_ns);
	default: return false;
	}
}

/* The command line into a; -1 to go on, else the exit status. */
static int create_parse(int argc, char **argv, struct create_args *a)
{
	struct cli_parser p;
	bool backoff_set = false, backoff_max_set = false;
	int c;

	memset(a, 0, sizeof(*a));
	tq_config_init(&a->cfg);
	cli_parser_init(&p, &create_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (c == CLI_OPT_HELP)
			return 0;
		if (c == CLI_OPT_BAD)
			return EX_USAGE_;
		if (!create_option(&p, c, a, &backoff_set, &backoff_max_set))
			return EX_USAGE_;
	}
	if (optind != argc - 1)
		return cli_command_usage(&create_cmd);
	a->name = argv[optind];
	/* Both given: the user's numbers contradict each other; say so rather
	 * than pick one. One given: the other one's default gives way. */
	tq_config *cfg = &a->cfg;
	if (cfg->backoff_max_ns < cfg->backoff_base_ns) {
		if (backoff_set && backoff_max_set) {
			cli_err("--backoff %.9g s exceeds --backoff-max %.9g s", (double)cfg->backoff_base_ns / 1e9,
				(double)cfg->backoff_max_ns / 1e9);
			return EX_USAGE_;
		}
		if (backoff_set)
			cfg->backoff_max_ns = cfg->backoff_base_ns;
		else
			cfg->backoff_base_ns = cfg->backoff_max_ns;
	}
	if (cfg->dead_capacity > cfg->capacity) {
		cli_err("--dead-capacity %u exceeds --capacity %u", cfg->dead_capacity, cfg->capacity);
		return EX_USAGE_;
	}
	if (cfg->delay_capacity > cfg->capacity) {
		cli_err("--delay-capacity %u exceeds --capacity %u", cfg->delay_capacity, cfg->capacity);
		return EX_USAGE_;
	}
	return -1;
}

static int create_run(struct create_args *a)
{
	tq_queue *q;
	int rc = tq_create(a->name, &a->cfg, &q);
	bool existed = false;

	if (rc == TQ_EEXIST && a->exist_ok) {
		existed = true;
		rc = tq_open(a->name, &q);
	}
	if (rc == TQ_EEXIST) {
		cli_err("%s: %s (--exist-ok accepts it)", a->name, tq_strerror(rc));
		return EX_EXISTS;
	}
	if (rc) {
		cli_err("%s: %s", a->name, tq_strerror(rc));
		return cli_exit_for(rc);
	}
	tq_config cfg;
	tq_config_get(q, &cfg);
	if (a->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", a->name);
		cJSON_AddBoolToObject(o, "created", !existed);
		cJSON_AddNumberToObject(o, "capacity", cfg.capacity);
		cJSON_AddNumberToObject(o, "max_payload", cfg.max_payload);
		cJSON_AddNumberToObject(o, "payload_bytes", (double)cfg.payload_bytes);
		cli_print_json(o);
	} else {
		printf("%s %s: capacity %u tasks, max payload %u bytes, payload area %llu bytes\n",
		       existed ? "exists" : "created", a->name, cfg.capacity, cfg.max_payload,
		       (unsigned long long)cfg.payload_bytes);
	}
	tq_close(q);
	return 0;
}

int cmd_create(int argc, char **argv)
{
	struct create_args a;
	int rc = create_parse(argc, argv, &a);

	return rc >= 0 ? rc : create_run(&a);
}
