#!/usr/bin/env bash
# caldav-server-tester (PyPI, pinned in requirements.txt) against a fresh Convene. The result
# must not fall below conformance/expected/caldav-server-tester.json for any feature.
# CONVENE_UPDATE_EXPECTED=1 rewrites the expectation from this run.
source "$(dirname "$0")/lib.sh"

python_env
CONVENE_EXTRA_USERS="attendee:attendee-pw" start_convene tester tester-pw
trap stop_convene EXIT
observed="$CONVENE_WORK/observed.json"
# The second account, for the multi-user scheduling checks, comes from a caldav config file.
cat >"$CONVENE_WORK/caldav.json" <<JSON
{"attendee": {"url": "$CONVENE_URL/dav/", "username": "attendee", "password": "attendee-pw"}}
JSON
(cd "$CONVENE_WORK" && CALDAV_CONFIG_FILE="$CONVENE_WORK/caldav.json" timeout 900 "$VENV/bin/caldav-server-tester" \
  --caldav-url "$CONVENE_URL/dav/" --caldav-username tester --caldav-password tester-pw \
  --config-section attendee \
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
