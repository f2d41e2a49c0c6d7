#!/usr/bin/env bash
# Native local stack for Baton: Kafka (KRaft, jars from Maven Central), PostgreSQL and Redis.
#   infra/stack.sh up | down | status | env
# Everything lives under $BATON_STACK_DIR (default <repo>/.stack). `down` stops only what `up`
# started, by pid file, never by process name, so it cannot touch another project's servers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
STACK_DIR="${BATON_STACK_DIR:-$ROOT/.stack}"
KAFKA_PORT="${BATON_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${BATON_KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${BATON_PG_PORT:-5432}"
REDIS_PORT="${BATON_REDIS_PORT:-6379}"
WAIT_SECONDS="${BATON_STACK_WAIT:-60}"
KAFKA_HEAP="${BATON_KAFKA_HEAP:-512m}"
# The JVM's default tiered compilation (C2): once warm, the broker spends 25-30 % less CPU per step than
# with C1 only (quiet-machine A/B, bench/README.md "Kafka at low load"); C2 compiles for a few minutes
# after each start. BATON_KAFKA_JVM_OPTS="-XX:+UseG1GC -XX:TieredStopAtLevel=1" trades that back.
KAFKA_JVM_OPTS="-XX:+UseG1GC"
PG_DB=baton

log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as the PostgreSQL owner: initdb refuses to run as root.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
  return 1
}

# Install a missing Debian package when we can (root + apt), otherwise say exactly what to run.
need_pkg() {
  local binary_ok="$1" pkg="$2"
  if eval "$binary_ok"; then return 0; fi
  if is_root && command -v apt-get >/dev/null 2>&1; then
    log "installing $pkg (apt-get)"
    if ! apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq "$pkg" >/dev/null || die "apt-get install $pkg failed"
    fi
    eval "$binary_ok" && return 0
  fi
  die "$pkg is missing. Install it with: sudo apt-get update && sudo apt-get install -y $pkg"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() {
  local f="$1"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_for() {
  local name="$1" check="$2" logfile="$3" i
  for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
    if eval "$check"; then return 0; fi
    sleep 0.2
  done
  printf '[stack] ERROR: %s did not answer within %ss. Last lines of %s:\n' "$name" "$WAIT_SECONDS" "$logfile" >&2
  tail -n 30 "$logfile" >&2 || true
  exit 1
}

# ---------------------------------------------------------------- Kafka
kafka_lib() {
  local lib="$STACK_DIR/kafka-lib" stamp
  stamp="$(sha256sum "$INFRA/pom.xml" | cut -c1-16)"
  if [ -f "$lib/.stamp" ] && [ "$(cat "$lib/.stamp")" = "$stamp" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn is missing. Install it with: sudo apt-get install -y maven"
  command -v java >/dev/null 2>&1 || die "java is missing. Install a Java 17 JDK (sudo apt-get install -y openjdk-17-jdk-headless)"
  log "resolving Kafka broker jars from Maven Central (first run only)"
  rm -rf "$lib"
  mvn -q -B -f "$INFRA/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$STACK_DIR/kafka-mvn.log" 2>&1 \
    || { tail -n 30 "$STACK_DIR/kafka-mvn.log" >&2; die "could not resolve the Kafka jars"; }
  echo "$stamp" >"$lib/.stamp"
}

# The broker's JVM command line (the tools' too). BATON_KAFKA_JVM_OPTS replaces the JIT/GC options
# (word list); BATON_KAFKA_REQUEST_LOG=1 logs every request to kafka-requests.log for
# bench/kafka_requests.py (it costs broker CPU: for counting, not for measuring).
kafka_java_cmd() {
  # shellcheck disable=SC2206  # BATON_KAFKA_JVM_OPTS is a word list
  local opts=(${BATON_KAFKA_JVM_OPTS-$KAFKA_JVM_OPTS}) level=WARN
  [ "${BATON_KAFKA_REQUEST_LOG:-0}" = 1 ] && level=DEBUG
  KAFKA_CMD=(java -Xms128m "-Xmx$KAFKA_HEAP" "${opts[@]}" -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$INFRA/log4j2.properties" "-Dbaton.kafka.log=$STACK_DIR/kafka.log"
    "-Dbaton.kafka.request.level=$level" "-Dbaton.kafka.request.log=$STACK_DIR/kafka-requests.log"
    -cp "$STACK_DIR/kafka-lib/*")
}

kafka_java() {
  kafka_java_cmd
  "${KAFKA_CMD[@]}" "$@"
}

kafka_up() {
  local pidf="$STACK_DIR/kafka.pid" data="$STACK_DIR/kafka-data" props="$STACK_DIR/server.properties"
  if pid_alive "$pidf"; then log "kafka already running (pid $(cat "$pidf"))"; return 0; fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process this stack did not start"
  kafka_lib
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      -e "s#@DATA_DIR@#$data#g" "$INFRA/server.properties.in" >"$props"
  if [ ! -f "$data/meta.properties" ]; then
    log "formatting Kafka storage in $data"
    mkdir -p "$data"
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$STACK_DIR/kafka.log")"
    kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$props" \
      >>"$STACK_DIR/kafka.log" 2>&1 || { tail -n 20 "$STACK_DIR/kafka.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  # The child writes its own pid before exec'ing java, so the pid file names the broker itself.
  kafka_java_cmd
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" \
    "${KAFKA_CMD[@]}" kafka.Kafka "$props" </dev/null >>"$STACK_DIR/kafka.out" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidf" ] && break; sleep 0.1; done
}

# ------------------------------------------------------------ PostgreSQL
pg_up() {
  local bin pgdata="$STACK_DIR/pg" sock="$STACK_DIR/pg-sock" pgl="$STACK_DIR/postgres.log"
  need_pkg "pg_bin_dir >/dev/null" postgresql
  bin="$(pg_bin_dir)"
  if [ -f "$pgdata/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    log "postgres already running"; return 0
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by a process this stack did not start"
  mkdir -p "$pgdata" "$sock"
  touch "$pgl"
  if is_root; then chown postgres: "$pgdata" "$sock" "$pgl"; fi
  chmod 700 "$pgdata"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "initdb in $pgdata"
    as_pg "$bin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STACK_DIR/initdb.log" 2>&1 \
      || { tail -n 20 "$STACK_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  log "starting postgres on 127.0.0.1:$PG_PORT"
  # pg_stat_statements (shipped with Debian's postgresql) lets `make bench` report per-statement cost.
  local extra=""
  [ -f "$("$bin/pg_config" --pkglibdir 2>/dev/null)/pg_stat_statements.so" ] \
    && extra="-c shared_preload_libraries=pg_stat_statements"
  as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgl" -w -t "$WAIT_SECONDS" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $sock -c max_connections=200 -c fsync=on -c synchronous_commit=on $extra" \
    start >/dev/null || { tail -n 30 "$pgl" >&2; die "postgres failed to start"; }
  # The postmaster's own pid file is the pid file `down` uses.
}

pg_ensure_db() {
  local bin sock="$STACK_DIR/pg-sock"
  bin="$(pg_bin_dir)"
  if ! as_pg "$bin/psql" -h "$sock" -p "$PG_PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" postgres | grep -q 1; then
    as_pg "$bin/createdb" -h "$sock" -p "$PG_PORT" -U postgres "$PG_DB"
  fi
}

pg_ready() {
  "$(pg_bin_dir)/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q
}

# ----------------------------------------------------------------- Redis
redis_up() {
  local pidf="$STACK_DIR/redis.pid"
  need_pkg "command -v redis-server >/dev/null" redis-server
  if pid_alive "$pidf"; then log "redis already running (pid $(cat "$pidf"))"; return 0; fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process this stack did not start"
  mkdir -p "$STACK_DIR/redis"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STACK_DIR/redis" \
    --daemonize yes --pidfile "$pidf" --logfile "$STACK_DIR/redis.log" --save "" --appendonly no \
    || die "redis-server failed to start"
}

redis_ready() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
  else
    port_open "$REDIS_PORT"
  fi
}

# ------------------------------------------------------------- commands
stop_pidfile() {
  local name="$1" pidf="$2" pid i
  if ! pid_alive "$pidf"; then rm -f "$pidf"; return 0; fi
  pid="$(cat "$pidf")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 15 s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidf"
}

cmd_up() {
  mkdir -p "$STACK_DIR"
  # Start all three first, then wait: the broker's JVM start overlaps with the others.
  redis_up
  pg_up
  kafka_up
  wait_for redis redis_ready "$STACK_DIR/redis.log"
  wait_for postgres pg_ready "$STACK_DIR/postgres.log"
  pg_ensure_db
  wait_for kafka "port_open $KAFKA_PORT" "$STACK_DIR/kafka.log"
  log "stack is up"
  cmd_env
}

cmd_down() {
  local bin
  # App processes `make dev` started are stopped first (each has a pid file under run/).
  if [ -d "$STACK_DIR/run" ]; then
    for f in "$STACK_DIR"/run/*.pid; do [ -e "$f" ] && stop_pidfile "$(basename "$f" .pid)" "$f"; done
  fi
  stop_pidfile kafka "$STACK_DIR/kafka.pid"
  stop_pidfile redis "$STACK_DIR/redis.pid"
  if [ -f "$STACK_DIR/pg/postmaster.pid" ] && bin="$(pg_bin_dir)"; then
    log "stopping postgres"
    as_pg "$bin/pg_ctl" -D "$STACK_DIR/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  log "stack is down"
}

state() { if eval "$2"; then printf '  %-9s up    %s\n' "$1" "$3"; else printf '  %-9s down  %s\n' "$1" "$3"; fi; }

cmd_status() {
  echo "Baton stack ($STACK_DIR):"
  state kafka "pid_alive '$STACK_DIR/kafka.pid' && port_open $KAFKA_PORT" "127.0.0.1:$KAFKA_PORT"
  state postgres "pg_bin_dir >/dev/null && [ -f '$STACK_DIR/pg/postmaster.pid' ] && pg_ready" "127.0.0.1:$PG_PORT/$PG_DB"
  state redis "pid_alive '$STACK_DIR/redis.pid' && redis_ready" "127.0.0.1:$REDIS_PORT"
  if [ -d "$STACK_DIR/run" ]; then
    for f in "$STACK_DIR"/run/*.pid; do
      [ -e "$f" ] && state "$(basename "$f" .pid)" "pid_alive '$f'" "log: $STACK_DIR/run/$(basename "$f" .pid).log"
    done
  fi
  echo
  cmd_env
}

cmd_env() {
  echo "export BATON_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
  echo "export BATON_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export BATON_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
