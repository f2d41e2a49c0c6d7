#!/usr/bin/env bash
# System packages the test suites need and pip/npm/Maven cannot bring: Redis and PostgreSQL (the native
# stack), Debian's docker-compose (validates docker-compose.yml without an engine) and Debian's chromium
# (the dashboard's browser tests drive it with Playwright; Playwright's own browser download is never used). Run by `make setup`:
# installs what is missing when root with apt, otherwise names the command to run. A no-op when all exist.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[deps] installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  # --no-install-recommends: docker-compose would otherwise pull in the whole Docker engine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "[deps] missing: ${missing[*]}. Install with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
