#!/usr/bin/env bash
# litmus (Debian package) WebDAV suites basic, copymove, props and http against a fresh
# Convene. Passes only with 0 failures in every suite. Prints one summary line.
source "$(dirname "$0")/lib.sh"

if ! command -v litmus >/dev/null; then
  echo "installing litmus from Debian" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litmus) >&2
fi

start_convene litmus litmus-pw
trap stop_convene EXIT
out="$CONVENE_WORK/litmus.out"
# litmus writes scratch files into its working directory.
(cd "$CONVENE_WORK" && TESTS="basic copymove props http" litmus -k \
  "$CONVENE_URL/dav/calendars/litmus/" litmus litmus-pw >"$out" 2>&1) || true

summary=""
status=0
for suite in basic copymove props http; do
  line="$(grep -E "summary for \`$suite':" "$out" || true)"
  if [ -z "$line" ]; then
    summary="$summary $suite:missing"
    status=1
    continue
  fi
  run="$(sed -E 's/.*of ([0-9]+) tests run.*/\1/' <<<"$line")"
  passed="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"
  failed="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
  summary="$summary $suite:$passed/$run"
  if [ "$failed" != "0" ]; then status=1; fi
done
if [ "$status" != 0 ]; then
  cat "$out" >&2
  echo "litmus: FAILED$summary"
  exit 1
fi
echo "litmus: ok$summary"
