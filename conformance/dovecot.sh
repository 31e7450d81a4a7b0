#!/usr/bin/env bash
# Debian's Dovecot IMAP server for the mail reminder's tests (tests/bridge.rs starts its own
# instances on loopback ports, each with a private configuration, users and mail; the system
# instance is never configured or started).
#
#   conformance/dovecot.sh install    installs dovecot-imapd from Debian when it is missing
set -euo pipefail

install_dovecot() {
  dpkg -s dovecot-imapd >/dev/null 2>&1 && return 0
  echo "installing dovecot-imapd from Debian" >&2
  # No service started by the package scripts (it would take ports 143 and 993).
  local prc=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made=1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd >&2
  if [ "$made" = 1 ]; then rm -f "$prc"; fi
}

case "${1:-}" in
  install) install_dovecot ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
