#!/usr/bin/env bash
# The one test command (README "Test"): brings up what the tests need where it is missing
# (PostgreSQL, litmus, a Python venv with the pinned external suites), then runs the external
# conformance suites and the whole cargo test suite (unit, integration on SQLite and
# PostgreSQL, store contract, architecture). Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
source conformance/lib.sh
set +e

PG_OWN_DIR=""
PG_BIN=""

pg_reachable() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_own_postgres() {
  # No PostgreSQL on 127.0.0.1:5432: install Debian's and run a throwaway cluster on a
  # loopback port below 32768, stopped again on exit.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  fi
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  PG_OWN_DIR="$(mktemp -d)"
  local port=25432
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_OWN_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$PG_BIN/initdb" -D "$PG_OWN_DIR/data" -A trust -U postgres >/dev/null
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_OWN_DIR/data" -l "$PG_OWN_DIR/log" -w \
    -o "-p $port -k $PG_OWN_DIR -c listen_addresses=127.0.0.1" start >/dev/null
  export CONVENE_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  PG_RUN=("${run[@]}")
}

stop_own_postgres() {
  if [ -n "$PG_OWN_DIR" ]; then
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_OWN_DIR/data" -m fast -w stop >/dev/null 2>&1
    rm -rf "$PG_OWN_DIR"
  fi
}
LDAP_DIR=""
stop_own_ldap() {
  if [ -n "$LDAP_DIR" ]; then
    conformance/slapd.sh stop "$LDAP_DIR"
    rm -rf "$LDAP_DIR"
  fi
}
cleanup() {
  stop_own_ldap
  stop_own_postgres
}
trap cleanup EXIT

if [ -z "${CONVENE_TEST_PG_URL:-}" ]; then
  # CONVENE_TEST_OWN_PG=1 exercises the fresh-machine path even where a server runs.
  if pg_reachable 5432 && [ "${CONVENE_TEST_OWN_PG:-}" != 1 ]; then
    export CONVENE_TEST_PG_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    start_own_postgres
  fi
fi

drop_test_databases() {
  command -v psql >/dev/null || return 0
  psql "$CONVENE_TEST_PG_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'convene\_t\_%'" 2>/dev/null |
    while read -r db; do
      [ -n "$db" ] && psql "$CONVENE_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1
    done
}
drop_test_databases

failed=0
results=()
run_suite() {
  local name="$1"
  shift
  local line
  line="$("$@" | tail -1)"
  local rc=${PIPESTATUS[0]}
  results+=("$line")
  if [ "$rc" != 0 ]; then
    failed=$((failed + 1))
    echo "conformance suite $name failed" >&2
  fi
}

echo "== building" >&2
cargo build --quiet --bin convene || exit 1
cargo test --no-run --quiet || exit 1

echo "== dependency policy" >&2
run_suite cargo-deny conformance/deny.sh

echo "== external conformance suites" >&2
run_suite litmus conformance/litmus.sh
run_suite vdirsyncer conformance/vdirsyncer.sh
run_suite caldav-server-tester conformance/caldav-server-tester.sh
run_suite time-range-oracle conformance/time-range-oracle.sh
run_suite caldav-functional conformance/caldav-functional.sh
run_suite fuzz conformance/fuzz.sh
run_suite browser conformance/browser.sh
# The load benchmark against Convene, Radicale and Xandikos, small (numbers, not a verdict:
# it fails only if a server cannot answer a phase). README "Benchmark" has the full-size run.
run_suite bench-compare conformance/bench-compare.sh 300 200
# The same benchmark at issue 3's size, 10,000 events, Convene alone: the phases, and each
# target with the value this run measured (numbers; it fails only if a request fails).
run_suite bench-10k conformance/bench-10k.sh 10000 5000
# One event shared with a 500-person department: the owner's PUT latency and the time until
# the last copy exists (numbers; it fails only if the copies never arrive).
run_suite bench-share cargo bench --quiet --bench share -- --recipients 500
# The login proxy against direct access and nginx as a reverse proxy: p50/p99 for a 10 KB
# page and a 1 MB download at 1 and 50 users, and memory with 1,000 proxied downloads open
# (numbers beside their targets; it fails only if a request fails). Needs Debian nginx.
conformance/debian-peers.sh install || exit 1
run_suite bench-proxy cargo bench --quiet --bench proxy -- --requests 4000
for r in "${results[@]}"; do echo "$r"; done

echo "== cargo test (SQLite and PostgreSQL at $CONVENE_TEST_PG_URL)" >&2
# Tests that need a real peer from PyPI (the aiosmtpd SMTP server for iMIP) run it from the venv.
python_env
export CONVENE_TEST_PYTHON="$VENV/bin/python"
# A throwaway OpenLDAP slapd (Debian) with a sample organisation, for tests/ldap.rs.
if [ -z "${CONVENE_TEST_LDAP_URL:-}" ]; then
  LDAP_DIR="$(mktemp -d)"
  ldap_env="$(conformance/slapd.sh start "$LDAP_DIR" "$(free_port)")" || exit 1
  export CONVENE_TEST_LDAP_URL="$(printf '%s\n' "$ldap_env" | sed -n 's/^LDAP_URL=//p')"
  export CONVENE_TEST_LDAP_CA="$(printf '%s\n' "$ldap_env" | sed -n 's/^LDAP_CA=//p')"
fi
# tests/oidc.rs starts real OpenID providers (npm oidc-provider); installed once, up front.
conformance/oidc.sh install || exit 1
# tests/bridge.rs starts real nginx instances with auth_basic (Debian nginx) as business
# systems, nginx and Caddy as forward-auth fronts, and Dovecot as the mail reminder's server.
conformance/debian-peers.sh install || exit 1
cargo test --quiet --no-fail-fast
test_rc=$?
drop_test_databases

if [ "$failed" != 0 ] || [ "$test_rc" != 0 ]; then
  echo "FAILED: $failed conformance suite(s), cargo test exit $test_rc" >&2
  exit 1
fi
