/* SPDX-License-Identifier: MIT */
/*
 * bridge.c - taskq-bridge: moves tasks between the taskq queues of several
 * machines through NATS JetStream (docs/cluster.md).
 *
 *   taskq-bridge out NAME --nats URL[,URL...] --stream S [options]
 *   taskq-bridge in  NAME --nats URL[,URL...] --stream S --consumer C [options]
 *
 * `out` leases batches from the local queue, packs them into one message
 * (frame.h), publishes it with a deduplication id and acks the local tasks
 * only once JetStream has confirmed it. `in` fetches messages from a
 * durable pull consumer that every importing machine shares, pushes their
 * tasks into the local queue, and acks a message only once every task from
 * it is finished here (tq_finished_below), keeping it alive meanwhile.
 *
 * This program links libtaskq's public API and the NATS C client; libtaskq
 * itself has no NATS dependency.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "frame.h"
#include "log.h"
#include "parse.h"
#include "taskq.h"
#include "version.h"

#define EX_FAIL 1
#define EX_USAGE 2
#define EX_NOQUEUE 3

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("taskq-bridge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (taskq-bridge --help)\n", stderr);
	exit(EX_USAGE);
}

/* Bytes of a message kept for its headers (Nats-Msg-Id and the client's
 * own), which JetStream counts against its maximum message size. */
#define MSG_HEADROOM 600u

/* ------------------------------------------------------------ options */

struct opts {
	const char *mode;       /* "out" or "in" */
	const char *queue;
	char *servers[16];
	int nservers;
	const char *stream;
	char subject[256];
	char dead_subject[256];
	const char *consumer;
	const char *token_file, *user, *password_file, *creds, *tls_ca;
	uint32_t batch;         /* out: tasks per message */
	uint32_t max_msg;       /* out: bytes per message */
	int replicas;           /* stream: 1 or 3 */
	bool memory;            /* stream storage */
	uint64_t ack_wait_ns;   /* in: the consumer's ack wait */
	uint64_t drain_ns;      /* in: on stop, how long to wait for pending messages */
	uint64_t linger_ns;     /* out: how long to gather a message's tasks */
	bool json;              /* stats, stop: JSON output */
	bool pretty;            /* --pretty: that JSON indented */
	uint64_t wait_ns;       /* stats, stop: how long to collect answers */
	int stop_state;         /* stop: TQ_DRAINING or TQ_STOPPED */
	uint64_t iterations;    /* top: refreshes before leaving (0: until a signal) */
	char stats_subject[256];
	char control_subject[256];
	const char *metrics_file; /* out, in: Prometheus text, rewritten every second */
	struct log_config log;
};

/* "taskq bridge" when run by `taskq bridge`, else "taskq-bridge". */
static const char *g_prog = "taskq-bridge";

static void usage(FILE *f)
{
	const char *p = g_prog;
	fprintf(f,
		"usage: %s out NAME --nats URL[,URL...] --stream S [options]\n"
		"       %s in  NAME --nats URL[,URL...] --stream S --consumer C [options]\n"
		"       %s stats [NAME] --nats URL[,URL...] --stream S [--json [--pretty]] [--wait SEC]\n"
		"       %s stop  [NAME] --nats URL[,URL...] --stream S [--state draining|stopped]\n"
		"                          [--json [--pretty]] [--wait SEC]\n"
		"       %s top   [NAME] --nats URL[,URL...] --stream S [--wait SEC] [--iterations N]\n"
		"       %s --version\n\n"
		"Moves tasks between machines through NATS JetStream (docs/cluster.md).\n"
		"  out   leases tasks from queue NAME, publishes them many per message, and\n"
		"        acks them here once JetStream has confirmed the message\n"
		"  in    fetches messages from the durable pull consumer C (shared by every\n"
		"        importing machine), pushes their tasks into queue NAME, and acks a\n"
		"        message once every task from it is finished here\n"
		"  stats every running bridge of stream S (on every machine) publishes its\n"
		"        queue's figures once a second on taskq.S.stats; this prints the\n"
		"        latest of each (of queue NAME only, if given) and the totals\n"
		"  top   the stats table of every machine, refreshed every --wait, until Ctrl+C\n"
		"        (or --iterations refreshes)\n"
		"  stop  asks every running bridge of stream S (of queue NAME only, if given)\n"
		"        to set its queue's run state (draining by default), and prints\n"
		"        which machines confirmed within --wait (default 2 s); requests go\n"
		"        on taskq.S.control, authenticated as any NATS client is\n\n"
		"Options:\n"
		"  --nats URLS           NATS servers, comma-separated (nats://host:port)\n"
		"  --stream S            the JetStream stream; created if missing (work-queue\n"
		"                        retention), checked if present\n"
		"  --subject SUBJ        the tasks' subject (default taskq.S.tasks)\n"
		"  --dead-subject SUBJ   where tasks dead here and malformed messages go\n"
		"                        (default taskq.S.dead; stored in the same stream)\n"
		"  --consumer C          in: the durable consumer's name\n"
		"  --replicas N          the stream's replicas when created: 1 or 3 (default 1)\n"
		"  --storage file|memory the stream's storage when created (default file)\n"
		"  --batch N             out: tasks per message, 1..%u (default 4096)\n"
		"  --max-msg BYTES       out: bytes per message, 1024..67108864 (default 1048576;\n"
		"                        the server's max_payload must allow it)\n"
		"  --linger SECONDS      out: how long to gather a message (default 0.005)\n"
		"  --ack-wait SECONDS    in: the consumer's ack wait (default 30); messages\n"
		"                        still in work here are kept alive before it ends\n"
		"  --drain SECONDS       in: on SIGTERM/SIGINT, wait this long for the tasks\n"
		"                        of messages taken to finish before leaving (default 10)\n"
		"  --token-file F        authenticate with the token in file F\n"
		"  --user U --password-file F   user and password (the password read from F)\n"
		"  --creds F             a NATS credentials file (JWT and NKey seed)\n"
		"  --tls-ca F            trust the CA certificates in F (TLS)\n"
		"  --json                stats, stop: JSON output, on one line\n"
		"  --pretty              with --json: indented, on several lines\n"
		"  --wait SECONDS        stats, stop: how long to collect answers (default 1.5, 2)\n"
		"  --state S             stop: draining (default) or stopped\n"
		"  --metrics-file FILE   out, in: write this bridge's counters to FILE every\n"
		"                        second (Prometheus text; taskq serve --bridge-metrics)\n"
		"  --log FILE            log to FILE (rotated) instead of stderr\n"
		"  --log-level L         debug, info, warn or error (default info)\n\n"
		"Secrets are never taken on the command line. Exit status: 0 stopped by a\n"
		"signal or by the queue's run state (stats, stop: at least one bridge\n"
		"answered); 1 a NATS or queue error; 2 usage; 3 no such queue; 6 stats,\n"
		"stop: no bridge answered within --wait.\n",
		p, p, p, p, p, p, TQF_MAX_TASKS);
}

static void read_secret(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "taskq-bridge: %s: %s\n", path, strerror(errno));
		exit(EX_USAGE);
	}
	size_t n = fread(out, 1, size - 1, f);
	fclose(f);
	out[n] = '\0';
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	if (!n) {
		fprintf(stderr, "taskq-bridge: %s is empty\n", path);
		exit(EX_USAGE);
	}
}

static bool subject_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 256 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '*' || c == '>' || (c == '.' && s[i + 1] == '.'))
			return false;
	}
	return true;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"nats", required_argument, 0, 'n'},      {"stream", required_argument, 0, 's'},
		{"subject", required_argument, 0, 'j'},   {"dead-subject", required_argument, 0, 'D'},
		{"consumer", required_argument, 0, 'c'},  {"replicas", required_argument, 0, 'r'},
		{"storage", required_argument, 0, 'S'},   {"batch", required_argument, 0, 'b'},
		{"max-msg", required_argument, 0, 'm'},   {"linger", required_argument, 0, 'L'},
		{"ack-wait", required_argument, 0, 'a'},  {"drain", required_argument, 0, 'd'},
		{"token-file", required_argument, 0, 't'}, {"user", required_argument, 0, 'u'},
		{"password-file", required_argument, 0, 'p'}, {"creds", required_argument, 0, 'C'},
		{"tls-ca", required_argument, 0, 'T'},    {"log", required_argument, 0, 'l'},
		{"log-level", required_argument, 0, 'v'}, {"help", no_argument, 0, 'h'},
		{"json", no_argument, 0, 'J'},            {"wait", required_argument, 0, 'w'},
		{"state", required_argument, 0, 'X'},     {"metrics-file", required_argument, 0, 'M'},
		{"iterations", required_argument, 0, 'I'}, {"pretty", no_argument, 0, 'P'},
		{0, 0, 0, 0},
	};
	uint64_t v;
	char *urls = NULL;

	memset(o, 0, sizeof *o);
	if (argc >= 1 && !strcmp(argv[0], "taskq bridge"))
		g_prog = "taskq bridge";
	o->batch = 4096;
	o->max_msg = 1048576;
	o->replicas = 1;
	o->ack_wait_ns = 30000000000ull;
	o->drain_ns = 10000000000ull;
	o->linger_ns = 5000000ull;
	o->stop_state = TQ_DRAINING;
	log_config_init(&o->log);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		exit(0);
	}
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("taskq-bridge %s\n", TQ_VERSION_STRING);
		exit(0);
	}
	if (argc < 2 || (strcmp(argv[1], "out") && strcmp(argv[1], "in") && strcmp(argv[1], "stats") &&
			 strcmp(argv[1], "stop") && strcmp(argv[1], "top")))
		die_usage("the first argument is out, in, stats, top or stop");
	o->mode = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'n': urls = optarg; break;
		case 's': o->stream = optarg; break;
		case 'j':
			if (strlen(optarg) >= sizeof o->subject)
				die_usage("--subject is too long");
			strcpy(o->subject, optarg);
			break;
		case 'D':
			if (strlen(optarg) >= sizeof o->dead_subject)
				die_usage("--dead-subject is too long");
			strcpy(o->dead_subject, optarg);
			break;
		case 'c': o->consumer = optarg; break;
		case 'r':
			if (!cli_parse_u64(optarg, 1, 3, &v) || v == 2)
				die_usage("--replicas is 1 or 3");
			o->replicas = (int)v;
			break;
		case 'S':
			if (strcmp(optarg, "file") && strcmp(optarg, "memory"))
				die_usage("--storage is file or memory");
			o->memory = !strcmp(optarg, "memory");
			break;
		case 'b':
			if (!cli_parse_u64(optarg, 1, TQF_MAX_TASKS, &v))
				die_usage("--batch is 1..%u", TQF_MAX_TASKS);
			o->batch = (uint32_t)v;
			break;
		case 'm':
			if (!cli_parse_u64(optarg, 1024, 67108864, &v))
				die_usage("--max-msg is 1024..67108864");
			o->max_msg = (uint32_t)v;
			break;
		case 'L':
			if (!cli_parse_seconds(optarg, 10, &o->linger_ns))
				die_usage("--linger is 0..10 seconds");
			break;
		case 'a':
			if (!cli_parse_seconds(optarg, 3600, &o->ack_wait_ns) || o->ack_wait_ns < 1000000000ull)
				die_usage("--ack-wait is 1..3600 seconds");
			break;
		case 'd':
			if (!cli_parse_seconds(optarg, 3600, &o->drain_ns))
				die_usage("--drain is 0..3600 seconds");
			break;
		case 't': o->token_file = optarg; break;
		case 'u': o->user = optarg; break;
		case 'p': o->password_file = optarg; break;
		case 'C': o->creds = optarg; break;
		case 'T': o->tls_ca = optarg; break;
		case 'l': o->log.path = optarg; break;
		case 'v':
			if ((o->log.level = log_level_parse(optarg)) < 0)
				die_usage("--log-level is debug, info, warn or error");
			break;
		case 'J': o->json = true; break;
		case 'P': o->pretty = true; break;
		case 'M': o->metrics_file = optarg; break;
		case 'I':
			if (!cli_parse_u64(optarg, 1, 1000000, &o->iterations))
				die_usage("--iterations is 1..1000000");
			break;
		case 'w':
			if (!cli_parse_seconds(optarg, 60, &o->wait_ns) || o->wait_ns == 0)
				die_usage("--wait is 0..60 seconds, not 0");
			break;
		case 'X':
			if (!strcmp(optarg, "draining"))
				o->stop_state = TQ_DRAINING;
			else if (!strcmp(optarg, "stopped"))
				o->stop_state = TQ_STOPPED;
			else
				die_usage("--state is draining or stopped");
			break;
		case 'h': usage(stdout); exit(0);
		default: die_usage("bad option");
		}
	}
	bool query = !strcmp(o->mode, "stats") || !strcmp(o->mode, "stop") || !strcmp(o->mode, "top");
	if (optind == argc - 1)
		o->queue = argv[optind];
	else if (optind != argc || !query)
		die_usage("one queue NAME expected");
	if (o->queue && !cli_queue_name_ok(o->queue))
		die_usage("bad queue name '%s'", o->queue);
	if (!o->wait_ns)
		o->wait_ns = !strcmp(o->mode, "stop") ? 2000000000ull : 1500000000ull;
	o->log.queue = o->queue;
	if (!urls)
		die_usage("--nats is required");
	if (!o->stream || !name_ok(o->stream))
		die_usage("--stream is required: 1-64 of A-Z a-z 0-9 _ -");
	if (!strcmp(o->mode, "in") && (!o->consumer || !name_ok(o->consumer)))
		die_usage("in: --consumer is required: 1-64 of A-Z a-z 0-9 _ -");
	if (!o->subject[0])
		snprintf(o->subject, sizeof o->subject, "taskq.%s.tasks", o->stream);
	if (!o->dead_subject[0])
		snprintf(o->dead_subject, sizeof o->dead_subject, "taskq.%s.dead", o->stream);
	snprintf(o->stats_subject, sizeof o->stats_subject, "taskq.%s.stats", o->stream);
	snprintf(o->control_subject, sizeof o->control_subject, "taskq.%s.control", o->stream);
	if (!subject_ok(o->subject) || !subject_ok(o->dead_subject) || !strcmp(o->subject, o->dead_subject))
		die_usage("subjects are tokens of printable characters separated by single dots, no wildcards, "
			  "and the dead subject differs from the tasks' subject");
	if ((o->user != NULL) != (o->password_file != NULL))
		die_usage("--user and --password-file go together");
	const char *files[4] = {o->token_file, o->password_file, o->creds, o->tls_ca};
	for (int i = 0; i < 4; i++)
		if (files[i] && access(files[i], R_OK) != 0)
			die_usage("cannot read %s: %s", files[i], strerror(errno));
	for (char *save = NULL, *u = strtok_r(urls, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		if (o->nservers == 16)
			die_usage("at most 16 --nats URLs");
		if (!*u)
			continue;
		o->servers[o->nservers++] = u;
	}
	if (!o->nservers)
		die_usage("--nats names no server");
}

/* ---------------------------------------------------------------- NATS */

struct bridge {
	struct opts *o;
	tq_queue *q;
	tq_config cfg;
	natsConnection *nc;
	jsCtx *js;
	uint64_t published, confirmed, imported, msgs_in, dead_out, malformed, reconnects, publish_errors;
	uint64_t last_report_ns;
	char origin[400]; /* host, queue and queue instance: message ids never collide across them */
	char host[256];
	uint64_t stats_ns; /* last stats published */
	uint64_t redelivered;    /* in: messages JetStream delivered more than once */
	uint64_t in_flight;      /* in: messages fetched and not yet acked upstream */
	uint64_t rtt_ns;         /* out: the last publish's round trip to its PubAck */
	natsSubscription *control;
};

static volatile int g_closing; /* our own close: not worth a warning */

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	if (g_closing)
		return;
	log_event(LOG_WARN_, "nats_disconnected", "retrying=yes");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;
	(void)nc;
	__atomic_fetch_add(&b->reconnects, 1, __ATOMIC_RELAXED);
	log_event(LOG_INFO_, "nats_reconnected", "reconnects=%" PRIu64,
		  __atomic_load_n(&b->reconnects, __ATOMIC_RELAXED));
}

static int nats_fail(const char *what, natsStatus s, jsErrCode jerr)
{
	char q[300];
	log_event(LOG_ERROR_, "nats_error", "what=%s status=%s js_error=%d detail=%s", what, natsStatus_GetText(s),
		  (int)jerr, log_quote(q, sizeof q, nats_GetLastError(NULL)));
	return EX_FAIL;
}

static int connect_nats(struct bridge *b)
{
	struct opts *o = b->o;
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	char secret[4096], pass[4096];

	if (s == NATS_OK)
		s = natsOptions_SetServers(no, (const char **)o->servers, o->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, "taskq-bridge");
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1); /* for ever: tasks wait in the queue */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 500);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(no, true, NULL, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(no, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(no, on_reconnected, b);
	if (s == NATS_OK && o->token_file) {
		read_secret(o->token_file, secret, sizeof secret);
		s = natsOptions_SetToken(no, secret);
	}
	if (s == NATS_OK && o->user) {
		read_secret(o->password_file, pass, sizeof pass);
		s = natsOptions_SetUserInfo(no, o->user, pass);
	}
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
	if (s == NATS_OK && o->tls_ca)
		s = natsOptions_LoadCATrustedCertificates(no, o->tls_ca);
	if (s == NATS_OK)
		s = natsConnection_Connect(&b->nc, no);
	memset(secret, 0, sizeof secret);
	memset(pass, 0, sizeof pass);
	natsOptions_Destroy(no);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED)
		return nats_fail("connect", s, 0);
	s = natsConnection_JetStream(&b->js, b->nc, NULL);
	if (s != NATS_OK)
		return nats_fail("jetstream", s, 0);
	return 0;
}

/* The stream: created if missing, else checked to carry our subjects as a
 * work queue. Retried while NATS is not reachable. */
static int ensure_stream(struct bridge *b)
{
	struct opts *o = b->o;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	bool raced = false;

	for (;;) {
		natsStatus s = js_GetStreamInfo(&si, b->js, o->stream, NULL, &jerr);
		if (s == NATS_OK)
			break;
		if (jerr == JSStreamNotFoundErr || s == NATS_NOT_FOUND) {
			jsStreamConfig sc;
			const char *subjects[2] = {o->subject, o->dead_subject};
			jsStreamConfig_Init(&sc);
			sc.Name = o->stream;
			sc.Subjects = subjects;
			sc.SubjectsLen = 2;
			sc.Retention = js_WorkQueuePolicy;
			sc.Storage = o->memory ? js_MemoryStorage : js_FileStorage;
			sc.Replicas = o->replicas;
			sc.MaxMsgSize = (int32_t)o->max_msg;
			sc.Duplicates = 120000000000ll; /* 2 minutes: resends after a crash are dropped */
			s = js_AddStream(&si, b->js, &sc, NULL, &jerr);
			if (s == NATS_OK) {
				log_event(LOG_INFO_, "stream_created", "stream=%s subject=%s dead_subject=%s replicas=%d",
					  o->stream, o->subject, o->dead_subject, o->replicas);
				break;
			}
			/* Another bridge made it between the look and the add (the
			 * server says so with either code): look again, once. A
			 * second refusal is an overlap with another stream. */
			if (!raced && (jerr == JSStreamNameExistErr || jerr == JSStreamSubjectOverlapErr)) {
				raced = true;
				continue;
			}
			if (jerr != 0)
				return nats_fail("create stream", s, jerr);
		} else if (jerr != 0) {
			return nats_fail("stream info", s, jerr);
		}
		if (g_stop)
			return -1; /* stopped before NATS answered: not an error */
		log_event(LOG_WARN_, "nats_waiting", "what=stream status=%s", natsStatus_GetText(s));
		nats_Sleep(500);
	}
	bool has_subject = false, has_dead = false;
	for (int i = 0; si->Config && i < si->Config->SubjectsLen; i++) {
		has_subject |= !strcmp(si->Config->Subjects[i], o->subject);
		has_dead |= !strcmp(si->Config->Subjects[i], o->dead_subject);
	}
	bool wq = si->Config && si->Config->Retention == js_WorkQueuePolicy;
	jsStreamInfo_Destroy(si);
	if (!has_subject || !has_dead || !wq) {
		log_event(LOG_ERROR_, "stream_mismatch",
			  "stream=%s subject=%s has_subject=%d has_dead_subject=%d work_queue=%d", o->stream,
			  o->subject, has_subject, has_dead, wq);
		fprintf(stderr,
			"taskq-bridge: stream %s exists but does not carry %s and %s as a work queue; use another "
			"--stream, or the subjects it has\n",
			o->stream, o->subject, o->dead_subject);
		return EX_FAIL;
	}
	return 0;
}

static void report(struct bridge *b, bool force)
{
	uint64_t now = now_ns();
	if (!force && now - b->last_report_ns < 10000000000ull)
		return;
	b->last_report_ns = now;
	log_event(LOG_INFO_, "bridge_stats",
		  "mode=%s published=%" PRIu64 " confirmed=%" PRIu64 " imported=%" PRIu64 " messages_in=%" PRIu64
		  " dead_out=%" PRIu64 " malformed=%" PRIu64 " publish_errors=%" PRIu64 " reconnects=%" PRIu64,
		  b->o->mode, b->published, b->confirmed, b->imported, b->msgs_in, b->dead_out, b->malformed,
		  b->publish_errors, __atomic_load_n(&b->reconnects, __ATOMIC_RELAXED));
}

/* ------------------------------------------------------------- cluster */

static const char *state_name(int st)
{
	return st == TQ_RUNNING ? "running" : st == TQ_PAUSED ? "paused" : st == TQ_DRAINING ? "draining"
	       : st == TQ_STOPPED ? "stopped" : "unknown";
}

/* --metrics-file: this bridge's counters in Prometheus text, written
 * whole to FILE.tmp and renamed over FILE (a reader never sees half).
 * `taskq serve --bridge-metrics FILE` serves them with the queues'. */
static void write_metrics(struct bridge *b)
{
	const char *path = b->o->metrics_file;
	char tmp[4200], lab[400];
	if (!path)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	snprintf(lab, sizeof lab, "queue=\"%s\",mode=\"%s\",stream=\"%s\"", b->o->queue, b->o->mode, b->o->stream);
	fprintf(f,
		"# HELP taskq_bridge_tasks_total Tasks through taskq-bridge: published (out, confirmed by JetStream), "
		"acked here after their PubAck (out), pushed into the queue (in).\n"
		"# TYPE taskq_bridge_tasks_total counter\n"
		"taskq_bridge_tasks_total{%s,event=\"published\"} %" PRIu64 "\n"
		"taskq_bridge_tasks_total{%s,event=\"confirmed\"} %" PRIu64 "\n"
		"taskq_bridge_tasks_total{%s,event=\"imported\"} %" PRIu64 "\n"
		"# HELP taskq_bridge_messages_total JetStream messages: fetched (in), delivered again, refused as "
		"malformed, sent to the dead subject.\n"
		"# TYPE taskq_bridge_messages_total counter\n"
		"taskq_bridge_messages_total{%s,event=\"fetched\"} %" PRIu64 "\n"
		"taskq_bridge_messages_total{%s,event=\"redelivered\"} %" PRIu64 "\n"
		"taskq_bridge_messages_total{%s,event=\"malformed\"} %" PRIu64 "\n"
		"taskq_bridge_messages_total{%s,event=\"dead_out\"} %" PRIu64 "\n"
		"# HELP taskq_bridge_publish_errors_total Publishes that failed (each retried).\n"
		"# TYPE taskq_bridge_publish_errors_total counter\n"
		"taskq_bridge_publish_errors_total{%s} %" PRIu64 "\n"
		"# HELP taskq_bridge_reconnects_total Reconnections to NATS.\n"
		"# TYPE taskq_bridge_reconnects_total counter\n"
		"taskq_bridge_reconnects_total{%s} %" PRIu64 "\n"
		"# HELP taskq_bridge_in_flight_messages Messages fetched and not yet acked upstream (in).\n"
		"# TYPE taskq_bridge_in_flight_messages gauge\n"
		"taskq_bridge_in_flight_messages{%s} %" PRIu64 "\n"
		"# HELP taskq_bridge_publish_rtt_seconds The last publish's round trip to its PubAck (out).\n"
		"# TYPE taskq_bridge_publish_rtt_seconds gauge\n"
		"taskq_bridge_publish_rtt_seconds{%s} %.6f\n",
		lab, b->published, lab, b->confirmed, lab, b->imported, lab, b->msgs_in, lab, b->redelivered, lab,
		b->malformed, lab, b->dead_out, lab, b->publish_errors, lab,
		__atomic_load_n(&b->reconnects, __ATOMIC_RELAXED), lab, b->in_flight, lab, (double)b->rtt_ns / 1e9);
	if (fclose(f) == 0)
		(void)rename(tmp, path);
	else
		(void)unlink(tmp);
}

/* Once a second, this bridge's queue on the stats subject (core NATS: not
 * stored): what `taskq-bridge stats` gathers from every machine. */
static void publish_stats(struct bridge *b)
{
	uint64_t now = now_ns();
	tq_stats st;
	if (now - b->stats_ns < 1000000000ull || tq_stats_get(b->q, &st) != 0)
		return;
	b->stats_ns = now;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "host", b->host);
	cJSON_AddStringToObject(o, "queue", b->o->queue);
	cJSON_AddStringToObject(o, "mode", b->o->mode);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddStringToObject(o, "run_state", state_name(st.run_state));
	cJSON_AddNumberToObject(o, "capacity", st.capacity);
	cJSON_AddNumberToObject(o, "ready", st.ready);
	cJSON_AddNumberToObject(o, "leased", st.leased);
	cJSON_AddNumberToObject(o, "delayed", st.delayed);
	cJSON_AddNumberToObject(o, "dead", st.dead);
	cJSON_AddNumberToObject(o, "pushed", (double)st.total.pushed);
	cJSON_AddNumberToObject(o, "acked", (double)st.total.acked);
	cJSON_AddNumberToObject(o, "done_per_s", st.done_per_s[0]);
	cJSON_AddNumberToObject(o, "published", (double)b->published);
	cJSON_AddNumberToObject(o, "imported", (double)b->imported);
	cJSON_AddNumberToObject(o, "publish_errors", (double)b->publish_errors);
	cJSON_AddNumberToObject(o, "malformed", (double)b->malformed);
	cJSON_AddNumberToObject(o, "reconnects", (double)__atomic_load_n(&b->reconnects, __ATOMIC_RELAXED));
	cJSON_AddNumberToObject(o, "redelivered", (double)b->redelivered);
	cJSON_AddNumberToObject(o, "in_flight", (double)b->in_flight);
	cJSON_AddNumberToObject(o, "publish_rtt_us", (double)b->rtt_ns / 1e3);
	char *txt = cJSON_PrintUnformatted(o);
	if (txt)
		natsConnection_PublishString(b->nc, b->o->stats_subject, txt);
	free(txt);
	cJSON_Delete(o);
	write_metrics(b);
}

/* A request on the control subject: {"cmd":"stop","state":"draining"|
 * "stopped", "queue": optional}. Answered by every bridge it concerns,
 * with its host, queue and whether its queue's run state was set. Runs on
 * a NATS client thread: the library's calls are thread-safe. */
static void on_control(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct bridge *b = closure;
	(void)sub;
	const char *reply = natsMsg_GetReply(msg);
	cJSON *req = cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(req, "state");
	const cJSON *queue = cJSON_GetObjectItemCaseSensitive(req, "queue");
	int want = -1;
	if (cJSON_IsString(state))
		want = !strcmp(state->valuestring, "draining") ? TQ_DRAINING
		       : !strcmp(state->valuestring, "stopped") ? TQ_STOPPED : -1;
	bool ours = !queue || (cJSON_IsString(queue) && !strcmp(queue->valuestring, b->o->queue));
	if (ours && reply && *reply) {
		cJSON *o = cJSON_CreateObject();
		int rc = TQ_EINVAL;
		if (cJSON_IsString(cmd) && !strcmp(cmd->valuestring, "stop") && want >= 0)
			rc = tq_set_run_state(b->q, want);
		cJSON_AddStringToObject(o, "host", b->host);
		cJSON_AddStringToObject(o, "queue", b->o->queue);
		cJSON_AddStringToObject(o, "mode", b->o->mode);
		cJSON_AddBoolToObject(o, "ok", rc == 0);
		if (rc == 0)
			cJSON_AddStringToObject(o, "state", state_name(want));
		else
			cJSON_AddStringToObject(o, "error", "a bad request: {\"cmd\":\"stop\",\"state\":\"draining\"|\"stopped\"}");
		char *txt = cJSON_PrintUnformatted(o);
		if (txt)
			natsConnection_PublishString(nc, reply, txt);
		free(txt);
		cJSON_Delete(o);
		log_event(rc == 0 ? LOG_INFO_ : LOG_WARN_, "control_request", "cmd=stop ok=%d state=%s", rc == 0,
			  rc == 0 ? state_name(want) : "-");
	}
	cJSON_Delete(req);
	natsMsg_Destroy(msg);
}

struct answers {
	cJSON *rows; /* the latest of each host/queue/mode */
};

static void keep_latest(cJSON *rows, cJSON *o)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "host"), *q = cJSON_GetObjectItemCaseSensitive(o, "queue"),
		    *m = cJSON_GetObjectItemCaseSensitive(o, "mode");
	if (!cJSON_IsString(h) || !cJSON_IsString(q) || !cJSON_IsString(m)) {
		cJSON_Delete(o);
		return;
	}
	int i = 0;
	cJSON *r;
	cJSON_ArrayForEach(r, rows)
	{
		if (!strcmp(cJSON_GetObjectItemCaseSensitive(r, "host")->valuestring, h->valuestring) &&
		    !strcmp(cJSON_GetObjectItemCaseSensitive(r, "queue")->valuestring, q->valuestring) &&
		    !strcmp(cJSON_GetObjectItemCaseSensitive(r, "mode")->valuestring, m->valuestring)) {
			cJSON_ReplaceItemInArray(rows, i, o);
			return;
		}
		i++;
	}
	cJSON_AddItemToArray(rows, o);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Gathers answers on an inbox (stop) or the stats subject (stats) for
 * --wait; returns the rows. */
static cJSON *gather(struct bridge *b, const char *subject, const char *request)
{
	natsSubscription *sub = NULL;
	natsInbox *inbox = NULL;
	cJSON *rows = cJSON_CreateArray();
	const char *on = subject;
	if (request) {
		if (natsInbox_Create(&inbox) != NATS_OK)
			return rows;
		on = inbox;
	}
	if (natsConnection_SubscribeSync(&sub, b->nc, on) != NATS_OK) {
		natsInbox_Destroy(inbox);
		return rows;
	}
	if (request)
		natsConnection_PublishRequestString(b->nc, b->o->control_subject, inbox, request);
	natsConnection_Flush(b->nc);
	uint64_t until = now_ns() + b->o->wait_ns;
	for (uint64_t now = now_ns(); now < until && !g_stop; now = now_ns()) {
		natsMsg *m = NULL;
		int64_t left = (int64_t)((until - now) / 1000000ull);
		if (natsSubscription_NextMsg(&m, sub, left > 0 ? left : 1) != NATS_OK)
			continue;
		cJSON *o = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		if (!cJSON_IsObject(o)) {
			cJSON_Delete(o);
			continue;
		}
		const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "queue");
		if (b->o->queue && (!cJSON_IsString(q) || strcmp(q->valuestring, b->o->queue))) {
			cJSON_Delete(o);
			continue;
		}
		keep_latest(rows, o);
	}
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	return rows;
}

static const char *const stat_keys[7] = {"ready", "leased", "delayed", "dead", "pushed", "acked", "done_per_s"};

/* The rows as a table, a line each and the totals; frees rows. */
static void print_table(cJSON *rows)
{
	double tot[7] = {0};
	cJSON *r;
	printf("%-24s %-20s %-4s %-9s %9s %9s %9s %9s %12s %12s %10s\n", "host", "queue", "mode", "state", "ready",
	       "leased", "delayed", "dead", "pushed", "acked", "done/s");
	cJSON_ArrayForEach(r, rows)
	{
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "run_state");
		printf("%-24s %-20s %-4s %-9s %9.0f %9.0f %9.0f %9.0f %12.0f %12.0f %10.0f\n",
		       cJSON_GetObjectItemCaseSensitive(r, "host")->valuestring,
		       cJSON_GetObjectItemCaseSensitive(r, "queue")->valuestring,
		       cJSON_GetObjectItemCaseSensitive(r, "mode")->valuestring, cJSON_IsString(st) ? st->valuestring : "?",
		       num(r, "ready"), num(r, "leased"), num(r, "delayed"), num(r, "dead"), num(r, "pushed"),
		       num(r, "acked"), num(r, "done_per_s"));
		for (int k = 0; k < 7; k++)
			tot[k] += num(r, stat_keys[k]);
	}
	printf("%-24s %-20s %-4s %-9s %9.0f %9.0f %9.0f %9.0f %12.0f %12.0f %10.0f\n", "total", "", "", "", tot[0], tot[1],
	       tot[2], tot[3], tot[4], tot[5], tot[6]);
	cJSON_Delete(rows);
}

static int run_stats(struct bridge *b)
{
	cJSON *rows = gather(b, b->o->stats_subject, NULL);
	int n = cJSON_GetArraySize(rows);
	if (b->o->json) {
		double tot[7] = {0};
		cJSON *r, *o = cJSON_CreateObject(), *t = cJSON_CreateObject();
		cJSON_ArrayForEach(r, rows)
		for (int k = 0; k < 7; k++)
			tot[k] += num(r, stat_keys[k]);
		cJSON_AddStringToObject(o, "stream", b->o->stream);
		for (int k = 0; k < 7; k++)
			cJSON_AddNumberToObject(t, stat_keys[k], tot[k]);
		cJSON_AddItemToObject(o, "bridges", rows);
		cJSON_AddItemToObject(o, "totals", t);
		char *txt = b->o->pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
		if (txt)
			printf("%s\n", txt);
		free(txt);
		cJSON_Delete(o);
	} else {
		print_table(rows);
	}
	if (!n)
		fprintf(stderr, "taskq-bridge: no bridge of stream %s reported within --wait\n", b->o->stream);
	return n ? 0 : 6;
}

/* taskq top --nats: the stats table, refreshed every --wait (1.5 s), on a
 * cleared screen when stdout is a terminal, until SIGINT / SIGTERM (Ctrl+C)
 * or --iterations. */
static int run_top(struct bridge *b)
{
	bool tty = isatty(STDOUT_FILENO);
	for (uint64_t i = 0; !g_stop && (!b->o->iterations || i < b->o->iterations); i++) {
		cJSON *rows = gather(b, b->o->stats_subject, NULL);
		time_t now = time(NULL);
		char when[32];
		strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
		if (tty)
			fputs("\033[H\033[2J", stdout);
		printf("taskq top --nats: stream %s, %d bridge(s), %s (Ctrl+C to quit)\n\n", b->o->stream,
		       cJSON_GetArraySize(rows), when);
		print_table(rows);
		fflush(stdout);
	}
	return 0;
}

static int run_stop(struct bridge *b)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "stop");
	cJSON_AddStringToObject(req, "state", state_name(b->o->stop_state));
	if (b->o->queue)
		cJSON_AddStringToObject(req, "queue", b->o->queue);
	char *txt = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	cJSON *rows = gather(b, NULL, txt ? txt : "{}");
	free(txt);
	int n = cJSON_GetArraySize(rows), ok = 0;
	cJSON *r;
	cJSON_ArrayForEach(r, rows)
	ok += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
	if (b->o->json) {
		char *out = b->o->pretty ? cJSON_Print(rows) : cJSON_PrintUnformatted(rows);
		if (out)
			printf("%s\n", out);
		free(out);
	} else {
		cJSON_ArrayForEach(r, rows)
		printf("%s %s (%s): %s\n", cJSON_GetObjectItemCaseSensitive(r, "host")->valuestring,
		       cJSON_GetObjectItemCaseSensitive(r, "queue")->valuestring,
		       cJSON_GetObjectItemCaseSensitive(r, "mode")->valuestring,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) ? state_name(b->o->stop_state) : "refused");
	}
	cJSON_Delete(rows);
	if (!n)
		fprintf(stderr, "taskq-bridge: no bridge of stream %s answered within --wait\n", b->o->stream);
	return !n ? 6 : ok == n ? 0 : EX_FAIL;
}

/* ----------------------------------------------------------------- out */

/* Publishes t[0..n) as one message, retrying (same message id) until
 * JetStream confirms it or a stop is asked; 0, or -1 if stopped first. */
static int publish(struct bridge *b, tq_task *t, uint32_t n, uint32_t held, uint8_t *buf)
{
	struct opts *o = b->o;
	char msgid[512];

	tqf_header(buf, n, t[0].id);
	size_t off = TQF_HEADER;
	uint64_t prev = t[0].id;
	for (uint32_t i = 0; i < n; i++)
		off = tqf_put(buf, off, &t[i], &prev);
	/* The same id for a resend of the same batch: JetStream drops the
	 * copy within its duplicate window. */
	snprintf(msgid, sizeof msgid, "%s-%" PRIu64 "-%" PRIu64 "-%u", b->origin, t[0].id, t[n - 1].id, n);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	po.MaxWait = 5000;
	uint64_t touched = now_ns();
	for (;;) {
		jsErrCode jerr = 0;
		jsPubAck *pa = NULL;
		uint64_t sent = now_ns();
		natsStatus s = js_Publish(&pa, b->js, o->subject, buf, (int)off, &po, &jerr);
		if (s == NATS_OK) {
			b->rtt_ns = now_ns() - sent;
			if (pa && pa->Duplicate)
				log_event(LOG_INFO_, "publish_duplicate",
					  "msg_id=%s note=\"already in the stream (a resend): dropped by JetStream\"", msgid);
			jsPubAck_Destroy(pa);
			return 0;
		}
		b->publish_errors++;
		log_event(LOG_WARN_, "publish_failed", "status=%s js_error=%d tasks=%u retry=yes", natsStatus_GetText(s),
			  (int)jerr, n);
		if (now_ns() - touched > 5000000000ull) {
			/* Keep every lease held while NATS is away: this message's
			 * (framed already, a copy) and the rest of the batch. */
			(void)tq_touch(b->q, t, held, 0);
			touched = now_ns();
		}
		if (g_stop)
			return -1;
		nats_Sleep(200);
	}
}

/* Drops from t[0..n) the tasks whose lease is no longer held (expired
 * while held here: their payload bytes may be reused now; they come back
 * to ready locally and go out again). Returns the new n. */
static uint32_t keep_held(struct bridge *b, tq_task *t, uint32_t n)
{
	uint32_t k = 0, lost = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (tq_touch(b->q, &t[i], 1, 0) != 0) {
			lost++;
			continue;
		}
		t[k++] = t[i];
	}
	if (lost)
		log_event(LOG_WARN_, "lease_lost", "tasks=%u note=\"held past their lease: delivered here again\"", lost);
	return k;
}

static int run_out(struct bridge *b)
{
	struct opts *o = b->o;
	uint32_t cap = o->batch;
	tq_task *t = calloc(cap, sizeof *t);
	uint8_t *buf = malloc(o->max_msg);
	uint32_t n = 0; /* tasks leased and not yet published, in take order */
	uint64_t verified = 0; /* when the leases of t[0..n) were last known held */
	int rc = 0;

	if (!t || !buf) {
		free(t);
		free(buf);
		return EX_FAIL;
	}
	while (!g_stop || n) {
		publish_stats(b);
		report(b, false);
		/* Gather up to `batch` tasks, waiting for the first, then up to
		 * --linger for more. */
		uint64_t until = n ? now_ns() + o->linger_ns : 0;
		while (n < cap && !g_stop) {
			uint32_t want = cap - n > 64 ? 64 : cap - n;
			uint64_t now = now_ns(), wait = n == 0 ? 200000000ull : now < until ? until - now : 0;
			int k = tq_take(b->q, t + n, want, wait);
			if (k > 0) {
				if (n == 0) {
					until = now_ns() + o->linger_ns;
					verified = now_ns();
				}
				n += (uint32_t)k;
				continue;
			}
			if (k == TQ_ETIMEDOUT || k == TQ_EAGAIN) {
				if (n)
					break; /* the linger is over */
				publish_stats(b);
				report(b, false);
				continue; /* still none */
			}
			if (k == TQ_EBUSY) {
				/* This handle holds all it can take (or the slow path's
				 * lock is busy): send what it holds first. */
				if (n)
					break;
				nats_Sleep(10);
				continue;
			}
			if (k == TQ_ESTOPPED) {
				log_event(LOG_INFO_, "queue_stopping", "state=draining_or_stopped");
			} else {
				log_event(LOG_ERROR_, "take_failed", "error=%d text=\"%s\"", k, tq_strerror(k));
				rc = EX_FAIL;
			}
			g_stop = 1;
		}
		/* Held for half a lease or more (NATS away, a long linger): only
		 * tasks whose lease still holds are framed, whose bytes are theirs. */
		if (n && now_ns() - verified >= b->cfg.lease_ns / 2) {
			n = keep_held(b, t, n);
			verified = now_ns();
		}
		if (n == 0)
			continue;
		/* As many as fit in one message (at least one: a task fits, see main). */
		uint32_t m = 0;
		size_t size = TQF_HEADER;
		while (m < n && size + tqf_task_bound(&t[m]) <= o->max_msg - MSG_HEADROOM)
			size += tqf_task_bound(&t[m++]);
		if (publish(b, t, m, n, buf) != 0)
			break; /* stopped with NATS away: the leases go back to ready at close */
		b->published += m;
		int arc = tq_ack(b->q, t, m);
		if (arc == TQ_ELOST)
			log_event(LOG_WARN_, "lease_lost", "tasks=%u note=\"published, and will be delivered here again\"",
				  m);
		else if (arc != 0) {
			log_event(LOG_ERROR_, "ack_failed", "error=%d text=\"%s\"", arc, tq_strerror(arc));
			rc = EX_FAIL;
			break;
		}
		b->confirmed += m;
		memmove(t, t + m, (n - m) * sizeof *t);
		n -= m;
	}
	free(t);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ in */

struct pending {
	natsMsg *msg;
	uint64_t lo, hi;   /* the local ids of its tasks */
	uint64_t ip_ns;    /* last kept alive */
};

#define MAX_PENDING 4096
#define FETCH_MAX 16 /* messages fetched at once, at most */
#define CHECK_NS 2000000ull /* completions looked at every 2 ms while pushing */

/* Publishes to the dead subject: the frame of one task (or a malformed
 * message's bytes) with the reason in headers. */
static void publish_dead(struct bridge *b, const void *data, size_t len, const char *reason, int err,
			 unsigned attempts)
{
	natsMsg *m = NULL;
	char num[32];
	if (natsMsg_Create(&m, b->o->dead_subject, NULL, data, (int)len) != NATS_OK)
		return;
	natsMsgHeader_Set(m, "Taskq-Reason", reason);
	snprintf(num, sizeof num, "%d", err);
	natsMsgHeader_Set(m, "Taskq-Error", num);
	snprintf(num, sizeof num, "%u", attempts);
	natsMsgHeader_Set(m, "Taskq-Attempts", num);
	natsMsgHeader_Set(m, "Taskq-Queue", b->o->queue);
	jsErrCode jerr = 0;
	natsStatus s = js_PublishMsg(NULL, b->js, m, NULL, &jerr);
	natsMsg_Destroy(m);
	if (s != NATS_OK)
		log_event(LOG_WARN_, "dead_publish_failed", "status=%s js_error=%d", natsStatus_GetText(s), (int)jerr);
	else
		b->dead_out++;
}

/* Of the k dead letters listed in dl / data, those with ids in [lo, hi],
 * published to the dead subject. */
static void publish_dead_range(struct bridge *b, uint64_t lo, uint64_t hi, tq_dead_info *dl, uint8_t *data,
			       size_t stride, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		if (dl[i].id < lo || dl[i].id > hi)
			continue;
		tq_task t = {.id = dl[i].id, .kind = dl[i].kind, .value = dl[i].value, .len = dl[i].len,
			     .data = data + (size_t)i * stride};
		if (t.kind != TQ_KIND_INT && t.len > stride)
			t.len = (uint32_t)stride; /* cannot happen: stride is max_payload */
		uint8_t frame[TQF_HEADER + TQF_TASK_MAX_OVERHEAD];
		uint8_t *buf = t.kind == TQ_KIND_INT ? frame : malloc(TQF_HEADER + tqf_task_bound(&t));
		if (!buf)
			continue;
		tqf_header(buf, 1, t.id);
		uint64_t prev = t.id;
		size_t off = tqf_put(buf, TQF_HEADER, &t, &prev);
		publish_dead(b, buf, off, dl[i].last_msg[0] ? dl[i].last_msg : "dead", dl[i].last_err, dl[i].attempts);
		if (buf != frame)
			free(buf);
	}
}

static int run_in(struct bridge *b)
{
	struct opts *o = b->o;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	int rc = 0;

	jsSubOptions_Init(&so);
	so.Stream = o->stream;
	so.Config.AckWait = (int64_t)o->ack_wait_ns;
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.MaxAckPending = MAX_PENDING;
	for (;;) {
		natsStatus s = js_PullSubscribe(&sub, b->js, o->subject, o->consumer, NULL, &so, &jerr);
		if (s == NATS_OK)
			break;
		/* Waited out only while NATS is not there; a refusal (a consumer
		 * of that name with other settings, say) is an error. */
		if (jerr != 0 || (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS && s != NATS_NOT_YET_CONNECTED &&
				  s != NATS_CONNECTION_DISCONNECTED && s != NATS_CONNECTION_CLOSED))
			return nats_fail("pull subscribe", s, jerr);
		if (g_stop)
			return 0;
		log_event(LOG_WARN_, "nats_waiting", "what=consumer status=%s", natsStatus_GetText(s));
		nats_Sleep(500);
	}
	log_event(LOG_INFO_, "consumer_ready", "stream=%s consumer=%s subject=%s", o->stream, o->consumer, o->subject);

	struct pending *pend = calloc(MAX_PENDING, sizeof *pend);
	tq_task *cur = calloc(TQF_MAX_TASKS, sizeof *cur);
	size_t dmax = b->cfg.dead_capacity ? b->cfg.dead_capacity : 1;
	size_t stride = b->cfg.max_payload ? b->cfg.max_payload : 1;
	tq_dead_info *dl = calloc(dmax, sizeof *dl);
	uint8_t *ddata = calloc(dmax, stride);
	if (!pend || !cur || !dl || !ddata) {
		rc = EX_FAIL;
		goto out;
	}
	natsMsg *cmsg = NULL; /* the message being pushed */
	int ccount = 0, cnext = 0;
	uint64_t clo = UINT64_MAX, chi = 0, cip = 0;
	uint32_t npend = 0;
	uint64_t stop_at = 0, ip_every = o->ack_wait_ns / 3, checked_ns = 0;
	natsMsg *fetched[FETCH_MAX]; /* fetched, not yet being pushed, in order */
	int nfetched = 0, ifetched = 0;
	uint64_t fip = 0;

	for (;;) {
		uint64_t now = now_ns();
		b->in_flight = npend + (cmsg != NULL) + (uint64_t)(nfetched - ifetched);
		report(b, false);
		publish_stats(b);
		if (!g_stop) {
			int rs = tq_run_state(b->q);
			if (rs == TQ_DRAINING || rs == TQ_STOPPED) {
				/* `taskq stop` here or over NATS: take in no more; the
				 * messages taken finish as their tasks do (--drain). */
				log_event(LOG_INFO_, "queue_stopping", "state=%s", state_name(rs));
				g_stop = 1;
			}
		}
		if (g_stop && !stop_at) {
			stop_at = now + o->drain_ns;
			log_event(LOG_INFO_, "draining", "pending_messages=%u pushing=%d", npend, cmsg != NULL);
		}
		if (stop_at && ((!cmsg && npend == 0) || now >= stop_at))
			break;
		/* Completion: a message whose tasks are all finished here is
		 * acked (after its dead letters are published); the others are
		 * kept alive. */
		if (npend && now - checked_ns >= CHECK_NS) {
			uint64_t w = 0;
			checked_ns = now;
			if (tq_finished_below(b->q, &w) == 0) {
				/* The dead letters, read after W (a task dead by then is
				 * listed), once for every message this pass completes. */
				int ndead = -1;
				uint32_t keep = 0;
				for (uint32_t i = 0; i < npend; i++) {
					struct pending *p = &pend[i];
					if (p->hi < w) {
						if (ndead < 0) {
							ndead = tq_dead_list(b->q, dl, dmax, ddata, stride);
							if (ndead >= 0 && (size_t)ndead == dmax)
								/* More may be dead than the listing holds (the
								 * dead-letter area overflowed): the newest are
								 * not published. */
								log_event(LOG_WARN_, "dead_listing_full",
									  "listed=%d note=\"more dead letters than dead_capacity: the "
									  "newest may not reach the dead subject; taskq dead lists them\"",
									  ndead);
						}
						if (ndead < 0) {
							/* Not listed (the lock busy): acked later. */
							pend[keep++] = *p;
							continue;
						}
						publish_dead_range(b, p->lo, p->hi, dl, ddata, stride, (size_t)ndead);
						natsMsg_Ack(p->msg, NULL);
						natsMsg_Destroy(p->msg);
						continue;
					}
					if (now - p->ip_ns >= ip_every) {
						natsMsg_InProgress(p->msg, NULL);
						p->ip_ns = now;
					}
					pend[keep++] = *p;
				}
				npend = keep;
			}
		}
		if (cmsg && now - cip >= ip_every) {
			natsMsg_InProgress(cmsg, NULL);
			cip = now;
		}
		if (ifetched < nfetched && now - fip >= ip_every) {
			for (int i = ifetched; i < nfetched; i++)
				natsMsg_InProgress(fetched[i], NULL); /* fetched, waiting their turn */
			fip = now;
		}
		/* Pushing the current message: a short wait at a time, so that
		 * completions and keep-alives go on while the queue is full. */
		if (cmsg) {
			int k = tq_push(b->q, cur + cnext, (size_t)(ccount - cnext), 100000000ull);
			if (k > 0) {
				for (int i = 0; i < k; i++) {
					if (cur[cnext + i].id < clo)
						clo = cur[cnext + i].id;
					if (cur[cnext + i].id > chi)
						chi = cur[cnext + i].id;
				}
				cnext += k;
				b->imported += (uint64_t)k;
			} else if (k == TQ_ESTOPPED) {
				/* Not taken in: the message is redelivered after its ack wait. */
				log_event(LOG_INFO_, "queue_stopping", "state=draining_or_stopped");
				natsMsg_Nak(cmsg, NULL);
				natsMsg_Destroy(cmsg);
				cmsg = NULL;
				g_stop = 1;
				continue;
			} else if (k != TQ_ETIMEDOUT && k != TQ_EAGAIN) {
				log_event(LOG_ERROR_, "push_failed", "error=%d text=\"%s\"", k, tq_strerror(k));
				rc = EX_FAIL;
				break;
			}
			if (cnext == ccount) {
				pend[npend++] = (struct pending){.msg = cmsg, .lo = clo, .hi = chi, .ip_ns = cip};
				cmsg = NULL;
			}
			continue;
		}
		if (g_stop || npend == MAX_PENDING) {
			nats_Sleep(10);
			continue;
		}
		if (ifetched == nfetched) {
			/* Several messages at once while the queue has room for
			 * many tasks, one at a time when it is nearly full. */
			tq_stats st;
			int want = tq_stats_get(b->q, &st) == 0 && st.free_slots >= st.capacity / 2 ? FETCH_MAX : 1;
			if (want > (int)(MAX_PENDING - npend))
				want = (int)(MAX_PENDING - npend);
			natsMsgList list = {0};
			natsStatus s = natsSubscription_Fetch(&list, sub, want, 200, &jerr);
			if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
				natsMsgList_Destroy(&list);
				continue;
			}
			if (s != NATS_OK) {
				natsMsgList_Destroy(&list);
				log_event(LOG_WARN_, "fetch_failed", "status=%s js_error=%d", natsStatus_GetText(s),
					  (int)jerr);
				nats_Sleep(200);
				continue;
			}
			nfetched = ifetched = 0;
			fip = now_ns();
			for (int i = 0; i < list.Count && i < FETCH_MAX; i++) {
				fetched[nfetched++] = list.Msgs[i];
				list.Msgs[i] = NULL;
			}
			natsMsgList_Destroy(&list);
		}
		natsMsg *m = fetched[ifetched++];
		b->msgs_in++;
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
			if (meta->NumDelivered > 1)
				b->redelivered++;
			jsMsgMetaData_Destroy(meta);
		}
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		size_t len = (size_t)natsMsg_GetDataLength(m);
		const char *why = NULL;
		size_t at = 0;
		int k = tqf_decode(d, len, cur, TQF_MAX_TASKS, b->cfg.max_payload, &why, &at);
		for (int i = 0; k > 0 && i < k; i++) {
			const char *jwhy = NULL;
			size_t jat = 0;
			if (cur[i].kind == TQ_KIND_JSON && !cli_json_check(cur[i].data, cur[i].len, &jat, &jwhy)) {
				why = "a JSON task that is not valid JSON";
				at = (size_t)((const uint8_t *)cur[i].data - d) + jat;
				k = -1;
			} else if (cur[i].kind == TQ_KIND_STRING &&
				   cli_utf8_check(cur[i].data, cur[i].len) != cur[i].len) {
				why = "a string task that is not valid UTF-8";
				at = (size_t)((const uint8_t *)cur[i].data - d);
				k = -1;
			}
		}
		if (k < 0) {
			char reason[200], q[240];
			snprintf(reason, sizeof reason, "malformed message: %s at byte %zu", why, at);
			b->malformed++;
			log_event(LOG_WARN_, "malformed_message", "bytes=%zu reason=%s", len, log_quote(q, sizeof q, reason));
			publish_dead(b, d, len, reason, TQ_EINVAL, 1);
			natsMsg_Term(m, NULL);
			natsMsg_Destroy(m);
			continue;
		}
		if (k == 0) { /* an empty message: nothing to wait for */
			natsMsg_Ack(m, NULL);
			natsMsg_Destroy(m);
			continue;
		}
		cmsg = m;
		ccount = k;
		cnext = 0;
		clo = UINT64_MAX;
		chi = 0;
		cip = now_ns();
	}
	if (cmsg)
		natsMsg_Destroy(cmsg); /* not acked: JetStream delivers it again after its ack wait */
	for (int i = ifetched; i < nfetched; i++) {
		natsMsg_Nak(fetched[i], NULL); /* never pushed: at once to another importer */
		natsMsg_Destroy(fetched[i]);
	}
	for (uint32_t i = 0; i < npend; i++)
		natsMsg_Destroy(pend[i].msg);
	if (npend || cmsg)
		log_event(LOG_WARN_, "left_unacked", "messages=%u note=\"delivered again after the ack wait\"",
			  npend + (cmsg != NULL));
out:
	free(pend);
	free(cur);
	free(dl);
	free(ddata);
	natsSubscription_Destroy(sub);
	return rc;
}

/* ---------------------------------------------------------------- main */

/* Closes the NATS side and the log; returns rc. */
static int disconnect(struct bridge *b, int rc)
{
	g_closing = 1;
	if (b->js)
		jsCtx_Destroy(b->js);
	if (b->nc)
		natsConnection_Destroy(b->nc);
	nats_Close();
	log_close();
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bridge b = {.o = &o};

	parse_opts(argc, argv, &o);
	if (log_open(&o.log) != 0) {
		fprintf(stderr, "taskq-bridge: --log %s: %s\n", o.log.path, strerror(errno));
		return EX_USAGE;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	(void)gethostname(b.host, sizeof b.host - 1);
	if (!b.host[0])
		strcpy(b.host, "host");
	if (!strcmp(o.mode, "stats") || !strcmp(o.mode, "stop") || !strcmp(o.mode, "top")) {
		int qrc = connect_nats(&b);
		if (qrc == 0)
			qrc = !strcmp(o.mode, "stats") ? run_stats(&b) : !strcmp(o.mode, "top") ? run_top(&b) : run_stop(&b);
		return disconnect(&b, qrc);
	}
	int rc = tq_open(o.queue, &b.q);
	if (rc != 0) {
		fprintf(stderr, "taskq-bridge: queue %s: %s\n", o.queue, tq_strerror(rc));
		return rc == TQ_ENOENT ? EX_NOQUEUE : EX_FAIL;
	}
	tq_config_get(b.q, &b.cfg);
	{
		uint64_t inst = 0;
		(void)tq_instance(b.q, &inst);
		snprintf(b.origin, sizeof b.origin, "%s-%s-%016" PRIx64, b.host, o.queue, inst);
	}
	if (!strcmp(o.mode, "out") && TQF_HEADER + TQF_TASK_MAX_OVERHEAD + MSG_HEADROOM + (size_t)b.cfg.max_payload > o.max_msg) {
		fprintf(stderr,
			"taskq-bridge: queue %s holds payloads of up to %u bytes, which do not fit a message of "
			"--max-msg %u bytes\n",
			o.queue, b.cfg.max_payload, o.max_msg);
		tq_close(b.q);
		return EX_USAGE;
	}
	log_event(LOG_INFO_, "started", "mode=%s stream=%s subject=%s servers=%d", o.mode, o.stream, o.subject,
		  o.nservers);
	rc = connect_nats(&b);
	if (rc == 0)
		rc = ensure_stream(&b);
	if (rc == 0) {
		int64_t maxp = natsConnection_GetMaxPayload(b.nc);
		if (!strcmp(o.mode, "out") && maxp > 0 && (int64_t)o.max_msg > maxp) {
			log_event(LOG_INFO_, "max_msg_lowered", "from=%u to=%" PRId64 " why=server_max_payload", o.max_msg,
				  maxp);
			o.max_msg = (uint32_t)maxp;
			if (TQF_HEADER + TQF_TASK_MAX_OVERHEAD + MSG_HEADROOM + (size_t)b.cfg.max_payload > o.max_msg) {
				fprintf(stderr, "taskq-bridge: the server's max_payload (%" PRId64
						") is below one task of this queue\n",
					maxp);
				rc = EX_FAIL;
			}
		}
	}
	if (rc == 0 && natsConnection_Subscribe(&b.control, b.nc, o.control_subject, on_control, &b) != NATS_OK)
		log_event(LOG_WARN_, "control_unavailable", "subject=%s", o.control_subject);
	if (rc == 0)
		rc = !strcmp(o.mode, "out") ? run_out(&b) : run_in(&b);
	natsSubscription_Destroy(b.control); /* before the queue closes: its callback uses it */
	b.control = NULL;
	if (rc < 0)
		rc = 0;
	report(&b, true);
	log_event(LOG_INFO_, "stopped", "status=%d", rc);
	tq_close(b.q); /* tasks still leased go back to ready (not an attempt) */
	return disconnect(&b, rc);
}
