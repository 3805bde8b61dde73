/* SPDX-License-Identifier: MIT */
/*
 * queue.c - creating, validating, attaching to and detaching from a queue.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h"

#define SHM_PREFIX "/taskq."
#ifdef TQ_FUZZ
#define INIT_WAIT_NS 1000000ull /* the fuzzer's inputs are never mid-creation */
#else
#define INIT_WAIT_NS 1000000000ull
#endif

TQ_API void tq_config_init(tq_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = 10000;
	cfg->max_payload = 4096;
	cfg->mode = 0600;
	cfg->max_attempts = 5;
	cfg->dead_capacity = 0;
	cfg->delay_capacity = 0;
	cfg->lease_ns = 30000000000ull;
	cfg->backoff_base_ns = 100000000ull;
	cfg->backoff_max_ns = 60000000000ull;
}

static int validate_name(const char *name, char *shm, size_t shm_size)
{
	size_t len;

	if (!name)
		return TQ_EINVAL;
	len = strlen(name);
	if (len == 0 || len > TQ_NAME_MAX || name[0] == '.')
		return TQ_ENAME;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		if (!ok)
			return TQ_ENAME;
	}
	if (strlen(SHM_PREFIX) + len + 1 > shm_size)
		return TQ_ENAME;
	strcpy(shm, SHM_PREFIX);
	strcat(shm, name);
	return 0;
}

static int validate_config(const tq_config *c)
{
	if (c->capacity < 1 || c->capacity > TQ_MAX_CAPACITY)
		return TQ_EINVAL;
	if (c->max_payload > TQ_MAX_PAYLOAD)
		return TQ_EINVAL;
	if (c->mode & ~0777u)
		return TQ_EINVAL;
	if (c->max_attempts < 1 || c->max_attempts > TQ_MAX_ATTEMPTS)
		return TQ_EINVAL;
	if (c->dead_capacity < 1 || c->dead_capacity > c->capacity)
		return TQ_EINVAL;
	if (c->delay_capacity < 1 || c->delay_capacity > c->capacity)
		return TQ_EINVAL;
	if (c->lease_ns < TQ_LEASE_MIN_NS || c->lease_ns > TQ_TIME_MAX_NS)
		return TQ_EINVAL;
	if (c->backoff_max_ns < c->backoff_base_ns || c->backoff_max_ns > TQ_TIME_MAX_NS)
		return TQ_EINVAL;
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* The payload units a queue may have: enough for one largest payload, at
 * most a largest payload for every slot (design.md, 19). */
static uint64_t units_min(uint32_t max_payload)
{
	return align_up(max_payload, 64) / 64;
}

static uint64_t units_max(uint32_t capacity, uint32_t max_payload, uint32_t dead_capacity, uint32_t delay_capacity)
{
	return ((uint64_t)capacity + dead_capacity + delay_capacity) * units_min(max_payload);
}

/* The default: a largest payload for every task of capacity while that is
 * at most 64 MiB (the default queue: 41 MB), else max(64 MiB, 256 bytes a
 * task of capacity); never above units_max. */
static uint64_t units_default(uint32_t capacity, uint32_t max_payload, uint32_t dead_capacity,
			      uint32_t delay_capacity)
{
	uint64_t most = units_max(capacity, max_payload, dead_capacity, delay_capacity);
	uint64_t full = (uint64_t)capacity * units_min(max_payload);
	uint64_t floor = (64ull << 20) / 64, share = (uint64_t)capacity * 256 / 64;
	uint64_t want = full <= floor ? full : share > floor ? share : floor;

	if (want < units_min(max_payload))
		want = units_min(max_payload);
	return want > most ? most : want;
}

static uint32_t ring_size_for(uint32_t cap)
{
	uint32_t r = 1;
	while (r < cap)
		r <<= 1;
	return r;
}

/* Cells per lane, a power of two: the capacity (at least 64) up to
 * LANE_FULL_MAX, so that one producer's lane can hold the whole queue;
 * beyond, an eighth of it (at least LANE_FULL_MAX): a producer further
 * ahead than that pushes through slots (design.md, 2 and 17), and a queue
 * of a million tasks keeps 64 MiB of lane cells and marks, not 512 MiB. */
#define LANE_FULL_MAX 65536u
static uint32_t lane_size_for(uint32_t capacity)
{
	uint32_t want = capacity < 64 ? 64 : capacity;
	if (want > LANE_FULL_MAX)
		want = capacity / 8 > LANE_FULL_MAX ? capacity / 8 : LANE_FULL_MAX;
	return ring_size_for(want);
}

/* A payload lane's byte ring, a power of two: the largest not above 32
 * bytes a task of capacity (one producer pushes into one lane at a time),
 * at least 4 KiB, and room for two of the largest records (design.md, 2). */
static uint64_t lane_bytes_for(uint32_t capacity, uint32_t max_payload)
{
	uint64_t share = (uint64_t)capacity * 32;
	uint64_t two = 2 * (align_up(max_payload, 8) + sizeof(struct tq_brec));
	uint64_t r = 4096;

	while (r * 2 <= share)
		r <<= 1;
	while (r < two)
		r <<= 1;
	return r;
}

/* Fills the geometry of a queue with this configuration into h. */
static void compute_layout(struct tq_hdr *h, uint32_t capacity, uint32_t max_payload, uint32_t dead_capacity,
			   uint32_t delay_capacity, uint64_t payload_units)
{
	uint64_t off = align_up(sizeof(struct tq_hdr), 4096);
	uint32_t slots = capacity + dead_capacity + delay_capacity; /* validated: each <= capacity, no overflow */

	h->capacity = capacity;
	h->slots = slots;
	h->max_payload = max_payload;
	h->payload_stride = (uint32_t)align_up(max_payload, 64);
	h->ring_size = ring_size_for(slots);
	h->max_procs = TQ_MAX_PROCS;
	h->hdr_size = sizeof(struct tq_hdr);
	h->off_procs = off;
	off += (uint64_t)TQ_MAX_PROCS * sizeof(struct tq_proc);
	h->off_state = off = align_up(off, 4096);
	off += (uint64_t)slots * sizeof(uint64_t);
	h->off_slots = off = align_up(off, 4096);
	off += (uint64_t)slots * sizeof(struct tq_slot);
	h->off_aux = off = align_up(off, 4096);
	off += (uint64_t)slots * sizeof(struct tq_aux);
	h->off_free_cells = off = align_up(off, 4096);
	off += (uint64_t)h->ring_size * sizeof(uint32_t);
	h->off_ready_cells = off = align_up(off, 4096);
	off += (uint64_t)h->ring_size * sizeof(uint32_t);
	h->payload_units = payload_units;
	h->off_payload = off = align_up(off, 4096);
	off += payload_units * 64;
	h->off_owners = off = align_up(off, 4096);
	off += payload_units * sizeof(uint64_t);
	h->nlanes = TQ_LANES;
	h->lane_size = lane_size_for(capacity);
	h->off_cells = off = align_up(off, 4096);
	off += (uint64_t)(TQ_LANES - TQ_INT_LANES) * h->lane_size * sizeof(struct tq_cell);
	h->off_ivals = off = align_up(off, 4096);
	off += (uint64_t)TQ_INT_LANES * h->lane_size * sizeof(uint64_t);
	h->off_ibatches = off = align_up(off, 4096);
	off += (uint64_t)TQ_INT_LANES * h->lane_size * sizeof(struct tq_ibatch);
	h->off_marks = off = align_up(off, 4096);
	off += (uint64_t)TQ_LANES * h->lane_size * sizeof(uint64_t);
	h->lane_bytes = lane_bytes_for(h->lane_size < capacity ? h->lane_size : capacity, max_payload);
	h->off_bytes = off = align_up(off, 4096);
	off += (uint64_t)(TQ_LANES - TQ_INT_LANES) * h->lane_bytes;
	h->off_msgs = off = align_up(off, 4096);
	off += (uint64_t)dead_capacity * sizeof(struct tq_msg);
	h->off_due_bits = off = align_up(off, 4096);
	off += align_up(slots, 512) / 8; /* whole words, whole lines */
	h->total_size = align_up(off, 4096);
}

/* Fresh ring: the free ring starts full of every slot, the ready ring empty. */
static void init_ring_cells(uint32_t *cells, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		cells[i] = i;
}

static int init_segment(uint8_t *base, const tq_config *c)
{
	struct tq_hdr *h = (struct tq_hdr *)base;

	compute_layout(h, c->capacity, c->max_payload, c->dead_capacity, c->delay_capacity,
		       align_up(c->payload_bytes, 64) / 64);
	h->version = TQ_LAYOUT_VERSION;
	h->max_attempts = c->max_attempts;
	h->dead_capacity = c->dead_capacity;
	h->delay_capacity = c->delay_capacity;
	h->mode = c->mode;
	h->lease_ns = c->lease_ns;
	h->backoff_base_ns = c->backoff_base_ns;
	h->backoff_max_ns = c->backoff_max_ns;
	h->created_ns = tq_now_ns();
	h->tag = (uint32_t)(h->created_ns ^ (h->created_ns >> 32) ^ ((uint64_t)getpid() << 16)) | 1u;
	tq__lock_init(&h->recovery_lock);
	tq__lock_init(&h->event_lock);
	tq__lock_init(&h->free_ring.pop.lock);
	tq__lock_init(&h->free_ring.push.lock);
	tq__lock_init(&h->ready_ring.pop.lock);
	tq__lock_init(&h->ready_ring.push.lock);
	tq_a64 *st = (tq_a64 *)(base + h->off_state);
	struct tq_slot *slots = (struct tq_slot *)(base + h->off_slots);
	for (uint32_t i = 0; i < h->slots; i++) {
		store_rlx(&st[i], st_make(ST_FREE, 0, 0));
		store_rlx(&slots[i].deadline_ns, UINT64_MAX);
	}
	init_ring_cells((uint32_t *)(base + h->off_free_cells), h->slots);
	h->free_ring.pop.j.cnt_id = h->free_ring.push.j.cnt_id = C__COUNT;
	h->ready_ring.pop.j.cnt_id = h->ready_ring.push.j.cnt_id = C__COUNT;
	store_rlx(&h->free_ring.push.pos, h->slots);
	store_rlx(&h->next_due_ns, UINT64_MAX);
	/* Publish: openers check the magic last-written word before anything. */
	__atomic_store_n(&h->magic, TQ_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int errno_to_tq(int e)
{
	switch (e) {
	case ENOENT: return TQ_ENOENT;
	case EEXIST: return TQ_EEXIST;
	case EACCES: case EPERM: return TQ_EPERM;
	case ENOMEM: case ENOSPC: case EFBIG: return TQ_ENOMEM;
	case ENAMETOOLONG: return TQ_ENAME;
	case EINVAL: return TQ_EINVAL;
	default: return TQ_ESYS;
	}
}

/* Checks a mapped header against everything an honest creator writes. */
static int validate_header(const struct tq_hdr *h, uint64_t file_size)
{
	struct tq_hdr want;

	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != TQ_MAGIC)
		return TQ_EBADQUEUE;
	if (h->version != TQ_LAYOUT_VERSION)
		return TQ_EVERSION;
	if (h->hdr_size != sizeof(struct tq_hdr))
		return TQ_EBADQUEUE;
	if (h->capacity < 1 || h->capacity > TQ_MAX_CAPACITY || h->max_payload > TQ_MAX_PAYLOAD)
		return TQ_EBADQUEUE;
	if (h->max_attempts < 1 || h->max_attempts > TQ_MAX_ATTEMPTS || h->dead_capacity < 1 ||
	    h->dead_capacity > h->capacity || h->delay_capacity < 1 || h->delay_capacity > h->capacity ||
	    h->lease_ns < TQ_LEASE_MIN_NS ||
	    h->lease_ns > TQ_TIME_MAX_NS || h->backoff_max_ns < h->backoff_base_ns ||
	    h->backoff_max_ns > TQ_TIME_MAX_NS)
		return TQ_EBADQUEUE;
	if (h->payload_units < units_min(h->max_payload) ||
	    h->payload_units > units_max(h->capacity, h->max_payload, h->dead_capacity, h->delay_capacity))
		return TQ_EBADQUEUE;
	memset(&want, 0, sizeof(want));
	compute_layout(&want, h->capacity, h->max_payload, h->dead_capacity, h->delay_capacity, h->payload_units);
	if (want.payload_stride != h->payload_stride || want.ring_size != h->ring_size ||
	    want.max_procs != h->max_procs || want.off_procs != h->off_procs ||
	    want.off_state != h->off_state || want.off_slots != h->off_slots ||
	    want.off_aux != h->off_aux || want.off_free_cells != h->off_free_cells ||
	    want.off_ready_cells != h->off_ready_cells || want.off_payload != h->off_payload ||
	    want.nlanes != h->nlanes || want.lane_size != h->lane_size ||
	    want.off_cells != h->off_cells || want.off_marks != h->off_marks ||
	    want.off_ivals != h->off_ivals || want.off_ibatches != h->off_ibatches ||
	    want.lane_bytes != h->lane_bytes || want.off_bytes != h->off_bytes ||
	    want.slots != h->slots || want.off_msgs != h->off_msgs || want.off_due_bits != h->off_due_bits ||
	    want.off_owners != h->off_owners || want.total_size != h->total_size)
		return TQ_EBADQUEUE;
	if (file_size != h->total_size)
		return TQ_EBADQUEUE;
	return 0;
}

/* ------------------------------------------------------------------ locks */

/* Takes the recovery lock, repairing a fold that a dead holder left half done. */
int tq__lock_recovery(tq_queue *q)
{
	bool died;
	int rc = tq__lock(q, &q->h->recovery_lock, &died);

	if (rc == 0 && died) {
		tq__fold_repair(q);
		tq__lanes_repair_move(q);
		/* A holder killed between a slot's move to or from DEAD (or
		 * DELAYED) and the count: the counts are exact again before
		 * anyone uses them under the lock (design.md, 10, "The dead
		 * count", "The delay area"). */
		(void)tq__slot_counts_recount(q);
	}
	return rc;
}

/* The same without waiting for a live holder: TQ_EBUSY if there is one. */
int tq__trylock_recovery(tq_queue *q)
{
	bool died;
	int rc = tq__trylock(q, &q->h->recovery_lock, &died);

	if (rc == 0 && died) {
		tq__fold_repair(q);
		tq__lanes_repair_move(q);
		/* As in tq__lock_recovery. */
		(void)tq__slot_counts_recount(q);
	}
	return rc;
}

/*
 * Liveness tokens: handle `rec` holds an open-file-description write lock on
 * byte `rec` of the segment for as long as it is attached. The kernel drops
 * it when the description is closed, including by process death, so a lock
 * we can take proves its previous holder gone (pids can be reused; these
 * locks cannot be inherited by an unrelated process).
 */
int tq__ofd_trylock(int fd, uint32_t rec)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = rec, .l_len = 1};

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return (errno == EAGAIN || errno == EACCES) ? TQ_EBUSY : TQ_ESYS;
}

void tq__ofd_unlock(int fd, uint32_t rec)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = rec, .l_len = 1};

	(void)fcntl(fd, F_OFD_SETLK, &fl);
}

/* Does another open file description hold record rec's liveness lock? A
 * query, so that it never takes or drops a lock this handle holds (F_OFD_
 * locks of one description never conflict with each other: a lock this
 * handle holds on rec reads as free). An error reads as held. */
bool tq__ofd_held(int fd, uint32_t rec)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = rec, .l_len = 1};

	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return true;
	return fl.l_type != F_UNLCK;
}

/* ------------------------------------------------------------ fork safety
 * A child forked without exec shares each handle's open file description,
 * and with it the parent's liveness lock, which would then outlive the
 * parent and keep the locks it held when it died from being taken over.
 * In the child, every handle's mapping and descriptor (each holds the
 * description, and so the lock) are dropped and the handle marked unusable
 * (TQ_EFORKED): the child opens the queue again. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static tq_queue *open_list;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* A gate around each system call that creates or drops a handle's
 * descriptor or mapping together with the store that records it: fork()
 * waits for the ones in flight and holds new ones back, so a child never
 * inherits a descriptor or mapping its handle does not record. (Atomics,
 * not a rwlock: glibc's rwlock cannot be released in the child, whose
 * thread has another id.) Dekker: each side raises its count, then reads
 * the other's, both sequentially consistent. */
static atomic_uint forks_pending, handle_ops;

static void gate_enter(void)
{
	for (;;) {
		while (atomic_load(&forks_pending))
			sched_yield();
		atomic_fetch_add(&handle_ops, 1);
		if (!atomic_load(&forks_pending))
			return;
		atomic_fetch_sub(&handle_ops, 1);
	}
}

static void gate_leave(void)
{
	atomic_fetch_sub(&handle_ops, 1);
}

static void atfork_prepare(void)
{
	atomic_fetch_add(&forks_pending, 1);
	while (atomic_load(&handle_ops))
		sched_yield();
	pthread_mutex_lock(&open_mu);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&open_mu);
	atomic_fetch_sub(&forks_pending, 1);
}

static void atfork_child(void)
{
	for (tq_queue *q = open_list; q; q = q->next_open) {
		q->forked = true;
		/* The mapping holds the open file description too, and with it
		 * the liveness lock: both go. */
		if (q->base) {
			munmap(q->base, q->size);
			q->base = NULL;
		}
		if (q->fd >= 0) {
			close(q->fd);
			q->fd = -1;
		}
	}
	open_list = NULL;
	/* The only thread now; it took open_mu in atfork_prepare. */
	atomic_store(&handle_ops, 0);
	atomic_store(&forks_pending, 0);
	pthread_mutex_unlock(&open_mu);
}

static void register_atfork(void)
{
	(void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* A new handle, listed from the start (fd -1, no mapping). */
static tq_queue *handle_new(void)
{
	tq_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->fd = -1;
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&open_mu);
	q->next_open = open_list;
	open_list = q;
	pthread_mutex_unlock(&open_mu);
	return q;
}

static int handle_shm_open(tq_queue *q, const char *shm, int flags, mode_t mode)
{
	gate_enter();
	q->fd = shm_open(shm, flags, mode);
	int e = errno;
	gate_leave();
	errno = e;
	return q->fd;
}

static int handle_map(tq_queue *q)
{
	gate_enter();
	void *p = mmap(NULL, q->size, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
	q->base = p == MAP_FAILED ? NULL : p;
	gate_leave();
	return q->base ? 0 : TQ_ENOMEM;
}

static void list_remove(tq_queue *q)
{
	pthread_mutex_lock(&open_mu);
	for (tq_queue **p = &open_list; *p; p = &(*p)->next_open)
		if (*p == q) {
			*p = q->next_open;
			break;
		}
	pthread_mutex_unlock(&open_mu);
}

/* ---------------------------------------------------------------- attach */

/* Points the handle into the segment. The geometry is recomputed from the
 * validated (capacity, max_payload) and kept in the handle: a segment
 * changed after validation cannot move any pointer or bound. */
static void bind_handle(tq_queue *q, const struct tq_hdr *snap)
{
	struct tq_hdr *h = q->h, g;
	uint32_t capacity = snap->capacity, max_payload = snap->max_payload;

	memset(&g, 0, sizeof(g));
	compute_layout(&g, capacity, max_payload, snap->dead_capacity, snap->delay_capacity, snap->payload_units);
	q->procs = (struct tq_proc *)(q->base + g.off_procs);
	q->st = (tq_a64 *)(q->base + g.off_state);
	q->slots = (struct tq_slot *)(q->base + g.off_slots);
	q->aux = (struct tq_aux *)(q->base + g.off_aux);
	q->msgs = (struct tq_msg *)(q->base + g.off_msgs);
	q->due_bits = (tq_a64 *)(q->base + g.off_due_bits);
	q->nslots = g.slots;
	q->units = q->base + g.off_payload;
	q->owners = (tq_a64 *)(q->base + g.off_owners);
	q->nunits = g.payload_units;
	q->cells = (struct tq_cell *)(q->base + g.off_cells);
	q->ivals = (tq_a64 *)(q->base + g.off_ivals);
	q->ibatches = (struct tq_ibatch *)(q->base + g.off_ibatches);
	q->marks = (tq_a64 *)(q->base + g.off_marks);
	q->lane_mask = g.lane_size - 1;
	q->bytes = q->base + g.off_bytes;
	q->bytes_mask = g.lane_bytes - 1;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	q->max_spinners = ncpu >= 2 ? (uint32_t)ncpu : 1;
	q->reuse_every = 1024;
	while (q->reuse_every > 1 && (uint64_t)q->reuse_every * 4 > capacity)
		q->reuse_every /= 2;
	q->cap = capacity;
	q->reuse_every_bytes = q->reuse_every;
	while (q->reuse_every_bytes > 1 &&
	       (uint64_t)q->reuse_every_bytes * 4 * (align_up(max_payload, 8) + sizeof(struct tq_brec)) > g.lane_bytes)
		q->reuse_every_bytes /= 2;
	q->stride = g.payload_stride;
	q->max_payload = max_payload;
	q->max_attempts = snap->max_attempts;
	q->dead_cap = snap->dead_capacity;
	q->delay_cap = snap->delay_capacity;
	q->mode = snap->mode;
	q->lease_ns = snap->lease_ns;
	q->backoff_base_ns = snap->backoff_base_ns;
	q->backoff_max_ns = snap->backoff_max_ns;
	q->tag = snap->tag;
	q->freer = (struct tq_ringd){&h->free_ring, (uint32_t *)(q->base + g.off_free_cells), g.ring_size - 1};
	q->readyr = (struct tq_ringd){&h->ready_ring, (uint32_t *)(q->base + g.off_ready_cells), g.ring_size - 1};
	store_rlx(&q->rng, tq_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)q);
	/* A nonce that tells this handle's lock words from those of any other
	 * holder of the same record (lock.c): random, never 0. */
	uint32_t nonce = 0;
	if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) != (ssize_t)sizeof(nonce))
		nonce = (uint32_t)(load_rlx(&q->rng) * 0x9E3779B97F4A7C15ull >> 32);
	q->nonce = nonce ? nonce : 1;
	pthread_mutex_init(&q->fail_mu, NULL);
}

/* Claims a process record: the first free one whose liveness lock we can
 * take. Records of dead processes are left to recovery (run right after
 * attaching), unless nothing else is left, when one is recovered here by
 * its new holder. */
static int register_self(tq_queue *q)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t r = 0; r < TQ_MAX_PROCS; r++) {
			struct tq_proc *p = &q->procs[r];
			if (pass == 0 && load_acq(&p->state) != PROC_FREE)
				continue;
			int rc = tq__ofd_trylock(q->fd, r);
			if (rc == TQ_EBUSY)
				continue;
			if (rc)
				return rc;
			uint32_t hi = load_acq(&q->h->procs_hi);
			while (hi < r + 1 && !atomic_compare_exchange_weak(&q->h->procs_hi, &hi, r + 1))
				;
			q->me = p;
			q->rec = r;
			store_rlx(&q->push_lane, r % TQ_INT_LANES); /* producers start on lanes of their own */
			q->owner = r + 1;
			q->lane_prefix = ((uint64_t)q->tag << 32) | TQ__LANE_TASK | ((uint64_t)q->owner << 14);
			q->lockid = (uint64_t)q->owner | ((uint64_t)q->nonce << TQ_LOCK_NONCE_SHIFT);
			/* Before this handle takes any lock: a word naming this
			 * record under another nonce is then a gone holder's. */
			atomic_store(&p->nonce, q->nonce);
			if (load_acq(&p->state) != PROC_FREE) {
				rc = tq__lock_recovery(q);
				if (rc == 0) {
					rc = tq__recover_locked(q, r, true);
					tq__unlock(&q->h->recovery_lock);
				}
				if (rc) {
					tq__ofd_unlock(q->fd, r);
					q->me = NULL;
					return rc;
				}
			}
			p->pid = (int32_t)getpid();
			p->attached_ns = tq_now_ns();
			store_rlx(&p->last_seen_ns, p->attached_ns);
			store_rlx(&p->waiting, 0);
			store_rlx(&p->rate_ns, 0);
			store_rlx(&p->fail_slot, 0);
			store_rlx(&p->dpush_slot, 0);
			store_rlx(&p->rate_milli, 0);
			for (int c = 0; c < TQ_METRICS; c++)
				store_rlx(&p->c[c], 0);
			/* The lease map starts as the entries still not FREE (none,
			 * unless a recovery above could not free one). */
			uint64_t map = 0;
			for (uint32_t e = 0; e < TQ_LEASES; e++)
				if (LS_STATE(load_acq(&p->leases[e].state)) != LS_FREE)
					map |= 1ull << e;
			store_rlx(&p->lease_map, map);
			store_rel(&p->state, PROC_ACTIVE);
			return 0;
		}
	}
	return TQ_EPROCS;
}

/* An observer's identity for lock words (tq_open_observer): the liveness
 * lock of the first free record it can take, never made active. Its state
 * stays FREE, so nobody lists, counts or recovers it, and no worker claims
 * it (register_self skips a record whose liveness lock is held). Locks it
 * takes name it as any holder does, so a waiter sees it alive while it is
 * open and gone once it closes or dies. It takes only the event lock,
 * whose takeover needs no repair. */
static int reserve_observer(tq_queue *q)
{
	for (uint32_t r = 0; r < TQ_MAX_PROCS; r++) {
		if (load_acq(&q->procs[r].state) != PROC_FREE)
			continue;
		int rc = tq__ofd_trylock(q->fd, r);
		if (rc == TQ_EBUSY)
			continue;
		if (rc)
			return rc;
		q->rec = r;
		q->owner = r + 1;
		q->lockid = (uint64_t)q->owner | ((uint64_t)q->nonce << TQ_LOCK_NONCE_SHIFT);
		/* Before any lock: a word naming r under another nonce is a gone
		 * holder's. (A worker takes a record's liveness lock before it
		 * touches the record, so none can be activating r now.) */
		atomic_store(&q->procs[r].nonce, q->nonce);
		return 0;
	}
	return TQ_EPROCS;
}

static void unmap_handle(tq_queue *q)
{
	gate_enter();
	if (q->base)
		munmap(q->base, q->size);
	q->base = NULL;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	gate_leave();
	list_remove(q);
	if (q->cap && !q->forked) /* bound: fail_mu initialised (and not a copy) */
		pthread_mutex_destroy(&q->fail_mu);
	free(q);
}

/* Maps the whole segment of an open fd after validating its header. */
static int map_validated(tq_queue *q, struct tq_hdr *snap)
{
	struct stat sb;
	uint64_t deadline = tq_now_ns() + INIT_WAIT_NS;

	for (;;) {
		if (fstat(q->fd, &sb) != 0)
			return errno_to_tq(errno);
		if ((uint64_t)sb.st_size >= sizeof(struct tq_hdr))
			break;
		if (sb.st_size != 0 || tq_now_ns() > deadline)
			return sb.st_size == 0 ? TQ_EINIT : TQ_EBADQUEUE;
		usleep(1000); /* a creator between shm_open and ftruncate */
	}
	/* The header is read with pread, not through a mapping: reading a
	 * hole in a file returns zeros instead of faulting a page in. */
	int rc;
	for (;;) {
		if (pread(q->fd, snap, sizeof(*snap), 0) != (ssize_t)sizeof(*snap))
			return TQ_EBADQUEUE;
		rc = validate_header(snap, (uint64_t)sb.st_size);
		if (rc != TQ_EBADQUEUE || snap->magic != 0)
			break;
		/* All-zero magic: a creator still initialising, or one that died. */
		if (tq_now_ns() > deadline)
			return TQ_EINIT;
		usleep(1000);
	}
	if (rc)
		return rc;
	/* Every page must exist before anything touches them: a sparse file
	 * (copied, or made by hand) on a full /dev/shm would otherwise fault
	 * with SIGBUS on first touch. Filling the holes here fails cleanly
	 * instead; a file with no holes costs one fstat. */
	if ((uint64_t)sb.st_blocks * 512u < (uint64_t)sb.st_size) {
		/* Never try to fill more than /dev/shm has free: a hostile
		 * header can declare terabytes, and filling would take memory
		 * from everyone until it failed. */
		struct statvfs vfs;
		uint64_t holes = (uint64_t)sb.st_size - (uint64_t)sb.st_blocks * 512u;
		if (fstatvfs(q->fd, &vfs) != 0 || (uint64_t)vfs.f_bavail * vfs.f_frsize < holes)
			return TQ_ENOMEM;
		int e = posix_fallocate(q->fd, 0, sb.st_size);
		if (e)
			return e == ENOSPC || e == ENOMEM || e == EFBIG ? TQ_ENOMEM : TQ_EBADQUEUE;
	}
	q->size = (size_t)sb.st_size;
	if (handle_map(q))
		return TQ_ENOMEM;
	q->h = (struct tq_hdr *)q->base;
	/* Re-check through the final mapping (the file could have changed), on
	 * a snapshot, and bind from the snapshot's numbers. */
	memcpy(snap, (const void *)q->base, sizeof(*snap));
	return validate_header(snap, (uint64_t)sb.st_size);
}

static int attach(tq_queue *q)
{
	int rc = register_self(q);

	if (rc)
		return rc;
	tq_fault_from_env();
	/* Recover the dead now; a live holder of the recovery lock is doing
	 * that already, so opening never waits for one. */
	(void)tq__maintain_nowait(q);
	return 0;
}

TQ_API int tq_create(const char *name, const tq_config *cfg, tq_queue **out)
{
	char shm[sizeof(SHM_PREFIX) + TQ_NAME_MAX + 1];
	struct tq_hdr geo;
	tq_config defaults;
	tq_queue *q;
	int rc;

	if (!out)
		return TQ_EINVAL;
	*out = NULL;
	if ((rc = validate_name(name, shm, sizeof(shm))))
		return rc;
	if (!cfg) {
		tq_config_init(&defaults);
		cfg = &defaults;
	}
	struct tq_config c = *cfg;
	if (c.dead_capacity == 0)
		c.dead_capacity = c.capacity / 10 ? c.capacity / 10 : 1;
	if (c.delay_capacity == 0)
		c.delay_capacity = c.capacity / 20 ? c.capacity / 20 : 1;
	cfg = &c;
	if ((rc = validate_config(cfg)))
		return rc;
	if (c.payload_bytes == 0)
		c.payload_bytes = 64 * units_default(c.capacity, c.max_payload, c.dead_capacity, c.delay_capacity);
	if (c.payload_bytes > UINT64_MAX - 63 || align_up(c.payload_bytes, 64) / 64 < units_min(c.max_payload) ||
	    align_up(c.payload_bytes, 64) / 64 > units_max(c.capacity, c.max_payload, c.dead_capacity, c.delay_capacity))
		return TQ_EINVAL;
	memset(&geo, 0, sizeof(geo));
	compute_layout(&geo, cfg->capacity, cfg->max_payload, cfg->dead_capacity, cfg->delay_capacity,
		       align_up(c.payload_bytes, 64) / 64);
	struct statvfs vfs;
	if (statvfs("/dev/shm", &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < geo.total_size)
		return TQ_ENOMEM;

	q = handle_new();
	if (!q)
		return TQ_ENOMEM;
	if (handle_shm_open(q, shm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)cfg->mode) < 0) {
		rc = errno_to_tq(errno);
		goto err_free;
	}
	(void)fchmod(q->fd, (mode_t)cfg->mode); /* undo the umask */
	q->size = geo.total_size;
	/* Reserve every page now: a full /dev/shm fails here, never later. */
	rc = posix_fallocate(q->fd, 0, (off_t)q->size);
	if (rc) {
		rc = errno_to_tq(rc);
		goto err_unlink;
	}
	if ((rc = handle_map(q)))
		goto err_unlink;
	q->h = (struct tq_hdr *)q->base;
	if ((rc = init_segment(q->base, cfg)))
		goto err_unlink;
	bind_handle(q, q->h); /* written by this process just now */
	if ((rc = attach(q)))
		goto err_unlink;
	tq__event(q, TQ_EV_CREATED, cfg->capacity, cfg->max_payload, NULL);
	*out = q;
	return 0;

err_unlink:
	shm_unlink(shm);
err_free:
	unmap_handle(q);
	return rc;
}

static int open_queue(const char *name, bool observer, tq_queue **out)
{
	char shm[sizeof(SHM_PREFIX) + TQ_NAME_MAX + 1];
	tq_queue *q;
	int rc;

	if (!out)
		return TQ_EINVAL;
	*out = NULL;
	if ((rc = validate_name(name, shm, sizeof(shm))))
		return rc;
	q = handle_new();
	if (!q)
		return TQ_ENOMEM;
	if (handle_shm_open(q, shm, O_RDWR | O_CLOEXEC, 0) < 0) {
		rc = errno_to_tq(errno);
		goto err;
	}
	struct tq_hdr *snap = malloc(sizeof(*snap));
	if (!snap) {
		rc = TQ_ENOMEM;
		goto err;
	}
	rc = map_validated(q, snap);
	if (rc == 0)
		bind_handle(q, snap);
	free(snap);
	if (rc)
		goto err;
	q->observer = observer;
	if ((rc = observer ? reserve_observer(q) : attach(q)))
		goto err;
	*out = q;
	return 0;
err:
	unmap_handle(q);
	return rc;
}

TQ_API int tq_open(const char *name, tq_queue **out)
{
	return open_queue(name, false, out);
}

TQ_API int tq_open_observer(const char *name, tq_queue **out)
{
	return open_queue(name, true, out);
}

TQ_API int tq_close(tq_queue *q)
{
	if (!q)
		return 0;
	if (q->me && !q->forked) {
		(void)tq_ack_flush(q); /* acks kept for later, as acks (their leases still held) */
		tq__hist_flush(q); /* before recovery folds its counters */
		if (tq__lock_recovery(q) == 0) {
			/* Every slot it owns: leases back to ready, the rest freed. */
			(void)tq__recover_locked(q, q->rec, false);
			tq__unlock(&q->h->recovery_lock);
		}
	}
	unmap_handle(q); /* closing the fd drops the liveness lock */
	return 0;
}

TQ_API int tq_destroy(const char *name)
{
	char shm[sizeof(SHM_PREFIX) + TQ_NAME_MAX + 1];
	int rc = validate_name(name, shm, sizeof(shm));

	if (rc)
		return rc;
	if (shm_unlink(shm) != 0)
		return errno_to_tq(errno);
	return 0;
}

TQ_API int tq_config_get(const tq_queue *q, tq_config *out)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out)
		return TQ_EINVAL;
	memset(out, 0, sizeof(*out));
	out->capacity = q->cap;
	out->max_payload = q->max_payload;
	out->mode = (mode_t)(q->mode & 0777u);
	out->max_attempts = q->max_attempts;
	out->dead_capacity = q->dead_cap;
	out->delay_capacity = q->delay_cap;
	out->payload_bytes = q->nunits * 64;
	out->lease_ns = q->lease_ns;
	out->backoff_base_ns = q->backoff_base_ns;
	out->backoff_max_ns = q->backoff_max_ns;
	return 0;
}

TQ_API int tq_instance(const tq_queue *q, uint64_t *out)
{
	if (tq__usable_ro(q))
		return tq__usable_ro(q);
	if (!out)
		return TQ_EINVAL;
	/* Fixed at creation: its time and its tag (which mixes in the
	 * creator's pid). Read from the segment, so every handle agrees. */
	*out = q->h->created_ns ^ ((uint64_t)q->tag << 40);
	return 0;
}
