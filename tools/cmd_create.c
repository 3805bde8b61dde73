/*
 * cmd_create.c - taskq create.
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
			return cli_usage_error(usage);
		}
		if (bad) {
			cli_err("invalid value '%s' for %s", optarg, bad);
			return EX_USAGE_;
		}
	}
	if (optind != argc - 1)
		return cli_usage_error(usage);
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

