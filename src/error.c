/* SPDX-License-Identifier: MIT */
/* error.c - names for every TQ_E* code. */
#include "internal.h"

TQ_API const char *tq_strerror(int err)
{
	switch (err) {
	case TQ_OK: return "success";
	case TQ_EINVAL: return "invalid argument";
	case TQ_ENAME: return "invalid queue name (1-200 characters of A-Z a-z 0-9 _ . -, not starting with '.')";
	case TQ_EEXIST: return "a queue with that name already exists";
	case TQ_ENOENT: return "no such queue";
	case TQ_EPERM: return "permission denied";
	case TQ_EBADQUEUE: return "not a taskq queue, or its shared memory is truncated or inconsistent";
	case TQ_EVERSION: return "the queue has another layout version";
	case TQ_E2BIG: return "payload larger than the queue's maximum";
	case TQ_EAGAIN: return "nothing could be done without waiting (queue full, empty or paused)";
	case TQ_ETIMEDOUT: return "timed out";
	case TQ_ELOST: return "lease lost: the task was or will be delivered again";
	case TQ_EPROCS: return "too many processes attached to the queue";
	case TQ_ENOMEM: return "out of memory or shared-memory space";
	case TQ_EBUSY: return "a queue lock stayed held too long (is an attached process stopped?)";
	case TQ_ENOTFOUND: return "no task with that id in that state";
	case TQ_ESYS: return "unexpected operating-system error";
	case TQ_EINIT: return "the queue is being created, or its creator died while creating it";
	case TQ_ESTOPPED: return "the queue is draining or stopped (taskq resume QUEUE sets it running)";
	case TQ_EFORKED: return "a handle opened before fork() cannot be used in the child: open the queue again";
	case TQ_EOBSERVER: return "an observer handle cannot change tasks or run recovery: open the queue with tq_open";
	default: return "unknown error";
	}
}
