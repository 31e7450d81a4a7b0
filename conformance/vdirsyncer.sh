#!/usr/bin/env bash
# vdirsyncer (PyPI, pinned) two-way round trip against a fresh Convene. One summary line.
source "$(dirname "$0")/lib.sh"

python_env
start_convene vdir vdirsync-pw
trap stop_convene EXIT
"$VENV/bin/python" "$CONFORMANCE_DIR/vdirsyncer_roundtrip.py" "$VENV/bin/vdirsyncer" \
  "$CONVENE_URL" vdir vdirsync-pw "$CONVENE_WORK"
