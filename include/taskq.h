/* SPDX-License-Identifier: MIT */
/*
 * taskq.h - the public API of libtaskq, a crash-safe task queue in POSIX
 * shared memory for producer and consumer processes on one Linux machine.
 *
 * Features
 *   - Named queues (shm_open + mmap), opened by any process of the machine.
 *   - Integer tasks (one cache line each) and byte payloads tagged as string
 *     or JSON, pushed and taken one at a time or in batches; one lock
 *     acquisition per batch side, no system call while nobody sleeps.
 *   - Leases: a taken task stays recorded as in progress until it is acked
 *     or failed; failures are retried with exponential backoff and jitter,
 *     then dead-lettered. Delivery is at least once; every task carries an
 *     id unique within its queue so that consumers can deduplicate.
 *   - Every attached process is registered and holds a kernel lock on its
 *     record; when it dies, by any signal, any other attached process
 *     returns its leased tasks and repairs what it was doing.
 *
 * Caveats
 *   - A handle cannot be used in a child after fork(): in the child, every
 *     handle is unmapped and closed at once (so that the parent's death is
 *     seen as such while the child lives on) and returns TQ_EFORKED; the
 *     child opens the queue itself. tq_close on it just frees it. Payload
 *     pointers from tq_take are gone in the child too (copy what a child
 *     needs before forking). After daemon(), open the queue again.
 *   - Every process attached to a queue can write all of its shared memory.
 *     Opening validates the segment, every index, length and lock word read
 *     from it is checked, and every loop over it is bounded, so that no byte
 *     pattern makes a call crash or hang: the worst a hostile writer gets is
 *     a documented error, or tasks it forged or damaged (docs/design.md,
 *     "Hostile segments and other users"). A lock held by a live process
 *     that stops delays a call by at most 10 s (then TQ_EBUSY); a lock whose
 *     holder is gone, or that names no holder, is taken over at once.
 *   - Tasks pushed with tq_push in batches of one class (integers, or
 *     payloads), and their take, ack and touch, use no lock at all (lanes,
 *     docs/design.md section 17): a process stopped or slow inside one of
 *     them delays nobody else, only its own leases, which expire as usual.
 *     Mixed batches, delayed pushes, failures and retries still take the
 *     locks above.
 *   - Task payloads returned by tq_take() point into shared memory and are
 *     valid only until the task is acked or failed, or its lease is lost
 *     (expired: extend long work with tq_touch; tq_worker_run does).
 *
 * Conventions
 *   - Every function returns 0 (or a count, where stated) on success and a
 *     negative TQ_E* code on failure; errno is not part of the contract.
 *     tq_strerror() names every code.
 *   - Unless stated otherwise, functions taking a tq_queue are safe to call
 *     from several threads at once on the same handle, and from any number
 *     of processes each with its own handle.
 *   - Times are nanoseconds. Timeouts: 0 means do not wait,
 *     TQ_WAIT_FOREVER means no limit; internal sleeps are bounded so that
 *     waiting processes also run recovery periodically.
 */
#ifndef TASKQ_H
#define TASKQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, MAJOR.MINOR.PATCH, as in `pkg-config --modversion
 * taskq` and `taskq --version`. The shared library's soname is
 * libtaskq.so.MAJOR from 1.0 on; while MAJOR is 0, every MINOR may change
 * the ABI, so it is libtaskq.so.0.MINOR. */
#define TQ_VERSION_MAJOR 0
#define TQ_VERSION_MINOR 4
#define TQ_VERSION_PATCH 0

/* ---------------------------------------------------------------- errors */

enum tq_error {
	TQ_OK = 0,
	TQ_EINVAL = -1,     /* a bad argument (NULL, zero or out-of-range value) */
	TQ_ENAME = -2,      /* a queue name that is empty, too long or has bad characters */
	TQ_EEXIST = -3,     /* tq_create: a queue of that name already exists */
	TQ_ENOENT = -4,     /* no queue of that name */
	TQ_EPERM = -5,      /* the OS refused access to the segment */
	TQ_EBADQUEUE = -6,  /* the segment is not a taskq queue, is truncated or inconsistent */
	TQ_EVERSION = -7,   /* the segment has another layout version */
	TQ_E2BIG = -8,      /* a payload larger than the queue's max_payload */
	TQ_EAGAIN = -9,     /* timeout 0 and nothing could be done now (full / empty) */
	TQ_ETIMEDOUT = -10, /* the timeout passed before anything could be done */
	TQ_ELOST = -11,     /* a lease was lost (expired and retaken, or recovered) */
	TQ_EPROCS = -12,    /* too many processes attached (TQ_MAX_PROCS) */
	TQ_ENOMEM = -13,    /* out of memory, or the segment could not be sized or mapped */
	TQ_EBUSY = -14,     /* a queue lock stayed held by a live process for 10 s (a stopped process?) */
	TQ_ENOTFOUND = -15, /* no task with that id in the requested state */
	TQ_ESYS = -16,      /* an unexpected OS error */
	TQ_EINIT = -17,     /* the queue is still being created, or its creator died doing so */
	TQ_ESTOPPED = -18,  /* the queue's run state is DRAINING or STOPPED: nothing new goes in or out */
	TQ_EFORKED = -19,   /* a handle opened before fork(), used in the child: open the queue again there */
	TQ_EOBSERVER = -20, /* the call changes tasks or runs recovery, and the handle is an observer (tq_open_observer) */
};

/* Returns a static, human-readable description of a TQ_E* code (or of 0). */
const char *tq_strerror(int err);

/* ----------------------------------------------------------- limits/kinds */

#define TQ_NAME_MAX 200            /* bytes in a queue name */
#define TQ_MAX_CAPACITY (1u << 24) /* tasks in one queue */
#define TQ_MAX_PAYLOAD (1u << 24)  /* bytes in one payload */
#define TQ_MAX_PROCS 1024          /* handles attached to one queue at once */
#define TQ_ERRMSG_MAX 1024         /* bytes kept of a failure message, with NUL (cut at a UTF-8 character boundary) */
#define TQ_EVENT_MSG_MAX 128       /* bytes of it an event carries, with NUL (tq_event_info.msg) */
#define TQ_MAX_ATTEMPTS 65535u     /* largest tq_config.max_attempts */
#define TQ_LEASE_MIN_NS 1000000ull /* shortest tq_config.lease_ns: 1 ms */
#define TQ_TAKE_AHEAD_MAX 64u      /* largest tq_set_take_ahead: one claim's tasks */
#define TQ_ACK_LATER_MAX 64u       /* acks tq_ack_later keeps before it acks them together */
/* Longest lease, backoff and backoff cap: 365 days. */
#define TQ_TIME_MAX_NS (365ull * 86400ull * 1000000000ull)
#define TQ_WAIT_FOREVER UINT64_MAX

enum tq_kind {
	TQ_KIND_INT = 1,    /* a 64-bit integer in tq_task.value */
	TQ_KIND_STRING = 2, /* bytes in tq_task.data / len */
	TQ_KIND_JSON = 3,   /* bytes tagged as JSON (the library does not parse them) */
};

/*
 * Run state, shared by every process of a queue and set by anyone
 * (tq_set_run_state: signals, `taskq stop`, remote requests). The library
 * enforces it on push and take; tq_worker_run() honours it as a whole.
 *   RUNNING   normal.
 *   PAUSED    tq_take waits (as on an empty queue); tq_push works.
 *   DRAINING  tq_push and tq_take return TQ_ESTOPPED; tasks already taken
 *             can still be acked, failed, touched. Workers finish what they
 *             hold, ack it and return. Ready tasks stay in the queue.
 *   STOPPED   as DRAINING, and workers return at once without handling the
 *             rest of what they hold (their leases return to ready).
 * The state persists in the queue until set again (e.g. back to RUNNING).
 */
enum tq_run_state {
	TQ_RUNNING = 0,
	TQ_DRAINING = 1,
	TQ_STOPPED = 2,
	TQ_PAUSED = 3,
};

/* ------------------------------------------------------------ lifecycle */

typedef struct tq_queue tq_queue;

typedef struct tq_config {
	/* Tasks held at once: ready, in progress, and delayed or dead beyond
	 * their areas. Retries that come due join the ready tasks whatever the
	 * room, so ready + in progress can exceed it by up to delay_capacity
	 * for a while (pushes then wait). 1..TQ_MAX_CAPACITY; default 10000. */
	uint32_t capacity;
	uint32_t max_payload;     /* bytes per payload, 0..TQ_MAX_PAYLOAD; default 4096 */
	mode_t mode;              /* permission bits of the segment; default 0600 */
	uint32_t max_attempts;    /* deliveries before a failing task is dead; 1..TQ_MAX_ATTEMPTS; default 5 */
	/* The dead-letter area: this many dead tasks take no room from the
	 * capacity (the queue has capacity + dead_capacity + delay_capacity
	 * slots), and keep
	 * their whole failure message. A task that dies when the area is full
	 * is kept all the same (never dropped) but counts against the
	 * capacity, so producers end up waiting as on a full queue until dead
	 * tasks are kicked or purged (tq_stats.dead_over says by how many,
	 * event TQ_EV_DEAD_FULL when it starts). 1..capacity; 0 (the
	 * default): max(1, capacity / 10). */
	uint32_t dead_capacity;
	/* The delay area: this many delayed tasks (retries waiting for their
	 * backoff, delayed pushes) take no room from the capacity (the queue
	 * has capacity + dead_capacity + delay_capacity slots), so waiting
	 * retries do not keep new tasks out. Delayed tasks beyond it are kept
	 * all the same but count against the capacity (tq_stats.delay_over).
	 * Size it for the failure rate times the backoff. 1..capacity; 0 (the
	 * default): max(1, capacity / 20). */
	uint32_t delay_capacity;
	uint64_t lease_ns;        /* lease length given by tq_take; TQ_LEASE_MIN_NS..TQ_TIME_MAX_NS; default 30 s */
	uint64_t backoff_base_ns; /* retry delay after the first failure; 0..backoff_max_ns; default 100 ms */
	uint64_t backoff_max_ns;  /* retry delay cap; ..TQ_TIME_MAX_NS; default 60 s */
	/* Bytes of the area that holds the payloads of tasks in slots
	 * (retries, delayed, dead and returned tasks, and pushes beyond a
	 * lane), rounded up to 64: a payload of n bytes takes ceil(n / 64)
	 * 64-byte units of it while its task is held, so the queue is sized by
	 * what it stores, not by capacity x max_payload. At least max_payload
	 * (rounded up to 64), at most (capacity + dead_capacity +
	 * delay_capacity) x max_payload rounded up to 64. When it is full, a
	 * push waits as on a full queue (TQ_EAGAIN, TQ_ETIMEDOUT) until payloads
	 * are acked or purged. 0 (the default): capacity x max_payload (rounded
	 * up to 64) while that is at most 64 MiB, else max(64 MiB, capacity x 256
	 * bytes), within the bounds. Each 64-byte unit also costs an 8-byte
	 * owner word. Fresh payload tasks in lanes use the lanes' own byte
	 * rings, not this area. */
	uint64_t payload_bytes;
} tq_config;

/* Fills *cfg with the defaults above. */
void tq_config_init(tq_config *cfg);

/*
 * Creates the queue `name` and attaches to it.
 * name: 1..TQ_NAME_MAX bytes of [A-Za-z0-9_.-], not starting with '.';
 *       the segment is /dev/shm/taskq.<name>.
 * cfg:  NULL for the defaults; otherwise every field is validated.
 * Errors: TQ_ENAME, TQ_EINVAL, TQ_EEXIST, TQ_EPERM, TQ_ENOMEM, TQ_ESYS.
 */
int tq_create(const char *name, const tq_config *cfg, tq_queue **out);

/*
 * Attaches to an existing queue. The segment is validated (magic, layout
 * version, sizes, that the file is whole) before anything in it is used,
 * and any holes in the file are filled (TQ_ENOMEM if /dev/shm is full,
 * never a SIGBUS later); then the caller registers itself and recovers any
 * dead processes, unless a live process is doing so already. Waits at most
 * 1 s for a creator that has not finished (then TQ_EINIT).
 * Errors: TQ_ENAME, TQ_ENOENT, TQ_EPERM, TQ_EBADQUEUE, TQ_EVERSION,
 *         TQ_EINIT, TQ_EPROCS, TQ_ENOMEM, TQ_ESYS, TQ_EBUSY (every record
 *         was taken and a live process held the recovery lock for 10 s).
 */
int tq_open(const char *name, tq_queue **out);

/*
 * Attaches to an existing queue as an observer: for monitors, dashboards,
 * exporters and admin commands that look at a queue without working on it.
 * Validates the segment as tq_open does, but registers no process: an
 * observer is never counted in tq_stats.procs, never listed by tq_procs,
 * holds no task, and is invisible to other processes (`taskq destroy`
 * does not count it as attached). It runs no recovery, not even on open:
 * the tasks of a dead process stay leased until a worker handle or
 * tq_recover returns them (or their leases expire).
 * An observer handle may call: tq_stats_get, tq_procs, tq_histograms,
 * tq_events, tq_finished_below, tq_config_get, tq_payload_area, tq_instance, tq_run_state,
 * tq_set_run_state, tq_counters_self (all zero) and tq_close. On it,
 * tq_stats_get and tq_procs count and list only live processes (a process
 * that died and is not yet recovered is left out). Every other call
 * (tq_push*, tq_take, tq_take_ints, tq_ack, tq_batch_ack, tq_batch_task,
 * tq_fail, tq_touch, tq_worker_run, tq_dead_list, tq_dead_kick,
 * tq_dead_purge, tq_recover) returns
 * TQ_EOBSERVER and changes nothing. (tq_dead_list is refused because it
 * takes the recovery lock, whose holder must be able to repair what a
 * dead holder left: a worker's job.)
 * To take the short event-ring lock (tq_events, tq_set_run_state), an
 * observer holds the liveness lock (docs/design.md, section 4) of one free
 * process record without ever making it active, so it takes one of the
 * TQ_MAX_PROCS places while open. Thread-safe as tq_open's handles.
 * Errors: as tq_open (TQ_EPROCS when no record is free); never TQ_EBUSY.
 */
int tq_open_observer(const char *name, tq_queue **out);

/*
 * Detaches: tasks this handle still leases return to ready at once (that
 * delivery not counted as an attempt), its
 * counters are folded into the queue's totals, the handle is freed.
 * Not thread-safe with other calls on the same handle. NULL is a no-op.
 * Always returns 0: if the recovery lock stays busy, the leases come back
 * by recovery after the handle is gone, as if the process had died.
 */
int tq_close(tq_queue *q);

/* Removes the queue's name; attached processes keep working until they
 * close. Errors: TQ_ENAME, TQ_ENOENT, TQ_EPERM, TQ_ESYS. */
int tq_destroy(const char *name);

/* ---------------------------------------------------------------- tasks */

typedef struct tq_task {
	uint64_t id;          /* set by tq_push and tq_take: unique in the queue */
	uint64_t value;       /* TQ_KIND_INT: the integer */
	const void *data;     /* payload kinds: the bytes (tq_take: in shared memory) */
	uint32_t len;         /* payload kinds: byte count, <= max_payload */
	uint16_t kind;        /* enum tq_kind */
	uint16_t attempt;     /* tq_take: 1 on first delivery, 2 on the first retry, ... */
	uint64_t enqueued_ns; /* tq_take: CLOCK_MONOTONIC time of the first push (integers: see tq_push) */
	uint64_t priv[2];     /* the lease; do not touch */
} tq_task;

/*
 * Pushes n tasks in order. Payloads are copied into the queue; nothing is
 * truncated. Integer tasks pushed into a lane less than 1 us after an
 * earlier push into it, with the ids that follow that push's, carry its
 * push time: an integer task's enqueued_ns is its own push's, or up to
 * 1 us earlier (docs/design.md, 17, B4). Ids grow in push order across
 * the whole queue, and one
 * handle's tasks are taken in its push order (but for two narrow races
 * between takers: docs/design.md, section 17). A batch of only TQ_KIND_INT
 * tasks, or of only payload tasks, goes through the lock-free lanes; a
 * batch that mixes them through the slot rings. A payload batch may also
 * wait for byte room: the bytes one handle has in flight are bounded by one
 * lane's byte ring (more than 32 bytes per task of capacity). A payload
 * that goes through slots (a mixed batch, a delayed push, a push beyond a
 * lane) takes room in the payload area (tq_config.payload_bytes), and
 * waits like a full queue while the area has no run for it. Waits up to
 * timeout_ns for free room while the queue is full.
 * Returns the number accepted, k (1..n); tasks[0..k) then carry their ids,
 * and every accepted task will be delivered even if the caller dies.
 * Fewer than n are accepted when, after the first ones went in, the queue
 * (or its payload area) stayed full until the timeout (or timeout 0 found it full), the run
 * state became DRAINING or STOPPED, or a queue lock stayed busy (TQ_EBUSY):
 * the call reports what was accepted and the next call reports the error.
 * Errors (nothing accepted): TQ_EINVAL (NULL q or tasks, n == 0, a bad
 * kind, NULL data with len > 0), TQ_E2BIG (a payload over max_payload),
 * TQ_EAGAIN (timeout 0, full: slots, lane bytes or payload area),
 * TQ_ETIMEDOUT, TQ_EBUSY, TQ_ESTOPPED (run
 * state DRAINING/STOPPED), TQ_EBADQUEUE (the queue's rings are
 * inconsistent: damaged shared memory). The batch is validated whole first:
 * one bad task anywhere in it means nothing of it is pushed.
 */
int tq_push(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns);

/*
 * As tq_push, but the tasks become ready only delay_ns after the call (a
 * "not before" time, as beanstalkd's delay or Sidekiq's perform_in): until
 * then they are DELAYED (tq_stats.delayed), are not taken, and take no
 * room from the capacity while the delay area holds them (tq_config's
 * delay_capacity): a delayed push into a full queue succeeds while the area
 * has room, and only beyond it do delayed tasks count against the capacity
 * (and wait for room like any push). They become ready within about 1 ms
 * of their due time while any process works or waits on the queue (within capacity x 10 ns for queues
 * over 100,000 tasks). delay_ns 0 is tq_push. Unlike tq_push, it takes the
 * queue's recovery lock (as tq_fail does), so a process stopped while
 * holding it delays the call by up to 10 s whatever timeout_ns says.
 * Errors as tq_push, and TQ_EINVAL for delay_ns over TQ_TIME_MAX_NS.
 */
int tq_push_delayed(tq_queue *q, tq_task *tasks, size_t n, uint64_t delay_ns, uint64_t timeout_ns);

/*
 * Pushes n integer tasks, values[0..n), as tq_push of n TQ_KIND_INT tasks
 * would, without a tq_task per task: the producer's side of tq_take_ints,
 * and the fastest way in for integers (it writes each value once, into its
 * lane's cell). Their ids are assigned as tq_push's are (unique, growing
 * in push order) but not reported: use tq_push where the ids matter.
 * Returns the number accepted, k (1..n), with tq_push's meaning (fewer
 * than n: the next call reports why); every accepted task will be
 * delivered even if the caller dies.
 * Errors (nothing accepted): TQ_EINVAL (NULL q or values, n == 0 or over
 * INT32_MAX), TQ_EAGAIN, TQ_ETIMEDOUT, TQ_EBUSY, TQ_ESTOPPED,
 * TQ_EBADQUEUE, as tq_push. Thread-safe as tq_push (one handle, any thread).
 */
int tq_push_ints(tq_queue *q, const uint64_t *values, size_t n, uint64_t timeout_ns);

/* One integer task; returns 0 or an error as tq_push. */
int tq_push_int(tq_queue *q, uint64_t value, uint64_t timeout_ns);
/* One payload task of kind TQ_KIND_STRING or TQ_KIND_JSON; as tq_push. */
int tq_push_data(tq_queue *q, uint16_t kind, const void *data, uint32_t len, uint64_t timeout_ns);

/*
 * Takes up to max ready tasks, oldest first, leasing each to this handle for
 * the queue's lease_ns. Waits up to timeout_ns while none is ready.
 * Returns the number taken (1..max). Each must later be acked or failed
 * (or its lease will expire and it will be delivered again).
 * Errors: TQ_EINVAL (NULL q or out, max == 0), TQ_EAGAIN (timeout 0,
 * empty), TQ_ETIMEDOUT, TQ_EBUSY, TQ_EBADQUEUE (damaged shared memory),
 * TQ_ESTOPPED (run state DRAINING or STOPPED, also if it changes while
 * waiting). While PAUSED nothing is taken: the call waits, or returns
 * TQ_EAGAIN / TQ_ETIMEDOUT as for an empty queue.
 * Lane tasks are taken in batches of up to 64 from one lane, one lease
 * record per batch; a handle keeps up to 63 such batches unacked, and takes
 * beyond that move their batch into slots under the recovery lock (so
 * they may wait up to 10 s for it, then TQ_EBUSY; TQ_EBUSY at once when no
 * slot is free for them: ack what the handle holds). Oldest first means: of
 * the tasks in the lanes and the slot ring, the smallest id first; tasks of
 * different producers pushing at once may interleave. A handle's acks kept
 * by tq_ack_later are applied by this call when it finds nothing ready, or
 * 1 ms after the take before the first kept one (see tq_ack_later).
 */
int tq_take(tq_queue *q, tq_task *out, size_t max, uint64_t timeout_ns);

/*
 * Take-ahead (a consumer's prefetch, as AMQP's basic.qos): with n >= 2, a
 * tq_take on this handle that asks for fewer than n tasks claims up to n
 * that are ready (one claim per lane it takes from), hands over what it was
 * asked for and keeps the rest leased to this handle; its next tq_take
 * calls hand those over first, in order, without touching what other
 * processes write. So a worker that takes and acks one task at a time pays
 * the shared-memory cost of a take once per n tasks. n 0 or 1: off (the
 * default). Tasks already held stay held when it is lowered or turned off,
 * and are handed over by the next tq_take calls.
 * What changes for the tasks kept:
 *   - they are leased, so they count as in progress (tq_stats.leased), and
 *     other workers do not get them: with several workers and few ready
 *     tasks, a worker may hold up to n while another waits. Use it for
 *     steady streams of short tasks;
 *   - a task's lease is renewed when it is handed over (to lease_ns from
 *     then, as tq_touch would; lease entries hold one deadline per claim,
 *     so the tasks of that claim handed over earlier get it too). A kept
 *     task whose lease ended meanwhile (expired: this handle took more
 *     than lease_ns to come back for it) is not handed over; it was given
 *     back to the queue and is delivered again from there;
 *   - a kept task never handed over was not delivered: when its lease
 *     expires, its process dies or the handle closes, it goes back to the
 *     queue with no attempt counted (tq_task.attempt and max_attempts
 *     count hand-overs; a hand-over that races with the lease's expiry
 *     may count one);
 *   - only fresh tasks (pushed in batches of one class, through the lanes)
 *     are kept; retries and other tasks from the slot ring are taken as
 *     many as asked for;
 *   - they are handed over before anything that became ready after
 *     their claim (a retry, say), so "oldest first" holds per claim;
 *   - only tq_take hands them over (so also tq_worker_run, which takes
 *     with it; not tq_take_ints), and not while the run state is PAUSED,
 *     DRAINING or STOPPED (tq_take's rules). Kept tasks not handed over stay leased
 *     to the handle, their leases not renewed, until it hands them over,
 *     closes (they go back at once) or their leases expire (they go back
 *     then): a worker that stops taking (TQ_ESTOPPED, a pause, the end of
 *     its loop) should close its handle, or its kept tasks wait lease_ns;
 *   - the wait histogram counts a kept task's wait up to its hand-over;
 *     the processing histogram counts from the hand-over of the claim's
 *     latest task handed over;
 * With several threads on the handle, the thread that finds the kept
 * tasks in use by another takes as if take-ahead were off.
 * Errors: TQ_EINVAL (NULL q, n over TQ_TAKE_AHEAD_MAX), TQ_EOBSERVER,
 * TQ_EFORKED. Thread-safe.
 */
int tq_set_take_ahead(tq_queue *q, unsigned n);

/*
 * Acknowledges n leased tasks as done; their slots are freed.
 * Returns 0 when every lease was still held, TQ_ELOST when one or more had
 * been lost (those tasks were or will be delivered again; the others are
 * acked all the same). Errors (nothing acked): TQ_EINVAL (NULL q or tasks,
 * n == 0, a task not from tq_take on this queue). Errors after the acks took
 * effect (the tasks count as done; their slots are freed when this handle
 * closes or its process dies): TQ_EBUSY, TQ_EBADQUEUE.
 */
int tq_ack(tq_queue *q, const tq_task *tasks, size_t n);

/*
 * Acknowledges leased tasks later, together: an opt-in form of tq_ack for
 * a consumer that takes and acks one task at a time, which then pays the
 * ack's shared-memory work once per group instead of once per task.
 * The tasks are checked at once, as tq_ack checks them (a bad one: TQ_EINVAL,
 * nothing kept), and kept in the handle. The kept tasks are acked together,
 * as by one tq_ack, when:
 *   - the handle keeps TQ_ACK_LATER_MAX of them (by the call that keeps the
 *     last one);
 *   - the handle's next tq_take finds no task ready (before it waits or
 *     returns), or comes 1 ms or more after the tq_take that preceded the
 *     first kept one;
 *   - tq_ack_flush or tq_close is called.
 * Until then a kept task is still leased to this handle, as a taken task
 * not yet acked is: if the process dies first, the task is delivered
 * again (at least once, as always); if its lease ends first, its ack is
 * lost, as a late tq_ack's is. The processing histogram counts a kept
 * task up to the ack that applies it.
 * Returns 0 when the tasks were kept, or acked with every lease still
 * held. TQ_ELOST when an ack of kept tasks made by this call, or by a
 * tq_take since the last report, found a lease lost (the others were
 * acked all the same). n over TQ_ACK_LATER_MAX, or a kept group in use by
 * another thread of the handle: the tasks are acked at once, with
 * tq_ack's result. Errors: TQ_EINVAL (NULL q or tasks, n == 0, a task not
 * from tq_take on this queue), TQ_EOBSERVER, TQ_EFORKED, and tq_ack's
 * errors after its acks took effect (TQ_EBUSY, TQ_EBADQUEUE). Thread-safe.
 */
int tq_ack_later(tq_queue *q, const tq_task *tasks, size_t n);

/*
 * Acks the tasks tq_ack_later keeps in this handle now (see there).
 * Returns 0 when there were none, or all were acked with their leases
 * held; TQ_ELOST when one or more leases had been lost, in this ack or in
 * one a tq_take made since the last report. Errors: TQ_EINVAL (NULL q),
 * TQ_EOBSERVER, TQ_EFORKED, and tq_ack's TQ_EBUSY and TQ_EBADQUEUE. Thread-safe
 * (it waits for another thread of the handle that is keeping acks).
 */
int tq_ack_flush(tq_queue *q);

/*
 * Fails n leased tasks with an error code and message (NULL for none; kept
 * up to TQ_ERRMSG_MAX - 1 bytes, a longer one cut at a UTF-8 character
 * boundary, or at the byte where it is not UTF-8). A dead task keeps the
 * whole of it while the dead-letter area has room (fewer than
 * dead_capacity dead tasks when it dies, and a free message entry among
 * the 64 looked at); one beyond it, and a retried task, keep its first 47
 * bytes. A task with attempts left is retried after
 * backoff_base * 2^(attempt-1), capped at backoff_max, with jitter in
 * [d/2, d]; otherwise it goes to the dead-letter area (see tq_dead_list).
 * Returns 0, or TQ_ELOST as tq_ack (the failures of the leases still held
 * are recorded all the same). Errors (nothing failed): TQ_EINVAL (NULL q or
 * tasks, n == 0, a task not from tq_take on this queue). Failing takes the
 * recovery lock (waiting up to 10 s for a live holder). An integer task
 * that cannot be moved out of its lane at once (the lock stayed busy, or
 * no slot is free for its retry) has its failure recorded in its lease
 * and carried out by the next maintenance pass (within about 100 ms, or
 * as soon as room allows), with its error code but not its message.
 */
int tq_fail(tq_queue *q, const tq_task *tasks, size_t n, int err, const char *msg);

/* ------------------------------------------------- batches of integers */

/*
 * The fast path for queues of integer tasks: tq_take_ints hands over a
 * batch the way a bare ring does, the integers in the caller's array and
 * the leases in a tq_batch (one lease record per claim of up to 64 tasks,
 * not a tq_task per task), and tq_batch_ack acks the whole batch with one
 * compare-and-swap per 32 tasks of a claim (and a read of its other half). The guarantees are tq_take's: every task is
 * leased, and comes back when its lease expires or its holder dies.
 */
#define TQ_BATCH_TASKS 256  /* tasks in one batch */
#define TQ_BATCH_CLAIMS 16 /* claims in one batch */
typedef struct tq_batch {
	uint32_t n;        /* tasks in the batch: values[0..n) of its tq_take_ints */
	uint32_t nclaims;  /* private, as priv */
	uint64_t priv[2 + 2 * TQ_BATCH_CLAIMS + TQ_BATCH_TASKS / 64]; /* the leases; do not touch */
} tq_batch;

/*
 * Takes up to max (at most TQ_BATCH_TASKS) fresh integer tasks, oldest
 * first, into values[0..n) and their leases into *b, waiting up to
 * timeout_ns while none is ready (as tq_take). Returns n (1..max), the
 * same as b->n. Fresh integer tasks are those pushed in batches of
 * integers (through the lanes); everything else that is ready (a retry, a
 * task given back by an expired or dead holder, a delayed task come due,
 * a payload task) is taken by tq_take. tq_take_ints takes no integer
 * pushed after the first task of the slot ring (where those others wait,
 * in the order they became ready) or of a payload lane: it
 * returns **0** instead, without waiting, while such a task is older than
 * every integer it could take, and this handle's next tq_take starts
 * where that task is. A worker calls tq_take when it gets 0, so that
 * nothing waits behind a stream of fresh integers.
 * A batch may hold fewer than max tasks while more are ready (a claim
 * ends at 64 tasks, at a lane's end, or at TQ_BATCH_CLAIMS claims).
 * Errors: as tq_take (TQ_EINVAL also for NULL values or b, max == 0);
 * TQ_EBUSY when this handle holds so many claims unacked (63) that it can
 * take no more through the lanes (ack first, or use tq_take).
 * Thread safety: as tq_take; a batch belongs to the thread that uses it.
 */
int tq_take_ints(tq_queue *q, uint64_t *values, size_t max, tq_batch *b, uint64_t timeout_ns);

/*
 * Acknowledges every task of the batch not handed out by tq_batch_task,
 * with one atomic operation per claim, and empties the batch (b->n = 0).
 * Returns 0, or TQ_ELOST when one or more leases had been lost (expired
 * and taken back, or acked already: through a copy of the batch, or a
 * task also handed out and acked); the others are acked all the same.
 * Errors (nothing acked): TQ_EINVAL (NULL q or b, an empty batch, so also
 * a batch acked already, a batch not from tq_take_ints on this handle).
 */
int tq_batch_ack(tq_queue *q, tq_batch *b);

/*
 * Hands task i (0 <= i < b->n) of the batch over as a tq_task (its id,
 * value, push time and lease), to be failed, touched or acked one by one
 * with tq_fail, tq_touch or tq_ack; tq_batch_ack then leaves it out.
 * Returns 0; TQ_EINVAL (NULL arguments, i out of range, a batch not from
 * tq_take_ints on this handle); TQ_ELOST when its lease has already ended
 * (t then names the lease but holds no id, value or push time, and every
 * call with it reports TQ_ELOST).
 */
int tq_batch_task(tq_queue *q, tq_batch *b, size_t i, tq_task *t);

/* Extends the leases of n tasks to now + extend_ns (0: the queue's lease_ns).
 * Returns 0, or TQ_ELOST as tq_ack; TQ_EINVAL as tq_fail. A lease whose deadline has already passed is extended
 * if the sweep has not taken it yet; if the sweep takes it at that moment,
 * the next ack reports TQ_ELOST. Touch well before the deadline. */
int tq_touch(tq_queue *q, const tq_task *tasks, size_t n, uint64_t extend_ns);

/* ------------------------------------------------------------ completion */

/*
 * The finished watermark. Sets *below to an id W such that every task that
 * a tq_push (or tq_push_delayed) call returned before this call began, and
 * whose id is below W, is finished here: acked, or dead. Ids are unique and
 * grow in push order across the queue, so a process that pushed tasks with
 * ids lo..hi knows they are all finished once W > hi: a bridge acknowledges
 * upstream only then (docs/cluster.md). Tasks still ready, leased, delayed
 * or being moved between lanes and slots hold W at or below their ids; W
 * never passes such a task, whatever the other processes do meanwhile (and
 * whichever of them die). W is not monotonic across calls: a task whose
 * push had not returned when one call read it may hold a later call's W
 * lower, and a dead task kicked back (tq_dead_kick) is unfinished again.
 * To tell acked from dead, list the dead letters (tq_dead_list).
 * Cost: reads shared memory only, no lock and no write; O(capacity +
 * processes x 64): for polling a few times a second, not for every task.
 * Errors: TQ_EINVAL (NULL q or below), TQ_EFORKED. Thread-safe; any
 * process.
 */
int tq_finished_below(tq_queue *q, uint64_t *below);

/* ----------------------------------------------------------- dead letters */

typedef struct tq_dead_info {
	uint64_t id;
	uint64_t value;      /* TQ_KIND_INT */
	uint32_t len;        /* payload kinds */
	uint16_t kind;
	uint16_t attempts;
	int32_t last_err;
	char last_msg[TQ_ERRMSG_MAX]; /* the failure message, NUL-ended (see tq_fail) */
	uint64_t died_ns;    /* CLOCK_MONOTONIC */
} tq_dead_info;

/*
 * Lists up to max dead tasks, oldest first, into out (there may be more
 * than dead_capacity: tq_stats.dead); if data is not NULL,
 * payload i is copied to data + i * data_stride (truncated to data_stride;
 * out[i].len is the full length). Returns the number listed.
 * Cost: one pass over the slot states under the recovery lock, keeping
 * the max oldest (memory O(max), not O(slots)).
 * Errors: TQ_EINVAL (NULL q, NULL out with max > 0), TQ_ENOMEM, TQ_EBUSY.
 */
int tq_dead_list(tq_queue *q, tq_dead_info *out, size_t max, void *data, size_t data_stride);

/* Puts dead task `id` (or all dead tasks with id TQ_ALL) back to ready with
 * its attempts reset, room permitting: a kick returns no room (the task
 * needs its place again) and never takes the queue above its capacity. A
 * dead task beyond dead_capacity already counts against the capacity and
 * is kicked whatever the room; one within the area needs a free place.
 * TQ_ALL kicks as many as room allows, oldest first, and returns how many
 * (0 or more); one id returns 1. To make room, purge (or take and finish
 * tasks first).
 * Errors: TQ_EINVAL (NULL q), TQ_ENOTFOUND (id is not dead), TQ_EAGAIN
 * (one id, no room for it: it stays dead), TQ_ENOMEM, TQ_EBUSY,
 * TQ_EBADQUEUE (damaged shared memory). */
#define TQ_ALL UINT64_MAX
int tq_dead_kick(tq_queue *q, uint64_t id);

/* Deletes dead task `id` (or all with TQ_ALL). Returns the number purged.
 * This is how room comes back when the dead-letter area is over-full: each
 * dead task it deletes beyond dead_capacity returns its place at once.
 * Errors as tq_dead_kick, but for TQ_EAGAIN. */
int tq_dead_purge(tq_queue *q, uint64_t id);

/* ------------------------------------------------------------- workers */

/*
 * A task handler for tq_worker_run. Returns 0 when the task is done (it is
 * acked), or a non-zero error code to fail it (retried with backoff, then
 * dead), optionally writing a message into msg (msg_size bytes, NUL-ended).
 * It runs with no queue lock held; payload bytes are valid until it returns.
 */
typedef int (*tq_handler)(const tq_task *task, void *arg, char *msg, size_t msg_size);

typedef struct tq_worker_config {
	size_t batch;             /* tasks taken at once, 1..TQ_MAX_BATCH; default 64 */
	uint64_t idle_exit_ns;    /* return after this long with no task; 0: never */
	uint64_t max_tasks;       /* return after handling this many; 0: no limit */
	/* Set non-zero to stop as in DRAINING: finish and ack what is held,
	 * take nothing more, return. Read with __atomic_load_n (relaxed); set it
	 * with __atomic_store_n, from any thread or a signal handler. */
	const volatile int *stop;
} tq_worker_config;

#define TQ_MAX_BATCH 4096

enum tq_worker_end {
	TQ_END_FLAG = 1,     /* *stop became non-zero */
	TQ_END_DRAINING = 2, /* the run state became DRAINING */
	TQ_END_STOPPED = 3,  /* the run state became STOPPED */
	TQ_END_IDLE = 4,     /* idle_exit_ns passed with no task */
	TQ_END_MAX = 5,      /* max_tasks handled */
};

/* handled == acked + failed + lost; tasks taken == handled + skipped, plus
 * those left unhandled when the run state became STOPPED. */
typedef struct tq_worker_result {
	uint64_t handled; /* handler calls */
	uint64_t acked;
	uint64_t failed;
	uint64_t lost;    /* acks or fails refused: the lease had been lost */
	uint64_t skipped; /* not handled: the lease was lost before its turn */
	int end;          /* enum tq_worker_end */
} tq_worker_result;

/* Fills *cfg with the defaults above. */
void tq_worker_config_init(tq_worker_config *cfg);

/*
 * Runs take -> handle -> ack/fail until one of the ends above: takes up to
 * `batch` tasks, calls fn on each in order, acks the successes together
 * after the batch, fails the others one by one, and extends (tq_touch) the
 * leases of the tasks still waiting in the batch whenever half a lease has
 * passed since they were taken or last extended.
 * Returns 0 at one of the ends (res->end says which), or a negative error
 * from the queue (tasks it held are then released by tq_close or recovery).
 * cfg may be NULL (defaults); res may be NULL. Safe to run in several
 * threads on one handle, each with its own res.
 */
int tq_worker_run(tq_queue *q, tq_handler fn, void *arg, const tq_worker_config *cfg,
		  tq_worker_result *res);

/* ------------------------------------------------------- state and stats */

/* Sets / reads the queue's run state (enum tq_run_state). Errors:
 * TQ_EINVAL (NULL q, a state out of range); tq_run_state also TQ_EBADQUEUE
 * (the word in shared memory holds no state). */
int tq_set_run_state(tq_queue *q, int state);
int tq_run_state(const tq_queue *q);

typedef struct tq_counters {
	uint64_t pushed;      /* tasks accepted by tq_push */
	uint64_t taken;       /* deliveries by tq_take (retries count again) */
	uint64_t acked;       /* tasks acked */
	uint64_t failed;      /* tq_fail calls per task (retried or dead) */
	uint64_t retried;     /* failures scheduled for another attempt */
	uint64_t dead;        /* tasks that went to the dead-letter area */
	uint64_t expired;     /* leases that expired and returned the task */
	uint64_t recovered;   /* leased tasks returned because their holder died */
	/* Tasks that went dead while the dead-letter area was full: kept (no
	 * dead task is ever dropped), each counting against the capacity until
	 * kicked or purged. (Layouts before 7 dropped the oldest instead and
	 * counted that here as dead_dropped.) */
	uint64_t dead_overflow;
	uint64_t lost;        /* acks/fails/touches refused because the lease was lost */
} tq_counters;

/* Latency percentiles from fixed-size histograms in shared memory (two
 * buckets per power of two: a value is reported as its bucket's upper
 * bound, at most 50% high). count is the number of tasks measured; see
 * tq_histogram for how they are sampled. */
typedef struct tq_latency {
	uint64_t count;
	uint64_t p50_ns, p90_ns, p99_ns, max_ns;
	uint64_t mean_ns; /* from the sum of the samples, each weighted as below */
} tq_latency;

typedef struct tq_stats {
	tq_counters total;     /* every process that ever attached, dead or alive */
	tq_latency wait;       /* queue wait: push to first delivery */
	tq_latency processing; /* delivery to ack */
	/* Tasks per second over the last 1, 10 and 60 s (from samples taken
	 * once a second by attached processes; 0 until there are samples). */
	double pushed_per_s[3];
	double done_per_s[3];
	uint32_t capacity;
	uint32_t ready;        /* pending: ready to take now */
	uint32_t leased;       /* in progress */
	uint32_t delayed;      /* waiting for a due time: a retry's backoff, or a delayed push */
	uint32_t dead;         /* dead tasks, in the dead-letter area and beyond it */
	uint32_t free_slots;   /* places free: slots - ready - leased - delayed - dead */
	uint32_t slots;        /* capacity + dead_capacity + delay_capacity */
	uint32_t dead_capacity;
	uint32_t dead_over;    /* dead tasks beyond dead_capacity, taking room from the capacity: 0 normally */
	uint32_t delay_capacity;
	uint32_t delay_over;   /* delayed tasks beyond delay_capacity, taking room from the capacity */
	uint32_t procs;        /* attached processes */
	uint32_t recoveries;   /* dead processes recovered so far */
	int run_state;
	uint64_t oldest_ready_ns; /* enqueue time of the task next in line (the oldest ready
	                           * task, but for retries, which rejoin at the back); 0 if none */
} tq_stats;

/* A snapshot, read without stopping anyone, in time independent of the
 * capacity: the per-state counts come from the rings' positions and
 * maintained counts. "leased" is the rest of the capacity, so it includes
 * any task in motion between two states at that instant. The figures
 * always add up to the slots: ready + leased + delayed + dead + free_slots
 * == slots == capacity + dead_capacity + delay_capacity. The room a push
 * has is max(0, capacity - ready - leased - delay_over - dead_over).
 * Errors: TQ_EINVAL (NULL argument). */
int tq_stats_get(tq_queue *q, tq_stats *out);

/* This handle's own counters. Errors: TQ_EINVAL (NULL argument). */
int tq_counters_self(const tq_queue *q, tq_counters *out);

/* Per-process view for monitors (tq_procs): fills up to max entries, returns
 * the count. Errors: TQ_EINVAL (NULL q, NULL out with max > 0), TQ_ENOMEM. */
typedef struct tq_proc_info {
	uint32_t slot;
	int32_t pid;
	uint64_t attached_ns;
	uint64_t last_seen_ns;  /* last push/take/ack/wait activity */
	uint32_t leased;        /* tasks it holds now */
	uint32_t waiting;       /* 1: asleep waiting for tasks, 2: for room, 0: busy */
	double done_per_s;      /* its acks per second over the last second or so */
	tq_counters counters;
} tq_proc_info;

/* The queue-wide histograms, for exporters: count[i] tasks fell in bucket
 * i, whose upper bound is upper_ns[i] (UINT64_MAX for the last). Queue wait
 * is sampled once per tq_take batch and processing time once per tq_ack
 * batch, each sample weighted by the tasks of its batch. A handle
 * measures its first call and then one in 8, whatever their sizes,
 * weighted by the tasks of the calls since its last sample (the rest are
 * added at tq_close, at the last sample's value): counts stay the tasks
 * measured, a handle's last few calls show up at its next sample, and a
 * stream of calls pays the clock read and the shared adds once per 8
 * calls. The counts stay exact with several threads on one handle (which
 * of their calls samples is then a matter of timing). */
#define TQ_HIST_BUCKETS 64
typedef struct tq_histogram {
	uint64_t count[TQ_HIST_BUCKETS];
	uint64_t upper_ns[TQ_HIST_BUCKETS];
	uint64_t sum_ns; /* sum of every measured value */
} tq_histogram;
/* Fills *wait and *processing (either may be NULL). Reads shared memory
 * only, O(processes). Errors: TQ_EINVAL (NULL q), TQ_EFORKED. Thread-safe;
 * an observer may call it. */
int tq_histograms(tq_queue *q, tq_histogram *wait, tq_histogram *processing);

/* ----------------------------------------------------------------- events */

enum tq_event_type {
	TQ_EV_CREATED = 1,      /* the queue was created */
	TQ_EV_PROC_DIED = 2,    /* a dead process was recovered: a = its pid, b = leases returned */
	TQ_EV_DEAD = 3,         /* a task went dead: a = id, b = attempts, msg = last error (its first TQ_EVENT_MSG_MAX - 1 bytes) */
	/* The dead-letter area overflowed: task a went dead with the area full
	 * (b = dead_capacity); it and the dead tasks after it count against the
	 * capacity until kicked or purged. Once per time the dead count goes
	 * from dead_capacity to one more. (Layouts before 7: dead_dropped.) */
	TQ_EV_DEAD_FULL = 4,
	TQ_EV_EXPIRED = 5,      /* leases expired in one sweep: a = how many */
	TQ_EV_STATE = 6,        /* run state set: a = new state */
	TQ_EV_KICKED = 7,       /* dead tasks kicked: a = how many */
	TQ_EV_PURGED = 8,       /* dead tasks purged: a = how many */
};

typedef struct tq_event_info {
	uint64_t seq;   /* increasing, from 1 */
	uint64_t t_ns;  /* CLOCK_MONOTONIC */
	int32_t pid;    /* the process that recorded it */
	int type;       /* enum tq_event_type */
	uint64_t a, b;
	char msg[TQ_EVENT_MSG_MAX];
} tq_event_info;

/*
 * Copies the recent events with seq > after_seq, oldest first, up to max;
 * returns the number copied. The ring keeps the last 256; older ones are
 * gone. Pass the last seq seen to follow the ring.
 * Errors: TQ_EINVAL (NULL q, NULL out with max > 0), TQ_EBUSY.
 */
int tq_events(tq_queue *q, uint64_t after_seq, tq_event_info *out, size_t max);
/* A short name for an event type ("process_died", ...). */
const char *tq_event_name(int type);
int tq_procs(tq_queue *q, tq_proc_info *out, size_t max);

/* Reads the queue's configuration. Errors: TQ_EINVAL (NULL argument). */
int tq_config_get(const tq_queue *q, tq_config *out);

/*
 * How much of the payload area (tq_config.payload_bytes) is held now:
 * *held_bytes, in whole 64-byte units, of *total_bytes; and *largest_free,
 * the longest run of free bytes (a push of a payload through slots waits
 * while it is shorter than the payload). A snapshot that reads every
 * unit's owner word: O(payload_bytes / 64), for an operator's look (taskq
 * info), not for a loop. Any pointer may be NULL. Payloads in lanes (fresh
 * payload tasks) are not in this area.
 * Errors: TQ_EINVAL (q NULL), TQ_EFORKED. Thread-safe; allowed on an
 * observer handle.
 */
int tq_payload_area(const tq_queue *q, uint64_t *held_bytes, uint64_t *total_bytes, uint64_t *largest_free);

/*
 * A number that identifies this instance of the queue: the same for every
 * handle on it, different for a queue of the same name destroyed and
 * created again (it mixes the creation time and the creator's process id).
 * A bridge puts it in its message ids, so that a queue created again does
 * not reuse the ids (which count from 1 again) of the one before.
 * Errors: TQ_EINVAL (NULL argument), TQ_EFORKED. Thread-safe.
 */
int tq_instance(const tq_queue *q, uint64_t *out);

/*
 * Runs recovery now: detects dead processes, returns their leases, finishes
 * or rolls back what they were doing, expires overdue leases and moves due
 * retries to ready. It also runs by itself (on open, every 100 ms while a
 * process works or waits). One process at a time; a crash during it is
 * itself recovered. Returns the number of dead processes recovered.
 * Errors: TQ_EINVAL (NULL q), TQ_EBUSY (a live process held the recovery
 * lock for 10 s).
 */
int tq_recover(tq_queue *q);

/*
 * CLOCK_MONOTONIC now, in ns: the clock of every *_ns time above. Where the
 * kernel's clock source is the CPU's time-stamp counter (x86-64), it reads
 * the counter, scaled from a clock_gettime reading at most 40 us of counter
 * time and 1,024 readings old: 11 ns instead of 28 on the reference
 * machine, within 50 us of clock_gettime (typically under 200 ns;
 * docs/design.md, 20). A thread's readings never go backwards; two
 * threads' readings agree to that bound, not to the order of events
 * between them. Errors: none. Thread-safe (each thread keeps its own
 * anchor), async-signal-unsafe.
 */
uint64_t tq_now_ns(void);

/*
 * System calls on the waiting paths, counted since this process loaded the
 * library, over all its handles and threads: futex sleeps (FUTEX_WAIT, on an
 * empty or full queue or a busy lock) and wake-ups (FUTEX_WAKE, made only
 * when someone sleeps). A steady stream of tasks should make almost none;
 * the benchmark reports them per task. Never fails; thread-safe.
 */
typedef struct tq_sys_counts {
	uint64_t futex_waits;
	uint64_t futex_wakes;
} tq_sys_counts;
void tq_sys_counts_get(tq_sys_counts *out);

#ifdef __cplusplus
}
#endif
#endif /* TASKQ_H */
