/* SPDX-License-Identifier: MIT */
/*
 * fuzz_util.h - what the libFuzzer targets share: a check that aborts (a
 * finding) and a NUL-terminated copy of an input (for string parsers).
 */
#ifndef TQ_FUZZ_UTIL_H
#define TQ_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* A NUL-terminated copy of n bytes; the caller frees it. */
static inline char *cstr(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

#endif
