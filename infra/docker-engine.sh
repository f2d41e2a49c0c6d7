#!/usr/bin/env bash
# A Docker engine for `make test-docker`: use the one that answers, or install Debian's docker.io and start
# dockerd in the background (log and pid file under .stack/docker/). `stop` stops only an engine this script
# started, by its pid file, so a developer's own engine is never touched.
#
#   infra/docker-engine.sh start   # prints "started" or "already running"
#   infra/docker-engine.sh stop    # no-op when this script did not start the engine
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.stack/docker
PIDF=$DIR/dockerd.pid
LOG=$DIR/dockerd.log

log() { echo "[docker-engine] $*" >&2; }
answers() { timeout 10 docker info >/dev/null 2>&1; }

install_engine() {
  command -v dockerd >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    || { log "dockerd is missing: sudo apt-get install -y docker.io"; exit 1; }
  log "installing docker.io (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
}

start() {
  if answers; then log "engine already running"; return 0; fi
  install_engine
  # A package install may start the engine itself (init scripts): then it is not ours to stop.
  if answers; then log "engine started by its package: left running"; return 0; fi
  mkdir -p "$DIR"
  log "starting dockerd (log: $LOG)"
  # setsid: the engine outlives this shell but is stopped by pid in `stop`.
  setsid dockerd --pidfile "$PWD/$DIR/dockerd.daemon.pid" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDF"
  local deadline=$((SECONDS + 60))
  until answers; do
    if ! kill -0 "$(cat "$PIDF")" 2>/dev/null; then tail -n 20 "$LOG" >&2; rm -f "$PIDF"; log "dockerd exited"; exit 1; fi
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOG" >&2; stop; log "dockerd did not answer within 60 s"; exit 1; }
    sleep 1
  done
  log "started (pid $(cat "$PIDF"))"
}

stop() {
  [ -f "$PIDF" ] || { log "not started by this script: left alone"; return 0; }
  local pid; pid=$(cat "$PIDF")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each, in parallel) and its own containerd first.
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "dockerd still running after 60 s: SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$PIDF"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
