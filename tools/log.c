/* SPDX-License-Identifier: MIT */
/*
 * log.c - logfmt lines with size-based rotation (see log.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
	struct log_config cfg;
	char path[4096];
	char queue[256];
	int fd;          /* -1: stderr */
	uint64_t size;   /* bytes in the current file */
	bool open;
} lg = {.fd = -1};

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER; /* writers may be threads */

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_config_init(struct log_config *c)
{
	c->path = NULL;
	c->max_bytes = 10u << 20;
	c->max_files = 5;
	c->level = LOG_INFO_;
	c->queue = NULL;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, level_names[i]))
			return i;
	return -1;
}

static int open_file(void)
{
	struct stat sb;

	lg.fd = open(lg.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lg.fd < 0)
		return -1;
	lg.size = fstat(lg.fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	return 0;
}

int log_open(const struct log_config *c)
{
	lg.cfg = *c;
	if (lg.cfg.max_bytes < 1024)
		lg.cfg.max_bytes = 1024;
	if (lg.cfg.max_files < 1)
		lg.cfg.max_files = 1;
	if (lg.cfg.max_files > 100)
		lg.cfg.max_files = 100;
	snprintf(lg.queue, sizeof(lg.queue), "%s", c->queue ? c->queue : "");
	lg.open = true;
	if (!c->path) {
		lg.fd = -1;
		return 0;
	}
	if (strlen(c->path) + 8 > sizeof(lg.path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(lg.path, c->path);
	return open_file();
}

void log_close(void)
{
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = -1;
	lg.open = false;
}

/* FILE.(n-1) -> FILE.n for n = max..2, FILE -> FILE.1; FILE.max is replaced. */
static void rotate(void)
{
	char from[4200], to[4200];

	close(lg.fd);
	for (unsigned n = lg.cfg.max_files; n >= 2; n--) {
		snprintf(from, sizeof(from), "%s.%u", lg.path, n - 1);
		snprintf(to, sizeof(to), "%s.%u", lg.path, n);
		(void)rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", lg.path);
	(void)rename(lg.path, to);
	if (open_file() != 0)
		lg.fd = -1; /* fall back to stderr rather than lose the line */
}

const char *log_quote(char *buf, size_t size, const char *s)
{
	bool plain = *s != '\0';
	for (const char *p = s; *p && plain; p++)
		plain = *p > ' ' && *p != '"' && *p != '=' && *p != '\\' && (unsigned char)*p < 0x7f;
	if (plain) {
		snprintf(buf, size, "%s", s);
		return buf;
	}
	size_t k = 0;
	buf[k++] = '"';
	for (const char *p = s; *p && k + 4 < size; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\') {
			buf[k++] = '\\';
			buf[k++] = (char)ch;
		} else if (ch == '\n') {
			buf[k++] = '\\';
			buf[k++] = 'n';
		} else if (ch < ' ') {
			buf[k++] = ' ';
		} else {
			buf[k++] = (char)ch;
		}
	}
	buf[k++] = '"';
	buf[k] = '\0';
	return buf;
}

void log_event(int level, const char *event, const char *fields_fmt, ...)
{
	char line[2048], q[300];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (!lg.open) {
		struct log_config c;
		log_config_init(&c);
		log_open(&c);
	}
	if (level < lg.cfg.level || level < 0 || level > 3)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s pid=%d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000000, level_names[level], (int)getpid());
	if (lg.queue[0])
		n += snprintf(line + n, sizeof(line) - (size_t)n, " queue=%s", log_quote(q, sizeof(q), lg.queue));
	n += snprintf(line + n, sizeof(line) - (size_t)n, " event=%s", event);
	if (fields_fmt && *fields_fmt && (size_t)n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fields_fmt);
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fields_fmt, ap);
		va_end(ap);
	}
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&log_mu);
	if (lg.fd >= 0 && lg.size + (uint64_t)n > lg.cfg.max_bytes && lg.size > 0)
		rotate();
	int fd = lg.fd >= 0 ? lg.fd : 2;
	ssize_t w = write(fd, line, (size_t)n);
	if (w > 0 && lg.fd >= 0)
		lg.size += (uint64_t)w;
	pthread_mutex_unlock(&log_mu);
}
