/* SPDX-License-Identifier: MIT */
/*
 * log.h - structured logs for taskq's programs: one logfmt line per event,
 *   time=2026-11-26T13:45:01.123Z level=info pid=123 queue=demo event=started k=v ...
 * to stderr, or to a file rotated by size (FILE -> FILE.1 -> ... FILE.N,
 * the oldest deleted), so disk use stays under (N + 1) * max_bytes and the
 * logger's memory is constant. One writing process per file; its threads
 * may log concurrently.
 */
#ifndef TQ_LOG_H
#define TQ_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG_ = 0, LOG_INFO_ = 1, LOG_WARN_ = 2, LOG_ERROR_ = 3 };

struct log_config {
	const char *path;    /* NULL: stderr */
	uint64_t max_bytes;  /* per file, >= 1024; default 10 MiB */
	unsigned max_files;  /* rotated files kept, 1..100; default 5 */
	int level;           /* least level written; default info */
	const char *queue;   /* written as queue=... when not NULL */
};

void log_config_init(struct log_config *c);
/* Starts logging; returns 0, or -1 (with errno) if the file can't be opened. */
int log_open(const struct log_config *c);
void log_close(void);
/* fields: already formatted "k=v k2=v2"; use log_quote for free text. */
void log_event(int level, const char *event, const char *fields_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Quotes s for a logfmt value into buf when needed; returns buf. */
const char *log_quote(char *buf, size_t size, const char *s);
/* Parses "debug|info|warn|error"; -1 if none of them. */
int log_level_parse(const char *s);

#endif
