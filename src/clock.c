/* SPDX-License-Identifier: MIT */
/*
 * clock.c - tq_now_ns(): CLOCK_MONOTONIC, cheap enough to read once per
 * call of the hot path (design.md, 20).
 *
 * Where the kernel itself keeps time with the CPU's time-stamp counter
 * (clock source "tsc", x86-64), a thread reads the counter and scales it
 * from an anchor: a (counter, CLOCK_MONOTONIC) pair it read at most
 * ANCHOR_NS of counter time and READS_MAX readings ago. The scale is the
 * thread's own measurement of ns per tick since its first anchor. So:
 *   - with a counter that behaves, a reading is within a few hundred ns
 *     of clock_gettime (the pair's width, the scale's error over one
 *     window, NTP's slewing);
 *   - a thread's readings never go backwards (the last one is a floor);
 *   - a counter that jumps, goes back, stops or changes its rate (a
 *     migrated virtual machine) is off until the next anchor, at most one
 *     window, where it is caught: the scale is measured again, the clock
 *     source looked at again, and clock_gettime serves meanwhile.
 * Anywhere else, and until the scale is known (the first MEASURE_NS of a
 * thread), tq_now_ns() is clock_gettime(CLOCK_MONOTONIC).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && !defined(TQ_NO_TSC)
#include <x86intrin.h>
#define TQ_HAVE_TSC 1
#endif

static uint64_t kernel_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifdef TQ_FAULT_INJECTION
/* The test build counts, per thread, readings from the counter, readings
 * of the kernel's clock and restarts of the measure (tq__clock_counts). */
static _Thread_local uint64_t n_counter, n_kernel, n_restart;
#define COUNT(x) ((x)++)
#else
#define COUNT(x) ((void)0)
#endif

#ifdef TQ_HAVE_TSC

#define ANCHOR_NS 40000ull     /* a thread reads the kernel's clock every 40 us of counter time */
#define READS_MAX 1024u        /* ... and every 1,024 readings (a counter that stopped) */
#define MEASURE_NS 10000000ull /* the scale is measured over 10 ms at least */
#define PAIR_TICKS 1000ull     /* an anchor's two counter reads at most this far apart */
#define OFF_NS 10000ull        /* further off at an anchor: the counter is not to be trusted */
#define RECHECK_NS 1000000000ull /* the clock source is looked at again at most once a second */

/* -1 not looked at yet, 0 the kernel's clock, 1 the counter; when it was
 * last looked at (kernel ns). */
static _Atomic int tsc_mode = -1;
static tq_a64 checked_ns;

/* A thread's clock: its anchor, its first anchor (the measure's start),
 * its scale (ns per tick << 32, 0 until measured), the anchor's window in
 * ticks (0: read the kernel's clock), and its last reading. A thread of
 * its own, so nothing is shared; a forked child goes on with its parent's. */
struct anchor {
	uint64_t tsc, ns, base_tsc, base_ns, scale, window, last, raw;
	uint32_t reads;
};
static _Thread_local struct anchor me;

/* The kernel keeps time with the counter: it checked that the counter is
 * constant-rate and in step across CPUs, and stops using it if not. */
static int tsc_trusted(void)
{
	char buf[32] = {0};
	int saved = errno;
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
	if (!f) {
		/* Out of descriptors: look again at the next anchor. */
		int again = errno == EMFILE || errno == ENFILE;
		errno = saved;
		return again ? -1 : 0;
	}
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	errno = saved;
	buf[n] = 0;
	return strcmp(buf, "tsc\n") == 0 || strcmp(buf, "tsc") == 0;
}

/* A (counter, kernel ns) pair read close together, or false. */
static bool pair(uint64_t *tsc, uint64_t *ns)
{
	for (int i = 0; i < 3; i++) {
		uint64_t a = __rdtsc(), n = kernel_ns(), b = __rdtsc();
		if (b >= a && b - a <= PAIR_TICKS) {
			*tsc = a + (b - a) / 2;
			*ns = n;
			return true;
		}
	}
	return false;
}

static uint64_t scaled(uint64_t ticks, uint64_t sc)
{
	return (uint64_t)(((unsigned __int128)ticks * sc) >> 32);
}

/* The clock source's verdict: looked at when not known, or when `again`
 * (the counter misbehaved), at most once a second; not known (the last
 * look found no descriptor free) counts as the kernel's clock. */
static int mode_now(bool again)
{
	int mode = atomic_load_explicit(&tsc_mode, memory_order_relaxed);
	if (mode >= 0 && !again)
		return mode;
	uint64_t kn = kernel_ns(), last = load_rlx(&checked_ns);
	if (last == 0 || kn - last >= RECHECK_NS) {
		store_rlx(&checked_ns, kn ? kn : 1);
		mode = tsc_trusted();
		atomic_store_explicit(&tsc_mode, mode, memory_order_relaxed);
	}
	return mode;
}

/* Reads the kernel's clock, anchors this thread there and measures its
 * scale again; returns the kernel's reading. */
static __attribute__((noinline)) uint64_t anchor(void)
{
	uint64_t t, n;
	me.reads = 0;
	me.window = 0;
	if (mode_now(false) <= 0 || !pair(&t, &n)) {
		COUNT(n_kernel);
		return kernel_ns();
	}
	/* A counter not past this thread's last anchor went back or stopped. */
	bool restart = me.base_ns == 0 || n < me.base_ns || t <= me.tsc;
	if (!restart && me.scale) {
		/* Where the counter said the kernel's clock would be: further
		 * off than the scale's error allows (1 in 1,000 of the time
		 * since the last anchor), the counter jumped, stopped or
		 * changed its rate, and the measure starts over. */
		uint64_t guess = me.ns + scaled(t - me.tsc, me.scale);
		uint64_t off = guess > n ? guess - n : n - guess;
		restart = off > OFF_NS + (n - me.ns) / 1000;
	}
	if (restart) {
		if (me.base_ns) {
			COUNT(n_restart);
			/* The kernel may have stopped trusting the counter. */
			if (mode_now(true) <= 0) {
				me.base_ns = 0;
				COUNT(n_kernel);
				return n;
			}
		}
		me.base_tsc = t;
		me.base_ns = n;
		me.scale = 0;
	} else if (n - me.base_ns >= MEASURE_NS) {
		unsigned __int128 sc = ((unsigned __int128)(n - me.base_ns) << 32) / (t - me.base_tsc);
		/* A tick of over 16 ns is no counter to scale. */
		me.scale = sc < ((unsigned __int128)16 << 32) ? (uint64_t)sc : 0;
	}
	me.tsc = t;
	me.ns = n;
	me.window = me.scale ? (uint64_t)((ANCHOR_NS << 32) / me.scale) : 0;
	COUNT(n_kernel);
	return n;
}

TQ_API uint64_t tq_now_ns(void)
{
	uint64_t n;
	uint64_t raw = __rdtsc(), d = raw - me.tsc;
	/* A counter that did not move since the last reading may have stopped:
	 * the kernel's clock says. */
	bool moved = raw != me.raw;
	me.raw = raw;
	if (d < me.window && moved && ++me.reads <= READS_MAX) {
		n = me.ns + scaled(d, me.scale);
		COUNT(n_counter);
	} else {
		n = anchor();
	}
	if (n < me.last)
		return me.last;
	me.last = n;
	return n;
}

#ifdef TQ_FAULT_INJECTION
int tq__clock_counts(uint64_t out[3])
{
	out[0] = n_counter;
	out[1] = n_kernel;
	out[2] = n_restart;
	return atomic_load(&tsc_mode);
}
#endif

#else

TQ_API uint64_t tq_now_ns(void)
{
	COUNT(n_kernel);
	return kernel_ns();
}

#ifdef TQ_FAULT_INJECTION
int tq__clock_counts(uint64_t out[3])
{
	out[0] = n_counter;
	out[1] = n_kernel;
	out[2] = n_restart;
	return -2; /* no counter in this build */
}
#endif

#endif
