/* SPDX-License-Identifier: MIT */
/*
 * lane.c - fresh tasks through lanes: single-writer rings of 24-byte
 * cells (lanes 0-7 integers; lanes 8-15 payloads, whose records are in a
 * byte ring per lane), claimed by consumers with one compare-and-swap per
 * batch and leased per batch in the taker's own record (docs/design.md,
 * section 17).
 *
 * Nothing here waits for another process for long: a producer holds only
 * the lane it pushes into (and one whose lane another holds moves on after
 * a millisecond), a taker only its own lease entries; a task that must leave
 * its lane (failed, expired, its holder closed or died) is moved out into a
 * slot under the recovery lock, with a journal in the header.
 */
#include <sched.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

enum { MV_EXPIRED = 1, MV_DIED = 2, MV_CLOSED = 3, MV_FAILED = 4, MV_TAKEN = 5 };

static inline uint32_t entry_lane(struct tq_lease *L)
{
	return load_rlx(&L->lane);
}

/* How many of the claim's first tasks were handed over to the caller: all
 * of them but while a take-ahead keeps the rest (tq__lane_mark_handed).
 * Sequentially consistent, against the hand-over's check of the task's
 * fate bit after it stores the marker: a move-out that claimed a bit by
 * CAS and then reads this sees any hand-over that found the bit clear. */
static inline uint32_t entry_handed(struct tq_lease *L)
{
	uint32_t m = atomic_load(&L->handed);
	return m ? m - 1 : TQ_CLAIM_MAX;
}

/* The attempts a move-out counts for task b of its claim: none for a close
 * or a take, none for a task a take-ahead kept and never handed over (b at
 * or beyond `handed`, entry_handed), one otherwise. The move and the
 * repair of a dead mover count alike. */
static inline uint16_t move_attempts(uint32_t why, uint32_t b, uint32_t handed)
{
	return why == MV_CLOSED || why == MV_TAKEN || b >= handed ? 0 : 1;
}

void tq__lane_mark_handed(tq_queue *q, const tq_task *t, uint32_t handed, uint64_t now)
{
	if (!tq__is_lane_task(t))
		return;
	struct tq_lease *L = &q->me->leases[tq__task_entry(t)];
	/* Only on the claim the task names (an entry settled and reused since
	 * keeps its own marker; the window between this check and the store
	 * is the caller's, design.md 17). */
	if (load_acq(&L->state) != LS_MAKE(t->priv[1], LS_ACTIVE))
		return;
	store_rlx(&L->handed, (uint8_t)(handed + 1u));
	store_rlx(&L->taken_ns, now); /* the processing time runs from the hand-over */
}

#define LANE_TASK TQ__LANE_TASK

/* A payload push of this thread waiting for byte room: its first record's
 * size, for the wait's check (tq__can_push). Per thread: a handle's
 * threads wait for their own pushes. */
_Thread_local uint64_t tq__byte_need;
#define HELD_MAX_NS 1000000ull /* a pusher waits this long for its lane held by another */
/* Single pushes (or small batches) into an integer lane less than this
 * apart share a batch record and its push time (write_record). The test
 * build can widen or shut the window (tq__set_join_ns). */
TQ_TEST_TUNABLE(join_ns, tq__set_join_ns, 1000ull)

static inline uint64_t lane_size(const tq_queue *q) { return (uint64_t)q->lane_mask + 1; }

/* A payload lane's cell (lanes TQ_INT_LANES..TQ_LANES-1 only). */
static inline struct tq_cell *cell_at(tq_queue *q, uint32_t lane, uint64_t pos)
{
	return &q->cells[(size_t)(lane - TQ_INT_LANES) * lane_size(q) + (pos & q->lane_mask)];
}

/* An integer lane's cell: the integer alone (layout 11). */
static inline tq_a64 *ival_at(tq_queue *q, uint32_t lane, uint64_t pos)
{
	return &q->ivals[(size_t)lane * lane_size(q) + (pos & q->lane_mask)];
}

/* How many of k cells from position pos lie before the lane's end: the
 * first of the (at most two) runs k consecutive cells take. */
static inline uint64_t ival_run(const tq_queue *q, uint64_t pos, uint64_t k)
{
	uint64_t run = lane_size(q) - (pos & q->lane_mask);
	return run < k ? run : k;
}

static inline struct tq_ibatch *ibatch_at(tq_queue *q, uint32_t lane, uint64_t n)
{
	return &q->ibatches[(size_t)lane * lane_size(q) + (n & q->lane_mask)];
}

/* ------------------------------------------- integer lanes' batch records
 * design.md, 17, "Integer cells and batch records": record n of a lane
 * holds positions [first, end), whose ids run from id; batches are
 * contiguous (B1) and a record stays while a task of it is unsettled (B2).
 * A reader whose view is stale may read anything here: what it derives is
 * used only if its claim's CAS then succeeds, or as a hint. */
struct ibat {
	uint64_t n, first, end, id, ns;
};

_Static_assert(TQ_CHUNK <= (1u << (64 - IB_COUNT_SHIFT)) - 1, "a lane write's count fits a span");

/* The lap of record n: its number / lane_size, as a span keeps it. */
static inline uint64_t ib_lap(const tq_queue *q, uint64_t n) { return (n / lane_size(q)) & IB_LAP_MASK; }

/* Reads record n, its first position rebuilt near position `near`. False
 * if it is not record n (written over by a later record, whose lap
 * differs) or empty. The id is loaded with acquire: a reader that checks
 * afterwards that a lane's head has not moved reads the head after it. */
static inline bool ibat_read(tq_queue *q, uint32_t lane, uint64_t n, uint64_t near, struct ibat *b)
{
	const struct tq_ibatch *r = ibatch_at(q, lane, n);
	uint64_t s = load_acq(&r->span);

	b->n = n;
	b->first = ib_pos(IB_FIRST48(s), near);
	b->end = b->first + IB_COUNT(s);
	b->id = __atomic_load_n(&r->id, __ATOMIC_ACQUIRE);
	b->ns = __atomic_load_n(&r->enq_ns, __ATOMIC_RELAXED);
	return IB_COUNT(s) != 0 && IB_LAP(s) == ib_lap(q, n);
}

/* The record after b, if it is b's successor (it starts where b ends). */
static inline bool ibat_next(tq_queue *q, uint32_t lane, struct ibat *b)
{
	uint64_t end = b->end;
	return ibat_read(q, lane, b->n + 1, end, b) && b->first == end;
}

#define IBAT_WALK 64 /* successors followed from the hint before a search */

/* The batch record of position p of integer lane `lane`, from this
 * handle's hint forward, else by binary search over the lane's last
 * lane_size records. False if the view is inconsistent (stale, or a
 * damaged segment). */
static bool ibat_find(tq_queue *q, uint32_t lane, uint64_t p, struct ibat *b)
{
	if (ibat_read(q, lane, load_rlx(&q->ibatch_hint[lane]), p, b) && b->first <= p) {
		for (uint32_t i = 0; i < IBAT_WALK; i++) {
			if (p < b->end)
				goto found;
			if (!ibat_next(q, lane, b))
				break;
		}
	}
	uint64_t cnt = load_acq(&q->h->lanes[lane].batches);
	if (cnt == 0)
		return false;
	uint64_t lo = cnt > lane_size(q) ? cnt - lane_size(q) : 0, hi = cnt - 1;
	/* The last record that starts at or before p. A record of the range
	 * already written over by a later one (a producer pushes on during
	 * the search) is one whose batch is settled, so one before p's
	 * (design.md, 17, B2): the search goes right of it. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (!ibat_read(q, lane, mid, p, b) || b->first <= p)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (!ibat_read(q, lane, lo, p, b) || p < b->first || p >= b->end)
		return false;
found:
	store_rlx(&q->ibatch_hint[lane], b->n);
	return true;
}

/* The id (and push time) of the task at position p of any lane: a hint
 * where the view may be stale. False if it cannot be read. */
static bool pos_id(tq_queue *q, uint32_t lane, uint64_t p, uint64_t *id, uint64_t *ns)
{
	if (lane >= TQ_INT_LANES) {
		const struct tq_cell *c = cell_at(q, lane, p);
		*id = __atomic_load_n(&c->id, __ATOMIC_ACQUIRE);
		if (ns)
			*ns = __atomic_load_n(&c->enq_ns, __ATOMIC_RELAXED);
		return true;
	}
	struct ibat b;
	if (!ibat_find(q, lane, p, &b))
		return false;
	*id = b.id + (p - b.first);
	if (ns)
		*ns = b.ns;
	return true;
}

/* pos_id's id, 0 if it cannot be read (a hint). */
static inline uint64_t id_at(tq_queue *q, uint32_t lane, uint64_t p)
{
	uint64_t id;
	return pos_id(q, lane, p, &id, NULL) ? id : 0;
}

static inline tq_a64 *mark_at(tq_queue *q, uint32_t lane, uint64_t pos)
{
	return &q->marks[(size_t)lane * lane_size(q) + (pos & q->lane_mask)];
}


/* ------------------------------------------------------ payload lanes */

static inline bool payload_lane(uint32_t lane) { return lane >= TQ_INT_LANES; }

static inline uint64_t rec_size(uint64_t len)
{
	return sizeof(struct tq_brec) + ((len + 7) & ~7ull);
}

/* The record at absolute byte position `pos` of payload lane `lane`. */
static inline uint8_t *brec_at(tq_queue *q, uint32_t lane, uint64_t pos)
{
	return q->bytes + (size_t)(lane - TQ_INT_LANES) * (q->bytes_mask + 1) + (pos & q->bytes_mask);
}

/* A record's payload length and kind as a taker may trust them: within
 * max_payload and within the ring (a hostile segment could say anything). */
static void brec_read(tq_queue *q, uint32_t lane, uint64_t pos, uint32_t *len, uint16_t *kind)
{
	const struct tq_brec *r = (const struct tq_brec *)brec_at(q, lane, pos & ~7ull);
	uint64_t off = pos & q->bytes_mask & ~7ull;
	uint64_t fit = q->bytes_mask + 1 - off - sizeof(struct tq_brec);
	uint32_t n = __atomic_load_n(&r->len, __ATOMIC_RELAXED);
	uint16_t k = __atomic_load_n(&r->kind, __ATOMIC_RELAXED);

	if (n > q->max_payload)
		n = q->max_payload;
	if (n > fit)
		n = (uint32_t)fit;
	*len = n;
	*kind = k == TQ_KIND_JSON ? TQ_KIND_JSON : TQ_KIND_STRING;
}

/*
 * The bytes payload lane `lane` has in use: [*start, *end). The end is the
 * end of the record of the last published cell, the start the record of
 * the cell at the reuse point (everything before it is reusable). Both
 * cells are published and not reusable, or written only by the lane's
 * owner: stable for the owner, a hint for anyone else. False if they make
 * no sense (a damaged segment): no room then.
 */
static bool lane_bytes_used(tq_queue *q, uint32_t lane, uint64_t *start, uint64_t *end)
{
	struct tq_lane *ln = &q->h->lanes[lane];
	uint64_t r = load_acq(&ln->reuse), t = load_acq(&ln->tail);

	*start = *end = 0;
	if (t == 0)
		return true;
	if (t < r || t - r > lane_size(q))
		return false;
	uint64_t last = __atomic_load_n(&cell_at(q, lane, t - 1)->value, __ATOMIC_RELAXED);
	uint32_t len;
	uint16_t kind;
	brec_read(q, lane, last, &len, &kind);
	*end = (last & ~7ull) + rec_size(len);
	*start = r < t ? __atomic_load_n(&cell_at(q, lane, r)->value, __ATOMIC_RELAXED) : *end;
	return *start <= *end && *end - *start <= q->bytes_mask + 1;
}

/* Where a record of `size` bytes goes after `end`: there, or at the start
 * of the ring if it would cross its end. */
static inline uint64_t rec_place(tq_queue *q, uint64_t end, uint64_t size)
{
	uint64_t off = end & q->bytes_mask, ring = q->bytes_mask + 1;
	return off + size > ring ? end + (ring - off) : end;
}

/* Room in payload lane `lane` for a record of `size` bytes. */
static bool bytes_fit_now(tq_queue *q, uint32_t lane, uint64_t size)
{
	uint64_t start, end;

	if (!lane_bytes_used(q, lane, &start, &end))
		return false;
	return rec_place(q, end, size) + size - start <= q->bytes_mask + 1;
}

static void advance_reuse(tq_queue *q, uint32_t lane);

/* Room in payload lane `lane` for a record of `size` bytes, after moving
 * its reuse point over what was settled if that helps. */
static bool lane_bytes_fit(tq_queue *q, uint32_t lane, uint64_t size)
{
	if (bytes_fit_now(q, lane, size))
		return true;
	advance_reuse(q, lane);
	return bytes_fit_now(q, lane, size);
}


/* The position the claim word names, from the lane's tail (the word keeps
 * the low HEAD_POS_BITS bits only; the tail is never a lane ahead). */
/* Is fate word f of generation g (its low 24 bits)? */
static inline bool fate_is(uint64_t f, uint64_t g)
{
	return FATE_GEN_OF(f) == (g & 0xffffffull);
}

/* Task `bit` (0..63) of the claim of generation g in L: still leased
 * (its fate word of g, its bit clear)? */
static inline bool task_leased(struct tq_lease *L, uint64_t g, uint32_t bit)
{
	uint64_t f = load_acq(&L->fate[(bit >> 5) & 1]);
	return fate_is(f, g) && !(f & (1ull << (bit & 31)));
}

/* A claim's done-or-moved bits (its tasks 0..63) from its two fate words,
 * read in order, if both are of generation g; false if either is not (the
 * entry has moved on). Sequentially consistent loads: the check of a
 * claim's completion (fate_set, move_end) relies on it (design.md, 17). */
static inline bool fate_bits(struct tq_lease *L, uint64_t g, uint64_t *bits)
{
	uint64_t f0 = atomic_load(&L->fate[0]), f1 = atomic_load(&L->fate[1]);

	*bits = FATE_BITS(f0) | FATE_BITS(f1) << 32;
	return fate_is(f0, g) && fate_is(f1, g);
}

/* Is the claim of generation g in L, of `count` tasks, complete (every
 * task done or moved)? Both fate words read as fate_bits does. */
static inline bool claim_complete(struct tq_lease *L, uint64_t g, uint32_t count)
{
	uint64_t bits;
	return count >= 1 && count <= TQ_CLAIM_MAX && fate_bits(L, g, &bits) &&
	       (bits & tq__claim_full(count)) == tq__claim_full(count);
}

/* The bits of fate word w's tasks among a claim's 64. */
static inline uint64_t word_tasks(uint32_t w)
{
	return 0xffffffffull << (32 * w);
}

static inline uint64_t head_pos(uint64_t hw, uint64_t tail)
{
	return tail - ((tail - hw) & HEAD_POS_MASK);
}

/*
 * A taker's view of a lane: the claim word, the position it names and a
 * tail. The tail is this handle's last reading of it while that still lies
 * ahead of the head (a taker behind the producer claims without touching
 * the producer's line, which it would otherwise take from the producer at
 * every claim); the lane's own tail, read after the head, once the cached
 * one is used up or the head has passed it. A tail read earlier is a tail
 * the lane had: every cell below it was published then and stays so until
 * claimed, and a claim made from it moves the head by CAS, which fails if
 * the head moved meanwhile.
 */
static inline void lane_view(tq_queue *q, uint32_t lane, uint64_t *hw, uint64_t *h, uint64_t *t)
{
	struct tq_lane *ln = &q->h->lanes[lane];

	*hw = load_acq(&ln->head);
	uint64_t tc = load_acq(&q->seen_tail[lane]);
	uint64_t hc = head_pos(*hw, tc);
	if (hc < tc && tc - hc <= lane_size(q)) {
		*h = hc;
		*t = tc;
		return;
	}
	*t = load_acq(&ln->tail); /* after the head: never behind it */
	store_rel(&q->seen_tail[lane], *t);
	*h = head_pos(*hw, *t);
}

/* ------------------------------------------------------------------ room */

/* Tasks in lanes, ready or claimed and not yet reusable. */
static uint64_t lanes_used(tq_queue *q)
{
	uint64_t used = 0, size = lane_size(q);

	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t r = load_acq(&ln->reuse), t = load_acq(&ln->tail);
		uint64_t d = t - r;
		used += d > size ? size : d;
	}
	return used;
}

/* The capacity less what is in use: lane tasks, and slots but for the
 * dead tasks the dead-letter area holds and the delayed tasks the delay
 * area holds (design.md, 10). */
uint64_t tq__room_now(tq_queue *q)
{
	uint64_t free_slots = tq__ring_count(&q->freer);
	uint64_t slots_used = free_slots < q->nslots ? q->nslots - free_slots : 0;
	uint64_t dead = load_rlx(&q->h->dead_count);
	uint64_t delayed = load_rlx(&q->h->delayed_count);
	uint64_t held = (dead < q->dead_cap ? dead : q->dead_cap) + (delayed < q->delay_cap ? delayed : q->delay_cap);

	slots_used = slots_used > held ? slots_used - held : 0;
	uint64_t used = lanes_used(q) + (slots_used > q->cap ? q->cap : slots_used);

	return used >= q->cap ? 0 : q->cap - used;
}

/* Delayed tasks that fit in the delay area: they take no room, so a
 * delayed push may add them to a queue whose capacity is full (the area's
 * own slots are free while it is not full: design.md, 10). */
uint64_t tq__delay_room(tq_queue *q)
{
	uint64_t delayed = load_rlx(&q->h->delayed_count);
	return delayed < q->delay_cap ? q->delay_cap - delayed : 0;
}

static void advance_reuse(tq_queue *q, uint32_t lane);

uint64_t tq__room_settled(tq_queue *q)
{
	for (uint32_t l = 0; l < TQ_LANES; l++)
		advance_reuse(q, l);
	return tq__room_now(q);
}

uint64_t tq__room(tq_queue *q)
{
	uint64_t room = tq__room_now(q);

	/* Short of room: claims settled since a lane's reuse point last
	 * moved are room too (settle moves it once per reuse_every positions). */
	return room > 0 ? room : tq__room_settled(q);
}

uint64_t tq__lanes_ready(tq_queue *q, uint64_t *oldest_id, uint64_t *oldest_ns)
{
	uint64_t ready = 0, oid = 0, ons = 0, size = lane_size(q);

	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t hw = load_acq(&ln->head), t = load_acq(&ln->tail);
		uint64_t h = head_pos(hw, t);
		if (h == t || t - h > size)
			continue;
		ready += t - h;
		if (oldest_id || oldest_ns) {
			/* Ids grow in push order across the queue. */
			uint64_t id, ns;
			if (pos_id(q, l, h, &id, &ns) && id && (!oid || id < oid)) {
				oid = id;
				ons = ns;
			}
		}
	}
	if (oldest_id)
		*oldest_id = oid;
	if (oldest_ns)
		*oldest_ns = ons;
	return ready;
}

/* Moves `reuse` over the claims settled in a row from it. Anyone may: each
 * step is one CAS of a value that only grows. */
static void advance_reuse(tq_queue *q, uint32_t lane)
{
	struct tq_lane *ln = &q->h->lanes[lane];
	uint64_t r = load_acq(&ln->reuse);
	/* The claim word's position, from reuse (never more than a lane
	 * behind it): the producer's line is not touched. */
	uint64_t h = r + ((load_acq(&ln->head) - r) & HEAD_POS_MASK);
	bool moved = false;

	while (r < h && h - r <= lane_size(q)) {
		/* Follows the marks as far as they go, then moves reuse there
		 * with one CAS. Marks hold absolute positions: a mark of an
		 * earlier lap is at or below its own position and stops the walk. */
		uint64_t e = r;
		for (;;) {
			uint64_t m = load_acq(mark_at(q, lane, e));
			if (m <= e || m - e > TQ_CLAIM_MAX || m > h)
				break;
			e = m;
		}
		if (e == r)
			break;
		if (cas64(&ln->reuse, r, e)) {
			r = e;
			moved = true;
		} else {
			r = load_acq(&ln->reuse);
		}
	}
	if (moved)
		tq__bell_ring_if_waiting(&q->h->free_ring.bell);
}

/* Settles a claim whose every task is done or moved out (L5): the mark,
 * the entry freed with its next generation, the lane's reuse point. Safe to
 * repeat. */
static void settle(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g)
{
	struct tq_lease *L = &q->procs[rec].leases[e];
	uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
	uint64_t first = load_rlx(&L->first);

	/* The fields read are generation g's only if the entry is still
	 * ACTIVE(g) after them (it never returns to g): a settler that comes
	 * late (another one settled it, the entry was reused) stops here. */
	atomic_thread_fence(memory_order_acquire);
	if (load_acq(&L->state) != LS_MAKE(g, LS_ACTIVE))
		return;
	if (lane < TQ_LANES && count >= 1 && count <= TQ_CLAIM_MAX) {
		/* Raised only: a settler stopped past the check above must not
		 * lower the mark of a later lap at the same cell. */
		tq_a64 *mk = mark_at(q, lane, first);
		uint64_t cur = load_acq(mk), want = first + count;
		while (cur < want && !atomic_compare_exchange_weak(mk, &cur, want))
			;
	}
	TQ_FAULT("lane.settle.mid");
	(void)cas64(&L->state, LS_MAKE(g, LS_ACTIVE), LS_MAKE(g + 1, LS_FREE));
	/* Reuse moves once per reuse_every positions settled (or for a
	 * producer asleep waiting for room: the fence pairs with its
	 * announcement, wait.c): one write of the line producers poll per
	 * reuse_every tasks, not per claim. A producer short of room advances
	 * it itself (tq__room, before it sleeps). */
	if (lane >= TQ_LANES)
		return;
	/* Payload lanes as often as a quarter of their byte ring may fill
	 * with the largest records: their bytes may run out before their
	 * positions do. */
	uint64_t every = payload_lane(lane) ? q->reuse_every_bytes : q->reuse_every;
	bool boundary = (first & (every - 1)) + count >= every;
	if (!boundary)
		fence_after_rmw(); /* the state CAS above */
	if (boundary || load_rlx(&q->h->free_ring.bell.waiters))
		advance_reuse(q, lane);
}

/* ------------------------------------------------------------------ push */

/* Every task pushed into the lane has been claimed. */
static bool lane_drained(tq_queue *q, uint32_t lane)
{
	struct tq_lane *ln = &q->h->lanes[lane];
	uint64_t hw = load_acq(&ln->head), t = load_acq(&ln->tail);

	return head_pos(hw, t) == t;
}

/* Full for a push: no position free, or (payload lanes) no room for a
 * record of `size` bytes; the reuse point moved first if it would help. */
static bool lane_full(tq_queue *q, uint32_t l, bool payload, uint64_t size)
{
	struct tq_lane *ln = &q->h->lanes[l];
	uint64_t n = lane_size(q);

	if (load_rlx(&ln->tail) - load_acq(&ln->reuse) < n && (!payload || lane_bytes_fit(q, l, size)))
		return false;
	advance_reuse(q, l);
	return load_rlx(&ln->tail) - load_acq(&ln->reuse) >= n || (payload && !lane_bytes_fit(q, l, size));
}

/*
 * Takes a lane of the class for the batch (integer or payload lanes) with
 * room for at least one task (and its record). A handle pushes into the
 * pair of lanes (integer, payload) of one index: the index it pushed into
 * last (its home index, record % 8, at first). It moves to another index
 * only once every task in both lanes of its index has been claimed, and
 * then for both classes: takers take a pair's two lanes in id order
 * (tq__lane_take), so what one producer pushes is taken in its order.
 * TQ_EAGAIN: its lane is held by another pusher (*held set) or full, and
 * the pair not drained, or every lane of the class is.
 */
static int acquire_lane(tq_queue *q, uint32_t *out, bool payload, uint64_t first_size, bool move_on, bool *held)
{
	uint32_t base = payload ? TQ_INT_LANES : 0;
	uint32_t idx = load_rlx(&q->push_lane) % TQ_INT_LANES;

	*held = false;
	for (uint32_t i = 0; i < TQ_INT_LANES; i++) {
		uint32_t x = (idx + i) % TQ_INT_LANES, l = base + x;
		struct tq_lane *ln = &q->h->lanes[l];
		if (i == 1 && !move_on && !(lane_drained(q, idx) && lane_drained(q, idx + TQ_INT_LANES)))
			return TQ_EAGAIN; /* its tasks still wait there: so does it */
		if (load_rlx(&ln->owner) != 0 || !cas64(&ln->owner, 0, q->lockid)) {
			*held = true;
			continue;
		}
		if (lane_full(q, l, payload, first_size)) {
			store_rel(&ln->owner, 0); /* full: held back by a slow claim */
			continue;
		}
		store_rlx(&q->push_lane, x);
		*out = l;
		return 0;
	}
	return TQ_EAGAIN;
}

/* Room for a payload push of this handle waiting for bytes: in the lane it
 * pushes into, or, once that is drained, in any. */
bool tq__lane_bytes_room(tq_queue *q, uint64_t size, bool thorough)
{
	uint32_t idx = load_rlx(&q->push_lane) % TQ_INT_LANES, last = TQ_INT_LANES + idx;
	bool (*fit)(tq_queue *, uint32_t, uint64_t) = thorough ? lane_bytes_fit : bytes_fit_now;

	if (fit(q, last, size))
		return true;
	if (!lane_drained(q, last) || !lane_drained(q, idx))
		return false;
	for (uint32_t l = TQ_INT_LANES; l < TQ_LANES; l++)
		if (fit(q, l, size))
			return true;
	return false;
}

/* How many of `want` tasks may go in now: counted afresh near the
 * capacity, otherwise from this handle's credit (design.md, section 17). */
static uint64_t push_allowance(tq_queue *q, uint64_t want, bool no_wait)
{
	uint64_t c = load_rlx(&q->credit);

	if (c >= want) {
		store_rlx(&q->credit, c - want);
		return want;
	}
	/* The reuse points as they are (the consumers' lines untouched); a
	 * caller that will not wait also counts what was settled since they
	 * last moved. A waiting caller does that in its wait (tq__can_push). */
	uint64_t room = no_wait ? tq__room(q) : tq__room_now(q);
	uint64_t margin = 2ull * TQ_LANES * TQ_CHUNK;
	uint64_t k = room < want ? room : want;
	/* Shared out among every record that may push: all credits together
	 * stay within the room. */
	store_rlx(&q->credit, room > margin + k ? (room - margin - k) / (tq__procs_hi(q) + 1) : 0);
	return k;
}

/* Places payload tasks tasks[0..k) in payload lane l's byte ring: each
 * record's position (pos) from the lane's byte end on, as many as fit (at
 * least one: the lane was taken with room for the first). Returns how
 * many; write_records writes them. */
static uint64_t place_records(tq_queue *q, uint32_t l, const tq_task *tasks, uint64_t k, uint64_t *pos)
{
	uint64_t start, end, ring = q->bytes_mask + 1, i;

	(void)lane_bytes_used(q, l, &start, &end); /* acquire_lane checked it */
	for (i = 0; i < k; i++) {
		uint64_t size = rec_size(tasks[i].len), p = rec_place(q, end, size);
		if (p + size - start > ring)
			break;
		pos[i] = p;
		end = p + size;
	}
	return i;
}

/* The records place_records placed: header and bytes. */
static void write_records(tq_queue *q, uint32_t l, const tq_task *tasks, uint64_t k, const uint64_t *pos)
{
	for (uint64_t i = 0; i < k; i++) {
		struct tq_brec *r = (struct tq_brec *)brec_at(q, l, pos[i]);
		r->len = tasks[i].len;
		r->kind = tasks[i].kind;
		r->pad = 0;
		if (tasks[i].len)
			memcpy(r + 1, tasks[i].data, tasks[i].len);
	}
}

/* The integers of a lane write of k tasks at position t of integer lane
 * l, alone, in at most two runs of cells (the lane's end): vals[0..k), or
 * tasks[0..k)'s values. Inlined with one of them NULL, so each caller's
 * loop is the plain copy it needs. */
static inline __attribute__((always_inline)) void put_ivals(tq_queue *q, uint32_t l, uint64_t t, uint64_t k,
							    const uint64_t *vals, const tq_task *tasks)
{
	uint64_t run = ival_run(q, t, k);
	tq_a64 *c = ival_at(q, l, t);
	for (uint64_t i = 0; i < run; i++)
		store_rlx(&c[i], vals ? vals[i] : tasks[i].value);
	c = ival_at(q, l, t + run);
	for (uint64_t i = run; i < k; i++)
		store_rlx(&c[i - run], vals ? vals[i] : tasks[i].value);
}

/*
 * The batch record of a lane write of k integers at position t of integer
 * lane l, their ids from id0, pushed at `now` (design.md, 17, "Integer
 * cells and batch records"). The writer owns the lane and has written the
 * cells; the tail is stored after this. A write that continues the lane's
 * last record (its positions and ids follow on, pushed within join_ns of
 * it, the whole within TQ_CHUNK) joins it: only the record's count grows
 * (B4), so a stream of single pushes writes one record line per many tasks
 * instead of one per two or three. Otherwise it writes the next record,
 * over a leftover of a dead owner first (B3): a record beyond the tail is
 * written over, and a count a dead owner raised beyond the tail is cut back
 * to it.
 */
static void write_record(tq_queue *q, uint32_t l, uint64_t t, uint64_t k, uint64_t id0, uint64_t now)
{
	struct tq_lane *ln = &q->h->lanes[l];
	uint64_t nb = load_rlx(&ln->batches);

	if (nb) {
		struct tq_ibatch *p = ibatch_at(q, l, nb - 1);
		uint64_t ps = load_rlx(&p->span), first = ib_pos(IB_FIRST48(ps), t), count = IB_COUNT(ps);
		if (IB_LAP(ps) == ib_lap(q, nb - 1)) {
			if (first >= t) {
				nb--; /* never published: this record takes its place */
			} else if (first + count > t) {
				store_rel(&p->span, IB_SPAN(first, IB_LAP(ps), t - first)); /* cut back to the tail */
			} else if (first + count == t && count + k <= TQ_CHUNK &&
				   __atomic_load_n(&p->id, __ATOMIC_RELAXED) + count == id0 &&
				   now - __atomic_load_n(&p->enq_ns, __ATOMIC_RELAXED) < join_ns) {
				/* The cells before the count (B4): the tail's store
				 * publishes both. */
				store_rel(&p->span, IB_SPAN(first, IB_LAP(ps), count + k));
				TQ_FAULT("push.joined");
				return;
			}
		}
	}
	struct tq_ibatch *r = ibatch_at(q, l, nb);
	__atomic_store_n(&r->id, id0, __ATOMIC_RELAXED);
	__atomic_store_n(&r->enq_ns, now, __ATOMIC_RELAXED);
	store_rel(&r->span, IB_SPAN(t, ib_lap(q, nb), k)); /* after the id and time (B3) */
	TQ_FAULT("push.record");
	store_rel(&ln->batches, nb + 1); /* after the span (B3) */
}

int tq__lane_push(tq_queue *q, tq_task *tasks, const uint64_t *vals, size_t n, uint64_t timeout_ns, uint64_t now,
		  uint64_t until, bool *overflow)
{
	size_t done = 0;
	int rc = 0;
	bool waited = false, payload = !vals && tasks[0].kind != TQ_KIND_INT; /* one class per call (push.c) */
	uint64_t held_since = 0;
	bool last_try = false;
	uint64_t pos[TQ_CHUNK];

	while (done < n) {
		if (tq__stopping(q)) {
			rc = TQ_ESTOPPED;
			break;
		}
		uint64_t want = n - done < TQ_CHUNK ? n - done : TQ_CHUNK;
		uint64_t first_size = payload ? rec_size(tasks[done].len) : 0;
		uint64_t k = push_allowance(q, want, timeout_ns == 0);
		uint32_t l = 0;
		bool held = false;
		/* Its lane held by another pusher for over HELD_MAX_NS (stopped,
		 * or dead until recovery frees it): it moves on, at the cost of
		 * its order against what it left there; a stopped process blocks
		 * nobody. */
		bool move_on = held_since && tq_now_ns() - held_since > HELD_MAX_NS;
		if (k && acquire_lane(q, &l, payload, first_size, move_on, &held) != 0) {
			store_rlx(&q->credit, 0);
			uint64_t t_now = tq_now_ns();
			if (held && !move_on && timeout_ns && t_now < until) {
				/* A lane held by another pusher right now: let it
				 * run, then look again. */
				if (!held_since)
					held_since = t_now;
				tq__maybe_maintain(q, t_now);
				sched_yield();
				continue;
			}
			/* Its lanes full while the queue has room: in a queue whose
			 * lanes hold less than its capacity (design.md, 2), the
			 * rest of the batch goes through slots (push.c); takers take
			 * lanes and the ready ring in id order, so its order holds. */
			if (!held && lane_size(q) < q->cap) {
				*overflow = true;
				rc = 0; /* not a timeout of an earlier wait: the slots take the rest */
				break;
			}
			k = 0; /* every lane full: wait for room as for a full queue */
		}
		held_since = 0;
		if (k == 0) {
			tq__byte_need = first_size;
			rc = tq__push_wait(q, timeout_ns, until);
			tq__byte_need = 0;
			if (rc == TQ_ETIMEDOUT && !last_try) {
				/* Once more after moving the reuse points over what
				 * was settled: a short wait may have ended before
				 * its spin ever did (they move lazily). */
				last_try = true;
				(void)tq__room(q);
				continue;
			}
			if (rc)
				break;
			waited = true;
			continue;
		}
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t t = load_rlx(&ln->tail);
		uint64_t lroom = lane_size(q) - (t - load_acq(&ln->reuse));
		if (k > lroom)
			k = lroom; /* >= 1: acquire_lane checked */
		TQ_FAULT("push.claimed");
		/* The ids before the records: the id counter's locked add then
		 * finds the store buffer empty, instead of waiting there for every
		 * record's line (the payload bytes and cells drain together at the
		 * count below). Ids of records that do not fit are skipped: ids
		 * stay unique and growing in push order, not consecutive. */
		uint64_t id0 = tq__take_ids(q, k);
		if (payload)
			k = place_records(q, l, tasks + done, k, pos); /* >= 1: acquire_lane checked */
		/* The caller's ids before any store to the queue: they reach
		 * the cache at once, instead of waiting in the store buffer
		 * behind lines the taker last read. */
		if (tasks)
			for (uint64_t i = 0; i < k; i++)
				tasks[done + i].id = id0 + i;
		if (payload)
			write_records(q, l, tasks + done, k, pos);
		if (waited)
			now = tq_now_ns();
		waited = false;
		/* Relaxed atomic stores (plain moves): statistics read the cell at
		 * a lane's head racily. */
		if (payload) {
			for (uint64_t i = 0; i < k; i++) {
				struct tq_cell *c = cell_at(q, l, t + i);
				__atomic_store_n(&c->value, pos[i], __ATOMIC_RELAXED);
				__atomic_store_n(&c->id, id0 + i, __ATOMIC_RELAXED);
				__atomic_store_n(&c->enq_ns, now, __ATOMIC_RELAXED);
			}
		} else {
			/* The integers alone, then the batch's record (design.md,
			 * 17, "Integer cells and batch records"). A record at or
			 * beyond the tail is a dead owner's, never published (B3):
			 * this batch's record takes its place. */
			if (vals) /* tq_push_ints */
				put_ivals(q, l, t, k, vals + done, NULL);
			else
				put_ivals(q, l, t, k, NULL, tasks + done);
			write_record(q, l, t, k, id0, now);
		}
		TQ_FAULT("push.written");
		store_rel(&ln->tail, t + k); /* accepted */
		store_rel(&ln->owner, 0);
		tq__count(q, C_LPUSHED, k); /* k >= 1: a read-modify-write */
		tq__bell_ring_if_waiting_after_rmw(&q->h->ready_ring.bell);
		done += k;
	}
	return done ? (int)done : rc;
}

/* ------------------------------------------------------------------ take */

/* Records the claim `head` names, if its claimer has not yet (helping). */
static void help(tq_queue *q, uint32_t lane, uint64_t hw, uint64_t h)
{
	uint32_t owner = head_owner(hw), e = head_entry(hw);

	if (owner == 0 || owner > TQ_MAX_PROCS || e >= TQ_LEASES)
		return;
	struct tq_lease *L = &q->procs[owner - 1].leases[e];
	uint64_t s = load_acq(&L->state);
	if (LS_STATE(s) != LS_PENDING)
		return;
	if (entry_lane(L) != lane || load_rlx(&L->first) + load_rlx(&L->count) != h)
		return;
	(void)cas64(&L->state, s, LS_MAKE(LS_GEN(s), LS_ACTIVE));
}

static int move_out(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g, uint64_t want, uint32_t why,
		    int err, const char *msg, uint64_t now, uint32_t *taken);
static bool pending_claimed(tq_queue *q, uint32_t rec, uint32_t e, struct tq_lease *L);
static void move_failures(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g, uint64_t now);

/* The last entry is kept for claims moved straight into slots when the
 * others are all in use (tq__lane_take_to_slots). */
#define SPARE_ENTRY (TQ_LEASES - 1)

static int entry_reserve(tq_queue *q, uint32_t *out_e, uint64_t *out_g)
{
	for (uint32_t e = 0; e < SPARE_ENTRY; e++) {
		struct tq_lease *L = &q->me->leases[e];
		uint64_t s = load_acq(&L->state);
		if (LS_STATE(s) != LS_FREE)
			continue;
		/* In the map before it is taken; it stays there. */
		if (!(load_rlx(&q->me->lease_map) & (1ull << e)))
			atomic_fetch_or(&q->me->lease_map, 1ull << e);
		if (cas64(&L->state, s, LS_MAKE(LS_GEN(s), LS_RESERVED))) {
			*out_e = e;
			*out_g = LS_GEN(s);
			return 0;
		}
	}
	return TQ_EBUSY;
}

/* Cuts *k, the count to claim from position h of integer lane `lane`, at
 * the first task whose id is not below stop_id (ids grow along a lane).
 * False if the view is inconsistent. */
static bool ints_cut(tq_queue *q, uint32_t lane, uint64_t h, uint32_t *k, uint64_t stop_id)
{
	struct ibat b;

	if (payload_lane(lane)) {
		for (uint32_t i = 0; i < *k; i++)
			if (__atomic_load_n(&cell_at(q, lane, h + i)->id, __ATOMIC_RELAXED) >= stop_id)
				*k = i;
		return true;
	}
	if (!ibat_find(q, lane, h, &b))
		return false;
	for (uint64_t p = h; p < h + *k;) {
		if (p >= b.end && !ibat_next(q, lane, &b))
			return false;
		uint64_t id = b.id + (p - b.first);
		if (id >= stop_id || stop_id - id < b.end - p) {
			/* The first at or past stop_id is in this batch. */
			uint64_t cut = id >= stop_id ? p : p + (stop_id - id);
			if (cut - h < *k)
				*k = (uint32_t)(cut - h);
			return true;
		}
		p = b.end;
	}
	return true;
}

/*
 * Claims up to `want` tasks of `lane` into the reserved entry e (generation
 * g): steps 1-4 of design.md, section 17. Returns the count claimed (the
 * entry is then ACTIVE, its first position in *first), or 0 with the entry
 * FREE again if the lane is empty.
 */
static int claim_into(tq_queue *q, uint32_t lane, uint32_t want, uint64_t stop_id, uint64_t tmax, uint64_t now,
		      uint32_t hand, uint32_t e, uint64_t *g, uint64_t *first, tq_task *out, uint64_t *vals)
{
	struct tq_lane *ln = &q->h->lanes[lane];
	struct tq_lease *L = &q->me->leases[e];
	uint32_t bad = 0, unread = 0; /* views split by a preemption; batch records not found */

	for (;;) {
		uint64_t hw, h, t;
		lane_view(q, lane, &hw, &h, &t);
		/* A tail more than a lane ahead: a view split by a preemption
		 * (the head moved on and the producer refilled) looks like this
		 * for a moment; damage looks like it for good. */
		if (h != t && t - h > lane_size(q) && ++bad < 4) {
			store_rel(&q->seen_tail[lane], 0);
			continue;
		}
		uint32_t k = want < TQ_CLAIM_MAX ? want : TQ_CLAIM_MAX;
		if (h != t && t - h <= lane_size(q)) {
			/* No further than the tail its caller compared the pair
			 * and the ring at (tmax, if not 0): a task published
			 * since is looked at with the others again. */
			uint64_t end = tmax && tmax < t ? tmax : t;
			if (end <= h)
				k = 0;
			else if (k > end - h)
				k = (uint32_t)(end - h);
			/* Only tasks older than the other lane's first (stop_id):
			 * one producer's tasks come out in its order. */
			if (stop_id && k && !ints_cut(q, lane, h, &k, stop_id))
				goto unread;
		}
		if (h == t || t - h > lane_size(q) || k == 0) {
			store_rel(&L->state, LS_MAKE(*g, LS_FREE));
			return h != t && t - h > lane_size(q) ? TQ_EBADQUEUE : 0;
		}
		help(q, lane, hw, h);
		/* The tasks are read before the claim: cells between head and
		 * tail stay as published until claimed and settled, whereas
		 * after the claim a taker stopped here could find them moved out
		 * by an expiry and rewritten by a producer. */
		uint64_t tagged = q->lane_prefix | ((uint64_t)e << 8);
		/* One pass, each task written whole and in order (its lease
		 * generation too: a failed claim below writes them again). A
		 * payload lane's value is its record's position: the header is
		 * read once the claim is made (below), when the record is this
		 * claim's until it is settled; before, a producer may be
		 * rewriting it for a later lap. */
		if (vals) { /* integer lanes only (tq__lane_take); two runs at most (the lane's end) */
			uint32_t run = (uint32_t)ival_run(q, h, k);
			const tq_a64 *c = ival_at(q, lane, h);
			for (uint32_t i = 0; i < run; i++)
				vals[i] = load_rlx(&c[i]);
			c = ival_at(q, lane, h + run);
			for (uint32_t i = run; i < k; i++)
				vals[i] = load_rlx(&c[i - run]);
		}
		if (out && payload_lane(lane)) {
			for (uint32_t i = 0; i < k; i++) {
				const struct tq_cell *c = cell_at(q, lane, h + i);
				out[i] = (tq_task){
					.id = __atomic_load_n(&c->id, __ATOMIC_RELAXED),
					.value = __atomic_load_n(&c->value, __ATOMIC_RELAXED),
					.kind = TQ_KIND_STRING,
					.attempt = 1,
					.enqueued_ns = __atomic_load_n(&c->enq_ns, __ATOMIC_RELAXED),
					.priv = {tagged | i, *g},
				};
			}
		} else if (out) {
			struct ibat b;
			uint32_t i = 0;
			if (ibat_find(q, lane, h, &b)) {
				/* A run of tasks per batch record: ids consecutive,
				 * one push time (B1: each record starts where the
				 * last ended, so h + i < b.end at every run's start). */
				while (i < k) {
					uint32_t stop = b.end - h < k ? (uint32_t)(b.end - h) : k;
					uint64_t id = b.id + (h + i - b.first);
					for (; i < stop; i++, id++)
						out[i] = (tq_task){
							.id = id,
							.value = load_rlx(ival_at(q, lane, h + i)),
							.kind = TQ_KIND_INT,
							.attempt = 1,
							.enqueued_ns = b.ns,
							.priv = {tagged | i, *g},
						};
					if (i < k && !ibat_next(q, lane, &b))
						break;
				}
				/* The next claim starts where this one ends: from its
				 * last record, not its first. */
				store_rlx(&q->ibatch_hint[lane], b.n);
			}
			if (i < k)
				goto unread;
		}
		store_rlx(&L->lane, (uint8_t)lane);
		/* A take-ahead hands over `hand` of its tasks and keeps the rest:
		 * said before the claim is made, so that a death right after it
		 * counts no attempt for those (design.md, 17, "Take-ahead"). */
		store_rlx(&L->handed, (uint8_t)(hand < k ? hand + 1 : 0));
		store_rlx(&L->first, h);
		store_rlx(&L->count, k);
		store_rlx(&L->fail_mask, 0);
		store_rlx(&L->deadline, tq__deadline_after(now, q->lease_ns));
		store_rlx(&L->taken_ns, now);
		store_rlx(&L->fate[0], FATE_GEN(*g));
		store_rlx(&L->fate[1], FATE_GEN(*g));
		store_rel(&L->state, LS_MAKE(*g, LS_PENDING));
		if (!cas64(&ln->head, hw, head_make(h + k, q->owner, e))) {
			/* Not claimed: a new generation, so no helper can take this
			 * PENDING for a claim (design.md, 17). */
			*g += 1;
			store_rel(&L->state, LS_MAKE(*g, LS_RESERVED));
			continue;
		}
		TQ_FAULT("take.popped");
		(void)cas64(&L->state, LS_MAKE(*g, LS_PENDING), LS_MAKE(*g, LS_ACTIVE)); /* or helped */
		for (uint32_t i = 0; out && payload_lane(lane) && i < k; i++) {
			/* The record stays until the claim is settled. */
			brec_read(q, lane, out[i].value, &out[i].len, &out[i].kind);
			out[i].data = brec_at(q, lane, out[i].value & ~7ull) + sizeof(struct tq_brec);
			out[i].value = 0;
		}
		tq__count(q, C_LTAKEN, k);
		*first = h;
		return (int)k;
	unread:
		/* Batch records that do not hold the view's positions: a view
		 * gone stale (look again), or, every time, damage. */
		if (++unread == 8) {
			store_rel(&L->state, LS_MAKE(*g, LS_FREE));
			return TQ_EBADQUEUE;
		}
		store_rel(&q->seen_tail[lane], 0);
	}
}

static int claim(tq_queue *q, uint32_t lane, struct tq_take_sink *sk, uint32_t got, uint32_t want, uint64_t stop_id,
		 uint64_t tmax, uint64_t now)
{
	uint32_t e;
	uint64_t g, h;
	/* The caller saw the lane not empty; claim_into frees the entry again
	 * if it has been emptied since. */
	int rc = entry_reserve(q, &e, &g);
	if (rc)
		return rc;
	uint32_t hand = sk->hand == 0 ? UINT32_MAX : sk->hand > got ? sk->hand - got : 0;
	rc = claim_into(q, lane, want, stop_id, tmax, now, hand, e, &g, &h, sk->out ? sk->out + got : NULL,
			sk->vals ? sk->vals + got : NULL);
	if (rc > 0 && sk->vals) {
		sk->claims[2 * sk->nclaims] = g;
		sk->claims[2 * sk->nclaims + 1] = e | ((uint64_t)rc << 8) | ((uint64_t)got << 16);
		sk->nclaims++;
	}
	return rc;
}

/*
 * A handle whose lease entries are all in use (it holds TQ_LEASES - 1
 * claims unacked) still takes: under the recovery lock, it claims with its
 * spare entry and moves the claim's tasks at once into slots (WRITING by
 * it, attempts 0), which the caller leases as slot tasks. Returns the
 * number of slots in idx.
 */
int tq__lane_take_to_slots(tq_queue *q, uint32_t *idx, uint32_t want, uint64_t now)
{
	struct tq_lease *L = &q->me->leases[SPARE_ENTRY];
	int got = 0;

	if (want > TQ_FATE_TASKS)
		want = TQ_FATE_TASKS; /* one fate word: one move, all or none (move_out) */
	if (tq__lock_recovery(q))
		return TQ_EBUSY;
	for (uint32_t l = 0; l < TQ_LANES && got == 0; l++) {
		uint64_t s = load_acq(&L->state), g = LS_GEN(s), h;
		if (LS_STATE(s) != LS_FREE) {
			/* Its last claim is still waiting for a free slot: this
			 * handle holds all it can until it acks (or that lease
			 * expires). An error, not a busy loop. */
			got = TQ_EBUSY;
			break;
		}
		atomic_fetch_or(&q->me->lease_map, 1ull << SPARE_ENTRY);
		if (!cas64(&L->state, s, LS_MAKE(g, LS_RESERVED)))
			break;
		int k = claim_into(q, l, want, 0, 0, now, UINT32_MAX, SPARE_ENTRY, &g, &h, NULL, NULL);
		if (k <= 0) {
			if (k < 0)
				got = k;
			continue;
		}
		got = move_out(q, q->rec, SPARE_ENTRY, g, tq__claim_full((uint32_t)k), MV_TAKEN, 0, NULL, now,
			       idx);
		if (got == TQ_EAGAIN || got == 0) {
			/* No free slot: the claim stays, as a lease of this handle
			 * that will expire like any other. */
			got = TQ_EBUSY;
		}
	}
	tq__unlock(&q->h->recovery_lock);
	return got;
}

/*
 * Takes from the lanes, one home index at a time: its integer lane and its
 * payload lane, where one producer's tasks of both classes go. Of the two,
 * the one whose first task is older goes first, and only its tasks older
 * than the other's first (claim_into), so that what one producer pushed
 * comes out in its order. A lane seen empty is looked at again after the
 * other: a producer publishes in its order, so a task it published in the
 * first after the one seen in the second is then seen too.
 */
int tq__lane_take(tq_queue *q, struct tq_take_sink *sk, uint32_t want, uint64_t stop_id, uint64_t now)
{
	uint32_t got = 0, start = load_rlx(&q->take_lane) % TQ_INT_LANES;

	for (uint32_t i = 0; i < TQ_INT_LANES && got < want; i++) {
		uint32_t a = (start + i) % TQ_INT_LANES, b = a + TQ_INT_LANES;
		for (uint32_t tries = 0; got < want && tries < 4 * TQ_CHUNK; tries++) {
			if (sk->vals && sk->nclaims == sk->maxclaims)
				return (int)got; /* the caller's claim list is full */
			uint64_t hw, ha, ta, hb, tb;
			lane_view(q, a, &hw, &ha, &ta);
			lane_view(q, b, &hw, &hb, &tb);
			if (ha == ta && hb != tb)
				lane_view(q, a, &hw, &ha, &ta);
			bool ea = ha == ta, eb = hb == tb;
			if (ea && eb)
				break;
			if (sk->vals && !eb) {
				/* Integers only: none younger than a ready payload
				 * task, in this pair or in a later one; a payload task
				 * as old as every integer of its pair leaves the pair
				 * to a tq_take, told where to start (tq_take_ints). */
				uint64_t idb = id_at(q, b, hb);
				if (idb && (!stop_id || idb < stop_id))
					stop_id = idb;
				if (ea || idb < id_at(q, a, ha)) {
					if (!sk->blocked || idb < sk->blocked_id) {
						sk->blocked_id = idb;
						sk->blocked_pair = a;
					}
					sk->blocked = true;
					break;
				}
			}
			uint32_t l = ea ? b : a;
			uint64_t stop = stop_id;
			/* The ready ring's first, read after the lanes' tails: a
			 * task published to it before them is older. */
			if (tq__ring_count(&q->readyr)) {
				uint64_t r = tq__ring_head_id(q);
				if (r && (!stop || r < stop))
					stop = r;
			}
			if (!ea && !eb) {
				uint64_t ida = id_at(q, a, ha);
				uint64_t idb = id_at(q, b, hb);
				l = idb < ida ? b : a;
				uint64_t other = idb < ida ? ida : idb;
				if (!stop || other < stop)
					stop = other;
			}
			/* Its first not older than the stop (the ready ring's
			 * first): nothing of this pair yet. */
			if (stop && id_at(q, l, l == a ? ha : hb) >= stop)
				break;
			int k = claim(q, l, sk, got, want - got, stop, l == a ? ta : tb, now);
			if (k < 0)
				return got ? (int)got : k;
			if (k == 0)
				continue; /* taken by another meanwhile: look again */
			if (got == 0)
				store_rlx(&q->take_lane, a);
			got += (uint32_t)k;
		}
	}
	return (int)got;
}

/* The oldest task in the payload lanes (its id; its pair in *pair), 0 if
 * they are empty: what tq_take_ints takes no integer after. A hint, read
 * as tq__lanes_ready. */
uint64_t tq__payload_lanes_oldest(tq_queue *q, uint32_t *pair)
{
	uint64_t oid = 0, size = lane_size(q);

	for (uint32_t l = TQ_INT_LANES; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t hw = load_acq(&ln->head), t = load_acq(&ln->tail);
		uint64_t h = head_pos(hw, t);
		if (h == t || t - h > size)
			continue;
		uint64_t id = __atomic_load_n(&cell_at(q, l, h)->id, __ATOMIC_RELAXED);
		if (id && (!oid || id < oid)) {
			oid = id;
			*pair = l - TQ_INT_LANES;
		}
	}
	return oid;
}

/*
 * Task `bit` of this handle's claim in entry e, generation g, as a tq_task
 * (tq_batch_task). Its cell is read while the claim is not settled: the
 * entry still ACTIVE(g) after the read. TQ_ELOST if the claim has ended
 * or the task's fate is set (t then names the lease all the same).
 */
int tq__lane_claim_task(tq_queue *q, uint32_t e, uint64_t g, uint32_t bit, tq_task *t)
{
	struct tq_lease *L = &q->me->leases[e];

	*t = (tq_task){.kind = TQ_KIND_INT, .attempt = 1,
		       .priv = {q->lane_prefix | ((uint64_t)e << 8) | bit, g}};
	if (load_acq(&L->state) != LS_MAKE(g, LS_ACTIVE))
		return TQ_ELOST;
	uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
	uint64_t first = load_rlx(&L->first);
	if (lane >= TQ_INT_LANES || bit >= count || count > TQ_CLAIM_MAX)
		return TQ_ELOST;
	if (!pos_id(q, lane, first + bit, &t->id, &t->enqueued_ns))
		return TQ_ELOST; /* not while the claim holds (B2): ended meanwhile */
	t->value = load_rlx(ival_at(q, lane, first + bit));
	atomic_thread_fence(memory_order_acquire);
	if (load_acq(&L->state) != LS_MAKE(g, LS_ACTIVE) || !task_leased(L, g, bit))
		return TQ_ELOST;
	return 0;
}

/* The push time of the first task of this handle's claim in entry e (for
 * the wait histogram), 0 if it cannot be read. */
uint64_t tq__lane_claim_enq(tq_queue *q, uint32_t e)
{
	struct tq_lease *L = &q->me->leases[e];
	uint32_t lane = entry_lane(L);

	uint64_t id, ns;
	if (lane >= TQ_LANES || !pos_id(q, lane, load_rlx(&L->first), &id, &ns))
		return 0;
	return ns;
}

/* -------------------------------------------------------- ack, touch */


bool tq__lane_held(tq_queue *q, const tq_task *t)
{
	if (tq__lane_check(q, t))
		return false;
	struct tq_lease *L = &q->me->leases[tq__task_entry(t)];
	uint64_t g = t->priv[1];
	return load_acq(&L->state) == LS_MAKE(g, LS_ACTIVE) && tq__task_bit(t) < load_rlx(&L->count) &&
	       task_leased(L, g, tq__task_bit(t));
}

/* A move-out of entry e of record rec, generation g, is under way (its
 * journal is active). Sequentially consistent, against the mover's end
 * (move_end). */
static inline uint64_t move_key(uint32_t rec, uint32_t e, uint64_t g)
{
	return ((uint64_t)(rec & 0x7ffu) << 53) | ((uint64_t)(e & 0x3fu) << 47) | (g & ((1ull << 47) - 1));
}

static bool moving(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g)
{
	struct tq_move_journal *j = &q->h->move;

	/* One load of the key: fields read one by one could mix two moves. */
	return atomic_load(&j->active) == 1 && load_acq(&j->key) == move_key(rec, e, g);
}

/* Sets `mask` (of tasks 0..63) in entry e's fate words for generation g,
 * one CAS per word with bits in it; returns the bits this call set, and
 * settles the claim if it is then complete. */
static uint64_t fate_set(tq_queue *q, uint32_t e, uint64_t g, uint64_t mask)
{
	struct tq_lease *L = &q->me->leases[e];
	uint64_t set = 0;

	if (load_acq(&L->state) != LS_MAKE(g, LS_ACTIVE))
		return 0;
	/* Only the claim's own tasks: a forged task bit at or beyond its
	 * count sets nothing (the fields are g's while the entry is ACTIVE(g);
	 * should it have moved on, the words' generation check fails below). */
	uint32_t count = load_rlx(&L->count);
	if (count < 1 || count > TQ_CLAIM_MAX)
		return 0;
	mask &= tq__claim_full(count);
	for (uint32_t w = 0; w < 2; w++) {
		uint64_t want = (mask >> (32 * w)) & 0xffffffffull;
		if (!want)
			continue;
		uint64_t f = load_acq(&L->fate[w]);
		for (;;) {
			if (!fate_is(f, g))
				return set; /* the claim has ended */
			uint64_t mine = want & ~FATE_BITS(f);
			if (!mine)
				break;
			if (atomic_compare_exchange_weak(&L->fate[w], &f, f | mine)) {
				set |= mine << (32 * w);
				break;
			}
		}
	}
	/* Complete? Both words read after this call's last CAS (sequentially
	 * consistent): of two acks that complete one word each, the later
	 * CAS's reader sees the other's. */
	if (set && claim_complete(L, g, count)) {
		TQ_FAULT("ack.mid");
		/* A move-out of this claim under way copies from its cells
		 * until its journal ends: its mover (or the repair) settles
		 * after that, not this ack. Two acks may both settle: settle
		 * is safe to repeat. */
		if (!moving(q, q->rec, e, g))
			settle(q, q->rec, e, g);
	}
	return set;
}

void tq__lane_ack_groups(tq_queue *q, const struct tq_lane_group *gr, size_t ng, uint64_t *acked, uint64_t *lost,
			 uint64_t *taken_ns)
{
	for (size_t i = 0; i < ng; i++) {
		if (i == 0)
			*taken_ns = load_rlx(&q->me->leases[gr[i].e].taken_ns);
		uint64_t set = fate_set(q, gr[i].e, gr[i].g, gr[i].mask);
		uint64_t nset = (uint64_t)tq__popcount64(set);
		*acked += nset;
		*lost += gr[i].twice + (uint64_t)tq__popcount64(gr[i].mask) - nset;
	}
}

void tq__lane_ack(tq_queue *q, const tq_task *t, size_t n, uint64_t *acked, uint64_t *lost, uint64_t *taken_ns)
{
	struct tq_lane_group gr[TQ_CHUNK];

	*taken_ns = 0;
	for (size_t done = 0; done < n; done += TQ_CHUNK) {
		size_t end = n - done < TQ_CHUNK ? n : done + TQ_CHUNK, k = 0;
		uint64_t first = 0;
		struct tq_lane_group cur = {.e = UINT32_MAX};
		/* The tasks of one claim come together, in the order taken;
		 * the others are the caller's. */
		for (size_t i = done; i < end; i++)
			if (tq__is_lane_task(&t[i]))
				tq__lane_group_add(gr, &k, &cur, &t[i]);
		tq__lane_group_end(gr, &k, &cur);
		tq__lane_ack_groups(q, gr, k, acked, lost, &first);
		if (!*taken_ns)
			*taken_ns = first;
	}
}

uint64_t tq__lane_touch(tq_queue *q, const tq_task *t, uint64_t end)
{
	struct tq_lease *L = &q->me->leases[tq__task_entry(t)];
	/* The deadline read before the lease is checked, and moved only if
	 * unchanged: an entry settled and reused in between has another
	 * deadline, which this never overwrites. A CAS that fails because
	 * another touch of the same claim (another thread) moved it looks
	 * again: the lease is still held. */
	for (;;) {
		uint64_t d = load_acq(&L->deadline);
		if (!tq__lane_held(q, t))
			return 1;
		if (cas64(&L->deadline, d, end))
			break;
	}
	/* Checked again after the CAS (a full barrier): an expiry that took
	 * the task meanwhile set its bit; and a move-out whose fate CAS comes
	 * after this check sees what this thread stored before the CAS (a
	 * take-ahead's handed marker, design.md 17). */
	fence_after_rmw();
	return tq__lane_held(q, t) ? 0 : 1;
}

/* -------------------------------------------------------- moving out */

/* The units a payload lane's task at pos needs in slot idx, taken before
 * the move is journaled (design.md, 19): TQ_EAGAIN if none are free. */
static int take_slot_units(tq_queue *q, uint32_t idx, uint32_t lane, uint64_t pos)
{
	const struct tq_cell *c = cell_at(q, lane, pos);
	uint32_t len;
	uint16_t kind;

	uint64_t first;

	brec_read(q, lane, __atomic_load_n(&c->value, __ATOMIC_RELAXED), &len, &kind);
	return tq__units_take(q, idx, __atomic_load_n(&c->id, __ATOMIC_RELAXED), kind, len, &first);
}

static void fill_slot(tq_queue *q, uint32_t idx, uint32_t lane, uint64_t pos, uint16_t attempts)
{
	struct tq_slot *s = &q->slots[idx];
	uint64_t id = 0, ns = 0;

	/* The claim is not settled (the move holds it): its cells and batch
	 * records stay (design.md, 17, B2). Should its record not be found
	 * (a damaged segment), the copy gets a new id rather than none. */
	if (!pos_id(q, lane, pos, &id, &ns) || id == 0) {
		id = tq__take_ids(q, 1);
		ns = tq_now_ns();
	}
	store_rlx(&s->enq_ns, ns);
	if (payload_lane(lane)) {
		const struct tq_cell *c = cell_at(q, lane, pos);
		/* The record stays until the claim is settled, which waits for
		 * this move (repeated whole by the repair of a dead mover); the
		 * slot's id, kind, length and units were set when its units
		 * were taken (take_slot_units), before the move was journaled. */
		uint64_t at = __atomic_load_n(&c->value, __ATOMIC_RELAXED);
		uint32_t len, have;
		uint16_t kind;
		brec_read(q, lane, at, &len, &kind);
		uint8_t *dst = tq__payload(q, idx, &have);
		if (dst && have == len)
			memcpy(dst, brec_at(q, lane, at & ~7ull) + sizeof(struct tq_brec), len);
	} else {
		__atomic_store_n(&s->id, id, __ATOMIC_RELAXED);
		s->value = load_rlx(ival_at(q, lane, pos));
		s->len = 0;
		s->kind = TQ_KIND_INT;
	}
	s->attempts = attempts;
	s->flags = 0;
	s->last_err = 0;
	s->taken_ns = 0;
	s->died_ns = 0;
	tq__aux_msg(q, idx, NULL);
	store_rlx(&s->deadline_ns, UINT64_MAX);
}

static const char *why_text(uint32_t why)
{
	return why == MV_EXPIRED ? "its lease expired" : "the process holding its lease died";
}

/* Ends a move-out's journal, then settles the claim if its fate is full:
 * an ack that completed it meanwhile left the settle to this (moving());
 * either that ack saw the journal ended, or this sees its bits. */
static void move_end(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g)
{
	struct tq_lease *L = &q->procs[rec].leases[e];
	uint32_t count = load_rlx(&L->count);

	atomic_store(&q->h->move.active, 0);
	if (claim_complete(L, g, count))
		settle(q, rec, e, g);
}

/*
 * Moves the tasks of `want` that are still leased in entry e of record rec
 * (generation g) out of their lane into slots: READY again, DELAYED for a
 * retry, or DEAD. Caller holds the recovery lock. Moves the tasks of each
 * fate word in one move (word 0 first). Returns the number moved (fewer
 * than asked when a word found too few free slots - its move then takes
 * none of them - or payload units for some of its tasks: those stay in
 * the claim for a later move), 0 if there was nothing left to move (the
 * entry is no longer that lease, or every task is done), TQ_EAGAIN if
 * nothing could move for want of slots or units, or the free ring's error
 * (TQ_EBUSY, TQ_EBADQUEUE) if nothing had moved before it.
 */
static int move_out(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g, uint64_t want, uint32_t why,
		    int err, const char *msg, uint64_t now, uint32_t *taken)
{
	struct tq_lease *L = &q->procs[rec].leases[e];
	struct tq_move_journal *j = &q->h->move;
	uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
	uint64_t first = load_rlx(&L->first);
	uint32_t idx[TQ_FATE_TASKS], ready[TQ_FATE_TASKS];
	int moved = 0;
	uint64_t left = 0; /* a word whose tasks found no free slot or units: the other is still tried */

	if (lane >= TQ_LANES || count < 1 || count > TQ_CLAIM_MAX)
		return TQ_EBADQUEUE;
	uint64_t full = tq__claim_full(count);
	/* One move per fate word with tasks to move (word 0 first): each is
	 * journaled and claimed by one CAS of its word, as a claim of 32. An
	 * error after a first move returns what moved, so that the callers
	 * count it; the claim, still ACTIVE, is looked at again. */
	for (;;) {
		uint32_t nready = 0;
		if (load_acq(&L->state) != LS_MAKE(g, LS_ACTIVE))
			return moved;
		uint64_t bits;
		if (!fate_bits(L, g, &bits))
			return moved;
		uint64_t m = want & full & ~bits & ~left;
		if (!m) {
			if ((bits & full) == full) {
				settle(q, rec, e, g);
				return moved;
			}
			return moved || !left ? moved : TQ_EAGAIN;
		}
		uint32_t w = (m & word_tasks(0)) ? 0 : 1;
		uint64_t f = atomic_load(&L->fate[w]);
		if (!fate_is(f, g))
			return moved;
		m &= (~FATE_BITS(f) & 0xffffffffull) << (32 * w);
		if (!m)
			continue; /* acked since the read above */
		uint32_t k = (uint32_t)tq__popcount64(m);
		int got = tq__ring_pop(q, &q->freer, idx, k, st_make(ST_WRITING, q->owner, 0), false, NULL, C__COUNT);
		if (got < 0)
			return moved ? moved : got;
		if ((uint32_t)got < k) {
			(void)tq__release_owned(q, idx, (uint32_t)got, C__COUNT);
			left |= word_tasks(w);
			continue;
		}
		if (payload_lane(lane)) {
			/* Their payload units, in bit order: the tasks for which
			 * none are free stay in the claim for a later move (a
			 * sweep), as with no free slot; those before move now. */
			uint32_t n = 0;
			for (uint32_t b = 0; b < count && n < k; b++) {
				if (!(m & (1ull << b)))
					continue;
				if (take_slot_units(q, idx[n], lane, first + b)) {
					m &= (1ull << b) - 1;
					break;
				}
				n++;
			}
			if (n < k && why == MV_TAKEN)
				n = 0; /* a take gets all it claimed or none: none is stranded in the spare entry */
			if (n < k) {
				(void)tq__release_owned(q, idx + n, k - n, C__COUNT);
				if (n == 0) {
					left |= word_tasks(w);
					continue;
				}
				k = n;
			}
		}
		j->rec = rec;
		j->entry = e;
		j->why = why;
		j->mover = q->owner;
		j->moves = FATE_MOVES(f) + 1;
		j->word = w;
		j->gen = g;
		store_rel(&j->key, move_key(rec, e, g)); /* read by ackers (moving()) */
		j->mask = m;
		j->moved_before = load_rlx(&q->h->lane_moved[why & 7]);
		for (uint32_t b = 0, i = 0; b < count; b++)
			if (m & (1ull << b))
				j->slot[b] = idx[i++];
		store_rel(&j->active, 1);
		TQ_FAULT("move.journal");
		/* In motion before the claim lets go of them: a stats reader
		 * (tq__lane_totals) may then see them twice for an instant, never
		 * in neither place (which would read as acked); lane_moved, which
		 * the failed, expired and recovered totals read, only grows. A
		 * repair after a death clears it. */
		store_rel(&q->h->lane_moving, k);
		if (!cas64(&L->fate[w], f, (f | (m >> (32 * w))) + FATE_MOVE_ONE)) {
			store_rel(&q->h->lane_moving, 0);
			/* Sequentially consistent, as in move_end: an ack that
			 * completed the claim meanwhile and left the settle to
			 * this move is seen by the fate read of the next turn. */
			atomic_store(&j->active, 0);
			(void)tq__release_owned(q, idx, k, C__COUNT);
			continue;
		}
		store_rel(&q->h->lane_moved[why & 7], j->moved_before + k);
		store_rel(&q->h->lane_moving, 0);
		TQ_FAULT("move.claimed");
		uint32_t handed = entry_handed(L); /* after the fate CAS */
		for (uint32_t b = 0, i = 0; b < count; b++) {
			if (!(m & (1ull << b)))
				continue;
			uint32_t s = idx[i++];
			uint16_t attempts = move_attempts(why, b, handed);
			fill_slot(q, s, lane, first + b, attempts);
			if (why == MV_TAKEN) {
				/* Leased to this handle before the journal ends: if it
				 * dies now, recovery returns a LEASED slot like any. */
				store_rel(&q->st[s], tq__slot_lease(q, s));
				taken[moved + nready++] = s; /* the caller fills the deliveries */
			} else if (why == MV_FAILED) {
				tq__count(q, C_LFAILED, 1);
				if (attempts >= q->max_attempts) {
					tq__make_dead(q, s, err, msg, now, true);
				} else {
					q->slots[s].last_err = err;
					tq__aux_msg(q, s, msg);
					tq__delay_slot(q, s, now + tq__backoff_ns(q, attempts));
					tq__count(q, C_LRETRIED, 1);
				}
			} else if (attempts >= q->max_attempts) {
				tq__make_dead(q, s, TQ_ELOST, why_text(why), now, true);
			} else {
				/* Its copy is whole: REQUEUE(me), which the recovery
				 * of this record requeues if the ring push below does
				 * not happen (WRITING would be freed as unaccepted). */
				store_rel(&q->st[s], st_make(ST_REQUEUE, q->owner, 0));
				ready[nready++] = s;
			}
		}
		if (nready && why != MV_TAKEN)
			(void)tq__requeue_owned(q, ready, nready);
		move_end(q, rec, e, g);
		moved += (int)k;
	}
}

/* The next holder of the recovery lock finishes a move-out its dead holder
 * left: design.md, section 17, "Crash argument for lanes". */
void tq__lanes_repair_move(tq_queue *q)
{
	struct tq_move_journal *j = &q->h->move;

	if (load_acq(&j->active) != 1)
		return;
	uint32_t rec = j->rec, e = j->entry, mover = j->mover, w = j->word;
	uint64_t g = j->gen, m = j->mask;
	uint32_t moves = j->moves;
	if (rec >= TQ_MAX_PROCS || e >= TQ_LEASES || mover == 0 || mover > TQ_MAX_PROCS || w > 1 ||
	    (m & ~word_tasks(w))) {
		store_rel(&q->h->lane_moving, 0);
		store_rel(&j->active, 0);
		return;
	}
	struct tq_lease *L = &q->procs[rec].leases[e];
	uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
	uint64_t first = load_rlx(&L->first), f = load_acq(&L->fate[w]), mw = m >> (32 * w);
	uint64_t writing = st_make(ST_WRITING, mover, 0), mine = st_make(ST_WRITING, q->owner, 0);
	/* Its fate CAS happened if the move count of its word is the one it
	 * recorded: acks set bits, never the count (design.md, 17). */
	bool claimed = load_acq(&L->state) == LS_MAKE(g, LS_ACTIVE) && fate_is(f, g) && FATE_MOVES(f) == moves &&
		       (f & mw) == mw && lane < TQ_LANES && count >= 1 && count <= TQ_CLAIM_MAX;
	uint32_t ready[TQ_FATE_TASKS], nready = 0, rel[TQ_FATE_TASKS], nrel = 0;
	uint32_t why = j->why, handed = claimed ? entry_handed(L) : 0;

	for (uint32_t b = 0; b < TQ_CLAIM_MAX; b++) {
		if (!(m & (1ull << b)))
			continue;
		uint32_t s = j->slot[b];
		if (s >= q->nslots || load_acq(&q->st[s]) != writing)
			continue; /* finished by the dead holder, or never taken */
		if (claimed && b < count) {
			/* Written while still WRITING(mover), then REQUEUE(me) in
			 * one step: a repairer that dies before it leaves the
			 * journal to the next; after it, its own recovery requeues. */
			fill_slot(q, s, lane, first + b, move_attempts(why, b, handed)); /* as the move would */
			if (cas64(&q->st[s], writing, st_make(ST_REQUEUE, q->owner, 0)))
				ready[nready++] = s;
		} else if (cas64(&q->st[s], writing, mine)) {
			rel[nrel++] = s;
		}
	}
	if (claimed)
		store_rel(&q->h->lane_moved[why & 7], j->moved_before + (uint64_t)tq__popcount64(m));
	store_rel(&q->h->lane_moving, 0); /* the mover may have died with it set */
	if (nready)
		(void)tq__requeue_owned(q, ready, nready);
	if (nrel)
		(void)tq__release_owned(q, rel, nrel, C__COUNT);
	/* Claimed or not, an ack may have completed the claim and left the
	 * settle to this move: move_end settles if the fate is full (settle
	 * checks the generation). */
	move_end(q, rec, e, g);
}

/* Returns everything record rec holds in lanes (its lane, its claims).
 * Caller holds the recovery lock, and rec is dead or closing. */
int tq__lanes_recover_rec(tq_queue *q, uint32_t rec, bool died, uint64_t *returned)
{
	struct tq_proc *p = &q->procs[rec];
	uint64_t now = tq_now_ns();
	int rc = 0;

	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t w = load_acq(&ln->owner);
		if (w && (w & TQ_LOCK_OWNER_MASK) == rec + 1)
			(void)cas64(&ln->owner, w, 0); /* unpublished cells were never accepted */
	}
	for (uint32_t e = 0; e < TQ_LEASES; e++) {
		struct tq_lease *L = &p->leases[e];
		uint64_t s = load_acq(&L->state), g = LS_GEN(s);
		uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
		switch (LS_STATE(s)) {
		case LS_FREE:
			continue;
		case LS_PENDING:
			/* Did its claim happen? Only if `head` still names it; had
			 * another taker moved `head` since, it would have helped. */
			if (pending_claimed(q, rec, e, L) && cas64(&L->state, s, LS_MAKE(g, LS_ACTIVE)))
				break;
			if (LS_STATE(load_acq(&L->state)) == LS_ACTIVE)
				break; /* helped meanwhile */
			(void)cas64(&L->state, s, LS_MAKE(g + 1, LS_FREE));
			continue;
		case LS_ACTIVE:
			break;
		default:
			(void)cas64(&L->state, s, LS_MAKE(g + 1, LS_FREE));
			continue;
		}
		s = load_acq(&L->state);
		if (LS_STATE(s) != LS_ACTIVE)
			continue;
		if (lane >= TQ_LANES || count < 1 || count > TQ_CLAIM_MAX) {
			(void)cas64(&L->state, s, LS_MAKE(LS_GEN(s) + 1, LS_FREE)); /* names nothing */
			continue;
		}
		move_failures(q, rec, e, LS_GEN(s), now);
		int k = move_out(q, rec, e, LS_GEN(s), tq__claim_full(count), died ? MV_DIED : MV_CLOSED, TQ_ELOST,
				 NULL, now, NULL);
		if (k < 0) {
			rc = k;
			continue;
		}
		if (k > 0 && load_acq(&L->state) == s) /* some found no payload units: the record waits */
			rc = TQ_EAGAIN;
		*returned += (uint64_t)k;
		if (died)
			tq__count(q, C_LRECOVERED, (uint64_t)k);
	}
	return rc;
}

/* The expiry sweep over every attached record's claims: O(records x
 * entries), never O(capacity). A stopped holder cannot delay it. */
uint64_t tq__lanes_expire(tq_queue *q, uint64_t now)
{
	uint64_t expired = 0;

	for (uint32_t r = 0; r < tq__procs_hi(q); r++) {
		struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE)
			continue;
		for (uint32_t e = 0; e < TQ_LEASES; e++) {
			struct tq_lease *L = &p->leases[e];
			uint64_t s = load_acq(&L->state);
			if (LS_STATE(s) == LS_PENDING && load_acq(&L->deadline) <= now &&
			    pending_claimed(q, r, e, L) && cas64(&L->state, s, LS_MAKE(LS_GEN(s), LS_ACTIVE)))
				s = LS_MAKE(LS_GEN(s), LS_ACTIVE); /* its taker stopped before recording it: help */
			if (LS_STATE(s) != LS_ACTIVE)
				continue;
			/* Complete but not settled: an ack left the settle to a
			 * move-out whose mover died before it settled. No move is
			 * under way now (this holds the recovery lock). */
			if (claim_complete(L, LS_GEN(s), load_rlx(&L->count))) {
				settle(q, r, e, LS_GEN(s));
				continue;
			}
			move_failures(q, r, e, LS_GEN(s), now);
			if (load_acq(&L->deadline) > now)
				continue;
			uint32_t count = load_rlx(&L->count);
			if (count < 1 || count > TQ_CLAIM_MAX)
				continue;
			int k = move_out(q, r, e, LS_GEN(s), tq__claim_full(count), MV_EXPIRED, TQ_ELOST, NULL, now,
					 NULL);
			if (k > 0)
				expired += (uint64_t)k;
		}
	}
	/* A lane left held by a word that names no live holder (a forged
	 * segment: the dead are released by the recovery of their record). */
	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t w = load_acq(&ln->owner);
		uint64_t owner = w & TQ_LOCK_OWNER_MASK;
		if (!w || !tq__holder_gone(q, w))
			continue;
		if (owner >= 1 && owner <= TQ_MAX_PROCS && (w >> 48) == 0 &&
		    load_acq(&q->procs[owner - 1].state) == PROC_ACTIVE &&
		    load_acq(&q->procs[owner - 1].nonce) == (uint32_t)(w >> TQ_LOCK_NONCE_SHIFT))
			continue; /* its holder died: its record's recovery releases it */
		(void)cas64(&ln->owner, w, 0);
	}
	return expired;
}

/* tq_fail of a lane task: moved out as a retry (DELAYED) or buried. The
 * caller holds the recovery lock (`locked`); without it, TQ_EBUSY (the
 * lease stays, and expires as any other). */
int tq__lane_fail(tq_queue *q, const tq_task *t, int err, const char *msg, bool locked, uint64_t *lost)
{
	uint64_t now = tq_now_ns();

	if (locked) {
		int k = move_out(q, q->rec, tq__task_entry(t), t->priv[1], 1ull << tq__task_bit(t), MV_FAILED, err, msg, now,
				 NULL);
		if (k == 0)
			(*lost)++;
		if (k >= 0)
			return 0;
		if (k != TQ_EAGAIN)
			return k;
	}
	/* No free slot for it now (or no lock): the failure is recorded in
	 * the lease, and the next sweep moves the task out as a failure (with
	 * its error code; the message is not kept). */
	if (!tq__lane_held(q, t)) {
		(*lost)++;
		return 0;
	}
	struct tq_lease *L = &q->me->leases[tq__task_entry(t)];
	store_rlx(&L->fail_err, (uint32_t)err);
	atomic_fetch_or(&L->fail_mask, 1ull << tq__task_bit(t));
	if (tq__due_hint(q, now))
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	return 0;
}

/* Moves out the failures recorded in entry e of record rec (generation
 * g) that could not be moved out when asked. Under the recovery lock. */
static void move_failures(tq_queue *q, uint32_t rec, uint32_t e, uint64_t g, uint64_t now)
{
	struct tq_lease *L = &q->procs[rec].leases[e];
	uint64_t fm = load_acq(&L->fail_mask);

	if (fm)
		(void)move_out(q, rec, e, g, fm, MV_FAILED, (int)(uint32_t)load_rlx(&L->fail_err), NULL, now,
			       NULL);
}

/* Is entry e of record rec, found PENDING, a claim that happened (the
 * lane's claim word still names it)? */
static bool pending_claimed(tq_queue *q, uint32_t rec, uint32_t e, struct tq_lease *L)
{
	uint32_t lane = entry_lane(L), count = load_rlx(&L->count);

	if (lane >= TQ_LANES || count < 1 || count > TQ_CLAIM_MAX)
		return false;
	struct tq_lane *ln = &q->h->lanes[lane];
	uint64_t hw = load_acq(&ln->head), t = load_acq(&ln->tail);
	return head_owner(hw) == rec + 1 && head_entry(hw) == e &&
	       head_pos(hw, t) == load_rlx(&L->first) + count;
}

void tq__lanes_move_failures(tq_queue *q, uint64_t now)
{
	bool left = false;

	for (uint32_t r = 0; r < tq__procs_hi(q); r++) {
		if (load_acq(&q->procs[r].state) != PROC_ACTIVE)
			continue;
		for (uint64_t map = load_acq(&q->procs[r].lease_map); map; map &= map - 1) {
			uint32_t e = (uint32_t)__builtin_ctzll(map);
			struct tq_lease *L = &q->procs[r].leases[e];
			if (!load_acq(&L->fail_mask))
				continue;
			uint64_t s = load_acq(&L->state);
			uint32_t count = load_rlx(&L->count);
			if (LS_STATE(s) != LS_ACTIVE || count < 1 || count > TQ_CLAIM_MAX)
				continue;
			move_failures(q, r, e, LS_GEN(s), now);
			uint64_t f;
			if (load_acq(&L->state) == s && fate_bits(L, LS_GEN(s), &f) &&
			    (load_acq(&L->fail_mask) & ~f & tq__claim_full(count)))
				left = true; /* no free slot yet */
		}
	}
	if (left)
		(void)tq__due_hint(q, now + 1000000ull);
}

uint32_t tq__lane_leased_by(tq_queue *q, uint32_t rec)
{
	uint32_t n = 0;
	uint64_t map = load_acq(&q->procs[rec].lease_map);

	for (; map; map &= map - 1) {
		uint32_t e = (uint32_t)__builtin_ctzll(map);
		struct tq_lease *L = &q->procs[rec].leases[e];
		uint64_t s = load_acq(&L->state);
		uint32_t count = load_rlx(&L->count);
		if (count < 1 || count > TQ_CLAIM_MAX)
			continue;
		if (LS_STATE(s) == LS_PENDING) {
			if (pending_claimed(q, rec, e, L)) {
				n += count;
				continue;
			}
			/* Not the head's claim now: a later taker may have passed
			 * it, after helping it to ACTIVE (claim_into). */
			s = load_acq(&L->state);
		}
		uint64_t bits;
		if (LS_STATE(s) == LS_ACTIVE) {
			(void)fate_bits(L, LS_GEN(s), &bits); /* racy, as the whole count */
			n += (uint32_t)tq__popcount64(~bits & tq__claim_full(count));
		}
	}
	return n;
}

uint64_t tq__lane_totals(tq_queue *q, tq_counters *t)
{
	uint64_t pushed = 0, taken = 0, moved = 0, leased = 0;

	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		uint64_t hw = load_acq(&ln->head); /* before the tail: never ahead of it */
		uint64_t tail = load_acq(&ln->tail);
		pushed += tail;
		taken += head_pos(hw, tail);
	}
	/* After the positions: a claim taken meanwhile counts here, not in
	 * `taken` (acked reads low); before the moves: a fail meanwhile
	 * counts in both (acked reads low again). */
	for (uint32_t r = 0; r < tq__procs_hi(q); r++)
		if (load_acq(&q->procs[r].state) == PROC_ACTIVE)
			leased += tq__lane_leased_by(q, r);
	/* The move under way before the moves done: it sets lane_moved
	 * before it clears lane_moving, so its tasks are in one or both. */
	moved = load_acq(&q->h->lane_moving);
	for (unsigned w = 0; w < 8; w++)
		moved += load_acq(&q->h->lane_moved[w]);
	uint64_t acked = taken - leased - moved;
	t->pushed += pushed;
	t->taken += taken;
	t->acked += acked > taken ? 0 : acked; /* read racing with takers: never negative */
	t->failed += load_rlx(&q->h->lane_moved[MV_FAILED]);
	t->expired += load_rlx(&q->h->lane_moved[MV_EXPIRED]);
	t->recovered += load_rlx(&q->h->lane_moved[MV_DIED]);
	return leased;
}

/* ----------------------------------------------------- finished watermark */

static inline void lower(uint64_t *min, uint64_t id)
{
	if (id && id < *min)
		*min = id;
}

/* The smallest id, below `min`, of a lane task not finished: ready in a
 * lane, in a claim with its fate bit clear (or a claim PENDING: counted
 * whether or not it happened), or being moved out (the move journal).
 * Scanned in that order, the order a task moves in, each stage visible
 * before the task leaves the one before (design.md, section 18). */
/* The id of a task of a claim that is not settled (its cell and record
 * stay, B2); 1 (nothing finished) if it cannot be read: a claim that
 * ended meanwhile, or damage. */
static uint64_t held_id(tq_queue *q, uint32_t lane, uint64_t pos)
{
	uint64_t id;
	return pos_id(q, lane, pos, &id, NULL) && id ? id : 1;
}

uint64_t tq__lanes_unfinished_min(tq_queue *q, uint64_t min)
{
	uint64_t size = lane_size(q);

	for (uint32_t l = 0; l < TQ_LANES; l++) {
		struct tq_lane *ln = &q->h->lanes[l];
		/* The id at the head is the head task's only while the head has
		 * not moved since (a cell is rewritten only after the head has
		 * passed it and its claim is settled): read again until a view
		 * holds, so a preempted scan never takes a newer task's id for
		 * the head's. */
		for (uint32_t tries = 0;; tries++) {
			uint64_t hw = load_acq(&ln->head), t = load_acq(&ln->tail), h = head_pos(hw, t);
			if (h == t)
				break;
			if (tries == 1000) {
				lower(&min, 1); /* never a view that holds: damaged; claim nothing finished */
				break;
			}
			uint64_t id;
			bool got = t - h <= size && pos_id(q, l, h, &id, NULL);
			if (load_acq(&ln->head) != hw || !got)
				continue; /* moved, or a view split by a preemption */
			lower(&min, id);
			break;
		}
	}
	for (uint32_t r = 0; r < tq__procs_hi(q); r++) {
		struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) == PROC_FREE)
			continue; /* a dead record's claims are moved out before it is FREE */
		for (uint64_t map = load_acq(&p->lease_map); map; map &= map - 1) {
			struct tq_lease *L = &p->leases[__builtin_ctzll(map)];
			uint64_t s = load_acq(&L->state);
			uint32_t lane = entry_lane(L), count = load_rlx(&L->count);
			if ((LS_STATE(s) != LS_ACTIVE && LS_STATE(s) != LS_PENDING) || lane >= TQ_LANES || count < 1 ||
			    count > TQ_CLAIM_MAX)
				continue;
			uint64_t bits = 0;
			if (LS_STATE(s) == LS_ACTIVE)
				(void)fate_bits(L, LS_GEN(s), &bits); /* racy, as the whole watermark */
			uint64_t clear = ~bits & tq__claim_full(count);
			if (clear)
				lower(&min, held_id(q, lane, load_rlx(&L->first) + (uint64_t)__builtin_ctzll(clear)));
		}
	}
	struct tq_move_journal *j = &q->h->move;
	if (atomic_load(&j->active) == 1) {
		uint32_t rec = __atomic_load_n(&j->rec, __ATOMIC_RELAXED), e = __atomic_load_n(&j->entry, __ATOMIC_RELAXED);
		uint64_t m = __atomic_load_n(&j->mask, __ATOMIC_RELAXED);
		if (rec < TQ_MAX_PROCS && e < TQ_LEASES && m) {
			struct tq_lease *L = &q->procs[rec].leases[e];
			uint32_t lane = entry_lane(L);
			if (lane < TQ_LANES)
				lower(&min, held_id(q, lane, load_rlx(&L->first) + (uint64_t)__builtin_ctzll(m)));
		}
	}
	return min;
}
