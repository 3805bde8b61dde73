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
}

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
 * id written), if one is free; the caller holds the recovery lock. */
static void msg_store(tq_queue *q, uint32_t idx, const char *msg, size_t len)
{
	uint32_t n = q->dead_cap, start = q->h->msg_hint % n;

	for (uint32_t k = 0; k < n; k++) {
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
	memcpy(out, a->msg, sizeof(a->msg));
	out[sizeof(a->msg) - 1] = '\0';
}

/* ------------------------------------------------------------- bury */

uint32_t tq__dead_recount(tq_queue *q)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < q->nslots; i++)
		n += st_state(load_acq(&q->st[i])) == ST_DEAD;
	store_rlx(&q->h->dead_count, n);
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
	if (locked && len >= TQ_AUX_MSG)
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

struct dead_ref {
	uint64_t died_ns, id;
	uint32_t idx;
};

static int cmp_dead(const void *a, const void *b)
{
	const struct dead_ref *x = a, *y = b;
	if (x->died_ns != y->died_ns)
		return x->died_ns < y->died_ns ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

TQ_API int tq_dead_list(tq_queue *q, tq_dead_info *out, size_t max, void *data, size_t data_stride)
{
	if (tq__usable(q))
		return tq__usable(q);
	if (!out && max)
		return TQ_EINVAL;
	struct dead_ref *refs = malloc(sizeof(*refs) * q->nslots);
	size_t n = 0, room = q->nslots;
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
	for (uint32_t i = 0; i < q->nslots && n < room; i++) {
		if (st_state(load_acq(&q->st[i])) != ST_DEAD)
			continue;
		refs[n++] = (struct dead_ref){q->slots[i].died_ns, q->slots[i].id, i};
	}
	qsort(refs, n, sizeof(*refs), cmp_dead);
	size_t k = n < max ? n : max;
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
		if (data && data_stride && d->kind != TQ_KIND_INT)
			memcpy((uint8_t *)data + j * data_stride, tq__payload(q, refs[j].idx),
			       d->len < data_stride ? d->len : data_stride);
	}
	tq__unlock(&q->h->recovery_lock);
	free(refs);
	return (int)k;
}

/* Applies kick (to ready) or purge (to free) to dead task id, or all. */
static int dead_move_locked(tq_queue *q, uint64_t id, bool kick)
{
	uint32_t idx[TQ_CHUNK], k = 0;
	int moved = 0, rc = 0;
	uint64_t mine = st_make(kick ? ST_REQUEUE : ST_RELEASING, q->owner, 0);

	for (uint32_t i = 0; i < q->nslots; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) != ST_DEAD) /* dead by its state byte, as everywhere */
			continue;
		if (id != TQ_ALL && q->slots[i].id != id)
			continue;
		if (!cas64(&q->st[i], s, mine))
			continue;
		TQ_FAULT("kick.claimed");
		if (kick)
			q->slots[i].attempts = 0;
		if (load_rlx(&q->h->dead_count))
			sub_rlx(&q->h->dead_count, 1);
		idx[k++] = i;
		moved++;
		if (k == TQ_CHUNK || id != TQ_ALL) {
			rc = kick ? tq__requeue_owned(q, idx, k) : tq__release_owned(q, idx, k, C__COUNT);
			k = 0;
			if (rc || id != TQ_ALL)
				break;
		}
	}
	if (k && !rc)
		rc = kick ? tq__requeue_owned(q, idx, k) : tq__release_owned(q, idx, k, C__COUNT);
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
