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
    totals = all_checked(observed_path)
    bad = [n for n, lvl in totals.items() if lvl in ("broken", "ungraceful")]
    for n in bad:
        print(f"  {totals[n]}: {n}", file=sys.stderr)
    tally = {}
    for lvl in totals.values():
        tally[lvl] = tally.get(lvl, 0) + 1
    full = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
    state = "FAILED" if drops or bad else "ok"
    print(
        f"caldav-server-tester: {state} ({len(drops)} regressions, {len(gains)} improvements; "
        f"all {len(totals)} checked features: {full}; listed deviations: {shown})"
    )
    return 1 if drops or bad else 0


def all_checked(observed_path):
    """Every feature the tester checks, at its observed level or, where the compact output
    omits it, at the library's default level for it (what 'full' counts are quoted against)."""
    import inspect

    from caldav.compatibility_hints import FeatureSet
    import caldav_server_tester.checks as checks

    names = set()
    for _, cls in inspect.getmembers(checks, inspect.isclass):
        f = getattr(cls, "features_to_be_checked", None)
        if isinstance(f, (set, list, tuple)):
            names |= set(f)
    with open(observed_path) as fh:
        fs = FeatureSet(json.load(fh).get("features", {}))
    out = {}
    for n in sorted(names):
        lvl = fs.is_supported(n, str)
        out[n] = lvl if lvl in RANK else "full" if lvl == "True" else str(lvl)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
