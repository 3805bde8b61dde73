/* SPDX-License-Identifier: MIT */
/*
 * lanefix.h - what the lane suites (test_lanes.c, test_payload_lanes.c)
 * share: one queue per test and its handles, children that die with the
 * test, and read-only views of the queue's segment. Children report
 * through shared memory and their exit code, never Criterion asserts.
 */
#ifndef TQ_TEST_LANEFIX_H
#define TQ_TEST_LANEFIX_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layout.h"
#include "taskq.h"
#include "util.h"

static char lf_qname[TQT_NAME_LEN];
static tq_queue *lf_q, *lf_q2;
static pid_t lf_kids[8];
static int lf_nkids;

/* .fini of every lane test: children killed, handles closed, queue gone. */
static void lf_fini(void)
{
	for (int i = 0; i < lf_nkids; i++) {
		if (lf_kids[i] > 0) {
			kill(lf_kids[i], SIGKILL);
			waitpid(lf_kids[i], NULL, 0);
		}
	}
	lf_nkids = 0;
	if (lf_q2)
		tq_close(lf_q2);
	lf_q2 = NULL;
	if (lf_q)
		tq_close(lf_q);
	lf_q = NULL;
	if (lf_qname[0])
		tq_destroy(lf_qname);
	lf_qname[0] = '\0';
}

static pid_t lf_parent;
static int (*lf_child_fn)(void *);

/* A child dies with the test's process (and never outlives a parent that
 * died before it got here). */
static int lf_child_main(void *arg)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != lf_parent)
		return 99;
	return lf_child_fn(arg);
}

static inline pid_t lf_spawn(int (*fn)(void *), void *arg)
{
	lf_parent = getpid();
	lf_child_fn = fn;
	pid_t pid = tqt_fork(lf_child_main, arg);
	if (lf_nkids < (int)(sizeof lf_kids / sizeof lf_kids[0]))
		lf_kids[lf_nkids++] = pid;
	return pid;
}

/* A child reaped: .fini no longer kills it. */
static inline void lf_forget(pid_t pid)
{
	for (int i = 0; i < lf_nkids; i++)
		if (lf_kids[i] == pid)
			lf_kids[i] = 0;
}

/* A child's handle on the test's queue; NULL with the reason in msg. */
static inline tq_queue *lf_child_open(char *msg, size_t size)
{
	tq_queue *q = NULL;
	int rc = tq_open(lf_qname, &q);
	if (rc != 0) {
		snprintf(msg, size, "child tq_open: %d (%s)", rc, tq_strerror(rc));
		return NULL;
	}
	return q;
}

/* The segment of lf_qname, mapped shared, read only. */
static inline const uint8_t *lf_map(size_t *size)
{
	const uint8_t *p = tqt_segment_map(lf_qname, false, size);
	cr_assert_not_null(p, "map %s: %s", lf_qname, strerror(errno));
	return p;
}

static inline uint64_t lf_hdr64(const uint8_t *seg, size_t field)
{
	uint64_t w;
	memcpy(&w, seg + field, sizeof w);
	return w;
}

static inline uint32_t lf_hdr32(const uint8_t *seg, size_t field)
{
	uint32_t w;
	memcpy(&w, seg + field, sizeof w);
	return w;
}

/* A word of lane `lane`'s header lines (offsetof(struct tq_lane, ...)). */
static inline uint64_t lf_lane_word(const uint8_t *seg, uint32_t lane, size_t field)
{
	return lf_hdr64(seg, offsetof(struct tq_hdr, lanes) + lane * sizeof(struct tq_lane) + field);
}

#endif
