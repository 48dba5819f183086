#!/usr/bin/env bash
# A cluster of pushlane nodes on this machine, started and stopped cleanly:
#
#   deploy/cluster.sh start [N]   start N nodes (default 3) and wait until each is healthy
#   deploy/cluster.sh status      which nodes run
#   deploy/cluster.sh stop        SIGTERM each node, wait for its drain, remove its pid file
#
# Node i listens on 127.0.0.1:$((BASE_PORT + i)) (BASE_PORT 8080: nodes on 8081, 8082, ...), all
# with store.driver and broker.driver redis on $PUSH_REDIS_ADDR (default 127.0.0.1:6379). Other
# PUSH_* variables in the environment apply to every node. The binary is ./pushlane (build it
# with: go build -o pushlane .) or $PUSHLANE_BIN; pid files and logs go to $CLUSTER_DIR (default
# .cluster). Nodes run the built binary, never `go run`: stopping `go run` would leave the server
# it started running.
set -euo pipefail

bin=${PUSHLANE_BIN:-./pushlane}
dir=${CLUSTER_DIR:-.cluster}
base=${BASE_PORT:-8080}

start() {
  local n=${1:-3}
  if [ ! -x "$bin" ]; then
    echo "cluster.sh: no executable $bin; build it first: go build -o pushlane ." >&2
    exit 1
  fi
  mkdir -p "$dir"
  for i in $(seq 1 "$n"); do
    local pidfile=$dir/node$i.pid addr=127.0.0.1:$((base + i))
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "node$i already runs (pid $(cat "$pidfile"))"
      continue
    fi
    PUSH_SERVER_ADDR=$addr PUSH_STORE_DRIVER=redis PUSH_BROKER_DRIVER=redis \
      nohup "$bin" >"$dir/node$i.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  done
  for i in $(seq 1 "$n"); do
    local url=http://127.0.0.1:$((base + i))/healthz ok=0
    for _ in $(seq 1 100); do
      if "$bin" healthcheck --url "$url" >/dev/null 2>&1; then ok=1; break; fi
      if ! kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if [ "$ok" != 1 ]; then
      echo "cluster.sh: node$i is not healthy on $url; its log:" >&2
      tail -5 "$dir/node$i.log" >&2
      stop
      exit 1
    fi
    echo "node$i  pid $(cat "$dir/node$i.pid")  http://127.0.0.1:$((base + i))"
  done
}

stop() {
  shopt -s nullglob
  for pidfile in "$dir"/node*.pid; do
    local pid name
    pid=$(cat "$pidfile")
    name=$(basename "$pidfile" .pid)
    if kill -TERM "$pid" 2>/dev/null; then
      # The drain takes up to server.shutdownTimeout (10s by default).
      for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "$name (pid $pid) did not stop within 15s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "$name stopped"
    fi
    rm -f "$pidfile"
  done
}

status() {
  shopt -s nullglob
  for pidfile in "$dir"/node*.pid; do
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      echo "$(basename "$pidfile" .pid)  pid $pid  running"
    else
      echo "$(basename "$pidfile" .pid)  pid $pid  not running"
    fi
  done
}

case ${1:-} in
  start) start "${2:-3}" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: deploy/cluster.sh start [N] | status | stop" >&2; exit 2 ;;
esac
