# Shared helpers for the conformance scripts: build the binary, start a throwaway Convene on a
# loopback port below 32768 with a fresh SQLite store and one user, stop it by its PID.
# Source this file; it never touches a process it did not start.

set -euo pipefail

CONFORMANCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$CONFORMANCE_DIR/.." && pwd)"
CACHE_DIR="${CONVENE_CACHE_DIR:-$HOME/.cache/convene-conformance}"
VENV="$CACHE_DIR/venv"

convene_bin() {
  local target="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
  (cd "$REPO_DIR" && cargo build --quiet --bin convene >&2)
  echo "$target/debug/convene"
}

free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 31999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        s.close()
        print(p)
        break
    except OSError:
        pass
PY
}

# python_env: a venv with the pinned suites from conformance/requirements.txt.
python_env() {
  mkdir -p "$CACHE_DIR"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha"
  local want
  want="$(sha256sum "$CONFORMANCE_DIR/requirements.txt" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$CONFORMANCE_DIR/requirements.txt" >&2
    echo "$want" > "$stamp"
  fi
}

# start_convene USER PASSWORD: sets CONVENE_URL, CONVENE_PID, CONVENE_WORK. Each user's email (their
# calendar-user address) is USER@example.org, or USER itself when that is an email address.
start_convene() {
  local user="$1" pass="$2"
  local bin
  bin="$(convene_bin)"
  CONVENE_WORK="$(mktemp -d)"
  local main_email="$user@example.org"
  [[ "$user" == *@* ]] && main_email="$user"
  printf '%s' "$pass" | "$bin" --data-dir "$CONVENE_WORK/data" user add "$user" --password-stdin --email "$main_email" >/dev/null
  # More accounts (scheduling needs an attendee): CONVENE_EXTRA_USERS="name:password ..."; a
  # name that is an email address is also its email.
  local extra
  local name email
  for extra in ${CONVENE_EXTRA_USERS:-}; do
    name="${extra%%:*}"
    email="$name"
    [[ "$name" == *@* ]] || email="$name@example.org"
    printf '%s' "${extra#*:}" | "$bin" --data-dir "$CONVENE_WORK/data" user add "$name" \
      --password-stdin --email "$email" >/dev/null
  done
  # CONVENE_PORT fixes the port (a URL registered elsewhere); CONVENE_CONFIG adds a config file.
  local port="${CONVENE_PORT:-}"
  [ -n "$port" ] || port="$(free_port)"
  local config=()
  [ -n "${CONVENE_CONFIG:-}" ] && config=(--config "$CONVENE_CONFIG")
  CONVENE_LOG=warn "$bin" --data-dir "$CONVENE_WORK/data" "${config[@]}" serve --listen "127.0.0.1:$port" >"$CONVENE_WORK/server.log" 2>&1 &
  CONVENE_PID=$!
  CONVENE_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "convene did not start; log:" >&2
  cat "$CONVENE_WORK/server.log" >&2
  return 1
}

stop_convene() {
  if [ -n "${CONVENE_PID:-}" ]; then
    kill -TERM "$CONVENE_PID" 2>/dev/null || true
    wait "$CONVENE_PID" 2>/dev/null || true
    CONVENE_PID=""
  fi
}
