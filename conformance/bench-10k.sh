#!/usr/bin/env bash
# The load benchmark (benches/load.rs) at the size issue 3 sets its targets for: 10,000 events
# on this machine, Convene alone (release build, fresh SQLite store). Prints the phases and a
# line per target with the measured value beside it. Numbers, not a verdict: timings belong in
# benchmarks, and this one fails only if a request fails.
#
#   conformance/bench-10k.sh [EVENTS] [MIXED]      defaults 10000 events, 5000 mixed requests
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"
EVENTS="${1:-10000}"
MIXED="${2:-5000}"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
cargo bench --quiet --bench load -- --events "$EVENTS" --mixed "$MIXED" >"$OUT"
cat "$OUT" >&2
python3 - "$OUT" "$EVENTS" <<'PY'
import re, sys
out, events = sys.argv[1], sys.argv[2]
line = re.compile(r"^(.*?)\s+(\d+) req\s+([\d.]+) req/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+(?:([\d.]+) ms CPU/req|cpu n/a)")
phases, failed, peak = {}, 0, None
for l in open(out):
    m = line.match(l)
    if m:
        name = m.group(1).strip()
        f = re.search(r"\((\d+) failed\)$", name)
        failed += int(f.group(1)) if f else 0
        name = re.sub(r"\s*\(\d+ failed\)$", "", name)
        phases[name] = {"rps": float(m.group(3)), "p50": float(m.group(4)), "p99": float(m.group(5)),
                        "cpu": float(m.group(6)) if m.group(6) else None}
    p = re.match(r"server peak RSS: ([\d.]+) MiB", l)
    if p:
        peak = float(p.group(1))
mixed_cpu = re.search(r"mixed workload server CPU: ([\d.]+) s per 1,000", open(out).read())
# (measure, value, target, met when value <= target unless `at_least`)
rows = []
def add(label, value, target, unit, at_least=False):
    if value is None:
        rows.append(f"  {label:<36} n/a (target {'>=' if at_least else '<='} {target} {unit})")
        return
    met = value >= target if at_least else value <= target
    rows.append(f"  {label:<36} {value:>9.3f} {unit:<8} target {'>=' if at_least else '<='} {target:<6} {'met' if met else 'MISSED'}")
get = lambda ph, k: phases.get(ph, {}).get(k)
add("week calendar-query p50", get("calendar-query week", "p50"), 5, "ms")
add("PROPFIND Depth 1 p50", get("PROPFIND Depth 1", "p50"), 40, "ms")
add("PUT c=1 throughput", get("PUT c=1", "rps"), 1500, "req/s", at_least=True)
add("PUT c=1 server CPU", get("PUT c=1", "cpu"), 0.3, "ms/req")
add("multiget of 100 p50", get("multiget 100", "p50"), 2, "ms")
add("sync after 10 changes p50", get("sync after 10 changes", "p50"), 1, "ms")
add("mixed server CPU per 1,000", float(mixed_cpu.group(1)) if mixed_cpu else None, 0.15, "s")
add("mixed p99", get("mixed, 50 clients", "p99"), 50, "ms")
add("peak RSS", peak, 64, "MiB")
sys.stderr.write(f"targets of issue 3 at {events} events, measured on this machine:\n" + "\n".join(rows) + "\n")
ok = bool(phases) and failed == 0
print(f"bench-10k: ok ({sum('MISSED' in r for r in rows)} of {len(rows)} targets missed this run)" if ok
      else f"bench-10k: {failed} requests failed")
sys.exit(0 if ok else 1)
PY
