#!/usr/bin/env bash
# A real OpenID Provider on 127.0.0.1 for the OIDC tests: panva's oidc-provider (npm, OpenID
# Certified), pinned by conformance/oidc/package-lock.json and installed into the cache.
#
#   conformance/oidc.sh install            install Node.js (Debian) if missing, and the provider
#   conformance/oidc.sh start DIR PORT     start one; prints OIDC_ISSUER=..., OIDC_PID=...
#   conformance/oidc.sh stop DIR           stop the one started in DIR (by its PID)
#
# start reads OIDC_REDIRECT_URIS, OIDC_POST_LOGOUT_URIS, OIDC_ACCESS_TOKEN_TTL and OIDC_TAMPER
# from the environment (see conformance/oidc/server.mjs). The client is convene /
# convene-secret; people olivia, carol and mallory, password NAME-pass.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_DIR="${CONVENE_CACHE_DIR:-$HOME/.cache/convene-conformance}"
APP="$CACHE_DIR/oidc-provider"

install() {
  if ! command -v npm >/dev/null; then
    echo "installing Node.js from Debian" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
  fi
  mkdir -p "$APP"
  local want
  want="$(cat "$HERE/oidc/package.json" "$HERE/oidc/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$APP/.stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$APP/node_modules/oidc-provider" ]; then
    cp "$HERE/oidc/package.json" "$HERE/oidc/package-lock.json" "$APP/"
    (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$want" > "$APP/.stamp"
  fi
}

start() {
  local dir="$1" port="$2"
  [ -d "$APP/node_modules/oidc-provider" ] || install
  mkdir -p "$dir"
  # The server imports from node_modules, so it runs from the cache; each start gets its copy.
  local script="$APP/server-$port.mjs"
  cp "$HERE/oidc/server.mjs" "$script"
  OIDC_PORT="$port" NODE_ENV=production nohup node "$script" >"$dir/oidc.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/oidc.pid"
  local issuer="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$issuer/.well-known/openid-configuration" 2>/dev/null; then
      echo "OIDC_ISSUER=$issuer"
      echo "OIDC_PID=$pid"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the OpenID provider exited:" >&2
      cat "$dir/oidc.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "the OpenID provider did not answer in 15 s" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

stop() {
  local dir="$1" pid
  pid="$(cat "$dir/oidc.pid" 2>/dev/null)" || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/oidc.pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?DIR}" "${3:?PORT}" ;;
  stop) stop "${2:?DIR}" ;;
  *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
