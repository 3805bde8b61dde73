/* SPDX-License-Identifier: MIT */
/*
 * spsc.c - the ceiling: a raw lock-free single-producer single-consumer ring
 * in shared memory (an anonymous MAP_SHARED mapping made before the fork),
 * with no task semantics: no ids, no leases, no acks, no recovery, no
 * sleeping: both sides busy-poll with a pause instruction (bench_spin: with a
 * sched_yield() every 256 empty polls, for when they share a core).
 *
 * SPSC_SLOTS records of 8 bytes (the value) or BENCH_REC_LEN bytes (the
 * JSON text every 100-byte row carries, bench.h, checked whole). The producer fills a
 * batch of up to `batch` records and publishes the tail with one release
 * store per batch; the consumer reads what is published, up to `batch` at a
 * time, and releases the head with one release store per batch. Each side
 * keeps a private copy of the other's index and reloads it only when the
 * copy says full / empty. Exactly-once is checked as in every other row.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SPSC_SLOTS 8192u /* a power of two: 64 KiB of 8-byte tasks, like a pipe's buffer */

struct spsc_ring {
	_Alignas(64) _Atomic uint64_t tail; /* written by the producer only */
	_Alignas(64) _Atomic uint64_t head; /* written by the consumer only */
	_Alignas(64) unsigned char data[];
};

static size_t spsc_size(const struct bench_run *r)
{
	return r->row->size ? r->row->size : sizeof(uint64_t);
}

static int spsc_setup(struct bench_run *r)
{
	r->mem_len = sizeof(struct spsc_ring) + (size_t)SPSC_SLOTS * spsc_size(r);
	void *p = mmap(NULL, r->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "  [%s] mmap of %zu bytes: %s\n", r->row->name, r->mem_len, strerror(errno));
		r->mem = NULL;
		return -1;
	}
	memset(p, 0, r->mem_len); /* fault the pages in before the fork */
	r->mem = p;
	return 0;
}

static int spsc_producer(struct bench_run *r, int p)
{
	struct spsc_ring *ring = r->mem;
	const size_t size = spsc_size(r);
	const uint64_t batch = r->row->batch, mask = SPSC_SLOTS - 1;
	const uint64_t base = (uint64_t)p << BENCH_SEQ_BITS, per = r->per_prod;
	unsigned char rec[BENCH_REC_LEN]; /* every record is written whole, 100 bytes */
	memcpy(rec, bench_rec_tmpl, BENCH_REC_LEN);
	if (size != sizeof(uint64_t) && size != sizeof rec)
		bench_child_die(r, "producer", "task size %zu: only 8 or %zu", size, sizeof rec);
	uint64_t tail = 0, head = 0;
	bench_child_ready(r);
	for (uint64_t s = 0; s < per;) {
		uint64_t n = per - s < batch ? per - s : batch;
		unsigned spins = 0;
		while (tail + n - head > SPSC_SLOTS) {
			head = atomic_load_explicit(&ring->head, memory_order_acquire);
			if (tail + n - head > SPSC_SLOTS)
				bench_spin(&spins);
		}
		if (size == sizeof(uint64_t)) {
			uint64_t *slot = (uint64_t *)(void *)ring->data;
			for (uint64_t i = 0; i < n; i++)
				slot[(tail + i) & mask] = base | (s + i);
		} else {
			for (uint64_t i = 0; i < n; i++) {
				bench_rec_fill(rec, base | (s + i));
				memcpy(ring->data + ((tail + i) & mask) * BENCH_REC_LEN, rec, BENCH_REC_LEN);
			}
		}
		tail += n;
		atomic_store_explicit(&ring->tail, tail, memory_order_release);
		s += n;
		if ((s & 0xffff) < n || s == per)
			bench_progress(r, p, s);
	}
	return 0;
}

static int spsc_consumer(struct bench_run *r, int c)
{
	struct spsc_ring *ring = r->mem;
	const size_t size = spsc_size(r);
	const uint64_t batch = r->row->batch, mask = SPSC_SLOTS - 1;
	struct bench_cons cs;
	if (bench_cons_init(&cs, r, c) != 0)
		bench_child_die(r, "consumer", "out of memory");
	uint64_t head = 0, tail = 0;
	unsigned spins = 0;
	bench_child_ready(r);
	while (cs.count < r->total) {
		if (head == tail) {
			tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
			if (head == tail) {
				bench_spin(&spins);
				continue;
			}
		}
		spins = 0;
		uint64_t n = tail - head < batch ? tail - head : batch;
		struct bench_marker m;
		uint64_t vals[BENCH_PIPE_MAX_BATCH];
		size_t nv = 0;
		if (n > BENCH_PIPE_MAX_BATCH)
			n = BENCH_PIPE_MAX_BATCH;
		bench_marker_begin(&m, &cs);
		if (size == sizeof(uint64_t)) {
			const uint64_t *slot = (const uint64_t *)(const void *)ring->data;
			for (uint64_t i = 0; i < n; i++)
				vals[nv++] = slot[(head + i) & mask];
		} else {
			for (uint64_t i = 0; i < n; i++) {
				if (bench_rec_read(ring->data + ((head + i) & mask) * size, &vals[nv]) != 0) {
					m.bad++;
					continue;
				}
				nv++;
			}
		}
		bench_marker_add_run(&m, vals, nv);
		bench_marker_end(&m, &cs);
		head += n;
		atomic_store_explicit(&ring->head, head, memory_order_release);
		cs.count += n;
		if ((cs.count & 0xffff) < n || cs.count == r->total)
			bench_progress(r, cs.idx, cs.count);
	}
	bench_consumed(r, cs.count);
	bench_cons_finish(&cs);
	return 0;
}

static void spsc_teardown(struct bench_run *r, int ok)
{
	(void)ok;
	if (r->mem)
		munmap(r->mem, r->mem_len);
	r->mem = NULL;
}

const struct bench_ops bench_spsc_ops = {
	.setup = spsc_setup,
	.after_fork = NULL,
	.producer = spsc_producer,
	.consumer = spsc_consumer,
	.diagnose = NULL,
	.teardown = spsc_teardown,
};
