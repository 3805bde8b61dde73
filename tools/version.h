/* SPDX-License-Identifier: MIT */
/*
 * version.h - the version the programs print (--version): the Makefile's
 * VERSION, passed as TQ_VERSION_STRING and as its three numbers, which
 * must be include/taskq.h's TQ_VERSION_MAJOR/MINOR/PATCH.
 */
#ifndef TQ_TOOLS_VERSION_H
#define TQ_TOOLS_VERSION_H

#include "taskq.h"

#if !defined(TQ_VERSION_STRING) || !defined(TQ_MAKE_VERSION_MAJOR) || !defined(TQ_MAKE_VERSION_MINOR) || \
	!defined(TQ_MAKE_VERSION_PATCH)
#error "build with the Makefile: it passes VERSION as TQ_VERSION_STRING and TQ_MAKE_VERSION_*"
#endif

_Static_assert(TQ_VERSION_MAJOR == TQ_MAKE_VERSION_MAJOR && TQ_VERSION_MINOR == TQ_MAKE_VERSION_MINOR &&
		       TQ_VERSION_PATCH == TQ_MAKE_VERSION_PATCH,
	       "include/taskq.h's TQ_VERSION_MAJOR/MINOR/PATCH differ from the Makefile's VERSION");

#endif
