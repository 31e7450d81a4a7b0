"""Compare a caldav-server-tester JSON result with the checked-in expectation.

Fails (exit 1) when any feature's support level is lower than expected. A feature the tool
does not list is at its default level, which it omits as unremarkable; it ranks as 'full'.
Prints one summary line.
"""
import json
import sys

RANK = {"full": 5, "quirk": 4, "fragile": 3, "unsupported": 2, "unknown": 2, "ungraceful": 1, "broken": 0}


def levels(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for name, value in data.get("features", {}).items():
        support = value.get("support") if isinstance(value, dict) else value
        out[name] = support if isinstance(support, str) else "full"
    return out


def main(expected_path, observed_path):
    expected = levels(expected_path)
    observed = levels(observed_path)
    drops, gains = [], []
    for name in sorted(set(expected) | set(observed)):
        e = expected.get(name, "full")
        o = observed.get(name, "full")
        if RANK.get(o, 0) < RANK.get(e, 0):
            drops.append(f"{name}: {e} -> {o}")
        elif RANK.get(o, 0) > RANK.get(e, 0):
            gains.append(f"{name}: {e} -> {o}")
    counts = {}
    for v in observed.values():
        counts[v] = counts.get(v, 0) + 1
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    for d in drops:
        print(f"  regressed: {d}", file=sys.stderr)
    for g in gains:
        print(f"  improved (update conformance/expected): {g}", file=sys.stderr)
    state = "FAILED" if drops else "ok"
    print(f"caldav-server-tester: {state} ({len(drops)} regressions, {len(gains)} improvements; listed deviations: {shown})")
    return 1 if drops else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
