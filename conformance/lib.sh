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

# start_convene USER PASSWORD: sets CONVENE_URL, CONVENE_PID, CONVENE_WORK.
start_convene() {
  local user="$1" pass="$2"
  local bin
  bin="$(convene_bin)"
  CONVENE_WORK="$(mktemp -d)"
  printf '%s' "$pass" | "$bin" --data-dir "$CONVENE_WORK/data" user add "$user" --password-stdin --email "$user@example.org" >/dev/null
  local port
  port="$(free_port)"
  CONVENE_LOG=warn "$bin" --data-dir "$CONVENE_WORK/data" serve --listen "127.0.0.1:$port" >"$CONVENE_WORK/server.log" 2>&1 &
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
