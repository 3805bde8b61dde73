/* SPDX-License-Identifier: MIT */
/*
 * fuzz/segment.c - libFuzzer target: hostile queue segments.
 *
 * Base images are real segments made by the library (a small queue with
 * tasks in every state: ready, leased by a process that is gone, delayed,
 * dead), read byte for byte. Each input damages one image with patches
 * aimed at the regions that matter (header, locks, ring positions and
 * journals, process records, slot states, slots, failure texts, ring
 * cells, payload units and their owner words, and the lanes: claim words,
 * lease entries, the move
 * journal, lane cells (integer and payload lanes) and marks, and the
 * payload lanes' byte rings: record headers and payload bytes), writes it
 * as a segment, and drives every public call on it: open, stats, procs,
 * events, histograms, dead-letter list / kick / purge, push (now and
 * delayed; integers one at a time and in batches through tq_push_ints,
 * payloads one at a time and in batches), take,
 * ack, fail, touch, recover, run state, close.
 *
 * Every call must return a documented result within the fuzzer's -timeout:
 * a crash, a sanitizer report, a leak or a hang is a finding.
 *
 * Input: byte 0 picks the image; byte 1 the number of patches (0..15);
 * each patch is {region, offset (u16 LE), length (0..15), bytes}; the
 * rest is a script of operations, one byte each.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"
#include "taskq.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IMAGES 3
static struct image {
	uint8_t *bytes;
	size_t size;
	struct tq_hdr h; /* its geometry */
} images[IMAGES];
static char name[64], path[96];

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz/segment: %s: %d %s\n", what, rc, tq_strerror(rc));
	exit(1);
}

static void read_image(struct image *im)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;

	if (fd < 0 || fstat(fd, &sb) != 0)
		die("open base image", TQ_ESYS);
	im->size = (size_t)sb.st_size;
	im->bytes = malloc(im->size);
	if (!im->bytes || pread(fd, im->bytes, im->size, 0) != (ssize_t)im->size)
		die("read base image", TQ_ESYS);
	memcpy(&im->h, im->bytes, sizeof(im->h));
	close(fd);
}

/* A queue with tasks in every state; image taken while a lease is held by
 * this process's handle (it looks dead to the fuzzed opener: its liveness
 * lock is not held by anyone once the image is a new file). */
static void make_image(struct image *im, uint32_t cap, uint32_t payload, uint32_t attempts)
{
	static char fill[4096];
	tq_config cfg;
	tq_queue *q;
	tq_task t[8];
	int rc;

	if (payload > sizeof(fill))
		die("image payload too large", TQ_EINVAL);
	for (size_t i = 0; i < sizeof(fill); i++)
		fill[i] = (char)('a' + i % 26);
	tq_config_init(&cfg);
	cfg.capacity = cap;
	cfg.max_payload = payload;
	cfg.max_attempts = attempts;
	cfg.dead_capacity = 2;
	cfg.backoff_base_ns = 1000000;
	cfg.backoff_max_ns = 2000000;
	tq_destroy(name);
	if ((rc = tq_create(name, &cfg, &q)))
		die("create", rc);
	/* Payload records around the byte ring more than once, of every
	 * length up to max_payload: records sit at its start with room left
	 * unused at its end, and the lane's positions have gone round too. */
	for (uint32_t i = 0; payload && i < 3 * 4096 / (payload / 2 + 16); i++) {
		uint32_t len = (i * 37u) % (payload + 1);
		if ((rc = tq_push_data(q, i & 1 ? TQ_KIND_JSON : TQ_KIND_STRING, fill, len, 0)))
			die("push churn", rc);
		if ((rc = tq_take(q, t, 1, 0)) != 1)
			die("take churn", rc);
		if ((rc = tq_ack(q, t, 1)))
			die("ack churn", rc);
	}
	for (uint64_t i = 0; i + 1 < cap && i < 6; i++)
		if ((rc = tq_push_int(q, i, 0)))
			die("push int", rc);
	if (payload && (rc = tq_push_data(q, TQ_KIND_JSON, "{\"a\":1}", 7, 0)))
		die("push json", rc);
	/* dead letters: fail until out of attempts */
	for (uint32_t a = 0; a < attempts; a++) {
		rc = tq_take(q, t, 1, 0);
		if (rc != 1)
			die("take for dead", rc);
		(void)tq_fail(q, t, 1, -1, "fuzz base: failed on purpose");
		(void)tq_recover(q);
		usleep(3000);
		(void)tq_recover(q);
	}
	rc = tq_take(q, t, 2, 0);
	if (rc > 0)
		(void)tq_fail(q, t, 1, -2, "delayed");
	rc = tq_take(q, t, 2, 0); /* held: LEASED in the image */
	/* Payload lane tasks: a claim held (its records must stay), and
	 * ready ones behind it, of kinds STRING and JSON, empty and full. */
	if (payload) {
		tq_task b[4] = {
			{.kind = TQ_KIND_STRING, .data = fill, .len = 0},
			{.kind = TQ_KIND_JSON, .data = "{\"b\":[1,2]}", .len = 11},
			{.kind = TQ_KIND_STRING, .data = fill, .len = payload},
			{.kind = TQ_KIND_JSON, .data = fill, .len = payload / 3},
		};
		(void)tq_push(q, b, 4, 0);
		(void)tq_take(q, t, 8, 0); /* held, with what ints are left */
		(void)tq_push(q, b + 1, 3, 0);
	}
	(void)tq_set_run_state(q, TQ_RUNNING);
	read_image(im);
	tq_close(q);
	tq_destroy(name);
}

static void cleanup(void)
{
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(name, sizeof(name), "fuzz.segment.%d", (int)getpid());
	snprintf(path, sizeof(path), "/dev/shm/taskq.%s", name);
	make_image(&images[0], 16, 64, 2);
	make_image(&images[1], 5, 0, 1);
	make_image(&images[2], 40, 200, 3);
	atexit(cleanup);
	return 0;
}

/* Region r of image im: [*base, *base + *len). */
static void region(const struct image *im, unsigned r, size_t *base, size_t *len)
{
	const struct tq_hdr *h = &im->h;
	static const size_t locks[6] = {
		offsetof(struct tq_hdr, recovery_lock), offsetof(struct tq_hdr, event_lock),
		offsetof(struct tq_hdr, free_ring.pop), offsetof(struct tq_hdr, free_ring.push),
		offsetof(struct tq_hdr, ready_ring.pop), offsetof(struct tq_hdr, ready_ring.push),
	};

	switch (r % 16) {
	case 0: *base = 0; *len = sizeof(struct tq_hdr); break;
	case 1: *base = locks[(r / 16) % 6]; *len = sizeof(struct tq_ring_side); break;
	case 2: *base = offsetof(struct tq_hdr, run_state); *len = 64; break;
	case 3: *base = h->off_procs; *len = 4 * sizeof(struct tq_proc); break;
	case 4: *base = h->off_state; *len = (size_t)h->capacity * 8; break;
	case 5: *base = h->off_slots; *len = (size_t)h->capacity * sizeof(struct tq_slot); break;
	case 6: *base = h->off_aux; *len = (size_t)h->capacity * sizeof(struct tq_aux); break;
	case 7: *base = h->off_free_cells; *len = (size_t)h->ring_size * 4; break;
	case 8: *base = h->off_ready_cells; *len = (size_t)h->ring_size * 4; break;
	case 9: /* the payload units, or their owner words (r / 16 odd; design.md, 19) */
		if ((r / 16) % 2) {
			*base = h->off_owners;
			*len = (size_t)h->payload_units * 8;
		} else {
			*base = h->off_payload;
			*len = (size_t)h->payload_units * 64;
		}
		break;
	/* Lanes (design.md, 17): the id counter, record high mark, move
	 * journal and lane lines; the lease entries of the first record; the
	 * cells (the payload lanes', the integer lanes' or their batch records)
	 * and the marks of every lane (nlanes: the integer lanes, then the
	 * payload lanes); the payload lanes' byte rings, all eight, or
	 * one of them (r / 16 = 1..8: lane 8's first, where the images'
	 * records are), of record headers {len, kind, pad} and payloads. */
	case 10:
		*base = offsetof(struct tq_hdr, next_id);
		*len = offsetof(struct tq_hdr, free_ring) - *base;
		break;
	case 11: *base = h->off_procs + offsetof(struct tq_proc, lease_map); *len = 64 + sizeof(((struct tq_proc *)0)->leases); break;
	case 12: /* the payload lanes' cells, the integer lanes' cells, or their batch records (r / 16 % 3; layout 11) */
		switch ((r / 16) % 3) {
		case 0: *base = h->off_cells; *len = (size_t)(TQ_LANES - TQ_INT_LANES) * h->lane_size * sizeof(struct tq_cell); break;
		case 1: *base = h->off_ivals; *len = (size_t)TQ_INT_LANES * h->lane_size * 8; break;
		default: *base = h->off_ibatches; *len = (size_t)TQ_INT_LANES * h->lane_size * sizeof(struct tq_ibatch); break;
		}
		break;
	case 13: *base = h->off_marks; *len = (size_t)h->nlanes * h->lane_size * 8; break;
	case 14: {
		unsigned one = (r / 16) % 9;
		size_t rings = (size_t)(h->nlanes > TQ_INT_LANES ? h->nlanes - TQ_INT_LANES : 0);
		*base = h->off_bytes;
		*len = rings * h->lane_bytes;
		if (one && one <= rings) {
			*base += (one - 1) * h->lane_bytes;
			*len = h->lane_bytes;
		}
		break;
	}
	default: *base = offsetof(struct tq_hdr, fold); *len = sizeof(struct tq_fold_journal); break;
	}
	if (*len == 0)
		*len = 1;
}

static void write_segment(const uint8_t *bytes, size_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		die("write segment", TQ_ESYS);
	if (size && write(fd, bytes, size) != (ssize_t)size)
		die("write segment", TQ_ESYS);
	close(fd);
}

static void run_ops(tq_queue *q, const uint8_t *ops, size_t n)
{
	tq_task held[64];
	size_t nheld = 0;
	tq_stats st;
	tq_counters c;
	tq_config cfg;
	tq_histogram hw, hp;
	tq_event_info ev[16];
	tq_proc_info pr[8];
	tq_dead_info dl[8];
	uint8_t dd[8 * 32];
	uint64_t last_id = 1;
	uint32_t max_payload = 0;

	if (tq_config_get(q, &cfg) == 0)
		max_payload = cfg.max_payload;
	for (size_t i = 0; i < n && i < 64; i++) {
		uint8_t op = ops[i], arg = (uint8_t)(op >> 4);
		switch (op & 15) {
		case 0: (void)tq_stats_get(q, &st); break;
		case 1: (void)tq_procs(q, pr, 8); break;
		case 2: (void)tq_events(q, arg, ev, 16); break;
		case 3: {
			int k = tq_dead_list(q, dl, 8, dd, 32);
			if (k > 0)
				last_id = dl[(size_t)arg % (size_t)k].id;
			break;
		}
		case 4: (void)tq_dead_kick(q, arg & 1 ? TQ_ALL : last_id); break;
		case 5: (void)tq_dead_purge(q, arg & 1 ? TQ_ALL : last_id); break;
		case 6:
			if (arg & 8) {
				tq_task t = {.kind = TQ_KIND_INT, .value = arg};
				(void)tq_push_delayed(q, &t, 1, (uint64_t)(arg & 7) * 1000000ull, 0);
			} else if (arg & 4) {
				/* A batch of 1..64 integers in one lane write. */
				uint64_t v[64];
				for (unsigned j = 0; j < 64; j++)
					v[j] = (uint64_t)arg * 64u + j;
				(void)tq_push_ints(q, v, 1u + (size_t)(arg & 3) * 21u, 0);
			} else {
				(void)tq_push_int(q, arg, 0);
			}
			break;
		case 7: {
			/* Payloads into the payload lanes: one (STRING or JSON,
			 * 0..70 bytes), or a batch of 2..4 of both kinds; or a
			 * delayed one (through a slot). */
			static const char buf[80] = "{\"fuzz\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
			if (arg < 8) {
				(void)tq_push_data(q, arg & 1 ? TQ_KIND_JSON : TQ_KIND_STRING, buf, (uint32_t)arg * 10u, 0);
			} else if (arg < 14) {
				tq_task b[4];
				memset(b, 0, sizeof(b));
				for (unsigned j = 0; j < 4; j++) {
					b[j].kind = j & 1 ? TQ_KIND_JSON : TQ_KIND_STRING;
					b[j].data = buf;
					b[j].len = (uint32_t)((arg * 7u + j * 29u) % sizeof(buf));
				}
				(void)tq_push(q, b, 2 + (arg & 3) % 3, 0);
			} else {
				tq_task d = {.kind = TQ_KIND_JSON, .data = buf, .len = 9};
				(void)tq_push_delayed(q, &d, 1, (uint64_t)(arg & 1) * 1000000ull, 0);
			}
			break;
		}
		case 8: {
			if (nheld >= 64)
				break;
			size_t want = 1 + (size_t)arg % 8;
			if (want > 64 - nheld)
				want = 64 - nheld;
			int k = tq_take(q, held + nheld, want, 0);
			if (k > 0) {
				for (int j = 0; j < k; j++) { /* read what was handed out */
					const tq_task *t = &held[nheld + (size_t)j];
					volatile uint8_t sink = 0;
					/* Documented, whatever the segment says: a
					 * payload is at most max_payload bytes, and
					 * has its bytes if it has any. */
					if (t->kind != TQ_KIND_INT && (t->len > max_payload || (t->len && !t->data))) {
						fprintf(stderr, "fuzz/segment: tq_take gave kind %u len %u data %p, max_payload %u\n",
							t->kind, t->len, t->data, max_payload);
						abort();
					}
					for (uint32_t b = 0; b < t->len; b++)
						sink ^= ((const uint8_t *)t->data)[b];
					(void)sink;
				}
				nheld += (size_t)k;
			}
			break;
		}
		case 9:
			if (nheld) {
				size_t k = 1 + (size_t)arg % nheld;
				(void)tq_ack(q, held + nheld - k, k);
				nheld -= k;
			}
			break;
		case 10:
			if (nheld) {
				(void)tq_fail(q, held + nheld - 1, 1, -3, arg & 1 ? "fuzz" : NULL);
				nheld--;
			}
			break;
		case 11:
			if (nheld)
				(void)tq_touch(q, held, nheld, (uint64_t)arg * 1000000ull);
			break;
		case 12: (void)tq_recover(q); break;
		case 13:
			(void)tq_run_state(q);
			(void)tq_set_run_state(q, arg % 4);
			break;
		case 14:
			(void)tq_counters_self(q, &c);
			(void)tq_config_get(q, &cfg);
			break;
		default:
			if (arg & 1) {
				/* Batches of integers: their records read for ids
				 * (tq_batch_task), then acked or left to close. */
				uint64_t vals[16], fin;
				tq_batch b;
				tq_task one;
				int k = tq_take_ints(q, vals, 1 + (size_t)(arg >> 1), &b, 0);
				if (k > 0) {
					(void)tq_batch_task(q, &b, (size_t)arg % (size_t)k, &one);
					if (arg & 2)
						(void)tq_batch_ack(q, &b);
				}
				(void)tq_finished_below(q, &fin);
			} else {
				(void)tq_histograms(q, &hw, &hp);
			}
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const struct image *im = &images[data[0] % IMAGES];
	uint8_t *seg = malloc(im->size);
	if (!seg)
		return 0;
	memcpy(seg, im->bytes, im->size);
	size_t at = 2, seg_size = im->size;
	unsigned patches = data[1] & 15;
	for (unsigned p = 0; p < patches && at + 4 <= size; p++) {
		unsigned r = data[at];
		size_t off = (size_t)data[at + 1] | ((size_t)data[at + 2] << 8);
		size_t len = data[at + 3] & 15;
		at += 4;
		if (len > size - at)
			len = size - at;
		size_t base, rlen;
		region(im, r, &base, &rlen);
		off = base + off % rlen;
		if (off < 8)
			off = 8; /* the magic: a queue that is not one is tested elsewhere */
		for (size_t k = 0; k < len && off + k < seg_size; k++)
			seg[off + k] = data[at + k];
		at += len;
	}
	/* Flag in byte 1's high bits: a truncated file. */
	if ((data[1] & 0xc0) == 0xc0)
		seg_size = seg_size / 2;
	write_segment(seg, seg_size);
	free(seg);

	tq_queue *q = NULL;
	int rc = tq_open(name, &q);
	if (rc == 0) {
		run_ops(q, data + at, size - at);
		tq_close(q);
	} else if (rc > 0) {
		die("tq_open returned a positive value", rc);
	}
	return 0;
}
