"""Verdict over a pytest JUnit report: every failure or error must be on the allowed list.

Usage: junit_verdict.py REPORT.xml ALLOWED.txt
ALLOWED.txt: one test name per line (the part after the last '::' or '.'), '#' starts a reason.
Exits non-zero when a test outside the list failed, or when nothing ran at all.
"""

import sys
import xml.etree.ElementTree as ET


def main() -> int:
    report, allowed_path = sys.argv[1], sys.argv[2]
    allowed = {}
    for line in open(allowed_path, encoding="utf-8"):
        name, _, why = line.partition("#")
        if name.strip():
            allowed[name.strip()] = why.strip()
    passed, skipped, failed, tolerated = [], [], [], []
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            (tolerated if name in allowed else failed).append(name)
        elif case.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    for name in failed:
        print(f"FAILED (not allowed): {name}", file=sys.stderr)
    for name in sorted(set(allowed) & set(passed)):
        print(f"now passes, remove from the allowed list: {name}", file=sys.stderr)
    for name in skipped:
        print(f"skipped: {name}", file=sys.stderr)
    ok = not failed and passed
    print(
        f"caldav functional suite: {'ok' if ok else 'FAILED'} "
        f"({len(passed)} passed, {len(failed)} failed, {len(tolerated)} allowed failures, "
        f"{len(skipped)} skipped)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
