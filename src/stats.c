/* SPDX-License-Identifier: MIT */
/*
 * stats.c - run state, statistics, histograms, per-process views
 * (docs/metrics.md).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

TQ_API int tq_set_run_state(tq_queue *q, int state)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (state < TQ_RUNNING || state > TQ_PAUSED)
		return TQ_EINVAL;
	atomic_store(&q->h->run_state, (uint32_t)state);
	tq__event(q, TQ_EV_STATE, (uint64_t)state, 0, NULL);
	/* Wake sleepers so that they see the change now. */
	tq__bell_ring(&q->h->ready_ring.bell);
	tq__bell_ring(&q->h->free_ring.bell);
	return 0;
}

TQ_API int tq_run_state(const tq_queue *q)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	uint32_t s = load_acq(&q->h->run_state);
	return s <= TQ_PAUSED ? (int)s : TQ_EBADQUEUE;
}

static void read_counters(const struct tq_proc *p, tq_counters *c)
{
	c->pushed = load_rlx(&p->c[C_PUSHED]) + load_rlx(&p->c[C_LPUSHED]);
	c->taken = load_rlx(&p->c[C_TAKEN]) + load_rlx(&p->c[C_LTAKEN]);
	c->acked = load_rlx(&p->c[C_ACKED]) + load_rlx(&p->c[C_LACKED]);
	c->failed = load_rlx(&p->c[C_FAILED]) + load_rlx(&p->c[C_LFAILED]);
	c->retried = load_rlx(&p->c[C_RETRIED]) + load_rlx(&p->c[C_LRETRIED]);
	c->dead = load_rlx(&p->c[C_DEAD]);
	c->expired = load_rlx(&p->c[C_EXPIRED]) + load_rlx(&p->c[C_LEXPIRED]);
	c->recovered = load_rlx(&p->c[C_RECOVERED]) + load_rlx(&p->c[C_LRECOVERED]);
	c->dead_overflow = load_rlx(&p->c[C_DEAD_OVERFLOW]);
	c->lost = load_rlx(&p->c[C_LOST]);
}


TQ_API int tq_counters_self(const tq_queue *q, tq_counters *out)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out)
		return TQ_EINVAL;
	if (q->observer)
		memset(out, 0, sizeof(*out)); /* it does nothing that counts */
	else
		read_counters(q->me, out);
	return 0;
}

/* Is active record r's holder to be counted as attached? An observer,
 * which recovers nobody, leaves out a holder that died and is not yet
 * recovered (its liveness lock is free); a worker's handle recovers such a
 * record before reading (tq_stats_get) or on open, and counts every
 * active record as before. */
static bool counted_alive(tq_queue *q, uint32_t r)
{
	return !q->observer || tq__ofd_held(q->fd, r);
}

/* Sums the metrics (counters and histograms) of every process, alive or
 * gone; *procs counts the attached ones (counted_alive). */
static void sum_metrics(tq_queue *q, uint64_t *m, uint32_t *procs)
{
	memcpy(m, q->h->retired, sizeof(uint64_t) * TQ_METRICS);
	*procs = 0;
	for (uint32_t r = 0; r < tq__procs_hi(q); r++) {
		const struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE)
			continue;
		for (int i = 0; i < TQ_METRICS; i++)
			m[i] += load_rlx(&p->c[i]);
		*procs += counted_alive(q, r);
	}
}

static void latency_from(const uint64_t *h, tq_latency *out)
{
	uint64_t total = 0, cum = 0;
	const double ps[3] = {0.50, 0.90, 0.99};
	uint64_t *dst[3] = {&out->p50_ns, &out->p90_ns, &out->p99_ns};
	int next = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned b = 0; b < TQ_HBUCKETS; b++)
		total += h[b];
	out->count = total;
	out->mean_ns = total ? h[TQ_HBUCKETS] / total : 0;
	for (unsigned b = 0; b < TQ_HBUCKETS && total; b++) {
		cum += h[b];
		while (next < 3 && (double)cum >= ps[next] * (double)total)
			*dst[next++] = hist_upper_ns(b);
		if (h[b])
			out->max_ns = hist_upper_ns(b);
	}
}

/* Rates over the last w seconds from the once-a-second samples. Samples
 * are taken by the maintenance of attached workers; when none took one for
 * SAMPLES_STALE_NS (none attached, only observers), the totals now (m, as
 * a sample sums them) stand for the newest sample, so that the rates fall
 * to what really happened since rather than stay at their last value. */
#define SAMPLES_STALE_NS 2000000000ull
static void rates_from(const struct tq_hdr *h, const uint64_t *m, uint64_t now, double pushed[3], double done[3])
{
	static const uint64_t windows[3] = {1, 10, 60};
	uint32_t n = load_acq(&h->sample_next);

	for (int w = 0; w < 3; w++)
		pushed[w] = done[w] = 0;
	if (n < 1)
		return;
	const struct tq_sample *last = &h->samples[(n - 1) % TQ_SAMPLES];
	struct tq_sample virt;
	if (now > last->t_ns && now - last->t_ns > SAMPLES_STALE_NS) {
		virt = (struct tq_sample){now, m[C_PUSHED] + m[C_LPUSHED], m[C_ACKED] + m[C_LACKED],
					  m[C_FAILED] + m[C_LFAILED]};
		last = &virt;
		n++; /* the real samples are all "back" of it */
	} else if (n < 2) {
		return;
	}
	uint32_t have = n < TQ_SAMPLES ? n : TQ_SAMPLES - 8; /* leave room for a writer */
	for (int w = 0; w < 3; w++) {
		const struct tq_sample *old = NULL;
		for (uint32_t back = 1; back < have; back++) {
			old = &h->samples[(n - 1 - back) % TQ_SAMPLES];
			if (last->t_ns - old->t_ns >= windows[w] * 1000000000ull - 100000000ull)
				break;
		}
		if (!old || last->t_ns <= old->t_ns)
			continue;
		double dt = (double)(last->t_ns - old->t_ns) / 1e9;
		/* A sum read while a record's counters were being folded into
		 * the retired totals can be off for that instant: never below 0. */
		pushed[w] = last->pushed > old->pushed ? (double)(last->pushed - old->pushed) / dt : 0;
		done[w] = last->acked > old->acked ? (double)(last->acked - old->acked) / dt : 0;
	}
}

static uint32_t clamp_cap(uint64_t v, uint32_t cap)
{
	return v > cap ? cap : (uint32_t)v;
}

/* The enqueue time of the task at the ready ring's head: the oldest first
 * push among ready tasks, but for retries, which rejoin at the tail. */
static uint64_t oldest_ready(tq_queue *q)
{
	uint64_t head = load_acq(&q->readyr.r->pop.pos);
	uint32_t idx = __atomic_load_n(&q->readyr.cells[head & q->readyr.mask], __ATOMIC_RELAXED);
	return idx < q->nslots ? load_rlx(&q->slots[idx].enq_ns) : 0;
}

TQ_API int tq_stats_get(tq_queue *q, tq_stats *out)
{
	uint64_t m[TQ_METRICS];

	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out)
		return TQ_EINVAL;
	if (!q->observer) /* observers run no maintenance */
		tq__maybe_maintain(q, tq_now_ns());
	memset(out, 0, sizeof(*out));
	_Static_assert(sizeof(tq_counters) == C_LPUSHED * sizeof(uint64_t), "counter order");
	sum_metrics(q, m, &out->procs);
	memcpy(&out->total, m, sizeof(out->total));
	/* The lanes' ready tasks before their leased ones (see
	 * tq__lane_totals): a take in between is counted twice, at worst,
	 * and the clamping below keeps the sum at the slots. */
	uint64_t lane_oldest = 0;
	uint64_t lane_ready = tq__lanes_ready(q, NULL, &lane_oldest);
	uint64_t lane_leased = tq__lane_totals(q, &out->total);
	out->total.retried += m[C_LRETRIED];
	latency_from(m + C__COUNT + H_WAIT * TQ_HSLOTS, &out->wait);
	latency_from(m + C__COUNT + H_PROC * TQ_HSLOTS, &out->processing);
	rates_from(q->h, m, tq_now_ns(), out->pushed_per_s, out->done_per_s);
	/*
	 * The gauges in O(1), from what is maintained anyway: the two rings'
	 * positions (ready, free), the dead-letter and delayed counts. In
	 * progress is the rest: leased tasks, plus any slot in motion between
	 * two states at this instant. Each figure is clamped to the capacity,
	 * whatever the shared memory holds.
	 */
	/* Read at slightly different instants, the figures can overlap by a
	 * task in motion; each is clamped to what the ones before it left, so
	 * that they always add up to the slots (capacity + dead capacity +
	 * delay capacity). */
	uint32_t room = q->nslots;
	uint32_t ring_ready = tq__ring_count(&q->readyr);
	uint32_t ready = clamp_cap((uint64_t)ring_ready + lane_ready, room);
	room -= ready;
	uint32_t dead = clamp_cap(load_rlx(&q->h->dead_count), room);
	room -= dead;
	uint32_t delayed = clamp_cap(load_rlx(&q->h->delayed_count), room);
	room -= delayed;
	/* Slots neither free, ready, dead nor delayed are leased (or in
	 * motion); lane tasks are leased while a claim holds them unsettled. */
	uint64_t slot_busy = (uint64_t)ring_ready + load_rlx(&q->h->dead_count) + load_rlx(&q->h->delayed_count) +
			     tq__ring_count(&q->freer);
	uint64_t slot_leased = slot_busy < q->nslots ? q->nslots - slot_busy : 0;
	uint32_t leased = clamp_cap(slot_leased + lane_leased, room);
	room -= leased;
	uint32_t free_slots = room;
	out->capacity = q->cap;
	out->slots = q->nslots;
	out->dead_capacity = q->dead_cap;
	out->dead_over = dead > q->dead_cap ? dead - q->dead_cap : 0;
	out->delay_capacity = q->delay_cap;
	out->delay_over = delayed > q->delay_cap ? delayed - q->delay_cap : 0;
	out->ready = ready;
	out->free_slots = free_slots;
	out->dead = dead;
	out->delayed = delayed;
	out->leased = leased;
	out->recoveries = load_rlx(&q->h->recoveries);
	out->run_state = (int)load_rlx(&q->h->run_state);
	uint64_t oldest = ring_ready ? oldest_ready(q) : 0;
	if (lane_oldest && (!oldest || lane_oldest < oldest))
		oldest = lane_oldest;
	out->oldest_ready_ns = ready ? oldest : 0;
	return 0;
}

TQ_API int tq_histograms(tq_queue *q, tq_histogram *wait, tq_histogram *processing)
{
	uint64_t m[TQ_METRICS];
	uint32_t procs;

	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	_Static_assert(TQ_HIST_BUCKETS == TQ_HBUCKETS, "histogram size");
	sum_metrics(q, m, &procs);
	tq_histogram *out[2] = {wait, processing};
	for (int h = 0; h < 2; h++) {
		if (!out[h])
			continue;
		for (unsigned b = 0; b < TQ_HBUCKETS; b++) {
			out[h]->count[b] = m[C__COUNT + h * TQ_HSLOTS + b];
			out[h]->upper_ns[b] = hist_upper_ns(b);
		}
		out[h]->sum_ns = m[C__COUNT + h * TQ_HSLOTS + TQ_HBUCKETS];
	}
	return 0;
}

TQ_API int tq_procs(tq_queue *q, tq_proc_info *out, size_t max)
{
	size_t k = 0;

	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out && max)
		return TQ_EINVAL;
	uint32_t *leased = calloc(TQ_MAX_PROCS + 1, sizeof(*leased));
	if (!leased)
		return TQ_ENOMEM;
	for (uint32_t i = 0; i < q->nslots; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) == ST_LEASED && st_owner(s) <= TQ_MAX_PROCS)
			leased[st_owner(s)]++;
	}
	for (uint32_t r = 0; r < tq__procs_hi(q) && k < max; r++) {
		const struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE || !counted_alive(q, r))
			continue;
		tq_proc_info *o = &out[k++];
		memset(o, 0, sizeof(*o));
		o->slot = r;
		o->pid = p->pid;
		o->attached_ns = p->attached_ns;
		o->last_seen_ns = load_rlx(&p->last_seen_ns);
		o->leased = leased[r + 1] + tq__lane_leased_by(q, r);
		o->waiting = load_rlx(&p->waiting);
		o->done_per_s = (double)load_rlx(&p->rate_milli) / 1000.0;
		read_counters(p, &o->counters);
	}
	free(leased);
	return (int)k;
}
