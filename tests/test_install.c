/* SPDX-License-Identifier: MIT */
/*
 * test_install.c - what `make install` delivers: the version every program
 * prints against taskq.pc and include/taskq.h, the man pages (rendered,
 * and naming every subcommand, option and function there is, so that they
 * cannot drift from the programs and the header), the bash completion (run
 * in a real bash), and `make install` / `make uninstall` into a staging
 * directory (DESTDIR) and into a prefix outside the loader's path.
 *
 * The programs run as child processes with a deadline (proc.h). make runs
 * in the source tree (TQ_SRC_DIR) on the build directory (TQ_BIN_DIR) that
 * the test program was built in, with a clean environment, so it only
 * copies files: the test program depends on everything install installs.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "taskq.h"
#include "util.h"

#ifndef TQ_BIN_DIR
#define TQ_BIN_DIR "build"
#endif
#ifndef TQ_SRC_DIR
#define TQ_SRC_DIR "."
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TQT_HAS_SANITIZER 1
#endif
#endif
#ifndef TQT_HAS_SANITIZER
#define TQT_HAS_SANITIZER 0
#endif
/* The make variable that built this test program's build directory, so
 * that a make install which has to rebuild something (a source changed
 * since) builds it the same way. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TQT_SAN "SAN=asan"
#elif __has_feature(thread_sanitizer)
#define TQT_SAN "SAN=tsan"
#endif
#endif
#ifndef TQT_SAN
#if defined(__SANITIZE_ADDRESS__)
#define TQT_SAN "SAN=asan"
#elif defined(__SANITIZE_THREAD__)
#define TQT_SAN "SAN=tsan"
#else
#define TQT_SAN ""
#endif
#endif
#define TASKQ TQ_BIN_DIR "/taskq"
#define BRIDGE TQ_BIN_DIR "/taskq-bridge"

/* make install copies a few files; running the man pages through groff or
 * a completion through bash takes a fraction of a second. */
#define RUN_DEADLINE_MS 60000u
#include "proc.h"

/* Directories: at most DIR_MAX bytes, so that any path built in one fits a
 * PATH_MAX buffer. */
#define DIR_MAX 1024
static char bin_dir[DIR_MAX], src_dir[DIR_MAX];
static char tmpdir[DIR_MAX];
static char qname[TQT_NAME_LEN];

static void absolute(char dst[DIR_MAX], const char *dir)
{
	char *p = realpath(dir, NULL);
	cr_assert(p, "%s: %s", dir, strerror(errno));
	cr_assert(strlen(p) < DIR_MAX, "%s: a path too long for this test", p);
	strcpy(dst, p);
	free(p);
}

static void inst_init(void)
{
	memset(children, 0, sizeof(children));
	absolute(bin_dir, TQ_BIN_DIR);
	absolute(src_dir, TQ_SRC_DIR);
	tmpdir[0] = qname[0] = '\0';
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void inst_fini(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	if (qname[0])
		tq_destroy(qname);
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The soname's version: MAJOR, or MAJOR.MINOR while MAJOR is 0 (the
 * Makefile's SOVERSION). */
static const char *so_version(void)
{
	static char v[32];
	if (TQ_VERSION_MAJOR == 0)
		snprintf(v, sizeof v, "%d.%d", TQ_VERSION_MAJOR, TQ_VERSION_MINOR);
	else
		snprintf(v, sizeof v, "%d", TQ_VERSION_MAJOR);
	return v;
}

TestSuite(install, .init = inst_init, .fini = inst_fini, .timeout = 120);

/* Runs `sh -c CMD` (CMD from fmt) in a clean environment (PATH only). */
static int sh(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(struct out *o, const char *fmt, ...)
{
	char cmd[8192], path[4096];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof cmd);
	const char *p = getenv("PATH");
	snprintf(path, sizeof path, "PATH=%s", p ? p : "/usr/bin:/bin:/usr/sbin:/sbin");
	char *argv[] = {"/usr/bin/env", "-i", path, "LC_ALL=C", "/bin/sh", "-c", cmd, NULL};
	return run(argv, NULL, o);
}

static void make_tmpdir(const char *what)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tqt-%s-%ld-XXXXXX", what, (long)getpid());
	cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

/* The version in the build's taskq.pc, through pkg-config. */
static void pc_version(char *buf, size_t size)
{
	struct out o = {0};
	cr_assert_eq(sh(&o, "PKG_CONFIG_PATH='%s' pkg-config --modversion taskq", bin_dir), 0, "%s: %s", o.cmd,
		     o.err);
	snprintf(buf, size, "%.*s", (int)strcspn(o.out, "\n"), o.out);
	out_free(&o);
}

Test(install, version_matches_pkg_config_and_header)
{
	char ver[64], want[128], hdr[64];
	struct out o = {0};

	pc_version(ver, sizeof ver);
	cr_assert(ver[0], "pkg-config printed no version");
	snprintf(hdr, sizeof hdr, "%d.%d.%d", TQ_VERSION_MAJOR, TQ_VERSION_MINOR, TQ_VERSION_PATCH);
	cr_expect_str_eq(ver, hdr, "taskq.pc says %s, include/taskq.h %s", ver, hdr);

	char *tq[] = {TASKQ, "--version", NULL};
	cr_assert_eq(run(tq, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	snprintf(want, sizeof want, "taskq %s\n", ver);
	cr_expect_str_eq(o.out, want, "taskq --version: '%s', taskq.pc: %s", o.out, ver);

	char *br[] = {BRIDGE, "--version", NULL};
	cr_assert_eq(run(br, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	snprintf(want, sizeof want, "taskq-bridge %s\n", ver);
	cr_expect_str_eq(o.out, want, "taskq-bridge --version: '%s'", o.out);
	out_free(&o);

	/* The shared library: libtaskq.so.VERSION, its soname link
	 * libtaskq.so.MAJOR, and libtaskq.so for -ltaskq. */
	char path[PATH_MAX], target[PATH_MAX], soname[64], real[96];
	struct stat st;
	snprintf(soname, sizeof soname, "libtaskq.so.%s", so_version());
	snprintf(real, sizeof real, "libtaskq.so.%s", ver);
	snprintf(path, sizeof path, "%s/%s", bin_dir, real);
	cr_expect(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "%s: not a regular file", path);
	snprintf(path, sizeof path, "%s/%s", bin_dir, soname);
	ssize_t n = readlink(path, target, sizeof target - 1);
	cr_expect(n > 0 && (target[n] = '\0', !strcmp(target, real)), "%s should link to %s", path, real);
	snprintf(path, sizeof path, "%s/libtaskq.so", bin_dir);
	n = readlink(path, target, sizeof target - 1);
	cr_expect(n > 0 && (target[n] = '\0', !strcmp(target, soname)), "%s should link to %s", path, soname);
	cr_expect_eq(sh(&o, "readelf -d '%s/%s' | grep -q 'Library soname: \\[%s\\]'", bin_dir, real, soname), 0,
		     "the soname of %s is not %s", real, soname);
	out_free(&o);
}

/* ------------------------------------------------------------ man pages */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b = {0};

	cr_assert(f, "%s: %s", path, strerror(errno));
	buf_add(&b, "", 0);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	return b.p;
}

/* Renders a built page with groff as man(1) would; any warning fails. */
static void expect_renders(const char *page)
{
	struct out o = {0};
	int rc = sh(&o, "groff -man -Tutf8 -ww '%s/man/%s' >/dev/null", bin_dir, page);
	cr_expect_eq(rc, 0, "%s: %s", o.cmd, o.err);
	cr_expect_eq(o.err_len, 0, "groff warns about %s: %s", page, o.err);
	out_free(&o);
}

/* Every option (--long, or -x) named in help, in bold in the page (roff:
 * \fB--opt\fR). */
static void expect_options_in(const char *page, const char *roff, const char *help, const char *whose)
{
	regex_t re;
	regmatch_t m[3];

	cr_assert_eq(regcomp(&re, "(^|[][ (,|])(--?[a-zA-Z][a-zA-Z0-9-]*)", REG_EXTENDED | REG_NEWLINE), 0);
	for (const char *p = help; regexec(&re, p, 3, m, p == help ? 0 : REG_NOTBOL) == 0; p += m[0].rm_eo) {
		char want[96];
		snprintf(want, sizeof want, "\\fB%.*s\\fR", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
		cr_expect(strstr(roff, want), "%s: the option %.*s of %s is missing", page,
			  (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so, whose);
	}
	regfree(&re);
}

Test(install, man_pages_render_and_cover_every_command_option_function)
{
	const char *pages[] = {"taskq.1", "taskq.3", "taskq-bridge.1"};
	char path[PATH_MAX];
	struct out o = {0};

	for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
		expect_renders(pages[i]);

	/* taskq.1: every subcommand of `taskq --help` starts an entry, and
	 * every option of `taskq CMD --help` is there. */
	snprintf(path, sizeof path, "%s/man/taskq.1", bin_dir);
	char *roff = slurp(path);
	char *top[] = {TASKQ, "--help", NULL};
	cr_assert_eq(run(top, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	char *help = strdup(o.out);
	expect_options_in("taskq.1", roff, help, "taskq");
	const char *p = strstr(help, "Commands:\n");
	cr_assert(p, "no Commands: in taskq --help");
	int ncmd = 0;
	for (p = strchr(p, '\n') + 1; p[0] == ' ' && p[1] == ' ' && p[2] != ' '; p = strchr(p, '\n') + 1) {
		char name[32], want[64];
		snprintf(name, sizeof name, "%.*s", (int)strcspn(p + 2, " \n"), p + 2);
		ncmd++;
		snprintf(want, sizeof want, "\n\\fB%s\\fR", name);
		cr_expect(strstr(roff, want), "taskq.1 has no entry for the subcommand %s", name);
		if (!strcmp(name, "bridge"))
			continue; /* taskq-bridge.1, below */
		char *sub[] = {TASKQ, name, "--help", NULL};
		cr_assert_eq(run(sub, NULL, &o), 0, "%s: %s", o.cmd, o.err);
		char whose[64];
		snprintf(whose, sizeof whose, "taskq %s", name);
		expect_options_in("taskq.1", roff, o.out, whose);
	}
	cr_expect_geq(ncmd, 18, "taskq --help lists %d subcommands", ncmd);
	free(help);
	free(roff);

	/* taskq-bridge.1: every mode and option of taskq-bridge --help. */
	snprintf(path, sizeof path, "%s/man/taskq-bridge.1", bin_dir);
	roff = slurp(path);
	char *br[] = {BRIDGE, "--help", NULL};
	cr_assert_eq(run(br, NULL, &o), 0, "%s: %s", o.cmd, o.err);
	expect_options_in("taskq-bridge.1", roff, o.out, "taskq-bridge");
	const char *modes[] = {"out", "in", "stats", "top", "stop"};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char want[64];
		snprintf(want, sizeof want, "\n\\fB%s\\fR\n", modes[i]);
		cr_expect(strstr(roff, want), "taskq-bridge.1 has no entry for %s", modes[i]);
	}
	free(roff);

	/* taskq.3: every function declared in include/taskq.h. */
	snprintf(path, sizeof path, "%s/man/taskq.3", bin_dir);
	roff = slurp(path);
	snprintf(path, sizeof path, "%s/include/taskq.h", src_dir);
	char *hdr = slurp(path);
	regex_t re;
	regmatch_t m[2];
	int nfn = 0;
	cr_assert_eq(regcomp(&re, "^[a-z][a-z0-9_ ]*[ *](tq_[a-z0-9_]+)\\(", REG_EXTENDED | REG_NEWLINE), 0);
	for (p = hdr; regexec(&re, p, 2, m, 0) == 0; p += m[0].rm_eo) {
		char want[96];
		snprintf(want, sizeof want, "%.*s(", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
		nfn++;
		cr_expect(strstr(roff, want), "taskq.3 does not describe %s)", want);
	}
	regfree(&re);
	cr_expect_geq(nfn, 30, "found %d functions in include/taskq.h", nfn);
	free(hdr);
	free(roff);
	out_free(&o);
}

/* ----------------------------------------------------------- completion */

/* The completion in a real bash (no rc files): for each line "WORDS..." of
 * the script, the words after `taskq`, it prints the candidates. */
static const char *complete_script =
	"set -u\n"
	"source \"$1/completions/taskq.bash\"\n"
	"c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _taskq;\n"
	"      printf '%s|' \"${COMPREPLY[@]}\"; echo; }\n"
	"complete -p taskq taskq-bridge\n"
	"c \"$2/taskq\" cr\n"
	"c \"$2/taskq\" st\n"
	"c \"$2/taskq\" push \"$3\" --de\n"
	"c \"$2/taskq\" take \"${3%?}\"\n"
	"c \"$2/taskq\" push \"$3\" --kind ''\n"
	"c \"$2/taskq\" dead \"$3\" p\n"
	"c \"$2/taskq-bridge\" s\n"
	"c \"$2/taskq\" bridge out \"$3\" --st\n";

Test(install, bash_completion)
{
	struct out o = {0};
	tq_queue *q;

	enter_private_shm(); /* where allowed: this test's queue alone */
	tqt_name(qname, "compl");
	int rc = tq_create(qname, NULL, &q);
	cr_assert_eq(rc, 0, "tq_create: %s", tq_strerror(rc));
	tq_close(q);

	const char *path = getenv("PATH");
	char env_path[4096];
	snprintf(env_path, sizeof env_path, "PATH=%s", path ? path : "/usr/bin:/bin");
	char *argv[] = {"/usr/bin/env", "-i",   env_path, "/bin/bash", "--norc", "--noprofile", "-c",
			(char *)complete_script, "bash", src_dir, bin_dir, qname, NULL};
	cr_assert_eq(run(argv, NULL, &o), 0, "bash: %s", o.err);
	cr_expect_eq(o.err_len, 0, "bash said: %s", o.err);

	char want[1024];
	snprintf(want, sizeof want,
		 "complete -F _taskq taskq\n"
		 "complete -F _taskq taskq-bridge\n"
		 "create|\n"            /* a subcommand from its prefix */
		 "stats|stop|\n"        /* ... all of them */
		 "--delay|\n"           /* an option of push (from taskq push --help) */
		 "%s|\n"                /* a queue name from /dev/shm/taskq.NAME */
		 "int|string|json|\n"   /* an option's values */
		 "purge|\n"             /* dead's actions */
		 "stats|stop|\n"        /* taskq-bridge's modes */
		 "--state|--storage|--stream|\n",
		 qname);
	if (private_shm) {
		cr_expect_str_eq(o.out, want, "the completions:\n%s\nexpected:\n%s", o.out, want);
	} else {
		/* Other queues may share the prefix: check the line holds ours. */
		char line[300];
		snprintf(line, sizeof line, "%s|", qname);
		cr_expect(strstr(o.out, line), "no %s in the completions:\n%s", qname, o.out);
		cr_expect(strstr(o.out, "create|\nstats|stop|\n--delay|\n"), "the completions:\n%s", o.out);
	}
	out_free(&o);
}

/* ------------------------------------------------------ make install */

/* Every file make install installs under PREFIX (uninstall removes them). */
static const char *installed_files[] = {
	"bin/taskq",
	"bin/taskq-bridge",
	"include/taskq.h",
	"lib/libtaskq.a",
	"lib/libtaskq.so.@VERSION@",
	"lib/libtaskq.so.@SOVERSION@",
	"lib/libtaskq.so",
	"lib/pkgconfig/taskq.pc",
	"share/man/man1/taskq.1",
	"share/man/man1/taskq-bridge.1",
	"share/man/man3/taskq.3",
	"share/bash-completion/completions/taskq",
	"share/bash-completion/completions/taskq-bridge",
};
#define N_INSTALLED (sizeof installed_files / sizeof installed_files[0])

static void installed_path(char *buf, size_t size, const char *root, const char *file, const char *ver)
{
	char f[256];
	const char *at = strchr(file, '@');

	if (at && !strncmp(at, "@VERSION@", 9))
		snprintf(f, sizeof f, "%.*s%s", (int)(at - file), file, ver);
	else if (at)
		snprintf(f, sizeof f, "%.*s%s", (int)(at - file), file, so_version());
	else
		snprintf(f, sizeof f, "%s", file);
	snprintf(buf, size, "%s/%s", root, f);
}

static int left_count;
static char left_first[PATH_MAX];

static int count_left(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (flag != FTW_D && flag != FTW_DP) {
		if (left_count++ == 0)
			snprintf(left_first, sizeof left_first, "%s", path);
	}
	return 0;
}

/* Checks what make install put under root (= DESTDIR + PREFIX). */
static void expect_installed(const char *root, const char *prefix, const char *ver)
{
	char path[PATH_MAX], target[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < N_INSTALLED; i++) {
		installed_path(path, sizeof path, root, installed_files[i], ver);
		cr_expect_eq(lstat(path, &st), 0, "not installed: %s", path);
	}
	installed_path(path, sizeof path, root, "lib/libtaskq.so.@VERSION@", ver);
	cr_expect(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "%s: not a regular file", path);
	installed_path(path, sizeof path, root, "lib/libtaskq.so.@SOVERSION@", ver);
	ssize_t n = readlink(path, target, sizeof target - 1);
	char want[96];
	snprintf(want, sizeof want, "libtaskq.so.%s", ver);
	cr_expect(n > 0 && (target[n] = '\0', !strcmp(target, want)), "%s should link to %s", path, want);
	installed_path(path, sizeof path, root, "lib/libtaskq.so", ver);
	n = readlink(path, target, sizeof target - 1);
	snprintf(want, sizeof want, "libtaskq.so.%s", so_version());
	cr_expect(n > 0 && (target[n] = '\0', !strcmp(target, want)), "%s should link to %s", path, want);
	snprintf(path, sizeof path, "%s/bin/taskq", root);
	cr_expect(access(path, X_OK) == 0, "%s is not executable", path);

	/* taskq.pc names the prefix given to make install. */
	snprintf(path, sizeof path, "%s/lib/pkgconfig/taskq.pc", root);
	char *pc = slurp(path);
	char line[PATH_MAX + 16];
	snprintf(line, sizeof line, "prefix=%s\n", prefix);
	cr_expect(!strncmp(pc, line, strlen(line)), "taskq.pc:\n%s", pc);
	snprintf(line, sizeof line, "\nVersion: %s\n", ver);
	cr_expect(strstr(pc, line), "taskq.pc:\n%s", pc);
	free(pc);
}

static void expect_nothing_left(const char *dir)
{
	left_count = 0;
	left_first[0] = '\0';
	nftw(dir, count_left, 16, FTW_PHYS);
	cr_expect_eq(left_count, 0, "make uninstall left %d files, such as %s", left_count, left_first);
}

Test(install, make_install_and_uninstall_with_destdir)
{
	char ver[64], root[DIR_MAX + 16];
	struct out o = {0};

	pc_version(ver, sizeof ver);
	make_tmpdir("destdir");
	int rc = sh(&o, "make -s -C '%s' " TQT_SAN " BUILD='%s' DESTDIR='%s' PREFIX=/usr/local install", src_dir, bin_dir, tmpdir);
	cr_assert_eq(rc, 0, "%s:\n%s%s", o.cmd, o.out, o.err);
	cr_expect(!strstr(o.out, "ldconfig"), "ldconfig ran with a DESTDIR:\n%s", o.out);
	snprintf(root, sizeof root, "%s/usr/local", tmpdir);
	expect_installed(root, "/usr/local", ver);

	/* The installed man page is the one man(1) would show. */
	char page[PATH_MAX];
	snprintf(page, sizeof page, "%s/share/man/man1/taskq.1", root);
	cr_expect_eq(sh(&o, "groff -man -Tutf8 '%s' | grep -q 'taskq - a crash-safe task queue'", page), 0,
		     "%s does not render", page);

	rc = sh(&o, "make -s -C '%s' " TQT_SAN " BUILD='%s' DESTDIR='%s' PREFIX=/usr/local uninstall", src_dir, bin_dir, tmpdir);
	cr_assert_eq(rc, 0, "%s:\n%s%s", o.cmd, o.out, o.err);
	expect_nothing_left(tmpdir);
	out_free(&o);
}

Test(install, prefix_outside_the_loader_path_gets_a_hint)
{
	char ver[64];
	struct out o = {0};

	pc_version(ver, sizeof ver);
	make_tmpdir("prefix");
	int rc = sh(&o, "make -s -C '%s' " TQT_SAN " BUILD='%s' PREFIX='%s' install", src_dir, bin_dir, tmpdir);
	cr_assert_eq(rc, 0, "%s:\n%s%s", o.cmd, o.out, o.err);
	expect_installed(tmpdir, tmpdir, ver);
	cr_expect(strstr(o.out, "not a directory the dynamic loader searches"), "no hint:\n%s", o.out);
	cr_expect(strstr(o.out, "LD_LIBRARY_PATH"), "no hint:\n%s", o.out);

	/* A program linked against the installed library through pkg-config
	 * runs with the hint's LD_LIBRARY_PATH (not in a sanitizer build: its
	 * library needs the sanitizer's runtime). */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && !TQT_HAS_SANITIZER
	char prog[DIR_MAX + 16];
	snprintf(prog, sizeof prog, "%s/v", tmpdir);
	rc = sh(&o,
		"printf '#include <taskq.h>\\n#include <stdio.h>\\nint main(void) { puts(tq_strerror(TQ_ENOENT)); "
		"return 0; }\\n' > '%s.c' && "
		"PKG_CONFIG_PATH='%s/lib/pkgconfig' && export PKG_CONFIG_PATH && "
		"cc -o '%s' '%s.c' $(pkg-config --cflags --libs taskq) && "
		"LD_LIBRARY_PATH='%s/lib' '%s'",
		prog, tmpdir, prog, prog, tmpdir, prog);
	cr_expect_eq(rc, 0, "%s:\n%s%s", o.cmd, o.out, o.err);
	cr_expect(strstr(o.out, tq_strerror(TQ_ENOENT)), "%s", o.out);
	unlink(prog);
	strcat(prog, ".c");
	unlink(prog);
#endif

	rc = sh(&o, "make -s -C '%s' " TQT_SAN " BUILD='%s' PREFIX='%s' uninstall", src_dir, bin_dir, tmpdir);
	cr_assert_eq(rc, 0, "%s:\n%s%s", o.cmd, o.out, o.err);
	expect_nothing_left(tmpdir);
	out_free(&o);
}
