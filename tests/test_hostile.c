/* SPDX-License-Identifier: MIT */
/*
 * test_hostile.c - segments with forged bytes: slot states, lock words,
 * holes on a full /dev/shm, a live holder that never lets go. Each case
 * runs the library (or the taskq command) in a child process with a
 * deadline, so that a hang or a crash fails the test instead of stalling
 * the suite, and then checks what the queue still holds.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "fault.h"  /* the test build: a process frozen at a named point */
#include "layout.h" /* where fields are: the tests forge them */
#include "proc.h"
#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#define TASKQ TQ_BIN_DIR "/taskq"

static char qname[TQT_NAME_LEN];

static void fini(void)
{
	tq_destroy(qname);
}

static tq_queue *make_queue(const char *test, uint32_t cap, uint32_t payload)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(qname, test);
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = cap;
	c.max_payload = payload;
	int rc = tq_create(qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	return q;
}

/* The segment of qname, mapped shared (writes go to the queue). */
static uint8_t *map_segment(size_t *size)
{
	uint8_t *p = tqt_segment_map(qname, true, size);
	cr_assert_not_null(p, "map %s: %s", qname, strerror(errno));
	return p;
}

static void put64(uint8_t *base, size_t off, uint64_t v)
{
	memcpy(base + off, &v, sizeof v);
}

/* Child: opens qname and uses every kind of call; exits 0 if every call
 * gave a result a caller can act on, else the step that failed. */
static int exercise(void *arg)
{
	unsigned pushes = (unsigned)(uintptr_t)arg;
	tq_queue *q = NULL;
	tq_stats st;
	tq_task t[8];
	tq_dead_info dl[8];
	tq_event_info ev[8];
	tq_proc_info pr[8];

	if (tq_open(qname, &q) != 0)
		return 10;
	if (tq_stats_get(q, &st) != 0)
		return 11;
	if (tq_dead_list(q, dl, 8, NULL, 0) < 0)
		return 12;
	if (tq_events(q, 0, ev, 8) < 0 || tq_procs(q, pr, 8) < 0)
		return 13;
	for (unsigned i = 0; i < pushes; i++)
		if (tq_push_int(q, 1000 + i, 0) != 0)
			return 14;
	unsigned got = 0;
	while (got < pushes) {
		int k = tq_take(q, t, 8, 0);
		if (k <= 0)
			return 15;
		if (tq_ack(q, t, (size_t)k) != 0)
			return 16;
		got += (unsigned)k;
	}
	if (tq_recover(q) < 0)
		return 17;
	tq_close(q);
	return 0;
}

/* Runs exercise in a child with a deadline; returns its exit code. */
static int exercise_in_child(unsigned pushes)
{
	pid_t pid = tqt_fork(exercise, (void *)(uintptr_t)pushes);
	return tqt_wait(pid, 20000);
}

/* The reported case: the first two slot states overwritten with a DEAD
 * state byte and a generation in the high half. Every opener used to spin
 * forever trying to drop one of them as an excess dead letter. The bytes
 * contradict the free ring, so only boundedness is checked here. */
Test(hostile, forged_dead_states_bounded, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("deadforged", 16, 64);
	tq_close(q);
	size_t size;
	uint8_t *seg = map_segment(&size);
	const struct tq_hdr *h = (const struct tq_hdr *)seg;
	put64(seg, h->off_state, 0x100000007ull);
	put64(seg, h->off_state + 8, 0x100000007ull);
	munmap(seg, size);

	int rc = exercise_in_child(4);
	cr_expect(rc >= 0 && rc < 128, "a library user on the damaged queue: exit %d (-1 = hung)", rc);
	const char *cmds[][4] = {{"info", qname}, {"stats", qname}, {"ls"}, {"dead", "list", qname}};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		char *argv[6] = {TASKQ};
		for (int k = 0; k < 4 && cmds[i][k]; k++)
			argv[k + 1] = (char *)cmds[i][k];
		struct out o;
		memset(&o, 0, sizeof o);
		run(argv, NULL, &o);
		cr_expect(o.status >= 0 && o.status < 128, "%s: status %d (-1 = hung)\n%s", o.cmd,
			  o.status, o.err);
		out_free(&o);
	}
}

/* Real dead letters whose state words carry stray bits, a dead count
 * forged far from what is dead, and message references forged to name
 * each other's entries: the count is recounted, both are kept and listed
 * with no other task's message, nothing else moves. */
Test(hostile, dead_letters_with_stray_bits, .timeout = 60, .fini = fini)
{
	tq_config c;
	tq_queue *q = NULL;
	tq_task t[2];

	tqt_name(qname, "deadbits");
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = 16;
	c.max_payload = 64;
	c.max_attempts = 1;
	c.dead_capacity = 2;
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	cr_assert_eq(tq_push_int(q, 1, 0), 0);
	cr_assert_eq(tq_push_int(q, 2, 0), 0);
	cr_assert_eq(tq_take(q, t, 2, 0), 2);
	cr_assert_eq(tq_fail(q, t, 2, -1, "boom"), 0);
	tq_close(q);

	size_t size;
	uint8_t *seg = map_segment(&size);
	struct tq_hdr *h = (struct tq_hdr *)seg;
	unsigned forged = 0;
	for (uint32_t i = 0; i < 16; i++) {
		uint64_t w;
		memcpy(&w, seg + h->off_state + 8 * i, 8);
		if ((w & 0xff) == ST_DEAD) {
			put64(seg, h->off_state + 8 * i, w | (0x1234ull << 32) | (5ull << 8));
			forged++;
		}
	}
	cr_assert_eq(forged, 2);
	h->dead_count = 1000000;
	struct tq_aux *aux = (struct tq_aux *)(seg + h->off_aux);
	for (uint32_t i = 0; i < 18; i++)
		if (aux[i].msg[0]) {
			aux[i].mentry = 1 + (i & 1); /* an entry naming no one, or the other */
			aux[i].mseq = 7;
		}
	munmap(seg, size);

	int rc = exercise_in_child(4);
	cr_assert_eq(rc, 0, "a library user on the damaged queue: exit %d (-1 = hung)", rc);

	cr_assert_eq(tq_open(qname, &q), 0);
	tq_stats st;
	cr_assert_eq(tq_stats_get(q, &st), 0);
	cr_expect_eq(st.dead, 2, "dead letters kept: %u", st.dead);
	cr_expect_eq(st.free_slots, st.slots - 2, "free %u of %u", st.free_slots, st.slots);
	cr_expect_eq(st.total.dead_overflow, 0);
	tq_dead_info dl[4];
	cr_expect_eq(tq_dead_list(q, dl, 4, NULL, 0), 2);
	for (int i = 0; i < 2; i++)
		cr_expect_str_eq(dl[i].last_msg, "boom", "dead letter %d shows '%s'", i, dl[i].last_msg);
	cr_expect_eq(tq_dead_kick(q, TQ_ALL), 2, "both can be kicked");
	cr_expect_eq(tq_take(q, t, 2, 0), 2);
	cr_expect_eq(tq_ack(q, t, 2), 0);
	tq_close(q);
}

/* Every lock word in the segment, forged in every way that used to abort
 * (glibc's robust-mutex assertion) or hang an opener. Each time, a child
 * must open the queue and push, take and ack through it; nothing is lost. */
Test(hostile, forged_lock_words, .timeout = 120, .fini = fini)
{
	tq_queue *q = make_queue("locks", 64, 64);
	tq_close(q);
	static const size_t locks[] = {
		offsetof(struct tq_hdr, recovery_lock),   offsetof(struct tq_hdr, event_lock),
		offsetof(struct tq_hdr, free_ring.pop),   offsetof(struct tq_hdr, free_ring.push),
		offsetof(struct tq_hdr, ready_ring.pop),  offsetof(struct tq_hdr, ready_ring.push),
	};
	static const uint64_t words[] = {
		0x3ffff0ull,                 /* the reported one: no such record */
		1ull | (0xdeadbeefull << 16), /* record 0 (the opener's own) under another nonce */
		700ull | (12345ull << 16),   /* a record no process holds */
		~0ull,                       /* bits no holder ever writes */
		1ull << 60,
	};
	unsigned rounds = 0;
	for (size_t l = 0; l < sizeof locks / sizeof locks[0]; l++) {
		for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
			size_t size;
			uint8_t *seg = map_segment(&size);
			put64(seg, locks[l], words[w]);
			put64(seg, locks[l] + 8, 176); /* seq and waiters: anything */
			munmap(seg, size);
			int rc = exercise_in_child(5);
			cr_assert_eq(rc, 0, "lock at %zu forged to %#llx: child exit %d (-1 = hung)",
				     locks[l], (unsigned long long)words[w], rc);
			rounds++;
		}
	}
	tq_queue *q2 = NULL;
	cr_assert_eq(tq_open(qname, &q2), 0);
	tq_stats st;
	cr_assert_eq(tq_stats_get(q2, &st), 0);
	cr_expect_eq(st.total.pushed, 5ull * rounds, "pushed %llu", (unsigned long long)st.total.pushed);
	cr_expect_eq(st.total.acked, 5ull * rounds, "acked %llu", (unsigned long long)st.total.acked);
	cr_expect_eq(st.free_slots - st.dead_capacity - st.delay_capacity, 64);
	tq_close(q2);
}

/* A lock held by a live process that never lets go: every other caller
 * gets TQ_EBUSY after the documented bound, and the queue works again once
 * that process is gone. */
static int hold_open(void *arg)
{
	int *go = arg;
	tq_queue *q = NULL;
	if (tq_open(qname, &q) != 0)
		return 1;
	__atomic_store_n(go, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

/* Forks a process that attaches to qname and stays; returns its pid, with
 * its record index and the lock nonce it published. */
static pid_t start_holder(tq_queue *q, uint32_t *rec, uint32_t *nonce)
{
	int *go = tqt_shared(sizeof(int));
	pid_t holder = tqt_fork(hold_open, go);
	while (!__atomic_load_n(go, __ATOMIC_ACQUIRE))
		tqt_sleep_ms(1);
	tq_proc_info pr[8];
	int n = tq_procs(q, pr, 8);
	*rec = UINT32_MAX;
	for (int i = 0; i < n; i++)
		if (pr[i].pid == holder)
			*rec = pr[i].slot;
	cr_assert_neq(*rec, UINT32_MAX, "holder's record not listed");
	size_t size;
	uint8_t *seg = map_segment(&size);
	const struct tq_hdr *h = (const struct tq_hdr *)seg;
	memcpy(nonce, seg + h->off_procs + (size_t)*rec * sizeof(struct tq_proc) + offsetof(struct tq_proc, nonce),
	       sizeof *nonce);
	munmap(seg, size);
	return holder;
}

Test(hostile, live_holder_bounded_then_recovered, .timeout = 90, .fini = fini)
{
	tq_queue *q = make_queue("liveholder", 16, 0);
	uint32_t rec, nonce;
	pid_t holder = start_holder(q, &rec, &nonce);

	/* Name the holder (alive: it holds its record's liveness lock, and the
	 * word carries the nonce it published) as the holder of the event
	 * lock, as a process stopped inside it would. */
	size_t size;
	uint8_t *seg = map_segment(&size);
	put64(seg, offsetof(struct tq_hdr, event_lock), (uint64_t)(rec + 1) | ((uint64_t)nonce << 16));
	tq_event_info ev[4];
	int rc = tq_events(q, 0, ev, 4);
	cr_expect_eq(rc, TQ_EBUSY, "events with a live holder: %d %s", rc, tq_strerror(rc));

	/* The holder dies: the lock is taken over at once. */
	kill(holder, SIGKILL);
	cr_assert_eq(tqt_wait(holder, 10000), 128 + SIGKILL);
	rc = tq_events(q, 0, ev, 4);
	cr_expect_geq(rc, 0, "events after the holder died: %d %s", rc, tq_strerror(rc));
	munmap(seg, size);
	tq_close(q);
}

/* A sparse copy of a queue on a full /dev/shm: opening it reports
 * TQ_ENOMEM instead of dying of SIGBUS on the first touch of a hole. */
static int open_sparse(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	int rc = tq_open(qname, &q);
	if (rc == 0) {
		tq_stats st;
		(void)tq_stats_get(q, &st);
		tq_close(q);
		return 0;
	}
	return -rc;
}

Test(hostile, sparse_segment_on_full_shm, .timeout = 60, .fini = fini)
{
	enter_private_shm();
	if (!private_shm)
		cr_skip_test("no private /dev/shm here (needs a mount namespace)");
	cr_assert_eq(mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m"), 0,
		     "mount a 16 MB tmpfs: %s", strerror(errno));

	/* A real queue's bytes, written back with holes (only non-zero pages). */
	tq_queue *q = make_queue("sparse", 16, 64);
	tq_close(q);
	size_t size;
	uint8_t *seg = map_segment(&size);
	uint8_t *copy = malloc(size);
	cr_assert_not_null(copy);
	memcpy(copy, seg, size);
	munmap(seg, size);
	tq_destroy(qname);
	char path[TQT_NAME_LEN + 16];
	snprintf(path, sizeof path, "/dev/shm/taskq.%s", qname);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	static const uint8_t zero[4096];
	size_t written = 0;
	for (size_t off = 0; off < size; off += 4096) {
		size_t len = size - off < 4096 ? size - off : 4096;
		if (memcmp(copy + off, zero, len) == 0)
			continue;
		cr_assert_eq(pwrite(fd, copy + off, len, (off_t)off), (ssize_t)len);
		written += len;
	}
	close(fd);
	free(copy);
	cr_assert_lt(written, size, "the copy has holes");

	/* Fill the tmpfs. */
	int ffd = open("/dev/shm/filler", O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(ffd, 0);
	static uint8_t block[65536];
	memset(block, 1, sizeof block);
	while (write(ffd, block, sizeof block) > 0)
		;
	cr_assert_eq(errno, ENOSPC);

	pid_t pid = tqt_fork(open_sparse, NULL);
	int rc = tqt_wait(pid, 20000);
	cr_expect_eq(rc, -TQ_ENOMEM, "open on a full /dev/shm: exit %d (%d = SIGBUS)", rc, 128 + SIGBUS);

	/* With room again, the same segment opens and works. */
	close(ffd);
	unlink("/dev/shm/filler");
	pid = tqt_fork(open_sparse, NULL);
	rc = tqt_wait(pid, 20000);
	cr_expect_eq(rc, 0, "open with room: exit %d", rc);
}

/* Leases always end: a holder frozen (SIGSTOP) in the middle of tq_ack
 * keeps nothing past the deadline. The tasks it had not yet acked come back
 * by expiry while it is stopped; the ones it had are done. It takes two
 * batches (two lane claims, of 6 and 4) and acks them in one call, which
 * stops after the first claim is settled. */
static int ack_then_freeze(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_task t[10];
	if (tq_open(qname, &q) != 0 || tq_take(q, t, 6, 0) != 6 || tq_take(q, t + 6, 4, 0) != 4)
		return 1;
	tq_fault_arm_signal("ack.mid", 1, SIGSTOP);
	(void)tq_ack(q, t, 10);
	return 0;
}

Test(hostile, leases_end_for_a_holder_frozen_in_ack, .timeout = 60, .fini = fini)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(qname, "frozenack");
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = 64;
	c.lease_ns = 200ull * 1000000ull;
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	for (uint64_t v = 0; v < 10; v++)
		cr_assert_eq(tq_push_int(q, v, 0), 0);

	pid_t pid = tqt_fork(ack_then_freeze, NULL);
	int st = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	pid_t r;
	while ((r = waitpid(pid, &st, WNOHANG | WUNTRACED)) == 0 && tqt_now_ms() < deadline)
		tqt_sleep_ms(2);
	cr_assert(r == pid && WIFSTOPPED(st), "the holder should be frozen in tq_ack (status %#x)", st);

	/* While it is frozen: the tasks it had not acked come back. */
	bool seen[10] = {false};
	unsigned back = 0;
	deadline = tqt_now_ms() + 20000;
	while (back < 4 && tqt_now_ms() < deadline) {
		(void)tq_recover(q);
		tq_task t[10];
		int k = tq_take(q, t, 10, 50ull * 1000000ull);
		for (int i = 0; i < k; i++) {
			cr_assert_lt(t[i].value, 10);
			cr_assert(!seen[t[i].value], "task %llu came back twice", (unsigned long long)t[i].value);
			seen[t[i].value] = true;
			back++;
		}
		if (k > 0)
			cr_assert_eq(tq_ack(q, t, (size_t)k), 0);
	}
	cr_assert_eq(back, 4, "tasks back from the frozen holder: %u of 4 (it had acked 6)", back);
	tq_task none;
	cr_assert_eq(tq_take(q, &none, 1, 0), TQ_EAGAIN, "only the 4 unacked tasks come back");

	kill(pid, SIGKILL);
	cr_assert_eq(tqt_wait(pid, 10000), 128 + SIGKILL);
	(void)tq_recover(q);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.acked, 10, "acked: 6 by the frozen holder, 4 after expiry; got %llu",
		     (unsigned long long)s.total.acked);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 64);
	tq_close(q);
}

/* A child forked after tq_open (without exec) cannot use the parent's
 * handle, and does not keep the parent's liveness lock: when the parent
 * dies, its leases come back although the child lives on. */
struct forked {
	int child_rc;  /* what the inherited handle said in the child */
	int child_rc2; /* and tq_run_state, which reads the segment directly */
	pid_t child;   /* the grandchild, still alive */
	int ready;
};

static int open_take_fork_die(void *arg)
{
	struct forked *f = arg;
	tq_queue *q = NULL;
	tq_task t[5];
	if (tq_open(qname, &q) != 0 || tq_take(q, t, 5, 0) != 5)
		return 1;
	pid_t c = fork();
	if (c == 0) {
		tq_stats s;
		__atomic_store_n(&f->child_rc, tq_stats_get(q, &s), __ATOMIC_RELEASE);
		__atomic_store_n(&f->child_rc2, tq_run_state(q), __ATOMIC_RELEASE);
		__atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
		for (;;)
			pause();
	}
	f->child = c;
	while (!__atomic_load_n(&f->ready, __ATOMIC_ACQUIRE))
		usleep(1000);
	raise(SIGKILL); /* dies holding 5 leases */
	return 2;
}

Test(hostile, forked_child_keeps_nothing_of_a_dead_parent, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("forkedchild", 16, 0);
	for (uint64_t v = 0; v < 5; v++)
		cr_assert_eq(tq_push_int(q, v, 0), 0);
	struct forked *f = tqt_shared(sizeof *f);
	pid_t pid = tqt_fork(open_take_fork_die, f);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	cr_assert_gt(f->child, 0);
	cr_expect_eq(f->child_rc, TQ_EFORKED, "the inherited handle in the child: %d %s", f->child_rc,
		     tq_strerror(f->child_rc));
	cr_expect_eq(f->child_rc2, TQ_EFORKED, "tq_run_state in the child: %d", f->child_rc2);

	/* The child of the dead process still runs: the leases come back. */
	cr_assert_eq(kill(f->child, 0), 0, "the forked child should still be alive");
	int rc = tq_recover(q);
	cr_expect_eq(rc, 1, "dead processes recovered: %d", rc);
	tq_task t[5];
	cr_expect_eq(tq_take(q, t, 5, 0), 5, "the dead parent's 5 leases are back");
	kill(f->child, SIGKILL);
	tq_close(q);
}

/* A lock word naming a live process under a nonce that is not its own (a
 * forged word, or one left by an earlier holder of that record) is taken
 * over at once, not waited for. */
Test(hostile, stale_nonce_of_a_live_record_is_taken_over, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("stalenonce", 16, 0);
	uint32_t rec, nonce;
	pid_t holder = start_holder(q, &rec, &nonce);
	size_t size;
	uint8_t *seg = map_segment(&size);
	put64(seg, offsetof(struct tq_hdr, event_lock), (uint64_t)(rec + 1) | ((uint64_t)(nonce ^ 1) << 16));
	uint64_t t0 = tqt_now_ms();
	tq_event_info ev[4];
	int rc = tq_events(q, 0, ev, 4);
	cr_expect_geq(rc, 0, "events: %d %s after %llu ms", rc, tq_strerror(rc),
		      (unsigned long long)(tqt_now_ms() - t0));
	munmap(seg, size);
	kill(holder, SIGKILL);
	tqt_wait(holder, 10000);
	tq_close(q);
}

/* Payload slot records forged to name runs of units outside the area (or
 * past its end), and owner words forged to name tasks that hold no unit:
 * a taker gets the task with no bytes rather than bytes from beyond the
 * area, and the forged owners never make a push take a unit in use. */
static int take_forged(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_task t[8];
	if (tq_open(qname, &q) != 0)
		return 10;
	int n = tq_take(q, t, 8, 0);
	if (n != 3)
		return 11;
	for (int i = 0; i < n; i++) {
		if (t[i].kind == TQ_KIND_INT)
			return 12;
		if (t[i].data != NULL || t[i].len != 0)
			return 13; /* bytes from a run the area does not hold */
	}
	if (tq_ack(q, t, (size_t)n) != 0)
		return 14;
	/* The area still takes and gives payloads. */
	char big[100];
	memset(big, 'z', sizeof big);
	tq_task two[2] = {{.kind = TQ_KIND_INT, .value = 1}, {.kind = TQ_KIND_STRING, .data = big, .len = 100}};
	if (tq_push(q, two, 2, 0) != 2)
		return 15;
	if (tq_take(q, t, 8, 0) != 2 || t[1].len != 100 || memcmp(t[1].data, big, 100) != 0)
		return 16;
	if (tq_ack(q, t, 2) != 0)
		return 17;
	tq_close(q);
	return 0;
}

Test(hostile, forged_payload_runs, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("unitsforged", 16, 100);
	char p[100];
	memset(p, 'p', sizeof p);
	/* Three payloads through slots: a mixed batch, taken, integer acked. */
	tq_task t[4] = {{.kind = TQ_KIND_INT, .value = 9},
			{.kind = TQ_KIND_STRING, .data = p, .len = 100},
			{.kind = TQ_KIND_STRING, .data = p, .len = 100},
			{.kind = TQ_KIND_STRING, .data = p, .len = 100}};
	cr_assert_eq(tq_push(q, t, 4, 0), 4);
	tq_task one;
	cr_assert_eq(tq_take(q, &one, 1, 0), 1);
	cr_assert_eq(tq_ack(q, &one, 1), 0);
	tq_close(q);
	size_t size;
	uint8_t *seg = map_segment(&size);
	const struct tq_hdr *h = (const struct tq_hdr *)seg;
	struct tq_slot *sl = (struct tq_slot *)(seg + h->off_slots);
	uint64_t units = h->payload_units;
	uint32_t forged = 0;
	for (uint32_t i = 0; i < h->slots && forged < 3; i++) {
		if (sl[i].kind == TQ_KIND_STRING && sl[i].len == 100) {
			uint64_t bad[3] = {units, units - 1, UINT64_MAX - 1}; /* past the end, straddling it, far */
			sl[i].value = bad[forged++];
		}
	}
	cr_assert_eq(forged, 3);
	uint64_t *own = (uint64_t *)(seg + h->off_owners);
	for (uint64_t u = 0; u < units; u++)
		if (own[u] == 0)
			own[u] = 0xdeadbeef00000000ull + u; /* owned by no task */
	cr_assert_geq(own[units - 2], 0xdeadbeef00000000ull, "the last units were free");
	own[units - 2] = own[units - 1] = 0; /* the one free run left */
	munmap(seg, size);
	cr_assert_eq(exercise_in_child(0), 0, "the library on a segment with forged runs");
	cr_assert_eq(tqt_wait(tqt_fork(take_forged, NULL), 20000), 0);
	seg = map_segment(&size);
	h = (const struct tq_hdr *)seg;
	own = (uint64_t *)(seg + h->off_owners);
	for (uint64_t u = 0; u + 2 < units; u++)
		cr_assert_neq(own[u], 0, "unit %llu: a push took a unit forged as held", (unsigned long long)u);
	cr_assert_eq(own[units - 2] | own[units - 1], 0, "the one free run was taken and given back");
	munmap(seg, size);
}
