/* SPDX-License-Identifier: MIT */
/*
 * atomics.h - the memory-ordering vocabulary of libtaskq (private).
 *
 * Every shared word that more than one process touches is an _Atomic and
 * is accessed only through these helpers, so that the ordering each access
 * needs is written at the call site:
 *
 *   load_acq / store_rel   publication. A writer fills memory with plain
 *                          stores, then store_rel()s a flag (a ring tail, a
 *                          slot state); a reader that load_acq()s the flag
 *                          and sees the new value also sees everything
 *                          written before it.
 *   load_rlx / store_rlx   values whose readers need no other memory with
 *                          them (statistics, hints, a lease deadline that a
 *                          sweeper only compares).
 *   cas                    ownership changes of a slot, sequentially
 *                          consistent: two processes racing to take the
 *                          same slot (an ack against an expiry) cannot both
 *                          win.
 *   fence + load, or RMW   the store-load ordering between "publish" and
 *                          "is anyone asleep?" (and its mirror in the
 *                          sleeper), which makes lost wake-ups impossible
 *                          (see wait.c: a seq_cst fence and a plain load;
 *                          under ThreadSanitizer, which does not model
 *                          fences, a seq_cst RMW with the same effect;
 *                          right after a locked RMW on x86-64, that RMW:
 *                          fence_after_rmw).
 *
 * The shared locks (lock.c) are taken by a sequentially consistent CAS and
 * released by an exchange: acquire and release ordering for what they guard.
 */
#ifndef TQ_ATOMICS_H
#define TQ_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

/* ThreadSanitizer, which does not model fences (see fence_after_rmw and
 * wait.c): gcc says so with __SANITIZE_THREAD__, clang with a feature. */
#if defined(__SANITIZE_THREAD__)
#define TQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TQ_TSAN 1
#endif
#endif

typedef _Atomic uint64_t tq_a64;
typedef _Atomic uint32_t tq_a32;
typedef _Atomic uint16_t tq_a16;
typedef _Atomic uint8_t tq_a8;

#define load_acq(p) atomic_load_explicit((p), memory_order_acquire)
#define load_rlx(p) atomic_load_explicit((p), memory_order_relaxed)
#define store_rel(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define store_rlx(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define add_rlx(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define sub_rlx(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)

static inline int cas64(tq_a64 *p, uint64_t expect, uint64_t want)
{
	return atomic_compare_exchange_strong(p, &expect, want);
}

/*
 * The seq_cst fence of "fence + load", where a read-modify-write of shared
 * memory comes just before it in program order: on x86-64 that locked
 * instruction already drains the store buffer (whether or not it wrote),
 * so only the compiler needs holding back (ThreadSanitizer, which models
 * no fence, sees the same); elsewhere the fence itself.
 */
static inline void fence_after_rmw(void)
{
#if defined(__x86_64__) || defined(TQ_TSAN)
	atomic_signal_fence(memory_order_seq_cst);
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
