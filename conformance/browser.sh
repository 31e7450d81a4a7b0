#!/usr/bin/env bash
# The browser flows (conformance/browser/flows.mjs) in headless Chromium from Debian, driven by
# playwright-core from npm: OIDC sign-in through a real provider (conformance/oidc.sh), app
# passwords on the account page, Login Flow v2, sign-out. Installs what is missing.
# Last line: "browser: N passed, M failed".
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium from Debian" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
fi
conformance/oidc.sh install
APP="$CACHE_DIR/browser"
mkdir -p "$APP"
want="$(cat conformance/browser/package.json conformance/browser/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$APP/.stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$APP/node_modules/playwright-core" ]; then
  cp conformance/browser/package.json conformance/browser/package-lock.json "$APP/"
  (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$want" >"$APP/.stamp"
fi
# It imports playwright-core, so it runs beside node_modules.
cp conformance/browser/flows.mjs "$APP/flows.mjs"

OIDC_DIR="$(mktemp -d)"
cleanup() {
  stop_convene
  conformance/oidc.sh stop "$OIDC_DIR"
  rm -rf "$OIDC_DIR" "${CONVENE_WORK:-/nonexistent}"
}
trap cleanup EXIT

port="$(free_port)"
oidc_env="$(OIDC_REDIRECT_URIS="http://127.0.0.1:$port/auth/callback" \
  OIDC_POST_LOGOUT_URIS="http://127.0.0.1:$port/login" \
  conformance/oidc.sh start "$OIDC_DIR" "$(free_port)")" || { echo "browser: 0 passed, 1 failed (provider)"; exit 1; }
issuer="$(printf '%s\n' "$oidc_env" | sed -n 's/^OIDC_ISSUER=//p')"
cat >"$OIDC_DIR/convene.toml" <<TOML
[oidc]
issuer = "$issuer"
client_id = "convene"
client_secret = "convene-secret"
redirect_url = "http://127.0.0.1:$port/auth/callback"
post_logout_redirect_url = "http://127.0.0.1:$port/login"
TOML
CONVENE_PORT="$port" CONVENE_CONFIG="$OIDC_DIR/convene.toml" start_convene alice alice-pw

CONVENE_URL="$CONVENE_URL" timeout 300 node "$APP/flows.mjs"
