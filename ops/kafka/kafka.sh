#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1, run from
# the official jars on Maven Central. No Docker, no tarball.
#
#   ops/kafka/kafka.sh up      resolve jars, format storage once, start, wait; last line: 127.0.0.1:PORT
#   ops/kafka/kafka.sh down    stop it; no java process of ours is left behind
#   ops/kafka/kafka.sh status  exit 0 when our broker is running and accepting connections
#   ops/kafka/kafka.sh ping    exit 0 when any broker accepts connections on the port
#   ops/kafka/kafka.sh logs    the broker's log
#   ops/kafka/kafka.sh reset   stop it and wipe its data
#
# Environment: C360_KAFKA_PORT (default 19092; the controller listens on PORT+1),
# C360_KAFKA_HOME (default <repo>/.c360/kafka: jars, config, data, log; git-ignored),
# C360_KAFKA_HEAP (default 512m), C360_KAFKA_START_TIMEOUT (seconds, default 90).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${C360_KAFKA_PORT:-19092}
controller_port=$((port + 1))
home=${C360_KAFKA_HOME:-$repo/.c360/kafka}
heap=${C360_KAFKA_HEAP:-512m}
timeout=${C360_KAFKA_START_TIMEOUT:-90}
lib=$home/lib
data=$home/data-$port
conf=$home/server-$port.properties
log=$home/kafka-$port.log
pidfile=$home/kafka-$port.pid

say() { echo "kafka: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

our_pid() {
  # The pid of our broker if it is alive (and really is our java process).
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$conf" || return 1
  echo "$pid"
}

resolve_jars() {
  local stamp=$lib/.pom.sha256 want
  want=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to fetch the Kafka jars"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is required to run Kafka"; exit 1; }
  say "resolving the Kafka jars from Maven Central into $lib"
  rm -rf "$lib"
  mkdir -p "$lib"
  if ! mvn -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$lib" >"$home/mvn.log" 2>&1; then
    say "Maven could not resolve the jars; see $home/mvn.log"
    tail -n 20 "$home/mvn.log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
}

render_config() {
  mkdir -p "$data"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$data|g" \
    "$here/server.properties.in" >"$conf"
}

format_storage() {
  [ -f "$data/meta.properties" ] && return
  local cid
  cid=$(java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$lib/*" kafka.tools.StorageTool random-uuid)
  say "formatting storage in $data (cluster $cid)"
  java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$lib/*" \
    kafka.tools.StorageTool format --standalone -t "$cid" -c "$conf" >/dev/null
}

up() {
  mkdir -p "$home"
  if pid=$(our_pid) && port_open "$port"; then
    say "already running (pid $pid)"
    echo "127.0.0.1:$port"
    return
  fi
  if port_open "$port"; then
    say "port $port is taken by another process; set C360_KAFKA_PORT to another port"
    exit 1
  fi
  resolve_jars
  render_config
  format_storage
  say "starting the broker on 127.0.0.1:$port (log: $log)"
  : >"$log"
  rm -f "$pidfile"
  # setsid: the broker outlives the make/pytest process that started it. The
  # child writes its own pid (setsid may fork), then becomes the JVM.
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
    java "-Xms128m" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info \
    -Dorg.slf4j.simpleLogger.log.kafka.server.BrokerServer=info \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$lib/*" kafka.Kafka "$conf" >>"$log" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
  local waited=0
  while :; do
    if ! our_pid >/dev/null; then
      say "the broker exited during start; last lines of $log:"
      tail -n 30 "$log" >&2
      exit 1
    fi
    if port_open "$port" && grep -q "Kafka Server started" "$log"; then break; fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
      say "not ready after ${timeout}s; last lines of $log:"
      tail -n 30 "$log" >&2
      say "a broker stopped uncleanly first recovers every partition it holds ($(du -sh "$data" 2>/dev/null | cut -f1) in $data):"
      say "give it longer with C360_KAFKA_START_TIMEOUT, or wipe its data with \`ops/kafka/kafka.sh reset\`"
      down
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  say "ready after $((waited / 10)).$((waited % 10))s"
  echo "127.0.0.1:$port"
}

down() {
  local pid
  if pid=$(our_pid); then
    say "stopping the broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 20s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    say "not running"
  fi
  # Nothing of ours may survive, even a broker whose pid file was lost.
  pkill -KILL -f -- "kafka.Kafka $conf" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    if pid=$(our_pid) && port_open "$port"; then echo "running (pid $pid) on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
  ping) port_open "$port" ;;
  logs) [ -f "$log" ] && cat "$log" || say "no log yet ($log)" ;;
  reset) down; rm -rf "$data" "$log"; say "data wiped" ;;
  *) echo "usage: $0 up|down|status|logs|reset" >&2; exit 2 ;;
esac
