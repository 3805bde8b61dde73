# SPDX-License-Identifier: MIT
# taskq - build, test, benchmark, install.
#   make                 libraries, pkg-config file, programs
#   make test            every test (Criterion, then the Python binding's pytest suite);
#                        the sanitizer builds are separate:
#   make test-asan       tests under AddressSanitizer + UBSan
#   make test-tsan       tests under ThreadSanitizer
#   make bench           the benchmark table, CSV and SVG charts (see BENCHMARKS.md)
#   make bench-cluster   tasks between two queues through NATS JetStream (the same)
#   make bench-python    the Python binding against multiprocessing.Queue, Pipe, Redis
#   make python          checks that the Python binding loads the built library
#   make fuzz            libFuzzer targets (clang), FUZZ_SECONDS each (see fuzz/)
#   make install         PREFIX=/usr/local (default), DESTDIR=staging dir; see README
#   make uninstall       removes exactly what make install installs (same PREFIX, DESTDIR)
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
SAN     ?=
# The one source of the version: the shared library's file name, taskq.pc,
# the man pages and every program's --version. include/taskq.h's
# TQ_VERSION_MAJOR/MINOR/PATCH must agree (tools/version.h checks when
# building the programs). The soname is the ABI's version: MAJOR from 1.0
# on; while MAJOR is 0, every MINOR may change the ABI, so the soname is
# MAJOR.MINOR (libtaskq.so.0.4).
VERSION := 0.4.0
VERSION_WORDS := $(subst ., ,$(VERSION))
SOVERSION := $(if $(filter 0,$(word 1,$(VERSION_WORDS))),$(word 1,$(VERSION_WORDS)).$(word 2,$(VERSION_WORDS)),$(word 1,$(VERSION_WORDS)))
VERSION_DEFS := -DTQ_VERSION_STRING='"$(VERSION)"' -DTQ_MAKE_VERSION_MAJOR=$(word 1,$(VERSION_WORDS)) \
	-DTQ_MAKE_VERSION_MINOR=$(word 2,$(VERSION_WORDS)) -DTQ_MAKE_VERSION_PATCH=$(word 3,$(VERSION_WORDS))
# Where make install puts things (all under DESTDIR, if given).
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT      ?= -O2 -g
ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1 -g
endif
ifeq ($(SAN),tsan)
SANFLAGS := -fsanitize=thread
OPT      := -O1 -g
# Linked into every program of this build: room for Criterion's arenas
# (the file says why).
SAN_OBJ  := $(BUILD)/san/criterion_arena.o
endif
CFLAGS_ALL := $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -Iinclude -Isrc $(CFLAGS)
# SAN_LINK: the sanitizer build's own objects, linked into its programs.
LDFLAGS_ALL = $(SANFLAGS) $(SAN_LINK) $(LDFLAGS)
SAN_LINK := $(SAN_OBJ)
LIBS     := -lpthread -lrt

LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
PIC_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/pic/%.o)
STATIC   := $(BUILD)/libtaskq.a
# The test build of the library: the same sources with crash points
# (src/fault.h), linked only into the test suite.
TEST_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/tobj/%.o)
TEST_LIB := $(BUILD)/libtaskq-test.a
# libtaskq.so.VERSION, with the links libtaskq.so.SOVERSION (the soname)
# and libtaskq.so (for -ltaskq) beside it.
SONAME   := libtaskq.so.$(SOVERSION)
SHARED   := $(BUILD)/libtaskq.so.$(VERSION)
PCFILE   := $(BUILD)/taskq.pc
# Rewritten only when VERSION changes, so that what embeds it is rebuilt.
VERSION_STAMP := $(BUILD)/version
# Man pages: docs/man/NAME.SECTION.scd -> $(BUILD)/man/NAME.SECTION (scdoc).
MAN_SRC  := $(wildcard docs/man/*.scd)
MAN_PAGES := $(MAN_SRC:docs/man/%.scd=$(BUILD)/man/%)

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(BUILD)/tests/taskq-tests
STRESS_BIN := $(BUILD)/tests/taskq-stress
BENCH_BIN := $(BUILD)/bench/taskq-bench
BENCH_SRC := $(filter-out bench/cluster.c,$(wildcard bench/*.c))
CLUSTER_BENCH_BIN := $(BUILD)/bench/taskq-bench-cluster
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
CLI_SRC  := $(wildcard tools/cmd_*.c) tools/taskq.c tools/log.c tools/serve_parse.c tools/serve_metrics.c tools/serve_web.c tools/serve_cluster.c tools/parse.c
# The dashboard's files (tools/web/), built into taskq as C arrays.
WEB_FILES := tools/web/index.html tools/web/dashboard.js tools/web/dashboard.css tools/web/favicon.svg \
	tools/web/vendor/uPlot.iife.min.js tools/web/vendor/uPlot.min.css tools/web/vendor/uPlot.LICENSE
WEB_C    := $(BUILD)/gen/web_assets.c
CLI_BIN  := $(BUILD)/taskq
DEMO_BIN := $(BUILD)/taskq-demo
BRIDGE_BIN := $(BUILD)/taskq-bridge
NATS_LIBS := $(shell pkg-config --libs libnats 2>/dev/null || echo -lnats)
CJSON_LIBS := -lcjson
HTTP_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd) $(shell pkg-config --libs gnutls 2>/dev/null || echo -lgnutls) -lcurl
TUI_LIBS := -lncursesw

.PHONY: all lib man test test-asan test-tsan bench bench-cluster bench-python python install uninstall clean check-clang fuzz FORCE
all: lib $(CLI_BIN) $(DEMO_BIN) $(BRIDGE_BIN) $(BENCH_BIN) $(EXAMPLES) man
man: $(MAN_PAGES)
lib: $(STATIC) $(SHARED) $(PCFILE)

$(BUILD)/obj/%.o: src/%.c include/taskq.h $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS_ALL) -c $< -o $@
$(BUILD)/pic/%.o: src/%.c include/taskq.h $(wildcard src/*.h) | $(BUILD)/pic
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -DTQ_BUILD_SHARED -c $< -o $@
$(BUILD)/tobj/%.o: src/%.c include/taskq.h $(wildcard src/*.h) | $(BUILD)/tobj
	$(CC) $(CFLAGS_ALL) -DTQ_FAULT_INJECTION -c $< -o $@
$(TEST_LIB): $(TEST_OBJ)
	rm -f $@ && ar rcs $@ $^
$(STATIC): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(SHARED): $(PIC_OBJ) $(VERSION_STAMP)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS_ALL) -o $@ $(PIC_OBJ) $(LIBS)
	ln -sf libtaskq.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libtaskq.so
# taskq.pc: libdir and includedir relative to ${prefix} when under PREFIX.
PC_SUBST = sed -e 's|@PREFIX@|$(PREFIX)|' \
	-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	-e 's|@VERSION@|$(VERSION)|'
$(PCFILE): taskq.pc.in $(VERSION_STAMP) | $(BUILD)
	$(PC_SUBST) $< > $@
$(VERSION_STAMP): FORCE | $(BUILD)
	@[ "$$(cat $@ 2>/dev/null)" = "$(VERSION)" ] || echo "$(VERSION)" > $@
FORCE:
# scdoc reads the page on stdin; @VERSION@ in a page becomes VERSION.
$(BUILD)/man/%: docs/man/%.scd $(VERSION_STAMP) | $(BUILD)/man
	@command -v scdoc >/dev/null || { echo "scdoc is missing (Debian package scdoc): ./scripts/install-deps.sh installs it" >&2; exit 1; }
	sed -e 's|@VERSION@|$(VERSION)|g' $< | scdoc > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# The install and man page tests run make install from the source tree
# (TQ_SRC_DIR), so the test program needs everything install installs. The
# seed's classic ring (bench/classic.c) is shared by the bench and the test
# that kills the holder of its mutex (tests/test_seed.c); the bench test
# runs taskq-bench --quick --csv and scripts/bench-plots.sh.
$(TEST_BIN): $(TEST_SRC) $(wildcard tests/*.h) tools/log.c tools/log.h tools/frame.c tools/frame.h bench/classic.c bench/classic.h $(TEST_LIB) $(CLI_BIN) $(DEMO_BIN) $(BRIDGE_BIN) $(BENCH_BIN) \
		$(STATIC) $(SHARED) $(PCFILE) $(MAN_PAGES) | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) -Itests -Itools -Ibench -DTQ_BIN_DIR='"$(BUILD)"' -DTQ_SRC_DIR='"$(CURDIR)"' -DTQ_FAULT_INJECTION -o $@ $(TEST_SRC) tools/log.c tools/frame.c bench/classic.c $(TEST_LIB) $(LDFLAGS_ALL) -lcriterion $(NATS_LIBS) -lcurl $(LIBS)
$(BENCH_BIN): $(BENCH_SRC) $(wildcard bench/*.h) $(STATIC) | $(BUILD)/bench
	$(CC) $(CFLAGS_ALL) -Ibench -o $@ $(filter %.c,$^) $(STATIC) $(LDFLAGS_ALL) $(LIBS)
$(CLUSTER_BENCH_BIN): bench/cluster.c tests/natsserver.h $(STATIC) | $(BUILD)/bench
	$(CC) $(CFLAGS_ALL) -Itests -DTQ_BIN_DIR='"$(BUILD)"' -o $@ bench/cluster.c $(STATIC) $(LDFLAGS_ALL) $(NATS_LIBS) $(LIBS)
$(WEB_C): $(WEB_FILES) scripts/embed-assets.sh | $(BUILD)/gen
	scripts/embed-assets.sh $@ $(WEB_FILES)
$(CLI_BIN): $(CLI_SRC) $(WEB_C) $(wildcard tools/*.h) $(STATIC) $(VERSION_STAMP) | $(BUILD)
	$(CC) $(CFLAGS_ALL) $(VERSION_DEFS) -Itools -o $@ $(CLI_SRC) $(WEB_C) $(STATIC) $(LDFLAGS_ALL) $(CJSON_LIBS) $(TUI_LIBS) $(HTTP_LIBS) -lm $(LIBS)
# The bridge to NATS JetStream: its own program, so that libtaskq has no
# NATS dependency (docs/cluster.md).
$(BRIDGE_BIN): tools/bridge.c tools/frame.c tools/frame.h tools/log.c tools/log.h tools/parse.c tools/parse.h tools/version.h $(STATIC) $(VERSION_STAMP) | $(BUILD)
	$(CC) $(CFLAGS_ALL) $(VERSION_DEFS) -Itools -o $@ tools/bridge.c tools/frame.c tools/log.c tools/parse.c $(STATIC) $(LDFLAGS_ALL) $(NATS_LIBS) $(CJSON_LIBS) $(LIBS)
$(DEMO_BIN): tools/demo.c tools/log.c tools/log.h tools/serve_parse.c tools/serve_parse.h $(STATIC) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -Itools -o $@ tools/demo.c tools/log.c tools/serve_parse.c $(STATIC) $(LDFLAGS_ALL) $(CJSON_LIBS) -lm $(LIBS)
$(BUILD)/examples/%: examples/%.c $(STATIC) | $(BUILD)/examples
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL) $(LIBS)

$(BUILD) $(BUILD)/obj $(BUILD)/tobj $(BUILD)/pic $(BUILD)/tests $(BUILD)/bench $(BUILD)/examples $(BUILD)/man $(BUILD)/gen:
	mkdir -p $@

# Criterion runs each test in its own process; tests fork more. Two jobs
# match this project's 2-core machines; every test has its own timeout.
TEST_ARGS ?= --jobs 2
# The Python binding (bindings/python) is tested with Debian's own
# interpreter and pytest (not whatever python3 comes first on PATH), from
# the source tree against this build's shared library: nothing installed.
# Only in the plain build: an ASan or TSan library cannot be loaded into an
# uninstrumented python3, so test-asan and test-tsan (SAN set) skip it.
PYTHON ?= /usr/bin/python3
PY_ENV = PYTHONPATH=$(CURDIR)/bindings/python TASKQ_LIB=$(abspath $(SHARED)) TASKQ_BUILD=$(abspath $(BUILD)) \
	PYTHONDONTWRITEBYTECODE=1
# pytest-timeout (python3-pytest-timeout) ends a test that hangs after 60 s;
# left out where the plugin is missing.
PYTEST_ARGS ?= -q -p no:cacheprovider $(shell $(PYTHON) -c 'import pytest_timeout' 2>/dev/null && echo --timeout=60)
ifeq ($(SAN),)
test: $(TEST_BIN) $(SHARED) $(CLI_BIN) $(EXAMPLES)
	@rc=0; \
	echo "== Criterion suite"; $(TEST_BIN) $(TEST_ARGS) || rc=1; \
	echo "== Python binding (pytest)"; $(PY_ENV) $(PYTHON) -m pytest $(PYTEST_ARGS) bindings/python/tests || rc=1; \
	exit $$rc
else
test: $(TEST_BIN)
	$(TEST_BIN) $(TEST_ARGS)
endif
python: $(SHARED)
	$(PY_ENV) $(PYTHON) -c 'import taskq; print("taskq", taskq.__version__, "loads", taskq.library_path)'
# Tasks per stress run (tests/tsan/stress.c): about a second each, under TSan too.
STRESS_TASKS ?= 60000
# AddressSanitizer + UBSan: the stress program (see test-tsan), then the suite.
test-asan:
	$(MAKE) BUILD=build/asan SAN=asan build/asan/tests/taskq-stress build/asan/tests/taskq-tests
	@rc=0; \
	echo "== taskq-stress shared"; build/asan/tests/taskq-stress shared $(STRESS_TASKS) || rc=1; \
	echo "== taskq-stress mixed"; build/asan/tests/taskq-stress mixed $(STRESS_TASKS) || rc=1; \
	echo "== Criterion suite"; LSAN_OPTIONS="suppressions=$(CURDIR)/tests/asan/lsan.supp $(LSAN_OPTIONS)" \
		$(MAKE) --no-print-directory BUILD=build/asan SAN=asan test || rc=1; \
	exit $$rc

# ThreadSanitizer. The Criterion suite runs mostly separate processes, and
# TSan sees nothing across processes, so a stress program with many threads
# on one queue in one process (tests/tsan/stress.c) runs first: `shared`
# (all threads on one handle: exact) and `mixed` (some threads with their
# own handles). Any process in which TSan reports something exits 66. All
# three run even if one fails; the target fails if any did.
TSAN_OPTIONS_ALL := halt_on_error=0 exitcode=66 second_deadlock_stack=1 \
	suppressions=$(CURDIR)/tests/tsan/suppressions.txt $(TSAN_OPTIONS)
# They run without address-space randomization (setarch -R, util-linux):
# the TSan runtime of gcc 12 assumes a memory layout that the randomization
# of recent kernels (vm.mmap_rnd_bits) breaks now and then, as a crash at a
# wild address before any test code runs (google/sanitizers#1716).
NO_ASLR := $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)
test-tsan:
	$(MAKE) BUILD=build/tsan SAN=tsan build/tsan/tests/taskq-stress build/tsan/tests/taskq-tests
	@export TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)"; rc=0; \
	echo "== taskq-stress shared"; $(NO_ASLR) build/tsan/tests/taskq-stress shared $(STRESS_TASKS) || rc=1; \
	echo "== taskq-stress mixed"; $(NO_ASLR) build/tsan/tests/taskq-stress mixed $(STRESS_TASKS) || rc=1; \
	echo "== Criterion suite"; $(NO_ASLR) $(MAKE) --no-print-directory BUILD=build/tsan SAN=tsan test || rc=1; \
	exit $$rc
ifneq ($(SAN_OBJ),)
$(TEST_BIN) $(BENCH_BIN) $(CLI_BIN) $(DEMO_BIN) $(EXAMPLES) $(STRESS_BIN): $(SAN_OBJ)
$(SHARED): SAN_LINK :=
endif
$(STRESS_BIN): tests/tsan/stress.c include/taskq.h $(STATIC) | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL) $(LIBS)
$(BUILD)/san/%.o: tests/tsan/%.c | $(BUILD)/san
	$(CC) $(CFLAGS_ALL) -fPIC -c $< -o $@
$(BUILD)/san:
	mkdir -p $@
# Builds everything with clang as well, warnings as errors.
check-clang:
	$(MAKE) BUILD=build/clang CC=clang all build/clang/tests/taskq-tests build/clang/tests/taskq-stress

# ------------------------------------------------------------------ fuzzing
# Each fuzz/<target>.c is a libFuzzer target, built with clang,
# -fsanitize=fuzzer,address,undefined, against the library sources (and the
# command's sources it names in FUZZ_DEPS_<target>). `make fuzz` runs each
# for FUZZ_SECONDS from its seed corpus (fuzz/corpus/<target>, copied to
# build/fuzz/corpus/<target> so the repository is never written) and fails
# on any crash, leak, hang (-timeout) or sanitizer report.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/*.c))
FUZZ_FLAGS   := $(CSTD) $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -Iinclude -Isrc -Itools -Ifuzz -DTQ_FUZZ
FUZZ_DEPS_segment :=
FUZZ_LIBS_segment :=
FUZZ_DEPS_cli_input := tools/parse.c
FUZZ_LIBS_cli_input := -lcjson -lm
FUZZ_DEPS_http := tools/serve_parse.c
FUZZ_LIBS_http :=
FUZZ_DEPS_frame := tools/frame.c
FUZZ_LIBS_frame :=
$(FUZZ_BUILD)/%: fuzz/%.c $(wildcard fuzz/*.h) $(LIB_SRC) $(wildcard src/*.h) include/taskq.h $(wildcard tools/*.h) $(wildcard tools/*.c)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(FUZZ_DEPS_$*) $(FUZZ_LIBS_$*) $(LIBS)
fuzz: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))
	@rc=0; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		rm -rf $(FUZZ_BUILD)/corpus/$$t; mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/findings/$$t; \
		if [ -d fuzz/corpus/$$t ]; then cp fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ 2>/dev/null || true; fi; \
		$(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
			-artifact_prefix=$(FUZZ_BUILD)/findings/$$t/ -print_final_stats=1 \
			$(FUZZ_BUILD)/corpus/$$t || rc=1; \
	done; exit $$rc

# The table on stdout; CSV files in $(BUILD)/bench/csv, and charts of them
# (gnuplot, SVG) in $(BUILD)/bench/plots; BENCH_IMG=docs/img copies the
# charts there too, for BENCHMARKS.md (scripts/bench-plots.sh says which).
BENCH_PLOTS := $(BUILD)/bench/plots
BENCH_IMG ?=
bench: $(BENCH_BIN)
	$(BENCH_BIN) --csv $(BUILD)/bench/csv
	scripts/bench-plots.sh $(BUILD)/bench/csv $(BENCH_PLOTS)
	$(if $(BENCH_IMG),cp $(BENCH_PLOTS)/bench-throughput.svg $(BENCH_PLOTS)/bench-batch.svg $(BENCH_PLOTS)/bench-latency.svg $(BENCH_IMG)/)
# Needs nats-server (scripts/install-deps.sh); starts and stops its own.
# CSV in $(BUILD)/bench/cluster-csv, its chart in $(BUILD)/bench/plots.
bench-cluster: $(CLUSTER_BENCH_BIN) $(BRIDGE_BIN)
	$(CLUSTER_BENCH_BIN) --csv $(BUILD)/bench/cluster-csv
	scripts/bench-plots.sh $(BUILD)/bench/cluster-csv $(BENCH_PLOTS)
	$(if $(BENCH_IMG),cp $(BENCH_PLOTS)/bench-cluster.svg $(BENCH_IMG)/)
# Needs redis-server and python3-redis for its Redis rows (it starts and
# stops a private server on a Unix socket; without them it skips the rows).
BENCH_PYTHON_ARGS ?=
bench-python: $(SHARED)
	$(PY_ENV) $(PYTHON) bindings/python/bench.py $(BENCH_PYTHON_ARGS)

# make install: the programs, the libraries (static; shared with its soname
# and development links), the header, taskq.pc, the man pages and the bash
# completion (loaded by the bash-completion package for taskq and
# taskq-bridge). Then, with no DESTDIR, ldconfig if LIBDIR is a directory
# the dynamic loader searches, else a hint (scripts/ldconfig.sh).
# INSTALLED lists every file install makes; uninstall removes exactly those.
INSTALLED = $(BINDIR)/taskq $(BINDIR)/taskq-bridge $(INCLUDEDIR)/taskq.h \
	$(LIBDIR)/libtaskq.a $(LIBDIR)/libtaskq.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libtaskq.so \
	$(LIBDIR)/pkgconfig/taskq.pc $(MANDIR)/man1/taskq.1 $(MANDIR)/man1/taskq-bridge.1 $(MANDIR)/man3/taskq.3 \
	$(BASHCOMPDIR)/taskq $(BASHCOMPDIR)/taskq-bridge
install: lib $(CLI_BIN) $(BRIDGE_BIN) $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(CLI_BIN) $(BRIDGE_BIN) $(DESTDIR)$(BINDIR)/
	install -m 644 include/taskq.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sfn libtaskq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libtaskq.so
	$(PC_SUBST) taskq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/taskq.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/taskq.pc
	install -m 644 $(BUILD)/man/taskq.1 $(BUILD)/man/taskq-bridge.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(BUILD)/man/taskq.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 completions/taskq.bash $(DESTDIR)$(BASHCOMPDIR)/taskq
	ln -sfn taskq $(DESTDIR)$(BASHCOMPDIR)/taskq-bridge
	@scripts/ldconfig.sh install "$(DESTDIR)" "$(LIBDIR)"
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@scripts/ldconfig.sh uninstall "$(DESTDIR)" "$(LIBDIR)"

clean:
	rm -rf build
