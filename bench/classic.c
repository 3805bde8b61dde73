/* SPDX-License-Identifier: MIT */
/*
 * classic.c - the seed's classic ring (see classic.h).
 */
#include "classic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const suffix[CLASSIC_NOBJ] = {"ring", "empty", "full", "mutex"};

int classic_name(char *buf, size_t size, const char *base, enum classic_obj which)
{
	int n = snprintf(buf, size, "/%s-%s", base, suffix[which]);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int fail(char *err, size_t errlen, const char *what, const char *name)
{
	snprintf(err, errlen, "%s(%s): %s", what, name, strerror(errno));
	return -1;
}

int classic_create(const char *base, char *err, size_t errlen)
{
	char name[CLASSIC_NAME_MAX];
	if (classic_name(name, sizeof name, base, CLASSIC_SHM) != 0) {
		snprintf(err, errlen, "ring name too long: %s", base);
		return -1;
	}
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0)
		return fail(err, errlen, "shm_open", name);
	int rc = ftruncate(fd, sizeof(struct classic_ring));
	close(fd);
	if (rc != 0)
		return fail(err, errlen, "ftruncate", name);
	static const unsigned init[CLASSIC_NOBJ] = {0, CLASSIC_SLOTS, 0, 1};
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++) {
		if (classic_name(name, sizeof name, base, (enum classic_obj)i) != 0) {
			snprintf(err, errlen, "ring name too long: %s", base);
			return -1;
		}
		sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, init[i]);
		if (s == SEM_FAILED)
			return fail(err, errlen, "sem_open", name);
		sem_close(s);
	}
	return 0;
}

int classic_open(struct classic *h, const char *base, char *err, size_t errlen)
{
	char name[CLASSIC_NAME_MAX];
	memset(h, 0, sizeof *h);
	if (classic_name(name, sizeof name, base, CLASSIC_SHM) != 0) {
		snprintf(err, errlen, "ring name too long: %s", base);
		return -1;
	}
	int fd = shm_open(name, O_RDWR, 0);
	if (fd < 0)
		return fail(err, errlen, "shm_open", name);
	void *p = mmap(NULL, sizeof *h->ring, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return fail(err, errlen, "mmap", name);
	h->ring = p;
	sem_t **s[] = {&h->empty, &h->full, &h->mutex};
	for (int i = 0; i < 3; i++) {
		(void)classic_name(name, sizeof name, base, (enum classic_obj)(CLASSIC_EMPTY + i));
		*s[i] = sem_open(name, 0);
		if (*s[i] == SEM_FAILED) {
			*s[i] = NULL;
			fail(err, errlen, "sem_open", name);
			classic_close(h);
			return -1;
		}
	}
	return 0;
}

void classic_close(struct classic *h)
{
	sem_t *s[] = {h->empty, h->full, h->mutex};
	for (int i = 0; i < 3; i++)
		if (s[i])
			sem_close(s[i]);
	if (h->ring)
		munmap(h->ring, sizeof *h->ring);
	memset(h, 0, sizeof *h);
}

void classic_unlink(const char *base)
{
	char name[CLASSIC_NAME_MAX];
	if (classic_name(name, sizeof name, base, CLASSIC_SHM) != 0)
		return;
	shm_unlink(name);
	for (int i = CLASSIC_EMPTY; i <= CLASSIC_MUTEX; i++) {
		(void)classic_name(name, sizeof name, base, (enum classic_obj)i);
		sem_unlink(name);
	}
}

static int wait_sem(sem_t *s)
{
	while (sem_wait(s) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

int classic_push(struct classic *h, int64_t v)
{
	if (wait_sem(h->empty) != 0 || wait_sem(h->mutex) != 0)
		return -1;
	h->ring->slot[h->ring->tail] = v;
	h->ring->tail = (h->ring->tail + 1) % CLASSIC_SLOTS;
	if (h->inside)
		h->inside(h->arg);
	sem_post(h->mutex);
	sem_post(h->full);
	return 0;
}

int classic_pop(struct classic *h, int64_t *v)
{
	if (wait_sem(h->full) != 0 || wait_sem(h->mutex) != 0)
		return -1;
	*v = h->ring->slot[h->ring->head];
	h->ring->head = (h->ring->head + 1) % CLASSIC_SLOTS;
	if (h->inside)
		h->inside(h->arg);
	sem_post(h->mutex);
	sem_post(h->empty);
	return 0;
}
