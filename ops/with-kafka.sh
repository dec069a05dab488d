#!/usr/bin/env bash
# Run a command with the local Kafka broker up: start it when none is running,
# and stop the one we started when the command ends (also when it fails).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka=$here/kafka/kafka.sh
started=0
if "$kafka" ping; then
  # A broker already answers on the port (ours, or one from another checkout): use it.
  bootstrap=127.0.0.1:${C360_KAFKA_PORT:-19092}
  echo "kafka: using the broker already running on $bootstrap" >&2
else
  bootstrap=$("$kafka" up | tail -n 1) || { echo "could not start Kafka" >&2; exit 1; }
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then "$kafka" down; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export C360_KAFKA_BOOTSTRAP=${C360_KAFKA_BOOTSTRAP:-$bootstrap}
"$@"
