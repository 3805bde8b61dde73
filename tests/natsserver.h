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

/*
 * Starts `nats-server -js` on a free loopback port, its store and log in a
 * new directory /tmp/<tag>-<pid>-XXXXXX (into dir), its URL into url, and
 * waits (10 s at most) until it accepts a connection. Returns 0, or -1
 * with a reason in why (the server killed).
 */
static inline int tqn_start(const char *tag, char *dir, size_t dirsize, char *url, size_t urlsize, pid_t *server,
			    char *why, size_t whysize)
{
	char port[16], store[400], log[400];
	snprintf(dir, dirsize, "/tmp/%s-%d-XXXXXX", tag, (int)getpid());
	if (!mkdtemp(dir)) {
		snprintf(why, whysize, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	int p = tqn_free_port();
	if (p < 0) {
		snprintf(why, whysize, "no free port: %s", strerror(errno));
		return -1;
	}
	snprintf(port, sizeof port, "%d", p);
	snprintf(store, sizeof store, "%s/store", dir);
	snprintf(log, sizeof log, "%s/nats-server.log", dir);
	snprintf(url, urlsize, "nats://127.0.0.1:%d", p);
	char *argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", store, NULL};
	*server = tqn_spawn(argv, log);
	if (*server < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		return -1;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		natsConnection *nc = NULL;
		if (natsConnection_ConnectTo(&nc, url) == NATS_OK) {
			natsConnection_Destroy(nc);
			return 0;
		}
		int st;
		if (waitpid(*server, &st, WNOHANG) == *server) {
			snprintf(why, whysize, "nats-server exited at start (installed? scripts/install-deps.sh); see %s",
				 log);
			*server = 0;
			return -1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10) {
			snprintf(why, whysize, "nats-server did not accept connections in 10 s; see %s", log);
			tqn_stop(*server);
			*server = 0;
			return -1;
		}
		usleep(20000);
	}
}

#endif
