#!/usr/bin/env bash
# Install promtool and the prometheus server (Debian's package) when promtool is
# missing; idempotent. `make test` runs it before pytest: the alert rules' unit
# tests and the Prometheus integration test need them (a missing one fails them).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool/prometheus are missing and there is no apt-get: install Prometheus 2.x" \
       "(promtool and prometheus on PATH) and rerun" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "== installing prometheus (promtool) with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends prometheus >/dev/null \
  || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends prometheus >/dev/null; }
# The package starts a system Prometheus service on :9090 where systemd runs; the
# tests start their own server and do not need it.
command -v promtool >/dev/null && command -v prometheus >/dev/null
