#!/usr/bin/env bash
# The load benchmark (benches/load.rs) against Convene, Radicale and Xandikos in one run, with
# the same seeded workload, and a table of Convene's numbers against each peer's.
#
#   conformance/bench-compare.sh [EVENTS] [MIXED]      defaults 2000 events, 1000 mixed requests
#
# Radicale and Xandikos (pinned, from PyPI) run from their own venv in the cache, on loopback,
# with their PIDs given to the benchmark so it reads their CPU time as it reads Convene's.
# Last line: "bench-compare: ok" when every server answered every phase.
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"
EVENTS="${1:-2000}"
MIXED="${2:-1000}"
PEERS_VENV="$CACHE_DIR/bench-peers"
if [ ! -x "$PEERS_VENV/bin/xandikos" ] || [ ! -x "$PEERS_VENV/bin/radicale" ]; then
  python3 -m venv "$PEERS_VENV"
  "$PEERS_VENV/bin/pip" install --quiet --disable-pip-version-check radicale==3.5.8 xandikos==0.4.10 >&2
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

echo "== Convene" >&2
cargo bench --quiet --bench load -- --events "$EVENTS" --mixed "$MIXED" | tee "$WORK/convene.txt"

echo "== Radicale" >&2
rport="$(free_port)"
mkdir -p "$WORK/radicale"
printf 'bench:bench-pw\n' >"$WORK/radicale/htpasswd"
cat >"$WORK/radicale/config" <<CFG
[server]
hosts = 127.0.0.1:$rport
max_content_length = 100000000
# The mixed phase has 50 clients; Radicale's default of 8 connections resets the rest.
max_connections = 64
[auth]
type = htpasswd
htpasswd_filename = $WORK/radicale/htpasswd
htpasswd_encryption = plain
[rights]
type = owner_only
[storage]
filesystem_folder = $WORK/radicale/collections
[logging]
level = warning
CFG
"$PEERS_VENV/bin/python" -m radicale --config "$WORK/radicale/config" >"$WORK/radicale/log" 2>&1 &
PIDS+=($!)
wait_port "$rport" || { cat "$WORK/radicale/log" >&2; exit 1; }
# The principal collection is made on the user's first request.
curl -s -o /dev/null -u bench:bench-pw -X PROPFIND -H 'Depth: 0' "http://127.0.0.1:$rport/bench/"
cargo bench --quiet --bench load -- --events "$EVENTS" --mixed "$MIXED" \
  --url "http://127.0.0.1:$rport/bench/" --user bench --password bench-pw --pid "${PIDS[-1]}" | tee "$WORK/radicale.txt"

echo "== Xandikos" >&2
xport="$(free_port)"
"$PEERS_VENV/bin/xandikos" --defaults -d "$WORK/xandikos" -l 127.0.0.1 -p "$xport" \
  --current-user-principal /bench >"$WORK/xandikos.log" 2>&1 &
PIDS+=($!)
wait_port "$xport" || { cat "$WORK/xandikos.log" >&2; exit 1; }
cargo bench --quiet --bench load -- --events "$EVENTS" --mixed "$MIXED" \
  --url "http://127.0.0.1:$xport/bench/calendars/" --user bench --password bench-pw --pid "${PIDS[-1]}" | tee "$WORK/xandikos.txt"

# The table goes to standard error too, so a caller that keeps only the last line still logs it.
python3 - "$WORK" <<'PY'
import re, sys
work = sys.argv[1]
line = re.compile(r"^(.*?)\s+(\d+) req\s+([\d.]+) req/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+(?:([\d.]+) ms CPU/req|cpu n/a)")
failed = re.compile(r"\s*\((\d+) failed\)$")
def phases(name):
    out = {}
    for l in open(f"{work}/{name}.txt"):
        m = line.match(l)
        if m:
            ph = m.group(1).strip()
            f = failed.search(ph)
            out[failed.sub("", ph)] = (float(m.group(4)), float(m.group(6)) if m.group(6) else None,
                                       int(f.group(1)) if f else 0, int(m.group(2)))
    return out
c, r, x = phases("convene"), phases("radicale"), phases("xandikos")
table = []
print = (lambda *a, _p=print, **k: (table.append(" ".join(map(str, a))), _p(*a, **k)))
print(f"\n{'phase':<28} {'Convene p50':>11} {'Radicale':>10} {'ratio':>7} {'Xandikos':>10} {'ratio':>7}   CPU/req ms: Convene / Radicale / Xandikos")
ok = bool(c) and all(v[2] == 0 for v in c.values())
for ph, (p50, cpu, _, n) in c.items():
    if n == 0:
        continue
    def cell(peer):
        if ph not in peer:
            return ("-", "-")
        v = peer[ph]
        note = f" ({v[2]} failed)" if v[2] else ""
        return (f"{v[0]:.2f}", (f"{v[0] / p50:.0f}x" if p50 > 0 else "-") + note)
    rv, rr = cell(r)
    xv, xr = cell(x)
    ok = ok and ph in r and ph in x
    cpus = " / ".join("-" if p.get(ph, (0, None))[1] is None else f"{p[ph][1]:.3f}" for p in (c, r, x))
    print(f"{ph:<28} {p50:>11.2f} {rv:>10} {rr:>7} {xv:>10} {xr:>7}   {cpus}")
# A peer's own refusals (Xandikos answers concurrent PUTs with 423 Locked) are shown, not fatal.
print("bench-compare: ok" if ok else "bench-compare: a server missed a phase, or Convene failed requests")
sys.stderr.write("\n".join(table) + "\n")
sys.exit(0 if ok else 1)
PY
