/* SPDX-License-Identifier: MIT */
/*
 * worker.c - the take -> handle -> ack/fail loop for library users.
 */
#include <stdlib.h>

#include "internal.h"

#define POLL_NS 100000000ull /* longest single wait, so stop flags are seen */

TQ_API void tq_worker_config_init(tq_worker_config *cfg)
{
	if (!cfg)
		return;
	cfg->batch = 64;
	cfg->idle_exit_ns = 0;
	cfg->max_tasks = 0;
	cfg->stop = NULL;
}

static int run_state_end(tq_queue *q)
{
	switch (tq_run_state(q)) {
	case TQ_DRAINING: return TQ_END_DRAINING;
	case TQ_STOPPED: return TQ_END_STOPPED;
	default: return 0;
	}
}

/* Extends the leases of tasks [from, n) if half a lease has passed. */
/* Extends, once half a lease has passed since the last time, the leases of
 * the tasks still to handle, t[from, n), and of those handled but not yet
 * acked, ok[0, nok): both are still held by this batch. */
static void keep_leases(tq_queue *q, tq_task *t, size_t from, size_t n, const tq_task *ok, size_t nok,
			uint64_t *renewed)
{
	uint64_t now = tq_now_ns();

	if (now - *renewed < q->lease_ns / 2)
		return;
	if (from < n)
		(void)tq_touch(q, t + from, n - from, 0);
	if (nok)
		(void)tq_touch(q, ok, nok, 0);
	*renewed = now;
}

/* Handles one batch; returns an end reason if the batch was cut short. */
static int handle_batch(tq_queue *q, tq_handler fn, void *arg, tq_task *t, size_t n,
			tq_task *ok, tq_worker_result *r)
{
	uint64_t renewed = tq_now_ns();
	size_t nok = 0;
	char msg[TQ_ERRMSG_MAX];
	int end = 0;

	for (size_t i = 0; i < n; i++) {
		if (run_state_end(q) == TQ_END_STOPPED) {
			end = TQ_END_STOPPED; /* the rest stay leased; close returns them */
			break;
		}
		keep_leases(q, t, i, n, ok, nok, &renewed);
		if (!tq__lease_held(q, &t[i])) {
			r->skipped++; /* expired while earlier tasks ran: delivered again */
			continue;
		}
		msg[0] = '\0';
		int rc = fn(&t[i], arg, msg, sizeof(msg));
		if (q->forked) /* a child of fork() returned into the loop */
			return -1;
		r->handled++;
		if (rc == 0) {
			ok[nok++] = t[i];
			continue;
		}
		msg[sizeof(msg) - 1] = '\0';
		if (tq_fail(q, &t[i], 1, rc, msg[0] ? msg : NULL) == TQ_ELOST)
			r->lost++;
		else
			r->failed++;
	}
	keep_leases(q, t, n, n, ok, nok, &renewed);
	if (nok) {
		uint64_t lost = 0;
		if (tq__ack(q, ok, nok, &lost) == 0 || lost) {
			r->acked += nok - lost;
			r->lost += lost;
		}
	}
	return end;
}

TQ_API int tq_worker_run(tq_queue *q, tq_handler fn, void *arg, const tq_worker_config *cfg,
			 tq_worker_result *res)
{
	tq_worker_config defaults;
	tq_worker_result local = {0};
	tq_worker_result *r = res ? res : &local;

	if (tq__usable(q))
		return tq__usable(q);
	if (!fn)
		return TQ_EINVAL;
	if (!cfg) {
		tq_worker_config_init(&defaults);
		cfg = &defaults;
	}
	if (cfg->batch < 1 || cfg->batch > TQ_MAX_BATCH)
		return TQ_EINVAL;
	*r = (tq_worker_result){0};
	tq_task *t = malloc(sizeof(*t) * cfg->batch * 2);
	if (!t)
		return TQ_ENOMEM;
	uint64_t idle_since = tq_now_ns();
	int rc = 0;

	for (;;) {
		if (cfg->stop && __atomic_load_n(cfg->stop, __ATOMIC_RELAXED)) {
			r->end = TQ_END_FLAG;
			break;
		}
		if (cfg->max_tasks && r->handled >= cfg->max_tasks) {
			r->end = TQ_END_MAX;
			break;
		}
		size_t want = cfg->batch;
		if (cfg->max_tasks && cfg->max_tasks - r->handled < want)
			want = (size_t)(cfg->max_tasks - r->handled);
		int n = tq_take(q, t, want, POLL_NS);
		if (n == TQ_ETIMEDOUT) {
			if (cfg->idle_exit_ns && tq_now_ns() - idle_since >= cfg->idle_exit_ns) {
				r->end = TQ_END_IDLE;
				break;
			}
			continue;
		}
		if (n == TQ_ESTOPPED) {
			r->end = run_state_end(q);
			if (!r->end)
				continue; /* resumed meanwhile */
			break;
		}
		if (n < 0) {
			rc = n;
			break;
		}
		int end = handle_batch(q, fn, arg, t, (size_t)n, t + cfg->batch, r);
		if (end < 0) {
			rc = TQ_EFORKED;
			break;
		}
		idle_since = tq_now_ns();
		if (end) {
			r->end = end;
			break;
		}
	}
	free(t);
	return rc;
}
