/* SPDX-License-Identifier: MIT */
/*
 * natsserver.h - a real nats-server with JetStream on loopback, started and
 * stopped by its user (the bridge tests, make bench-cluster), and the
 * children it runs. Header-only; needs libnats. Nothing here asserts: each
 * function returns what went wrong, and its caller decides.
 */
#ifndef TQ_NATSSERVER_H
#define TQ_NATSSERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

/* A TCP port free on 127.0.0.1 now (the kernel's pick), or -1. */
static inline int tqn_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Runs argv (PATH searched) with stdout and stderr appended to `log`; the
 * child dies with this process. Returns its pid, or -1. */
static inline pid_t tqn_spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(99);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	execvp(argv[0], argv);
	_exit(127);
}

/* SIGTERM, then SIGKILL after 5 s; reaped. */
static inline void tqn_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* One nats-server: its ports, its directory (store and log), its URL. */
struct tqn_node {
	pid_t pid;
	int port, cport;  /* client port; cluster port (0: not clustered) */
	char dir[200];
	char url[64];
	char name[16];
};

/* Waits (10 s at most) until nd accepts a connection: 0, or -1 with why. */
static inline int tqn_wait_up(struct tqn_node *nd, char *why, size_t whysize)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		natsConnection *nc = NULL;
		if (natsConnection_ConnectTo(&nc, nd->url) == NATS_OK) {
			natsConnection_Destroy(nc);
			return 0;
		}
		int st;
		if (waitpid(nd->pid, &st, WNOHANG) == nd->pid) {
			snprintf(why, whysize, "nats-server %s exited at start (installed? scripts/install-deps.sh); see %s",
				 nd->name, nd->dir);
			nd->pid = 0;
			return -1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10) {
			snprintf(why, whysize, "nats-server %s did not accept connections in 10 s; see %s", nd->name,
				 nd->dir);
			tqn_stop(nd->pid);
			nd->pid = 0;
			return -1;
		}
		usleep(20000);
	}
}

/* Starts (or starts again: same ports, same store) node nd with JetStream;
 * clustered with peers[0..npeers) if nd->cport. 0, or -1 with why. */
static inline int tqn_node_start(struct tqn_node *nd, const struct tqn_node *peers, int npeers, char *why,
				 size_t whysize)
{
	char port[16], store[400], log[400], cluster[64], routes[400] = "";
	snprintf(port, sizeof port, "%d", nd->port);
	snprintf(store, sizeof store, "%s/store", nd->dir);
	snprintf(log, sizeof log, "%s/nats-server.log", nd->dir);
	snprintf(nd->url, sizeof nd->url, "nats://127.0.0.1:%d", nd->port);
	char *argv[20] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", store, "--server_name", nd->name};
	int n = 10;
	if (nd->cport) {
		snprintf(cluster, sizeof cluster, "nats://127.0.0.1:%d", nd->cport);
		for (int i = 0; i < npeers; i++) {
			if (peers[i].cport == nd->cport)
				continue;
			size_t len = strlen(routes);
			snprintf(routes + len, sizeof routes - len, "%snats://127.0.0.1:%d", len ? "," : "", peers[i].cport);
		}
		argv[n++] = "--cluster_name";
		argv[n++] = "taskq-test";
		argv[n++] = "--cluster";
		argv[n++] = cluster;
		argv[n++] = "--routes";
		argv[n++] = routes;
	}
	argv[n] = NULL;
	nd->pid = tqn_spawn(argv, log);
	if (nd->pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		return -1;
	}
	return tqn_wait_up(nd, why, whysize);
}

/* A new node: a directory /tmp/<tag>-<pid>-XXXXXX (under parent if not
 * NULL), free ports; not started. 0, or -1 with why. */
static inline int tqn_node_init(struct tqn_node *nd, const char *tag, int idx, bool clustered, char *why,
				size_t whysize)
{
	memset(nd, 0, sizeof *nd);
	snprintf(nd->dir, sizeof nd->dir, "/tmp/%s-%d-%d-XXXXXX", tag, (int)getpid(), idx);
	snprintf(nd->name, sizeof nd->name, "n%d", idx);
	if (!mkdtemp(nd->dir)) {
		snprintf(why, whysize, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	nd->port = tqn_free_port();
	nd->cport = clustered ? tqn_free_port() : 0;
	if (nd->port < 0 || nd->cport < 0) {
		snprintf(why, whysize, "no free port: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The stream a taskq-bridge makes for `stream` (subjects taskq.S.tasks
 * and taskq.S.dead, work queue, file storage, 2-minute duplicate window),
 * with `replicas`, retried for 30 s while a new cluster elects its
 * JetStream leader. 0, or the last JetStream error code (-1 if none). */
static inline int tqn_bridge_stream(jsCtx *js, const char *stream, int replicas)
{
	char s1[128], s2[128];
	const char *subjects[2] = {s1, s2};
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	struct timespec t0, t;

	snprintf(s1, sizeof s1, "taskq.%s.tasks", stream);
	snprintf(s2, sizeof s2, "taskq.%s.dead", stream);
	jsStreamConfig_Init(&sc);
	sc.Name = stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 2;
	sc.Retention = js_WorkQueuePolicy;
	sc.Storage = js_FileStorage;
	sc.Replicas = replicas;
	sc.MaxMsgSize = 1048576;
	sc.Duplicates = 120000000000ll;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (js_AddStream(NULL, js, &sc, NULL, &jerr) != NATS_OK) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 30)
			return jerr ? (int)jerr : -1;
		usleep(100000);
	}
	return 0;
}

/*
 * Starts one `nats-server -js` on a free loopback port, its store and log
 * in a new directory (into dir), its URL into url, and waits until it
 * accepts a connection. Returns 0, or -1 with a reason in why.
 */
static inline int tqn_start(const char *tag, char *dir, size_t dirsize, char *url, size_t urlsize, pid_t *server,
			    char *why, size_t whysize)
{
	struct tqn_node nd;
	if (tqn_node_init(&nd, tag, 0, false, why, whysize) != 0 || tqn_node_start(&nd, NULL, 0, why, whysize) != 0)
		return -1;
	snprintf(dir, dirsize, "%s", nd.dir);
	snprintf(url, urlsize, "%s", nd.url);
	*server = nd.pid;
	return 0;
}

#endif
