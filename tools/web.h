/* SPDX-License-Identifier: MIT */
/*
 * web.h - the dashboard's files (tools/web/), built into taskq by
 * scripts/embed-assets.sh, and what taskq serve answers besides /stats
 * for the dashboard (serve_web.c): the recent events and the dead letters.
 */
#ifndef TQ_WEB_H
#define TQ_WEB_H

#include <stddef.h>

struct web_asset {
	const char *name;           /* base name: "index.html", "uPlot.iife.min.js" */
	const char *type;           /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

/* The file named name..len, or NULL. */
const struct web_asset *web_asset_find(const char *name, size_t len);

#endif
