/* SPDX-License-Identifier: MIT */
/*
 * dead.c - the dead-letter area: burying a task with its failure message,
 * listing, kicking and purging dead tasks (docs/design.md, section 10).
 * Dead tasks are never dropped: beyond dead_capacity they are kept and
 * count against the capacity.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

/* ------------------------------------------------------------ messages */

size_t tq__utf8_cut(const char *msg, size_t max)
{
	size_t len = max ? strnlen(msg, max) : 0;

	if (len < max)
		return len; /* fits whole */
	len = max - 1;
	/* Cutting before byte `len`: if it continues a multi-byte sequence,
	 * cut before that sequence's lead byte instead (at most 3 back; bytes
	 * that are not UTF-8 are cut where they are). */
	for (size_t back = 0; back < 4 && len > 0; back++) {
		unsigned char c = (unsigned char)msg[len];
		if ((c & 0xc0) != 0x80)
			return len; /* a lead byte or ASCII: a boundary */
		len--;
		if (((unsigned char)msg[len] & 0xc0) == 0xc0)
			return len; /* the lead byte of the cut sequence */
	}
	return max - 1;
}

void tq__aux_msg(tq_queue *q, uint32_t idx, const char *msg)
{
	struct tq_aux *a = &q->aux[idx];
	size_t len = msg ? tq__utf8_cut(msg, sizeof(a->msg)) : 0;

	if (len)
		memcpy(a->msg, msg, len);
	a->msg[len] = '\0';
	a->mentry = 0;
	a->mseq = 0;
	a->tag = (uint32_t)q->slots[idx].id;
}

static bool aux_prefix(tq_queue *q, uint32_t idx, char *out)
{
	/* The prefix belongs to the task that wrote it (out: TQ_AUX_MSG bytes). */
	const struct tq_aux *a = &q->aux[idx];

	if (a->tag != (uint32_t)q->slots[idx].id) {
		out[0] = '\0';
		return false;
	}
	memcpy(out, a->msg, sizeof(a->msg));
	out[sizeof(a->msg) - 1] = '\0';
	return out[0] != '\0';
}

/* Entries msg_store looks at before giving up (design.md, 10). */
#define MSG_SEARCH 64u

/* Does entry e hold the message of the dead task it names? */
static bool msg_valid(tq_queue *q, uint32_t e, uint32_t *slot)
{
	const struct tq_msg *m = &q->msgs[e];
	uint32_t s = m->slot;

	if (s >= q->nslots || st_state(load_acq(&q->st[s])) != ST_DEAD)
		return false;
	const struct tq_aux *a = &q->aux[s];
	if (a->mentry != e + 1 || a->mseq != m->seq || m->seq == 0 || q->slots[s].id != m->id)
		return false;
	if (slot)
		*slot = s;
	return true;
}

/* Stores msg whole in a free entry of the message area for slot idx (its
 * id written), if one of the MSG_SEARCH entries from the cursor is free
 * (otherwise the task keeps its prefix); the caller holds the recovery lock. */
static void msg_store(tq_queue *q, uint32_t idx, const char *msg, size_t len)
{
	uint32_t n = q->dead_cap, start = q->h->msg_hint % n;
	uint32_t tries = n < MSG_SEARCH ? n : MSG_SEARCH;

	for (uint32_t k = 0; k < tries; k++) {
		uint32_t e = (start + k) % n;
		if (msg_valid(q, e, NULL))
			continue;
		struct tq_msg *m = &q->msgs[e];
		uint64_t seq = ++q->h->msg_seq;
		if (seq == 0)
			seq = ++q->h->msg_seq;
		m->seq = 0;
		memcpy(m->text, msg, len);
		m->text[len] = '\0';
		m->len = (uint32_t)len;
		m->id = q->slots[idx].id;
		m->slot = idx;
		m->seq = seq;
		q->aux[idx].mseq = seq;
		q->aux[idx].mentry = e + 1;
		q->h->msg_hint = (e + 1) % n;
		return;
	}
}

/* Copies slot idx's failure message into out (TQ_ERRMSG_MAX bytes). */
static void msg_read(tq_queue *q, uint32_t idx, char *out)
{
	const struct tq_aux *a = &q->aux[idx];
	uint32_t e = a->mentry, s;

	if (e >= 1 && e <= q->dead_cap && msg_valid(q, e - 1, &s) && s == idx) {
		const struct tq_msg *m = &q->msgs[e - 1];
		size_t len = m->len < TQ_ERRMSG_MAX - 1 ? m->len : TQ_ERRMSG_MAX - 1;
		memcpy(out, m->text, len);
		out[len] = '\0';
		out[strnlen(out, len)] = '\0';
		return;
	}
	(void)aux_prefix(q, idx, out);
}

/* Copies slot idx's whole message from the message area into out if its
 * entry still names this slot, task and sequence, whatever the slot's
 * state (a kick interrupted before it reset the attempts). */
static bool msg_intact(tq_queue *q, uint32_t idx, char *out)
{
	const struct tq_aux *a = &q->aux[idx];
	uint32_t e = a->mentry;

	if (e < 1 || e > q->dead_cap)
		return false;
	const struct tq_msg *m = &q->msgs[e - 1];
	if (m->seq == 0 || m->seq != a->mseq || m->slot != idx || m->id != q->slots[idx].id ||
	    a->tag != (uint32_t)m->id)
		return false;
	size_t len = m->len < TQ_ERRMSG_MAX - 1 ? m->len : TQ_ERRMSG_MAX - 1;
	memcpy(out, m->text, len);
	out[len] = '\0';
	return out[0] != '\0';
}

/* ------------------------------------------------------------- bury */

uint32_t tq__slot_counts_recount(tq_queue *q)
{
	uint32_t n = 0, delayed = 0;

	for (uint32_t i = 0; i < q->nslots; i++) {
		unsigned s = st_state(load_acq(&q->st[i]));
		n += s == ST_DEAD;
		if (s != ST_DELAYED)
			continue;
		delayed++;
		/* The holder may have died between a due sweep's clear of a
		 * bit and its CAS: the slot gets its bit back, and the hint its
		 * due time (design.md, 10). */
		tq__due_repair(q, i);
		(void)tq__due_hint(q, load_acq(&q->slots[i].deadline_ns));
	}
	store_rlx(&q->h->dead_count, n);
	store_rlx(&q->h->delayed_count, delayed);
	return n;
}

/* Moves a slot this process owns into the dead-letter area: kept whatever
 * the area holds; beyond dead_capacity it counts against the capacity. */
void tq__make_dead(tq_queue *q, uint32_t idx, int err, const char *msg, uint64_t now, bool locked)
{
	struct tq_slot *s = &q->slots[idx];
	char ev[TQ_EVENT_MSG_MAX];
	size_t len = msg ? tq__utf8_cut(msg, TQ_ERRMSG_MAX) : 0;

	s->last_err = err;
	tq__aux_msg(q, idx, msg);
	/* Beyond the area a dead task keeps its prefix only (tq_fail): no
	 * search then, so a full area costs a burial nothing. */
	if (locked && len >= TQ_AUX_MSG && load_rlx(&q->h->dead_count) < q->dead_cap)
		msg_store(q, idx, msg, len);
	size_t elen = msg ? tq__utf8_cut(msg, sizeof(ev)) : 0;
	memcpy(ev, msg ? msg : "", elen);
	ev[elen] = '\0';
	s->died_ns = now;
	store_rel(&s->deadline_ns, UINT64_MAX);
	/* The event first: once DEAD, the slot may be kicked or purged at once. */
	tq__event(q, TQ_EV_DEAD, s->id, s->attempts, ev);
	uint32_t before = add_rlx(&q->h->dead_count, 1);
	TQ_FAULT("bury.counted");
	if (before >= q->dead_cap) {
		tq__count(q, C_DEAD_OVERFLOW, 1);
		if (before == q->dead_cap)
			tq__event(q, TQ_EV_DEAD_FULL, s->id, q->dead_cap, NULL);
	}
	store_rel(&q->st[idx], st_make(ST_DEAD, 0, 0));
	tq__count(q, C_DEAD, 1);
}

void tq__make_dead_kept(tq_queue *q, uint32_t idx, const char *why, uint64_t now)
{
	char msg[TQ_ERRMSG_MAX];
	int err = q->slots[idx].last_err;

	if (!msg_intact(q, idx, msg) && !aux_prefix(q, idx, msg))
		msg[0] = '\0';
	tq__make_dead(q, idx, err ? err : TQ_ELOST, msg[0] ? msg : why, now, true);
}

struct dead_ref {
	uint64_t died_ns, id;
	uint32_t idx;
};

static bool dead_before(const struct dead_ref *x, const struct dead_ref *y)
{
	return x->died_ns != y->died_ns ? x->died_ns < y->died_ns : x->id < y->id;
}

static int cmp_dead(const void *a, const void *b)
{
	const struct dead_ref *x = a, *y = b;
	return dead_before(x, y) ? -1 : dead_before(y, x);
}

/* Restores the max-heap (the newest at the root) below position i. */
static void heap_down(struct dead_ref *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, top = i;
		if (l < n && dead_before(&h[top], &h[l]))
			top = l;
		if (r < n && dead_before(&h[top], &h[r]))
			top = r;
		if (top == i)
			return;
		struct dead_ref t = h[i];
		h[i] = h[top];
		h[top] = t;
		i = top;
	}
}

static void heap_up(struct dead_ref *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!dead_before(&h[p], &h[i]))
			return;
		struct dead_ref t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

/* Fills refs with the (up to) max oldest dead tasks, oldest first, keeping
 * only max references while scanning (design.md, 10); returns how many.
 * The caller holds the recovery lock. */
static size_t dead_oldest(tq_queue *q, struct dead_ref *refs, size_t max)
{
	size_t n = 0;

	for (uint32_t i = 0; i < q->nslots && max; i++) {
		if (st_state(load_acq(&q->st[i])) != ST_DEAD)
			continue;
		struct dead_ref r = {q->slots[i].died_ns, q->slots[i].id, i};
		if (n < max) {
			refs[n] = r;
			heap_up(refs, n++);
		} else if (dead_before(&r, &refs[0])) {
			refs[0] = r;
			heap_down(refs, n, 0);
		}
	}
	qsort(refs, n, sizeof(*refs), cmp_dead);
	return n;
}

TQ_API int tq_dead_list(tq_queue *q, tq_dead_info *out, size_t max, void *data, size_t data_stride)
{
	if (tq__usable(q))
		return tq__usable(q);
	if (!out && max)
		return TQ_EINVAL;
	if (max > q->nslots)
		max = q->nslots; /* no more dead than slots */
	if (max > INT32_MAX)
		max = INT32_MAX;
	if (max == 0)
		return 0;
	struct dead_ref *refs = malloc(sizeof(*refs) * max);
	if (!refs)
		return TQ_ENOMEM;
	/* Dead slots leave DEAD only under the recovery lock (kick, purge),
	 * and messages are stored under it: holding it, nothing read here
	 * changes while read. */
	int rc = tq__lock_recovery(q);
	if (rc) {
		free(refs);
		return rc;
	}
	size_t k = dead_oldest(q, refs, max);
	for (size_t j = 0; j < k; j++) {
		const struct tq_slot *s = &q->slots[refs[j].idx];
		tq_dead_info *d = &out[j];
		memset(d, 0, sizeof(*d));
		d->id = s->id;
		d->kind = s->kind;
		d->value = s->value;
		d->len = s->len <= q->max_payload ? s->len : q->max_payload;
		d->attempts = s->attempts;
		d->last_err = s->last_err;
		d->died_ns = s->died_ns;
		_Static_assert(sizeof(d->last_msg) == TQ_ERRMSG_MAX, "message size");
		msg_read(q, refs[j].idx, d->last_msg);
		if (d->kind != TQ_KIND_INT) {
			d->value = 0;
			const uint8_t *p = tq__payload(q, refs[j].idx, &d->len);
			if (p && data && data_stride)
				memcpy((uint8_t *)data + j * data_stride, p, d->len < data_stride ? d->len : data_stride);
		}
	}
	tq__unlock(&q->h->recovery_lock);
	free(refs);
	return (int)k;
}

/* May one more dead task be kicked? One beyond the area already counts
 * against the capacity; one within it needs a free place of it. */
static bool kick_room(tq_queue *q)
{
	return load_rlx(&q->h->dead_count) > q->dead_cap || tq__room(q) > 0;
}

/* Claims dead slot i (read as s) for a kick or purge; the caller holds
 * the recovery lock. */
static bool dead_claim(tq_queue *q, uint32_t i, uint64_t s, bool kick)
{
	if (!cas64(&q->st[i], s, st_make(kick ? ST_REQUEUE : ST_RELEASING, q->owner, 0)))
		return false;
	TQ_FAULT("kick.claimed");
	if (kick)
		q->slots[i].attempts = 0;
	if (load_rlx(&q->h->dead_count))
		sub_rlx(&q->h->dead_count, 1);
	return true;
}

static int dead_send(tq_queue *q, const uint32_t *idx, uint32_t k, bool kick)
{
	if (!k)
		return 0;
	return kick ? tq__requeue_owned(q, idx, k) : tq__release_owned(q, idx, k, C__COUNT);
}

/* Kicks slot i if it is still dead: claims it into idx (k of TQ_CHUNK),
 * sending a full chunk on. Returns 0 or dead_send's error. */
static int kick_into(tq_queue *q, uint32_t i, uint32_t *idx, uint32_t *k, int *moved)
{
	uint64_t s = load_acq(&q->st[i]);

	if (st_state(s) != ST_DEAD || !dead_claim(q, i, s, true))
		return 0;
	idx[(*k)++] = i;
	(*moved)++;
	if (*k < TQ_CHUNK)
		return 0;
	int rc = dead_send(q, idx, *k, true);
	*k = 0;
	return rc;
}

/* Kicks every dead task room allows, oldest first (TQ_ALL). */
static int kick_all_locked(tq_queue *q, int *moved)
{
	uint32_t dead = load_rlx(&q->h->dead_count);
	uint64_t budget = (dead > q->dead_cap ? dead - q->dead_cap : 0) + tq__room_settled(q);
	uint32_t idx[TQ_CHUNK], k = 0;
	int rc = 0;

	if (budget == 0)
		return 0;
	if (budget < dead) {
		/* Not all: the oldest `budget` of them. */
		struct dead_ref *refs = malloc(sizeof(*refs) * budget);
		if (!refs)
			return TQ_ENOMEM;
		size_t n = dead_oldest(q, refs, budget);
		for (size_t j = 0; j < n && !rc && kick_room(q); j++)
			rc = kick_into(q, refs[j].idx, idx, &k, moved);
		free(refs);
		return rc ? rc : dead_send(q, idx, k, true);
	}
	for (uint32_t i = 0; i < q->nslots && !rc; i++) {
		if (st_state(load_acq(&q->st[i])) != ST_DEAD) /* dead by its state byte, as everywhere */
			continue;
		if (!kick_room(q))
			break;
		rc = kick_into(q, i, idx, &k, moved);
	}
	return rc ? rc : dead_send(q, idx, k, true);
}

/* Applies kick (to ready) or purge (to free) to dead task id, or all. */
static int dead_move_locked(tq_queue *q, uint64_t id, bool kick)
{
	uint32_t idx[TQ_CHUNK], k = 0;
	int moved = 0, rc = 0;

	if (kick && id == TQ_ALL) {
		rc = kick_all_locked(q, &moved);
	} else {
		for (uint32_t i = 0; i < q->nslots && !rc; i++) {
			uint64_t s = load_acq(&q->st[i]);
			if (st_state(s) != ST_DEAD) /* dead by its state byte, as everywhere */
				continue;
			if (id != TQ_ALL && q->slots[i].id != id)
				continue;
			if (kick && !kick_room(q))
				return TQ_EAGAIN; /* one id, and no room for it */
			if (!dead_claim(q, i, s, kick))
				continue;
			idx[k++] = i;
			moved++;
			if (k == TQ_CHUNK || id != TQ_ALL) {
				rc = dead_send(q, idx, k, kick);
				k = 0;
				if (id != TQ_ALL)
					break;
			}
		}
		if (!rc)
			rc = dead_send(q, idx, k, kick);
	}
	if (moved)
		tq__event(q, kick ? TQ_EV_KICKED : TQ_EV_PURGED, (uint64_t)moved, id == TQ_ALL ? 0 : id, NULL);
	if (rc)
		return rc;
	return moved || id == TQ_ALL ? moved : TQ_ENOTFOUND;
}

/* Under the recovery lock, so that tq_dead_list never sees a dead slot
 * change under it, and the dead count moves with the states (a holder
 * killed in between leaves it to the next holder's recount). */
static int dead_move(tq_queue *q, uint64_t id, bool kick)
{
	int rc = tq__lock_recovery(q);

	if (rc)
		return rc;
	rc = dead_move_locked(q, id, kick);
	tq__unlock(&q->h->recovery_lock);
	return rc;
}

TQ_API int tq_dead_kick(tq_queue *q, uint64_t id)
{
	return tq__usable(q) ? tq__usable(q) : dead_move(q, id, true);
}

TQ_API int tq_dead_purge(tq_queue *q, uint64_t id)
{
	return tq__usable(q) ? tq__usable(q) : dead_move(q, id, false);
}
