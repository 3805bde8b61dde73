/* SPDX-License-Identifier: MIT */
/* consumer.c - takes tasks in batches, handles them, acks or fails them.
 * Usage: consumer QUEUE   (stops after 1 s without tasks) */
#include <stdio.h>

#include <taskq.h>

static int handle(const tq_task *t)
{
	if (t->kind == TQ_KIND_INT)
		return (int)(t->value % 1000 == 998); /* pretend 1 in 1000 fails */
	return t->len == 0; /* payload tasks: t->data, t->len (valid until ack/fail) */
}

int main(int argc, char **argv)
{
	tq_queue *q;
	tq_task got[64];
	long done = 0, failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s QUEUE\n", argv[0]);
		return 2;
	}
	int rc = tq_open(argv[1], &q);
	if (rc) {
		fprintf(stderr, "consumer: %s: %s\n", argv[1], tq_strerror(rc));
		return 1;
	}
	for (;;) {
		int n = tq_take(q, got, 64, 1000000000ull); /* wait up to 1 s */
		if (n == TQ_ETIMEDOUT)
			break;
		if (n < 0) {
			fprintf(stderr, "consumer: take: %s\n", tq_strerror(n));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (handle(&got[i]) == 0) {
				tq_ack(q, &got[i], 1);
				done++;
			} else {
				tq_fail(q, &got[i], 1, 1, "handler failed"); /* retried, then dead */
				failed++;
			}
		}
	}
	printf("done %ld, failed %ld\n", done, failed);
	tq_close(q);
	return 0;
}
