/* SPDX-License-Identifier: MIT */
/*
 * cmd_segments.c - taskq ls, clean and destroy: the segments in /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------ ls, clean, destroy */

/*
 * ls, clean and destroy look at /dev/shm/taskq.* without trusting it. Each
 * entry is first looked at with fstatat, without opening it, so a FIFO or
 * a device named like a queue is never opened. Only a regular file owned
 * by the caller is opened (read-only, O_NOFOLLOW | O_NONBLOCK, to read the
 * first 8 bytes of its header, the magic that creation writes last), and
 * only such a file that looks finished is attached to, as an observer
 * (tq_open_observer: counted as no process, recovering nothing), which
 * maps it and writes into it. Another user's segment is never mapped: its
 * owner can change it at any time, or truncate it under the mapping. In
 * /dev/shm (sticky) nobody but its owner or root can replace a file
 * between these checks, so a file checked as the caller's stays the
 * caller's.
 */
#define SHM_DIR "/dev/shm"
#define SHM_PREFIX "taskq."
/* A segment whose creator died before it was whole (empty, or its magic
 * still zero) is removed by clean once unchanged for this long: a living
 * creator finishes in milliseconds. */
#define HALF_CREATED_AGE_S 60

enum seg_class {
	SEG_GONE,       /* not there (any more) */
	SEG_QUEUE,      /* the caller's, looks finished: opened (err, stats) */
	SEG_HALF,       /* the caller's, empty or its magic zero: half-created */
	SEG_OTHER_USER, /* another user's: not inspected */
	SEG_NOT_FILE,   /* not a regular file (type says what) */
	SEG_BAD_NAME,   /* taskq.X where X is not a queue name */
	SEG_ERROR,      /* could not be inspected (err) */
};

struct qinfo {
	char name[256];       /* after "taskq.": any bytes */
	char shown[4 * 256];  /* name, safe for a terminal */
	int cls;              /* enum seg_class */
	uid_t uid;
	const char *type;     /* SEG_NOT_FILE: "a FIFO", ... */
	bool old;             /* SEG_HALF: unchanged for HALF_CREATED_AGE_S */
	int err;              /* SEG_QUEUE, SEG_ERROR: 0 or the TQ_E* code */
	tq_stats s;
	int others;           /* attached processes besides this command */
	uint32_t held;        /* tasks in any state */
	tq_queue *q;          /* SEG_QUEUE, err 0, when asked: still attached */
};

static const char *file_type(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

static int errno_tq(int e)
{
	return e == EACCES || e == EPERM ? TQ_EPERM : e == ENOMEM ? TQ_ENOMEM : TQ_ESYS;
}

/* Classifies dir/taskq.NAME; with attach, keeps a queue's handle open. */
static void inspect(int dir, const char *name, bool attach, struct qinfo *qi)
{
	char file[sizeof(SHM_PREFIX) + sizeof(qi->name)];
	struct stat st, fst;
	uint64_t magic = 1;

	memset(qi, 0, sizeof(*qi));
	snprintf(qi->name, sizeof(qi->name), "%s", name);
	cli_text_escape(qi->shown, sizeof(qi->shown), qi->name, strlen(qi->name));
	snprintf(file, sizeof(file), SHM_PREFIX "%s", qi->name);
	if (fstatat(dir, file, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		qi->cls = errno == ENOENT ? SEG_GONE : SEG_ERROR;
		qi->err = errno_tq(errno);
		return;
	}
	qi->uid = st.st_uid;
	if (!S_ISREG(st.st_mode)) {
		qi->cls = SEG_NOT_FILE;
		qi->type = file_type(st.st_mode);
		return;
	}
	if (!cli_queue_name_ok(qi->name)) {
		qi->cls = SEG_BAD_NAME;
		return;
	}
	if (st.st_uid != geteuid()) {
		qi->cls = SEG_OTHER_USER;
		return;
	}
	int fd = openat(dir, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		qi->cls = errno == ENOENT ? SEG_GONE : errno == ELOOP ? SEG_NOT_FILE : SEG_ERROR;
		qi->type = file_type(S_IFLNK);
		qi->err = errno_tq(errno);
		return;
	}
	/* What was opened is what was checked: the same file, still the
	 * caller's regular file (else it changed hands or was replaced while
	 * looked at; it is left alone). */
	if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino || !S_ISREG(fst.st_mode) ||
	    fst.st_uid != geteuid()) {
		close(fd);
		qi->cls = SEG_GONE;
		return;
	}
	bool half = fst.st_size == 0 ||
		    (fst.st_size >= 8 && pread(fd, &magic, sizeof(magic), 0) == sizeof(magic) && magic == 0);
	close(fd);
	if (half) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		qi->cls = SEG_HALF;
		qi->old = now.tv_sec - fst.st_mtim.tv_sec >= HALF_CREATED_AGE_S;
		return;
	}
	tq_queue *q;
	qi->cls = SEG_QUEUE;
	qi->err = tq_open_observer(qi->name, &q);
	if (qi->err)
		return;
	tq_stats_get(q, &qi->s);
	qi->others = (int)qi->s.procs; /* an observer: not one of them */
	qi->held = qi->s.ready + qi->s.leased + qi->s.delayed + qi->s.dead;
	if (attach)
		qi->q = q;
	else
		tq_close(q);
}

/* "user nobody (uid 65534)", or "uid 65534" if the user has no name. */
static const char *owner_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res && res->pw_name)
		snprintf(buf, size, "user %.64s (uid %u)", res->pw_name, (unsigned)uid);
	else
		snprintf(buf, size, "uid %u", (unsigned)uid);
	return buf;
}

/* Why an entry is not an inspected queue: a line of ls and clean. */
static const char *seg_note(const struct qinfo *qi, char *buf, size_t size)
{
	char who[120];

	switch (qi->cls) {
	case SEG_OTHER_USER:
		snprintf(buf, size, "owned by %s: not inspected", owner_name(qi->uid, who, sizeof(who)));
		break;
	case SEG_NOT_FILE:
		snprintf(buf, size, "not a taskq queue: %s", qi->type);
		break;
	case SEG_BAD_NAME:
		snprintf(buf, size, "not a taskq queue: not a valid queue name");
		break;
	case SEG_HALF:
		snprintf(buf, size, qi->old ? "half-created: its creator died (unchanged for %d s or more)"
					    : "half-created: being created, or its creator died less than %d s ago",
			 HALF_CREATED_AGE_S);
		break;
	default:
		snprintf(buf, size, "%s", tq_strerror(qi->err));
		break;
	}
	return buf;
}

/* Calls fn for every taskq.* entry of /dev/shm. */
static int for_each_queue(void (*fn)(const struct qinfo *, void *), void *arg, bool attach)
{
	DIR *d = opendir(SHM_DIR);
	struct dirent *e;

	if (!d) {
		cli_err("%s: cannot list: %s", SHM_DIR, strerror(errno));
		return EX_FAIL;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, SHM_PREFIX, strlen(SHM_PREFIX)) || !e->d_name[strlen(SHM_PREFIX)])
			continue;
		struct qinfo qi;
		inspect(dirfd(d), e->d_name + strlen(SHM_PREFIX), attach, &qi);
		if (qi.cls != SEG_GONE)
			fn(&qi, arg);
		tq_close(qi.q);
	}
	closedir(d);
	return 0;
}

static bool is_queue(const struct qinfo *qi)
{
	return qi->cls == SEG_QUEUE && qi->err == 0;
}

/* A queue no process is attached to (observers are not processes): the
 * normal state of a queue waiting for workers, and what clean removes when
 * it is also empty. */
static bool is_unattached(const struct qinfo *qi)
{
	return is_queue(qi) && qi->others == 0;
}

/* Provably abandoned or broken: half-created by a creator that died, or
 * the caller's own segment that cannot be read or used (another layout
 * version, inconsistent, never finished). A working queue never is, with
 * or without processes attached. */
static bool is_stale(const struct qinfo *qi)
{
	if (qi->cls == SEG_HALF)
		return qi->old;
	if (qi->cls == SEG_ERROR)
		return true;
	return qi->cls == SEG_QUEUE &&
	       (qi->err == TQ_EBADQUEUE || qi->err == TQ_EVERSION || qi->err == TQ_EINIT);
}

static void ls_one(const struct qinfo *qi, void *arg)
{
	cJSON *arr = arg;
	char note[300];

	if (arr) {
		cJSON *o = cJSON_CreateObject();
		cli_json_add_bytes(o, "name", qi->name, strlen(qi->name));
		if (qi->cls != SEG_ERROR)
			cJSON_AddNumberToObject(o, "owner_uid", qi->uid);
		/* Looked inside: only the caller's own regular files are. */
		cJSON_AddBoolToObject(o, "inspected", qi->cls == SEG_QUEUE || qi->cls == SEG_HALF);
		cJSON_AddBoolToObject(o, "stale", is_stale(qi));
		if (!is_queue(qi)) {
			cJSON_AddStringToObject(o, "error", seg_note(qi, note, sizeof(note)));
		} else {
			cJSON_AddStringToObject(o, "state", cli_state_name(qi->s.run_state));
			cJSON_AddNumberToObject(o, "capacity", qi->s.capacity);
			cJSON_AddNumberToObject(o, "ready", qi->s.ready);
			cJSON_AddNumberToObject(o, "leased", qi->s.leased);
			cJSON_AddNumberToObject(o, "delayed", qi->s.delayed);
			cJSON_AddNumberToObject(o, "dead", qi->s.dead);
			cJSON_AddNumberToObject(o, "processes", qi->others);
		}
		cJSON_AddItemToArray(arr, o);
		return;
	}
	if (!is_queue(qi))
		printf("%-24s %-9s %s%s\n", qi->shown, "-", is_stale(qi) ? "stale: " : "",
		       seg_note(qi, note, sizeof(note)));
	else
		printf("%-24s %-9s %8u %8u %8u %8u %6d%s\n", qi->shown, cli_state_name(qi->s.run_state), qi->s.ready,
		       qi->s.leased, qi->s.delayed, qi->s.dead, qi->others,
		       is_unattached(qi) ? "  no processes attached" : "");
}

enum { O_JSON = 'j', O_FORCE = 'f', O_DRY_RUN = 'n' };

static const struct cli_opt ls_opts[] = {
	{O_JSON, true, "json", NULL, "an array of objects: name, owner_uid, inspected,\n"
				     "stale, and either the queue's state and counts,\n"
				     "or error (why not)"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command ls_cmd = {
	.name = "ls",
	.about = "The queues on this machine: run state, tasks ready / in progress / delayed /\n"
		 "dead, attached processes (observers such as taskq top or serve are not\n"
		 "processes; one that died is not counted, and its tasks stay in progress until\n"
		 "recovered). A queue is marked \"no processes attached\" when none is: the normal\n"
		 "state of a queue waiting for workers. \"stale\" marks only what is provably\n"
		 "abandoned or broken: a segment half-created by a creator that died, or one of\n"
		 "the caller's that cannot be read or used (another layout version, inconsistent).\n"
		 "Nothing is recovered or changed. Only the caller's own queues are opened:\n"
		 "another user's is listed as owned by that user, not inspected; anything else\n"
		 "named taskq.* (a FIFO, a directory, a link, a file that is not a queue) is\n"
		 "listed as not a taskq queue, and never opened in a way that could wait.\n",
	.opts = ls_opts,
};

int cmd_ls(int argc, char **argv)
{
	bool json = false;
	int rc = cli_opts_json_only(&ls_cmd, O_JSON, argc, argv, &json);

	if (rc >= 0)
		return rc;
	if (optind != argc)
		return cli_command_usage(&ls_cmd);
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	if (!json)
		printf("%-24s %-9s %8s %8s %8s %8s %6s\n", "NAME", "STATE", "READY", "LEASED", "DELAYED", "DEAD", "PROCS");
	rc = for_each_queue(ls_one, arr, false);
	if (json)
		cli_print_json(arr);
	return rc;
}

struct clean_ctx {
	bool force, dry_run, json;
	int removed, kept;
	cJSON *arr;
};

static void clean_one(const struct qinfo *qi, void *arg)
{
	struct clean_ctx *c = arg;
	const char *why = NULL;
	char note[300];

	if (qi->cls == SEG_HALF && qi->old)
		why = "half-created (its creator died)";
	else if (is_unattached(qi) && qi->held == 0)
		why = "no processes attached, empty";
	else if (is_unattached(qi) && c->force)
		why = "no processes attached, tasks discarded (--force)";
	if (!why) {
		c->kept++;
		if (is_unattached(qi))
			fprintf(stderr, "taskq: clean: kept %s: no processes attached but holds %u tasks (--force discards them)\n",
				qi->shown, qi->held);
		else if (qi->cls == SEG_OTHER_USER)
			fprintf(stderr, "taskq: clean: skipped %s: %s (only the caller's own queues are cleaned)\n",
				qi->shown, seg_note(qi, note, sizeof(note)));
		else if (!is_queue(qi))
			fprintf(stderr, "taskq: clean: kept %s: %s\n", qi->shown, seg_note(qi, note, sizeof(note)));
		return;
	}
	/* A queue is removed while still attached here: a process that opens
	 * it by name from now on finds nothing, rather than a queue about to go. */
	int rc = c->dry_run ? 0 : tq_destroy(qi->name);
	if (rc) {
		cli_err("%s: %s", qi->shown, tq_strerror(rc));
		c->kept++;
		return;
	}
	c->removed++;
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", qi->name); /* a valid queue name: plain ASCII */
		cJSON_AddStringToObject(o, "reason", why);
		cJSON_AddNumberToObject(o, "tasks_discarded", qi->held);
		cJSON_AddItemToArray(c->arr, o);
	} else {
		printf("%s %s: %s\n", c->dry_run ? "would remove" : "removed", qi->name, why);
	}
}

static const struct cli_opt clean_opts[] = {
	{O_FORCE, true, "force", NULL, "also remove queues with no process attached that\nhold tasks"},
	{O_DRY_RUN, true, "dry-run", NULL, "say what would be removed, remove nothing"},
	{O_JSON, true, "json", NULL, "an array of the queues removed: name, reason,\ntasks_discarded"},
	CLI_OPT_PRETTY,
	{0, false, NULL, NULL, NULL},
};

#define STR_(x) #x
#define STR(x) STR_(x)
static const struct cli_command clean_cmd = {
	.name = "clean",
	.about = "Removes the caller's queues that no live process is attached to and\n"
		 "that hold no task, and the caller's segments whose creator died while\n"
		 "creating them (empty, or with no header yet, and unchanged for " STR(HALF_CREATED_AGE_S) " s). A queue\n"
		 "with no process attached that still holds tasks is kept unless --force.\n"
		 "Observers (taskq top, serve) are not processes. Only regular files owned by\n"
		 "the caller are ever removed: other users' queues are skipped (and not\n"
		 "opened), and anything named taskq.* that is not provably a taskq queue (a\n"
		 "FIFO, a directory, a link, a file that is not a queue) is kept; each is named\n"
		 "on stderr.\n",
	.opts = clean_opts,
};

int cmd_clean(int argc, char **argv)
{
	struct cli_parser p;
	struct clean_ctx c = {0};
	int o;

	cli_parser_init(&p, &clean_cmd);
	while ((o = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (o == CLI_OPT_HELP)
			return 0;
		if (o == O_JSON)
			c.json = true;
		else if (o == O_FORCE)
			c.force = true;
		else if (o == O_DRY_RUN)
			c.dry_run = true;
		else
			return o == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(&clean_cmd);
	}
	if (optind != argc)
		return cli_command_usage(&clean_cmd);
	c.arr = c.json ? cJSON_CreateArray() : NULL;
	int rc = for_each_queue(clean_one, &c, true);
	if (c.json)
		cli_print_json(c.arr);
	else if (c.removed == 0)
		printf("nothing to clean\n");
	return rc;
}

static const struct cli_opt destroy_opts[] = {
	{O_FORCE, true, "force", NULL, "remove it anyway: attached, holding tasks, or\nnot inspectable"},
	{0, false, NULL, NULL, NULL},
};

static const struct cli_command destroy_cmd = {
	.name = "destroy",
	.args = "NAME",
	.about = "Removes queue NAME. Refused while processes are attached or\n"
		 "tasks are held (ready, in progress, delayed or dead) unless --force; observers\n"
		 "(taskq top, stats, serve) are not processes and do not count. Without\n"
		 "--force it also refuses what it cannot inspect: a half-created queue, a\n"
		 "segment that is not a queue or not a regular file (exit 4), another user's\n"
		 "queue (exit 1; it is never opened).\n",
	.opts = destroy_opts,
};

int cmd_destroy(int argc, char **argv)
{
	struct cli_parser p;
	bool force = false;
	int o;

	cli_parser_init(&p, &destroy_cmd);
	while ((o = cli_opts_next(&p, argc, argv)) != CLI_OPT_END) {
		if (o == CLI_OPT_HELP)
			return 0;
		if (o == O_FORCE)
			force = true;
		else
			return o == CLI_OPT_BAD ? EX_USAGE_ : cli_command_usage(&destroy_cmd);
	}
	if (optind != argc - 1)
		return cli_command_usage(&destroy_cmd);
	const char *name = argv[optind];
	char note[300];
	struct qinfo qi;
	if (!cli_queue_name_ok(name)) {
		cli_err("%s: %s", cli_text_escape(note, sizeof(note), name, strlen(name)), tq_strerror(TQ_ENAME));
		return EX_USAGE_;
	}
	int dir = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		cli_err("%s: %s", SHM_DIR, strerror(errno));
		return EX_FAIL;
	}
	inspect(dir, name, false, &qi);
	close(dir);
	switch (qi.cls) {
	case SEG_GONE:
		cli_err("%s: %s", name, tq_strerror(TQ_ENOENT));
		return EX_NOQUEUE;
	case SEG_ERROR:
		cli_err("%s: %s", name, tq_strerror(qi.err));
		return cli_exit_for(qi.err);
	case SEG_QUEUE:
		if (qi.err && qi.err != TQ_EBADQUEUE && qi.err != TQ_EINIT && qi.err != TQ_EVERSION) {
			cli_err("%s: %s", name, tq_strerror(qi.err));
			return cli_exit_for(qi.err);
		}
		if (qi.err && !force) {
			cli_err("%s: %s; --force removes it anyway", name, tq_strerror(qi.err));
			return EX_BADQUEUE;
		}
		if (!qi.err && !force && (qi.others > 0 || qi.held > 0)) {
			cli_err("%s: %d processes attached, %u tasks held; --force destroys it anyway", name,
				qi.others, qi.held);
			return EX_FAIL;
		}
		break;
	default:
		if (!force) {
			cli_err("%s: %s; --force removes it anyway", name, seg_note(&qi, note, sizeof(note)));
			return qi.cls == SEG_OTHER_USER ? EX_FAIL : EX_BADQUEUE;
		}
		break;
	}
	int rc = tq_destroy(name);
	if (rc) {
		cli_err("%s: %s", name, tq_strerror(rc));
		return cli_exit_for(rc);
	}
	printf("destroyed %s\n", name);
	return 0;
}
