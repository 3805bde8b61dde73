/* SPDX-License-Identifier: MIT */
/*
 * fault.h - deterministic crash points for tests (private to libtaskq).
 *
 * A process arms one named point; the library calls TQ_FAULT("name") at
 * that place in its code, and the armed process kills itself with SIGKILL
 * there on the hit-th pass. Unarmed, a point costs one predictable branch.
 * Points may also be armed through the environment: TQ_FAULT=name[:hit],
 * read once when the first handle is opened. They exist only in the test
 * build of the library (-DTQ_FAULT_INJECTION, build/libtaskq-test.a, which
 * the test suite links); the shipped libraries have none.
 *
 * Points (a name marks the same step on the slot path and on lanes):
 *   push.claimed       slots taken from the free ring / a lane taken: task data not written
 *   push.record        an integer lane's batch record written, its record count not yet raised
 *   push.joined        an integer lane's last batch record's count raised over this
 *                      write's cells (a join, design.md 17 B4), the tail not yet stored
 *   push.written       task data written, not yet published (ready ring / lane tail;
 *                      an integer lane's record count raised)
 *   push.delayed       a delayed push: the first task DELAYED, not yet counted
 *   ring.push.mid      inside a ring push: cells written, half the states set
 *   ring.pop.mid       inside a ring pop: half the popped states set
 *   take.popped        tasks popped and leased, lease times not yet written /
 *                      a lane claim made, its lease entry not yet ACTIVE
 *   ack.mid            some of a batch's leases released, not yet freed /
 *                      a lane claim's last fate bit set, the claim not yet settled
 *   lane.settle.mid    a lane claim's mark stored, its lease entry not yet FREE
 *   move.journal       a move-out's journal written, its fate bits not yet claimed
 *   move.claimed       a move-out's fate bits claimed, its copies not yet made
 *   fail.claimed       a failing task claimed, before it is delayed or buried
 *   fail.mid           some of a batch's failures recorded
 *   bury.counted       a task being buried: the dead count raised, the slot not yet DEAD
 *   kick.claimed       a dead task claimed for kick or purge, the dead count not yet lowered
 *   recover.mid        recovering a dead process: some of its slots returned
 *   fold.mid           folding a dead process's counters into the totals
 *   due.cleared        a sweep taking a due DELAYED slot: its bitmap bit cleared, the slot not yet taken
 */
#ifndef TQ_FAULT_H
#define TQ_FAULT_H

#ifdef TQ_FAULT_INJECTION
#include <stdint.h>

extern const char *tq_fault_point_armed;
void tq_fault_hit(const char *point);

/* Arms `point` (NULL disarms); the process dies on its hit-th pass (>= 1). */
void tq_fault_arm(const char *point, unsigned hit);
/* The same, raising `sig` instead of SIGKILL (SIGSTOP: a process frozen
 * at that point, as by a debugger or a cgroup freezer). */
void tq_fault_arm_signal(const char *point, unsigned hit, int sig);
/* Arms the point named by the TQ_FAULT environment variable, if any. */
void tq_fault_from_env(void);
/* How far apart two writes into an integer lane may be pushed and still
 * share a batch record (lane.c, join_ns): 0 never, UINT64_MAX always. */
void tq__set_join_ns(uint64_t ns);
/* After how long a tq_take acks the acks tq_ack_later keeps (lease.c,
 * later_age_ns): 0 at every take, UINT64_MAX only when nothing is ready. */
void tq__set_ack_later_age_ns(uint64_t ns);

#define TQ_FAULT(point)                                                 \
	do {                                                            \
		if (__builtin_expect(tq_fault_point_armed != 0, 0))     \
			tq_fault_hit(point);                            \
	} while (0)
/* A time the test build lets tests set (through `setter`), fixed at
 * `dflt` in the shipped library. */
#define TQ_TEST_TUNABLE(var, setter, dflt)         \
	static uint64_t var = (dflt);              \
	void setter(uint64_t v) { var = v; }
#else
/* The shipped library: no crash points at all. */
#define TQ_FAULT(point) do { } while (0)
static inline void tq_fault_from_env(void) {}
#define TQ_TEST_TUNABLE(var, setter, dflt) static const uint64_t var = (dflt);
#endif
#endif
