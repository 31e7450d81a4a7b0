#!/usr/bin/env bash
# cargo-deny over the dependency graph (deny.toml): licences, bans (a duplicate version not
# named in deny.toml fails) and sources. Advisories are left out: their database is fetched
# from the network. cargo-deny is installed (pinned) into the cache when missing; its build
# has its own target directory.
source "$(dirname "$0")/lib.sh"

CARGO_DENY_VERSION=0.20.2
deny_root="$CACHE_DIR/cargo-deny-$CARGO_DENY_VERSION"
if [ ! -x "$deny_root/bin/cargo-deny" ]; then
  CARGO_TARGET_DIR="$deny_root/build" cargo install --quiet --locked cargo-deny \
    --version "$CARGO_DENY_VERSION" --root "$deny_root" >&2 || exit 1
  rm -rf "$deny_root/build"
fi
cd "$REPO_DIR"
# cargo-deny reads the whole graph, every platform's crates included, and a build fetched only
# this platform's: fetch the rest first (from the registry the build uses), then check offline.
cargo fetch --locked --quiet >&2 || exit 1
if "$deny_root/bin/cargo-deny" --offline --color never check bans licenses sources >&2; then
  echo "cargo-deny: ok (bans, licenses, sources)"
else
  echo "cargo-deny: FAILED"
  exit 1
fi
