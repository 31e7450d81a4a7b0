#!/usr/bin/env bash
# The python `caldav` library's own functional test suite (tests/test_caldav.py from the
# pinned sdist, see requirements.txt) against a fresh Convene, in strict mode: the server entry
# carries no compatibility hints, so every feature is assumed fully supported, and has a second
# user so the RFC 6638 scheduling class (TestSchedulingForServer...) runs too.
# Pass: no test fails except those listed in conformance/expected/caldav-functional-allowed.txt
# (each line names a test and why it cannot pass yet). An allowed test that starts passing is
# reported so the list only shrinks.
source "$(dirname "$0")/lib.sh"

python_env
version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("caldav"))')"
suite="$CACHE_DIR/caldav-$version"
if [ ! -f "$suite/tests/test_caldav.py" ]; then
  rm -rf "$suite" "$CACHE_DIR/sdist"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$CACHE_DIR/sdist" "caldav==$version" >&2
  tar -xzf "$CACHE_DIR/sdist/caldav-$version.tar.gz" -C "$CACHE_DIR"
fi

CONVENE_EXTRA_USERS="pyattendee@example.org:pyattendee-pw" start_convene pytester@example.org pytester-pw
trap stop_convene EXIT

# Only Convene: no embedded Radicale/Xandikos, no Docker servers, no user config files.
cat >"$suite/tests/caldav_test_servers.yaml" <<YAML
test-servers:
  radicale:
    type: embedded
    enabled: false
  xandikos:
    type: embedded
    enabled: false
  convene:
    type: external
    enabled: true
    url: $CONVENE_URL/dav/
    username: pytester@example.org
    password: pytester-pw
    # Not hints (a hint lowers what the suite expects): a claim of full support, which makes
    # it expect more. "scheduling" is the library's own default, given so that the scheduling
    # class runs instead of skipping for want of feature information. comp-type-optional is
    # left at the library's default, "unsupported": a time-range directly under VCALENDAR is
    # refused with valid-filter (RFC 4791 9.7), and the library asks per component type.
    features:
      scheduling:
        support: full
    # Two users: the organizer, and an attendee (TestSchedulingForServerConvene) whose login is
    # an email address (both are), so the library's username-as-address fallbacks are tested too.
    scheduling_users:
      - url: $CONVENE_URL/dav/
        username: pytester@example.org
        password: pytester-pw
      - url: $CONVENE_URL/dav/
        username: pyattendee@example.org
        password: pyattendee-pw
YAML

report="$CONVENE_WORK/junit.xml"
# The suite turns warnings into errors, and its own testPrincipals calls the library's deprecated
# principals(); that one notice is shown, not raised, so the test checks principal search itself.
(cd "$suite" && HOME="$CONVENE_WORK" PYTHON_CALDAV_TEST_DOCKER=0 timeout 1200 \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider -o asyncio_default_fixture_loop_scope=function \
  -W "default:principals() is deprecated:DeprecationWarning" \
  tests/test_caldav.py -k "TestForServerConvene or TestSchedulingForServerConvene" \
  --junitxml="$report" >"$CONVENE_WORK/pytest.out" 2>&1) || true
tail -5 "$CONVENE_WORK/pytest.out" >&2
python3 "$CONFORMANCE_DIR/junit_verdict.py" "$report" "$CONFORMANCE_DIR/expected/caldav-functional-allowed.txt" ||
  { grep -E "^(FAILED|ERROR)" "$CONVENE_WORK/pytest.out" >&2; exit 1; }
