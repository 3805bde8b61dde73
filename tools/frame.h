/*
 * frame.h - the bridge's message framing: many tasks in one JetStream
 * message (docs/cluster.md, "Framing"). Pure functions of their arguments:
 * no I/O, no queue; the bridge and the tests share them.
 *
 * A message, all integers little-endian:
 *   header, 16 bytes: 'T' 'Q' 'B' version(1) | count u32 | reserved u64 (0)
 *   count tasks, each: kind u16 | flags u16 (0) | len u32 | id u64 (the id
 *   it had on the machine it left) | an integer task: value u64; a payload
 *   task: len bytes, then zero bytes up to a multiple of 8.
 */
#ifndef TQ_FRAME_H
#define TQ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "taskq.h"

#define TQF_VERSION 1u
#define TQF_HEADER 16u
#define TQF_TASK_HEADER 16u
#define TQF_MAX_TASKS 65536u /* tasks in one message, at most */

/* Bytes that task t takes in a message. */
size_t tqf_task_size(const tq_task *t);

/* Writes the header for `count` tasks at buf (TQF_HEADER bytes). */
void tqf_header(uint8_t *buf, uint32_t count);

/* Appends task t at buf + off; returns the new offset (off +
 * tqf_task_size(t)). The caller sized buf. */
size_t tqf_put(uint8_t *buf, size_t off, const tq_task *t);

/*
 * Checks a whole message and, if it is good, fills out[0..count) with its
 * tasks (payload `data` pointing into buf; `id` the sender's id). Returns
 * the count (0..max), or -1 with *why (a static string) and *at (the byte
 * offset of the problem): bad magic, unknown version, a count over max or
 * over TQF_MAX_TASKS, a reserved field not 0, an unknown kind, an integer
 * task with a length, a payload over max_payload, a truncated task, bytes
 * after the last task.
 */
int tqf_decode(const uint8_t *buf, size_t len, tq_task *out, size_t max, uint32_t max_payload, const char **why,
	       size_t *at);

#endif
