/* SPDX-License-Identifier: MIT */
/*
 * hist.h - fixed-size latency histograms (private).
 *
 * Bucket 0 holds values up to 1024 ns; above that, two buckets per power
 * of two of nanoseconds, (2^o, 1.5*2^o] and (1.5*2^o, 2^(o+1)], up to
 * bucket 63 which also takes everything from about 40 minutes up. Upper
 * bounds are inclusive, as Prometheus's `le`. A percentile is reported as
 * the upper bound of the bucket it falls in: at most 50% high.
 */
#ifndef TQ_HIST_H
#define TQ_HIST_H

#include <stdint.h>

#include "layout.h"

static inline unsigned hist_bucket(uint64_t ns)
{
	uint64_t v = ns - 1; /* (lower, upper] */
	if (ns <= 1024)
		return 0;
	unsigned o = 63u - (unsigned)__builtin_clzll(v);
	unsigned half = (unsigned)(v >> (o - 1)) & 1u;
	unsigned b = 1 + (o - 10) * 2 + half;
	return b < TQ_HBUCKETS ? b : TQ_HBUCKETS - 1;
}

static inline uint64_t hist_upper_ns(unsigned b)
{
	if (b == 0)
		return 1024;
	if (b >= TQ_HBUCKETS - 1)
		return UINT64_MAX;
	unsigned o = 10 + (b - 1) / 2;
	return (b - 1) % 2 ? (2ull << o) : (3ull << (o - 1));
}

#endif
