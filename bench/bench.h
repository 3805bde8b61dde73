/*
 * bench.h - shared declarations of the taskq benchmark (build/bench/taskq-bench).
 *
 * Every configuration moves tasks between separate processes (fork). Producer
 * p pushes the values (p << 40 | seq) for seq in [0, per_prod); each consumer
 * marks what it receives in a private bitmap (counting duplicates), and once
 * the run is over merges it into a MAP_SHARED bitmap with atomic fetch_or,
 * counting bits that another consumer had already set. The parent then checks
 * that every bit is set and no duplicate or foreign value was seen.
 *
 * Time runs from the start barrier (parent's CLOCK_MONOTONIC just before it
 * releases the children) to the moment the consumer that completes the total
 * finished processing (and, for taskq, acking) its last task.
 */
#ifndef TASKQ_BENCH_H
#define TASKQ_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include "taskq.h"

#define BENCH_MAX_PROCS 16
#define BENCH_SEQ_BITS 40
#define BENCH_SEQ_MASK ((UINT64_C(1) << BENCH_SEQ_BITS) - 1)
#define BENCH_JSON_LEN 100
#define BENCH_NAME_LEN 96

enum bench_impl { IMPL_TASKQ, IMPL_PIPE, IMPL_MQ, IMPL_SEED };

/* One row of the table. */
struct bench_row {
	const char *name;
	enum bench_impl impl;
	int nprod, ncons;
	unsigned batch;     /* tasks per push / take / write */
	int json;           /* taskq: 100-byte JSON payloads instead of ints */
	double target_mps;  /* minimum tasks/s for "pass"; 0: no target */
	int vs_seed;        /* also needs >= 50x "seed classic" */
	uint64_t pilot;     /* first calibration run size */
	uint64_t quick;     /* size with --quick */
	uint64_t max;       /* largest run size */
	int stats_hz;       /* taskq: a reader calls tq_stats_get this often during the run; -1: back to back */
};

struct bench_counter {
	_Alignas(64) _Atomic uint64_t n;
};

/* Shared (MAP_SHARED | MAP_ANONYMOUS) by the parent and the children of a run. */
struct bench_shared {
	_Alignas(64) _Atomic int ready; /* children waiting at the barrier */
	_Atomic int go;                 /* the parent released them */
	_Alignas(64) _Atomic uint64_t consumed; /* tasks processed, all consumers */
	_Alignas(64) _Atomic uint64_t done_ns;  /* when consumed reached the total */
	_Atomic uint64_t dups;          /* tasks seen more than once */
	_Atomic uint64_t bad;           /* values / payloads that were never pushed */
	struct bench_counter progress[BENCH_MAX_PROCS]; /* per child, for diagnostics */
};

/* One run of one row. */
struct bench_run {
	const struct bench_row *row;
	struct bench_shared *sh;
	_Atomic uint64_t *bitmap; /* shared, total bits */
	size_t words;
	uint64_t per_prod, total;
	char name[BENCH_NAME_LEN]; /* unique base name of this run's named objects */
	/* implementation state, set up by the parent before fork */
	tq_queue *q; /* the parent's handle; never used by a child */
	pthread_t reader; /* stats_hz: the parent's stats-reader thread */
	_Atomic int reader_stop;
	_Atomic uint64_t reads;
	int fds[2];
	char objname[4][BENCH_NAME_LEN + 16];
};

/* What one run measured. */
struct bench_result {
	uint64_t total;
	double secs;
	double rate; /* tasks per second */
	char msg[512]; /* why it failed */
};

/* Parent-side hooks and child bodies of one implementation. A child body
 * returns the child's exit status (0 on success). */
struct bench_ops {
	int (*setup)(struct bench_run *r);
	void (*after_fork)(struct bench_run *r); /* may be NULL */
	int (*producer)(struct bench_run *r, int p);
	int (*consumer)(struct bench_run *r, int c);
	void (*diagnose)(struct bench_run *r);   /* may be NULL; on a hang */
	void (*teardown)(struct bench_run *r, int ok);
};

extern const struct bench_ops bench_taskq_ops;
extern const struct bench_ops bench_pipe_ops;
extern const struct bench_ops bench_mq_ops;
extern const struct bench_ops bench_seed_ops;

/* A consumer's private view. */
struct bench_cons {
	struct bench_run *run;
	int idx;             /* child index (nprod + consumer number) */
	uint64_t *bits;
	uint64_t nprod, per_prod;
	uint64_t count, dups, bad;
};

/* ------------------------------------------------------------ runner.c */

uint64_t bench_now_ns(void);

/* Runs `row` once with about `want` tasks; 0 if every task arrived exactly once. */
int bench_run_once(const struct bench_row *row, uint64_t want, struct bench_result *res);

/* Child side: announce readiness, then wait for the start. */
void bench_child_ready(struct bench_run *r);
/* Child side: print the problem and exit with status 3. */
_Noreturn void bench_child_die(struct bench_run *r, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int bench_cons_init(struct bench_cons *c, struct bench_run *r, int consumer);
/* Adds k processed tasks to the shared count; returns 1 once the total is reached. */
int bench_consumed(struct bench_run *r, uint64_t k);
/* Merges the private bitmap into the shared one and frees it. */
void bench_cons_finish(struct bench_cons *c);

/* Named objects to remove at exit or on SIGINT / SIGTERM. */
enum bench_name_type { BENCH_NAME_TASKQ, BENCH_NAME_SHM, BENCH_NAME_SEM, BENCH_NAME_MQ };
void bench_name_add(enum bench_name_type type, const char *name);
void bench_name_del(enum bench_name_type type, const char *name);
/* Removes what earlier runs (of dead processes) left in /dev/shm and /dev/mqueue. */
void bench_cleanup_leftovers(void);
/* Installs the parent's signal handlers and the exit cleanup. */
void bench_install_handlers(void);

static inline void bench_progress(struct bench_run *r, int idx, uint64_t n)
{
	atomic_store_explicit(&r->sh->progress[idx].n, n, memory_order_relaxed);
}

static inline void bench_mark(struct bench_cons *c, uint64_t v)
{
	uint64_t p = v >> BENCH_SEQ_BITS, s = v & BENCH_SEQ_MASK;
	if (p >= c->nprod || s >= c->per_prod) {
		c->bad++;
		return;
	}
	uint64_t i = p * c->per_prod + s;
	uint64_t bit = UINT64_C(1) << (i & 63);
	uint64_t *w = &c->bits[i >> 6];
	c->dups += (*w & bit) != 0;
	*w |= bit;
}

/* The same for a batch: keeps the current bitmap word in a register, so that
 * consecutive values do not form a chain of read-modify-writes in memory.
 * Use as a local variable: begin, add each value, end. */
struct bench_marker {
	uint64_t *bits;
	uint64_t nprod, per_prod;
	uint64_t cw, cb; /* current word index (UINT64_MAX: none) and its bits */
	uint64_t dups, bad;
};

static inline void bench_marker_begin(struct bench_marker *m, const struct bench_cons *c)
{
	m->bits = c->bits;
	m->nprod = c->nprod;
	m->per_prod = c->per_prod;
	m->cw = UINT64_MAX;
	m->cb = 0;
	m->dups = 0;
	m->bad = 0;
}

static inline void bench_marker_add(struct bench_marker *m, uint64_t v)
{
	uint64_t p = v >> BENCH_SEQ_BITS, s = v & BENCH_SEQ_MASK;
	if (p >= m->nprod || s >= m->per_prod) {
		m->bad++;
		return;
	}
	uint64_t i = p * m->per_prod + s, w = i >> 6;
	if (w != m->cw) {
		if (m->cw != UINT64_MAX)
			m->bits[m->cw] = m->cb;
		m->cw = w;
		m->cb = m->bits[w];
	}
	m->dups += (m->cb >> (i & 63)) & 1;
	m->cb |= UINT64_C(1) << (i & 63);
}

static inline void bench_marker_end(struct bench_marker *m, struct bench_cons *c)
{
	if (m->cw != UINT64_MAX)
		m->bits[m->cw] = m->cb;
	c->dups += m->dups;
	c->bad += m->bad;
}

#endif
