#!/usr/bin/env bash
# Makes the base image every Baton Dockerfile starts FROM, debian:bookworm-slim, when the engine has none:
# pulls it when a registry answers, otherwise builds it locally with debootstrap from the Debian mirror
# that this machine's apt is configured with (read from /etc/apt/sources.list{,.d/*} at run time).
#
#   infra/debian-base.sh          # a no-op when the image exists
set -euo pipefail

IMAGE=${BATON_BASE_IMAGE:-debian:bookworm-slim}
SUITE=bookworm

log() { echo "[debian-base] $*" >&2; }

# The first http(s) URI of a Debian (not -security) repository in the apt sources, one-line or deb822 format.
apt_mirror() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  local existing=() f
  for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
  [ ${#existing[@]} -gt 0 ] || return 1
  grep -hoE '^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?|URIs:[[:space:]]*)https?://[^[:space:]]+' "${existing[@]}" \
    | grep -oE 'https?://[^[:space:]]+' | grep -v -- '-security' | head -n 1
}

bootstrap() {
  command -v debootstrap >/dev/null 2>&1 || {
    [ "$(id -u)" = 0 ] || { log "debootstrap is missing: sudo apt-get install -y debootstrap"; exit 1; }
    log "installing debootstrap (apt-get)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  local mirror
  mirror=$(apt_mirror) || { log "no Debian mirror found in the apt sources"; exit 1; }
  root=$(mktemp -d)  # global: the EXIT trap removes it
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase $SUITE from the apt mirror (about a minute)"
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  slim "$root"
  tar --numeric-owner -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
  log "imported $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
}

# What the official slim image leaves out: docs, man pages, locales, apt caches and package lists.
slim() {
  local root=$1
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/var/log/*.log "$root"/var/log/apt/*
  # As in the official image: no recommends, no docs from later installs, no kept .debs.
  cat >"$root/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE present"
  exit 0
fi
if timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
  log "pulled $IMAGE"
  exit 0
fi
log "cannot pull $IMAGE: building it locally"
bootstrap
