#!/usr/bin/env bash
# `make demo`: the broker (started here unless one runs), then `c360 demo`, which
# starts a worker, streams a sample population and prints what c360 made of it.
# Ctrl-C stops everything this started.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export C360_DATA_DIR=${C360_DATA_DIR:-.c360/demo}
export C360_API_KEY=${C360_API_KEY:-demo-key}
exec ops/with-kafka.sh .venv/bin/c360 demo "$@"
