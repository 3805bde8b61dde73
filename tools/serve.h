/* SPDX-License-Identifier: MIT */
/*
 * serve.h - what taskq serve's two files share (internal): the server's
 * configuration and queues, a growable text buffer, the connection counts
 * shown in /metrics, and the /metrics rendering (serve_metrics.c).
 */
#ifndef TQ_SERVE_H
#define TQ_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "serve_parse.h"

struct served {
	char *name;
	tq_queue *q; /* an observer handle (cli_open_observer) */
	uint64_t events_after; /* the queue's events up to this one are logged */
};

#define MAX_BRIDGE_FILES 16

struct server {
	struct served *queues;
	size_t nqueues;
	const char *bridge_files[MAX_BRIDGE_FILES]; /* --bridge-metrics */
	size_t nbridge_files;
	char token[CLI_TOKEN_MAX + 1]; /* "" when control is off */
	size_t token_len;
	struct serve_limits limits;
};

/* A growable buffer; oom once an allocation failed (the text is then cut). */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* The connection phases (cmd_serve.c, "Connections"), and what the limits
 * and deadlines did, for /metrics. */
enum phase { PH_REQUEST, PH_ANSWER, PH_IDLE };
struct serve_conn_stats {
	unsigned open;
	uint64_t refused[4];   /* by enum serve_admit (SERVE_ADMIT unused) */
	uint64_t timed_out[3]; /* by enum phase */
};
extern const char *const serve_refusal_names[4]; /* by enum serve_admit */
extern const char *const serve_phase_names[3];   /* by enum phase */
/* A consistent copy of the counts now (cmd_serve.c). */
void serve_conn_stats_get(struct serve_conn_stats *out);

/* Appends the whole /metrics text to b: every queue's metrics, the
 * server's connections, the bridges' files. Returns 0 or a TQ_E* code
 * (TQ_ENOMEM if b ran out of memory); b->p is the caller's to free. */
int serve_render_metrics(const struct server *srv, struct buf *b);

/* For the dashboard (serve_web.c). Each returns its JSON, or NULL with
 * *err a TQ_E* code. */
/* {"queue", "events": [as taskq log --json], "last": SEQ}: the events
 * after seq `after` the queue's ring still holds, oldest first. */
cJSON *serve_events_json(struct served *sv, uint64_t after, int *err);
/* {"queue", "dead": N, "tasks": [as taskq dead --json]}: the max oldest
 * dead tasks; each payload cut at SERVE_DEAD_PAYLOAD bytes ("payload_bytes"
 * then says its length). Opens a worker handle for the call (an observer
 * may not list dead letters), which runs recovery as any worker's open. */
#define SERVE_DEAD_PAYLOAD 256
cJSON *serve_dead_json(struct served *sv, size_t max, int *err);
/* Kicks (or purges) dead task id, or every one with TQ_ALL, through a
 * worker handle opened for the call: tq_dead_kick's or tq_dead_purge's
 * result. */
int serve_dead_action(struct served *sv, uint64_t id, bool purge);

/* --nats URL[,URL] --stream S (serve_cluster.c): a thread runs
 * `taskq-bridge stats --json` (found beside this program) every 2 s and
 * keeps its snapshot. Checks of the two options' text: */
bool serve_cluster_stream_ok(const char *stream); /* 1-64 of A-Z a-z 0-9 _ - */
bool serve_cluster_urls_ok(const char *urls);     /* printable, no space, not an option */
/* Starts the thread; the strings must outlive it. Returns 0 or an exit
 * status, after a message. */
int serve_cluster_start(const char *urls, const char *stream);
/* Stops it (killing a run under way) and frees the snapshot; no-op if off. */
void serve_cluster_stop(void);
/* Whether the thread runs (serve has --nats). */
bool serve_cluster_on(void);
/* {"stream", "age_seconds", "snapshot": taskq-bridge stats --json}, or
 * NULL with why (no snapshot yet, the last run failed, out of memory). */
cJSON *serve_cluster_json(char *why, size_t why_size);

#endif
