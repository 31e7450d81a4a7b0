#!/usr/bin/env bash
# Debian packages that tests/bridge.rs and benches/proxy.rs start as real peers on loopback
# ports, each instance with a private configuration: nginx (HTTP Basic systems, the
# auth_request front, the benchmark's reverse proxy), Caddy (the forward_auth front) and
# Dovecot (the mail reminder's IMAP server). The system instances are never configured or
# started: the package scripts are kept from starting services (they would take ports 80,
# 143, 993).
#
#   conformance/debian-peers.sh install    installs whichever of them is missing
set -euo pipefail

PACKAGES=(nginx caddy dovecot-imapd)

install_missing() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  echo "installing ${missing[*]} from Debian" >&2
  local prc=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made=1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "$made" = 1 ]; then rm -f "$prc"; fi
}

case "${1:-}" in
  install) install_missing ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
