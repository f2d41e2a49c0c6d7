#!/usr/bin/env bash
# `make test-docker`: the Docker path checked for real on this machine.
#   1. a Docker engine (infra/docker-engine.sh: the one that answers, or docker.io started here),
#   2. debian:bookworm-slim (infra/debian-base.sh: pulled, or made with debootstrap),
#   3. every image built (timed), with the host's CA bundle handed in as BATON_BUILD_CA,
#   4. tests/docker: make all, the polyglot demo in containers, a worker restart, make stop / all / clean,
#   5. the testcontainers fallback of conftest.py: the stack smoke suite against the same images.
# Host ports 18080/19092/15432/16379 (loopback) and the compose project "batontest" keep clear of the
# native stack and of a developer's own `make all`. Stops only the engine it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

export BATON_PORT=${BATON_PORT:-18080} BATON_KAFKA_PORT=${BATON_KAFKA_PORT:-19092}
export BATON_PG_PORT=${BATON_PG_PORT:-15432} BATON_REDIS_PORT=${BATON_REDIS_PORT:-16379}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-batontest}
# Plain builds: docker.io 20.10 ships no buildx, and compose v1 builds through the engine's API.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PY=.venv/bin/python
start=$SECONDS

log() { echo "[test-docker] $*"; }
phase() { log "$1: $(($SECONDS - $2)) s"; }

# The CA bundle this machine's clients trust (pip's `cert` setting), unless one was given.
host_ca() {
  local ca=${BATON_BUILD_CA:-${PIP_CERT:-}}
  [ -n "$ca" ] || ca=$($PY -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.cert='\(.*\)'$/\1/p" | head -n 1)
  [ -n "$ca" ] && [ -s "$ca" ] && echo "$ca"
  return 0
}

started_engine=0
cleanup() {
  local rc=$?
  make --no-print-directory clean >/dev/null 2>&1 || true
  [ $started_engine = 0 ] || infra/docker-engine.sh stop || true
  log "total: $((SECONDS - start)) s (exit $rc)"
}
trap cleanup EXIT

t=$SECONDS
if ! timeout 10 docker info >/dev/null 2>&1; then
  infra/docker-engine.sh start
  started_engine=1
fi
infra/debian-base.sh
phase "engine and base image" $t

BATON_BUILD_CA=$(host_ca)
export BATON_BUILD_CA
[ -n "$BATON_BUILD_CA" ] && log "build CA: pip's cert bundle" || log "build CA: none"
if [ -n "$BATON_BUILD_CA" ]; then cp "$BATON_BUILD_CA" infra/docker/ca/extra-ca.pem; else rm -f infra/docker/ca/extra-ca.pem; fi
t=$SECONDS
if docker compose version >/dev/null 2>&1; then dc=(docker compose); else dc=(docker-compose); fi
"${dc[@]}" -f docker-compose.yml --profile all build
phase "image builds" $t
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(baton/|debian:bookworm-slim)' | sort

t=$SECONDS
# From zero: containers and volumes a killed earlier run may have left (restart: unless-stopped).
make --no-print-directory clean >/dev/null
.venv/bin/pytest -q -p no:cacheprovider tests/docker
phase "make all scenario (tests/docker)" $t

# The testcontainers fallback: no BATON_* service addresses, an engine answers -> conftest starts containers.
t=$SECONDS
env -u BATON_KAFKA_BOOTSTRAP_SERVERS -u BATON_DATABASE_URL -u BATON_REDIS_URL TESTCONTAINERS_RYUK_DISABLED=true \
  .venv/bin/pytest -q -p no:cacheprovider tests/test_stack_smoke.py
phase "stack smoke suite through testcontainers" $t
