#!/usr/bin/env bash
# `make test`: ruff, then every test (unit, simulation, integration on the real
# broker). Starts the broker when none is running and stops the one it started.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CI=${CI:-}
echo "== ruff"
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
echo "== promtool and prometheus"
ops/install-prometheus.sh || exit 1
echo "== tests"
exec ops/with-kafka.sh .venv/bin/pytest -q -p no:cacheprovider --durations=15 "$@"
