/* SPDX-License-Identifier: MIT */
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
 *
 * Three kinds of rows (enum bench_mode): throughput (tasks/s); latency (one
 * producer and one consumer, one task per call, push-to-take percentiles,
 * latency.c); idle (a taskq consumer waiting on an empty queue: its CPU use).
 * taskq children also report the futex calls the library made for them
 * (tq_sys_counts_get), summed in the shared block.
 */
#ifndef TASKQ_BENCH_H
#define TASKQ_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "taskq.h"

#define BENCH_MAX_PROCS 16
#define BENCH_SEQ_BITS 40
#define BENCH_SEQ_MASK ((UINT64_C(1) << BENCH_SEQ_BITS) - 1)
#define BENCH_JSON_LEN 100
#define BENCH_REC_LEN 100 /* baselines' 100-byte records: the value, then a fixed pattern */
#define BENCH_NAME_LEN 96
#define BENCH_MAX_BATCH 64
#define BENCH_PIPE_MAX_BATCH 256 /* the pipe's buffers are allocated: the batch sweep goes to 256 */

/* Latency rows: a task's 64-bit value is (seq << 40) | (push time - t_base);
 * push-to-take times go into a log-linear histogram of 64 buckets per power
 * of two (each value is reported as its bucket's midpoint: within 0.8%). */
#define BENCH_LAT_SUB 64
#define BENCH_LAT_BUCKETS (2 * BENCH_LAT_SUB + (64 - 7) * BENCH_LAT_SUB)
#define BENCH_LAT_MAX_TASKS (UINT64_C(1) << (64 - BENCH_SEQ_BITS))

enum bench_impl {
	IMPL_TASKQ,      /* throughput: tq_push / tq_take / tq_ack in batches */
	IMPL_PIPE,       /* pipe(2), `batch` tasks of `size` bytes per write */
	IMPL_MQ,         /* POSIX message queue, `batch` 8-byte tasks per message */
	IMPL_SEED,       /* the seed's ring with three named semaphores */
	IMPL_SPSC,       /* a raw lock-free single-producer single-consumer ring */
	IMPL_SEQPACKET,  /* AF_UNIX SOCK_SEQPACKET socket pair, `batch` tasks per send */
	IMPL_TASKQ_LAT,  /* latency: one task per tq_push / tq_take */
	IMPL_PIPE_LAT,   /* latency: one task per write / read */
	IMPL_TASKQ_IDLE, /* a consumer waiting on an empty queue */
};

enum bench_mode { MODE_THROUGHPUT, MODE_LATENCY, MODE_IDLE };

/* One row of the table. */
struct bench_row {
	const char *name;
	enum bench_impl impl;
	enum bench_mode mode;
	int nprod, ncons;
	unsigned batch;     /* tasks per push / take / write */
	unsigned size;      /* baselines: bytes per task, 8 (0 means 8) or BENCH_REC_LEN */
	int json;           /* taskq: 100-byte JSON payloads instead of ints */
	unsigned pace_hz;   /* latency: tasks per second; 0: back to back (see latency.c) */
	double secs;        /* intended length of a run; 0: the driver's default */
	uint64_t pilot;     /* first calibration run size */
	uint64_t quick;     /* size with --quick */
	uint64_t max;       /* largest run size */
	int stats_hz;       /* taskq: a reader calls tq_stats_get this often during the run; -1: back to back;
			     * STATS_SPIN: a thread that spins back to back without reading (the control) */
	unsigned capacity;  /* taskq: the queue's capacity (0: 10,000, the seed's ring size) */
	int ints;           /* taskq: producers push with tq_push_ints, consumers take with tq_take_ints and ack with tq_batch_ack */
	unsigned ahead;     /* taskq: consumers call tq_set_take_ahead(ahead) (0: off) */
	int later;          /* taskq: consumers ack with tq_ack_later (groups of TQ_ACK_LATER_MAX) */
};

#define STATS_SPIN (-2)

struct bench_counter {
	_Alignas(64) _Atomic uint64_t n;
};

/* Shared (MAP_SHARED | MAP_ANONYMOUS) by the parent and the children of a run. */
struct bench_shared {
	_Alignas(64) _Atomic int ready; /* children waiting at the barrier */
	_Atomic int go;                 /* the parent released them */
	uint64_t t_base;                /* CLOCK_MONOTONIC before the fork: latency rows' time origin */
	_Alignas(64) _Atomic uint64_t consumed; /* tasks processed, all consumers */
	_Alignas(64) _Atomic uint64_t done_ns;  /* when consumed reached the total */
	_Atomic uint64_t dups;          /* tasks seen more than once */
	_Atomic uint64_t bad;           /* values / payloads that were never pushed */
	_Atomic uint64_t futex_waits;   /* taskq children: tq_sys_counts made during the run */
	_Atomic uint64_t futex_wakes;
	_Atomic uint64_t idle_cpu_ns;   /* idle row: the consumer's CPU time while waiting */
	_Atomic uint64_t idle_wall_ns;  /* and the wall time it waited */
	_Atomic uint64_t idle_futex;    /* and the futex calls it made meanwhile */
	_Alignas(64) _Atomic uint64_t taken; /* latency rows: tasks taken so far (back-to-back pacing) */
	_Atomic uint64_t final_total;   /* back-to-back latency rows: tasks sent when time was up */
	_Atomic int stopped;            /* ... and final_total is set */
	struct bench_counter progress[BENCH_MAX_PROCS]; /* per child, for diagnostics */
	_Alignas(64) _Atomic uint64_t lat_count;
	uint64_t lat_hist[BENCH_LAT_BUCKETS]; /* written by the (single) latency consumer at its end */
};

/* One run of one row. */
struct bench_run {
	const struct bench_row *row;
	struct bench_shared *sh;
	_Atomic uint64_t *bitmap; /* shared, total bits */
	size_t words;
	uint64_t per_prod, total;
	double secs;               /* the row's intended run length (idle rows: how long to stay idle) */
	char name[BENCH_NAME_LEN]; /* unique base name of this run's named objects */
	/* implementation state, set up by the parent before fork */
	tq_queue *q; /* the parent's handle; never used by a child */
	pthread_t reader; /* stats_hz: the parent's stats-reader thread */
	_Atomic int reader_stop;
	_Atomic uint64_t reads;
	int fds[2];
	char objname[4][BENCH_NAME_LEN + 16];
	void *mem;      /* IMPL_SPSC: the shared ring */
	size_t mem_len;
};

/* What one run measured. */
struct bench_result {
	uint64_t total;
	double secs;
	double rate; /* tasks per second */
	int has_futex;          /* taskq rows: the children's futex calls */
	uint64_t futex_calls;   /* waits + wakes */
	double futex_per_task;
	uint64_t lat_count;     /* latency rows: samples, and percentiles of push-to-take */
	double p50_us, p99_us, max_us;
	uint64_t lat_hist[BENCH_LAT_BUCKETS]; /* latency rows: the run's histogram (bench_lat_value) */
	double idle_cpu_pct;    /* idle rows: % of one CPU */
	double idle_secs;
	double idle_futex_per_s;
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
extern const struct bench_ops bench_taskq_lat_ops;
extern const struct bench_ops bench_taskq_idle_ops;
extern const struct bench_ops bench_pipe_ops;
extern const struct bench_ops bench_pipe_lat_ops;
extern const struct bench_ops bench_mq_ops;
extern const struct bench_ops bench_seed_ops;
extern const struct bench_ops bench_seqpacket_ops;
extern const struct bench_ops bench_spsc_ops;

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

/* Runs `row` once with about `want` tasks (idle rows: staying idle `secs`);
 * 0 if every task arrived exactly once. */
int bench_run_once(const struct bench_row *row, uint64_t want, double secs, struct bench_result *res);

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

/* Makes bitmap word w the one in a register (storing the one before). */
static inline void bench_marker_word(struct bench_marker *m, uint64_t w)
{
	if (w == m->cw)
		return;
	if (m->cw != UINT64_MAX)
		m->bits[m->cw] = m->cb;
	m->cw = w;
	m->cb = m->bits[w];
}

static inline void bench_marker_add(struct bench_marker *m, uint64_t v)
{
	uint64_t p = v >> BENCH_SEQ_BITS, s = v & BENCH_SEQ_MASK;
	if (p >= m->nprod || s >= m->per_prod) {
		m->bad++;
		return;
	}
	uint64_t i = p * m->per_prod + s;
	bench_marker_word(m, i >> 6);
	m->dups += (m->cb >> (i & 63)) & 1;
	m->cb |= UINT64_C(1) << (i & 63);
}

/* The values v[0..k) at once: as bench_marker_add of each, value by value,
 * unless they are consecutive values of one producer within its range (the
 * common case: a producer's batch arriving whole), whose bits are then set
 * a bitmap word at a time, each word's bits already set counted as
 * duplicates. Either way every value is marked once and every duplicate or
 * foreign value counted; only the cost differs (the per-value check was a
 * third of a fast consumer's time, in every row alike). */
static inline void bench_marker_add_run(struct bench_marker *m, const uint64_t *v, size_t k)
{
	if (k == 0)
		return;
	uint64_t v0 = v[0], diff = 0;
	for (size_t i = 1; i < k; i++)
		diff |= v[i] ^ (v0 + i);
	uint64_t p = v0 >> BENCH_SEQ_BITS, s = v0 & BENCH_SEQ_MASK;
	if (diff || p >= m->nprod || s + k > m->per_prod) {
		for (size_t i = 0; i < k; i++)
			bench_marker_add(m, v[i]);
		return;
	}
	uint64_t i = p * m->per_prod + s, end = i + k;
	while (i < end) {
		uint64_t w = i >> 6, lo = i & 63, n = 64 - lo < end - i ? 64 - lo : end - i;
		uint64_t mask = (n == 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1) << lo;
		bench_marker_word(m, w);
		if (m->cb & mask)
			m->dups += (uint64_t)__builtin_popcountll(m->cb & mask);
		m->cb |= mask;
		i += n;
	}
}

static inline void bench_marker_end(struct bench_marker *m, struct bench_cons *c)
{
	if (m->cw != UINT64_MAX)
		m->bits[m->cw] = m->cb;
	c->dups += m->dups;
	c->bad += m->bad;
}

/* ---------------------------------------------------- records, spinning */

/* Every 100-byte task, in every row (taskq's JSON tasks, the pipe's and the
 * raw ring's records alike), is the same JSON text, built and checked by
 * the same code, so that those rows differ only in how the bytes travel:
 *   {"id":"000000000000007b","op":"sum","args":[1,2,3,4,5,6,7,8],"pad":"xx..x"}
 * exactly BENCH_REC_LEN bytes, the value in 16 hex digits. runner.c builds
 * the template; a record starts as a copy of it. The consumer checks every
 * byte. */
#define BENCH_REC_ID_OFF 7    /* after {"id":" */
#define BENCH_REC_ID_WIDTH 16 /* hex digits */
extern unsigned char bench_rec_tmpl[BENCH_REC_LEN];
void bench_rec_init(void);

/* Two hex digits a byte, and a digit's value (16: not a digit) (runner.c). */
extern char bench_hex2[256][2];
extern unsigned char bench_unhex[256];

/* Writes value v into a record that holds the template. */
static inline void bench_rec_fill(unsigned char *rec, uint64_t v)
{
	unsigned char *p = rec + BENCH_REC_ID_OFF + BENCH_REC_ID_WIDTH;
	for (int i = 0; i < BENCH_REC_ID_WIDTH / 2; i++, v >>= 8) {
		p -= 2;
		memcpy(p, bench_hex2[v & 255], 2);
	}
}

/* The value of a record, or -1 if any byte of it is not as written: the
 * record is compared whole with the template carrying its own digits. */
static inline int bench_rec_read(const unsigned char *rec, uint64_t *v)
{
	unsigned char want[BENCH_REC_LEN];
	memcpy(want, bench_rec_tmpl, BENCH_REC_LEN);
	memcpy(want + BENCH_REC_ID_OFF, rec + BENCH_REC_ID_OFF, BENCH_REC_ID_WIDTH);
	if (memcmp(rec, want, BENCH_REC_LEN) != 0)
		return -1;
	uint64_t x = 0;
	unsigned bad = 0;
	for (int i = 0; i < BENCH_REC_ID_WIDTH; i++) {
		unsigned n = bench_unhex[rec[BENCH_REC_ID_OFF + i]];
		bad |= n;
		x = x << 4 | (n & 15);
	}
	if (bad & 16)
		return -1;
	*v = x;
	return 0;
}

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* One round of a busy-wait: a pause instruction, and every 256th round
 * (about 13 us of pauses on a current x86) sched_yield(), so that two
 * spinning processes that the scheduler put on one core still progress. A
 * spinner with a core of its own only yields when the other side has been
 * silent that long, and then the call returns at once. */
static inline void bench_spin(unsigned *rounds)
{
	if ((++*rounds & 255) == 0)
		sched_yield();
	else
		bench_cpu_relax();
}

/* ---------------------------------------------------------- wedge mode */

/* `taskq-bench --only wedge` (baselines.c): the seed's ring and taskq, one
 * producer and two consumers each; after 1 s one consumer is killed with
 * SIGKILL while it holds sem_mutex (taskq: a batch of leases). Prints the
 * tasks delivered in the second before and the second after the kill;
 * returns 0, or 1 if a run could not be made. */
int bench_wedge_run(void);

/* `taskq-bench --only due` (due.c): how late delayed tasks are delivered
 * after their due time, in a queue of 10,000 and one of 1,000,000 (p50,
 * p99, max); returns 0, or 1 if a run could not be made. */
int bench_due_run(void);

/* ----------------------------------------------------------- latency.c */

/* Producer side of a latency row: waits until task `s` is due (paced rows:
 * t_start + s / pace_hz; back-to-back rows: until the consumer has taken
 * task s - 1), then sets *v to the value to send, stamped with the time now,
 * and returns 0. Back-to-back rows last the run's `secs`, not a count: once
 * that has passed (and everything sent was taken) it records s as the total
 * and returns 1: the producer stops. */
struct bench_pacer {
	struct bench_run *run;
	uint64_t start_ns, gap_ns, end_ns;
};
void bench_pacer_init(struct bench_pacer *p, struct bench_run *r);
int bench_pacer_next(struct bench_pacer *p, uint64_t s, uint64_t *v);
/* Back-to-back latency rows: the run's length is bounded by time; r->total
 * is only an upper bound until the producer stops. */
static inline int bench_time_bounded(const struct bench_row *row)
{
	return row->mode == MODE_LATENCY && row->pace_hz == 0;
}

/* Consumer side: records value v taken at time now (marks it exactly-once,
 * adds the push-to-take time to a private histogram, counts it as taken). */
struct bench_lat {
	struct bench_cons *cons;
	uint64_t *hist;
	uint64_t n;
};
int bench_lat_init(struct bench_lat *l, struct bench_cons *c);
void bench_lat_take(struct bench_lat *l, uint64_t v, uint64_t now);
/* 1 while more tasks are to come: fewer than the total were taken, and the
 * producer has not stopped with everything taken. */
int bench_lat_more(struct bench_lat *l);
/* Publishes the histogram into the shared one, counts the tasks as consumed,
 * records the end time; frees it. */
void bench_lat_finish(struct bench_lat *l);
/* The q-quantile (0..1) of a histogram of `count` values, in ns. */
double bench_lat_quantile(const uint64_t *hist, uint64_t count, double q);
/* The latency (ns) that bucket i of a latency histogram stands for: its midpoint. */
double bench_lat_value(unsigned i);

#endif
