/* SPDX-License-Identifier: MIT */
/* producer.c - pushes integer and JSON tasks in batches of 64.
 * Usage: producer QUEUE [COUNT]   (the queue is created if missing) */
#include <stdio.h>
#include <stdlib.h>

#include <taskq.h>

int main(int argc, char **argv)
{
	tq_queue *q;
	tq_task batch[64];
	char json[64][64];
	long count = argc > 2 ? atol(argv[2]) : 1000;

	if (argc < 2) {
		fprintf(stderr, "usage: %s QUEUE [COUNT]\n", argv[0]);
		return 2;
	}
	int rc = tq_open(argv[1], &q);
	if (rc == TQ_ENOENT)
		rc = tq_create(argv[1], NULL, &q); /* 10,000 tasks, 4 KiB payloads */
	if (rc) {
		fprintf(stderr, "producer: %s: %s\n", argv[1], tq_strerror(rc));
		return 1;
	}
	for (long done = 0; done < count;) {
		int n = count - done < 64 ? (int)(count - done) : 64;
		for (int i = 0; i < n; i++) {
			long v = done + i;
			if (v % 2) { /* odd: a JSON task */
				int len = snprintf(json[i], sizeof(json[i]), "{\"n\":%ld}", v);
				batch[i] = (tq_task){.kind = TQ_KIND_JSON, .data = json[i], .len = (uint32_t)len};
			} else {     /* even: an integer task */
				batch[i] = (tq_task){.kind = TQ_KIND_INT, .value = (uint64_t)v};
			}
		}
		rc = tq_push(q, batch, (size_t)n, 5000000000ull); /* wait up to 5 s if full */
		if (rc < 0) {
			fprintf(stderr, "producer: push: %s\n", tq_strerror(rc));
			tq_close(q);
			return 1;
		}
		done += rc; /* rc tasks accepted: they will be delivered */
	}
	printf("pushed %ld tasks\n", count);
	tq_close(q);
	return 0;
}
