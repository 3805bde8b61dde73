/* SPDX-License-Identifier: MIT */
/*
 * cmd_remote.c - bearer tokens (shared with taskq serve) and the remote
 * forms of taskq stop / pause / resume: `--url URL` sends the request to a
 * `taskq serve` instead of setting the run state of a local queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h"

#define REMOTE_CONNECT_MS 5000L
#define REMOTE_TOTAL_MS 10000L
#define REMOTE_BODY_MAX 65536

/* ---------------------------------------------------------------- tokens */

/* Validates and trims a token in place: trailing whitespace goes, and what
 * is left must be 1..CLI_TOKEN_MAX visible ASCII characters. */
static int check_token(char *t, const char *from)
{
	size_t len = strlen(t);

	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ' || t[len - 1] == '\t'))
		t[--len] = '\0';
	if (!len) {
		cli_err("%s: the token is empty", from);
		return EX_USAGE_;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) {
			cli_err("%s: the token has a space, control or non-ASCII character", from);
			return EX_USAGE_;
		}
	}
	return 0;
}

int cli_read_token_file(const char *path, char *out, size_t size)
{
	char buf[CLI_TOKEN_MAX + 4];
	/* O_NONBLOCK: opening a FIFO must not wait for a writer (the file is
	 * refused below unless it is a regular one, where the flag is moot). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;

	out[0] = '\0';
	if (fd < 0) {
		cli_err("--token-file %s: %s", path, strerror(errno));
		return EX_USAGE_;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		cli_err("--token-file %s: not a regular file", path);
		return EX_USAGE_;
	}
	if (st.st_mode & 077)
		fprintf(stderr, "taskq: %s: warning: token file %s is readable by other users (chmod 600 it)\n",
			cli_cmd, path);
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			cli_err("--token-file %s: %s", path, strerror(e));
			return EX_USAGE_;
		}
		have += (size_t)n;
		if (n == 0 || have == sizeof(buf) - 1 || memchr(buf, '\n', have))
			break;
	}
	close(fd);
	buf[have] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	else if (have == sizeof(buf) - 1) {
		cli_err("--token-file %s: the token is longer than %d bytes", path, CLI_TOKEN_MAX);
		return EX_USAGE_;
	}
	char from[64 + 16];
	snprintf(from, sizeof(from), "--token-file %.64s", path);
	int rc = check_token(buf, from);
	if (!rc) {
		if (strlen(buf) >= size || strlen(buf) > CLI_TOKEN_MAX) {
			cli_err("--token-file %s: the token is longer than %d bytes", path, CLI_TOKEN_MAX);
			rc = EX_USAGE_;
		} else {
			memcpy(out, buf, strlen(buf) + 1);
		}
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int cli_token_from_env(char *out, size_t size)
{
	const char *e = getenv("TASKQ_TOKEN");

	out[0] = '\0';
	if (!e || !*e)
		return 0;
	if (strlen(e) > CLI_TOKEN_MAX || strlen(e) >= size) {
		cli_err("TASKQ_TOKEN: the token is longer than %d bytes", CLI_TOKEN_MAX);
		return EX_USAGE_;
	}
	memcpy(out, e, strlen(e) + 1);
	int rc = check_token(out, "TASKQ_TOKEN");
	if (rc)
		out[0] = '\0';
	return rc;
}

/* ------------------------------------------------------- remote client */

bool cli_has_remote_opts(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strncmp(argv[i], "--url", 5) && (argv[i][5] == '\0' || argv[i][5] == '='))
			return true;
		if (!strncmp(argv[i], "--token-file", 12) && (argv[i][12] == '\0' || argv[i][12] == '='))
			return true;
		if (!strncmp(argv[i], "--cacert", 8) && (argv[i][8] == '\0' || argv[i][8] == '='))
			return true;
	}
	return false;
}

static bool valid_queue_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TQ_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

struct body {
	char data[REMOTE_BODY_MAX + 1];
	size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb, room = REMOTE_BODY_MAX - b->len;

	memcpy(b->data + b->len, ptr, n < room ? n : room);
	b->len += n < room ? n : room;
	b->data[b->len] = '\0';
	return n; /* the rest is dropped, not an error */
}

/* The server's {"error": "..."} message, or a printable start of the body. */
static void server_message(const struct body *b, char *out, size_t size)
{
	cJSON *o = cJSON_Parse(b->data);
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(o, "error"));

	if (m) {
		snprintf(out, size, "%s", m);
	} else {
		size_t i = 0;
		for (; i < b->len && i + 1 < size && b->data[i] != '\n'; i++)
			out[i] = (b->data[i] >= 0x20 && b->data[i] < 0x7f) ? b->data[i] : '?';
		out[i] = '\0';
	}
	cJSON_Delete(o);
}

/* Why curl_easy_perform failed, with what to do where that is known: the
 * certificate check (never turned off) and a plain request to an HTTPS
 * server. */
static void transfer_error(const char *url, CURLcode cc, const char *detail)
{
	const char *hint = "";

	if (cc == CURLE_PEER_FAILED_VERIFICATION)
		hint = " (the server's certificate could not be verified: for a self-signed certificate or a "
		       "private CA, give its certificate with --cacert FILE)";
	else if (cc == CURLE_GOT_NOTHING && !strncasecmp(url, "http://", 7))
		hint = " (if that server speaks HTTPS, use an https:// URL)";
	else if (cc == CURLE_SSL_CONNECT_ERROR && !strncasecmp(url, "https://", 8))
		hint = " (if that server speaks plain HTTP, use an http:// URL)";
	cli_err("%s: %s%s%s%s", url, curl_easy_strerror(cc), detail[0] ? ": " : "", detail, hint);
}

/* POSTs URL/queues/NAME/VERB; returns the exit status. cacert: a file of
 * CA certificates to verify an https:// server with, or NULL (the
 * system's). */
static int remote_post(const char *base, const char *name, const char *verb, const char *token,
		       const char *cacert, bool json)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	size_t blen = strlen(base);
	while (blen && base[blen - 1] == '/')
		blen--;
	size_t ulen = blen + strlen(name) + strlen(verb) + 16;
	char *url = malloc(ulen);
	struct body *b = calloc(1, sizeof(*b));
	char auth[CLI_TOKEN_MAX + 32];
	int rc = EX_FAIL;

	if (!url || !b) {
		free(url);
		free(b);
		cli_err("out of memory");
		return EX_FAIL;
	}
	snprintf(url, ulen, "%.*s/queues/%s/%s", (int)blen, base, name, verb);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		cli_err("libcurl failed to initialize");
		goto out;
	}
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	if (!h) {
		cli_err("libcurl failed to initialize");
		curl_global_cleanup();
		goto out;
	}
	if (token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	hdr = curl_slist_append(hdr, "Accept: application/json");
	hdr = curl_slist_append(hdr, "Content-Type:"); /* no form content type for the empty body */
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "taskq/" "0.1");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, REMOTE_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, REMOTE_TOTAL_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* never resend the token elsewhere */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	/* The server's certificate and name are always checked (libcurl's
	 * default, set here so that nothing can turn it off). */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	curl_global_cleanup();

	char msg[512];
	if (cc != CURLE_OK) {
		transfer_error(url, cc, errbuf);
		goto out;
	}
	server_message(b, msg, sizeof(msg));
	if (status == 200) {
		cJSON *o = cJSON_Parse(b->data);
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(o, "state"));
		if (!st) {
			cli_err("%s: unexpected answer: %s", url, msg);
			cJSON_Delete(o);
			goto out;
		}
		if (json) {
			cli_print_json(o);
		} else {
			printf("%s: %s\n", name, st);
			cJSON_Delete(o);
		}
		rc = 0;
	} else if (status == 401 || status == 403) {
		cli_err("%s: refused (HTTP %ld): %s%s", url, status, msg,
			token[0] ? "" : " (no token given: --token-file FILE or TASKQ_TOKEN)");
		rc = EX_REFUSED;
	} else if (status == 404) {
		cli_err("%s: not found (HTTP 404): %s", url, msg);
		rc = EX_NOQUEUE;
	} else {
		cli_err("%s: HTTP %ld: %s", url, status, msg);
		rc = EX_FAIL;
	}
out:
	free(url);
	free(b);
	return rc;
}

enum { R_JSON = 'j', R_NOW = 'n', R_URL = 0x100, R_TOKEN_FILE, R_CACERT };

#define R_COMMON_OPTS                                                                              \
	{R_JSON, true, "json", NULL, "print the new state as JSON: {\"state\": ...}"}, CLI_OPT_PRETTY, \
	{R_URL, false, "url", "URL", "the `taskq serve` to ask: its base URL, http://\nor https://"}, \
	{R_TOKEN_FILE, false, "token-file", "FILE", "the bearer token: the first line of FILE\n"     \
						    "(default: $TASKQ_TOKEN)"},                    \
	{R_CACERT, false, "cacert", "FILE", "with an https:// URL: verify the server's\n"             \
					     "certificate against the CA certificates in FILE\n"  \
					     "(PEM) instead of the system's"}

static const struct cli_opt remote_stop_opts[] = {
	{R_NOW, true, "now", NULL, "stopped, not draining (POST .../stop, not\n.../drain)"},
	R_COMMON_OPTS,
	{0, false, NULL, NULL, NULL},
};
static const struct cli_opt remote_state_opts[] = {R_COMMON_OPTS, {0, false, NULL, NULL, NULL}};

#define R_ABOUT                                                                               \
	"Sends the request to `taskq serve` at URL (POST URL/queues/NAME/VERB)\n"               \
	"instead of setting a local queue's run state. Exit status 8: the server refused\n"     \
	"(wrong or missing token, or control off); 3: no such queue there; 1: the\n"            \
	"server could not be reached or failed, or its certificate could not be verified.\n"

static const struct cli_command remote_cmds[] = {
	{.name = "stop", .usage = "stop NAME --url URL [--token-file FILE] [--cacert FILE] [--now] [--json] [--pretty]",
	 .about = R_ABOUT, .opts = remote_stop_opts},
	{.name = "pause", .usage = "pause NAME --url URL [--token-file FILE] [--cacert FILE] [--json] [--pretty]",
	 .about = R_ABOUT, .opts = remote_state_opts},
	{.name = "resume", .usage = "resume NAME --url URL [--token-file FILE] [--cacert FILE] [--json] [--pretty]",
	 .about = R_ABOUT, .opts = remote_state_opts},
};

int cli_remote_state(int argc, char **argv, const char *cmd)
{
	const struct cli_command *rc_cmd = &remote_cmds[0];
	bool is_stop = !strcmp(cmd, "stop"), now = false, json = false;
	const char *url = NULL, *token_file = NULL, *cacert = NULL;
	struct cli_parser p;
	int c;

	for (size_t i = 0; i < sizeof(remote_cmds) / sizeof(remote_cmds[0]); i++)
		if (!strcmp(remote_cmds[i].name, cmd))
			rc_cmd = &remote_cmds[i];
	cli_parser_init(&p, rc_cmd);
	while ((c = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		switch (c) {
		case CLI_OPT_HELP: return 0;
		case CLI_OPT_BAD: return EX_USAGE_;
		case R_JSON: json = true; break;
		case R_NOW: now = true; break;
		case R_URL: url = optarg; break;
		case R_TOKEN_FILE: token_file = optarg; break;
		case R_CACERT: cacert = optarg; break;
		default: return cli_command_usage(rc_cmd);
		}
	}
	if (optind != argc - 1)
		return cli_command_usage(rc_cmd);
	if (!url) {
		cli_err("%s needs --url", token_file ? "--token-file" : "--cacert");
		return EX_USAGE_;
	}
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
		cli_err("--url %s: not an http:// or https:// URL", url);
		return EX_USAGE_;
	}
	if (strpbrk(url, "?# \t\r\n")) {
		cli_err("--url %s: give the server's base URL, without query, fragment or spaces", url);
		return EX_USAGE_;
	}
	if (cacert) {
		struct stat st;
		if (strncasecmp(url, "https://", 8)) {
			cli_err("--cacert is for an https:// URL (--url %s)", url);
			return EX_USAGE_;
		}
		if (stat(cacert, &st) != 0 || access(cacert, R_OK) != 0) {
			cli_err("--cacert %s: %s", cacert, strerror(errno));
			return EX_USAGE_;
		}
		if (!S_ISREG(st.st_mode)) {
			cli_err("--cacert %s: not a regular file", cacert);
			return EX_USAGE_;
		}
	}
	const char *name = argv[optind];
	if (!valid_queue_name(name)) {
		cli_err("invalid queue name '%s'", name);
		return EX_USAGE_;
	}
	char token[CLI_TOKEN_MAX + 1];
	int rc = token_file ? cli_read_token_file(token_file, token, sizeof(token))
			    : cli_token_from_env(token, sizeof(token));
	if (rc)
		return rc;
	const char *verb = is_stop ? (now ? "stop" : "drain") : cmd;
	rc = remote_post(url, name, verb, token, cacert, json);
	explicit_bzero(token, sizeof(token));
	return rc;
}
