/* SPDX-License-Identifier: MIT */
/*
 * test_logs.c - bounded logs: rotation keeps at most N old files of at most
 * S bytes each, however much is written; a long demo run's memory is flat.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "taskq.h"
#include "util.h"

static char dir[256];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tqt-logs-%d", (int)getpid());
	mkdir(dir, 0700);
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[600];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

TestSuite(logs, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(logs, rotation_keeps_at_most_n_files_of_at_most_s_bytes)
{
	char path[300];
	struct log_config c;
	const uint64_t max_bytes = 4096;
	const unsigned max_files = 3;

	snprintf(path, sizeof(path), "%s/app.log", dir);
	log_config_init(&c);
	c.path = path;
	c.max_bytes = max_bytes;
	c.max_files = max_files;
	c.queue = "q1";
	cr_assert_eq(log_open(&c), 0);
	for (int i = 0; i < 20000; i++)
		log_event(LOG_INFO_, "tick", "i=%d note=\"some text to fill the line\"", i);
	log_close();

	int files = 0;
	uint64_t total = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[600];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		cr_assert_eq(stat(p, &sb), 0);
		cr_expect_leq((uint64_t)sb.st_size, max_bytes, "%s is %lld bytes", e->d_name, (long long)sb.st_size);
		total += (uint64_t)sb.st_size;
		files++;
	}
	closedir(d);
	cr_log_info("logs: %d files, %llu bytes after 20000 lines", files, (unsigned long long)total);
	cr_assert_eq(files, (int)max_files + 1, "app.log and app.log.1..%u expected, found %d files", max_files, files);
	char p4[320];
	snprintf(p4, sizeof(p4), "%s.%u", path, max_files + 1);
	cr_assert_neq(access(p4, F_OK), 0, "%s must not exist", p4);

	/* The newest line is in app.log, the lines are whole and in order. */
	FILE *f = fopen(path, "r");
	char line[512], last[512] = "";
	while (fgets(line, sizeof(line), f)) {
		cr_assert(strstr(line, "level=info") && strstr(line, "event=tick") && strstr(line, "queue=q1"),
			  "bad line: %s", line);
		strcpy(last, line);
	}
	fclose(f);
	cr_assert(strstr(last, "i=19999 "), "last line: %s", last);
}

Test(logs, quoting_keeps_one_event_per_line)
{
	char b[128];

	cr_assert_str_eq(log_quote(b, sizeof(b), "plain"), "plain");
	cr_assert_str_eq(log_quote(b, sizeof(b), "two words"), "\"two words\"");
	cr_assert_str_eq(log_quote(b, sizeof(b), "a\"b\nc"), "\"a\\\"b\\nc\"");
	cr_assert_str_eq(log_quote(b, sizeof(b), ""), "\"\"");
}

/* The process's own memory (heap, stack, private pages: RssAnon), which a
 * leak would grow; pages of the queue's shared memory (RssShmem) count in
 * VmRSS once first touched, as lanes are used, and are not a leak. */
static long rss_kb(pid_t pid)
{
	char p[64], line[256];
	long kb = -1;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kb = atol(line + 8);
	if (f)
		fclose(f);
	return kb;
}

/* A demo that moves tasks for seconds (with failures, retries, dead letters
 * and logs) keeps its memory flat: its private RSS after 1 s and after 4 s,
 * same. */
Test(logs, long_run_memory_stays_flat, .timeout = 60)
{
	char name[TQT_NAME_LEN], path[300];
	tqt_name(name, "flat");
	snprintf(path, sizeof(path), "%s/demo.log", dir);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		/* A small queue: its shared pages are all touched during the
		 * warm-up (under ThreadSanitizer each touched page also grows
		 * the private shadow memory, which is not a leak either). */
		/* --bad 0.05: about 50 dead letters a second, so that the dead
		 * area (100) is half full within seconds and the demo's
		 * dead-letter handler logs and purges them while memory is
		 * watched (more, and the log's rotation every few lines makes
		 * the sanitizers' allocator quarantine grow the RSS). */
		execl(TQ_BIN_DIR "/taskq-demo", "taskq-demo", "--queue", name, "--quiet", "--bad", "0.05", "--consumers", "2",
		      "--capacity", "1000", "--rate", "200000", "--log-file", path, "--log-max-bytes", "4096", "--log-max-files", "2", NULL);
		_exit(127);
	}
	tq_queue *q = NULL;
	uint64_t deadline = tqt_now_ms() + 30000;
	while (tq_open(name, &q) != 0 && tqt_now_ms() < deadline)
		tqt_sleep_ms(20);
	cr_assert_not_null(q, "the demo never created its queue");
	tq_stats s;
	/* Warm up: wait for real traffic and for the demo's dead-letter
	 * handler to have purged, with more tasks dead than twice the area
	 * holds (burials and purges spread over the segment's slots and its
	 * message area: the pages they touch first, and under ThreadSanitizer
	 * the private shadow of those shared pages, are not growth), then
	 * sample, move more, sample again. */
	do {
		tq_stats_get(q, &s);
		tqt_sleep_ms(5);
	} while ((s.total.acked < 200000 || s.total.dead <= s.dead || s.total.dead < 2ull * s.dead_capacity + 50) &&
		 tqt_now_ms() < deadline);
	cr_assert_gt(s.total.dead, s.dead, "the demo's dead-letter handler never ran (%llu dead, %u kept)",
		     (unsigned long long)s.total.dead, s.dead);
	long first = rss_kb(pid);
	uint64_t mark = s.total.acked;
	/* 600,000 more tasks, or 6 s of traffic on a slow (sanitized, loaded)
	 * machine, whichever comes first: the point is time and traffic, not
	 * speed. */
	uint64_t window = tqt_now_ms() + 6000;
	do {
		tq_stats_get(q, &s);
		tqt_sleep_ms(50);
	} while (s.total.acked < mark + 600000 && tqt_now_ms() < window && tqt_now_ms() < deadline);
	long later = rss_kb(pid);
	cr_log_info("demo RSS %ld kB after %llu tasks, %ld kB after %llu", first, (unsigned long long)mark, later,
		    (unsigned long long)s.total.acked);
	kill(pid, SIGINT);
	int st;
	waitpid(pid, &st, 0);
	tq_close(q);
	tq_destroy(name);
	cr_assert_gt(s.total.acked, mark + 50000, "the demo moved only %llu tasks between the samples",
		     (unsigned long long)(s.total.acked - mark));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "demo exit status %d", st);
	cr_assert_gt(first, 0);
	cr_assert_leq(later, first + 512, "RSS grew from %ld kB to %ld kB", first, later);
	char p3[320];
	snprintf(p3, sizeof(p3), "%s.3", path);
	cr_assert_neq(access(p3, F_OK), 0, "more log files than --log-max-files");
}
