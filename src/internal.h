/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the process-local side of libtaskq (private).
 */
#ifndef TQ_INTERNAL_H
#define TQ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#include "hist.h"
#include "layout.h"
#include "taskq.h"

#ifdef TQ_BUILD_SHARED
#define TQ_API __attribute__((visibility("default")))
#else
#define TQ_API
#endif

/* Largest number of slots moved under one lock acquisition. */
#define TQ_CHUNK 256
/* How often attached processes look for dead peers and overdue leases. */
#define TQ_MAINT_PERIOD_NS 100000000ull
/* How long a queue lock may stay held before callers give up (TQ_EBUSY). */
#define TQ_LOCK_BOUND_NS 10000000000ull

/* A ring as seen by this process: shared control block plus its cells. */
struct tq_ringd {
	struct tq_ring *r;
	uint32_t *cells;
	uint32_t mask;
};

struct tq_queue {
	int fd;
	uint8_t *base;
	size_t size;
	struct tq_hdr *h;
	struct tq_proc *procs;
	struct tq_proc *me;
	uint32_t rec;     /* my record index */
	uint32_t owner;   /* rec + 1, as stored in slot states */
	tq_a64 *st;
	struct tq_slot *slots;
	struct tq_aux *aux;
	struct tq_msg *msgs; /* dead_cap failure-message entries (design.md, 10) */
	tq_a64 *due_bits;    /* the delayed bitmap: (nslots + 63) / 64 words (design.md, 10) */
	uint8_t *units;      /* payload units (design.md, 19) */
	tq_a64 *owners;      /* their owner words */
	uint64_t nunits;
	struct tq_cell *cells; /* payload lane l's cells: cells + (l - TQ_INT_LANES) * (lane_mask + 1) */
	tq_a64 *ivals;       /* integer lane l's cells: ivals + l * (lane_mask + 1) (layout 11) */
	struct tq_ibatch *ibatches; /* integer lane l's batch records: ibatches + l * (lane_mask + 1) */
	tq_a64 ibatch_hint[TQ_INT_LANES]; /* per integer lane, the batch record this handle read last (lane.c) */
	tq_a64 *marks;
	uint8_t *bytes;      /* payload lane l's byte ring: bytes + (l - TQ_INT_LANES) * (bytes_mask + 1) */
	uint64_t bytes_mask;
	uint32_t lane_mask;
	tq_a32 push_lane;  /* the index (0..7) of the lane pair (integer, payload) it pushes into; record % 8 at first */
	tq_a32 take_lane;  /* the lane it took from last (a hint) */
	/* Settlers move a lane's reuse point once per this many positions (a
	 * power of two: 256, or a quarter of the capacity if smaller), so the
	 * line producers watch for room is written that rarely (lane.c). */
	uint32_t reuse_every;
	uint32_t reuse_every_bytes; /* the same for payload lanes: also at most a quarter ring of the largest records */
	uint32_t max_spinners; /* takers that may spin on the ready bell at once: the cores online, at least 1 (wait.c) */
	tq_a64 seen_tail[TQ_LANES]; /* each lane's tail as this handle last read it (lane.c) */
	uint64_t lane_prefix; /* priv[0] of its lane tasks without entry and bit: tag, TQ__LANE_TASK, owner */
	tq_a32 room_polls; /* cheap room checks since the last thorough one (wait.c) */
	tq_a64 credit;     /* tasks it may push before counting the room again (lane.c) */
	uint32_t cap;     /* the capacity: validated at open; never re-read from the segment */
	uint32_t nslots;  /* slots: cap + dead_cap + delay_cap; every slot index is below it */
	uint32_t stride;
	uint32_t max_payload;
	/* The rest of the configuration, from the same validated snapshot. */
	uint32_t max_attempts;
	uint32_t dead_cap;
	uint32_t delay_cap; /* the delay area (design.md, 10) */
	uint32_t mode;
	uint64_t lease_ns;
	uint64_t backoff_base_ns;
	uint64_t backoff_max_ns;
	uint32_t tag;
	/* Set in a child after fork() (queue.c): the fd was closed there so
	 * that the parent's liveness lock dies with the parent; the child must
	 * open the queue again. Written only while one thread exists. */
	bool forked;
	/* Opened by tq_open_observer: holds the liveness lock of record `rec`
	 * (for the lock words it writes) but never made it active; me is NULL. */
	bool observer;
	struct tq_queue *next_open; /* this process's open handles (queue.c) */
	pthread_mutex_t fail_mu;    /* serializes this handle's tq_fail journal (lease.c) */
	/* What this handle writes into a lock word it holds (lock.c). */
	uint32_t nonce;
	uint64_t lockid;
	struct tq_ringd freer;
	struct tq_ringd readyr;
	tq_a64 rng;       /* jitter generator state */
	/* Latency samples of small calls (tq__hist_sample): per histogram,
	 * the calls so far, the tasks not yet recorded and the last sample. A
	 * hint like the two below: racing threads of one handle may lose a
	 * count. */
	tq_a32 hist_calls[H__COUNT];
	tq_a64 hist_pend[H__COUNT];
	tq_a64 hist_last_ns[H__COUNT];
	/* The next futex sleep's length once idle (wait.c); 0: the first. A
	 * hint only: threads of one handle may race on it harmlessly. */
	tq_a64 idle_slice_ns;
	tq_a64 spin_ns; /* the next spin's length (wait.c); a hint like the above */
	/* Take-ahead (tq_set_take_ahead, take.c): tasks claimed beyond what a
	 * tq_take asked for, leased to this handle and handed out by its next
	 * calls, ahead[ahead_i..ahead_n). ahead_busy (0/1) is taken by CAS by
	 * the thread that uses the buffer; a thread that finds it taken takes
	 * as if there were no take-ahead. */
	tq_a32 ahead_max; /* 0 or 1: off; else the tasks a claim may take, 2..TQ_TAKE_AHEAD_MAX */
	tq_a32 ahead_busy;
	uint32_t ahead_i, ahead_n;
	tq_a32 ahead_left; /* ahead_n - ahead_i, for threads that do not hold ahead_busy */
	tq_task ahead[TQ_TAKE_AHEAD_MAX];
	/* Acks kept for later (tq_ack_later, lease.c): later[0..later_n),
	 * acked together by one tq_ack. later_busy (0/1) is taken by CAS by
	 * the thread that keeps or acks them; one that finds it taken acks at
	 * once. later_since: last_take_ns (this handle's latest tq_take) when
	 * the first was kept. later_lost: what an ack of kept tasks made by a
	 * tq_take returned (TQ_ELOST, ...), not reported yet. */
	tq_a32 later_busy;
	tq_a32 later_n;
	tq_a64 later_since;
	tq_a64 last_take_ns;
	_Atomic int later_lost;
	tq_task later[TQ_ACK_LATER_MAX];
};

/* lock.c: the shared locks. tq__lock waits up to TQ_LOCK_BOUND_NS for a
 * live holder (TQ_EBUSY after), and takes a lock over at once from a
 * holder that is gone or a word that names no holder, setting *owner_died:
 * the caller then repairs what such a holder may have left half done. */
int tq__lock(tq_queue *q, struct tq_lock *l, bool *owner_died);
int tq__trylock(tq_queue *q, struct tq_lock *l, bool *owner_died);
void tq__unlock(struct tq_lock *l);
void tq__lock_init(struct tq_lock *l);

/* queue.c */
int tq__lock_recovery(tq_queue *q);
int tq__trylock_recovery(tq_queue *q);
int tq__ofd_trylock(int fd, uint32_t rec);
bool tq__ofd_held(int fd, uint32_t rec);
void tq__ofd_unlock(int fd, uint32_t rec);

/* ring.c */
/* `counter` (one of this handle's C_*, or C__COUNT for none) is advanced
 * by the number moved, atomically with the move as far as crashes go. */
int tq__ring_pop(tq_queue *q, struct tq_ringd *rd, uint32_t *out, uint32_t want,
		 uint64_t stbase, bool gen_from_pos, uint64_t *first_pos, enum tq_counter counter);
int tq__ring_push(tq_queue *q, struct tq_ringd *rd, const uint32_t *idx, uint32_t n,
		  uint64_t stbase, enum tq_counter counter);
int tq__ring_touch_locks(tq_queue *q, struct tq_ringd *rd);
int tq__ring_lock_push_side(tq_queue *q, struct tq_ringd *rd);
void tq__ring_unlock_push_side(struct tq_ringd *rd);
static inline uint32_t tq__ring_count(const struct tq_ringd *rd)
{
	return (uint32_t)(load_acq(&rd->r->push.pos) - load_acq(&rd->r->pop.pos));
}

/* push.c: waits for room in a full queue (the contract of tq_push's
 * timeout): 0 after a wait, TQ_EAGAIN or TQ_ETIMEDOUT. */
int tq__push_wait(tq_queue *q, uint64_t timeout_ns, uint64_t until);

/* lane.c (docs/design.md, section 17) */
bool tq__holder_gone(tq_queue *q, uint64_t w);
/* Pushes a batch of one class (integers, or payloads) through lanes; the contract of tq_push, whose
 * clock read (now) and deadline (until) it continues. With vals (tasks
 * NULL): the integers of tq_push_ints, whose ids are not reported. */
/* *overflow set (and the count pushed so far returned): its lanes are
 * full while the queue has room, in a queue whose lanes are smaller than
 * its capacity; the caller pushes the rest through slots. */
int tq__lane_push(tq_queue *q, tq_task *tasks, const uint64_t *vals, size_t n, uint64_t timeout_ns, uint64_t now,
		  uint64_t until, bool *overflow);
/* Claims up to want ready lane tasks into out, only tasks with ids below
 * stop_id if it is not 0; 0 if none. */
/* Where a take from the lanes puts what it claims: whole tasks (tq_take),
 * or integers and the claims that lease them (tq_take_ints). */
struct tq_take_sink {
	tq_task *out;
	uint32_t hand;      /* take-ahead: tasks out[0..hand) are handed over, the rest kept (0: all handed over) */
	uint64_t *vals;     /* integer lanes only */
	uint64_t *claims;   /* 2 words a claim: generation; entry | count << 8 | first index << 16 */
	uint32_t maxclaims, nclaims;
	bool blocked;       /* a payload task was older than any integer left to take */
	uint64_t blocked_id; /* the oldest such (its id), and its pair */
	uint32_t blocked_pair;
};
int tq__lane_take(tq_queue *q, struct tq_take_sink *sk, uint32_t want, uint64_t stop_id, uint64_t now);
uint64_t tq__payload_lanes_oldest(tq_queue *q, uint32_t *pair);
int tq__lane_claim_task(tq_queue *q, uint32_t e, uint64_t g, uint32_t bit, tq_task *t);
uint64_t tq__lane_claim_enq(tq_queue *q, uint32_t e);
/* Where a tq_batch keeps its leases (priv): the handle's lane prefix, a
 * spare word, TQ_BATCH_CLAIMS claims of two words (tq_take_sink), and one
 * bit per task handed out by tq_batch_task. */
enum { TQ__B_PREFIX = 0, TQ__B_CLAIMS = 2, TQ__B_HANDED = 2 + 2 * TQ_BATCH_CLAIMS };
/* The id of the task at the ready ring's head, read racily; 0 if none (take.c). */
uint64_t tq__ring_head_id(tq_queue *q);
/* Claims moved straight into slots WRITING by this handle, for a handle
 * out of lease entries; returns their count. */
int tq__lane_take_to_slots(tq_queue *q, uint32_t *idx, uint32_t want, uint64_t now);
/* Ready tasks in every lane; the id and push time of the one pushed first
 * (0 if none; either pointer may be NULL). */
uint64_t tq__lanes_ready(tq_queue *q, uint64_t *oldest_id, uint64_t *oldest_ns);
/* Adds the lane tasks' share to queue totals whose slot share *t holds,
 * from positions, the live processes' claims and move counts (exact after
 * any crash once recovered); returns the lane tasks leased now. Read in
 * the order that makes a take, ack or fail racing with it lower `acked`
 * for an instant, never raise it: positions, then claims, then moves.
 * A caller that also wants the ready count reads it before (a take racing
 * with both is then counted ready and leased, never neither). */
uint64_t tq__lane_totals(tq_queue *q, tq_counters *t);
/* Free places in the queue for new tasks (lanes and slots together); when
 * there are none, first moves the lanes' reuse points over settled claims. */
#ifdef TQ_FAULT_INJECTION
/* The calling thread's clock readings from the counter, from the kernel,
 * and restarts of the counter's measure; returns the mode (1 the counter,
 * 0 the kernel's clock, -1 not decided yet, -2 a build without the
 * counter's path). Test build only. */
int tq__clock_counts(uint64_t out[3]);
#endif
uint64_t tq__room(tq_queue *q);
/* The room once every lane's reuse point has moved over what is settled
 * (tq__room moves them only when it finds none): for a budget that must
 * count all of it (tq_dead_kick of TQ_ALL). */
uint64_t tq__room_settled(tq_queue *q);
/* The same without moving anything (cheap: reads the lanes' positions). */
uint64_t tq__room_now(tq_queue *q);
/* Places the delay area has left (lane.c). */
uint64_t tq__delay_room(tq_queue *q);
/* The state of slot idx leased to this handle outside the ready ring: its
 * task id (unique) stands in for the ring position as lease generation. */
static inline uint64_t tq__slot_lease(const tq_queue *q, uint32_t idx)
{
	/* Bit 24 tells these generations from ring positions, so that a stale
	 * lease of one kind never matches the other. */
	return st_make(ST_LEASED, q->owner, 0) | (1ull << 24) | ((q->slots[idx].id & 0xffffffffull) << 32);
}
/* Records to visit in a pass over the attached ones (see tq_hdr.procs_hi). */
static inline uint32_t tq__procs_hi(const tq_queue *q)
{
	uint32_t hi = load_acq(&q->h->procs_hi);
	return hi > TQ_MAX_PROCS ? TQ_MAX_PROCS : hi;
}
/* Takes n task ids, increasing in push order across the queue. */
static inline uint64_t tq__take_ids(tq_queue *q, uint64_t n)
{
	return add_rlx(&q->h->next_id, n) + 1;
}
/* Bits set in x. Inline, without the POPCNT instruction (the x86-64
 * baseline lacks it, and __builtin_popcountll then calls into libgcc on
 * every ack): a few shifts and one multiply. */
static inline uint32_t tq__popcount64(uint64_t x)
{
#ifdef __POPCNT__
	return (uint32_t)__builtin_popcountll(x);
#else
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (uint32_t)((x * 0x0101010101010101ull) >> 56);
#endif
}
/* The bits of a claim's tasks 0..count-1 (count <= TQ_CLAIM_MAX, 64). */
static inline uint64_t tq__claim_full(uint32_t count)
{
	return count >= 64 ? ~0ull : (1ull << count) - 1;
}
#define TQ__LANE_TASK 0x80000000ull
static inline bool tq__is_lane_task(const tq_task *t) { return (t->priv[0] & TQ__LANE_TASK) != 0; }
/* A lane task handed back names this handle: priv[0] is tag (bits 32..63)
 * | TQ__LANE_TASK | owner (14..24) | zero (25..30) | entry (8..13) | task
 * bit (0..7, below TQ_CLAIM_MAX: bits 6 and 7 zero); priv[1] a 56-bit generation. */
static inline int tq__lane_check(const tq_queue *q, const tq_task *t)
{
	const uint64_t fixed = 0xffffffff00000000ull | TQ__LANE_TASK | 0x7e000000ull | (0x7ffull << 14) | 0xc0u;

	_Static_assert(TQ_CLAIM_MAX == 64, "the task bit's check assumes 64 tasks a claim");
	return (t->priv[0] & fixed) != q->lane_prefix || t->priv[1] >= (1ull << 56) ? TQ_EINVAL : 0;
}
void tq__lane_ack(tq_queue *q, const tq_task *t, size_t n, uint64_t *acked, uint64_t *lost, uint64_t *taken_ns);
/* The tasks of one claim in an ack: lease entry e, generation g, their
 * bits, and how many were given twice in the call. */
struct tq_lane_group {
	uint32_t e, twice;
	uint64_t g, mask;
};
void tq__lane_ack_groups(tq_queue *q, const struct tq_lane_group *gr, size_t ng, uint64_t *acked, uint64_t *lost,
			 uint64_t *taken_ns);
/* A lane task's lease entry and its bit in the claim (priv[0]). */
static inline uint32_t tq__task_entry(const tq_task *t) { return (uint32_t)((t->priv[0] >> 8) & 0x3fu); }
static inline uint32_t tq__task_bit(const tq_task *t) { return (uint32_t)(t->priv[0] & 0xffu); }
/* Groups lane tasks by claim as they come: `cur` is the group being
 * built (in registers: a stream of one claim's tasks adds to it without a
 * store), flushed to gr[*k] when a task of another claim comes, or by
 * tq__lane_group_end. */
static inline void tq__lane_group_add(struct tq_lane_group *gr, size_t *k, struct tq_lane_group *cur,
				      const tq_task *t)
{
	uint32_t e = tq__task_entry(t);
	uint64_t g = t->priv[1], b = 1ull << tq__task_bit(t);

	if (cur->e != e || cur->g != g) {
		if (cur->mask)
			gr[(*k)++] = *cur;
		*cur = (struct tq_lane_group){.e = e, .g = g};
	}
	cur->twice += (cur->mask & b) != 0; /* the same task twice in one call */
	cur->mask |= b;
}
static inline void tq__lane_group_end(struct tq_lane_group *gr, size_t *k, const struct tq_lane_group *cur)
{
	if (cur->mask)
		gr[(*k)++] = *cur;
}
int tq__lane_fail(tq_queue *q, const tq_task *t, int err, const char *msg, bool locked, uint64_t *lost);
uint64_t tq__lane_touch(tq_queue *q, const tq_task *t, uint64_t end);
bool tq__lane_held(tq_queue *q, const tq_task *t);
/* Some payload lane has room for a record of `size` bytes (a hint). */
bool tq__lane_bytes_room(tq_queue *q, uint64_t size, bool thorough);
extern _Thread_local uint64_t tq__byte_need;
/* A delayed push of this thread waiting: the delay area's room is room for
 * it too (push.c). */
extern _Thread_local bool tq__delay_push;
/* A push waiting for payload units: 1 + units_given when it found none
 * (0: not waiting for units). */
extern _Thread_local uint64_t tq__units_wait;
/* Under the recovery lock: */
void tq__lanes_repair_move(tq_queue *q);
int tq__lanes_recover_rec(tq_queue *q, uint32_t rec, bool died, uint64_t *returned);
uint64_t tq__lanes_expire(tq_queue *q, uint64_t now);
uint64_t tq__lanes_unfinished_min(tq_queue *q, uint64_t min);
uint32_t tq__lane_leased_by(tq_queue *q, uint32_t rec);
/* Moves out the failures recorded in lease entries (tq__lane_fail, when it
 * could not at once); those that still find no free slot keep the due hint
 * a millisecond ahead. Under the recovery lock: part of every due sweep. */
void tq__lanes_move_failures(tq_queue *q, uint64_t now);

/* lease.c: the delay before retry `attempt` (with jitter). */
uint64_t tq__backoff_ns(tq_queue *q, unsigned attempt);
/* Take-ahead (take.c): lane task t is being handed over, so `handed` of
 * its claim's tasks are (t's bit + 1; lane.c, entry_handed); the claim's
 * processing time runs from now. */
void tq__lane_mark_handed(tq_queue *q, const tq_task *t, uint32_t handed, uint64_t now);
/* lease.c: tq_touch of one task of this handle (checked) to deadline end:
 * 0, or 1 if its lease has been lost. */
uint64_t tq__touch_one(tq_queue *q, const tq_task *t, uint64_t end);
/* lease.c: does this handle still hold t's lease? */
bool tq__lease_held(tq_queue *q, const tq_task *t);
/* lease.c: tq_ack, also saying how many leases were lost. */
int tq__ack(tq_queue *q, const tq_task *tasks, size_t n, uint64_t *lost);
/* tq_take's part of tq_ack_later (lease.c): acks the kept tasks when the
 * take found nothing ready (`empty`) or the first was kept 1 ms or more
 * before `now`; records `now` as the handle's latest take. */
void tq__ack_later_due(tq_queue *q, uint64_t now, bool empty);

/* events.c */
void tq__event(tq_queue *q, enum tq_event_type type, uint64_t a, uint64_t b, const char *msg);

/* wait.c: counts of futex calls (tq_sys_counts_get). */
extern tq_a64 tq__futex_waits, tq__futex_wakes;
long tq__futex(tq_a32 *addr, int op, uint32_t val, const struct timespec *ts);

/* wait.c */
void tq__bell_ring(struct tq_bell *b);
void tq__bell_ring_if_waiting(struct tq_bell *b);
/* The same, for a caller whose last access to shared memory was a
 * read-modify-write (its fence is then that RMW's, on x86-64). */
void tq__bell_ring_if_waiting_after_rmw(struct tq_bell *b);
/* n counts off a bell's spinners, never below zero (wait.c). */
void tq__spinners_drop(struct tq_bell *b, uint32_t n);
/* Sleeps until the bell rings, `until_ns` passes, or a bounded interval
 * ends; `ready` is rechecked after announcing the sleep. */
void tq__bell_wait(tq_queue *q, struct tq_bell *b, bool (*ready)(tq_queue *, bool thorough), uint64_t until_ns);
/* The two conditions waited for: a task to take; room to push (thorough:
 * also count what was settled but not yet reusable; see tq__room). */
bool tq__can_take(tq_queue *q, bool thorough);
bool tq__can_push(tq_queue *q, bool thorough);

/* recover.c */
void tq__maybe_maintain(tq_queue *q, uint64_t now);
int tq__maintain(tq_queue *q, bool force_sweep);
/* A full pass now, unless a live process holds the recovery lock. */
int tq__maintain_nowait(tq_queue *q);
int tq__recover_locked(tq_queue *q, uint32_t rec, bool died);
int tq__requeue_owned(tq_queue *q, const uint32_t *idx, uint32_t n);
int tq__release_owned(tq_queue *q, const uint32_t *idx, uint32_t n, enum tq_counter counter);
void tq__fold_counters(tq_queue *q, uint32_t rec);
void tq__fold_repair(tq_queue *q);
/* dead.c: buries a slot this process owns (locked: the caller holds the
 * recovery lock, so the message may take an entry of the message area). */
void tq__make_dead(tq_queue *q, uint32_t idx, int err, const char *msg, uint64_t now, bool locked);
/* Records a failure message's first bytes in slot idx's aux (no entry). */
void tq__aux_msg(tq_queue *q, uint32_t idx, const char *msg);
/* Buries slot idx (owned, recovery lock held) whose holder died: with the
 * failure it was given if its owner got that far (its own message, whole
 * while its message-area entry is intact), else TQ_ELOST and `why`. */
void tq__make_dead_kept(tq_queue *q, uint32_t idx, const char *why, uint64_t now);
/* Recounts DEAD and DELAYED slots into their counts (under the recovery
 * lock, after a dead holder), giving each DELAYED slot its bitmap bit and
 * its due time to the hint; returns the dead count. */
uint32_t tq__slot_counts_recount(tq_queue *q);
/* The length of msg's first bytes that fit in max - 1, cut at a UTF-8
 * character boundary (at the byte where it is not UTF-8). */
size_t tq__utf8_cut(const char *msg, size_t max);


static inline uint64_t tq__deadline_after(uint64_t now, uint64_t timeout_ns)
{
	if (timeout_ns == TQ_WAIT_FOREVER || now + timeout_ns < now)
		return UINT64_MAX;
	return now + timeout_ns;
}

static inline bool tq__stopping(const tq_queue *q)
{
	uint32_t rs = load_rlx(&q->h->run_state);
	return rs == TQ_DRAINING || rs == TQ_STOPPED;
}

/* 0 if q can be used in this process for a call an observer may make
 * (taskq.h, tq_open_observer), else the error to return. */
static inline int tq__usable_ro(const tq_queue *q)
{
	return !q ? TQ_EINVAL : q->forked ? TQ_EFORKED : 0;
}

/* The same for every other call: those need a worker's record. */
static inline int tq__usable(const tq_queue *q)
{
	return tq__usable_ro(q) ? tq__usable_ro(q) : q->observer ? TQ_EOBSERVER : 0;
}

/* Lowers the queue's earliest due time to `due` if it is earlier; true if
 * it did (a sleeping taker should then wake to wait for the new time). */
static inline bool tq__due_hint(tq_queue *q, uint64_t due)
{
	uint64_t cur = load_rlx(&q->h->next_due_ns);
	while (due < cur)
		if (atomic_compare_exchange_weak(&q->h->next_due_ns, &cur, due))
			return true;
	return false;
}

/* Sets slot idx's bit in the delayed bitmap; called by whoever made it
 * DELAYED, after the state store and before lowering the hint (design.md,
 * 10: sequentially consistent, against the due sweep's clear). */
static inline void tq__due_mark(tq_queue *q, uint32_t idx)
{
	atomic_fetch_or(&q->due_bits[idx >> 6], 1ull << (idx & 63));
}

/* Makes slot idx (owned by the caller) DELAYED until `due`, in the order
 * design.md section 10 needs: due time, state, bitmap bit, gauge, hint
 * (waking a sleeping taker whose alarm was later). */
static inline void tq__delay_slot(tq_queue *q, uint32_t idx, uint64_t due)
{
	store_rel(&q->slots[idx].deadline_ns, due);
	store_rel(&q->st[idx], st_make(ST_DELAYED, 0, 0));
	tq__due_mark(q, idx);
	add_rlx(&q->h->delayed_count, 1);
	if (tq__due_hint(q, due))
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
}

/* A DELAYED slot seen by a pass over the states: its bit set if it was
 * missing (its delayer died before setting it, or a sweeper between its
 * clear and its CAS). */
static inline void tq__due_repair(tq_queue *q, uint32_t idx)
{
	if (!(load_rlx(&q->due_bits[idx >> 6]) & (1ull << (idx & 63))))
		tq__due_mark(q, idx);
}

static inline void tq__count(tq_queue *q, enum tq_counter c, uint64_t n)
{
	if (n)
		add_rlx(&q->me->c[c], n);
}

static inline void tq__hist_add(tq_queue *q, enum tq_hist h, uint64_t ns, uint64_t weight)
{
	tq_a64 *m = &q->me->c[C__COUNT + h * TQ_HSLOTS];
	add_rlx(&m[hist_bucket(ns)], weight);
	add_rlx(&m[TQ_HBUCKETS], ns * weight);
}

#define TQ_HIST_SAMPLE_EVERY 8u /* a power of two */

/*
 * Latency of a call of `weight` tasks into histogram h. A handle's first
 * call is recorded, then one call in TQ_HIST_SAMPLE_EVERY, weighted by the
 * tasks of the calls since the last (held in the handle, added at close):
 * the counts stay the tasks measured, while a stream of calls pays the
 * histogram's two shared adds (and the caller its clock read, or the read
 * of a batch record, see tq__hist_due) once per eight calls.
 */
static inline bool tq__hist_due(tq_queue *q, enum tq_hist h, uint64_t weight)
{
	uint32_t c = load_rlx(&q->hist_calls[h]);
	store_rlx(&q->hist_calls[h], c + 1); /* which call samples: a hint, racing threads may share one */
	atomic_fetch_add_explicit(&q->hist_pend[h], weight, memory_order_relaxed); /* exact: threads may share a handle */
	return (c & (TQ_HIST_SAMPLE_EVERY - 1)) == 0; /* the first, then one in 8 */
}

/* The sample tq__hist_due asked for: the pending weight, this call's with it. */
static inline void tq__hist_sample(tq_queue *q, enum tq_hist h, uint64_t ns)
{
	uint64_t weight = atomic_exchange_explicit(&q->hist_pend[h], 0, memory_order_relaxed);
	store_rlx(&q->hist_last_ns[h], ns);
	if (weight)
		tq__hist_add(q, h, ns, weight);
}

/* At close: the tasks of calls not yet recorded, at the last sample's
 * latency. */
static inline void tq__hist_flush(tq_queue *q)
{
	for (unsigned h = 0; h < H__COUNT; h++) {
		uint64_t w = atomic_exchange_explicit(&q->hist_pend[h], 0, memory_order_relaxed);
		if (w)
			tq__hist_add(q, (enum tq_hist)h, load_rlx(&q->hist_last_ns[h]), w);
	}
}

static inline uint64_t tq__units_for(uint32_t len)
{
	return ((uint64_t)len + 63) / 64;
}

/* Slot idx's payload and its length (at most max_payload), or NULL and 0
 * when the record names no run inside the area (a hostile segment). */
static inline uint8_t *tq__payload(tq_queue *q, uint32_t idx, uint32_t *len)
{
	const struct tq_slot *s = &q->slots[idx];
	uint64_t first = s->value;
	uint32_t n = s->len <= q->max_payload ? s->len : q->max_payload;

	*len = 0;
	if (n == 0 || first >= q->nunits || tq__units_for(n) > q->nunits - first)
		return NULL;
	*len = n;
	return q->units + first * 64;
}

/* units.c (design.md, 19): the run of payload units of slot idx, which
 * the caller owns, for task id of len bytes (TQ_EAGAIN: no run free now),
 * its first unit in *first; and giving it back before the slot is freed. */
int tq__units_take(tq_queue *q, uint32_t idx, uint64_t id, uint16_t kind, uint32_t len, uint64_t *first);
void tq__units_give(tq_queue *q, uint32_t idx);

#endif
