/* SPDX-License-Identifier: MIT */
/*
 * frame.h - the bridge's message framing: many tasks in one JetStream
 * message (docs/cluster.md, "Framing"). Pure functions of their arguments:
 * no I/O, no queue; the bridge, the tests and the fuzz target share them.
 *
 * A message (version 2), integers little-endian or as varints (unsigned
 * LEB128, minimal: at most 10 bytes, no needless trailing group):
 *   header, 16 bytes: 'T' 'Q' 'B' version(2) | count u32 | first id u64
 *   (the first task's id; 0 with no task)
 *   count tasks, each: kind u8 (1 integer, 2 string, 3 JSON) | id delta:
 *   varint, zigzag-encoded difference from the previous task's id (from
 *   the header's first id for the first task) | an integer task: varint
 *   value; a payload task: varint len, then len bytes.
 * Ids are the ones the tasks had on the machine they left; consecutive ids
 * cost one byte, small integers one or two.
 */
#ifndef TQ_FRAME_H
#define TQ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "taskq.h"

#define TQF_VERSION 2u
#define TQF_HEADER 16u
#define TQF_MAX_TASKS 65536u /* tasks in one message, at most */
#define TQF_TASK_MAX_OVERHEAD 21u /* kind, id delta, and a value or length: at most */

/* Bytes that task t can take in a message, at most (its exact size
 * depends on the task before it). */
size_t tqf_task_bound(const tq_task *t);

/* Writes the header for `count` tasks at buf (TQF_HEADER bytes); first_id
 * is the first task's id (deltas count from it). */
void tqf_header(uint8_t *buf, uint32_t count, uint64_t first_id);

/* Appends task t at buf + off; returns the new offset. *prev is the id the
 * delta counts from: the header's first id before the first task, then
 * updated here. The caller sized buf (tqf_task_bound). */
size_t tqf_put(uint8_t *buf, size_t off, const tq_task *t, uint64_t *prev);

/*
 * Checks a whole message and, if it is good, fills out[0..count) with its
 * tasks (payload `data` pointing into buf; `id` the sender's id). Returns
 * the count (0..max), or -1 with *why (a static string) and *at (the byte
 * offset of the problem): shorter than the header, bad magic, unknown
 * version, a count over max or over TQF_MAX_TASKS, a first id that is not
 * the first task's (or not 0 with no task), an unknown kind, a
 * varint that is cut short, not minimal or over 64 bits (so longer than
 * 10 bytes), a payload over max_payload, a payload cut short, bytes after the
 * last task.
 */
int tqf_decode(const uint8_t *buf, size_t len, tq_task *out, size_t max, uint32_t max_payload, const char **why,
	       size_t *at);

#endif
