#!/usr/bin/env bash
# `make bench` / `make bench-quick`: the end-to-end benchmark on the real broker
# (started here unless one runs). Writes bench/results/latest.json.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-quick}
exec ops/with-kafka.sh .venv/bin/python bench/run.py "$mode"
