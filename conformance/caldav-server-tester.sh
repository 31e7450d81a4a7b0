#!/usr/bin/env bash
# caldav-server-tester (PyPI, pinned in requirements.txt) against a fresh Convene. The result
# must not fall below conformance/expected/caldav-server-tester.json for any feature.
# CONVENE_UPDATE_EXPECTED=1 rewrites the expectation from this run.
source "$(dirname "$0")/lib.sh"

python_env
start_convene tester tester-pw
trap stop_convene EXIT
observed="$CONVENE_WORK/observed.json"
(cd "$CONVENE_WORK" && timeout 900 "$VENV/bin/caldav-server-tester" \
  --caldav-url "$CONVENE_URL/dav/" --caldav-username tester --caldav-password tester-pw \
  --format json >"$observed" 2>"$CONVENE_WORK/tester.err") || {
  cat "$CONVENE_WORK/tester.err" >&2
  echo "caldav-server-tester: FAILED (the tool did not complete)"
  exit 1
}
expected="$CONFORMANCE_DIR/expected/caldav-server-tester.json"
if [ "${CONVENE_UPDATE_EXPECTED:-}" = 1 ]; then
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("ts",None); d.pop("url",None); json.dump(d,open(sys.argv[2],"w"),indent=1,sort_keys=True)' "$observed" "$expected"
fi
"$VENV/bin/python" "$CONFORMANCE_DIR/compare_features.py" "$expected" "$observed"
