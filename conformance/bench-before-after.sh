#!/usr/bin/env bash
# The 10,000-event load benchmark (benches/load.rs) against two builds in one run on this
# machine: REV (before) and the working tree (after), each a release build on a fresh SQLite
# store, alternated ROUNDS times so drift in the machine falls on both. Prints PUT CPU, mixed
# CPU per 1,000 requests, p99 and peak RSS side by side. Numbers, not a verdict.
#
#   conformance/bench-before-after.sh REV [EVENTS] [MIXED] [ROUNDS]
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"
REV="${1:?usage: bench-before-after.sh REV [EVENTS] [MIXED] [ROUNDS]}"
EVENTS="${2:-10000}"
MIXED="${3:-5000}"
ROUNDS="${4:-2}"
TARGET="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
work="$(mktemp -d)"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
  git worktree remove --force "$work/before" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add --detach "$work/before" "$REV" >/dev/null 2>&1 || { echo "no such revision $REV" >&2; exit 1; }
(cd "$work/before" && CARGO_TARGET_DIR="$TARGET/before" cargo build --quiet --release --bin convene) || exit 1
cargo build --quiet --release --bin convene || exit 1
cargo bench --no-run --quiet --bench load || exit 1
declare -A BIN=([before]="$TARGET/before/release/convene" [after]="$TARGET/release/convene")

run_one() {
  local which="$1" bin="${BIN[$1]}" data port
  data="$(mktemp -d -p "$work")"
  port="$(free_port)"
  printf 'bench-pw' | "$bin" --data-dir "$data" user add bench --password-stdin >/dev/null || return 1
  CONVENE_LOG=warn "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  cargo bench --quiet --bench load -- --url "http://127.0.0.1:$port/dav/calendars/bench/" \
    --user bench --password bench-pw --pid "$pid" --events "$EVENTS" --mixed "$MIXED" \
    >"$work/$which.$2.out" 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null; pid=""
}

for round in $(seq 1 "$ROUNDS"); do
  run_one before "$round" || exit 1
  run_one after "$round" || exit 1
done
python3 - "$work" "$ROUNDS" "$REV" <<'PY'
import re, sys, statistics
work, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def read(which, r):
    text = open(f"{work}/{which}.{r}.out").read()
    put = re.search(r"^PUT c=1 .*?([\d.]+) ms CPU/req", text, re.M)
    p99 = re.search(r"^mixed, 50 clients .*?p99\s+([\d.]+) ms", text, re.M)
    mixed = re.search(r"mixed workload server CPU: ([\d.]+) s per 1,000", text)
    rss = re.search(r"server peak RSS: ([\d.]+) MiB", text)
    return [float(m.group(1)) if m else None for m in (put, mixed, p99, rss)]
names = ["PUT c=1 server CPU (ms/req)", "mixed server CPU (s per 1,000)", "mixed p99 (ms)", "peak RSS (MiB)"]
runs = {w: [read(w, r) for r in range(1, rounds + 1)] for w in ("before", "after")}
print(f"bench-10k, {rev} (before) against the working tree (after), median of {rounds} alternated runs:")
print(f"  {'measure':<34} {'before':>10} {'after':>10}")
for i, n in enumerate(names):
    vals = {w: [x[i] for x in runs[w] if x[i] is not None] for w in runs}
    med = {w: (statistics.median(v) if v else float('nan')) for w, v in vals.items()}
    print(f"  {n:<34} {med['before']:>10.3f} {med['after']:>10.3f}")
PY
