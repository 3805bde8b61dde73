/*
 * clocklock.c - pthread_mutex_clocklock() that ThreadSanitizer can see.
 * Linked into every program of the TSan build (see the Makefile, SAN=tsan).
 *
 * Why: libtaskq takes its robust process-shared mutexes with
 * pthread_mutex_trylock() and, when that keeps failing, with
 * pthread_mutex_clocklock(CLOCK_MONOTONIC, deadline) (src/queue.c, tq__lock).
 * ThreadSanitizer intercepts lock, trylock and timedlock but not clocklock
 * (neither gcc 12's libtsan2 nor clang 14's runtime), so every lock taken on
 * that slow path is invisible to it: the unlock is then reported as "unlock
 * of an unlocked mutex", and the happens-before edge the mutex provides is
 * lost, which shows up as false data races on the data it protects.
 *
 * This definition in the executable interposes on glibc's. It keeps the
 * contract (lock, EOWNERDEAD, ETIMEDOUT at the deadline on `clockid`) but
 * is built from pthread_mutex_trylock(), which TSan models completely,
 * including the owner-died case (it marks the mutex repaired and locked).
 * It polls with short sleeps, which is fine for tests: contended waits are
 * rare and short.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clockid, const struct timespec *abstime);

static int before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clockid, const struct timespec *abstime)
{
	struct timespec nap = {0, 20000}; /* 20 us, doubling up to 1 ms */
	struct timespec now;

	if (clockid != CLOCK_MONOTONIC && clockid != CLOCK_REALTIME)
		return EINVAL;
	for (;;) {
		int rc = pthread_mutex_trylock(m);
		if (rc != EBUSY)
			return rc; /* 0, EOWNERDEAD, ENOTRECOVERABLE, EINVAL... */
		if (clock_gettime(clockid, &now) != 0)
			return EINVAL;
		if (!before(&now, abstime))
			return ETIMEDOUT;
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 1000000)
			nap.tv_nsec *= 2;
	}
}
