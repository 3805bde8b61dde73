#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The seed's demo: a queue of 10,000 tasks, producers in batches of 64,
# consumers doing real work; Ctrl+C drains. `./run.sh --help` for options.
# Installs whatever Debian packages are missing first (and says which and
# why), then builds what changed, then runs.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
make -s build/taskq-demo build/taskq >&2
exec build/taskq-demo "$@"
