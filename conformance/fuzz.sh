#!/usr/bin/env bash
# cargo-fuzz targets (fuzz/): replay every recorded crash and the iCalendar corpus, then fuzz
# each target briefly (FUZZ_SECONDS, default 45; FUZZ_SEED fixes the run, default a constant
# so CI runs are repeatable). A new crash fails the run; its input is kept
# under fixtures/fuzz-crashes/<target>/ so it becomes a permanent regression fixture.
# cargo-fuzz is installed (pinned) into the cache when missing. The stable toolchain builds the
# sanitizer-coverage instrumentation with RUSTC_BOOTSTRAP=1 and no sanitizer (-s none).
source "$(dirname "$0")/lib.sh"

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-45}"
fuzz_bin="$CACHE_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION/bin"
if [ ! -x "$fuzz_bin/cargo-fuzz" ]; then
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
    --root "$CACHE_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION" >&2
fi
export PATH="$fuzz_bin:$PATH"
export RUSTC_BOOTSTRAP=1
# The fuzz build has its own flags; keep it out of the server's target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}/fuzz"

cd "$REPO_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
for target in ical_validate_index recurrence dav_xml; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  case "$target" in
    ical_validate_index)
      for f in fixtures/ical-corpus/*/*.ics; do
        cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"
      done
      ;;
    recurrence) cp fixtures/fuzz-seeds/recurrence/* "$corpus/" ;;
    dav_xml) cp fixtures/fuzz-seeds/dav_xml/* "$corpus/" ;;
  esac
  # The hostile corpus (fixtures/hostile: parser, recurrence and namespace bombs) is replayed
  # under the same memory and time caps, then mutated along with the seeds.
  hostile=()
  case "$target" in
    ical_validate_index) hostile=(fixtures/hostile/*.ics) ;;
    dav_xml) hostile=(fixtures/hostile/*.xml) ;;
  esac
  if [ "${#hostile[@]}" -gt 0 ]; then
    if ! cargo fuzz run -s none "$target" "${hostile[@]}" -- -runs=0 -timeout=25 -rss_limit_mb=1024 \
      >"$work/$target.hostile" 2>&1; then
      tail -30 "$work/$target.hostile" >&2
      echo "fuzz $target: a hostile input runs away" >&2
      failed=$((failed + 1))
      continue
    fi
    for f in "${hostile[@]}"; do cp "$f" "$corpus/hostile-$(basename "$f")"; done
  fi
  crashes="fixtures/fuzz-crashes/$target"
  if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes")" ]; then
    # Regressions first: every input that ever crashed must now pass.
    if ! cargo fuzz run -s none "$target" "$crashes"/* -- -runs=0 >"$work/$target.replay" 2>&1; then
      tail -30 "$work/$target.replay" >&2
      echo "fuzz $target: a recorded crash fails again" >&2
      failed=$((failed + 1))
      continue
    fi
  fi
  mkdir -p "$work/$target-artifacts"
  if cargo fuzz run -s none "$target" "$corpus" -- -max_total_time="$seconds" -max_len=65536 \
    -timeout=25 -seed="${FUZZ_SEED:-20261127}" -rss_limit_mb=1024 -artifact_prefix="$work/$target-artifacts/" \
    >"$work/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second' "$work/$target.log" | tail -1)s" >&2
  else
    tail -40 "$work/$target.log" >&2
    mkdir -p "$crashes"
    cp "$work/$target-artifacts"/* "$crashes/" 2>/dev/null
    echo "fuzz $target: CRASH, input saved under $crashes" >&2
    failed=$((failed + 1))
  fi
done
if [ "$failed" = 0 ]; then
  echo "fuzz: ok (3 targets, ${seconds}s each, recorded crashes replayed)"
else
  echo "fuzz: FAILED ($failed target(s))"
  exit 1
fi
