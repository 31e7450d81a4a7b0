#!/usr/bin/env bash
# Time-range queries over seeded 1k- and 10k-event calendars against an independent oracle
# (recurring-ical-events). Any wrong answer fails. One summary line.
source "$(dirname "$0")/lib.sh"

python_env
start_convene oracle oracle-pw
trap stop_convene EXIT
"$VENV/bin/python" "$CONFORMANCE_DIR/time_range_oracle.py" "$CONVENE_URL" oracle oracle-pw ${ORACLE_COUNTS:-1000 10000}
