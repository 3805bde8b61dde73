/* SPDX-License-Identifier: MIT */
/*
 * serve_web.c - what taskq serve answers for its dashboard besides /stats:
 * the page's files (built in, web.h), a queue's recent events (/events) and
 * its dead letters (/dead), and kicking or purging dead letters. See
 * docs/http.md.
 */
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "web.h"

const struct web_asset *web_asset_find(const char *name, size_t len)
{
	for (size_t i = 0; i < web_nassets; i++)
		if (strlen(web_assets[i].name) == len && !memcmp(web_assets[i].name, name, len))
			return &web_assets[i];
	return NULL;
}

cJSON *serve_events_json(struct served *sv, uint64_t after, int *err)
{
	tq_event_info ev[64];
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "events");
	uint64_t last = after;
	int n;

	*err = 0;
	cJSON_AddStringToObject(o, "queue", sv->name);
	/* The ring keeps 256: at most four rounds. */
	while ((n = tq_events(sv->q, last, ev, 64)) > 0) {
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(arr, cli_event_json(&ev[i]));
		last = ev[n - 1].seq;
	}
	if (n < 0) {
		*err = n;
		cJSON_Delete(o);
		return NULL;
	}
	cli_json_add_u64(o, "last", last);
	return o;
}

/* A worker handle on the served queue for a dead-letter call (an observer
 * may not make them): opened for the one call and closed after it. */
static int open_worker(const struct served *sv, tq_queue **h)
{
	return tq_open(sv->name, h);
}

cJSON *serve_dead_json(struct served *sv, size_t max, int *err)
{
	tq_queue *h = NULL;
	tq_stats st;
	tq_dead_info *d = calloc(max, sizeof(*d));
	char *data = calloc(max, SERVE_DEAD_PAYLOAD);
	cJSON *o = NULL;

	*err = TQ_ENOMEM;
	if (!d || !data)
		goto out;
	if ((*err = open_worker(sv, &h)) != 0)
		goto out;
	int n = tq_dead_list(h, d, max, data, SERVE_DEAD_PAYLOAD);
	tq_stats_get(h, &st);
	tq_close(h);
	if (n < 0) {
		*err = n;
		goto out;
	}
	*err = TQ_ENOMEM;
	uint64_t now = tq_now_ns();
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "queue", sv->name) || !cJSON_AddNumberToObject(o, "dead", st.dead))
		goto fail;
	cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
	for (int i = 0; arr && i < n; i++) {
		size_t len = d[i].len < SERVE_DEAD_PAYLOAD ? d[i].len : SERVE_DEAD_PAYLOAD;
		cJSON *t = cli_dead_json(&d[i], data + (size_t)i * SERVE_DEAD_PAYLOAD, len, now);
		if (!t || !cJSON_AddItemToArray(arr, t)) {
			cJSON_Delete(t);
			goto fail;
		}
		if (len < d[i].len && !cJSON_AddNumberToObject(t, "payload_bytes", d[i].len))
			goto fail;
	}
	if (!arr)
		goto fail;
	*err = 0;
	goto out;
fail:
	cJSON_Delete(o);
	o = NULL;
out:
	free(d);
	free(data);
	return o;
}

int serve_dead_action(struct served *sv, uint64_t id, bool purge)
{
	tq_queue *h = NULL;
	int rc = open_worker(sv, &h);

	if (rc)
		return rc;
	rc = purge ? tq_dead_purge(h, id) : tq_dead_kick(h, id);
	tq_close(h);
	return rc;
}
