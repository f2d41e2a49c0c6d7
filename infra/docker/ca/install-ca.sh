#!/bin/sh
# Trusts an extra certificate authority during image builds (BATON_BUILD_CA, for a TLS-intercepting proxy):
# `make` copies the given PEM bundle to infra/docker/ca/extra-ca.pem (git-ignored); without it this is a
# no-op. Each certificate becomes its own file, so update-ca-certificates adds all of them to the system
# bundle (read by pip through PIP_CERT, by npm through its cafile) and Debian's Java hook to Java's cacerts.
set -eu
dir=$(dirname "$0")
bundle=$dir/extra-ca.pem
if [ -s "$bundle" ]; then
  mkdir -p /usr/local/share/ca-certificates/baton
  awk -v out=/usr/local/share/ca-certificates/baton/extra- '
    /-----BEGIN CERTIFICATE-----/ { n++; file = sprintf("%s%03d.crt", out, n) }
    file { print > file }
    /-----END CERTIFICATE-----/ { close(file); file = "" }' "$bundle"
  update-ca-certificates >/dev/null 2>&1
fi
rm -rf "$dir"
