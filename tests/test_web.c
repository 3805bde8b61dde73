/* SPDX-License-Identifier: MIT */
/*
 * test_web.c - the dashboard of `taskq serve` in a real browser: headless
 * Chromium, driven through its DevTools protocol by tests/web/driver.py
 * (Debian's python3 and python3-websocket), against a taskq serve that this
 * test starts on 127.0.0.1 (a free port) with a token, on a queue the demo
 * feeds (integer and JSON tasks, some of them bad, so dead letters come).
 * The driver checks what a person would: the numbers shown against /stats,
 * the charts filling, the buttons (pause, kick, resume) with the token and
 * the same requests refused without it or from another origin; it prints
 * its results as one JSON line, which this test reads. The screenshot it
 * takes goes to build/artifacts/dashboard.png. Chromium, its profile
 * directory, the server and the demo are gone when the test ends.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "taskq.h"
#include "proc.h"

#define TASKQ_BIN TQ_BIN_DIR "/taskq"
#define DEMO_BIN TQ_BIN_DIR "/taskq-demo"
#define DRIVER TQ_SRC_DIR "/tests/web/driver.py"
#define CHROMIUM "/usr/bin/chromium"
/* Debian's, with python3-websocket: not whatever python3 is first on PATH. */
#define PYTHON "/usr/bin/python3"
#define ARTIFACTS TQ_BIN_DIR "/artifacts"

static char qname[TQT_NAME_LEN], qname2[TQT_NAME_LEN];
static char profile[64], token_path[64], serve_log[64], demo_log[64];
static struct proc server, demo;
static bool server_on, demo_on;
static const char token[] = "tqt-web-token_0123456789abcdefABCDEF";

static void setup(void)
{
	tqt_name(qname, "web");
	tqt_name(qname2, "web2");
	tq_destroy(qname);
	tq_destroy(qname2);
	snprintf(token_path, sizeof(token_path), "/tmp/tqt-web-token-%d", (int)getpid());
	snprintf(serve_log, sizeof(serve_log), "/tmp/tqt-web-serve-%d.log", (int)getpid());
	snprintf(demo_log, sizeof(demo_log), "/tmp/tqt-web-demo-%d.log", (int)getpid());
	snprintf(profile, sizeof(profile), "/tmp/tqt-web-profile-XXXXXX");
	cr_assert(mkdtemp(profile), "mkdtemp: %s", strerror(errno));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void stop(struct proc *p, bool *on)
{
	struct out o = {0};

	if (!*on)
		return;
	signal_until_exit(p, SIGTERM, 10000, &o);
	out_free(&o);
	*on = false;
}

static void teardown(void)
{
	stop(&server, &server_on);
	stop(&demo, &demo_on);
	/* Chromium is gone with the driver (it kills it); its profile too now. */
	nftw(profile, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	tq_destroy(qname);
	tq_destroy(qname2);
	unlink(token_path);
	unlink(serve_log);
	unlink(demo_log);
	char p[96];
	snprintf(p, sizeof(p), "%s.serve", demo_log);
	unlink(p);
}

/* Chromium under a sanitized taskq serve, the demo and the browser on two
 * cores: well within this. */
TestSuite(web, .init = setup, .fini = teardown, .timeout = 120);

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s: %s", path, strerror(errno));
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void need(const char *path, const char *what)
{
	cr_assert(access(path, X_OK) == 0,
		  "%s is missing (%s): ./scripts/install-deps.sh installs it; this test does not skip", path, what);
}

/* Starts taskq serve on the queue (and qname2 if it is set), port 0 (it
 * picks a free one), and returns its URL from the line it prints once it
 * listens. */
static void start_server(bool with_token, char *url, size_t size)
{
	char *argv[16] = {TASKQ_BIN, "serve", "--listen", "127.0.0.1:0", "--log-file", serve_log, qname};
	int n = 7;
	if (qname2[0])
		argv[n++] = qname2;
	if (with_token) {
		FILE *f = fopen(token_path, "w");
		cr_assert(f);
		fprintf(f, "%s\n", token);
		fclose(f);
		chmod(token_path, 0600);
		argv[n++] = "--token-file";
		argv[n++] = token_path;
	}
	argv[n] = NULL;
	unsetenv("TASKQ_TOKEN");
	proc_start(&server, argv, NULL, 0);
	server_on = true;
	uint64_t deadline = tqt_now_ms() + 20000;
	for (;;) {
		proc_pump(&server, 50);
		const char *u = server.out.p ? strstr(server.out.p, "http://") : NULL;
		const char *e = u ? strchr(u, ' ') : NULL;
		if (e) {
			snprintf(url, size, "%.*s", (int)(e - u), u);
			return;
		}
		cr_assert(tqt_now_ms() < deadline, "taskq serve did not start: %s",
			  server.err.p ? server.err.p : "");
	}
}

/* Starts the demo on the queue and waits until it has created it. */
static void start_demo(void)
{
	char *argv[] = {DEMO_BIN, "--queue", qname, "--quiet", "--rate", "300", "--bad", "10", "--keep-dead",
			"--consumers", "2", "--duration", "110", "--log-file", demo_log, NULL};
	proc_start(&demo, argv, NULL, 0);
	demo_on = true;
	uint64_t deadline = tqt_now_ms() + 20000;
	tq_queue *q = NULL;
	while (tq_open_observer(qname, &q) != 0) {
		proc_pump(&demo, 20);
		cr_assert(tqt_now_ms() < deadline, "the demo did not create its queue: %s",
			  demo.err.p ? demo.err.p : "");
	}
	tq_close(q);
}

/* Runs the driver against url with extra arguments (NULL-ended); returns
 * its output, after asserting that it exited 0 with "ok": true. */
static void run_driver(struct out *o, const char *url, ...)
{
	char *argv[24];
	int n = 0;
	argv[n++] = PYTHON;
	argv[n++] = DRIVER;
	argv[n++] = "--chromium";
	argv[n++] = CHROMIUM;
	argv[n++] = "--url";
	argv[n++] = (char *)url;
	argv[n++] = "--queue";
	argv[n++] = qname;
	argv[n++] = "--profile";
	argv[n++] = profile;
	va_list ap;
	va_start(ap, url);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 23)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	struct proc p;
	proc_start(&p, argv, NULL, 0);
	proc_finish(&p, 100000, o);
	cr_assert_eq(o->status, 0, "the browser test failed (exit status %d)\nstdout: %s\nstderr: %s\nserver log: %s",
		     o->status, o->out, o->err, read_text(serve_log));
	cr_assert(strstr(o->out, "\"ok\": true"), "driver: %s", o->out);
}

#define assert_has(hay, needle, what) \
	cr_assert(strstr((hay), (needle)), "%s: no '%s' in:\n%s", (what), (needle), (hay))

Test(web, dashboard_numbers_charts_and_buttons_in_chromium)
{
	char url[128], shot[256];
	struct out o = {0};

	need(CHROMIUM, "Debian package chromium");
	need(PYTHON, "Debian package python3");
	mkdir(ARTIFACTS, 0755);
	snprintf(shot, sizeof(shot), "%s/dashboard.png", ARTIFACTS);
	unlink(shot);
	/* a second queue, idle, with 5 tasks ready: the page shows both */
	tq_config c;
	tq_queue *q2;
	tq_config_init(&c);
	c.capacity = 64;
	cr_assert_eq(tq_create(qname2, &c, &q2), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(tq_push_int(q2, (uint64_t)i, 0), 0);
	tq_close(q2);
	start_demo();
	start_server(true, url, sizeof(url));
	run_driver(&o, url, "--token", token, "--screenshot", shot, "--queue2", qname2, NULL);

	/* Every check ran, in order. */
	static const char *checks[] = {"loaded", "charts", "numbers_match_stats_live", "second_queue", "screenshot", "phone_layout",
				       "refused_without_token", "pause", "numbers_match_stats_paused", "kick",
				       "resume", "cross_site_refused"};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "\"%s\"", checks[i]);
		assert_has(o.out, quoted, "the driver's checks");
	}
	/* No script error or blocked resource in the page (the refused
	 * requests' 401 and 403 are the test's own). */
	const char *console = strstr(o.out, "\"console\": [");
	cr_assert(console, "%s", o.out);
	cr_assert(!strstr(console, "Content Security Policy") && !strstr(console, "Uncaught") &&
			  !strstr(console, "status of 404") && !strstr(console, "status of 5"),
		  "the page's console: %s", console);
	/* The screenshot: a PNG of some size. */
	FILE *f = fopen(shot, "rb");
	cr_assert(f, "no screenshot at %s", shot);
	unsigned char sig[8];
	cr_assert_eq(fread(sig, 1, 8, f), 8u);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fclose(f);
	cr_assert(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8) && size > 20000, "screenshot: %ld bytes", size);

	/* What the server saw: refusals by reason, the changes the buttons made.
	 * It stops cleanly on SIGTERM (exit status 0: under a sanitizer, no
	 * report either). */
	struct out so = {0};
	signal_until_exit(&server, SIGTERM, 20000, &so);
	server_on = false;
	cr_assert_eq(so.status, 0, "taskq serve: exit status %d\n%s", so.status, so.err);
	out_free(&so);
	const char *log = read_text(serve_log);
	static const char *seen[] = {"reason=no_token", "reason=wrong_token", "reason=cross_origin",
				     "event=state_set",  "to=paused",         "to=running",
				     "event=dead_kicked"};
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		assert_has(log, seen[i], "serve's log");
	out_free(&o);
}

Test(web, dashboard_without_a_token_is_read_only)
{
	char url[128];
	struct out o = {0};

	need(CHROMIUM, "Debian package chromium");
	qname2[0] = '\0';
	start_demo();
	start_server(false, url, sizeof(url));
	run_driver(&o, url, "--read-only", NULL);
	assert_has(o.out, "\"read_only\"", "the driver's checks");
	out_free(&o);
}
