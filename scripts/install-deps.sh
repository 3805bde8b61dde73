#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages taskq needs to build, test and run.
# Safe to run again; does nothing when everything is present.
set -euo pipefail
PKGS=(build-essential clang pkg-config libcriterion-dev libcjson-dev libmicrohttpd-dev libcurl4-openssl-dev libncurses-dev)
# The bridge between machines: the NATS C client (JetStream API), and the
# server the bridge tests start on loopback.
PKGS+=(libnats-dev nats-server)
# Sanitizer runtimes: gcc's (libasan8, libubsan1, libtsan2) come with
# build-essential; clang's are only "recommended" by clang, which
# --no-install-recommends skips, so `make test-tsan CC=clang` needs this.
PKGS+=(libclang-rt-dev)
# Man pages: scdoc turns docs/man/*.scd into roff at build time; groff
# (groff-base) renders them in the tests.
PKGS+=(scdoc groff-base)
# The Python binding (bindings/python): Debian's python3 and pytest run its
# tests in make test; setuptools, pip and wheel install it offline
# (pip install --no-build-isolation); redis-server and redis-py are the
# Redis rows of make bench-python.
PKGS+=(python3 python3-pytest python3-pytest-timeout python3-setuptools python3-pip python3-wheel python3-redis redis-server)
# HTTPS for taskq serve: libmicrohttpd's TLS is GnuTLS, which taskq serve
# also calls to check --tls-cert and --tls-key before it listens; openssl
# makes the self-signed certificates of the TLS tests (and of the recipe in
# docs/http.md).
PKGS+=(libgnutls28-dev openssl)
# make bench's charts: gnuplot draws the CSV files of taskq-bench --csv as
# SVG (gnuplot-nox: no X needed); the bench test checks the charts.
PKGS+=(gnuplot-nox)
# The dashboard's browser test (tests/test_web.c): headless Chromium, driven
# through its DevTools protocol by a script run with Debian's python3 and
# its websocket client.
PKGS+=(chromium python3-websocket)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "taskq: installing ${missing[*]} (build tools and sanitizer runtimes; Criterion for the tests; cJSON, libmicrohttpd, GnuTLS, libcurl and ncurses for the taskq command; openssl for the TLS tests' certificates; gnuplot for make bench's charts; the NATS client and server for the bridge; scdoc for the man pages; python3, pytest, pytest-timeout, setuptools, pip and redis for the Python binding, its tests (pytest-timeout bounds each) and benchmark; Chromium and python3-websocket for the dashboard's browser test)" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
