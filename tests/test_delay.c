/* SPDX-License-Identifier: MIT */
/*
 * test_delay.c - delayed pushes (tq_push_delayed, taskq push --delay): not
 * delivered before their time, delivered after it, counted exactly even if
 * the pusher dies half way.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fault.h" /* the test build: a process killed at a named point */
#include "layout.h" /* the delayed bitmap, read from the segment */
#include "proc.h"
#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#define TASKQ TQ_BIN_DIR "/taskq"
#define MS 1000000ull

static char qname[TQT_NAME_LEN];

static void fini(void)
{
	tq_destroy(qname);
}

static tq_queue *make_queue(const char *test)
{
	tq_config c;
	tq_queue *q = NULL;

	tqt_name(qname, test);
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = 64;
	c.max_payload = 64;
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	return q;
}

Test(delay, not_before_its_time_then_delivered, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("delayed");
	tq_task t[5];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 5; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	uint64_t pushed_at = tq_now_ns();
	cr_assert_eq(tq_push_delayed(q, t, 5, 300 * MS, 0), 5);

	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 5);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.total.pushed, 5);
	tq_task got[5];
	cr_assert_eq(tq_take(q, got, 5, 0), TQ_EAGAIN, "a delayed task is not ready at once");

	unsigned n = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (n < 5 && tqt_now_ms() < deadline) {
		int k = tq_take(q, got, 5, 2000 * MS);
		uint64_t now = tq_now_ns();
		for (int i = 0; i < k; i++) {
			cr_assert_geq(now - pushed_at, 300 * MS, "delivered %llu ns after the push, before its delay",
				      (unsigned long long)(now - pushed_at));
			cr_expect_eq(got[i].attempt, 1);
			n++;
		}
		if (k > 0) {
			cr_log_info("%d delivered %.1f ms after a 300 ms delay", k, (double)(now - pushed_at) / 1e6);
			cr_assert_eq(tq_ack(q, got, (size_t)k), 0);
		}
	}
	cr_assert_eq(n, 5);
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.total.acked, 5);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 64);
	tq_close(q);
}

Test(delay, zero_is_a_push_and_bounds_are_checked, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("delayzero");
	tq_task t = {.kind = TQ_KIND_INT, .value = 7};
	cr_assert_eq(tq_push_delayed(q, &t, 1, 0, 0), 1);
	tq_task got;
	cr_assert_eq(tq_take(q, &got, 1, 0), 1, "delay 0: ready at once");
	cr_assert_eq(got.value, 7);
	cr_assert_eq(tq_ack(q, &got, 1), 0);
	cr_assert_eq(tq_push_delayed(q, &t, 1, TQ_TIME_MAX_NS + 1, 0), TQ_EINVAL);
	cr_assert_eq(tq_push_delayed(NULL, &t, 1, MS, 0), TQ_EINVAL);
	tq_close(q);
}

/* The pusher dies right after its first task became DELAYED, before it was
 * counted: recovery counts it (pushed exact), the rest of the batch was
 * never accepted, and the one task is delivered when due. */
static int push_and_die(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_task t[5];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 5; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = 100 + (uint64_t)i;
	}
	if (tq_open(qname, &q) != 0)
		return 1;
	tq_fault_arm("push.delayed", 1);
	(void)tq_push_delayed(q, t, 5, 100 * MS, 0);
	return 2; /* not reached */
}

Test(delay, pusher_killed_mid_batch, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("delaykill");
	pid_t pid = tqt_fork(push_and_die, NULL);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	(void)tq_recover(q);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.pushed, 1, "pushed: %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.delayed, 1);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 63, "the 4 never accepted are free again: %u", s.free_slots);

	tq_task got[5];
	int k = tq_take(q, got, 5, 5000 * MS);
	cr_assert_eq(k, 1, "the accepted task is delivered when due: %d", k);
	cr_expect_eq(got[0].value, 100);
	cr_assert_eq(tq_ack(q, got, 1), 0);
	cr_expect_eq(tq_take(q, got, 5, 0), TQ_EAGAIN, "nothing else");
	tq_close(q);
}

/* taskq push --delay: the same from the command line, and a bad value
 * refused as a usage error. */
Test(delay, cli_push_delay, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("delaycli");
	struct out o;
	memset(&o, 0, sizeof o);
	char *push[] = {TASKQ, "push", qname, "--kind", "int", "--delay", "0.3", "1", "2", NULL};
	run(push, NULL, &o);
	cr_assert_eq(o.status, 0, "%s: %d\n%s", o.cmd, o.status, o.err);
	out_free(&o);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 2);
	char *bad[] = {TASKQ, "push", qname, "--delay", "soon", "x", NULL};
	run(bad, NULL, &o);
	cr_expect_eq(o.status, 2, "--delay soon: %d", o.status);
	cr_expect(strstr(o.err, "--delay"), "%s", o.err);
	out_free(&o);
	tq_task got[2];
	unsigned n = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (n < 2 && tqt_now_ms() < deadline) {
		int k = tq_take(q, got, 2, 1000 * MS);
		if (k > 0) {
			n += (unsigned)k;
			cr_assert_eq(tq_ack(q, got, (size_t)k), 0);
		}
	}
	cr_expect_eq(n, 2);
	tq_close(q);
}

/* Delayed tasks take no room from new work while the delay area holds
 * them (design.md, 10). A queue of 64 with a delay area of 32 (and a
 * dead-letter area of 6: 102 slots) takes 32 delayed tasks and still its
 * whole capacity of fresh ones; delayed tasks beyond the area are kept but
 * count against the capacity, and stats and the command say so. */
/* A queue of 64 with a delay area of delay_capacity; backoff_ns for every
 * retry (0: the default). */
static tq_queue *make_delay_queue(const char *test, uint32_t delay_capacity, uint64_t backoff_ns)
{
	tq_config c;
	tq_queue *q = NULL;

	tq_config_init(&c);
	c.capacity = 64;
	c.delay_capacity = delay_capacity;
	if (backoff_ns)
		c.backoff_base_ns = c.backoff_max_ns = backoff_ns;
	tqt_name(qname, test);
	tq_destroy(qname);
	cr_assert_eq(tq_create(qname, &c, &q), 0);
	return q;
}

Test(delay, delayed_tasks_take_no_room, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_delay_queue("delayroom", 32, 0);
	tq_task d[100], t[64];
	memset(d, 0, sizeof d);
	memset(t, 0, sizeof t);
	for (int i = 0; i < 100; i++) {
		d[i].kind = TQ_KIND_INT;
		d[i].value = 1000 + (uint64_t)i;
	}
	for (int i = 0; i < 64; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.slots, 102, "capacity 64 + dead-letter area 6 + delay area 32: %u", s.slots);
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_assert_eq(s.delay_capacity, 32);
	cr_assert_eq(tq_push_delayed(q, d, 12, 3600 * 1000 * MS, 0), 12);
	/* Fresh tasks: the whole capacity, and not one more. */
	cr_assert_eq(tq_push(q, t, 28, 0), 28);
	cr_assert_eq(tq_push(q, t + 28, 36, 0), 36, "12 delayed take no room");
	/* A delayed push into the full queue: the area has room for 20. */
	cr_assert_eq(tq_push_delayed(q, d + 12, 30, 3600 * 1000 * MS, 0), 20, "the area's room, not the capacity's");
	cr_assert_eq(tq_push(q, t, 1, 0), TQ_EAGAIN, "the capacity is reached by ready tasks");
	cr_assert_eq(tq_push_delayed(q, d + 32, 1, 3600 * 1000 * MS, 0), TQ_EAGAIN,
		     "the delay area and the capacity are full");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.ready, 64);
	cr_expect_eq(s.delayed, 32, "delayed %u", s.delayed);
	cr_expect_eq(s.delay_over, 0);
	cr_expect_eq(s.leased, 0, "leased %u", s.leased);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	tq_task got[64];
	int k = tq_take(q, got, 64, 0);
	cr_assert_eq(k, 64, "the fresh tasks: %d", k);
	for (int i = 0; i < k; i++)
		cr_expect_eq(got[i].value, (uint64_t)i, "task %d: %llu, not a delayed one", i,
			     (unsigned long long)got[i].value);
	cr_assert_eq(tq_take(q, got, 1, 0), TQ_EAGAIN, "the delayed tasks are not due");
	cr_assert_eq(tq_ack(q, got, 64), 0);
	/* Beyond the area, delayed tasks count against the capacity. */
	cr_assert_eq(tq_push_delayed(q, d + 32, 68, 3600 * 1000 * MS, 0), 64, "64 more: the capacity");
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 96);
	cr_expect_eq(s.delay_over, 64);
	cr_expect_eq(s.ready + s.leased + s.delayed + s.dead + s.free_slots, s.slots);
	cr_assert_eq(tq_push(q, t, 1, 0), TQ_EAGAIN, "no room: the delayed tasks beyond the area fill it");
	struct out o;
	memset(&o, 0, sizeof o);
	char *push[] = {TASKQ, "push", qname, "--timeout", "0", "7", NULL};
	run(push, NULL, &o);
	cr_expect_neq(o.status, 0);
	cr_expect(strstr(o.err, "64 delayed over the delay area of 32"), "%s", o.err);
	out_free(&o);
	char *stats[] = {TASKQ, "stats", qname, NULL};
	run(stats, NULL, &o);
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, "DELAY AREA FULL: 96 delayed of 32, 64 over"), "%s", o.out);
	out_free(&o);
	tq_close(q);
}

/* What the issue that asked for it saw: a consumer that fails a share of
 * its tasks with a long backoff. The retries wait in slots without taking
 * room, so the producer keeps the whole capacity for new tasks. */
Test(delay, retries_waiting_do_not_block_producers, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_delay_queue("delayretry", 64, 3600ull * 1000 * MS);
	tq_task t[64], got[64];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 64; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	cr_assert_eq(tq_push(q, t, 64, 0), 64);
	int k = tq_take(q, got, 64, 0);
	cr_assert_eq(k, 64);
	cr_assert_eq(tq_fail(q, got, 64, 7, "not now"), 0);
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 64, "every failure waits for its retry: %u", s.delayed);
	cr_expect_eq(s.ready + s.leased, 0);
	cr_assert_eq(tq_push(q, t, 64, 0), 64, "the whole capacity for new tasks");
	cr_assert_eq(tq_push(q, t, 1, 0), TQ_EAGAIN);
	k = tq_take(q, got, 64, 0);
	cr_assert_eq(k, 64);
	cr_assert_eq(tq_ack(q, got, 64), 0);
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.delayed, 64);
	cr_expect_eq(s.total.acked, 64);
	tq_close(q);
}

/* ------------------------------------------------ the delayed bitmap */

/* Reads the segment of qname (read only): how many slots are DELAYED, how
 * many of them lack their bit in the delayed bitmap, and how many bits are
 * set in all (design.md, 10). */
static void due_bits_check(uint32_t *delayed, uint32_t *missing, uint32_t *bits)
{
	size_t size;
	const uint8_t *seg = tqt_segment_map(qname, false, &size);
	cr_assert_not_null(seg);
	const struct tq_hdr *h = (const struct tq_hdr *)seg;
	const uint64_t *st = (const uint64_t *)(seg + h->off_state);
	const uint64_t *due = (const uint64_t *)(seg + h->off_due_bits);
	cr_assert_leq(h->off_due_bits + (h->slots + 63) / 64 * 8, (uint64_t)size);
	*delayed = *missing = *bits = 0;
	for (uint32_t i = 0; i < h->slots; i++) {
		bool bit = (__atomic_load_n(&due[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
		*bits += bit;
		if (st_state(__atomic_load_n(&st[i], __ATOMIC_RELAXED)) == ST_DELAYED) {
			(*delayed)++;
			*missing += !bit;
		}
	}
	munmap((void *)seg, size);
}

/* Every DELAYED slot has its bit: after delayed pushes, after failures
 * waiting for their backoff; the due sweep that makes them ready clears
 * them again. */
Test(delay, every_delayed_slot_has_its_bit, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_delay_queue("duebits", 8, 20 * MS);
	tq_task t[16];
	uint32_t delayed, missing, bits;

	memset(t, 0, sizeof t);
	for (int i = 0; i < 6; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	cr_assert_eq(tq_push_delayed(q, t, 3, 30 * MS, 0), 3);
	cr_assert_eq(tq_push(q, t + 3, 3, 0), 3);
	cr_assert_eq(tq_take(q, t, 3, 0), 3, "the three pushed now");
	cr_assert_eq(tq_fail(q, t, 3, 7, "again"), 0); /* retries, 20 ms backoff */
	due_bits_check(&delayed, &missing, &bits);
	cr_assert_eq(delayed, 6, "3 delayed pushes and 3 retries: %u DELAYED", delayed);
	cr_assert_eq(missing, 0, "%u DELAYED slots without their bit", missing);
	cr_assert_eq(bits, 6, "%u bits set", bits);

	uint32_t got = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (got < 6 && tqt_now_ms() < deadline) {
		int k = tq_take(q, t, 16, 1000 * MS);
		if (k > 0) {
			cr_assert_eq(tq_ack(q, t, (uint32_t)k), 0);
			got += (uint32_t)k;
		}
	}
	cr_assert_eq(got, 6, "all six delivered once due: %u", got);
	due_bits_check(&delayed, &missing, &bits);
	cr_assert_eq(delayed, 0);
	cr_assert_eq(bits, 0, "%u bits left after every delayed task was made ready", bits);
	tq_close(q);
}

/* A delayed pusher killed between its slot's state and its bit: recovery
 * gives the slot its bit back (and the task is still delivered). */
static int push_far_and_die(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_task t = {.kind = TQ_KIND_INT, .value = 42};
	if (tq_open(qname, &q) != 0)
		return 1;
	tq_fault_arm("push.delayed", 1);
	(void)tq_push_delayed(q, &t, 1, 3600 * 1000 * MS, 0);
	return 2; /* not reached */
}

Test(delay, delayer_killed_before_its_bit, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("duebitkill");
	uint32_t delayed, missing, bits;

	pid_t pid = tqt_fork(push_far_and_die, NULL);
	cr_assert_eq(tqt_wait(pid, 20000), 128 + SIGKILL);
	due_bits_check(&delayed, &missing, &bits);
	cr_assert_eq(delayed, 1);
	cr_assert_eq(missing, 1, "killed before its bit: the slot has none yet");
	cr_assert_geq(tq_recover(q), 0);
	due_bits_check(&delayed, &missing, &bits);
	cr_assert_eq(delayed, 1);
	cr_assert_eq(missing, 0, "recovery set the bit");
	tq_stats s;
	cr_assert_eq(tq_stats_get(q, &s), 0);
	cr_expect_eq(s.total.pushed, 1);
	cr_expect_eq(s.delayed, 1);
	tq_close(q);
}

/* A sweeper killed between clearing a due slot's bit and taking the slot
 * (holding the recovery lock): the next holder takes the lock over, gives
 * the still-DELAYED slot its bit back, and the task is delivered once. */
static int sweep_and_die(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_fault_arm("due.cleared", 1); /* before the open, which may sweep already */
	if (tq_open(qname, &q) != 0)
		return 1;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (tqt_now_ms() < deadline)
		(void)tq_recover(q); /* a full sweep: the task is due from the start */
	return 2; /* not reached */
}

Test(delay, sweeper_killed_between_bit_and_slot, .timeout = 60, .fini = fini)
{
	tq_queue *q = make_queue("duebitsweep");
	tq_task t = {.kind = TQ_KIND_INT, .value = 77};
	uint32_t delayed, missing, bits;

	cr_assert_eq(tq_push_delayed(q, &t, 1, 1, 0), 1); /* due 1 ns later */
	pid_t pid = tqt_fork(sweep_and_die, NULL);
	cr_assert_eq(tqt_wait(pid, 30000), 128 + SIGKILL);
	due_bits_check(&delayed, &missing, &bits);
	cr_assert_eq(delayed, 1, "the slot it was taking is still DELAYED");
	cr_assert_eq(missing, 1, "killed after clearing its bit");
	tq_task got[2];
	int k = tq_take(q, got, 2, 5000 * MS); /* takes the lock over, repairs, sweeps */
	cr_assert_eq(k, 1, "delivered once: %d", k);
	cr_expect_eq(got[0].value, 77);
	cr_assert_eq(tq_ack(q, got, 1), 0);
	due_bits_check(&delayed, &missing, &bits);
	cr_expect_eq(delayed, 0);
	cr_expect_eq(bits, 0, "%u bits left", bits);
	cr_expect_eq(tq_take(q, got, 2, 0), TQ_EAGAIN, "nothing else");
	tq_close(q);
}
