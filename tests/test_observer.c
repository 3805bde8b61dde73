/* SPDX-License-Identifier: MIT */
/*
 * test_observer.c - observer handles (tq_open_observer): they read
 * everything a monitor needs and set the run state, are never counted or
 * listed as processes, refuse every call that changes tasks or runs
 * recovery with TQ_EOBSERVER, and leave out a dead process that nobody
 * has recovered yet.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "taskq.h"
#include "util.h"

#define OB_SEC 1000000000ull

static char ob_name[TQT_NAME_LEN];

static void ob_fini(void)
{
	if (ob_name[0])
		tq_destroy(ob_name);
}

TestSuite(observer, .fini = ob_fini, .timeout = 60);

static tq_queue *ob_create(const char *test)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(ob_name, test);
	tq_destroy(ob_name); /* a leftover of an earlier run with our pid */
	tq_config_init(&c);
	c.capacity = 64;
	c.max_payload = 64;
	int rc = tq_create(ob_name, &c, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", ob_name, tq_strerror(rc));
	return q;
}

static tq_stats ob_stats(tq_queue *q)
{
	tq_stats s;
	int rc = tq_stats_get(q, &s);
	cr_assert_eq(rc, 0, "tq_stats_get: %s", tq_strerror(rc));
	return s;
}

Test(observer, reads_and_sets_state_but_changes_no_task)
{
	tq_queue *w = ob_create("obcalls"), *o = NULL;
	tq_task t[2];

	cr_assert_eq(tq_push_int(w, 7, 0), 0);
	cr_assert_eq(tq_push_int(w, 8, 0), 0);
	cr_assert_eq(tq_take(w, t, 1, 0), 1);
	cr_assert_eq(tq_ack(w, t, 1), 0);
	int rc = tq_open_observer(ob_name, &o);
	cr_assert_eq(rc, 0, "tq_open_observer: %s", tq_strerror(rc));

	/* Not a process: neither counted nor listed, by anyone. */
	tq_stats s = ob_stats(o);
	cr_assert_eq(s.procs, 1, "procs %u: only the worker", s.procs);
	cr_assert_eq(ob_stats(w).procs, 1);
	tq_proc_info pi[4];
	cr_assert_eq(tq_procs(o, pi, 4), 1);
	cr_assert_eq(tq_procs(w, pi, 4), 1);
	cr_assert_eq(s.ready, 1);
	cr_assert_eq(s.total.pushed, 2);
	cr_assert_eq(s.total.acked, 1);

	/* What it may call. */
	tq_histogram hw, hp;
	cr_assert_eq(tq_histograms(o, &hw, &hp), 0);
	tq_event_info ev[8];
	cr_assert_geq(tq_events(o, 0, ev, 8), 1, "the created event");
	uint64_t below = 0;
	cr_assert_eq(tq_finished_below(o, &below), 0);
	cr_assert_eq(below, t[0].id + 1, "below %llu", (unsigned long long)below);
	tq_config cfg;
	cr_assert_eq(tq_config_get(o, &cfg), 0);
	cr_assert_eq(cfg.capacity, 64);
	uint64_t area = 0;
	cr_assert_eq(tq_payload_area(o, NULL, &area, NULL), 0);
	cr_assert_eq(area, cfg.payload_bytes);
	uint64_t i1 = 0, i2 = 1;
	cr_assert_eq(tq_instance(o, &i1), 0);
	cr_assert_eq(tq_instance(w, &i2), 0);
	cr_assert_eq(i1, i2);
	tq_counters c;
	cr_assert_eq(tq_counters_self(o, &c), 0);
	cr_assert_eq(c.pushed + c.taken + c.acked, 0);
	cr_assert_eq(tq_set_run_state(o, TQ_PAUSED), 0);
	cr_assert_eq(tq_run_state(w), TQ_PAUSED);
	cr_assert_eq(tq_set_run_state(o, TQ_RUNNING), 0);
	int n = tq_events(w, 0, ev, 8), states = 0;
	for (int i = 0; i < n; i++)
		states += ev[i].type == TQ_EV_STATE;
	cr_assert_eq(states, 2, "the observer's two state changes are events");

	/* What it may not: TQ_EOBSERVER, and nothing changes. */
	tq_task p = {.kind = TQ_KIND_INT, .value = 9};
	cr_assert_eq(tq_push(o, &p, 1, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_push_int(o, 9, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_push_data(o, TQ_KIND_STRING, "x", 1, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_push_delayed(o, &p, 1, OB_SEC, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_take(o, t, 2, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_take(w, t, 1, 0), 1);
	cr_assert_eq(tq_ack(o, t, 1), TQ_EOBSERVER);
	cr_assert_eq(tq_fail(o, t, 1, 1, "no"), TQ_EOBSERVER);
	cr_assert_eq(tq_touch(o, t, 1, 0), TQ_EOBSERVER);
	tq_dead_info d;
	cr_assert_eq(tq_dead_list(o, &d, 1, NULL, 0), TQ_EOBSERVER);
	cr_assert_eq(tq_dead_kick(o, TQ_ALL), TQ_EOBSERVER);
	cr_assert_eq(tq_dead_purge(o, TQ_ALL), TQ_EOBSERVER);
	cr_assert_eq(tq_recover(o), TQ_EOBSERVER);
	cr_assert_eq(tq_worker_run(o, NULL, NULL, NULL, NULL), TQ_EOBSERVER);
	cr_assert_str_neq(tq_strerror(TQ_EOBSERVER), "unknown error");
	s = ob_stats(w);
	cr_assert_eq(s.total.pushed, 2);
	cr_assert_eq(s.leased, 1);
	cr_assert_eq(tq_ack(w, t, 1), 0, "the worker's lease is intact");

	cr_assert_eq(tq_close(o), 0);
	cr_assert_eq(ob_stats(w).procs, 1);
	tq_close(w);
}

/* Opens the queue as a worker, takes a task and dies holding it. */
static int take_and_die(void *arg)
{
	tq_queue *q;
	tq_task t;

	(void)arg;
	if (tq_open(ob_name, &q) || tq_take(q, &t, 1, 0) != 1)
		return 1;
	kill(getpid(), SIGKILL);
	return 2;
}

Test(observer, leaves_out_an_unrecovered_dead_process_and_recovers_nothing)
{
	tq_queue *w = ob_create("obdead"), *o = NULL;

	cr_assert_eq(tq_push_int(w, 1, 0), 0);
	cr_assert_eq(tq_open_observer(ob_name, &o), 0);
	tq_close(w); /* nobody attached now but the observer */
	int st = tqt_wait(tqt_fork(take_and_die, NULL), 20000);
	cr_assert_eq(st, 128 + SIGKILL, "the child ended with %d", st);

	tq_stats s = ob_stats(o);
	cr_assert_eq(s.procs, 0, "the dead process is not attached: procs %u", s.procs);
	tq_proc_info pi[4];
	cr_assert_eq(tq_procs(o, pi, 4), 0);
	cr_assert_eq(s.leased, 1, "its task stays leased: an observer recovers nothing");
	cr_assert_eq(s.recoveries, 0);
	/* A second observer does not recover it either. */
	tq_queue *o2 = NULL;
	cr_assert_eq(tq_open_observer(ob_name, &o2), 0);
	cr_assert_eq(ob_stats(o2).leased, 1);
	tq_close(o2);

	/* A worker's open does. */
	cr_assert_eq(tq_open(ob_name, &w), 0);
	s = ob_stats(o);
	cr_assert_eq(s.leased, 0);
	cr_assert_eq(s.ready, 1);
	cr_assert_eq(s.recoveries, 1);
	cr_assert_eq(s.procs, 1);
	tq_close(w);
	tq_close(o);
}

/* Observers take no place a worker could use but the one record each
 * holds, and a worker never shares a record with one. */
Test(observer, workers_and_observers_hold_records_apart)
{
	tq_queue *w = ob_create("obrec"), *o[3], *w2 = NULL;

	for (int i = 0; i < 3; i++)
		cr_assert_eq(tq_open_observer(ob_name, &o[i]), 0);
	cr_assert_eq(tq_open(ob_name, &w2), 0);
	cr_assert_eq(tq_push_int(w2, 5, 0), 0);
	tq_task t;
	cr_assert_eq(tq_take(w, &t, 1, 0), 1);
	tq_proc_info pi[8];
	int n = tq_procs(o[0], pi, 8);
	cr_assert_eq(n, 2, "two workers: %d", n);
	cr_assert_neq(pi[0].slot, pi[1].slot);
	/* Event-ring locks of observers and workers interleave. */
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(tq_set_run_state(o[i % 3], TQ_RUNNING), 0);
		tq_event_info ev[4];
		cr_assert_geq(tq_events(o[(i + 1) % 3], 0, ev, 4), 1);
	}
	cr_assert_eq(tq_ack(w, &t, 1), 0);
	for (int i = 0; i < 3; i++)
		tq_close(o[i]);
	tq_close(w2);
	cr_assert_eq(ob_stats(w).procs, 1);
	tq_close(w);
}
