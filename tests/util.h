/* SPDX-License-Identifier: MIT */
/*
 * util.h - small helpers shared by the libtaskq tests (header only).
 *
 *   tqt_name(buf, "test")          unique queue name "tqt-<test>-<pid>"
 *   tqt_shared(size)               zeroed MAP_SHARED anonymous memory,
 *                                  visible to forked children
 *   tqt_bitmap_new(nbits)          shared bitmap for exactly-once checks
 *   tqt_bitmap_set(bm, i)          atomically sets bit i; returns 1 if it
 *                                  was already set (a duplicate), else 0
 *   tqt_bitmap_count(bm, nbits)    bits set
 *   tqt_fork(fn, arg)              forks; the child runs fn(arg) and
 *                                  _exit()s with its return value
 *   tqt_wait(pid, timeout_ms)      waits for a child with a deadline;
 *                                  returns its exit code, 128+signal if
 *                                  killed, or -1 on timeout (the child is
 *                                  then SIGKILLed and reaped)
 *   tqt_wait_all(pids, n, ms)      tqt_wait on each with one shared
 *                                  deadline; returns the number of children
 *                                  that did not exit 0
 *   tqt_now_ms()                   CLOCK_MONOTONIC milliseconds
 *   tqt_sleep_ms(ms)               short sleeps for bounded polling loops
 *
 * Everything is static inline, so any test file may include it and use any
 * subset.
 */
#ifndef TQT_UTIL_H
#define TQT_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TQT_NAME_LEN 128

/* Writes "tqt-<test>-<pid>" to buf (TQT_NAME_LEN bytes); returns buf. */
static inline char *tqt_name(char buf[TQT_NAME_LEN], const char *test)
{
	snprintf(buf, TQT_NAME_LEN, "tqt-%s-%ld", test, (long)getpid());
	return buf;
}

static inline uint64_t tqt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void tqt_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000u, (long)(ms % 1000u) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Zeroed shared anonymous memory (abort()s if mmap fails). Never freed
 * explicitly: each Criterion test runs in its own process. */
static inline void *tqt_shared(size_t size)
{
	void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		abort();
	return p;
}

/* The segment of queue `name` (/dev/shm/taskq.<name>), mapped shared,
 * read only or writable (writes go to the queue: tests that forge bytes);
 * *size its length, for munmap. NULL if it cannot be opened or mapped. */
static inline void *tqt_segment_map(const char *name, bool writable, size_t *size)
{
	char path[TQT_NAME_LEN + 16];
	struct stat sb;

	*size = 0;
	snprintf(path, sizeof path, "/taskq.%s", name);
	int fd = shm_open(path, writable ? O_RDWR : O_RDONLY, 0);
	if (fd < 0)
		return NULL;
	void *p = MAP_FAILED;
	if (fstat(fd, &sb) == 0 && sb.st_size > 0)
		p = mmap(NULL, (size_t)sb.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	*size = (size_t)sb.st_size;
	return p;
}

typedef struct tqt_bitmap {
	uint64_t *words;
} tqt_bitmap;

static inline tqt_bitmap tqt_bitmap_new(size_t nbits)
{
	tqt_bitmap bm = { tqt_shared((nbits + 63) / 64 * sizeof(uint64_t)) };
	return bm;
}

/* Returns 1 if bit i was already set (a duplicate), 0 otherwise. */
static inline int tqt_bitmap_set(tqt_bitmap bm, size_t i)
{
	uint64_t bit = (uint64_t)1 << (i % 64);
	uint64_t old = __atomic_fetch_or(&bm.words[i / 64], bit, __ATOMIC_SEQ_CST);
	return (old & bit) != 0;
}

static inline int tqt_bitmap_test(tqt_bitmap bm, size_t i)
{
	uint64_t w = __atomic_load_n(&bm.words[i / 64], __ATOMIC_SEQ_CST);
	return (w >> (i % 64)) & 1;
}

static inline size_t tqt_bitmap_count(tqt_bitmap bm, size_t nbits)
{
	size_t n = 0;
	for (size_t i = 0; i < nbits; i++)
		n += (size_t)tqt_bitmap_test(bm, i);
	return n;
}

/* Forks; the child runs fn(arg) and _exit()s with its result (0..255).
 * Returns the child's pid (abort()s if fork fails). */
static inline pid_t tqt_fork(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0)
		_exit(fn(arg) & 0xff);
	return pid;
}

/* Waits up to timeout_ms for child pid. Returns its exit code, 128 + the
 * signal number if a signal ended it, or -1 if the deadline passed (the
 * child is then killed with SIGKILL and reaped). */
static inline int tqt_wait(pid_t pid, unsigned timeout_ms)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	for (;;) {
		int st = 0;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			if (WIFSIGNALED(st))
				return 128 + WTERMSIG(st);
			continue; /* stopped/continued: keep waiting */
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (tqt_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		tqt_sleep_ms(2);
	}
}

/* Waits for every child with one deadline; returns how many did not exit
 * with status 0 (timed out ones are killed and counted). */
static inline int tqt_wait_all(const pid_t *pids, size_t n, unsigned timeout_ms)
{
	uint64_t deadline = tqt_now_ms() + timeout_ms;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t now = tqt_now_ms();
		unsigned left = now < deadline ? (unsigned)(deadline - now) : 0;
		if (tqt_wait(pids[i], left) != 0)
			bad++;
	}
	return bad;
}

#endif /* TQT_UTIL_H */
