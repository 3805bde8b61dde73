/*
 * ops.c - push, take, ack, fail, touch; dead letters; run state; stats.
 *
 * The life of a slot (see docs/design.md for the full state machine):
 *   FREE --pop free ring--> WRITING(p) --push ready ring--> READY
 *   READY --pop ready ring--> LEASED(p, gen)
 *   LEASED --ack: CAS--> RELEASING(p) --push free ring--> FREE
 *   LEASED --fail: CAS--> REQUEUE(p) --> DELAYED | DEAD
 *   DELAYED / expired LEASED --sweep: CAS--> REQUEUE(q) --push ready--> READY
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "internal.h"

static uint64_t deadline_after(uint64_t now, uint64_t timeout_ns)
{
	if (timeout_ns == TQ_WAIT_FOREVER || now + timeout_ns < now)
		return UINT64_MAX;
	return now + timeout_ns;
}

static bool stopping(const tq_queue *q)
{
	uint32_t rs = load_rlx(&q->h->run_state);
	return rs == TQ_DRAINING || rs == TQ_STOPPED;
}

static int validate_task(const tq_queue *q, const tq_task *t)
{
	switch (t->kind) {
	case TQ_KIND_INT:
		return 0;
	case TQ_KIND_STRING:
	case TQ_KIND_JSON:
		if (t->len && !t->data)
			return TQ_EINVAL;
		return t->len > q->max_payload ? TQ_E2BIG : 0;
	default:
		return TQ_EINVAL;
	}
}

static void write_task(tq_queue *q, uint32_t idx, tq_task *t, uint64_t id, uint64_t now)
{
	struct tq_slot *s = &q->slots[idx];

	s->id = id;
	s->kind = t->kind;
	store_rlx(&s->enq_ns, now);
	s->attempts = 0;
	s->last_err = 0;
	s->flags = 0;
	s->taken_ns = 0;
	store_rlx(&s->deadline_ns, UINT64_MAX);
	if (t->kind == TQ_KIND_INT) {
		s->value = t->value;
		s->len = 0;
	} else {
		s->value = 0;
		s->len = t->len;
		if (t->len)
			memcpy(tq__payload(q, idx), t->data, t->len);
	}
	t->id = id;
}

TQ_API int tq_push(tq_queue *q, tq_task *tasks, size_t n, uint64_t timeout_ns)
{
	uint32_t idx[TQ_CHUNK];
	size_t done = 0;
	int rc = 0;

	if (!q || !tasks || n == 0 || n > (size_t)INT32_MAX)
		return TQ_EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((rc = validate_task(q, &tasks[i])))
			return rc;
	uint64_t now = tq_now_ns();
	uint64_t until = deadline_after(now, timeout_ns);
	bool waited = false;
	tq__maybe_maintain(q, now);

	while (done < n) {
		if (stopping(q)) {
			rc = TQ_ESTOPPED;
			break;
		}
		uint32_t want = n - done < TQ_CHUNK ? (uint32_t)(n - done) : TQ_CHUNK;
		uint64_t pos = 0;
		int got = tq__ring_pop(q, &q->freer, idx, want, st_make(ST_WRITING, q->owner, 0), false,
				       &pos, C__COUNT);
		if (got < 0) {
			rc = got;
			break;
		}
		if (got == 0) {
			if (timeout_ns == 0) {
				rc = TQ_EAGAIN;
				break;
			}
			now = tq_now_ns();
			if (now >= until) {
				rc = TQ_ETIMEDOUT;
				break;
			}
			tq__maybe_maintain(q, now);
			tq__bell_wait(q, &q->h->free_ring.bell, &q->freer, until);
			waited = true;
			continue;
		}
		TQ_FAULT("push.claimed");
		if (waited) /* one clock read per call unless it had to wait */
			now = tq_now_ns();
		waited = false;
		for (int i = 0; i < got; i++)
			write_task(q, idx[i], &tasks[done + i], pos + i + 1, now);
		TQ_FAULT("push.written");
		if ((rc = tq__ring_push(q, &q->readyr, idx, (uint32_t)got, st_make(ST_READY, 0, 0), C_PUSHED))) {
			(void)tq__release_owned(q, idx, (uint32_t)got, C__COUNT); /* not accepted */
			break;
		}
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
		done += (size_t)got;
	}
	return done ? (int)done : rc;
}

TQ_API int tq_push_int(tq_queue *q, uint64_t value, uint64_t timeout_ns)
{
	tq_task t = {.kind = TQ_KIND_INT, .value = value};
	int rc = tq_push(q, &t, 1, timeout_ns);
	return rc < 0 ? rc : 0;
}

TQ_API int tq_push_data(tq_queue *q, uint16_t kind, const void *data, uint32_t len, uint64_t timeout_ns)
{
	if (kind != TQ_KIND_STRING && kind != TQ_KIND_JSON)
		return TQ_EINVAL;
	tq_task t = {.kind = kind, .data = data, .len = len};
	int rc = tq_push(q, &t, 1, timeout_ns);
	return rc < 0 ? rc : 0;
}


/* Waits while taking is not allowed: a bounded sleep, not a spin. */
static void paused_wait(uint64_t until)
{
	uint64_t now = tq_now_ns(), d = 10000000ull;

	if (until - now < d)
		d = until - now;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};
	nanosleep(&ts, NULL);
}

/* Fills t from a slot just leased. The lease deadline is published last:
 * until then it is UINT64_MAX and no sweep can take the slot back, so the
 * fields read here belong to this delivery. */
static void fill_taken(tq_queue *q, tq_task *t, uint32_t idx, uint64_t lease, uint64_t now, uint64_t end)
{
	struct tq_slot *s = &q->slots[idx];
	uint16_t a = (uint16_t)(s->attempts + 1);

	s->attempts = a;
	s->taken_ns = now;
	t->id = s->id;
	t->kind = s->kind;
	t->attempt = a;
	t->enqueued_ns = load_rlx(&s->enq_ns);
	if (s->kind == TQ_KIND_INT) {
		t->value = s->value;
		t->data = NULL;
		t->len = 0;
	} else {
		t->value = 0;
		t->data = tq__payload(q, idx);
		t->len = s->len <= q->max_payload ? s->len : q->max_payload;
	}
	t->priv[0] = idx | ((uint64_t)q->tag << 32);
	t->priv[1] = lease;
	store_rel(&s->deadline_ns, end);
}

TQ_API int tq_take(tq_queue *q, tq_task *out, size_t max, uint64_t timeout_ns)
{
	uint32_t idx[TQ_CHUNK];
	uint32_t want = max < TQ_CHUNK ? (uint32_t)max : TQ_CHUNK;
	uint64_t pos = 0;
	int got;

	if (!q || !out || max == 0)
		return TQ_EINVAL;
	uint64_t lease = st_make(ST_LEASED, q->owner, 0);
	uint64_t now = tq_now_ns();
	uint64_t until = deadline_after(now, timeout_ns);
	bool waited = false;
	tq__maybe_maintain(q, now);
	for (;;) {
		if (stopping(q))
			return TQ_ESTOPPED;
		bool allowed = load_rlx(&q->h->run_state) != TQ_PAUSED;
		if (allowed) {
			got = tq__ring_pop(q, &q->readyr, idx, want, lease, true, &pos, C_TAKEN);
			if (got)
				break;
		}
		if (timeout_ns == 0)
			return TQ_EAGAIN;
		now = tq_now_ns();
		if (now >= until)
			return TQ_ETIMEDOUT;
		tq__maybe_maintain(q, now);
		if (allowed)
			tq__bell_wait(q, &q->h->ready_ring.bell, &q->readyr, until);
		else
			paused_wait(until);
		waited = true;
	}
	if (got < 0)
		return got;
	TQ_FAULT("take.popped");
	if (waited) /* one clock read per call unless it had to wait */
		now = tq_now_ns();
	uint64_t end = now + q->lease_ns, firsts = 0, first_enq = 0;
	for (int i = 0; i < got; i++)
		__builtin_prefetch(&q->slots[idx[i]], 1);
	for (int i = 0; i < got; i++) {
		fill_taken(q, &out[i], idx[i], lease | ((pos + (uint64_t)i) << 32), now, end);
		if (out[i].attempt == 1 && firsts++ == 0)
			first_enq = out[i].enqueued_ns;
	}
	/* One sample per batch, weighted by its first deliveries: the wait of
	 * a batch's tasks differs by the time it took to push them. */
	if (firsts)
		tq__hist_add(q, H_WAIT, now > first_enq ? now - first_enq : 0, firsts);
	/* More left and someone asleep: pass the wake-up on. */
	if (tq__ring_count(&q->readyr))
		tq__bell_ring_if_waiting(&q->h->ready_ring.bell);
	return got;
}

/* A task handed back by the caller: does it name a lease of this handle? */
static int check_lease(const tq_queue *q, const tq_task *t)
{
	if ((t->priv[0] >> 32) != q->tag || (uint32_t)t->priv[0] >= q->cap ||
	    st_state(t->priv[1]) != ST_LEASED ||
	    st_owner(t->priv[1]) != q->owner)
		return TQ_EINVAL;
	return 0;
}

bool tq__lease_held(const tq_queue *q, const tq_task *t)
{
	return check_lease(q, t) == 0 && load_acq(&q->st[(uint32_t)t->priv[0]]) == t->priv[1];
}

static int check_leases(const tq_queue *q, const tq_task *tasks, size_t n)
{
	if (!q || !tasks || n == 0)
		return TQ_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (check_lease(q, &tasks[i]))
			return TQ_EINVAL;
	return 0;
}

/*
 * Processing time (take to ack) for the histogram. Small acks read the
 * clock on one call in 8 and count the others at this handle's last
 * measured time, so that the count stays exact and acking one task at a
 * time does not pay a clock read per task.
 */
static void record_processing(tq_queue *q, uint64_t taken_ns, uint64_t k)
{
	uint64_t ns;

	if (k >= 16 || (add_rlx(&q->ack_calls, 1) & 7) == 0) {
		uint64_t now = tq_now_ns();
		ns = now > taken_ns ? now - taken_ns : 0;
		store_rlx(&q->last_proc_ns, ns);
	} else {
		ns = load_rlx(&q->last_proc_ns);
	}
	tq__hist_add(q, H_PROC, ns, k);
}

/*
 * Ack without a compare-and-swap per task, yet claiming every slot.
 *
 * A lease can change hands three ways while its owner lives: this handle
 * acks or fails it (any of its threads), or the lease-expiry sweep takes it.
 * The handle's own changes are serialized by its process-local `own_mu`, so
 * among them a plain load and a plain store of RELEASING claim a slot: a
 * task given twice in one batch, or acked by two threads, finds RELEASING
 * the second time and counts as lost. The sweep is another process: the
 * acker raises its `acking` count and then reads `sweeping`; the sweeper
 * raises `sweeping` and then reads the owner's `acking` before each steal.
 * Both are sequentially consistent, so at least one sees the other (Dekker):
 * either the sweeper leaves this owner's leases for its next pass, or the
 * acker sees the sweep, drops its count and claims each slot by CAS.
 */
static uint32_t ack_claim(tq_queue *q, const tq_task *t, uint32_t n, uint32_t *idx, uint64_t *lost)
{
	uint64_t releasing = st_make(ST_ACKED, q->owner, 0);
	uint32_t k = 0;

	atomic_fetch_add(&q->me->acking, 1);
	bool fast = atomic_load(&q->h->sweeping) == 0;
	if (!fast)
		atomic_fetch_sub(&q->me->acking, 1);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t ix = (uint32_t)t[i].priv[0];
		bool mine; /* ACKED(p): recovery completes the ack, and counts it */
		if (fast) {
			mine = load_rlx(&q->st[ix]) == t[i].priv[1];
			if (mine)
				store_rlx(&q->st[ix], releasing);
		} else {
			mine = cas64(&q->st[ix], t[i].priv[1], releasing);
		}
		if (mine)
			idx[k++] = ix;
		else
			(*lost)++;
		if (i == n / 2)
			TQ_FAULT("ack.mid");
	}
	if (fast)
		atomic_fetch_sub(&q->me->acking, 1); /* claimed: the sweep skips RELEASING */
	return k;
}

TQ_API int tq_ack(tq_queue *q, const tq_task *tasks, size_t n)
{
	uint64_t lost = 0;
	return tq__ack(q, tasks, n, &lost);
}

int tq__ack(tq_queue *q, const tq_task *tasks, size_t n, uint64_t *lost_out)
{
	uint32_t idx[TQ_CHUNK];
	uint64_t lost = 0;
	int rc = check_leases(q, tasks, n);

	if (rc)
		return rc;
	for (size_t done = 0; done < n && rc == 0;) {
		uint32_t chunk = n - done < TQ_CHUNK ? (uint32_t)(n - done) : TQ_CHUNK;
		pthread_mutex_lock(&q->own_mu);
		uint32_t k = ack_claim(q, tasks + done, chunk, idx, &lost);
		pthread_mutex_unlock(&q->own_mu);
		if (k)
			record_processing(q, q->slots[idx[0]].taken_ns, k);
		rc = tq__release_owned(q, idx, k, C_ACKED);
		done += chunk;
	}
	tq__count(q, C_LOST, lost);
	*lost_out = lost;
	return rc ? rc : lost ? TQ_ELOST : 0;
}

static uint64_t next_rand(tq_queue *q)
{
	/* xorshift64*, per handle; jitter only, no security needed. */
	uint64_t x = load_rlx(&q->rng);
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	store_rlx(&q->rng, x);
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t backoff_ns(tq_queue *q, unsigned attempt)
{
	uint64_t d = q->backoff_base_ns, cap = q->backoff_max_ns;

	for (unsigned i = 1; i < attempt && d < cap; i++)
		d = d > cap / 2 ? cap : d * 2;
	if (d > cap)
		d = cap;
	return d / 2 + (d / 2 ? next_rand(q) % (d / 2 + 1) : 0);
}

TQ_API int tq_fail(tq_queue *q, const tq_task *tasks, size_t n, int err, const char *msg)
{
	uint64_t lost = 0;
	bool need_drop = false;
	int rc = check_leases(q, tasks, n);

	if (rc)
		return rc;
	uint64_t mine = st_make(ST_REQUEUE, q->owner, 0), now = tq_now_ns();
	pthread_mutex_lock(&q->own_mu); /* against this handle's acks: see ack_claim */
	for (size_t i = 0; i < n; i++) {
		const tq_task *t = &tasks[i];
		uint32_t ix = (uint32_t)t->priv[0];
		/* Journal: recovery counts this failure exactly once if the
		 * process dies between claiming the slot and counting it. */
		uint64_t before = load_rlx(&q->me->c[C_FAILED]);
		store_rlx(&q->me->fail_before, before);
		store_rel(&q->me->fail_slot, (uint64_t)ix + 1);
		if (!cas64(&q->st[ix], t->priv[1], mine)) {
			store_rel(&q->me->fail_slot, 0);
			lost++;
			continue;
		}
		if (i == 0)
			TQ_FAULT("fail.claimed");
		store_rel(&q->me->fail_slot, ((uint64_t)ix + 1) | FAIL_CLAIMED);
		store_rlx(&q->me->c[C_FAILED], before + 1);
		struct tq_slot *s = &q->slots[ix];
		if (s->attempts >= q->max_attempts) {
			tq__make_dead(q, ix, err, msg, now);
			need_drop = true;
		} else {
			struct tq_aux *a = &q->aux[ix];
			size_t len = msg ? strnlen(msg, sizeof(a->msg) - 1) : 0;
			s->last_err = err;
			if (len)
				memcpy(a->msg, msg, len);
			a->msg[len] = '\0';
			store_rel(&s->deadline_ns, now + backoff_ns(q, s->attempts));
			store_rel(&q->st[ix], st_make(ST_DELAYED, 0, 0));
			tq__count(q, C_RETRIED, 1);
		}
		store_rel(&q->me->fail_slot, 0);
		if (i == n / 2)
			TQ_FAULT("fail.mid");
	}
	pthread_mutex_unlock(&q->own_mu);
	tq__count(q, C_LOST, lost);
	if (need_drop && load_rlx(&q->h->dead_count) > q->dead_cap)
		(void)tq__drop_oldest_dead(q);
	return lost ? TQ_ELOST : 0;
}

TQ_API int tq_touch(tq_queue *q, const tq_task *tasks, size_t n, uint64_t extend_ns)
{
	uint64_t lost = 0;
	int rc = check_leases(q, tasks, n);

	if (rc)
		return rc;
	uint64_t end = deadline_after(tq_now_ns(), extend_ns ? extend_ns : q->lease_ns);
	if (end == UINT64_MAX)
		end = UINT64_MAX - 1;
	for (size_t i = 0; i < n; i++) {
		const tq_task *t = &tasks[i];
		uint32_t ix = (uint32_t)t->priv[0];
		/* Read the deadline before checking the lease, and move it only if
		 * it is unchanged: a lease lost and given to another delivery in
		 * between has another deadline, which this never overwrites. */
		uint64_t d = load_acq(&q->slots[ix].deadline_ns);
		if (load_acq(&q->st[ix]) != t->priv[1] || !cas64(&q->slots[ix].deadline_ns, d, end) ||
		    load_acq(&q->st[ix]) != t->priv[1])
			lost++;
	}
	tq__count(q, C_LOST, lost);
	return lost ? TQ_ELOST : 0;
}

/* ----------------------------------------------------------- dead letters */

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
	if (!q || (!out && max))
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
	return q ? dead_move(q, id, true) : TQ_EINVAL;
}

TQ_API int tq_dead_purge(tq_queue *q, uint64_t id)
{
	return q ? dead_move(q, id, false) : TQ_EINVAL;
}

/* ------------------------------------------------------- state and stats */

TQ_API int tq_set_run_state(tq_queue *q, int state)
{
	if (!q || state < TQ_RUNNING || state > TQ_PAUSED)
		return TQ_EINVAL;
	atomic_store(&q->h->run_state, (uint32_t)state);
	tq__event(q, TQ_EV_STATE, (uint64_t)state, 0, NULL);
	/* Wake sleepers so that they see the change now. */
	tq__bell_ring(&q->h->ready_ring.bell);
	tq__bell_ring(&q->h->free_ring.bell);
	return 0;
}

TQ_API int tq_run_state(const tq_queue *q)
{
	if (!q)
		return TQ_EINVAL;
	uint32_t s = load_acq(&q->h->run_state);
	return s <= TQ_PAUSED ? (int)s : TQ_EBADQUEUE;
}

static void read_counters(const struct tq_proc *p, tq_counters *c)
{
	c->pushed = load_rlx(&p->c[C_PUSHED]);
	c->taken = load_rlx(&p->c[C_TAKEN]);
	c->acked = load_rlx(&p->c[C_ACKED]);
	c->failed = load_rlx(&p->c[C_FAILED]);
	c->retried = load_rlx(&p->c[C_RETRIED]);
	c->dead = load_rlx(&p->c[C_DEAD]);
	c->expired = load_rlx(&p->c[C_EXPIRED]);
	c->recovered = load_rlx(&p->c[C_RECOVERED]);
	c->dead_dropped = load_rlx(&p->c[C_DEAD_DROPPED]);
	c->lost = load_rlx(&p->c[C_LOST]);
}


TQ_API int tq_counters_self(const tq_queue *q, tq_counters *out)
{
	if (!q || !out)
		return TQ_EINVAL;
	read_counters(q->me, out);
	return 0;
}

/* Sums the metrics (counters and histograms) of every process, alive or gone. */
static void sum_metrics(tq_queue *q, uint64_t *m, uint32_t *procs)
{
	memcpy(m, q->h->retired, sizeof(uint64_t) * TQ_METRICS);
	*procs = 0;
	for (uint32_t r = 0; r < TQ_MAX_PROCS; r++) {
		const struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE)
			continue;
		for (int i = 0; i < TQ_METRICS; i++)
			m[i] += load_rlx(&p->c[i]);
		(*procs)++;
	}
}

static void latency_from(const uint64_t *h, tq_latency *out)
{
	uint64_t total = 0, cum = 0;
	const double ps[3] = {0.50, 0.90, 0.99};
	uint64_t *dst[3] = {&out->p50_ns, &out->p90_ns, &out->p99_ns};
	int next = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned b = 0; b < TQ_HBUCKETS; b++)
		total += h[b];
	out->count = total;
	out->mean_ns = total ? h[TQ_HBUCKETS] / total : 0;
	for (unsigned b = 0; b < TQ_HBUCKETS && total; b++) {
		cum += h[b];
		while (next < 3 && (double)cum >= ps[next] * (double)total)
			*dst[next++] = hist_upper_ns(b);
		if (h[b])
			out->max_ns = hist_upper_ns(b);
	}
}

/* Rates over the last w seconds from the once-a-second samples. */
static void rates_from(const struct tq_hdr *h, double pushed[3], double done[3])
{
	static const uint64_t windows[3] = {1, 10, 60};
	uint32_t n = load_acq(&h->sample_next);

	for (int w = 0; w < 3; w++)
		pushed[w] = done[w] = 0;
	if (n < 2)
		return;
	const struct tq_sample *last = &h->samples[(n - 1) % TQ_SAMPLES];
	uint32_t have = n < TQ_SAMPLES ? n : TQ_SAMPLES - 8; /* leave room for a writer */
	for (int w = 0; w < 3; w++) {
		const struct tq_sample *old = NULL;
		for (uint32_t back = 1; back < have; back++) {
			old = &h->samples[(n - 1 - back) % TQ_SAMPLES];
			if (last->t_ns - old->t_ns >= windows[w] * 1000000000ull - 100000000ull)
				break;
		}
		if (!old || last->t_ns <= old->t_ns)
			continue;
		double dt = (double)(last->t_ns - old->t_ns) / 1e9;
		pushed[w] = (double)(last->pushed - old->pushed) / dt;
		done[w] = (double)(last->acked - old->acked) / dt;
	}
}

TQ_API int tq_stats_get(tq_queue *q, tq_stats *out)
{
	uint32_t by_state[ST__COUNT] = {0};
	uint64_t oldest = 0, m[TQ_METRICS];

	if (!q || !out)
		return TQ_EINVAL;
	tq__maybe_maintain(q, tq_now_ns());
	memset(out, 0, sizeof(*out));
	_Static_assert(sizeof(tq_counters) == C__COUNT * sizeof(uint64_t), "counter order");
	sum_metrics(q, m, &out->procs);
	memcpy(&out->total, m, sizeof(out->total));
	latency_from(m + C__COUNT + H_WAIT * TQ_HSLOTS, &out->wait);
	latency_from(m + C__COUNT + H_PROC * TQ_HSLOTS, &out->processing);
	rates_from(q->h, out->pushed_per_s, out->done_per_s);
	for (uint32_t i = 0; i < q->cap; i++) {
		unsigned s = st_state(load_acq(&q->st[i]));
		if (s >= ST__COUNT)
			continue;
		by_state[s]++;
		if (s == ST_READY) {
			uint64_t enq = load_rlx(&q->slots[i].enq_ns);
			if (oldest == 0 || enq < oldest)
				oldest = enq;
		}
	}
	out->capacity = q->cap;
	out->ready = by_state[ST_READY];
	out->leased = by_state[ST_LEASED];
	out->delayed = by_state[ST_DELAYED];
	out->dead = by_state[ST_DEAD];
	out->free_slots = by_state[ST_FREE];
	out->recoveries = load_rlx(&q->h->recoveries);
	out->run_state = (int)load_rlx(&q->h->run_state);
	out->oldest_ready_ns = oldest;
	return 0;
}

TQ_API int tq_histograms(tq_queue *q, tq_histogram *wait, tq_histogram *processing)
{
	uint64_t m[TQ_METRICS];
	uint32_t procs;

	if (!q)
		return TQ_EINVAL;
	_Static_assert(TQ_HIST_BUCKETS == TQ_HBUCKETS, "histogram size");
	sum_metrics(q, m, &procs);
	tq_histogram *out[2] = {wait, processing};
	for (int h = 0; h < 2; h++) {
		if (!out[h])
			continue;
		for (unsigned b = 0; b < TQ_HBUCKETS; b++) {
			out[h]->count[b] = m[C__COUNT + h * TQ_HSLOTS + b];
			out[h]->upper_ns[b] = hist_upper_ns(b);
		}
		out[h]->sum_ns = m[C__COUNT + h * TQ_HSLOTS + TQ_HBUCKETS];
	}
	return 0;
}

TQ_API int tq_procs(tq_queue *q, tq_proc_info *out, size_t max)
{
	size_t k = 0;

	if (!q || (!out && max))
		return TQ_EINVAL;
	uint32_t *leased = calloc(TQ_MAX_PROCS + 1, sizeof(*leased));
	if (!leased)
		return TQ_ENOMEM;
	for (uint32_t i = 0; i < q->cap; i++) {
		uint64_t s = load_acq(&q->st[i]);
		if (st_state(s) == ST_LEASED && st_owner(s) <= TQ_MAX_PROCS)
			leased[st_owner(s)]++;
	}
	for (uint32_t r = 0; r < TQ_MAX_PROCS && k < max; r++) {
		const struct tq_proc *p = &q->procs[r];
		if (load_acq(&p->state) != PROC_ACTIVE)
			continue;
		tq_proc_info *o = &out[k++];
		memset(o, 0, sizeof(*o));
		o->slot = r;
		o->pid = p->pid;
		o->attached_ns = p->attached_ns;
		o->last_seen_ns = load_rlx(&p->last_seen_ns);
		o->leased = leased[r + 1];
		o->waiting = load_rlx(&p->waiting);
		o->done_per_s = (double)load_rlx(&p->rate_milli) / 1000.0;
		read_counters(p, &o->counters);
	}
	free(leased);
	return (int)k;
}
