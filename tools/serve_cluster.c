/* SPDX-License-Identifier: MIT */
/*
 * serve_cluster.c - taskq serve --nats URL --stream S: every machine's
 * bridges for GET /cluster. A thread runs `taskq-bridge stats --nats URL
 * --stream S --json --wait 1` (the cluster view the bridges already give:
 * no NATS client here) every SERVE_CLUSTER_EVERY_NS, each run bounded by
 * SERVE_CLUSTER_DEADLINE_NS (then killed), and keeps its JSON, checked,
 * with the time it arrived, or why the last run failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

#define SERVE_CLUSTER_EVERY_NS 2000000000ull    /* a run every 2 s */
#define SERVE_CLUSTER_DEADLINE_NS 10000000000ull /* a run killed after 10 s */
#define SERVE_CLUSTER_OUT_MAX (1024 * 1024)     /* its stdout kept at most */
#define SERVE_CLUSTER_ERR_MAX 512               /* its stderr kept at most */

extern char **environ;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* stop */
	pthread_t thread;
	bool running, stop;
	char bin[4200];
	char *argv[10];
	const char *stream;
	cJSON *snapshot;   /* the last good run's output, or NULL */
	uint64_t at_ns;    /* its time (CLOCK_MONOTONIC) */
	char why[640];     /* "" or why the last run failed */
} cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool serve_cluster_stream_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

bool serve_cluster_urls_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 2048 || s[0] == '-' || s[0] == ',')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Appends what fd has to *b (at most max; the rest is read and dropped).
 * Returns false at end of file or on an error. */
static bool drain_fd(int fd, char *b, size_t *len, size_t max)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof tmp);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	size_t take = (size_t)n < max - *len ? (size_t)n : max - *len;
	memcpy(b + *len, tmp, take);
	*len += take;
	return true;
}

/* The last line of text (its trailing newlines cut), for a reason. */
static const char *last_line(char *text, size_t len)
{
	text[len] = '\0';
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	char *nl = strrchr(text, '\n');
	return nl ? nl + 1 : text;
}

/* One run of taskq-bridge stats: its checked JSON, or NULL with why. */
static cJSON *run_once(char *why, size_t why_size)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	char *o = malloc(SERVE_CLUSTER_OUT_MAX + 1), e[SERVE_CLUSTER_ERR_MAX + 1];
	size_t olen = 0, elen = 0;
	cJSON *snap = NULL;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;

	if (!o || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		snprintf(why, why_size, "cannot run taskq-bridge stats: %s", o ? strerror(errno) : "out of memory");
		goto done;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&at);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawn(&pid, cl.bin, &fa, &at, cl.argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	if (rc) {
		pid = -1;
		snprintf(why, why_size, "cannot run %.300s: %s", cl.bin, strerror(rc));
		goto done;
	}
	/* Its output until both pipes end, the deadline passes or serve stops. */
	uint64_t until = mono_ns() + SERVE_CLUSTER_DEADLINE_NS;
	bool open_o = true, open_e = true, stopping = false, late = false;
	while (open_o || open_e) {
		struct pollfd p[2] = {{open_o ? out[0] : -1, POLLIN, 0}, {open_e ? err[0] : -1, POLLIN, 0}};
		if (poll(p, 2, 100) < 0 && errno != EINTR)
			break;
		if (p[0].revents && !drain_fd(out[0], o, &olen, SERVE_CLUSTER_OUT_MAX))
			open_o = false;
		if (p[1].revents && !drain_fd(err[0], e, &elen, SERVE_CLUSTER_ERR_MAX))
			open_e = false;
		pthread_mutex_lock(&cl.mu);
		stopping = cl.stop;
		pthread_mutex_unlock(&cl.mu);
		if (stopping || (late = mono_ns() > until))
			break;
	}
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, open_o || open_e ? WNOHANG : 0)) == 0 || (w < 0 && errno == EINTR)) {
		if (w == 0) { /* still running: the deadline passed, or serve stops */
			kill(pid, SIGKILL);
			open_o = open_e = false; /* now wait */
		}
	}
	if (late) {
		snprintf(why, why_size, "taskq-bridge stats did not finish within %llu s: killed",
			 (unsigned long long)(SERVE_CLUSTER_DEADLINE_NS / 1000000000ull));
		goto done;
	}
	if (stopping) {
		snprintf(why, why_size, "stopping");
		goto done;
	}
	const char *said = last_line(e, elen);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFEXITED(st) && WEXITSTATUS(st) == 6)
			snprintf(why, why_size, "no bridge of stream %s reported within 1 s", cl.stream);
		else if (WIFEXITED(st))
			snprintf(why, why_size, "taskq-bridge stats exited with status %d: %.400s", WEXITSTATUS(st),
				 *said ? said : "(no message)");
		else
			snprintf(why, why_size, "taskq-bridge stats was killed by signal %d", WTERMSIG(st));
		goto done;
	}
	snap = cJSON_ParseWithLength(o, olen);
	if (!cJSON_IsObject(snap) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(snap, "bridges")) ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(snap, "totals"))) {
		cJSON_Delete(snap);
		snap = NULL;
		snprintf(why, why_size, "taskq-bridge stats printed no snapshot (%zu bytes not {\"bridges\": [...], "
					"\"totals\": {...}})", olen);
	}
done:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	free(o);
	return snap;
}

static void *cluster_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cl.mu);
	while (!cl.stop) {
		pthread_mutex_unlock(&cl.mu);
		char why[sizeof cl.why] = "";
		uint64_t start = mono_ns();
		cJSON *snap = run_once(why, sizeof why);
		pthread_mutex_lock(&cl.mu);
		if (snap) {
			cJSON_Delete(cl.snapshot);
			cl.snapshot = snap;
			cl.at_ns = mono_ns();
		}
		if (!cl.stop)
			memcpy(cl.why, why, sizeof why);
		uint64_t next = start + SERVE_CLUSTER_EVERY_NS;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (next > now) {
			uint64_t left = next - now;
			ts.tv_sec += (time_t)(left / 1000000000ull);
			ts.tv_nsec += (long)(left % 1000000000ull);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (!cl.stop && pthread_cond_timedwait(&cl.cv, &cl.mu, &ts) == 0)
				;
		}
	}
	pthread_mutex_unlock(&cl.mu);
	return NULL;
}

int serve_cluster_start(const char *urls, const char *stream)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = n > 0 ? (self[n] = '\0', strrchr(self, '/')) : NULL;
	cl.bin[0] = '\0';
	if (slash) {
		*slash = '\0';
		snprintf(cl.bin, sizeof cl.bin, "%s/taskq-bridge", self);
	}
	if (!cl.bin[0] || access(cl.bin, X_OK) != 0) {
		cli_err("--nats needs taskq-bridge installed beside taskq (%s): %s", cl.bin[0] ? cl.bin : "?",
			strerror(errno));
		return EX_FAIL;
	}
	char *argv[] = {"taskq-bridge", "stats", "--nats", (char *)urls, "--stream", (char *)stream, "--json",
			"--wait", "1", NULL};
	memcpy(cl.argv, argv, sizeof argv);
	cl.stream = stream;
	cl.stop = false;
	snprintf(cl.why, sizeof cl.why, "no snapshot yet: the first is on its way");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&cl.cv);
	pthread_cond_init(&cl.cv, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&cl.thread, NULL, cluster_thread, NULL);
	if (rc) {
		cli_err("cannot start the cluster thread: %s", strerror(rc));
		return EX_FAIL;
	}
	cl.running = true;
	return 0;
}

void serve_cluster_stop(void)
{
	if (!cl.running)
		return;
	pthread_mutex_lock(&cl.mu);
	cl.stop = true;
	pthread_cond_signal(&cl.cv);
	pthread_mutex_unlock(&cl.mu);
	pthread_join(cl.thread, NULL);
	cl.running = false;
	cJSON_Delete(cl.snapshot);
	cl.snapshot = NULL;
}

bool serve_cluster_on(void)
{
	return cl.running;
}

cJSON *serve_cluster_json(char *why, size_t why_size)
{
	cJSON *o = NULL;
	pthread_mutex_lock(&cl.mu);
	if (cl.why[0] || !cl.snapshot) {
		snprintf(why, why_size, "%s", cl.why[0] ? cl.why : "no snapshot yet");
	} else if ((o = cJSON_CreateObject()) != NULL) {
		cJSON_AddStringToObject(o, "stream", cl.stream);
		cJSON_AddNumberToObject(o, "age_seconds", (double)((mono_ns() - cl.at_ns) / 1000000ull) / 1e3);
		cJSON *copy = cJSON_Duplicate(cl.snapshot, true);
		if (!copy) {
			cJSON_Delete(o);
			o = NULL;
		} else {
			cJSON_AddItemToObject(o, "snapshot", copy);
		}
		if (!o)
			snprintf(why, why_size, "out of memory");
	} else {
		snprintf(why, why_size, "out of memory");
	}
	pthread_mutex_unlock(&cl.mu);
	return o;
}
