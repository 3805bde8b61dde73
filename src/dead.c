/*
 * dead.c - the dead-letter area: burying a task, listing, kicking and
 * purging dead tasks, dropping the oldest when the area is full
 * (docs/design.md, section 10).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

/* ------------------------------------------------------------- bury */

/* Moves a slot this process owns into the dead-letter area. */
void tq__make_dead(tq_queue *q, uint32_t idx, int err, const char *msg, uint64_t now)
{
	struct tq_slot *s = &q->slots[idx];
	struct tq_aux *a = &q->aux[idx];
	size_t len = msg ? strnlen(msg, sizeof(a->msg) - 1) : 0;

	s->last_err = err;
	if (len)
		memcpy(a->msg, msg, len);
	a->msg[len] = '\0';
	s->died_ns = now;
	store_rel(&s->deadline_ns, UINT64_MAX);
	/* The event first: once DEAD, the slot may be kicked or purged at once. */
	tq__event(q, TQ_EV_DEAD, s->id, s->attempts, a->msg);
	add_rlx(&q->h->dead_count, 1);
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
	struct dead_ref *refs = malloc(sizeof(*refs) * (q->dead_cap + 64u));
	size_t n = 0, room = q->dead_cap + 64u;
	if (!refs)
		return TQ_ENOMEM;
	/* Dead slots leave DEAD only under the recovery lock (kick, purge,
	 * drop): holding it, their contents cannot change while read. */
	int rc = tq__lock_recovery(q);
	if (rc) {
		free(refs);
		return rc;
	}
	for (uint32_t i = 0; i < q->cap && n < room; i++) {
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
		memcpy(d->last_msg, q->aux[refs[j].idx].msg, sizeof(d->last_msg) - 1);
		d->last_msg[sizeof(d->last_msg) - 1] = '\0';
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

	for (uint32_t i = 0; i < q->cap; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) != ST_DEAD) /* dead by its state byte, as everywhere */
			continue;
		if (id != TQ_ALL && q->slots[i].id != id)
			continue;
		if (!cas64(&q->st[i], s, mine))
			continue;
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

/* Under the recovery lock, so that tq_dead_list and dropping the oldest
 * never see a dead slot change under them. */
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

/* ------------------------------------------------------- drop oldest */

/* Frees dead slot i, seen as word s, as dropped to make room. */
static bool drop_dead(tq_queue *q, uint32_t i, uint64_t s)
{
	uint64_t id = q->slots[i].id;

	if (!cas64(&q->st[i], s, st_make(ST_RELEASING, q->owner, 0)))
		return false;
	if (load_rlx(&q->h->dead_count))
		sub_rlx(&q->h->dead_count, 1);
	tq__count(q, C_DEAD_DROPPED, 1);
	tq__event(q, TQ_EV_DEAD_DROPPED, id, 0, NULL);
	(void)tq__release_owned(q, &i, 1, C__COUNT);
	return true;
}

struct dead_age {
	uint64_t died_ns, id;
	uint32_t idx;
	uint64_t word;
};

static int cmp_age(const void *a, const void *b)
{
	const struct dead_age *x = a, *y = b;
	if (x->died_ns != y->died_ns)
		return x->died_ns < y->died_ns ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Frees the oldest dead tasks while more than dead_capacity are kept.
 * Caller holds the recovery lock. Bounded whatever the segment holds: one
 * pass finds the count and the oldest; one excess task (the usual case) is
 * dropped from that pass; more are sorted by age and dropped in one more
 * pass. A slot is dead by its state byte, and is claimed from exactly the
 * word that was read, so a word with stray bits cannot make a pass repeat.
 */
void tq__drop_oldest_dead_locked(tq_queue *q)
{
	uint32_t limit = q->dead_cap, best = UINT32_MAX, count = 0;
	uint64_t best_t = UINT64_MAX, best_id = UINT64_MAX, best_w = 0;

	for (uint32_t i = 0; i < q->cap; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) != ST_DEAD)
			continue;
		count++;
		const struct tq_slot *sl = &q->slots[i];
		if (sl->died_ns < best_t || (sl->died_ns == best_t && sl->id < best_id)) {
			best = i;
			best_t = sl->died_ns;
			best_id = sl->id;
			best_w = s;
		}
	}
	store_rlx(&q->h->dead_count, count);
	if (count <= limit || best == UINT32_MAX)
		return;
	if (count - limit == 1) {
		(void)drop_dead(q, best, best_w);
		return;
	}
	struct dead_age *all = malloc(sizeof(*all) * count);
	uint32_t n = 0;
	for (uint32_t i = 0; i < q->cap && n < count; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) != ST_DEAD)
			continue;
		if (!all) { /* no memory to sort: drop in slot order, still bounded */
			if (drop_dead(q, i, s) && ++n == count - limit)
				return;
			continue;
		}
		all[n++] = (struct dead_age){q->slots[i].died_ns, q->slots[i].id, i, s};
	}
	if (!all)
		return;
	qsort(all, n, sizeof(*all), cmp_age);
	for (uint32_t k = 0; k < n && k < count - limit; k++)
		(void)drop_dead(q, all[k].idx, all[k].word);
	free(all);
}
