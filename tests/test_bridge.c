/* SPDX-License-Identifier: MIT */
/*
 * test_bridge.c - taskq-bridge between two queues through a real
 * nats-server with JetStream, started and stopped here on loopback: every
 * task arrives, the importing side acks upstream only once its tasks are
 * finished locally, malformed messages are dead-lettered while the bridge
 * keeps running, and killed bridges lose nothing.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nats/nats.h>

#include "frame.h"
#include "natsserver.h"
#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif

#define BR_SEC 1000000000ull

static char br_dir[256];
static char br_url[256];
static pid_t br_server;
static pid_t br_bridges[8];
static int br_nbridges;
static char br_qa[TQT_NAME_LEN], br_qb[TQT_NAME_LEN], br_qc[TQT_NAME_LEN];
static natsConnection *br_nc;
static jsCtx *br_js;

/* Runs argv with stdout and stderr to `log`, dying with this process. */
static pid_t br_spawn(char *const argv[], const char *log)
{
	pid_t pid = tqn_spawn(argv, log);
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	return pid;
}

static void br_start_server(void)
{
	char why[512];
	cr_assert_eq(tqn_start("taskq-bridge-test", br_dir, sizeof br_dir, br_url, sizeof br_url, &br_server, why,
			       sizeof why),
		     0, "%s", why);
	cr_assert_eq(natsConnection_ConnectTo(&br_nc, br_url), NATS_OK);
	cr_assert_eq(natsConnection_JetStream(&br_js, br_nc, NULL), NATS_OK);
}

static void br_fini(void)
{
	for (int i = 0; i < br_nbridges; i++)
		if (br_bridges[i] > 0) {
			kill(br_bridges[i], SIGKILL);
			waitpid(br_bridges[i], NULL, 0);
		}
	br_nbridges = 0;
	if (br_js)
		jsCtx_Destroy(br_js);
	br_js = NULL;
	if (br_nc)
		natsConnection_Destroy(br_nc);
	br_nc = NULL;
	tqn_stop(br_server);
	br_server = 0;
	if (br_qa[0])
		tq_destroy(br_qa);
	if (br_qb[0])
		tq_destroy(br_qb);
	if (br_qc[0])
		tq_destroy(br_qc);
	if (br_dir[0] && !getenv("TQ_KEEP_BRIDGE_LOGS")) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", br_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", br_dir);
	}
	br_dir[0] = '\0';
}

static tq_queue *br_queue(char *name, const char *test, uint32_t cap)
{
	tq_config c;
	tq_queue *q = NULL;
	tqt_name(name, test);
	tq_destroy(name);
	tq_config_init(&c);
	c.capacity = cap;
	c.max_payload = 256;
	c.lease_ns = 30 * BR_SEC;
	int rc = tq_create(name, &c, &q);
	cr_assert_eq(rc, 0, "tq_create(%s): %s", name, tq_strerror(rc));
	return q;
}

/* Starts `taskq-bridge MODE QUEUE --nats URL --stream S ...extra`. */
/* The last lines of the bridges' logs, for a failure message: the
 * directory is removed when the test ends. */
static const char *br_log_tails(void)
{
	static char out[2048];
	size_t used = 0;
	const char *modes[2] = {"out", "in"};

	out[0] = 0;
	for (int m = 0; m < 2; m++) {
		char path[320], tail[480];
		snprintf(path, sizeof path, "%s/bridge-%s.log", br_dir, modes[m]);
		FILE *f = fopen(path, "r");
		size_t n = 0;
		if (f) {
			if (fseek(f, 0, SEEK_END) == 0) {
				long end = ftell(f);
				(void)fseek(f, end > (long)sizeof tail - 1 ? end - (long)sizeof tail + 1 : 0, SEEK_SET);
			}
			n = fread(tail, 1, sizeof tail - 1, f);
			fclose(f);
		}
		tail[n] = 0;
		int w = snprintf(out + used, sizeof out - used, "\n--- bridge-%s.log (end) ---\n%s", modes[m],
				 f ? tail : "(none)");
		if (w < 0 || (size_t)w >= sizeof out - used)
			break;
		used += (size_t)w;
	}
	return out;
}

static pid_t br_bridge(const char *mode, const char *queue, const char *stream, const char *extra1,
		       const char *extra2, const char *extra3, const char *extra4)
{
	char log[320];
	snprintf(log, sizeof log, "%s/bridge-%s.log", br_dir, mode);
	char *argv[16] = {TQ_BIN_DIR "/taskq-bridge", (char *)mode, (char *)queue, "--nats", br_url, "--stream",
			  (char *)stream};
	int n = 7;
	const char *extra[4] = {extra1, extra2, extra3, extra4};
	for (int i = 0; i < 4; i++)
		if (extra[i])
			argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	pid_t pid = br_spawn(argv, log);
	if (br_nbridges < 8)
		br_bridges[br_nbridges++] = pid;
	return pid;
}

static void br_forget(pid_t pid)
{
	for (int i = 0; i < br_nbridges; i++)
		if (br_bridges[i] == pid)
			br_bridges[i] = 0;
}

/* Stops a bridge with SIGTERM; it must exit 0 within 20 s. */
static void br_term(pid_t pid, const char *what)
{
	kill(pid, SIGTERM);
	int st = tqt_wait(pid, 20000);
	br_forget(pid);
	cr_expect_eq(st, 0, "%s: exit status %d after SIGTERM (logs in %s)", what, st, br_dir);
}

static int64_t br_ack_pending(const char *stream, const char *consumer, uint64_t *num_pending)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetConsumerInfo(&ci, br_js, stream, consumer, NULL, &jerr);
	cr_assert_eq(s, NATS_OK, "consumer info: %s (%d)", natsStatus_GetText(s), (int)jerr);
	int64_t n = ci->NumAckPending;
	if (num_pending)
		*num_pending = ci->NumPending;
	jsConsumerInfo_Destroy(ci);
	return n;
}

/* Waits (bounded) until the bridge in has created its consumer. */
static void br_wait_consumer(const char *stream, const char *consumer)
{
	uint64_t deadline = tqt_now_ms() + 15000;
	for (;;) {
		jsConsumerInfo *ci = NULL;
		jsErrCode jerr = 0;
		if (js_GetConsumerInfo(&ci, br_js, stream, consumer, NULL, &jerr) == NATS_OK) {
			jsConsumerInfo_Destroy(ci);
			return;
		}
		cr_assert(tqt_now_ms() < deadline, "consumer %s of stream %s never appeared (logs in %s)", consumer,
			  stream, br_dir);
		tqt_sleep_ms(20);
	}
}

/* Pushes integer tasks lo..hi-1 (value = index) into a, 64 per call. */
static void br_push_ints(tq_queue *a, uint32_t lo, uint32_t hi)
{
	tq_task t[64];
	for (uint32_t v = lo; v < hi;) {
		uint32_t n = hi - v < 64 ? hi - v : 64;
		memset(t, 0, sizeof t);
		for (uint32_t i = 0; i < n; i++) {
			t[i].kind = TQ_KIND_INT;
			t[i].value = v + i;
		}
		int k = tq_push(a, t, n, 30 * BR_SEC);
		cr_assert_gt(k, 0, "push into A: %d (%s); logs in %s", k, tq_strerror(k), br_dir);
		v += (uint32_t)k;
	}
}

/* ===================================================== every task arrives */

#define MV_INTS 20000u
#define MV_JSON 2000u

Test(bridge, moves_every_task_between_two_queues, .timeout = 120, .fini = br_fini)
{
	br_start_server();
	tq_queue *a = br_queue(br_qa, "bra", 4096), *b = br_queue(br_qb, "brb", 1024);
	uint8_t *seen = calloc(MV_INTS + MV_JSON, 1);
	cr_assert_not_null(seen);

	pid_t out = br_bridge("out", br_qa, "MV", "--linger", "0.002", NULL, NULL);
	pid_t in = br_bridge("in", br_qb, "MV", "--consumer", "work", NULL, NULL);
	/* Pushed while the bridges run: the local queue (4096) is smaller
	 * than what goes through it. */
	tq_task t[64];
	for (uint32_t v = 0; v < MV_INTS + MV_JSON;) {
		uint32_t n = 0;
		char js[64][32];
		memset(t, 0, sizeof t);
		for (; n < 64 && v + n < MV_INTS + MV_JSON; n++) {
			uint32_t x = v + n;
			if (x < MV_INTS) {
				t[n].kind = TQ_KIND_INT;
				t[n].value = x;
			} else {
				t[n].kind = TQ_KIND_JSON;
				t[n].len = (uint32_t)snprintf(js[n], sizeof js[n], "{\"v\":%u}", x);
				t[n].data = js[n];
			}
		}
		int k = tq_push(a, t, n, 30 * BR_SEC);
		cr_assert_gt(k, 0, "push into A: %d (%s); logs in %s", k, tq_strerror(k), br_dir);
		v += (uint32_t)k;
	}
	/* Workers on B: every value exactly once (no crash here). */
	uint32_t got = 0;
	uint64_t deadline = tqt_now_ms() + 90000;
	while (got < MV_INTS + MV_JSON) {
		cr_assert(tqt_now_ms() < deadline, "only %u of %u arrived (logs in %s)%s", got, MV_INTS + MV_JSON, br_dir,
			  br_log_tails());
		int k = tq_take(b, t, 64, 200000000ull);
		if (k == TQ_ETIMEDOUT)
			continue;
		cr_assert_gt(k, 0, "take from B: %d (%s)", k, tq_strerror(k));
		for (int i = 0; i < k; i++) {
			uint32_t x;
			if (t[i].kind == TQ_KIND_INT) {
				cr_assert_lt(t[i].value, MV_INTS, "value %llu", (unsigned long long)t[i].value);
				x = (uint32_t)t[i].value;
			} else {
				char buf[64];
				cr_assert_eq(t[i].kind, TQ_KIND_JSON);
				cr_assert_lt(t[i].len, sizeof buf);
				memcpy(buf, t[i].data, t[i].len);
				buf[t[i].len] = '\0';
				cr_assert_eq(sscanf(buf, "{\"v\":%u}", &x), 1, "payload '%s'", buf);
				cr_assert(x >= MV_INTS && x < MV_INTS + MV_JSON, "payload '%s'", buf);
			}
			cr_assert_eq(seen[x], 0, "value %u arrived twice", x);
			seen[x] = 1;
			got++;
		}
		cr_assert_eq(tq_ack(b, t, (size_t)k), 0);
	}
	/* Upstream, every message is acked once its tasks are finished here:
	 * the work queue empties. */
	deadline = tqt_now_ms() + 15000;
	uint64_t pending = 0;
	int64_t ackp;
	while ((ackp = br_ack_pending("MV", "work", &pending)) != 0 || pending != 0) {
		cr_assert(tqt_now_ms() < deadline, "consumer: %lld unacked, %llu pending after every task was done",
			  (long long)ackp, (unsigned long long)pending);
		tqt_sleep_ms(20);
	}
	tq_stats s;
	cr_assert_eq(tq_stats_get(a, &s), 0);
	cr_expect_eq(s.total.acked, MV_INTS + MV_JSON, "A acked %llu: each after its PubAck",
		     (unsigned long long)s.total.acked);
	cr_expect_eq(s.ready + s.leased, 0);
	br_term(out, "bridge out");
	br_term(in, "bridge in");
	tq_close(a);
	tq_close(b);
	free(seen);
}

/* ========================== upstream ack only after local completion */

Test(bridge, in_acks_upstream_only_after_local_completion, .timeout = 60, .fini = br_fini)
{
	br_start_server();
	tq_queue *a = br_queue(br_qa, "bra2", 256), *b = br_queue(br_qb, "brb2", 256);
	tq_task t[100], u[100];

	pid_t out = br_bridge("out", br_qa, "LC", "--batch", "100", "--linger", "0.5");
	pid_t in = br_bridge("in", br_qb, "LC", "--consumer", "work", NULL, NULL);
	memset(t, 0, sizeof t);
	for (int i = 0; i < 100; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	cr_assert_eq(tq_push(a, t, 100, BR_SEC), 100);

	/* All 100 taken on B and held: their message is delivered upstream
	 * and not acked, whatever time passes. */
	int got = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (got < 100) {
		cr_assert(tqt_now_ms() < deadline, "only %d arrived (logs in %s)%s", got, br_dir, br_log_tails());
		int k = tq_take(b, u + got, (size_t)(100 - got), 200000000ull);
		if (k > 0)
			got += k;
	}
	uint64_t npend = 0;
	int64_t unacked = br_ack_pending("LC", "work", &npend);
	cr_expect_geq(unacked, 1, "the message is acked upstream though its tasks are held unfinished");
	cr_expect_eq(npend, 0);

	/* Half done: still not acked. */
	cr_assert_eq(tq_ack(b, u, 50), 0);
	cr_expect_geq(br_ack_pending("LC", "work", NULL), 1, "acked upstream with 50 tasks unfinished");

	/* All done: acked upstream (bounded wait for the bridge's next pass). */
	cr_assert_eq(tq_ack(b, u + 50, 50), 0);
	deadline = tqt_now_ms() + 10000;
	while (br_ack_pending("LC", "work", NULL) != 0) {
		cr_assert(tqt_now_ms() < deadline, "not acked upstream 10 s after its tasks were done");
		tqt_sleep_ms(20);
	}
	br_term(out, "bridge out");
	br_term(in, "bridge in");
	tq_close(a);
	tq_close(b);
}

/* ======================================= malformed messages, dead letters */

static void br_publish_raw(const char *subject, const void *data, size_t len)
{
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(NULL, br_js, subject, data, (int)len, NULL, &jerr);
	cr_assert_eq(s, NATS_OK, "publish: %s (%d)", natsStatus_GetText(s), (int)jerr);
}

Test(bridge, malformed_messages_are_dead_lettered_and_the_bridge_goes_on, .timeout = 60, .fini = br_fini)
{
	br_start_server();
	tq_queue *b = br_queue(br_qb, "brb3", 256);
	pid_t in = br_bridge("in", br_qb, "BAD", "--consumer", "work", NULL, NULL);
	br_wait_consumer("BAD", "work");

	/* Four bad messages, then a good one. */
	uint8_t goodbuf[TQF_HEADER + 2 * TQF_TASK_MAX_OVERHEAD], bad[sizeof goodbuf];
	tq_task two[2];
	memset(two, 0, sizeof two);
	two[0].kind = two[1].kind = TQ_KIND_INT;
	two[0].id = 7;
	two[0].value = 700;
	two[1].id = 8;
	two[1].value = 800;
	uint64_t prev = 7;
	tqf_header(goodbuf, 2, prev);
	size_t off = tqf_put(goodbuf, TQF_HEADER, &two[0], &prev);
	off = tqf_put(goodbuf, off, &two[1], &prev);
	cr_assert_eq(off, TQF_HEADER + 2 * 4, "kind, id delta and value: 4 bytes a task");
	const uint8_t *good = goodbuf;
	size_t goodlen = off;

	br_publish_raw("taskq.BAD.tasks", "random bytes, not a frame", 25);
	memcpy(bad, good, goodlen);
	bad[3] = 9; /* unknown version */
	br_publish_raw("taskq.BAD.tasks", bad, goodlen);
	br_publish_raw("taskq.BAD.tasks", good, goodlen - 2); /* cut short */
	tq_task big = {.id = 9, .kind = TQ_KIND_STRING, .len = 300}; /* over B's max_payload 256 */
	static uint8_t bigdata[300], bigmsg[TQF_HEADER + TQF_TASK_MAX_OVERHEAD + 300];
	memset(bigdata, 'x', sizeof bigdata);
	big.data = bigdata;
	uint64_t bprev = 9;
	tqf_header(bigmsg, 1, bprev);
	size_t biglen = tqf_put(bigmsg, TQF_HEADER, &big, &bprev);
	br_publish_raw("taskq.BAD.tasks", bigmsg, biglen);
	uint8_t empty[TQF_HEADER];
	tqf_header(empty, 0, 0); /* well formed, no task: acked, not dead */
	br_publish_raw("taskq.BAD.tasks", empty, sizeof empty);
	br_publish_raw("taskq.BAD.tasks", good, goodlen);

	tq_task u[2];
	int got = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (got < 2) {
		cr_assert(tqt_now_ms() < deadline, "the good message did not arrive (logs in %s)", br_dir);
		int k = tq_take(b, u + got, (size_t)(2 - got), 200000000ull);
		if (k > 0)
			got += k;
	}
	cr_expect_eq(u[0].value, 700);
	cr_expect_eq(u[1].value, 800);
	cr_assert_eq(tq_ack(b, u, 2), 0);

	/* The dead subject holds the four, each with its reason. */
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	jsSubOptions_Init(&so);
	so.Stream = "BAD";
	cr_assert_eq(js_PullSubscribe(&sub, br_js, "taskq.BAD.dead", "deadcheck", NULL, &so, &jerr), NATS_OK,
		     "dead subscription: %d", (int)jerr);
	int dead = 0;
	const char *want[4] = {"magic", "version", "cut short", "max_payload"};
	bool found[4] = {false};
	deadline = tqt_now_ms() + 10000;
	while (dead < 4) {
		cr_assert(tqt_now_ms() < deadline, "%d dead letters of 4 (logs in %s)", dead, br_dir);
		natsMsgList list = {0};
		natsStatus s = natsSubscription_Fetch(&list, sub, 4, 500, &jerr);
		if (s != NATS_OK)
			continue;
		for (int i = 0; i < list.Count; i++) {
			const char *reason = NULL;
			cr_assert_eq(natsMsgHeader_Get(list.Msgs[i], "Taskq-Reason", &reason), NATS_OK);
			for (int w = 0; w < 4; w++)
				if (strstr(reason, want[w]))
					found[w] = true;
			natsMsg_Ack(list.Msgs[i], NULL);
			dead++;
		}
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Destroy(sub);
	for (int w = 0; w < 4; w++)
		cr_expect(found[w], "no dead letter gave the reason '%s'", want[w]);
	/* Still running, and the work queue empty. */
	int st;
	cr_expect_eq(waitpid(in, &st, WNOHANG), 0, "the bridge stopped after malformed messages");
	deadline = tqt_now_ms() + 10000;
	while (br_ack_pending("BAD", "work", NULL) != 0) {
		cr_assert(tqt_now_ms() < deadline, "messages left unacked upstream");
		tqt_sleep_ms(20);
	}
	br_term(in, "bridge in");
	tq_close(b);
}

/* ============================ two machines, bridges killed mid-stream */

#include <sched.h>
#include <sys/mount.h>

#define KL_N 30000u
#define KL_KILLS 3

struct kl_ctx {
	char msg[256];
	uint8_t seen[KL_N];     /* deliveries on machine B, per value */
	uint32_t distinct;      /* values seen at least once */
	uint64_t deliveries;
	int done;               /* set by the parent: stop machine B */
	int in_kills;
	int ready;              /* machine B's queue and bridge are up */
};

static struct kl_ctx *kl;

/* A private /dev/shm: this process and its children are machine B, whose
 * only way to machine A is NATS over TCP. */
static int kl_private_shm(void)
{
	if (unshare(CLONE_NEWNS) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
		return -1;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	return mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=256m");
}

static pid_t kl_bridge_in(const char *qname)
{
	char log[320];
	snprintf(log, sizeof log, "%s/bridge-in.log", br_dir);
	char *argv[] = {TQ_BIN_DIR "/taskq-bridge", "in", (char *)qname, "--nats", br_url, "--stream", "KL",
			"--consumer", "work", "--ack-wait", "2", NULL};
	return br_spawn(argv, log);
}

static int kl_machine_b(void *arg)
{
	(void)arg;
	tq_queue *q = NULL;
	tq_config c;
	char qname[TQT_NAME_LEN];
	if (kl_private_shm() != 0) {
		snprintf(kl->msg, sizeof kl->msg, "a private /dev/shm (unshare, mount): %s", strerror(errno));
		return 2;
	}
	tqt_name(qname, "klb");
	tq_config_init(&c);
	c.capacity = 1024;
	c.max_payload = 64;
	int rc = tq_create(qname, &c, &q);
	if (rc != 0) {
		snprintf(kl->msg, sizeof kl->msg, "machine B tq_create: %s", tq_strerror(rc));
		return 3;
	}
	pid_t in = kl_bridge_in(qname);
	__atomic_store_n(&kl->ready, 1, __ATOMIC_SEQ_CST);
	tq_task t[64];
	uint32_t next_kill = KL_N / (KL_KILLS + 1);
	while (!__atomic_load_n(&kl->done, __ATOMIC_SEQ_CST)) {
		int k = tq_take(q, t, 64, 100000000ull);
		if (k == TQ_ETIMEDOUT)
			continue;
		if (k <= 0) {
			snprintf(kl->msg, sizeof kl->msg, "machine B tq_take: %d (%s)", k, tq_strerror(k));
			return 4;
		}
		for (int i = 0; i < k; i++) {
			if (t[i].kind != TQ_KIND_INT || t[i].value >= KL_N) {
				snprintf(kl->msg, sizeof kl->msg, "machine B got a foreign task (kind %u value %llu)",
					 t[i].kind, (unsigned long long)t[i].value);
				return 5;
			}
			if (kl->seen[t[i].value]++ == 0)
				__atomic_fetch_add(&kl->distinct, 1, __ATOMIC_SEQ_CST);
			kl->deliveries++;
		}
		if (tq_ack(q, t, (size_t)k) != 0)
			return 6;
		/* Killed at set points of the stream (not on a timer), then
		 * started again. */
		if (kl->in_kills < KL_KILLS && kl->distinct >= next_kill) {
			kill(in, SIGKILL);
			waitpid(in, NULL, 0);
			kl->in_kills++;
			next_kill += KL_N / (KL_KILLS + 1);
			in = kl_bridge_in(qname);
		}
	}
	kill(in, SIGTERM);
	int st = tqt_wait(in, 20000);
	tq_close(q);
	tq_destroy(qname);
	if (st != 0) {
		snprintf(kl->msg, sizeof kl->msg, "machine B's bridge in exited %d after SIGTERM", st);
		return 7;
	}
	return 0;
}

Test(bridge, two_machines_and_killed_bridges_lose_nothing, .timeout = 150, .fini = br_fini)
{
	br_start_server();
	tq_queue *a = br_queue(br_qa, "kla", 2048);
	kl = tqt_shared(sizeof *kl);

	pid_t machine_b = tqt_fork(kl_machine_b, NULL);
	uint64_t deadline = tqt_now_ms() + 20000;
	while (!__atomic_load_n(&kl->ready, __ATOMIC_SEQ_CST)) {
		int st;
		if (waitpid(machine_b, &st, WNOHANG) == machine_b)
			cr_assert_fail("machine B exited (%d): %s", st, kl->msg);
		cr_assert(tqt_now_ms() < deadline, "machine B never came up");
		tqt_sleep_ms(5);
	}
	pid_t out = br_bridge("out", br_qa, "KL", "--batch", "256", NULL, NULL);
	/* Machine A: producers push; the bridge out is killed at set points
	 * of the stream and started again. */
	int out_kills = 0;
	uint32_t next_kill = KL_N / (KL_KILLS + 1);
	for (uint32_t v = 0; v < KL_N;) {
		uint32_t n = KL_N - v < 64 ? KL_N - v : 64;
		br_push_ints(a, v, v + n);
		v += n;
		tq_stats s;
		cr_assert_eq(tq_stats_get(a, &s), 0);
		if (out_kills < KL_KILLS && s.total.acked >= next_kill) {
			kill(out, SIGKILL);
			waitpid(out, NULL, 0);
			br_forget(out);
			out_kills++;
			next_kill += KL_N / (KL_KILLS + 1);
			out = br_bridge("out", br_qa, "KL", "--batch", "256", NULL, NULL);
		}
	}
	deadline = tqt_now_ms() + 90000;
	while (__atomic_load_n(&kl->distinct, __ATOMIC_SEQ_CST) < KL_N) {
		int st;
		if (waitpid(machine_b, &st, WNOHANG) == machine_b)
			cr_assert_fail("machine B exited (%d): %s", st, kl->msg);
		cr_assert(tqt_now_ms() < deadline, "%u of %u values reached machine B (logs in %s)", kl->distinct,
			  KL_N, br_dir);
		tqt_sleep_ms(10);
	}
	__atomic_store_n(&kl->done, 1, __ATOMIC_SEQ_CST);
	int st = tqt_wait(machine_b, 30000);
	cr_assert_eq(st, 0, "machine B: %d: %s", st, kl->msg);
	br_term(out, "bridge out");
	cr_expect_eq(out_kills, KL_KILLS);
	cr_expect_eq(kl->in_kills, KL_KILLS);
	uint32_t lost = 0, dups = 0;
	for (uint32_t v = 0; v < KL_N; v++) {
		lost += kl->seen[v] == 0;
		dups += kl->seen[v] > 1;
	}
	cr_expect_eq(lost, 0, "%u values never reached machine B", lost);
	cr_log_info("two machines: %u values, %llu deliveries, %u delivered more than once (killed bridges: "
		    "%d out, %d in)",
		    KL_N, (unsigned long long)kl->deliveries, dups, out_kills, kl->in_kills);
	tq_close(a);
}

/* ============================================= usage and exit statuses */

static int br_run(char *const argv[], char *out, size_t size)
{
	char log[300];
	snprintf(log, sizeof log, "%s/run.log", br_dir);
	unlink(log);
	pid_t pid = br_spawn(argv, log);
	int st = tqt_wait(pid, 20000);
	FILE *f = fopen(log, "r");
	size_t n = f ? fread(out, 1, size - 1, f) : 0;
	if (f)
		fclose(f);
	out[n] = '\0';
	return st;
}

Test(bridge, usage_errors_and_exit_statuses, .timeout = 60, .fini = br_fini)
{
	static char out[8192];
	snprintf(br_dir, sizeof br_dir, "/tmp/taskq-bridge-test-%d-XXXXXX", (int)getpid());
	cr_assert_not_null(mkdtemp(br_dir));

	char *help[] = {TQ_BIN_DIR "/taskq", "bridge", "--help", NULL};
	cr_expect_eq(br_run(help, out, sizeof out), 0, "taskq bridge --help: %s", out);
	cr_expect(strncmp(out, "usage: taskq bridge out NAME", 28) == 0, "help: %s", out);

	char *mode[] = {TQ_BIN_DIR "/taskq-bridge", "sideways", "q", NULL};
	cr_expect_eq(br_run(mode, out, sizeof out), 2, "%s", out);
	cr_expect(strstr(out, "out, in, stats, top or stop") != NULL, "%s", out);

	char *nostream[] = {TQ_BIN_DIR "/taskq-bridge", "out", "q", "--nats", "nats://127.0.0.1:1", NULL};
	cr_expect_eq(br_run(nostream, out, sizeof out), 2, "%s", out);
	cr_expect(strstr(out, "--stream") != NULL, "%s", out);

	char *noconsumer[] = {TQ_BIN_DIR "/taskq-bridge", "in", "q", "--nats", "nats://127.0.0.1:1", "--stream",
			      "S", NULL};
	cr_expect_eq(br_run(noconsumer, out, sizeof out), 2, "%s", out);

	char *badsubj[] = {TQ_BIN_DIR "/taskq-bridge", "out", "q", "--nats", "nats://127.0.0.1:1", "--stream", "S",
			   "--subject", "a.*", NULL};
	cr_expect_eq(br_run(badsubj, out, sizeof out), 2, "wildcard subject: %s", out);

	char *secret[] = {TQ_BIN_DIR "/taskq-bridge", "out", "q", "--nats", "nats://127.0.0.1:1", "--stream", "S",
			  "--token-file", "/nonexistent/token", NULL};
	cr_expect_eq(br_run(secret, out, sizeof out), 2, "missing token file: %s", out);

	char name[TQT_NAME_LEN];
	tqt_name(name, "brnone");
	tq_destroy(name);
	char *noqueue[] = {TQ_BIN_DIR "/taskq-bridge", "out", name, "--nats", "nats://127.0.0.1:1", "--stream", "S",
			   NULL};
	cr_expect_eq(br_run(noqueue, out, sizeof out), 3, "no such queue: %s", out);
}

/* ================================== a queue created again: no id clash */

static void br_take_n(tq_queue *q, uint32_t n, uint64_t base)
{
	tq_task u[64];
	uint32_t got = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	while (got < n) {
		cr_assert(tqt_now_ms() < deadline, "%u of %u arrived (logs in %s)%s", got, n, br_dir, br_log_tails());
		int k = tq_take(q, u, 64, 200000000ull);
		if (k <= 0)
			continue;
		for (int i = 0; i < k; i++)
			cr_expect(u[i].value >= base && u[i].value < base + n, "value %llu",
				  (unsigned long long)u[i].value);
		cr_assert_eq(tq_ack(q, u, (size_t)k), 0);
		got += (uint32_t)k;
	}
}

Test(bridge, a_queue_created_again_is_not_taken_for_a_resend, .timeout = 60, .fini = br_fini)
{
	br_start_server();
	tq_queue *a = br_queue(br_qa, "bra5", 256), *b = br_queue(br_qb, "brb5", 256);
	uint64_t inst1 = 0, inst1b = 0, inst2 = 0;
	tq_queue *a2 = NULL;
	cr_assert_eq(tq_open(br_qa, &a2), 0);
	cr_assert_eq(tq_instance(a, &inst1), 0);
	cr_assert_eq(tq_instance(a2, &inst1b), 0);
	cr_expect_eq(inst1, inst1b, "two handles on one queue disagree on its instance");
	tq_close(a2);
	cr_expect_eq(tq_instance(a, NULL), TQ_EINVAL);

	pid_t in = br_bridge("in", br_qb, "RE", "--consumer", "work", NULL, NULL);
	tq_task t[10];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 10; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = 100 + (uint64_t)i;
	}
	cr_assert_eq(tq_push(a, t, 10, BR_SEC), 10); /* ids 1..10 */
	pid_t out = br_bridge("out", br_qa, "RE", "--linger", "0.2", NULL, NULL);
	br_take_n(b, 10, 100);
	br_term(out, "bridge out");

	/* The same name, created again: its ids count from 1 again. */
	tq_close(a);
	cr_assert_eq(tq_destroy(br_qa), 0);
	a = br_queue(br_qa, "bra5", 256);
	cr_assert_eq(tq_instance(a, &inst2), 0);
	cr_expect_neq(inst1, inst2, "a queue created again has the same instance");
	for (int i = 0; i < 10; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = 200 + (uint64_t)i;
	}
	cr_assert_eq(tq_push(a, t, 10, BR_SEC), 10);
	cr_assert_eq(t[0].id, 1, "ids from 1 again");
	out = br_bridge("out", br_qa, "RE", "--linger", "0.2", NULL, NULL);
	br_take_n(b, 10, 200);
	br_term(out, "bridge out");
	br_term(in, "bridge in");
	tq_close(a);
	tq_close(b);
}

/* ===================================== cluster-wide stats and stop */

Test(bridge, stats_and_stop_across_machines, .timeout = 90, .fini = br_fini)
{
	static char out[16384];
	br_start_server();
	tq_queue *a = br_queue(br_qa, "brsa", 256), *b = br_queue(br_qb, "brsb", 256);
	pid_t po = br_bridge("out", br_qa, "ST", NULL, NULL, NULL, NULL);
	pid_t pi = br_bridge("in", br_qb, "ST", "--consumer", "work", NULL, NULL);
	tq_task t[5];
	memset(t, 0, sizeof t);
	for (int i = 0; i < 5; i++) {
		t[i].kind = TQ_KIND_INT;
		t[i].value = (uint64_t)i;
	}
	cr_assert_eq(tq_push(a, t, 5, BR_SEC), 5);

	/* Both bridges report (each once a second): B holds the 5 ready. */
	char *stats[] = {TQ_BIN_DIR "/taskq-bridge", "stats", "--nats", br_url, "--stream", "ST", "--json", "--wait",
			 "1.5", NULL};
	uint64_t deadline = tqt_now_ms() + 20000;
	for (;;) {
		int st = br_run(stats, out, sizeof out);
		bool both = st == 0 && strstr(out, br_qa) && strstr(out, br_qb) && strstr(out, "\"ready\":5");
		if (both)
			break;
		cr_assert(tqt_now_ms() < deadline, "stats never showed both bridges with B's 5 ready (status %d): %s",
			  st, out);
	}
	cr_expect(strstr(out, "\"totals\"") != NULL, "%s", out);

	/* The live view, two frames, through taskq top. */
	char *top[] = {TQ_BIN_DIR "/taskq", "top", "--nats", br_url, "--stream", "ST", "--wait", "1.2", "--iterations",
		       "2", NULL};
	int tst = br_run(top, out, sizeof out);
	cr_expect_eq(tst, 0, "taskq top --nats: %d: %s", tst, out);
	const char *f1 = strstr(out, "taskq top --nats: stream ST");
	cr_expect(f1 && strstr(f1 + 1, "taskq top --nats: stream ST"), "two frames expected: %s", out);
	cr_expect(strstr(out, br_qa) && strstr(out, br_qb), "both bridges in the view: %s", out);

	/* Stop only queue B, wherever it is: its bridge confirms, B drains,
	 * A keeps running. */
	char *stop[] = {TQ_BIN_DIR "/taskq", "stop", br_qb, "--nats", br_url, "--stream", "ST", NULL};
	int st = br_run(stop, out, sizeof out);
	cr_assert_eq(st, 0, "stop: %d: %s", st, out);
	cr_expect(strstr(out, br_qb) && strstr(out, "draining"), "%s", out);
	cr_expect(strstr(out, br_qa) == NULL, "queue A answered a stop for B: %s", out);
	cr_expect_eq(tq_run_state(b), TQ_DRAINING);
	cr_expect_eq(tq_run_state(a), TQ_RUNNING);
	/* B's bridge leaves on its own (its queue is draining): status 0. */
	int bst = tqt_wait(pi, 20000);
	br_forget(pi);
	cr_expect_eq(bst, 0, "bridge in after the stop: %d", bst);

	/* Nobody answers for a queue no bridge serves: status 6. */
	char *none[] = {TQ_BIN_DIR "/taskq-bridge", "stop", "nosuchqueue", "--nats", br_url, "--stream", "ST",
			"--wait", "0.5", NULL};
	cr_expect_eq(br_run(none, out, sizeof out), 6, "%s", out);
	char *badstate[] = {TQ_BIN_DIR "/taskq-bridge", "stop", "--nats", br_url, "--stream", "ST", "--state", "paused",
			    NULL};
	cr_expect_eq(br_run(badstate, out, sizeof out), 2, "%s", out);
	br_term(po, "bridge out");
	tq_close(a);
	tq_close(b);
}

/* ================================ the cluster view of taskq serve */

struct br_body {
	char *p;
	size_t len, size;
};

static size_t br_body_write(char *data, size_t n, size_t m, void *arg)
{
	struct br_body *b = arg;
	size_t take = n * m < b->size - 1 - b->len ? n * m : b->size - 1 - b->len;
	memcpy(b->p + b->len, data, take);
	b->len += take;
	b->p[b->len] = '\0';
	return n * m;
}

/* GET http://127.0.0.1:port/path: the status (0 if none), the body in out. */
static long br_get(unsigned port, const char *path, char *out, size_t size)
{
	char url[128];
	struct br_body b = {out, 0, size};
	long status = 0;
	out[0] = '\0';
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	CURL *c = curl_easy_init();
	cr_assert_not_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, br_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

/* Starts `taskq serve QUEUE --listen 127.0.0.1:0 [--nats URL --stream S]`
 * (a bridge slot: br_fini kills it) and returns the port it printed. */
static unsigned br_serve(const char *queue, const char *stream, const char *tag, pid_t *pid)
{
	char log[320], text[4096];
	snprintf(log, sizeof log, "%s/serve-%s.log", br_dir, tag);
	char *argv[] = {TQ_BIN_DIR "/taskq", "serve", (char *)queue, "--listen", "127.0.0.1:0", "--nats", br_url,
			"--stream", (char *)stream, NULL};
	if (!stream)
		argv[5] = NULL;
	*pid = br_spawn(argv, log);
	if (br_nbridges < 8)
		br_bridges[br_nbridges++] = *pid;
	const char *at;
	unsigned port = 0;
	uint64_t deadline = tqt_now_ms() + 20000;
	for (;;) {
		FILE *f = fopen(log, "r");
		size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
		if (f)
			fclose(f);
		text[n] = '\0';
		if ((at = strstr(text, "http://127.0.0.1:")) && sscanf(at + 17, "%u/", &port) == 1 && port)
			return port;
		cr_assert(tqt_now_ms() < deadline, "taskq serve never said where it listens: %s", text);
		cr_assert_eq(waitpid(*pid, NULL, WNOHANG), 0, "taskq serve exited: %s", text);
		usleep(20000);
	}
}

Test(bridge, serve_cluster_view, .timeout = 120, .fini = br_fini)
{
	static char out[65536];
	char host[256] = "", want[640];
	br_start_server();
	tq_queue *a = br_queue(br_qa, "brcv", 256);
	pid_t po = br_bridge("out", br_qa, "CV", NULL, NULL, NULL, NULL);
	pid_t ps;
	unsigned port = br_serve(br_qa, "CV", "nats", &ps);

	/* 503 until the first snapshot with the bridge, then 200: the bridge's
	 * machine and queue, the totals. */
	long st;
	uint64_t deadline = tqt_now_ms() + 30000;
	while ((st = br_get(port, "/cluster", out, sizeof out)) != 200 || !strstr(out, br_qa)) {
		cr_assert(st == 503 || st == 200, "GET /cluster: %ld: %s", st, out);
		cr_assert(tqt_now_ms() < deadline, "GET /cluster never showed the bridge: %ld: %s", st, out);
		usleep(100000);
	}
	cr_assert_eq(gethostname(host, sizeof host - 1), 0);
	snprintf(want, sizeof want, "\"host\":\"%s\",\"queue\":\"%s\",\"mode\":\"out\"", host, br_qa);
	cr_expect(strstr(out, want) != NULL, "no %s in %s", want, out);
	cr_expect(strncmp(out, "{\"stream\":\"CV\",\"age_seconds\":", 29) == 0, "%s", out);
	cr_expect(strstr(out, "\"snapshot\":{\"stream\":\"CV\",\"bridges\":[") != NULL, "%s", out);
	cr_expect(strstr(out, "\"totals\":{\"ready\":") != NULL, "%s", out);
	/* The page has the section the script fills. */
	cr_expect_eq(br_get(port, "/", out, sizeof out), 200);
	cr_expect(strstr(out, "id=\"machines\"") != NULL, "%s", out);
	cr_expect_eq(br_get(port, "/healthz", out, sizeof out), 200);
	cr_expect(strstr(out, "\"cluster\":true") != NULL, "%s", out);

	/* The bridge gone, nobody reports: 503 and why. */
	br_term(po, "bridge out");
	deadline = tqt_now_ms() + 30000;
	while ((st = br_get(port, "/cluster", out, sizeof out)) != 503) {
		cr_assert_eq(st, 200, "GET /cluster: %ld: %s", st, out);
		cr_assert(tqt_now_ms() < deadline, "GET /cluster still 200 with no bridge: %s", out);
		usleep(100000);
	}
	cr_expect(strstr(out, "no bridge of stream CV reported") != NULL, "%s", out);
	br_term(ps, "taskq serve --nats");

	/* Without --nats there is no cluster view: 404. */
	port = br_serve(br_qa, NULL, "plain", &ps);
	st = br_get(port, "/cluster", out, sizeof out);
	cr_expect_eq(st, 404, "%s", out);
	cr_expect(strstr(out, "\"error\":") && strstr(out, "--nats"), "%s", out);
	cr_expect_eq(br_get(port, "/healthz", out, sizeof out), 200);
	cr_expect(strstr(out, "\"cluster\":false") != NULL, "%s", out);
	br_term(ps, "taskq serve");

	/* --nats and --stream go together; a bad stream name is refused. */
	char *nostream[] = {TQ_BIN_DIR "/taskq", "serve", br_qa, "--nats", br_url, NULL};
	cr_expect_eq(br_run(nostream, out, sizeof out), 2, "%s", out);
	cr_expect(strstr(out, "--stream") != NULL, "%s", out);
	char *badstream[] = {TQ_BIN_DIR "/taskq", "serve", br_qa, "--nats", br_url, "--stream", "a.b", NULL};
	cr_expect_eq(br_run(badstream, out, sizeof out), 2, "%s", out);
	tq_close(a);
}

/* ======================== a 3-node JetStream cluster, a node killed */

#define CL_NODES 3
#define CL_N 30000u

static struct tqn_node cl_nodes[CL_NODES];

static void cl_fini(void)
{
	for (int i = 0; i < CL_NODES; i++) {
		tqn_stop(cl_nodes[i].pid);
		cl_nodes[i].pid = 0;
		if (cl_nodes[i].dir[0] && !getenv("TQ_KEEP_BRIDGE_LOGS")) {
			char cmd[300];
			snprintf(cmd, sizeof cmd, "rm -rf '%s'", cl_nodes[i].dir);
			if (system(cmd) != 0)
				fprintf(stderr, "could not remove %s\n", cl_nodes[i].dir);
		}
		cl_nodes[i].dir[0] = '\0';
	}
	br_fini();
}

/* Waits until values [lo, hi) have all been taken from q (and acks them). */
static void cl_drain(tq_queue *q, uint8_t *seen, uint32_t n, uint32_t *got, uint32_t upto, const char *what)
{
	tq_task u[64];
	uint64_t deadline = tqt_now_ms() + 90000;
	while (*got < upto) {
		cr_assert(tqt_now_ms() < deadline, "%s: %u of %u arrived (logs in %s, %s ...)", what, *got, upto, br_dir,
			  cl_nodes[0].dir);
		int k = tq_take(q, u, 64, 200000000ull);
		if (k <= 0)
			continue;
		for (int i = 0; i < k; i++) {
			cr_assert_lt(u[i].value, n);
			if (!seen[u[i].value]++)
				(*got)++;
		}
		cr_assert_eq(tq_ack(q, u, (size_t)k), 0);
	}
}

Test(bridge, three_node_cluster_node_killed_and_back, .timeout = 180, .fini = cl_fini)
{
	char why[512], urls[256] = "";
	for (int i = 0; i < CL_NODES; i++)
		cr_assert_eq(tqn_node_init(&cl_nodes[i], "taskq-bridge-cluster", i, true, why, sizeof why), 0, "%s", why);
	for (int i = 0; i < CL_NODES; i++) {
		cr_assert_eq(tqn_node_start(&cl_nodes[i], cl_nodes, CL_NODES, why, sizeof why), 0, "%s", why);
		size_t len = strlen(urls);
		snprintf(urls + len, sizeof urls - len, "%s%s", len ? "," : "", cl_nodes[i].url);
	}
	snprintf(br_dir, sizeof br_dir, "/tmp/taskq-bridge-test-%d-XXXXXX", (int)getpid());
	cr_assert_not_null(mkdtemp(br_dir));
	snprintf(br_url, sizeof br_url, "%s", urls);
	cr_assert_eq(natsConnection_ConnectTo(&br_nc, urls), NATS_OK);
	cr_assert_eq(natsConnection_JetStream(&br_js, br_nc, NULL), NATS_OK);

	/* The stream, three replicas, once the cluster has a JetStream
	 * leader (the bridges then find it as they would have made it). */
	int err = tqn_bridge_stream(br_js, "R3", 3);
	cr_assert_eq(err, 0, "no R3 stream in 30 s (%d)", err);

	tq_queue *a = br_queue(br_qa, "cla", 4096), *b = br_queue(br_qb, "clb", 4096);
	uint8_t *seen = calloc(CL_N, 1);
	uint32_t got = 0;
	pid_t out = br_bridge("out", br_qa, "R3", "--replicas", "3", NULL, NULL);
	pid_t in = br_bridge("in", br_qb, "R3", "--consumer", "work", "--replicas", "3");

	br_push_ints(a, 0, CL_N / 3);
	cl_drain(b, seen, CL_N, &got, CL_N / 3, "three nodes");
	/* One node killed mid-stream: the other two keep a majority. */
	kill(cl_nodes[1].pid, SIGKILL);
	waitpid(cl_nodes[1].pid, NULL, 0);
	cl_nodes[1].pid = 0;
	br_push_ints(a, CL_N / 3, 2 * CL_N / 3);
	cl_drain(b, seen, CL_N, &got, 2 * CL_N / 3, "one node down");
	/* Back, on its old store: it catches up, and the flow goes on. */
	cr_assert_eq(tqn_node_start(&cl_nodes[1], cl_nodes, CL_NODES, why, sizeof why), 0, "%s", why);
	br_push_ints(a, 2 * CL_N / 3, CL_N);
	cl_drain(b, seen, CL_N, &got, CL_N, "the node back");

	uint32_t lost = 0;
	for (uint32_t v = 0; v < CL_N; v++)
		lost += !seen[v];
	cr_expect_eq(lost, 0);
	br_term(out, "bridge out");
	br_term(in, "bridge in");
	tq_close(a);
	tq_close(b);
	free(seen);
}

/* ================================ NATS down at start and mid-run */

Test(bridge, nats_down_at_start_and_mid_run, .timeout = 120, .fini = cl_fini)
{
	char why[512];
	struct tqn_node *nd = &cl_nodes[0];
	cr_assert_eq(tqn_node_init(nd, "taskq-bridge-down", 0, false, why, sizeof why), 0, "%s", why);
	snprintf(br_dir, sizeof br_dir, "/tmp/taskq-bridge-test-%d-XXXXXX", (int)getpid());
	cr_assert_not_null(mkdtemp(br_dir));
	snprintf(br_url, sizeof br_url, "nats://127.0.0.1:%d", nd->port);

	tq_queue *a = br_queue(br_qa, "dna", 8192), *b = br_queue(br_qb, "dnb", 8192);
	uint8_t *seen = calloc(5000 + 8192 + 1, 1);
	uint32_t got = 0;
	/* No server yet: the bridges wait, the tasks stay in A. */
	pid_t out = br_bridge("out", br_qa, "DN", NULL, NULL, NULL, NULL);
	pid_t in = br_bridge("in", br_qb, "DN", "--consumer", "work", NULL, NULL);
	br_push_ints(a, 0, 5000);
	tq_stats s;
	cr_assert_eq(tq_stats_get(a, &s), 0);
	cr_expect_eq(s.total.acked, 0, "A acked %llu with no NATS server", (unsigned long long)s.total.acked);
	cr_assert_eq(tqn_node_start(nd, NULL, 0, why, sizeof why), 0, "%s", why);
	cl_drain(b, seen, 5000 + 8192 + 1, &got, 5000, "after the server started");

	/* The server killed mid-run: A keeps what is pushed meanwhile (its
	 * producers see a queue that fills, not an error), and once the
	 * server is back on its store, everything arrives. */
	kill(nd->pid, SIGKILL);
	waitpid(nd->pid, NULL, 0);
	nd->pid = 0;
	/* Pushed until A is full: the producer feels the back-pressure as a
	 * full queue (TQ_EAGAIN with timeout 0), nothing is refused else. */
	uint32_t v = 5000;
	for (;;) {
		tq_task t = {.kind = TQ_KIND_INT, .value = v};
		int k = tq_push(a, &t, 1, 0);
		if (k == TQ_EAGAIN)
			break;
		cr_assert_eq(k, 1, "push while NATS is down: %d (%s)", k, tq_strerror(k));
		cr_assert_lt(++v, 5000 + 8192 + 1, "A never filled up");
	}
	cr_assert_eq(tq_stats_get(a, &s), 0);
	cr_expect_geq(s.ready + s.leased, v - 5000, "A holds %u ready and %u leased of the %u pushed while NATS was down",
		      s.ready, s.leased, v - 5000);
	cr_assert_eq(tqn_node_start(nd, NULL, 0, why, sizeof why), 0, "%s", why);
	cl_drain(b, seen, 5000 + 8192 + 1, &got, v, "after the server came back");
	br_term(out, "bridge out");
	br_term(in, "bridge in");
	tq_close(a);
	tq_close(b);
	free(seen);
}

/* ============================== bridge metrics through taskq serve */

/* GET path from 127.0.0.1:port; the whole answer into out (NUL-ended). */
static int br_http_get(int port, const char *path, char *out, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	size_t n = 0;
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char req[256];
	int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, (size_t)rl) != rl) {
		close(fd);
		return -1;
	}
	for (ssize_t k; n + 1 < size && (k = read(fd, out + n, size - 1 - n)) > 0;)
		n += (size_t)k;
	out[n] = '\0';
	close(fd);
	return 0;
}

Test(bridge, bridge_metrics_are_served, .timeout = 60, .fini = br_fini)
{
	static char out[65536];
	char fo[400], fi[400], want_o[300], want_i[300], port_s[16], listen[64];
	br_start_server();
	tq_queue *a = br_queue(br_qa, "brma", 2048), *b = br_queue(br_qb, "brmb", 2048);
	snprintf(fo, sizeof fo, "%s/out.prom", br_dir);
	snprintf(fi, sizeof fi, "%s/in.prom", br_dir);
	pid_t po = br_bridge("out", br_qa, "ME", "--metrics-file", fo, NULL, NULL);
	pid_t pi = br_bridge("in", br_qb, "ME", "--consumer", "work", "--metrics-file", fi);
	tq_task u[64];
	br_push_ints(a, 0, 1000);
	uint32_t got = 0;
	uint64_t deadline = tqt_now_ms() + 30000;
	while (got < 1000) {
		cr_assert(tqt_now_ms() < deadline, "%u of 1000 arrived", got);
		int k = tq_take(b, u, 64, 200000000ull);
		if (k > 0) {
			cr_assert_eq(tq_ack(b, u, (size_t)k), 0);
			got += (uint32_t)k;
		}
	}
	int port = tqn_free_port();
	snprintf(port_s, sizeof port_s, "%d", port);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	char log[400];
	snprintf(log, sizeof log, "%s/serve.log", br_dir);
	/* A third file with lines that are not a bridge's: never served. */
	char fe[400];
	snprintf(fe, sizeof fe, "%s/evil.prom", br_dir);
	FILE *f = fopen(fe, "w");
	cr_assert_not_null(f);
	fputs("evil_metric 1\n# HELP evil_help x\n# HELP taskq_bridge_evil \x01 control\ntaskq_bridge_evil\x7f 2\n", f);
	fclose(f);
	char *serve[] = {TQ_BIN_DIR "/taskq", "serve", br_qb, "--listen", listen, "--bridge-metrics", fo,
			 "--bridge-metrics", fi, "--bridge-metrics", fe, NULL};
	pid_t ps = br_spawn(serve, log);
	if (br_nbridges < 8)
		br_bridges[br_nbridges++] = ps;
	snprintf(want_o, sizeof want_o,
		 "taskq_bridge_tasks_total{queue=\"%s\",mode=\"out\",stream=\"ME\",event=\"published\"} 1000", br_qa);
	snprintf(want_i, sizeof want_i,
		 "taskq_bridge_tasks_total{queue=\"%s\",mode=\"in\",stream=\"ME\",event=\"imported\"} 1000", br_qb);
	deadline = tqt_now_ms() + 20000;
	for (;;) {
		if (br_http_get(port, "/metrics", out, sizeof out) == 0 && strstr(out, want_o) && strstr(out, want_i))
			break;
		cr_assert(tqt_now_ms() < deadline, "/metrics never showed both bridges' 1000 (serve log %s): %.2000s", log,
			  out);
		tqt_sleep_ms(50);
	}
	/* One family, one HELP and one TYPE, whatever the number of bridges. */
	const char *first = strstr(out, "# TYPE taskq_bridge_tasks_total counter");
	cr_assert_not_null(first);
	cr_expect_null(strstr(first + 1, "# TYPE taskq_bridge_tasks_total counter"), "TYPE twice: %s", out);
	cr_expect(strstr(out, "taskq_tasks{queue=") != NULL, "the queue's own metrics are gone: %.500s", out);
	cr_expect_null(strstr(out, "evil"), "a line that is not a bridge's was served: %s", out);
	br_term(ps, "taskq serve");
	br_term(po, "bridge out");
	br_term(pi, "bridge in");
	tq_close(a);
	tq_close(b);
}

/* ========================= two importing machines share the work */

Test(bridge, two_importers_share_the_work, .timeout = 90, .fini = br_fini)
{
	char *qc = br_qc;
	br_start_server();
	tq_queue *a = br_queue(br_qa, "sha", 4096), *b = br_queue(br_qb, "shb", 256);
	tq_config cfg;
	tq_queue *c = NULL;
	tqt_name(qc, "shc");
	tq_destroy(qc);
	tq_config_init(&cfg);
	cfg.capacity = 256;
	cr_assert_eq(tq_create(qc, &cfg, &c), 0);
	/* Small messages, so that both importers get some. */
	pid_t out = br_bridge("out", br_qa, "SH", "--batch", "64", "--linger", "0");
	pid_t in1 = br_bridge("in", br_qb, "SH", "--consumer", "work", NULL, NULL);
	pid_t in2 = br_bridge("in", qc, "SH", "--consumer", "work", NULL, NULL);
	enum { N = 20000 };
	uint8_t *seen = calloc(N, 1);
	uint32_t got = 0, from[2] = {0, 0};
	tq_task t[64];
	br_push_ints(a, 0, N);
	uint64_t deadline = tqt_now_ms() + 60000;
	while (got < N) {
		cr_assert(tqt_now_ms() < deadline, "%u of %u arrived (B %u, C %u; logs in %s)", got, N, from[0], from[1],
			  br_dir);
		for (int w = 0; w < 2; w++) {
			tq_queue *q = w ? c : b;
			int k = tq_take(q, t, 64, 20000000ull);
			if (k <= 0)
				continue;
			for (int i = 0; i < k; i++) {
				cr_assert_lt(t[i].value, N);
				cr_assert_eq(seen[t[i].value], 0, "value %llu twice", (unsigned long long)t[i].value);
				seen[t[i].value] = 1;
			}
			cr_assert_eq(tq_ack(q, t, (size_t)k), 0);
			got += (uint32_t)k;
			from[w] += (uint32_t)k;
		}
	}
	cr_expect_gt(from[0], 0, "machine B got nothing: JetStream gave all to C");
	cr_expect_gt(from[1], 0, "machine C got nothing: JetStream gave all to B");
	cr_log_info("two importers: B %u, C %u", from[0], from[1]);
	br_term(out, "bridge out");
	br_term(in1, "bridge in B");
	br_term(in2, "bridge in C");
	tq_close(a);
	tq_close(b);
	tq_close(c);
	free(seen);
}
