#!/usr/bin/env bash
# Native development processes on top of the stack (infra/stack.sh):
#   infra/dev.sh start   orchestrator + one example worker per language, in the background
#   infra/dev.sh demo    start, then define and run the polyglot demo and print its result and span tree
# Pids and logs live in $BATON_STACK_DIR/run/ (default .stack/run); `make down` stops them by pid file.
# Every process writes its spans under $BATON_TRACE_DIR (default .stack/traces): `baton trace RUN_ID`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STACK_DIR="${BATON_STACK_DIR:-$ROOT/.stack}"
RUN_DIR="$STACK_DIR/run"
PORT="${BATON_PORT:-8080}"
export BATON_API_URL="${BATON_API_URL:-http://127.0.0.1:$PORT}"
eval "$(infra/stack.sh env)"
export BATON_KAFKA_BOOTSTRAP_SERVERS BATON_DATABASE_URL BATON_REDIS_URL
export BATON_TRACE_DIR="${BATON_TRACE_DIR:-$STACK_DIR/traces}"

log() { printf '[dev] %s\n' "$*"; }

start_bg() {
  local name="$1"; shift
  local pidf="$RUN_DIR/$name.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "$name already running (pid $(cat "$pidf"))"; return 0
  fi
  mkdir -p "$RUN_DIR"
  # The child writes its own pid before exec, so the pid file names the real process.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" </dev/null >>"$RUN_DIR/$name.log" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidf" ] && break; sleep 0.1; done
  log "$name started (pid $(cat "$pidf"), log $RUN_DIR/$name.log)"
}

wait_http() {
  local url="$1" i
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "ERROR: $url did not answer within 60 s; last lines of the orchestrator log:" >&2
  tail -n 30 "$RUN_DIR/orchestrator.log" >&2 || true
  exit 1
}

cmd_start() {
  infra/stack.sh up >/dev/null
  start_bg orchestrator .venv/bin/baton server --port "$PORT"
  wait_http "$BATON_API_URL/health"
  start_bg worker-python .venv/bin/python examples/python/worker.py
  start_bg worker-node node examples/node/worker.mjs
  start_bg worker-java mvn -q -B -f examples/java/pom.xml compile exec:java
  log "API: $BATON_API_URL (OpenAPI docs at $BATON_API_URL/docs); stop everything with: make down"
}

cmd_demo() {
  cmd_start
  .venv/bin/baton apply examples/workflows/my-first-workflow.yaml examples/workflows/polyglot-demo.yaml
  log "running the polyglot demo (Python -> Node || Java -> Python); follow it live at $BATON_API_URL/ui/ ..."
  local run_id rc=0
  run_id="$(.venv/bin/baton trigger polyglot-demo --input "$(cat examples/workflows/demo-input.json)" --output json |
    .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')"
  .venv/bin/baton runs watch "$run_id" --timeout 120 || rc=$?
  show_trace "$run_id"
  log "open the API docs at $BATON_API_URL/docs; see workers at $BATON_API_URL/workers"
  return "$rc"
}

# The run's span tree, once every process has flushed its spans (they export about every second).
show_trace() {
  local run_id="$1" out i
  log "the run's trace (baton trace $run_id, spans under $BATON_TRACE_DIR):"
  for ((i = 0; i < 30; i++)); do
    out="$(.venv/bin/baton trace "$run_id" 2>/dev/null)" || true
    if grep -q baton-worker-node <<<"$out" && grep -q baton-worker-java <<<"$out" &&
      grep -q "baton.result report" <<<"$out"; then
      break
    fi
    sleep 0.5
  done
  .venv/bin/baton trace "$run_id" || true
}

case "${1:-}" in
  start) cmd_start ;;
  demo) cmd_demo ;;
  *) echo "usage: $0 start|demo" >&2; exit 2 ;;
esac
