#!/usr/bin/env bash
# The seed's demo: a queue of 10,000 tasks, producers in batches of 64,
# consumers doing real work; Ctrl+C drains. `./run.sh --help` for options.
# On a machine without the build tools, installs them first (and says so).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1 ||
   ! [ -f /usr/include/cjson/cJSON.h ]; then
	echo "run.sh: the C compiler, make or cJSON is missing; installing them first" >&2
	./scripts/install-deps.sh
fi
make -s build/taskq-demo build/taskq >&2
exec build/taskq-demo "$@"
