/* SPDX-License-Identifier: MIT */
/*
 * fault.c - crash points for tests: compiled only into the test build of
 * the library (see fault.h).
 */
#include "fault.h"

#ifdef TQ_FAULT_INJECTION

#include <signal.h>
#include <stdlib.h>
#include <string.h>

const char *tq_fault_point_armed;
static char armed_name[64];
static unsigned armed_left;
static int armed_sig = SIGKILL;

void tq_fault_arm_signal(const char *point, unsigned hit, int sig)
{
	tq_fault_arm(point, hit);
	armed_sig = sig;
}

void tq_fault_arm(const char *point, unsigned hit)
{
	armed_sig = SIGKILL;
	if (!point || hit == 0 || strlen(point) >= sizeof(armed_name)) {
		tq_fault_point_armed = NULL;
		return;
	}
	strcpy(armed_name, point);
	armed_left = hit;
	tq_fault_point_armed = armed_name;
}

void tq_fault_hit(const char *point)
{
	if (!tq_fault_point_armed || strcmp(point, tq_fault_point_armed) != 0)
		return;
	if (--armed_left == 0) {
		tq_fault_point_armed = NULL; /* once: a stopped process resumes past it */
		raise(armed_sig);
	}
}

/* Called when the first handle opens: TQ_FAULT=name[:hit]. */
void tq_fault_from_env(void)
{
	const char *env = getenv("TQ_FAULT");
	char name[64];
	const char *colon;
	unsigned hit = 1;

	if (!env || !*env || tq_fault_point_armed)
		return;
	colon = strchr(env, ':');
	size_t len = colon ? (size_t)(colon - env) : strlen(env);
	if (len == 0 || len >= sizeof(name))
		return;
	memcpy(name, env, len);
	name[len] = '\0';
	if (colon) {
		char *end;
		unsigned long v = strtoul(colon + 1, &end, 10);
		if (*end || v == 0 || v > 1000000000ul)
			return;
		hit = (unsigned)v;
	}
	tq_fault_arm(name, hit);
}
#endif
