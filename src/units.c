/* SPDX-License-Identifier: MIT */
/*
 * units.c - the payload units of slot tasks: runs of 64-byte units taken
 * and given back by the owner of a slot, each unit's owner word naming the
 * task it belongs to (docs/design.md, section 19).
 */
#include <string.h>

#include "fault.h"
#include "internal.h"

/* Gives back the run the record of slot idx names, if it is still task
 * id's: each owner word id -> 0 (a word holding another id, or 0, is left
 * alone, so that repeating this, or running it on a stale record, changes
 * nothing). Caller owns the slot. */
static void give_run(tq_queue *q, uint64_t id, uint64_t first, uint32_t len)
{
	uint64_t k = tq__units_for(len);

	if (!id || !k || first >= q->nunits || k > q->nunits - first)
		return;
	bool any = false;
	for (uint64_t u = first; u < first + k; u++) {
		if (cas64(&q->owners[u], id, 0))
			any = true;
		if (u == first)
			TQ_FAULT("units.give");
	}
	if (any) /* release: a waiter that sees the count sees the words */
		atomic_fetch_add_explicit(&q->h->units_given, 1, memory_order_release);
}

void tq__units_give(tq_queue *q, uint32_t idx)
{
	struct tq_slot *s = &q->slots[idx];

	if (s->kind == TQ_KIND_INT)
		return;
	give_run(q, __atomic_load_n(&s->id, __ATOMIC_RELAXED), s->value, s->len);
	/* The record names no run any more: a task moved out of a lane keeps
	 * its id, so the same id may own a run in another slot by the time
	 * this slot, free, is released again unwritten (a push not accepted,
	 * a move-out's retry); its old record must not give that run back.
	 * A death before this store leaves the slot in its owner state, and
	 * the repeat of the give changes nothing. */
	__atomic_store_n(&s->len, 0, __ATOMIC_RELEASE);
}

/* Length of the run of free words from u (at most k, not past the end). */
static uint64_t free_run(tq_queue *q, uint64_t u, uint64_t k)
{
	uint64_t n = 0;

	while (n < k && u + n < q->nunits && load_rlx(&q->owners[u + n]) == 0)
		n++;
	return n;
}

int tq__units_take(tq_queue *q, uint32_t idx, uint64_t id, uint16_t kind, uint32_t len, uint64_t *first)
{
	struct tq_slot *s = &q->slots[idx];
	uint64_t k = tq__units_for(len);

	/* A slot comes to its writer with a record that names no run
	 * (tq__units_give cleared its length; a fresh slot's is 0). */
	*first = 0;
	s->kind = kind;
	s->len = 0;
	__atomic_store_n(&s->id, id, __ATOMIC_RELAXED);
	if (k == 0) {
		s->value = 0;
		s->len = len;
		return 0;
	}
	if (k > q->nunits)
		return TQ_E2BIG;
	uint64_t start = load_rlx(&q->h->unit_hint);
	if (start >= q->nunits)
		start = 0;
	/* One turn of the area, first fit from the hint. */
	for (uint64_t scanned = 0, u = start; scanned < q->nunits + k;) {
		if (u + k > q->nunits) { /* a run never wraps */
			scanned += q->nunits - u;
			u = 0;
			continue;
		}
		uint64_t n = free_run(q, u, k);
		if (n < k) {
			scanned += n + 1;
			u += n + 1;
			continue;
		}
		/* The run is named before any word is taken (U1), and its
		 * length with it: recovery gives back what the record names. */
		__atomic_store_n(&s->value, u, __ATOMIC_RELEASE);
		__atomic_store_n(&s->len, len, __ATOMIC_RELEASE);
		uint64_t got = 0;
		for (; got < k; got++) {
			if (!cas64(&q->owners[u + got], 0, id))
				break;
			if (got == 0)
				TQ_FAULT("units.take");
		}
		if (got == k) {
			store_rlx(&q->h->unit_hint, u + k < q->nunits ? u + k : 0);
			*first = u; /* the caller copies here, not at a value read back */
			return 0;
		}
		/* Lost a word to another taker: its own words back, then on.
		 * A waiter that found no room while they were held is told. */
		for (uint64_t i = 0; i < got; i++)
			store_rel(&q->owners[u + i], 0);
		if (got) {
			atomic_fetch_add_explicit(&q->h->units_given, 1, memory_order_release);
			tq__bell_ring_if_waiting(&q->h->free_ring.bell);
		}
		scanned += got + 1;
		u += got + 1;
	}
	__atomic_store_n(&s->len, 0, __ATOMIC_RELEASE);
	return TQ_EAGAIN;
}

TQ_API int tq_payload_area(const tq_queue *q, uint64_t *held_bytes, uint64_t *total_bytes, uint64_t *largest_free)
{
	uint64_t held = 0, run = 0, best = 0;

	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	for (uint64_t u = 0; u < q->nunits; u++) {
		if (load_rlx(&q->owners[u])) {
			held++;
			run = 0;
		} else if (++run > best) {
			best = run;
		}
	}
	if (held_bytes)
		*held_bytes = held * 64;
	if (total_bytes)
		*total_bytes = q->nunits * 64;
	if (largest_free)
		*largest_free = best * 64;
	return 0;
}
