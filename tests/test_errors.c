/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - argument validation, error codes, and segments that are
 * not (whole, current) taskq queues. Every call here runs in the test
 * process itself, so a crash in the library fails the test.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "layout.h" /* struct tq_hdr: where header fields are, for offsetof */
#include "taskq.h"
#include "util.h"

#define MS (1000000ull)

/* Names of the queues this test created; the .fini of every test destroys
 * them, so that a failed assertion leaves no segment behind. */
static char created[8][TQ_NAME_MAX + 1];
static unsigned ncreated;

static void remember(const char *name)
{
	for (unsigned k = 0; k < ncreated; k++)
		if (strcmp(created[k], name) == 0)
			return;
	if (ncreated < 8 && strlen(name) < sizeof created[0])
		strcpy(created[ncreated++], name);
}

static void cleanup_queues(void)
{
	for (unsigned k = 0; k < ncreated; k++)
		tq_destroy(created[k]);
	ncreated = 0;
}

static tq_queue *create_queue(const char *name, const tq_config *cfg)
{
	tq_queue *q = NULL;
	tq_destroy(name);
	remember(name);
	int rc = tq_create(name, cfg, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %d %s", name, rc, tq_strerror(rc));
	cr_assert_not_null(q);
	return q;
}

static tq_stats get_stats(tq_queue *q)
{
	tq_stats s;
	memset(&s, 0, sizeof s);
	int rc = tq_stats_get(q, &s);
	cr_assert_eq(rc, 0, "tq_stats_get: %d %s", rc, tq_strerror(rc));
	return s;
}

static tq_config small_config(uint32_t capacity)
{
	tq_config c;
	tq_config_init(&c);
	c.capacity = capacity;
	if (c.dead_capacity > capacity)
		c.dead_capacity = capacity;
	return c;
}

/* ----------------------------------------------------------------- names */

Test(errors, bad_names, .timeout = 60, .fini = cleanup_queues)
{
	char toolong[TQ_NAME_MAX + 2];
	memset(toolong, 'a', sizeof toolong - 1);
	toolong[sizeof toolong - 1] = '\0';
	const char *bad[] = { "", toolong, "a/b", "/x", ".x", "..", "x y", "x\ny",
			      "ab*", "q\xc3\xa9", "tab\t", "x:y" };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		tq_queue *q = NULL;
		int rc = tq_create(bad[k], NULL, &q);
		cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_create(\"%s\") = %d %s",
			  bad[k], rc, tq_strerror(rc));
		if (rc == 0) {
			tq_close(q);
			tq_destroy(bad[k]);
		}
		rc = tq_open(bad[k], &q);
		cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_open(\"%s\") = %d %s",
			  bad[k], rc, tq_strerror(rc));
		rc = tq_destroy(bad[k]);
		cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_destroy(\"%s\") = %d %s",
			  bad[k], rc, tq_strerror(rc));
	}
	tq_queue *q = NULL;
	int rc = tq_create(NULL, NULL, &q);
	cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_create(NULL) = %d", rc);
	rc = tq_open(NULL, &q);
	cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_open(NULL) = %d", rc);
	rc = tq_destroy(NULL);
	cr_expect(rc == TQ_ENAME || rc == TQ_EINVAL, "tq_destroy(NULL) = %d", rc);
}

Test(errors, longest_and_odd_valid_names, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQ_NAME_MAX + 1];
	int n = snprintf(name, sizeof name, "tqt-maxname-%ld-", (long)getpid());
	memset(name + n, 'z', TQ_NAME_MAX - (size_t)n);
	name[TQ_NAME_MAX] = '\0';
	cr_assert_eq(strlen(name), TQ_NAME_MAX);
	tq_config cfg = small_config(4);
	tq_queue *q = create_queue(name, &cfg);
	tq_queue *q2 = NULL;
	cr_expect_eq(tq_open(name, &q2), 0);
	tq_close(q2);
	tq_close(q);
	cr_expect_eq(tq_destroy(name), 0);

	char odd[TQT_NAME_LEN];
	snprintf(odd, sizeof odd, "tqt-Odd_Name.9-%ld-", (long)getpid());
	q = create_queue(odd, &cfg);
	tq_close(q);
	cr_expect_eq(tq_destroy(odd), 0);
	cr_expect_eq(tq_destroy(odd), TQ_ENOENT);
}

Test(errors, missing_and_existing, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "exist");
	tq_destroy(name);
	tq_queue *q = NULL;
	cr_expect_eq(tq_open(name, &q), TQ_ENOENT);
	cr_expect_eq(tq_destroy(name), TQ_ENOENT);
	tq_config cfg = small_config(8);
	q = create_queue(name, &cfg);
	tq_queue *q2 = NULL;
	cr_expect_eq(tq_create(name, &cfg, &q2), TQ_EEXIST);
	cr_expect_eq(tq_create(name, NULL, &q2), TQ_EEXIST);
	/* the first queue still works */
	cr_expect_eq(tq_push_int(q, 5, 0), 0);
	tq_task t;
	cr_expect_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(t.value, 5);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	cr_expect_eq(tq_destroy(name), 0);
	/* the name is gone; the attached handle keeps working */
	cr_expect_eq(tq_open(name, &q2), TQ_ENOENT);
	cr_expect_eq(tq_push_int(q, 6, 0), 0);
	cr_expect_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	/* and the name can be created afresh */
	q2 = create_queue(name, &cfg);
	cr_expect_eq(get_stats(q2).total.pushed, 0);
	tq_close(q2);
	tq_close(q);
	cr_expect_eq(tq_destroy(name), 0);
}

/* --------------------------------------------------------------- configs */

Test(errors, bad_configs, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "badcfg");
	tq_destroy(name);
	struct {
		const char *what;
		tq_config c;
	} cases[16];
	size_t n = 0;
	tq_config base = small_config(64);
	base.dead_capacity = 8;

#define CASE(desc, field, val)                   \
	do {                                     \
		cases[n].what = desc;            \
		cases[n].c = base;               \
		cases[n].c.field = (val);        \
		n++;                             \
	} while (0)
	CASE("capacity 0", capacity, 0);
	CASE("capacity > TQ_MAX_CAPACITY", capacity, TQ_MAX_CAPACITY + 1);
	CASE("capacity UINT32_MAX", capacity, UINT32_MAX);
	CASE("max_payload > TQ_MAX_PAYLOAD", max_payload, TQ_MAX_PAYLOAD + 1);
	CASE("max_payload UINT32_MAX", max_payload, UINT32_MAX);
	CASE("lease_ns 0", lease_ns, 0);
	CASE("lease_ns < 1 ms", lease_ns, MS - 1);
	CASE("max_attempts 0", max_attempts, 0);
	CASE("max_attempts 65536", max_attempts, 65536);
	CASE("dead_capacity > capacity", dead_capacity, 65);
	CASE("dead_capacity UINT32_MAX", dead_capacity, UINT32_MAX);
	CASE("mode with bits beyond 0777", mode, 01000000);
#undef CASE
	for (size_t k = 0; k < n; k++) {
		tq_queue *q = NULL;
		int rc = tq_create(name, &cases[k].c, &q);
		cr_expect_eq(rc, TQ_EINVAL, "%s: %d %s", cases[k].what, rc, tq_strerror(rc));
		if (rc == 0) {
			tq_close(q);
			tq_destroy(name);
		}
		/* nothing was left behind */
		rc = tq_open(name, &q);
		cr_expect_eq(rc, TQ_ENOENT, "%s: left a segment behind (%d)", cases[k].what, rc);
		if (rc == 0)
			tq_close(q);
		tq_destroy(name);
	}

	/* the boundaries themselves are valid */
	tq_config ok = base;
	ok.capacity = 1;
	ok.dead_capacity = 1;
	ok.max_attempts = 65535;
	ok.lease_ns = MS;
	ok.max_payload = 0;
	tq_queue *q = create_queue(name, &ok);
	tq_config got;
	cr_assert_eq(tq_config_get(q, &got), 0);
	cr_expect_eq(got.capacity, 1);
	cr_expect_eq(got.dead_capacity, 1);
	cr_expect_eq(got.max_attempts, 65535);
	cr_expect_eq(got.lease_ns, MS);
	cr_expect_eq(got.max_payload, 0);
	/* max_payload 0: empty payloads only */
	cr_expect_eq(tq_push_data(q, TQ_KIND_STRING, "", 0, 0), 0);
	cr_expect_eq(tq_push_data(q, TQ_KIND_STRING, "x", 1, 0), TQ_E2BIG);
	tq_task t;
	cr_expect_eq(tq_take(q, &t, 1, 0), 1);
	cr_expect_eq(t.len, 0);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	tq_close(q);
	tq_destroy(name);

	ok = base;
	ok.dead_capacity = ok.capacity;
	q = create_queue(name, &ok);
	tq_close(q);
	tq_destroy(name);
}

Test(errors, config_defaults, .timeout = 60, .fini = cleanup_queues)
{
	tq_config c;
	memset(&c, 0xa5, sizeof c);
	tq_config_init(&c);
	cr_expect_eq(c.capacity, 10000);
	cr_expect_eq(c.max_payload, 4096);
	cr_expect_eq(c.mode, 0600);
	cr_expect_eq(c.max_attempts, 5);
	/* 0, the default: max(1, capacity / 10), derived at create */
	cr_expect_eq(c.dead_capacity, 0);
	cr_expect_eq(c.lease_ns, 30000000000ull);
	cr_expect_eq(c.backoff_base_ns, 100 * MS);
	cr_expect_eq(c.backoff_max_ns, 60000000000ull);

	char name[TQT_NAME_LEN];
	tqt_name(name, "defaults");
	tq_queue *q = create_queue(name, NULL);
	tq_config got;
	cr_assert_eq(tq_config_get(q, &got), 0);
	cr_expect_eq(got.capacity, 10000);
	cr_expect_eq(got.max_payload, 4096);
	cr_expect_eq(got.max_attempts, 5);
	cr_expect_eq(got.dead_capacity, 1000);
	cr_expect_eq(got.lease_ns, 30000000000ull);
	tq_close(q);
	tq_destroy(name);

	/* dead_capacity 0: max(1, capacity / 10) of the capacity given */
	uint32_t caps[] = { 64, 9, 1, 12345 };
	uint32_t want[] = { 6, 1, 1, 1234 };
	for (size_t k = 0; k < 4; k++) {
		tq_config_init(&c);
		c.capacity = caps[k];
		c.max_payload = 16;
		tq_queue *q2 = NULL;
		int rc = tq_create(name, &c, &q2);
		cr_expect_eq(rc, 0, "capacity %u, dead_capacity 0: %d", caps[k], rc);
		if (rc == 0) {
			cr_expect_eq(tq_config_get(q2, &got), 0);
			cr_expect_eq(got.dead_capacity, want[k], "capacity %u: dead_capacity %u",
				     caps[k], got.dead_capacity);
			tq_close(q2);
		}
		tq_destroy(name);
	}
}

/* ------------------------------------------------------------ arguments */

Test(errors, null_pointers_and_zero_counts, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "nulls");
	tq_config cfg = small_config(8);
	tq_destroy(name);
	cr_expect_eq(tq_create(name, &cfg, NULL), TQ_EINVAL);
	tq_queue *q = NULL;
	cr_expect_eq(tq_open(name, &q), TQ_ENOENT, "tq_create(out=NULL) left a queue");
	q = create_queue(name, &cfg);
	cr_expect_eq(tq_open(name, NULL), TQ_EINVAL);

	tq_task t[2];
	memset(t, 0, sizeof t);
	t[0].kind = TQ_KIND_INT;
	tq_stats s;
	tq_counters c;
	tq_config cf;
	tq_dead_info di;
	tq_proc_info pi;

	cr_expect_eq(tq_push(NULL, t, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_push(q, NULL, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_push(q, t, 0, 0), TQ_EINVAL);
	cr_expect_eq(tq_push_int(NULL, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_push_data(NULL, TQ_KIND_STRING, "a", 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_push_data(q, TQ_KIND_STRING, NULL, 5, 0), TQ_EINVAL);
	cr_expect_eq(tq_push_data(q, TQ_KIND_INT, "a", 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_take(NULL, t, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_take(q, NULL, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_take(q, t, 0, 0), TQ_EINVAL);
	cr_expect_eq(tq_ack(NULL, t, 1), TQ_EINVAL);
	cr_expect_eq(tq_ack(q, NULL, 1), TQ_EINVAL);
	cr_expect_eq(tq_fail(NULL, t, 1, 1, "x"), TQ_EINVAL);
	cr_expect_eq(tq_fail(q, NULL, 1, 1, "x"), TQ_EINVAL);
	cr_expect_eq(tq_touch(NULL, t, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_touch(q, NULL, 1, 0), TQ_EINVAL);
	cr_expect_eq(tq_dead_list(NULL, &di, 1, NULL, 0), TQ_EINVAL);
	cr_expect_eq(tq_dead_list(q, NULL, 1, NULL, 0), TQ_EINVAL);
	cr_expect_eq(tq_dead_kick(NULL, TQ_ALL), TQ_EINVAL);
	cr_expect_eq(tq_dead_purge(NULL, TQ_ALL), TQ_EINVAL);
	cr_expect_eq(tq_set_run_state(NULL, TQ_RUNNING), TQ_EINVAL);
	cr_expect_eq(tq_set_run_state(q, -1), TQ_EINVAL);
	cr_expect_eq(tq_set_run_state(q, 4), TQ_EINVAL);
	cr_expect_eq(tq_set_run_state(q, 99), TQ_EINVAL);
	cr_expect_eq(tq_run_state(q), TQ_RUNNING);
	cr_expect_eq(tq_run_state(NULL), TQ_EINVAL);
	cr_expect_eq(tq_stats_get(NULL, &s), TQ_EINVAL);
	cr_expect_eq(tq_stats_get(q, NULL), TQ_EINVAL);
	cr_expect_eq(tq_counters_self(NULL, &c), TQ_EINVAL);
	cr_expect_eq(tq_counters_self(q, NULL), TQ_EINVAL);
	cr_expect_eq(tq_procs(NULL, &pi, 1), TQ_EINVAL);
	cr_expect_eq(tq_procs(q, NULL, 1), TQ_EINVAL);
	cr_expect_eq(tq_config_get(NULL, &cf), TQ_EINVAL);
	cr_expect_eq(tq_config_get(q, NULL), TQ_EINVAL);
	cr_expect_eq(tq_recover(NULL), TQ_EINVAL);
	cr_expect_eq(tq_close(NULL), 0);

	/* none of that pushed, took or broke anything */
	s = get_stats(q);
	cr_expect_eq(s.total.pushed, 0);
	cr_expect_eq(s.total.taken, 0);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 8);
	cr_expect_eq(tq_push_int(q, 1, 0), 0);
	cr_expect_eq(tq_take(q, t, 2, 0), 1);
	cr_expect_eq(tq_ack(q, t, 1), 0);
	tq_close(q);
	tq_destroy(name);
}

Test(errors, bad_kinds, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "kinds");
	tq_config cfg = small_config(16);
	tq_queue *q = create_queue(name, &cfg);
	tq_task t[4];
	uint16_t kinds[] = { 0, 4, 99, 0xffff };
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		memset(t, 0, sizeof t);
		t[0].kind = kinds[k];
		cr_expect_eq(tq_push(q, t, 1, 0), TQ_EINVAL, "kind %u", kinds[k]);
		cr_expect_eq(tq_push_data(q, kinds[k], "a", 1, 0), TQ_EINVAL, "kind %u",
			     kinds[k]);
		/* a bad kind in the 3rd task: the whole batch is refused */
		t[0].kind = TQ_KIND_INT;
		t[1].kind = TQ_KIND_STRING;
		t[1].data = "ok";
		t[1].len = 2;
		t[2].kind = kinds[k];
		t[3].kind = TQ_KIND_INT;
		cr_expect_eq(tq_push(q, t, 4, 0), TQ_EINVAL, "kind %u in a batch", kinds[k]);
	}
	/* NULL data with len > 0 in the middle of a batch */
	memset(t, 0, sizeof t);
	t[0].kind = TQ_KIND_INT;
	t[1].kind = TQ_KIND_JSON;
	t[1].data = NULL;
	t[1].len = 3;
	cr_expect_eq(tq_push(q, t, 2, 0), TQ_EINVAL);
	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.pushed, 0, "a refused batch pushed %llu",
		     (unsigned long long)s.total.pushed);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
	cr_expect_eq(tq_take(q, t, 4, 0), TQ_EAGAIN);
	tq_close(q);
	tq_destroy(name);
}

Test(errors, payload_sizes, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "payload-size");
	tq_config cfg = small_config(16);
	cfg.max_payload = 1000;
	tq_queue *q = create_queue(name, &cfg);

	static unsigned char big[1001], exact[1000];
	for (size_t k = 0; k < sizeof big; k++)
		big[k] = (unsigned char)(k * 131u + 7u);
	for (size_t k = 0; k < sizeof exact; k++)
		exact[k] = (unsigned char)(k * 17u + 3u);

	cr_expect_eq(tq_push_data(q, TQ_KIND_STRING, big, 1001, 0), TQ_E2BIG);
	cr_expect_eq(tq_push_data(q, TQ_KIND_JSON, big, UINT32_MAX, 0), TQ_E2BIG);
	tq_task t[4];
	memset(t, 0, sizeof t);
	t[0].kind = TQ_KIND_STRING;
	t[0].data = big;
	t[0].len = 1001;
	cr_expect_eq(tq_push(q, t, 1, 0), TQ_E2BIG);
	t[1] = t[0];
	cr_expect_eq(tq_push(q, t, 2, 0), TQ_E2BIG);
	cr_expect_eq(get_stats(q).total.pushed, 0);
	cr_expect_eq(get_stats(q).free_slots - get_stats(q).dead_capacity - get_stats(q).delay_capacity, 16);

	tq_task out[4];
	tq_stats s;
	/* exactly max_payload: accepted and delivered intact */
	cr_expect_eq(tq_push_data(q, TQ_KIND_JSON, exact, 1000, 0), 0);
	memset(t, 0, sizeof t);
	t[0].kind = TQ_KIND_STRING;
	t[0].data = big; /* first 1000 bytes of big */
	t[0].len = 1000;
	t[1].kind = TQ_KIND_STRING;
	t[1].data = exact + 1;
	t[1].len = 999;
	cr_expect_eq(tq_push(q, t, 2, 0), 2);
	cr_assert_eq(tq_take(q, out, 1, 0), 1);
	cr_expect_eq(out[0].kind, TQ_KIND_JSON);
	cr_expect_eq(out[0].len, 1000);
	cr_expect(memcmp(out[0].data, exact, 1000) == 0, "max-size payload changed");
	cr_assert_eq(tq_take(q, out + 1, 2, 0), 2);
	cr_expect_eq(out[1].len, 1000);
	cr_expect(memcmp(out[1].data, big, 1000) == 0);
	cr_expect_eq(out[2].len, 999);
	cr_expect(memcmp(out[2].data, exact + 1, 999) == 0);
	cr_expect_eq(tq_ack(q, out, 3), 0);
	s = get_stats(q);
	cr_expect_eq(s.total.pushed, 3);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 16);
	tq_close(q);
	tq_destroy(name);
}

/* tq_push: "The batch is validated whole first: one bad task anywhere in it
 * means nothing of it is pushed." A too-big 3rd task: TQ_E2BIG, nothing
 * pushed, no ids written. */
Test(errors, too_big_task_anywhere_pushes_nothing, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "e2big-batch");
	tq_config cfg = small_config(16);
	cfg.max_payload = 1000;
	tq_queue *q = create_queue(name, &cfg);
	static unsigned char big[1001];
	memset(big, 'b', sizeof big);
	tq_task t[4];
	memset(t, 0, sizeof t);
	t[0].kind = TQ_KIND_INT;
	t[0].value = 11;
	t[1].kind = TQ_KIND_STRING;
	t[1].data = "second";
	t[1].len = 6;
	t[2].kind = TQ_KIND_JSON;
	t[2].data = big;
	t[2].len = 1001;
	t[3].kind = TQ_KIND_INT;
	t[3].value = 44;
	int r = tq_push(q, t, 4, 0);
	cr_expect_eq(r, TQ_E2BIG, "batch with a too-big 3rd task: %d %s", r, tq_strerror(r));
	r = tq_push(q, t, 4, 50 * MS);
	cr_expect_eq(r, TQ_E2BIG, "the same with a timeout: %d %s", r, tq_strerror(r));
	/* too big and a bad kind: refused either way, nothing pushed */
	t[3].kind = 77;
	r = tq_push(q, t, 4, 0);
	cr_expect(r == TQ_E2BIG || r == TQ_EINVAL, "too big + bad kind: %d", r);
	/* too big and a full queue: the size is checked first */
	t[3].kind = TQ_KIND_INT;
	for (unsigned k = 0; k < 16; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	r = tq_push(q, t, 4, 0);
	cr_expect_eq(r, TQ_E2BIG, "too big on a full queue: %d %s", r, tq_strerror(r));

	tq_stats s = get_stats(q);
	cr_expect_eq(s.total.pushed, 16, "pushed %llu", (unsigned long long)s.total.pushed);
	cr_expect_eq(s.ready, 16);
	tq_task out[16];
	cr_assert_eq(tq_take(q, out, 16, 0), 16);
	for (unsigned k = 0; k < 16; k++)
		cr_expect_eq(out[k].value, k, "a task of a refused batch was pushed");
	cr_expect_eq(tq_ack(q, out, 16), 0);
	cr_expect_eq(tq_take(q, out, 1, 0), TQ_EAGAIN);
	tq_close(q);
	tq_destroy(name);
}

/* The lease in priv is corrupted: the library must refuse it (EINVAL, or
 * ELOST) without harming the real lease or anything else. */
Test(errors, corrupted_lease, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "bad-priv");
	tq_config cfg = small_config(8);
	tq_queue *q = create_queue(name, &cfg);
	for (unsigned k = 0; k < 3; k++)
		cr_assert_eq(tq_push_int(q, k, 0), 0);
	tq_task t;
	cr_assert_eq(tq_take(q, &t, 1, 0), 1);

	uint64_t p0 = t.priv[0], p1 = t.priv[1];
	uint64_t vars[][2] = {
		{ p0 ^ 1, p1 ^ 1 },
		{ p0 + 1, p1 + 1 },
		{ p0 - 1, p1 - 1 },
		{ 0, 0 },
		{ UINT64_MAX, UINT64_MAX },
		{ p0 ^ (1ull << 63), p1 ^ (1ull << 63) },
		{ p0 ^ 0xffffffff00000000ull, p1 ^ 0xffffffff00000000ull },
		{ p0 ^ 0xffffffffull, p1 ^ 0xffffffffull },
		{ p0 ^ 0x0000ffff0000ffffull, p1 ^ 0x0000ffff0000ffffull },
		{ 0x123456789abcdefull, 0xfedcba987654321ull },
		{ p1, p0 },
	};
	for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
		tq_task bad = t;
		bad.priv[0] = vars[k][0];
		bad.priv[1] = vars[k][1];
		if (bad.priv[0] == p0 && bad.priv[1] == p1)
			continue;
		int r = tq_ack(q, &bad, 1);
		cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "ack variant %zu: %d %s", k, r,
			  tq_strerror(r));
		r = tq_touch(q, &bad, 1, 0);
		cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "touch variant %zu: %d %s", k, r,
			  tq_strerror(r));
		r = tq_fail(q, &bad, 1, 1, "bad");
		cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "fail variant %zu: %d %s", k, r,
			  tq_strerror(r));
	}
	tq_stats s = get_stats(q);
	cr_expect_eq(s.leased, 1);
	cr_expect_eq(s.ready, 2);
	cr_expect_eq(s.dead, 0);
	cr_expect_eq(s.delayed, 0);
	cr_expect_eq(s.total.acked, 0);
	cr_expect_eq(s.total.failed, 0);

	/* the real lease still works, then a second ack is refused */
	cr_expect_eq(tq_touch(q, &t, 1, 0), 0);
	cr_expect_eq(tq_ack(q, &t, 1), 0);
	int r = tq_ack(q, &t, 1);
	cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "second ack: %d %s", r, tq_strerror(r));
	tq_task rest[3];
	cr_assert_eq(tq_take(q, rest, 3, 0), 2);
	cr_expect_eq(rest[0].value, 1);
	cr_expect_eq(rest[1].value, 2);
	/* a stale copy of the acked task must not ack the slot's new lease */
	r = tq_ack(q, &t, 1);
	cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "stale ack: %d", r);
	cr_expect_eq(tq_ack(q, rest, 2), 0);
	s = get_stats(q);
	cr_expect_eq(s.leased, 0);
	cr_expect_eq(s.ready, 0);
	cr_expect_eq(s.total.acked, 3);
	cr_expect_eq(s.free_slots - s.dead_capacity - s.delay_capacity, 8);
	tq_close(q);
	tq_destroy(name);
}

Test(errors, lease_from_another_queue, .timeout = 60, .fini = cleanup_queues)
{
	char na[TQT_NAME_LEN], nb[TQT_NAME_LEN];
	tqt_name(na, "other-a");
	tqt_name(nb, "other-b");
	tq_config ca = small_config(8), cb = small_config(4096);
	tq_queue *a = create_queue(na, &ca);
	tq_queue *b = create_queue(nb, &cb);
	for (unsigned k = 0; k < 3000; k++)
		cr_assert_eq(tq_push_int(b, k, 0), 0);
	static tq_task tb[3000];
	unsigned got = 0;
	while (got < 3000) {
		int r = tq_take(b, tb + got, 3000 - got, 0);
		cr_assert_gt(r, 0);
		got += (unsigned)r;
	}
	cr_assert_eq(tq_push_int(a, 1, 0), 0);
	tq_task ta;
	cr_assert_eq(tq_take(a, &ta, 1, 0), 1);
	/* leases of b's high slots are out of range for a */
	int r = tq_ack(a, &tb[2999], 1);
	cr_expect(r == TQ_EINVAL || r == TQ_ELOST, "foreign ack: %d", r);
	/* b's first task has the same slot index, owner record and ring
	 * position as a's only task: only the queue differs */
	r = tq_ack(a, &tb[0], 1);
	cr_expect(r == TQ_EINVAL || r == TQ_ELOST,
		  "ack on queue a of queue b's first task: %d %s", r, tq_strerror(r));
	cr_expect_eq(get_stats(a).leased, 1, "a's own task was acked by b's task");
	r = tq_ack(a, &ta, 1);
	cr_expect_eq(r, 0, "a's own ack: %d %s", r, tq_strerror(r));
	cr_expect_eq(tq_ack(b, tb, 3000), 0);
	cr_expect_eq(get_stats(b).free_slots - get_stats(b).dead_capacity - get_stats(b).delay_capacity, 4096);
	tq_close(a);
	tq_close(b);
	tq_destroy(na);
	tq_destroy(nb);
}

Test(errors, strerror_names_every_code, .timeout = 60, .fini = cleanup_queues)
{
	enum { NCODES = 1 - TQ_ESTOPPED }; /* 0 .. TQ_ESTOPPED */
	const char *s[NCODES];
	for (int e = 0; e >= -(NCODES - 1); e--) {
		s[-e] = tq_strerror(e);
		cr_assert_not_null(s[-e], "code %d", e);
		cr_expect_gt(strlen(s[-e]), 0, "code %d", e);
	}
	for (int i = 0; i < NCODES; i++)
		for (int j = 0; j < i; j++)
			cr_expect_str_neq(s[i], s[j], "codes %d and %d share \"%s\"", -i, -j, s[i]);
	int unknown[] = { 1, 17, -(NCODES), -100, INT_MIN, INT_MAX };
	for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
		const char *u = tq_strerror(unknown[k]);
		cr_assert_not_null(u, "code %d", unknown[k]);
		cr_expect_gt(strlen(u), 0, "code %d", unknown[k]);
	}
}

/* ---------------------------------------------------------- bad segments */

/* The shm object of queue `name`. */
static void shm_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/taskq.%s", name);
}

/* Creates the shm object of queue `name` holding exactly `len` bytes. */
static void put_segment(const char *name, const void *bytes, size_t len)
{
	char path[TQT_NAME_LEN + 16];
	shm_path(path, sizeof path, name);
	shm_unlink(path);
	remember(name);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "shm_open(%s): %s", path, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)bytes + done, len - done, (off_t)done);
		cr_assert_gt(w, 0);
		done += (size_t)w;
	}
	close(fd);
}

static void drop_segment(const char *name)
{
	char path[TQT_NAME_LEN + 16];
	shm_path(path, sizeof path, name);
	shm_unlink(path);
}

/* Reads the whole shm object of queue `name`; *len gets its size. */
static unsigned char *get_segment(const char *name, size_t *len)
{
	char path[TQT_NAME_LEN + 16];
	shm_path(path, sizeof path, name);
	int fd = shm_open(path, O_RDONLY, 0);
	cr_assert_geq(fd, 0, "shm_open(%s): %s", path, strerror(errno));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	unsigned char *buf = malloc(*len ? *len : 1);
	cr_assert_not_null(buf);
	size_t done = 0;
	while (done < *len) {
		ssize_t r = pread(fd, buf + done, *len - done, (off_t)done);
		cr_assert_gt(r, 0);
		done += (size_t)r;
	}
	close(fd);
	return buf;
}

/* Opens `name`; returns the code (closing the handle if it opened). */
static int try_open(const char *name)
{
	tq_queue *q = NULL;
	int rc = tq_open(name, &q);
	if (rc == 0) {
		cr_expect_not_null(q);
		tq_close(q);
	}
	return rc;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	uint64_t x = rnd_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

Test(errors, foreign_segments, .timeout = 60, .fini = cleanup_queues)
{
	char name[TQT_NAME_LEN];
	tqt_name(name, "foreign");
	size_t big = 1u << 20;
	unsigned char *buf = malloc(big);
	cr_assert_not_null(buf);

	/* empty */
	put_segment(name, buf, 0);
	int rc = try_open(name);
	cr_expect(rc == TQ_EBADQUEUE || rc == TQ_EINIT, "empty file: %d %s", rc,
		  tq_strerror(rc));
	cr_log_info("empty segment: tq_open = %d (%s)", rc, tq_strerror(rc));

	/* 10 bytes */
	memcpy(buf, "garbage!!!", 10);
	put_segment(name, buf, 10);
	rc = try_open(name);
	cr_expect_eq(rc, TQ_EBADQUEUE, "10-byte file: %d %s", rc, tq_strerror(rc));

	/* 10 bytes that start like a queue */
	uint64_t magic = TQ_MAGIC;
	memcpy(buf, &magic, 8);
	put_segment(name, buf, 10);
	rc = try_open(name);
	cr_expect_eq(rc, TQ_EBADQUEUE, "10 bytes with the magic: %d %s", rc, tq_strerror(rc));

	/* 1 MiB of random bytes */
	for (size_t k = 0; k < big / 8; k++) {
		uint64_t v = rnd();
		memcpy(buf + k * 8, &v, 8);
	}
	put_segment(name, buf, big);
	rc = try_open(name);
	cr_expect_eq(rc, TQ_EBADQUEUE, "1 MiB random: %d %s", rc, tq_strerror(rc));

	/* 1 MiB of random bytes behind the right magic and version */
	struct tq_hdr *h = (struct tq_hdr *)buf;
	h->magic = TQ_MAGIC;
	h->version = TQ_LAYOUT_VERSION;
	put_segment(name, buf, big);
	rc = try_open(name);
	cr_expect_eq(rc, TQ_EBADQUEUE, "random with magic+version: %d %s", rc, tq_strerror(rc));

	/* all zeros: a header not (yet) written */
	memset(buf, 0, big);
	put_segment(name, buf, sizeof(struct tq_hdr));
	rc = try_open(name);
	cr_expect(rc == TQ_EBADQUEUE || rc == TQ_EINIT, "zero header: %d %s", rc,
		  tq_strerror(rc));
	cr_log_info("all-zero header-sized segment: tq_open = %d (%s)", rc, tq_strerror(rc));
	put_segment(name, buf, big);
	rc = try_open(name);
	cr_expect(rc == TQ_EBADQUEUE || rc == TQ_EINIT, "1 MiB of zeros: %d %s", rc,
		  tq_strerror(rc));
	cr_log_info("all-zero 1 MiB segment: tq_open = %d (%s)", rc, tq_strerror(rc));

	drop_segment(name);
	free(buf);
}

/* A real queue's segment, copied under another name and then damaged. */
struct seg_case {
	const char *what;
	size_t off; /* field offset in struct tq_hdr */
	size_t size; /* 4 or 8 */
	int how;     /* 0: +1, 1: xor 1, 2: set to `val`, 3: double */
	uint64_t val;
	int expect;
	int expect_alt; /* also accepted (0: none) */
};

static void damage(unsigned char *seg, const struct seg_case *c)
{
	uint64_t v = 0;
	memcpy(&v, seg + c->off, c->size);
	switch (c->how) {
	case 0: v += 1; break;
	case 1: v ^= 1; break;
	case 2: v = c->val; break;
	default: v *= 2; break;
	}
	memcpy(seg + c->off, &v, c->size);
}

#define FIELD(f) offsetof(struct tq_hdr, f), sizeof(((struct tq_hdr *)0)->f)

Test(errors, damaged_copies_of_a_real_segment, .timeout = 60, .fini = cleanup_queues)
{
	char src[TQT_NAME_LEN], dst[TQT_NAME_LEN];
	tqt_name(src, "seg-src");
	tqt_name(dst, "seg-dst");
	tq_config cfg = small_config(16);
	cfg.max_payload = 128;
	tq_queue *q = create_queue(src, &cfg);
	cr_assert_eq(tq_push_data(q, TQ_KIND_STRING, "kept", 4, 0), 0);
	tq_close(q);
	size_t len;
	unsigned char *seg = get_segment(src, &len);
	cr_assert_geq(len, sizeof(struct tq_hdr));
	unsigned char *copy = malloc(len);
	cr_assert_not_null(copy);

	/* Control: an exact copy is a valid queue holding the same task. */
	put_segment(dst, seg, len);
	q = NULL;
	int rc = tq_open(dst, &q);
	cr_expect_eq(rc, 0, "exact copy: %d %s", rc, tq_strerror(rc));
	if (rc == 0) {
		tq_task t;
		cr_expect_eq(tq_take(q, &t, 1, 0), 1);
		cr_expect_eq(t.len, 4);
		cr_expect(t.data && memcmp(t.data, "kept", 4) == 0);
		cr_expect_eq(tq_ack(q, &t, 1), 0);
		tq_close(q);
	}

	/* truncated */
	size_t cuts[] = { len / 2, len - 1, sizeof(struct tq_hdr), 64, 8 };
	for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
		put_segment(dst, seg, cuts[k]);
		rc = try_open(dst);
		cr_expect_eq(rc, TQ_EBADQUEUE, "truncated to %zu of %zu: %d %s", cuts[k], len,
			     rc, tq_strerror(rc));
	}

	const struct seg_case cases[] = {
		{ "magic xor 1", FIELD(magic), 1, 0, TQ_EBADQUEUE, 0 },
		{ "magic zero", FIELD(magic), 2, 0, TQ_EBADQUEUE, TQ_EINIT },
		{ "version + 1", FIELD(version), 0, 0, TQ_EVERSION, 0 },
		{ "version 0xffffffff", FIELD(version), 2, 0xffffffffu, TQ_EVERSION, 0 },
		{ "capacity + 1", FIELD(capacity), 0, 0, TQ_EBADQUEUE, 0 },
		{ "capacity * 2", FIELD(capacity), 3, 0, TQ_EBADQUEUE, 0 },
		{ "capacity 0", FIELD(capacity), 2, 0, TQ_EBADQUEUE, 0 },
		{ "capacity 0xffffffff", FIELD(capacity), 2, 0xffffffffu, TQ_EBADQUEUE, 0 },
		{ "max_payload + 1", FIELD(max_payload), 0, 0, TQ_EBADQUEUE, 0 },
		{ "max_payload huge", FIELD(max_payload), 2, 0xfffffff0u, TQ_EBADQUEUE, 0 },
		{ "payload_stride * 2", FIELD(payload_stride), 3, 0, TQ_EBADQUEUE, 0 },
		{ "ring_size * 2", FIELD(ring_size), 3, 0, TQ_EBADQUEUE, 0 },
		{ "ring_size 0", FIELD(ring_size), 2, 0, TQ_EBADQUEUE, 0 },
		{ "max_procs + 1", FIELD(max_procs), 0, 0, TQ_EBADQUEUE, 0 },
		{ "hdr_size + 1", FIELD(hdr_size), 0, 0, TQ_EBADQUEUE, 0 },
		{ "total_size * 2", FIELD(total_size), 3, 0, TQ_EBADQUEUE, 0 },
		{ "total_size + 1", FIELD(total_size), 0, 0, TQ_EBADQUEUE, 0 },
		{ "off_procs + 64", FIELD(off_procs), 2, 0, TQ_EBADQUEUE, 0 },
		{ "off_slots huge", FIELD(off_slots), 2, 1ull << 40, TQ_EBADQUEUE, 0 },
		{ "off_ready_cells + 1", FIELD(off_ready_cells), 0, 0, TQ_EBADQUEUE, 0 },
		{ "off_payload huge", FIELD(off_payload), 2, UINT64_MAX - 8, TQ_EBADQUEUE, 0 },
		{ "delay_capacity + 1", FIELD(delay_capacity), 0, 0, TQ_EBADQUEUE, 0 },
		{ "delay_capacity 0", FIELD(delay_capacity), 2, 0, TQ_EBADQUEUE, 0 },
		{ "delay_capacity 0xffffffff", FIELD(delay_capacity), 2, 0xffffffffu, TQ_EBADQUEUE, 0 },
		{ "slots + 1", FIELD(slots), 0, 0, TQ_EBADQUEUE, 0 },
		{ "payload_units * 2", FIELD(payload_units), 3, 0, TQ_EBADQUEUE, 0 },
		{ "payload_units 0", FIELD(payload_units), 2, 0, TQ_EBADQUEUE, 0 },
		{ "payload_units huge", FIELD(payload_units), 2, UINT64_MAX / 64, TQ_EBADQUEUE, 0 },
		{ "off_owners + 1", FIELD(off_owners), 0, 0, TQ_EBADQUEUE, 0 },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		memcpy(copy, seg, len);
		struct seg_case c = cases[k];
		if (strcmp(c.what, "off_procs + 64") == 0) {
			uint64_t v;
			memcpy(&v, copy + c.off, 8);
			c.val = v + 64;
		}
		damage(copy, &c);
		put_segment(dst, copy, len);
		rc = try_open(dst);
		cr_expect(rc == c.expect || (c.expect_alt && rc == c.expect_alt),
			  "%s: %d %s (expected %d %s)", c.what, rc, tq_strerror(rc), c.expect,
			  tq_strerror(c.expect));
		if (c.expect_alt)
			cr_log_info("%s: tq_open = %d (%s)", c.what, rc, tq_strerror(rc));
	}

	/* the original is untouched by all that */
	q = NULL;
	rc = tq_open(src, &q);
	cr_expect_eq(rc, 0, "source queue: %d %s", rc, tq_strerror(rc));
	if (rc == 0) {
		cr_expect_eq(get_stats(q).ready, 1);
		tq_close(q);
	}
	drop_segment(dst);
	tq_destroy(src);
	free(copy);
	free(seg);
}
