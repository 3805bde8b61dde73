/* SPDX-License-Identifier: MIT */
/*
 * test_tls.c - `taskq serve --tls-cert --tls-key` (HTTPS) and its clients:
 * a self-signed certificate made with openssl(1) at test time in a temp
 * directory; GET /stats over HTTPS (libcurl, the certificate as the CA);
 * `taskq stop|pause|resume --url https://... --cacert`, which verifies the
 * certificate and the name and fails clearly without the right CA; a plain
 * HTTP request to the HTTPS port failing; the options' checks (both or
 * neither, unreadable or wrong files); and the refusal to start with
 * control on a non-loopback address over plain HTTP.
 *
 * Everything listens on 127.0.0.1 only. The refusal tests use 192.0.2.1
 * (TEST-NET-1, documentation only) and 2001:db8::1: the refusal comes before
 * any bind, and where the checks let the server go on (--insecure-http,
 * TLS) it fails to bind, as the address is not this machine's (checked
 * first), so nothing ever listens on another interface.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "proc.h"
#include "taskq.h"
#include "util.h"

#define TASKQ_BIN TQ_BIN_DIR "/taskq"
#define OPENSSL_BIN "/usr/bin/openssl"

static char qname[TQT_NAME_LEN], demo_queue[TQT_NAME_LEN];
static tq_queue *q;
static char dir[64] = "";
static char cert[128], key[128], other_cert[128], other_key[128], token_path[128];
static struct proc server;
static bool server_up;
static int port;

static void path_in(char *out, size_t size, const char *file)
{
	snprintf(out, size, "%s/%s", dir, file);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A self-signed certificate for the address 127.0.0.1 only (no DNS name),
 * EC P-256, with its key. */
static void make_cert(const char *cert_path, const char *key_path)
{
	char *argv[] = {OPENSSL_BIN, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
			"-nodes", "-keyout", (char *)key_path, "-out", (char *)cert_path, "-days", "2",
			"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", NULL};
	struct out o = {0};
	cr_assert_eq(run(argv, NULL, &o), 0, "openssl req: %s", o.err);
	out_free(&o);
}

static void setup(void)
{
	cr_assert_eq(access(OPENSSL_BIN, X_OK), 0, "openssl(1) is missing (Debian package openssl)");
	snprintf(dir, sizeof(dir), "/tmp/tqt-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	path_in(cert, sizeof(cert), "cert.pem");
	path_in(key, sizeof(key), "key.pem");
	path_in(other_cert, sizeof(other_cert), "other-cert.pem");
	path_in(other_key, sizeof(other_key), "other-key.pem");
	path_in(token_path, sizeof(token_path), "token");
	make_cert(cert, key);
	make_cert(other_cert, other_key);
	write_file(token_path, "tqt-tls-T0ken.0123456789abcdef\n", 0600);

	tq_config c;
	tqt_name(qname, "tls");
	tq_destroy(qname);
	tq_config_init(&c);
	c.capacity = 16;
	int rc = tq_create(qname, &c, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
}

static void teardown(void)
{
	if (server_up) {
		struct out o = {0};
		signal_until_exit(&server, SIGTERM, 5000, &o);
		out_free(&o);
		server_up = false;
	}
	if (q)
		tq_close(q);
	q = NULL;
	if (qname[0])
		tq_destroy(qname);
	if (demo_queue[0])
		tq_destroy(demo_queue);
	if (dir[0]) {
		const char *files[] = {cert, key, other_cert, other_key, token_path};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			unlink(files[i]);
		char extra[128];
		const char *more[] = {"empty.pem", "junk.pem", "fifo", "dir"};
		for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
			path_in(extra, sizeof(extra), more[i]);
			unlink(extra);
			rmdir(extra);
		}
		rmdir(dir);
	}
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(s, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	return ntohs(a.sin_port);
}

/* Starts `taskq serve QUEUE --listen 127.0.0.1:PORT --tls-cert --tls-key
 * --token-file` and waits for the line it prints once it listens. */
static void start_https_server(void)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		char listen_at[64];
		port = free_port();
		snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", port);
		char *argv[] = {TASKQ_BIN, "serve", qname, "--listen", listen_at, "--tls-cert", cert, "--tls-key", key,
				"--token-file", token_path, NULL};
		proc_start(&server, argv, NULL, 0);
		server_up = true;
		uint64_t deadline = tqt_now_ms() + 10000;
		while (tqt_now_ms() < deadline) {
			proc_pump(&server, 20);
			if (server.out.p && strstr(server.out.p, "serving")) {
				cr_assert(strstr(server.out.p, "taskq serve: https://127.0.0.1:"), "%s", server.out.p);
				return;
			}
			if (waitpid(server.pid, NULL, WNOHANG) == server.pid)
				break; /* the port was taken meanwhile? */
		}
		struct out o = {0};
		signal_until_exit(&server, SIGKILL, 5000, &o);
		server_up = false;
		cr_log_warn("taskq serve did not start: %s", o.err);
		out_free(&o);
	}
	cr_assert_fail("taskq serve --tls-cert did not start");
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	buf_add(b, p, size * n);
	return size * n;
}

/* GETs url with libcurl, verifying against cafile (NULL: the system's
 * CAs); returns libcurl's result, the status in *status, the body in *b. */
static CURLcode get(const char *url, const char *cafile, long *status, struct buf *b)
{
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (cafile)
		curl_easy_setopt(h, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	CURLcode cc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	return cc;
}

/* Runs taskq VERB QUEUE --url URL --token-file TOKEN [extra...]. */
static int client(const char *verb, const char *url, const char *cacert, struct out *o)
{
	char *argv[12];
	int n = 0;
	argv[n++] = TASKQ_BIN;
	argv[n++] = (char *)verb;
	argv[n++] = qname;
	argv[n++] = "--url";
	argv[n++] = (char *)url;
	argv[n++] = "--token-file";
	argv[n++] = token_path;
	if (cacert) {
		argv[n++] = "--cacert";
		argv[n++] = (char *)cacert;
	}
	argv[n] = NULL;
	return run(argv, NULL, o);
}

Test(tls, https_stats_and_the_client_with_the_ca)
{
	char url[96];
	struct buf b = {0};
	long status;
	struct out o = {0};

	start_https_server();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/stats", port);
	CURLcode cc = get(url, cert, &status, &b);
	cr_assert_eq(cc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(cc));
	cr_assert_eq(status, 200);
	cr_assert(b.p && strstr(b.p, qname), "%s", b.p ? b.p : "");
	free(b.p);

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	cr_assert_eq(client("pause", url, cert, &o), 0, "%s", o.err);
	cr_assert(strstr(o.out, "paused"), "%s", o.out);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
	cr_assert_eq(client("resume", url, cert, &o), 0, "%s", o.err);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	cr_assert_eq(client("stop", url, cert, &o), 0, "%s", o.err);
	cr_assert_eq(tq_run_state(q), TQ_DRAINING);
	out_free(&o);
}

Test(tls, the_certificate_is_verified)
{
	char url[96], name_url[96];
	struct buf b = {0};
	long status;
	struct out o = {0};

	start_https_server();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	/* no --cacert: the system's CAs do not know a self-signed certificate */
	cr_assert_eq(client("pause", url, NULL, &o), 1, "%s", o.err);
	cr_assert(strstr(o.err, "certificate"), "%s", o.err);
	cr_assert(strstr(o.err, "--cacert"), "the message says what to do: %s", o.err);
	/* another certificate as the CA */
	cr_assert_eq(client("pause", url, other_cert, &o), 1, "%s", o.err);
	cr_assert(strstr(o.err, "--cacert"), "%s", o.err);
	/* the right CA, but the certificate is for 127.0.0.1, not localhost */
	snprintf(name_url, sizeof(name_url), "https://localhost:%d", port);
	cr_assert_neq(client("pause", name_url, cert, &o), 0, "%s", o.err);
	cr_assert(strstr(o.err, "localhost"), "%s", o.err);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING, "no request got through");
	/* libcurl's own default agrees */
	char stats[128];
	snprintf(stats, sizeof(stats), "%s/stats", url);
	cr_assert_eq(get(stats, NULL, &status, &b), CURLE_PEER_FAILED_VERIFICATION);
	free(b.p);
	/* and the server still serves */
	cr_assert_eq(client("pause", url, cert, &o), 0, "%s", o.err);
	cr_assert_eq(tq_run_state(q), TQ_PAUSED);
	out_free(&o);
}

Test(tls, plain_http_to_the_https_port_fails)
{
	char url[96];
	struct buf b = {0};
	long status;
	struct out o = {0};

	start_https_server();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	cr_assert_eq(client("pause", url, NULL, &o), 1, "%s", o.err);
	cr_assert(strstr(o.err, "https://"), "the message suggests https: %s", o.err);
	cr_assert_eq(tq_run_state(q), TQ_RUNNING);
	char stats[128];
	snprintf(stats, sizeof(stats), "%s/stats", url);
	CURLcode cc = get(stats, NULL, &status, &b);
	cr_assert(cc != CURLE_OK || status != 200, "plain HTTP got an answer: %ld", status);
	cr_assert(!b.p || !strstr(b.p, qname), "no stats over plain HTTP");
	free(b.p);
	/* --cacert is for https:// only */
	cr_assert_eq(client("pause", url, cert, &o), 2, "%s", o.err);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	cr_assert_eq(client("pause", url, cert, &o), 0, "still serving HTTPS: %s", o.err);
	out_free(&o);
}

/* Runs taskq serve QUEUE with argv's options (NULL-ended) and TASKQ_TOKEN
 * unset; expects it to exit (it must not start) with want. */
static struct out serve_fails(int want, const char *const *opts)
{
	char *argv[24];
	int n = 0;
	struct out o = {0};

	argv[n++] = TASKQ_BIN;
	argv[n++] = "serve";
	argv[n++] = qname;
	for (int i = 0; opts[i] && n < 23; i++)
		argv[n++] = (char *)opts[i];
	argv[n] = NULL;
	unsetenv("TASKQ_TOKEN");
	int st = run(argv, NULL, &o);
	cr_assert_eq(st, want, "%s: exit status %d, not %d: %s", o.cmd, st, want, o.err);
	return o;
}

/* Whether this machine has addr (a bind to it, port 0, without listening). */
static bool is_local_address(int family, const char *addr)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &a->sin_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		len = sizeof(*a);
	}
	int s = socket(family, SOCK_STREAM, 0);
	if (s < 0)
		return false;
	bool ok = bind(s, (struct sockaddr *)&ss, len) == 0;
	close(s);
	return ok;
}

Test(tls, control_over_plain_http_off_loopback_is_refused)
{
	char listen4[64], listen6[64];
	snprintf(listen4, sizeof(listen4), "192.0.2.1:%d", free_port());
	snprintf(listen6, sizeof(listen6), "[2001:db8::1]:%d", free_port());

	/* refused before anything listens: the message says how to go on */
	const char *v4[] = {"--listen", listen4, "--token-file", token_path, NULL};
	struct out o = serve_fails(2, v4);
	cr_assert(strstr(o.err, "--tls-cert") && strstr(o.err, "--tls-key") && strstr(o.err, "--insecure-http"),
		  "%s", o.err);
	cr_assert(!strstr(o.out, "serving"), "%s", o.out);
	out_free(&o);
	const char *v6[] = {"--listen", listen6, "--token-file", token_path, NULL};
	o = serve_fails(2, v6);
	cr_assert(strstr(o.err, "--insecure-http"), "%s", o.err);
	out_free(&o);

	/* Past the check, these addresses (not this machine's) cannot be
	 * bound: exit status 1, "cannot listen", never a listening socket. */
	cr_assert(!is_local_address(AF_INET, "192.0.2.1"), "192.0.2.1 is this machine's: the test cannot run");
	const char *flag[] = {"--listen", listen4, "--token-file", token_path, "--insecure-http", NULL};
	o = serve_fails(1, flag);
	cr_assert(strstr(o.err, "cannot listen"), "--insecure-http lets it go on: %s", o.err);
	out_free(&o);
	const char *tls[] = {"--listen", listen4, "--token-file", token_path, "--tls-cert", cert, "--tls-key", key, NULL};
	o = serve_fails(1, tls);
	cr_assert(strstr(o.err, "cannot listen"), "HTTPS lets it go on: %s", o.err);
	out_free(&o);
	const char *readonly[] = {"--listen", listen4, NULL};
	o = serve_fails(1, readonly);
	cr_assert(strstr(o.err, "cannot listen"), "without a token (read-only) it goes on: %s", o.err);
	out_free(&o);

	/* a token from the environment counts the same */
	char *argv[] = {TASKQ_BIN, "serve", qname, "--listen", listen4, NULL};
	setenv("TASKQ_TOKEN", "tqt-env-token", 1);
	int st = run(argv, NULL, &o);
	unsetenv("TASKQ_TOKEN");
	cr_assert_eq(st, 2, "%s", o.err);
	cr_assert(strstr(o.err, "--insecure-http"), "%s", o.err);
	out_free(&o);
}

Test(tls, certificate_and_key_are_checked)
{
	char listen_at[64], empty[128], junk[128], fifo[128], subdir[128];
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", free_port());
	path_in(empty, sizeof(empty), "empty.pem");
	path_in(junk, sizeof(junk), "junk.pem");
	path_in(fifo, sizeof(fifo), "fifo");
	path_in(subdir, sizeof(subdir), "dir");
	write_file(empty, "", 0600);
	write_file(junk, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", 0600);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(mkdir(subdir, 0700), 0);

	struct {
		const char *opts[8];
		const char *says; /* in the message */
	} cases[] = {
		{{"--tls-cert", cert}, "--tls-key"},
		{{"--tls-key", key}, "--tls-cert"},
		{{"--tls-cert", "/nonexistent/cert.pem", "--tls-key", key}, "/nonexistent/cert.pem"},
		{{"--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"}, "/nonexistent/key.pem"},
		{{"--tls-cert", empty, "--tls-key", key}, "empty"},
		{{"--tls-cert", junk, "--tls-key", key}, "--tls-cert"},
		{{"--tls-cert", key, "--tls-key", key}, "--tls-cert"},
		{{"--tls-cert", cert, "--tls-key", cert}, "--tls-key"},
		{{"--tls-cert", cert, "--tls-key", other_key}, "match"},
		{{"--tls-cert", fifo, "--tls-key", key}, "FIFO"},
		{{"--tls-cert", cert, "--tls-key", subdir}, "directory"},
		{{"--tls-cert", cert, "--tls-key", key, "--insecure-http"}, "--insecure-http"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *opts[12] = {"--listen", listen_at};
		for (int k = 0; cases[i].opts[k]; k++)
			opts[2 + k] = cases[i].opts[k];
		struct out o = serve_fails(2, opts);
		cr_assert(strstr(o.err, cases[i].says), "case %zu: '%s' not in: %s", i, cases[i].says, o.err);
		cr_assert(!strstr(o.out, "serving"), "case %zu started: %s", i, o.out);
		out_free(&o);
	}
}

/* taskq-demo --serve passes --tls-cert and --tls-key on to taskq serve,
 * and announces the https:// URL. */
Test(tls, the_demo_serves_https)
{
	struct out o = {0};
	tqt_name(demo_queue, "tls-demo");
	tq_destroy(demo_queue);
	char *argv[] = {TQ_BIN_DIR "/taskq-demo", "--queue", demo_queue, "--quiet", "--total", "500", "--serve",
			"127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, NULL};
	cr_assert_eq(run(argv, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	cr_assert(strstr(o.out, "https://127.0.0.1:"), "%s", o.out);
	out_free(&o);

	char *nokey[] = {TQ_BIN_DIR "/taskq-demo", "--queue", demo_queue, "--serve", "127.0.0.1:0", "--tls-cert",
			 cert, NULL};
	cr_assert_eq(run(nokey, NULL, &o), 2, "%s", o.err);
	cr_assert(strstr(o.err, "--tls-key"), "%s", o.err);
	char *noserve[] = {TQ_BIN_DIR "/taskq-demo", "--queue", demo_queue, "--insecure-http", NULL};
	cr_assert_eq(run(noserve, NULL, &o), 2, "%s", o.err);
	cr_assert(strstr(o.err, "--serve"), "%s", o.err);
	out_free(&o);
}
