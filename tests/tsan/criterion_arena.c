/* SPDX-License-Identifier: MIT */
/*
 * criterion_arena.c - lets Criterion (BoxFort) place its shared arenas where
 * ThreadSanitizer allows application memory. Linked into the TSan build of
 * the test binary only (see the Makefile, SAN=tsan).
 *
 * Why: BoxFort 0.1.x (inside Debian 12's libcriterion.so.3) maps every
 * arena, which must sit at the same address in the test's child processes,
 * at a random base 0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB, checks
 * with mincore() that the range is unmapped, and gives up after 10 tries
 * ("Could not initialize inheritable arena: Resource temporarily
 * unavailable", or a crash when a per-test arena fails). ThreadSanitizer
 * (gcc 12's libtsan2 and clang 14 alike) reserves nearly all of
 * 0x200000000000..0x600000000000 for its shadow and meta memory; only
 * 0x550000000000..0x568000000000 (where PIE executables load) is left to
 * the application, so about 2% of BoxFort's candidates can succeed.
 *
 * BoxFort calls rand_r() through the PLT, so this definition in the
 * executable interposes on it. Calls from libcriterion get a value whose
 * base lands in that window; every other caller gets the usual sequence
 * from glibc. Nothing else in the test build changes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

int rand_r(unsigned int *seed);

/* BoxFort's constants (src/arena.c, 64-bit): base, unit, mask. */
#define BXF_MMAP_BASE 0x200000000000ull
#define BXF_MMAP_UNIT (1ull << 24)
/* The application window TSan leaves in that range, with a margin of
 * 256 MiB at its end for arenas that grow in place. */
#define APP_LO 0x550000000000ull
#define APP_HI (0x568000000000ull - (1ull << 28))

static int from_criterion(const void *caller)
{
	Dl_info info;
	return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libcriterion");
}

int rand_r(unsigned int *seed)
{
	/* The generator glibc documents for rand_r: one LCG step per call. */
	unsigned int next = *seed;
	int result;

	next *= 1103515245;
	next += 12345;
	result = (unsigned int)(next / 65536) % 2048;
	next *= 1103515245;
	next += 12345;
	result <<= 10;
	result ^= (unsigned int)(next / 65536) % 1024;
	next *= 1103515245;
	next += 12345;
	result <<= 10;
	result ^= (unsigned int)(next / 65536) % 1024;
	*seed = next;

	if (!from_criterion(__builtin_return_address(0)))
		return result;
	uint64_t lo = (APP_LO - BXF_MMAP_BASE) / BXF_MMAP_UNIT;
	uint64_t hi = (APP_HI - BXF_MMAP_BASE) / BXF_MMAP_UNIT;
	return (int)(lo + (uint64_t)result % (hi - lo));
}
