/* SPDX-License-Identifier: MIT */
/*
 * lock.c - the locks in shared memory, built so that no byte pattern in
 * them can crash, hang or fool a process that uses them.
 *
 * A lock is one 64-bit word: 0 when free, otherwise the holder's identity,
 * (record index + 1) | (handle nonce << 16). Taking it is a CAS from 0;
 * releasing it is an exchange back to 0. Nothing else is stored, so there
 * is no hidden state (a kernel robust list, a mutex kind, a PI owner) for a
 * forged word to send astray: glibc's robust mutexes abort on some forged
 * words and wait forever on others, which is why taskq no longer uses them.
 *
 * Whether a holder still lives is decided by what the kernel says about its
 * record, never by the word alone:
 *   - a word with bits above 47, or a record index out of range, names no
 *     possible holder;
 *   - a word naming this handle's own record under another nonce was left
 *     by an earlier holder of the record: the record's liveness lock is ours,
 *     so that holder is gone;
 *   - a word naming another record under a nonce other than the one that
 *     record's holder published (before locking anything) is an earlier
 *     holder's, which is gone;
 *   - otherwise the holder is alive exactly while another open file
 *     description holds its record's liveness lock (an OFD lock on byte
 *     `rec` of the segment, queue.c; asked with F_OFD_GETLK), which the
 *     kernel drops when its holder dies.
 * A lock whose holder is gone is taken over by a CAS from the very word
 * that was judged, so two waiters cannot both take it over, and a word that
 * changed in between (a new, live holder) is never stolen. The caller is
 * told (owner_died) and repairs what the holder left, as it did for a
 * robust mutex's EOWNERDEAD. The nonce (32 random bits per handle) keeps a
 * record's next holder from being mistaken for its last one.
 *
 * Waiting: spin briefly, then sleep on the `seq` futex in slices of at most
 * SLICE_NS, checking liveness before the first sleep and after every
 * CHECK_NS; give up with TQ_EBUSY after TQ_LOCK_BOUND_NS of a live holder.
 * The wake-up is a Dekker pair of sequentially consistent operations
 * (waiters++ then reading the word; the word exchanged then reading
 * waiters), so a sleeper misses no release; and sleeps are bounded anyway.
 */
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SPINS 128
#define SLICE_NS 2000000ull  /* longest single sleep */
#define CHECK_NS 1000000ull  /* liveness re-checked this often while waiting */

void tq__lock_init(struct tq_lock *l)
{
	store_rlx(&l->word, 0);
	store_rlx(&l->seq, 0);
	store_rlx(&l->waiters, 0);
}

/* Is the holder named by word w certainly gone (or no holder at all)? */
bool tq__holder_gone(tq_queue *q, uint64_t w)
{
	uint64_t owner = w & TQ_LOCK_OWNER_MASK;

	if ((w >> 48) != 0 || owner == 0 || owner > TQ_MAX_PROCS)
		return true;
	if (owner == q->owner)
		return w != q->lockid; /* this handle (another thread) is alive */
	/* Another record: its holder publishes its nonce before it locks
	 * anything, so a word under another nonce is an earlier holder's. */
	if (atomic_load(&q->procs[owner - 1].nonce) != (uint32_t)(w >> TQ_LOCK_NONCE_SHIFT))
		return true;
	return !tq__ofd_held(q->fd, (uint32_t)(owner - 1));
}

static void sleep_on(struct tq_lock *l, uint64_t w, uint64_t ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ns};

	atomic_fetch_add(&l->waiters, 1);
	uint32_t seq = atomic_load(&l->seq);
	if (atomic_load(&l->word) == w)
		tq__futex(&l->seq, FUTEX_WAIT, seq, &ts);
	atomic_fetch_sub(&l->waiters, 1);
}

/* One attempt: 0 taken, 1 taken over from a gone holder, -1 not now. */
static int try_once(tq_queue *q, struct tq_lock *l, bool check)
{
	/* Acquire: the holder's nonce, published before its CAS, is read
	 * after this word (holder_gone). */
	uint64_t w = load_acq(&l->word);

	if (w == 0)
		return cas64(&l->word, 0, q->lockid) ? 0 : -1;
	if (check && tq__holder_gone(q, w))
		return cas64(&l->word, w, q->lockid) ? 1 : -1;
	return -1;
}

int tq__lock(tq_queue *q, struct tq_lock *l, bool *owner_died)
{
	int r;

	*owner_died = false;
	for (int i = 0; i < SPINS; i++) {
		if ((r = try_once(q, l, false)) == 0)
			return 0;
		cpu_relax();
	}
	uint64_t start = tq_now_ns(), next_check = start;
	for (;;) {
		uint64_t now = tq_now_ns();
		bool check = now >= next_check;
		if (check)
			next_check = now + CHECK_NS;
		if ((r = try_once(q, l, check)) >= 0) {
			*owner_died = r == 1;
			return 0;
		}
		if (now - start >= TQ_LOCK_BOUND_NS)
			return TQ_EBUSY;
		uint64_t w = load_rlx(&l->word);
		if (w != 0)
			sleep_on(l, w, SLICE_NS);
	}
}

int tq__trylock(tq_queue *q, struct tq_lock *l, bool *owner_died)
{
	int r = try_once(q, l, true);

	*owner_died = r == 1;
	return r >= 0 ? 0 : TQ_EBUSY;
}

void tq__unlock(struct tq_lock *l)
{
	atomic_exchange(&l->word, 0);
	if (atomic_load(&l->waiters)) {
		atomic_fetch_add(&l->seq, 1);
		tq__futex(&l->seq, FUTEX_WAKE, 1, NULL);
	}
}
