/* SPDX-License-Identifier: MIT */
/*
 * latency.c - push-to-take latency rows: one producer sends one task at a
 * time, stamped with its push time; one consumer takes one at a time and
 * records take time - push time.
 *
 * A task's value is (seq << 40) | (push time - t_base), where t_base is the
 * parent's CLOCK_MONOTONIC just before the fork (40 bits of ns: 18 minutes),
 * so the 8-byte task itself carries its timestamp and the consumer reads no
 * other shared memory to time it. seq is checked exactly-once as in the
 * other rows.
 *
 * Two paces:
 *   pace_hz > 0  task s is pushed at t_start + s / pace_hz (an absolute
 *                sleep, 1 ns timer slack): at 10,000/s the consumer is idle
 *                between tasks, so this measures its wake-up.
 *   pace_hz = 0  back to back: task s is pushed as soon as the consumer has
 *                taken task s - 1 (it counts what it took in shared memory;
 *                the producer spins on that count). One task in flight,
 *                both processes busy: the latency of the hot path under full
 *                load, without the queueing delay of a backlog (an
 *                unbounded backlog would measure only the buffer's depth).
 *                Its rate changes tenfold with whether the two processes
 *                share a core, so these runs last a time (the run's secs),
 *                not a count: the producer stops, records how many it sent,
 *                and the consumer ends once it has taken that many.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

void bench_pacer_init(struct bench_pacer *p, struct bench_run *r)
{
	p->run = r;
	p->gap_ns = r->row->pace_hz ? 1000000000ull / r->row->pace_hz : 0;
	if (p->gap_ns)
		prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* wake on time, not up to 50 us late */
	p->start_ns = bench_now_ns();
	p->end_ns = bench_time_bounded(r->row) ? p->start_ns + (uint64_t)(r->secs * 1e9) : UINT64_MAX;
}

int bench_pacer_next(struct bench_pacer *p, uint64_t s, uint64_t *v)
{
	struct bench_shared *sh = p->run->sh;
	if (p->gap_ns) {
		uint64_t due = p->start_ns + s * p->gap_ns;
		struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull),
				      .tv_nsec = (long)(due % 1000000000ull)};
		while (bench_now_ns() < due && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	} else {
		unsigned spins = 0;
		while (atomic_load_explicit(&sh->taken, memory_order_acquire) < s)
			bench_spin(&spins);
	}
	uint64_t now = bench_now_ns();
	if (s > 0 && now >= p->end_ns) {
		atomic_store_explicit(&sh->final_total, s, memory_order_relaxed);
		atomic_store_explicit(&sh->stopped, 1, memory_order_release);
		return 1;
	}
	*v = s << BENCH_SEQ_BITS | ((now - sh->t_base) & BENCH_SEQ_MASK);
	return 0;
}

static unsigned lat_index(uint64_t v)
{
	if (v < 2 * BENCH_LAT_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
	unsigned sub = (unsigned)(v >> (e - 6)) & (BENCH_LAT_SUB - 1);
	return 2 * BENCH_LAT_SUB + (e - 7) * BENCH_LAT_SUB + sub;
}

double bench_lat_value(unsigned i)
{
	if (i < 2 * BENCH_LAT_SUB)
		return (double)i;
	unsigned e = (i - 2 * BENCH_LAT_SUB) / BENCH_LAT_SUB + 7;
	unsigned sub = (i - 2 * BENCH_LAT_SUB) % BENCH_LAT_SUB;
	double width = (double)(UINT64_C(1) << (e - 6));
	return (double)(UINT64_C(1) << e) + ((double)sub + 0.5) * width;
}

int bench_lat_init(struct bench_lat *l, struct bench_cons *c)
{
	l->cons = c;
	l->n = 0;
	l->hist = calloc(BENCH_LAT_BUCKETS, sizeof *l->hist);
	return l->hist ? 0 : -1;
}

void bench_lat_take(struct bench_lat *l, uint64_t v, uint64_t now)
{
	struct bench_cons *c = l->cons;
	struct bench_shared *sh = c->run->sh;
	uint64_t pushed = sh->t_base + (v & BENCH_SEQ_MASK);
	uint64_t d = now > pushed ? now - pushed : 0;
	l->hist[lat_index(d)]++;
	l->n++;
	bench_mark(c, v >> BENCH_SEQ_BITS); /* producer 0, sequence number */
	c->count++;
	atomic_store_explicit(&sh->taken, c->count, memory_order_release);
}

int bench_lat_more(struct bench_lat *l)
{
	struct bench_cons *c = l->cons;
	struct bench_shared *sh = c->run->sh;
	if (c->count >= c->run->total)
		return 0;
	if (!atomic_load_explicit(&sh->stopped, memory_order_acquire))
		return 1;
	return c->count < atomic_load_explicit(&sh->final_total, memory_order_relaxed);
}

void bench_lat_finish(struct bench_lat *l)
{
	struct bench_shared *sh = l->cons->run->sh;
	for (unsigned i = 0; i < BENCH_LAT_BUCKETS; i++)
		sh->lat_hist[i] += l->hist[i];
	atomic_fetch_add(&sh->lat_count, l->n);
	/* the only consumer: it completes the run (the total may be the producer's) */
	atomic_fetch_add(&sh->consumed, l->cons->count);
	atomic_store_explicit(&sh->done_ns, bench_now_ns(), memory_order_release);
	free(l->hist);
	l->hist = NULL;
}

double bench_lat_quantile(const uint64_t *hist, uint64_t count, double q)
{
	if (count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)count); /* values below the quantile */
	if (rank >= count)
		rank = count - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < BENCH_LAT_BUCKETS; i++) {
		seen += hist[i];
		if (seen > rank)
			return bench_lat_value(i);
	}
	return bench_lat_value(BENCH_LAT_BUCKETS - 1);
}
