/* SPDX-License-Identifier: MIT */
/*
 * classic.h - the seed's classic ring: 10,000 int64 slots in POSIX shared
 * memory (shm_open + mmap), guarded by three named semaphores: sem_empty
 * (free slots), sem_full (occupied slots), sem_mutex (the critical section
 * around head and tail). One sem_wait/sem_post cycle of each per task.
 *
 * Used by the benchmark (the "seed classic" row, bench/baselines.c) and by
 * the test that kills the holder of sem_mutex (tests/test_seed.c), which is
 * why it depends on nothing else of the bench. Objects of a ring named BASE:
 * the shared memory "/BASE-ring" and the semaphores "/BASE-empty",
 * "/BASE-full" and "/BASE-mutex".
 */
#ifndef TASKQ_CLASSIC_H
#define TASKQ_CLASSIC_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#define CLASSIC_SLOTS 10000
#define CLASSIC_NAME_MAX 160 /* bytes in an object name, with NUL */

struct classic_ring {
	uint64_t head, tail; /* guarded by sem_mutex */
	int64_t slot[CLASSIC_SLOTS];
};

/* The named objects, in the order of classic_name's `which`. */
enum classic_obj { CLASSIC_SHM, CLASSIC_EMPTY, CLASSIC_FULL, CLASSIC_MUTEX, CLASSIC_NOBJ };

/* A process's view of one ring. */
struct classic {
	struct classic_ring *ring;
	sem_t *empty, *full, *mutex;
	/* Tests only (NULL otherwise): called while sem_mutex is held, after
	 * the slot was written (push) or read (pop). */
	void (*inside)(void *arg);
	void *arg;
};

/* Writes the name of object `which` of ring `base` to buf; 0, or -1 if it
 * does not fit. */
int classic_name(char *buf, size_t size, const char *base, enum classic_obj which);

/* Creates the ring's four objects (O_EXCL): an empty ring. 0, or -1 with a
 * message in err (what was created stays: classic_unlink removes it). */
int classic_create(const char *base, char *err, size_t errlen);

/* Attaches to the ring (any process); 0, or -1 with a message in err. */
int classic_open(struct classic *h, const char *base, char *err, size_t errlen);
void classic_close(struct classic *h);

/* Removes the ring's objects (those that exist). */
void classic_unlink(const char *base);

/* Waits for a free slot, then for sem_mutex, writes v, posts both. 0, or
 * -1 with errno set (sem_wait failed other than by EINTR). */
int classic_push(struct classic *h, int64_t v);

/* Waits for an occupied slot, then for sem_mutex, reads the oldest value
 * into *v, posts both. 0, or -1 with errno set. */
int classic_pop(struct classic *h, int64_t *v);

#endif
