#!/usr/bin/env bash
# The browser flows (conformance/browser/flows.mjs) in headless Chromium from Debian, driven by
# playwright-core from npm: OIDC sign-in through a real provider (conformance/oidc.sh), app
# passwords on the account page, Login Flow v2, opening a form-login business system through
# the login proxy (the HR app of conformance/peers), sign-out. Installs what is missing.
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
HR_PID=""
cleanup() {
  stop_convene
  conformance/oidc.sh stop "$OIDC_DIR"
  if [ -n "$HR_PID" ]; then
    kill "$HR_PID" 2>/dev/null || true
    wait "$HR_PID" 2>/dev/null || true
  fi
  rm -rf "$OIDC_DIR" "${CONVENE_WORK:-/nonexistent}"
}
trap cleanup EXIT

# A business system with a form login (conformance/peers/hr_app.py, Flask from the venv) for
# the login proxy's flow, and the vault that keeps the person's HR password.
python_env
hr_port="$(free_port)"
printf '{"aanderson": {"password": "Hr!alice-2024", "name": "Alice Anderson", "employee": 10001, "leave": 23, "net": 4200}}' \
  >"$OIDC_DIR/hr-accounts.json"
"$VENV/bin/python" conformance/peers/hr_app.py "$hr_port" "$OIDC_DIR/hr-accounts.json" >"$OIDC_DIR/hr.log" 2>&1 &
HR_PID=$!
for _ in $(seq 1 200); do
  curl -fsS -o /dev/null "http://127.0.0.1:$hr_port/healthz" 2>/dev/null && break
  sleep 0.05
done
(umask 077; printf 'k1 %s\n' "$(openssl rand -hex 32)" >"$OIDC_DIR/vault.keys")

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

[vault]
key_file = "$OIDC_DIR/vault.keys"

[bridge]
apps_url = "http://{system}.apps.localhost:$port"

[[systems]]
name = "hr"
label = "ExampleHR"
url = "http://127.0.0.1:$hr_port/"
login = "form"
[systems.form]
login_path = "/login"
TOML
CONVENE_PORT="$port" CONVENE_CONFIG="$OIDC_DIR/convene.toml" start_convene alice alice-pw

CONVENE_URL="$CONVENE_URL" timeout 300 node "$APP/flows.mjs"
