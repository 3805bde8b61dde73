/* SPDX-License-Identifier: MIT */
/*
 * wait.c - doorbells: spin briefly, then sleep on a futex in shared memory.
 *
 * A sleeper announces itself (waiters++, a sequentially consistent RMW),
 * reads the bell's sequence, rechecks its condition, and sleeps only if
 * the sequence is unchanged. A ringer publishes first, then reads waiters
 * with a sequentially consistent RMW: so either the sleeper's recheck sees the new work, or
 * the ringer sees the sleeper and bumps the sequence (the futex then does
 * not sleep, or is woken). With nobody asleep, ringing costs one fence and
 * one load: no system call.
 *
 * `waiters` is a hint, not a truth: a sleeper killed while asleep leaves
 * it one too high (an extra wake call per push until recovery of that
 * process corrects it), and every sleep is bounded, so no wake-up that
 * goes missing can hold anyone for longer than one interval.
 */
#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* TQ_TSAN: atomics.h */

#define SPIN_MIN_NS 2000ull       /* shortest spin: sparse arrivals */
#define SPIN_MAX_NS 200000ull     /* longest: above the gap between tasks at 10,000/s */
#define SLEEP_SLICE_NS 50000000ull /* the first sleep */
#define IDLE_SLICE_NS 200000000ull /* the longest, once idle */
#define SPIN_STALE_NS 1000000ull  /* a spinner silent this long is not believed */
#define RING_GAP_NS 20000ull      /* a bell wakes a sleeper at most this often: about one wake-up's latency */

tq_a64 tq__futex_waits, tq__futex_wakes;

/* Every futex call of the library goes through here, to be counted. */
long tq__futex(tq_a32 *addr, int op, uint32_t val, const struct timespec *ts)
{
	add_rlx(op == FUTEX_WAIT ? &tq__futex_waits : &tq__futex_wakes, 1);
	return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

TQ_API void tq_sys_counts_get(tq_sys_counts *out)
{
	if (!out)
		return;
	out->futex_waits = load_rlx(&tq__futex_waits);
	out->futex_wakes = load_rlx(&tq__futex_wakes);
}

void tq__bell_ring(struct tq_bell *b)
{
	atomic_fetch_add(&b->seq, 1);
	tq__futex(&b->seq, FUTEX_WAKE, 1, NULL);
}

/* A waiter spins on this bell now, and said so recently. */
static bool spinner_live(struct tq_bell *b, uint64_t now)
{
	if (!load_rlx(&b->spinners))
		return false;
	uint64_t t = load_rlx(&b->spin_ns);
	/* A stamp in the future is believed as little as an old one: a
	 * damaged one must not silence the bell. */
	return t > now ? t - now < SPIN_STALE_NS : now - t < SPIN_STALE_NS;
}

/* n counts off a bell's spinners, never below zero (the count is a hint). */
void tq__spinners_drop(struct tq_bell *b, uint32_t n)
{
	uint32_t c = load_rlx(&b->spinners);
	while (c && !atomic_compare_exchange_weak(&b->spinners, &c, c > n ? c - n : 0))
		;
}

/* Wakes a sleeper unless a spinner will find the work, or a sleeper was
 * woken less than RING_GAP_NS ago: that one is on its way, and takes the
 * work or passes the wake-up on when it leaves work behind (take.c). So
 * at most one sleeper is woken per RING_GAP_NS per bell, however many
 * tasks a second go by, and a process not yet running is not woken over
 * and over. */
static void ring_if_needed(struct tq_bell *b)
{
	uint64_t now = tq_now_ns(), last = atomic_load(&b->ring_ns);

	if (spinner_live(b, now) || (now - last < RING_GAP_NS && last <= now))
		return;
	store_rlx(&b->ring_ns, now);
	tq__bell_ring(b);
}

/*
 * A sequentially consistent read-modify-write of `waiters` (adding 0) does
 * the fence's job in the C11 model: it reads the latest value, so either it
 * sees a sleeper's increment, or that increment reads from it, which makes
 * the publication before it visible to the sleeper's recheck.
 */
void tq__bell_ring_if_waiting(struct tq_bell *b)
{
#ifdef TQ_TSAN
	if (atomic_fetch_add(&b->waiters, 0))
		ring_if_needed(b);
#else
	/* The same ordering from a fence and a plain load, which leaves the
	 * line shared between processes instead of pulling it exclusive on
	 * every push (ThreadSanitizer does not model fences: it gets the RMW). */
	atomic_thread_fence(memory_order_seq_cst);
	if (load_acq(&b->waiters)) /* acquire: a sleeper's spin_stop before */
		ring_if_needed(b);
#endif
}

void tq__bell_ring_if_waiting_after_rmw(struct tq_bell *b)
{
#ifdef TQ_TSAN
	tq__bell_ring_if_waiting(b);
#else
	fence_after_rmw();
	if (load_acq(&b->waiters))
		ring_if_needed(b);
#endif
}

/* This waiter no longer spins (it found work, or goes to sleep, which it
 * announces after this). */
static void spin_stop(tq_queue *q, struct tq_bell *b)
{
	/* The stamp goes with it: another spinner stamps it again within 64
	 * turns, and a count left behind (a spinner killed in between) is
	 * then not believed. */
	store_rlx(&b->spin_ns, 0);
	tq__spinners_drop(b, 1);
	atomic_fetch_sub(&q->me->spinning, 1);
}

/*
 * Adaptive waiting. A waiter first spins (pause, re-reading the ring count)
 * for a while, then sleeps. The spin's length adapts per handle: it doubles
 * (up to SPIN_MAX_NS) each time work arrived during a spin, and halves
 * (down to SPIN_MIN_NS) each time the spin ended in a sleep. A steady
 * stream, whose next batch comes within a few microseconds, keeps the spin
 * long and never sleeps or makes a system call; sparse arrivals shrink it,
 * so that a mostly idle consumer does not burn a core before each sleep. The spin yields the CPU now and then, so that on an
 * oversubscribed machine a spinning consumer gives way to the producer it
 * waits for. Then it sleeps on the futex for a slice: SLEEP_SLICE_NS, and
 * after a slice that ended with nothing to do, twice as long, up to
 * IDLE_SLICE_NS, so that an idle process wakes a few times a second (to
 * run maintenance, which recovers dead processes) and costs almost nothing.
 */
void tq__bell_wait(tq_queue *q, struct tq_bell *b, bool (*ready)(tq_queue *, bool), uint64_t until_ns)
{
	uint64_t now = 0, spin_end = 0, spin = load_rlx(&q->spin_ns);
	uint32_t kind = b == &q->h->ready_ring.bell ? 1u : 2u;
	/* Takers are counted as spinners (producers are not: each has tasks
	 * of its own to push, and none may wait behind another's spin). */
	bool counted = kind == 1;
	/* How often it looks: a taker every 16 turns (about 0.4 us: a
	 * task's latency under load), a pusher waiting for room every 64
	 * (about 1.7 us): room comes in steps of reuse_every tasks, and a
	 * pusher that looks as often pulls the takers' lines (reuse, head,
	 * marks) from under them while they work for it. */
	uint32_t poll_mask = kind == 1 ? 15u : 63u;

	if (spin < SPIN_MIN_NS || spin > SPIN_MAX_NS)
		spin = SPIN_MAX_NS / 2;
	/* Enough takers spin already (one per core): this one sleeps at
	 * once, and is woken when the spinners are busy. Spinners beyond the
	 * cores would take the CPU from the very processes they wait for. */
	if (counted && load_rlx(&b->spinners) >= q->max_spinners && spinner_live(b, (now = tq_now_ns()))) {
		spin_end = now;
		spin = 0;
		goto sleep;
	}
	if (counted) {
		/* Its record's count first: recovery takes back what it says. */
		atomic_fetch_add(&q->me->spinning, 1);
		atomic_fetch_add(&b->spinners, 1);
		store_rlx(&b->spin_ns, tq_now_ns());
	}
	for (uint32_t i = 0;; i++) {
		/* Not looked at every turn: the check reads lines that the other
		 * side writes, and a spinner that reads them at full speed slows
		 * the very process it waits for. */
		if ((i & poll_mask) == 0 && ready(q, false)) {
			if (counted)
				spin_stop(q, b);
			if (spin < SPIN_MAX_NS)
				store_rlx(&q->spin_ns, spin * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : spin * 2);
			if (load_rlx(&q->idle_slice_ns))
				store_rlx(&q->idle_slice_ns, 0);
			return;
		}
		cpu_relax();
		if ((i & 63) != 63)
			continue;
		now = tq_now_ns();
		if (counted)
			store_rlx(&b->spin_ns, now); /* still spinning */
		if (!spin_end)
			spin_end = now + spin;
		if (now >= spin_end || now >= until_ns)
			break;
		/* More waiters than cores spin in turn: let a producer (or the
		 * waiter that will find the work) have the CPU. */
		if ((i & 255) == 255)
			sched_yield();
	}
	if (counted)
		spin_stop(q, b);
	store_rlx(&q->spin_ns, spin / 2 < SPIN_MIN_NS ? SPIN_MIN_NS : spin / 2);
sleep:
	if (now >= until_ns)
		return;
	uint64_t idle = load_rlx(&q->idle_slice_ns);
	uint64_t slice = idle ? idle : SLEEP_SLICE_NS;
	if (slice > until_ns - now)
		slice = until_ns - now;
	/* A taker wakes for the next due time, to run the sweep that makes
	 * delayed tasks ready (at least 1 ms: the sweep's own rate limit). */
	uint64_t due = load_rlx(&q->h->next_due_ns);
	if (b == &q->h->ready_ring.bell && due != UINT64_MAX) {
		uint64_t d = due > now + 1000000ull ? due - now : 1000000ull;
		if (slice > d)
			slice = d;
	}

	atomic_fetch_add(&b->waiters, 1);
	store_rlx(&q->me->waiting, kind);
#ifndef TQ_TSAN
	atomic_thread_fence(memory_order_seq_cst); /* the recheck below after the announcement (C11) */
#endif
	uint32_t seq = atomic_load(&b->seq);
	bool slept = false;
	if (!ready(q, true)) { /* the thorough check, once per sleep */
		struct timespec ts = {.tv_sec = (time_t)(slice / 1000000000ull),
				      .tv_nsec = (long)(slice % 1000000000ull)};
		slept = tq__futex(&b->seq, FUTEX_WAIT, seq, &ts) != 0 && errno == ETIMEDOUT;
		/* Woken: the wake-up has arrived, so the next one (this taker's
		 * own pass-on, if it leaves work behind) is not held back by the
		 * gap between wake-ups. */
		if (!slept && atomic_load(&b->seq) != seq)
			atomic_store(&b->ring_ns, 0);
	}
	store_rlx(&q->me->waiting, 0);
	atomic_fetch_sub(&b->waiters, 1);
	/* Woken soon after the spin gave up: work arrives at about this
	 * interval, so the next spin covers it (up to SPIN_MAX_NS) instead of
	 * paying a sleep and a wake-up per task. */
	if (spin && !slept && ready(q, false)) {
		uint64_t waited = tq_now_ns() - (spin_end - spin);
		if (waited < SPIN_MAX_NS)
			store_rlx(&q->spin_ns, waited * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : waited * 2);
	}
	/* A whole slice with nothing: sleep longer next time (reset by work). */
	if (slept && !ready(q, true)) {
		store_rlx(&q->spin_ns, SPIN_MIN_NS); /* idle: wake-ups do not spin long */
		uint64_t next = (idle ? idle : SLEEP_SLICE_NS) * 2;
		store_rlx(&q->idle_slice_ns, next > IDLE_SLICE_NS ? IDLE_SLICE_NS : next);
	} else if (idle) {
		store_rlx(&q->idle_slice_ns, 0);
	}
}

bool tq__can_take(tq_queue *q, bool thorough)
{
	(void)thorough;
	return tq__ring_count(&q->readyr) || tq__lanes_ready(q, NULL, NULL);
}

/* While spinning, the room as the lanes' reuse points say, and on one
 * check in 32 (and before a sleep) after moving them over what was settled
 * since: that reads the consumers' lines, which a producer polling at full
 * speed would keep taking from them. */
bool tq__can_push(tq_queue *q, bool thorough)
{
	uint64_t need = tq__byte_need;

	if (tq__units_wait) /* payload units given back since it found none */
		return load_acq(&q->h->units_given) + 1 != tq__units_wait;
	if (tq__room_now(q) > 0 && (!need || tq__lane_bytes_room(q, need, false)))
		return true;
	if (tq__delay_push && tq__delay_room(q) > 0)
		return true;
	uint32_t n = load_rlx(&q->room_polls) + 1;
	store_rlx(&q->room_polls, n); /* a hint: racing threads may lose a count */
	if (!thorough && (n & 31) != 0)
		return false;
	return tq__room(q) > 0 && (!need || tq__lane_bytes_room(q, need, true));
}
