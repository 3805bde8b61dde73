/* SPDX-License-Identifier: MIT */
/*
 * layout.h - the shared-memory layout of a taskq queue (private).
 *
 * docs/design.md explains the states, the invariants and the recovery
 * argument; this file is the reference for the bytes. Any change to a
 * struct here, or to the meaning of a field, bumps TQ_LAYOUT_VERSION.
 *
 * One segment, /dev/shm/taskq.<name>, sized once at creation:
 *
 *   [hdr]                       header: config, run state, totals, locks,
 *                               the two rings' heads and tails
 *   [procs   x TQ_MAX_PROCS]    one record per attached handle
 *   [state   x slots]           u64 slot state words (8 per cache line)
 *   [slots   x slots]           64-byte task records
 *   [aux     x slots]           64-byte failure records (message prefix, message reference)
 *   [free cells  x ring_size]   u32 slot indices: the free ring
 *   [ready cells x ring_size]   u32 slot indices: the ready ring
 *   [units   x payload_units]   64-byte payload units of slot tasks (design.md, 19; layout 10)
 *   [owners  x payload_units]   u64 owner word of each unit: 0 free, else the owning task's id
 *   [cells   x 8 x lane_size]   24-byte cells of the payload lanes: record positions, ids, push times (design.md, 17)
 *   [ivals   x 8 x lane_size]   8-byte cells of the integer lanes: the integers (layout 11)
 *   [ibatches x 8 x lane_size]  24-byte batch records of the integer lanes: span, first id, push time (layout 11; joined, 14)
 *   [marks   x lanes x lane_size] u64 end positions of settled claims
 *   [bytes   x 8 x lane_bytes]   the payload lanes' byte rings of records
 *   [msgs    x dead_capacity]   whole failure messages of dead tasks (design.md, 10)
 *   [due bits, slots / 64 words] the delayed bitmap: a bit per slot, set for every DELAYED one (layout 9)
 *
 * slots = capacity + dead_capacity + delay_capacity: the dead-letter area
 * and the delay area have slots of their own (design.md, section 10).
 * Every offset is recomputed from (capacity, max_payload, dead_capacity,
 * delay_capacity, payload_units) by every opener
 * and must match the stored one; nothing read from the segment is trusted
 * as a pointer or an unchecked index.
 */
#ifndef TQ_LAYOUT_H
#define TQ_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "taskq.h"

#define TQ_MAGIC 0x31304b5341545154ull /* "TQTASK01" little-endian */
#define TQ_LAYOUT_VERSION 14u
#define TQ_CACHELINE 64
#define TQ_SAMPLES 128
#define TQ_EVENTS 256
#define TQ_AUX_MSG 48 /* bytes of a failure message kept in a slot's aux, with NUL */

/* ------------------------------------------------------------ slot state
 * One u64 per slot: bits 0..7 the state, 8..23 the owner (record index + 1,
 * 0 for none), 32..63 a lease generation (the ready-ring position of the
 * delivery, so that a stale lease can never match a newer one).
 */
enum tq_slot_state {
	ST_FREE = 0,      /* in the free ring */
	ST_WRITING = 1,   /* owner is writing a new task into it */
	ST_READY = 2,     /* in the ready ring */
	ST_LEASED = 3,    /* owner is processing it */
	ST_RELEASING = 4, /* owner is returning it to the free ring */
	ST_REQUEUE = 5,   /* owner is returning it to the ready ring */
	ST_DELAYED = 6,   /* failed; ready again at slot.deadline_ns */
	ST_DEAD = 7,      /* in the dead-letter area */
	ST_ACKED = 8,     /* owner acked it and is returning it to the free ring */
	ST__COUNT
};

static inline uint64_t st_make(unsigned state, uint32_t owner, uint32_t gen)
{
	return (uint64_t)state | ((uint64_t)(owner & 0xffffu) << 8) | ((uint64_t)gen << 32);
}
static inline unsigned st_state(uint64_t s) { return (unsigned)(s & 0xffu); }
static inline uint32_t st_owner(uint64_t s) { return (uint32_t)((s >> 8) & 0xffffu); }

/* ---------------------------------------------------------------- slots */

struct tq_slot {
	uint64_t id;
	uint64_t value;        /* TQ_KIND_INT */
	tq_a64 enq_ns;         /* first push (read racily by statistics) */
	tq_a64 deadline_ns;    /* LEASED: lease end; DELAYED: retry time; else UINT64_MAX */
	uint32_t len;          /* payload bytes */
	uint16_t kind;
	uint16_t attempts;     /* deliveries so far */
	uint32_t flags;
	int32_t last_err;
	uint64_t taken_ns;     /* last delivery */
	uint64_t died_ns;      /* DEAD: when */
};
_Static_assert(sizeof(struct tq_slot) == 64, "slot is one cache line");

/* A slot's failure record: the last failure message's first bytes, and
 * for a dead task with a longer one, its entry in the message area (index
 * + 1, 0 for none) and the sequence that entry must carry (design.md, 10).
 * `tag`: the low 32 bits of the id of the task that wrote it (a push does
 * not clear the record; the prefix belongs only to that task). */
struct tq_aux {
	char msg[TQ_AUX_MSG];
	uint64_t mseq;
	uint32_t mentry;
	uint32_t tag;
};
_Static_assert(sizeof(struct tq_aux) == 64, "aux is one cache line");

/* An entry of the message area: in use while slot `slot` is DEAD with task
 * `id` and `seq` in its aux; written under the recovery lock. */
struct tq_msg {
	uint64_t seq;
	uint64_t id;
	uint32_t slot;
	uint32_t len;    /* bytes of text, < TQ_ERRMSG_MAX */
	uint64_t pad;
	char text[TQ_ERRMSG_MAX];
};
_Static_assert(sizeof(struct tq_msg) == 32 + TQ_ERRMSG_MAX, "message entry");

/* The public limits, against the fields that hold them. */
_Static_assert(sizeof(((struct tq_msg *)0)->text) == TQ_ERRMSG_MAX, "failure text");
_Static_assert(TQ_EVENT_MSG_MAX <= TQ_ERRMSG_MAX && TQ_AUX_MSG <= TQ_ERRMSG_MAX, "message prefixes");
_Static_assert((uint64_t)TQ_MAX_CAPACITY * 3 <= UINT32_MAX / 2, "slots (capacity + dead + delay capacity) are u32");
_Static_assert(TQ_MAX_ATTEMPTS <= UINT16_MAX, "tq_slot.attempts is 16 bits");
_Static_assert(TQ_MAX_PROCS < 0xffff, "owner ids (record + 1) are 16 bits");
_Static_assert(TQ_MAX_CAPACITY <= UINT32_MAX / 2, "slot indices are u32");

/* ---------------------------------------------------------------- locks
 * A lock in shared memory that trusts none of its own bytes (lock.c).
 * `word` is 0 when free; otherwise it names its holder: the holder's record
 * index + 1 in bits 0..15 and the holding handle's random nonce in bits
 * 16..47 (bits 48..63 are zero). A waiter that finds a holder whose record
 * is out of range, whose record's liveness lock is free (the process is
 * gone), or who claims this waiter's own record under another nonce (a
 * previous, dead holder of the record) takes the lock over by CAS and
 * repairs what the holder left. `seq` is a futex word bumped by an unlock
 * that saw `waiters`.
 */
struct tq_lock {
	tq_a64 word;
	tq_a32 seq;
	tq_a32 waiters;
};
#define TQ_LOCK_OWNER_MASK 0xffffull
#define TQ_LOCK_NONCE_SHIFT 16

/* ---------------------------------------------------------------- rings
 * A ring of u32 slot indices with a pop side and a push side, each under
 * its own lock, each with a redo journal (see ring.c).
 */
struct tq_journal {
	tq_a32 phase;    /* 0 idle, 1 an operation is committing */
	uint32_t n;
	uint64_t pos;    /* ring position of the first cell */
	uint64_t stbase; /* the state written into each popped/pushed slot */
	/* The counter this operation adds n to (procs[cnt_rec].c[cnt_id]), and
	 * its value before: only ever changed under this lock, so a repairer
	 * can set it to cnt_before + n whether or not the holder got there. */
	uint64_t cnt_before;
	uint32_t cnt_rec;
	uint32_t cnt_id; /* C__COUNT: none */
};

struct tq_ring_side {
	struct tq_lock lock;
	tq_a64 pos;             /* head (pop side) or tail (push side) */
	struct tq_journal j;
} __attribute__((aligned(TQ_CACHELINE)));

struct tq_bell {
	/* Read by every publication (a push reads `waiters`), written only
	 * when a waiter goes to sleep or wakes, or a sleeper is woken. */
	tq_a32 seq;      /* futex word: bumped to wake sleepers */
	tq_a32 waiters;  /* sleepers right now (a hint: sleeps are bounded) */
	tq_a64 ring_ns; /* when a sleeper was last woken (wake-ups are spaced, wait.c) */
	/* Written by spinning waiters (when they start and stop, and every
	 * few microseconds meanwhile), read by a ringer only when someone
	 * sleeps: on a line of its own, so that a consumer that catches up
	 * with its producer and spins does not take the line every push reads
	 * (layout 13). */
	tq_a32 spinners __attribute__((aligned(TQ_CACHELINE))); /* spinning waiters right now (a hint, see spin_ns) */
	tq_a32 pad;
	/* When a spinner last said it still spins (every few microseconds):
	 * a count not refreshed for SPIN_STALE_NS is not believed, so that a
	 * spinner stopped or killed mid-spin silences no wake-up (wait.c). */
	tq_a64 spin_ns;
} __attribute__((aligned(TQ_CACHELINE)));

struct tq_ring {
	struct tq_ring_side pop;
	struct tq_ring_side push;
	struct tq_bell bell; /* rung by pushes, waited on by poppers */
};

/* ------------------------------------------------------------- counters */

enum tq_counter {
	C_PUSHED, C_TAKEN, C_ACKED, C_FAILED, C_RETRIED, C_DEAD,
	C_EXPIRED, C_RECOVERED, C_DEAD_OVERFLOW, C_LOST,
	/* The same for lane tasks (design.md, 17), kept apart: per process
	 * they are added to the above; the queue's totals come instead from
	 * the lanes' positions and the move counts (exact after any crash). */
	C_LPUSHED, C_LTAKEN, C_LACKED, C_LFAILED, C_LRETRIED, C_LEXPIRED, C_LRECOVERED,
	C__COUNT
};

/* Latency histograms: TQ_HBUCKETS buckets, two per power of two of ns
 * (see hist.h), kept per process after the counters and folded with them. */
#define TQ_HBUCKETS 64
enum tq_hist { H_WAIT, H_PROC, H__COUNT };
#define TQ_HSLOTS (TQ_HBUCKETS + 1) /* the buckets, then the sum of values in ns */
#define TQ_METRICS (C__COUNT + H__COUNT * TQ_HSLOTS)

/* ---------------------------------------------------------------- lanes
 * Single-writer rings of fresh tasks: integers, and payloads whose records
 * are in a byte ring per payload lane (docs/design.md, section 17).
 */
#define TQ_LANES 16u          /* lanes 0..7: integers; 8..15: payloads */
#define TQ_INT_LANES 8u
/* A payload lane's cells hold, in `value`, the absolute byte position in
 * the lane's byte ring of the task's record: this header, then the
 * payload, padded to 8 bytes. A record never wraps around the ring's end. */
struct tq_brec {
	uint32_t len;
	uint16_t kind;
	uint16_t pad;
};
_Static_assert(sizeof(struct tq_brec) == 8, "record header is 8 bytes");
#define TQ_CLAIM_MAX 64u     /* tasks in one claim (one lease entry; layout 12, 32 before) */
#define TQ_FATE_TASKS 32u    /* tasks in one fate word: a claim has two */
#define TQ_LEASES 64u        /* lease entries per record */
#define HEAD_POS_BITS 47
#define HEAD_POS_MASK ((1ull << HEAD_POS_BITS) - 1)
#define HEAD_OWNER_SHIFT 47  /* record + 1, 11 bits */
#define HEAD_ENTRY_SHIFT 58  /* lease entry, 6 bits */

static inline uint64_t head_make(uint64_t pos, uint32_t owner, uint32_t entry)
{
	return (pos & HEAD_POS_MASK) | ((uint64_t)(owner & 0x7ffu) << HEAD_OWNER_SHIFT) |
	       ((uint64_t)(entry & 0x3fu) << HEAD_ENTRY_SHIFT);
}
static inline uint32_t head_owner(uint64_t w) { return (uint32_t)((w >> HEAD_OWNER_SHIFT) & 0x7ffu); }
static inline uint32_t head_entry(uint64_t w) { return (uint32_t)(w >> HEAD_ENTRY_SHIFT); }

struct tq_cell {
	uint64_t value;
	uint64_t id;
	uint64_t enq_ns;
};
_Static_assert(sizeof(struct tq_cell) == 24, "eight cells to three lines");

/* An integer lane's batch record (design.md, 17, "Integer cells and batch
 * records"): one per pushed batch, or per run of batches that joined it
 * (B4: only the last record's count grows), record n of a lane at
 * n % lane_size. Its tasks are positions [first, first + count), with ids
 * id, id + 1, ... */
struct tq_ibatch {
	/* One word, read whole: the first position's low IB_POS_BITS bits (the
	 * rest is rebuilt from a nearby position), the record's lap (its
	 * number / lane_size, low 7 bits: tells a record written over by a
	 * later one) and the count (1..TQ_CHUNK). */
	tq_a64 span;
	uint64_t id;     /* the first task's id */
	uint64_t enq_ns; /* the batch's push time */
};
_Static_assert(sizeof(struct tq_ibatch) == 24, "three words");
#define IB_POS_BITS 48
#define IB_POS_MASK ((1ull << IB_POS_BITS) - 1)
#define IB_LAP_SHIFT 48
#define IB_LAP_MASK 0x7full
#define IB_COUNT_SHIFT 55 /* 9 bits: up to 511 */
#define IB_SPAN(first, lap, count) \
	(((first) & IB_POS_MASK) | (((lap) & IB_LAP_MASK) << IB_LAP_SHIFT) | ((uint64_t)(count) << IB_COUNT_SHIFT))
#define IB_FIRST48(s) ((s) & IB_POS_MASK)
#define IB_LAP(s) (((s) >> IB_LAP_SHIFT) & IB_LAP_MASK)
#define IB_COUNT(s) ((s) >> IB_COUNT_SHIFT)
/* The position whose low IB_POS_BITS bits are f48, nearest to `near`
 * (positions compared are within 2^47 of each other). */
static inline uint64_t ib_pos(uint64_t f48, uint64_t near)
{
	uint64_t d = (near - f48) & IB_POS_MASK;
	return d < (1ull << (IB_POS_BITS - 1)) ? near - d : near + ((f48 - near) & IB_POS_MASK);
}

struct tq_lane {
	/* The producer's line: the lane's holder while it pushes (a lock-style
	 * word, never waited for), the publication position and, in an
	 * integer lane, the number of batch records written. */
	tq_a64 owner;
	tq_a64 tail;
	tq_a64 batches;
	uint64_t pad0[5];
	tq_a64 head __attribute__((aligned(TQ_CACHELINE))); /* the claim word */
	uint64_t pad1[7];
	tq_a64 reuse __attribute__((aligned(TQ_CACHELINE))); /* first position not yet reusable */
	uint64_t pad2[7];
};

/* Lease entry states (low 8 bits of tq_lease.state; the rest a 56-bit
 * generation, advanced every time the entry becomes FREE). */
enum { LS_FREE = 0, LS_RESERVED = 1, LS_PENDING = 2, LS_ACTIVE = 3 };
#define LS_GEN(s) ((s) >> 8)
#define LS_STATE(s) ((unsigned)((s) & 0xffu))
#define LS_MAKE(g, st) (((uint64_t)(g) << 8) | (uint64_t)(st))
/* A claim's fate words (two: tasks 0..31 and 32..63 of the claim, layout
 * 12): each holds the generation's low 24 bits, the number of move-outs
 * that claimed bits of it (8 bits: at most TQ_FATE_TASKS), and one bit per
 * task (set: done, or moved out). Acks set bits only; a move-out's CAS
 * also adds one to the move count of the word it claims bits of, which its
 * journal records, so that the repair of a dead mover can tell its CAS
 * from the holder's acks. */
#define FATE_GEN(g) (((uint64_t)(g) & 0xffffffull) << 40)
#define FATE_GEN_OF(f) ((f) >> 40)
#define FATE_MOVES(f) ((uint32_t)(((f) >> 32) & 0xffu))
#define FATE_MOVE_ONE (1ull << 32)
#define FATE_BITS(f) ((f) & 0xffffffffull)

struct tq_lease {
	tq_a64 state;
	/* fate[w]: FATE_GEN(generation) | moves << 32 | one bit per task of
	 * the claim's tasks 32w..32w+31: done or moved */
	tq_a64 fate[2];
	tq_a64 deadline; /* lease end */
	tq_a64 first;    /* lane position of the first task */
	tq_a8 lane;
	/* How many of the claim's tasks were handed over to the caller, + 1,
	 * while a take-ahead keeps the rest; 0: all of them (layout 13;
	 * tq_set_take_ahead: a move-out counts no attempt for a task not
	 * handed over). Written by the owner only: with the claim's other
	 * fields, then at each hand-over. */
	tq_a8 handed;
	tq_a16 count;    /* 1..TQ_CLAIM_MAX */
	/* Failures the holder asked for that could not be moved out at once
	 * (no free slot, or the recovery lock busy): the error code, and the
	 * tasks' bits (below); the sweep moves them out as failures (lane.c). */
	tq_a32 fail_err;
	tq_a64 taken_ns;
	tq_a64 fail_mask;
};
_Static_assert(sizeof(struct tq_lease) == 64, "a lease entry is one line");
_Static_assert(TQ_CLAIM_MAX == 2 * TQ_FATE_TASKS && TQ_FATE_TASKS < 0xff,
	       "two fate words hold a claim's task bits, 32 each, and their moves in 8 bits each");
_Static_assert(TQ_LANES <= 0xff && TQ_CLAIM_MAX + 1 <= 0xff && TQ_CLAIM_MAX <= 0xffff,
	       "a lease entry's lane and handed marker are 8-bit, its count 16-bit");
_Static_assert(TQ_MAX_PROCS < 0x7ff, "claim words hold record + 1 in 11 bits");
_Static_assert(TQ_LEASES <= 64, "claim words hold the entry in 6 bits");

/* The recovery-lock holder's journal of one move-out (design.md, 17). */
struct tq_move_journal {
	tq_a32 active;
	uint32_t rec;     /* the lease entry's record */
	uint32_t entry;
	uint32_t why;     /* MV_* (lane.c) */
	uint32_t mover;   /* the holder's record + 1: its slots are WRITING(mover) */
	uint32_t moves;   /* the move count of fate word `word` once this move's CAS is done */
	uint32_t word;    /* the fate word this move claims bits of (0, 1): one word a move */
	uint64_t gen;     /* the entry's generation */
	uint64_t mask;    /* the task bits being moved (of the claim's 64; all in one word) */
	uint64_t moved_before; /* lane_moved[why] before this move */
	uint32_t slot[TQ_CLAIM_MAX]; /* the slot of task bit i */
	/* rec, entry and the generation's low 47 bits in one word, written
	 * before `active`: what an acker compares in one load (lane.c). */
	tq_a64 key;
};

/* ------------------------------------------------------- process records */

enum tq_proc_state { PROC_FREE = 0, PROC_ACTIVE = 1 };
#define FAIL_CLAIMED (1ull << 63)

struct tq_proc {
	tq_a32 state;
	int32_t pid;
	uint64_t attached_ns;
	tq_a64 last_seen_ns;
	tq_a32 waiting;          /* asleep on a bell: 1 ready, 2 free */
	tq_a32 nonce;            /* the holding handle's lock nonce (lock.c), set before it locks */
	/* Done per second over the last sampling interval (about 1 s), kept
	 * by maintenance from the acked counter below. */
	tq_a64 rate_acked;       /* acked at the last sample */
	tq_a64 rate_ns;          /* when */
	tq_a64 rate_milli;       /* tasks per 1000 s */
	/* Fail journal (see tq_fail): the slot being failed, + 1, with
	 * FAIL_CLAIMED once claimed; and the failed counter before it. */
	tq_a64 fail_slot;
	tq_a64 fail_before;
	/* Delayed-push journal (push.c): the slot being made DELAYED, + 1, and
	 * the pushed counter before it. */
	tq_a64 dpush_slot;
	tq_a64 dpush_before;
	tq_a32 spinning;         /* how many of its threads are counted as spinners on the ready bell */
	uint8_t pad1[36];
	/* Lane claims this handle holds (design.md, section 17), and a map of
	 * the entries that may be in use (bit e set before entry e is first
	 * taken, kept while the record lives: readers of the lease tables read
	 * only those entries). */
	tq_a64 lease_map __attribute__((aligned(TQ_CACHELINE)));
	struct tq_lease leases[TQ_LEASES] __attribute__((aligned(TQ_CACHELINE)));
	/* Written only by the owning handle (and by recovery once it is dead):
	 * counters c[0..C__COUNT), then the histograms. */
	tq_a64 c[TQ_METRICS] __attribute__((aligned(TQ_CACHELINE)));
} __attribute__((aligned(TQ_CACHELINE)));

/* --------------------------------------------------------------- header */

struct tq_fold_journal {
	tq_a32 active;
	uint32_t rec;
	uint64_t after[TQ_METRICS]; /* the totals once the fold is done */
};

struct tq_hdr {
	/* Identity and configuration: written once at creation, then read-only. */
	uint64_t magic;           /* written last at creation */
	uint32_t version;
	uint32_t hdr_size;
	uint64_t total_size;
	uint32_t capacity;
	uint32_t max_payload;
	uint32_t payload_stride;
	uint32_t ring_size;       /* power of two >= capacity */
	uint32_t max_procs;
	uint32_t max_attempts;
	uint32_t dead_capacity;   /* the dead-letter area: slots beyond the capacity, and message entries */
	uint32_t mode;
	uint64_t lease_ns;
	uint64_t backoff_base_ns;
	uint64_t backoff_max_ns;
	uint64_t created_ns;
	uint64_t off_procs, off_state, off_slots, off_aux;
	uint64_t off_free_cells, off_ready_cells, off_payload;
	uint32_t nlanes;          /* TQ_LANES */
	uint32_t lane_size;       /* cells per lane: a power of two (queue.c, lane_size_for) */
	uint64_t off_cells, off_marks; /* off_cells: the payload lanes' cells (lane 8's first) */
	uint64_t off_ivals, off_ibatches; /* the integer lanes' cells and batch records (layout 11) */
	uint64_t lane_bytes;      /* bytes per payload lane's byte ring: a power of two */
	uint64_t off_bytes;       /* the payload lanes' byte rings, lane 8's first */
	uint32_t slots;           /* capacity + dead_capacity + delay_capacity */
	uint32_t delay_capacity;  /* the delay area: slots beyond the capacity for delayed tasks (layout 8) */
	uint64_t off_msgs;        /* dead_capacity message entries */
	uint64_t off_due_bits;    /* the delayed bitmap (layout 9) */
	uint64_t payload_units;   /* 64-byte units of slot payloads (design.md, 19; layout 10) */
	uint64_t off_owners;      /* their owner words; off_payload is the units */

	/* Shared state. */
	tq_a32 run_state __attribute__((aligned(TQ_CACHELINE)));
	tq_a32 dead_count;        /* DEAD slots: exact while the recovery lock is free (design.md, 10) */
	tq_a32 recoveries;
	uint32_t pad1;
	uint32_t tag;             /* random at creation: binds a lease to its queue */
	tq_a32 delayed_count;     /* DELAYED slots: kept by fail and sweep, recounted by each sweep */
	tq_a64 next_maint_ns;
	tq_a64 next_sweep_ns;
	/* The earliest due time of a DELAYED slot, UINT64_MAX for none: a
	 * lower bound kept by those who delay (fail, delayed push) and reset by
	 * each sweep. Maintenance sweeps when it passes; sleepers wake for it. */
	tq_a64 next_due_ns;
	tq_a64 next_due_sweep_ns; /* the earliest a due-time sweep may run again */

	/* Recovery: one process at a time, under this lock. */
	struct tq_lock recovery_lock __attribute__((aligned(TQ_CACHELINE)));
	struct tq_fold_journal fold;
	uint64_t retired[TQ_METRICS]; /* metrics of handles that closed or died */

	/* Throughput samples, one a second, written by maintenance (under the
	 * recovery lock); readers derive rates over 1, 10 and 60 s. */
	struct tq_sample {
		uint64_t t_ns, pushed, acked, failed;
	} samples[TQ_SAMPLES];
	tq_a32 sample_next;
	uint32_t pad3;
	tq_a64 next_sample_ns;

	/* Recent events (deaths, recoveries, dead letters, state changes): a
	 * ring under its own lock; an entry is valid once seq != 0. */
	struct tq_lock event_lock __attribute__((aligned(TQ_CACHELINE)));
	uint64_t event_next;
	struct tq_event {
		uint64_t seq; /* 1-based sequence; 0 while written */
		uint64_t t_ns;
		int32_t pid;
		uint32_t type;
		uint64_t a, b;
		char msg[TQ_EVENT_MSG_MAX];
	} events[TQ_EVENTS];
	/* The failure-message area (design.md, 10), under the recovery lock:
	 * the last sequence given, and where the next search for a free
	 * entry starts (a hint, taken modulo dead_capacity). */
	uint64_t msg_seq;
	uint32_t msg_hint;

	tq_a64 next_id __attribute__((aligned(TQ_CACHELINE))); /* the next task id: pushes take ranges */
	/* 1 + the highest record index ever attached: passes over the records
	 * stop there (raised before a record becomes ACTIVE). */
	tq_a32 procs_hi __attribute__((aligned(TQ_CACHELINE)));
	struct tq_move_journal move __attribute__((aligned(TQ_CACHELINE))); /* under the recovery lock */
	tq_a64 lane_moved[8];     /* lane tasks moved out, by MV_* reason (under the recovery lock) */
	/* The tasks of the move under way, from before its fate CAS until
	 * lane_moved counts them (0 otherwise): stats subtract them from
	 * acked meanwhile (design.md, 17; layout 9). */
	tq_a64 lane_moving;
	/* Payload units (design.md, 19): where the next search for a run
	 * starts (a hint), and how many runs have been given back (waiters
	 * for room compare it). */
	tq_a64 unit_hint __attribute__((aligned(TQ_CACHELINE)));
	tq_a64 units_given;
	struct tq_lane lanes[TQ_LANES];

	struct tq_ring free_ring;   /* slots with no task */
	struct tq_ring ready_ring;  /* tasks ready to take, oldest first */
};

#endif
