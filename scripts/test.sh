#!/usr/bin/env bash
# Passes every test of the crate on a fresh machine: each feature combination that matters, doctests
# included, against real SQLite and a real PostgreSQL 15 + pgvector.
#
#   scripts/test.sh
#
# Without PG_DATABASE_URL, scripts/with-pg.sh provisions PostgreSQL + pgvector and starts a throwaway
# cluster for the run; being unable to do so fails the run (it never skips the PostgreSQL tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PG_DATABASE_URL:-}" ] && [[ "${DATABASE_URL:-}" != postgres* ]]; then
    exec scripts/with-pg.sh "$0" "$@"
fi

step() { printf '\n=== %s\n' "$*" >&2; }

# A run builds six feature sets once each. With incremental state and full debug info, `.ci/run` filled about
# 12 GB of target directory, more than one CI machine had free; without the one and with line tables only
# (panics and backtraces still name files and lines) it peaks under 3 GB. A caller's own setting wins.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

# The real diesel CLI (2.3) for the tests that run the migrations through it.
if ! diesel --version 2>/dev/null | grep -q 'Version: 2\.3\.'; then
    step "installing diesel_cli 2.3 (postgres + bundled sqlite)"
    cargo install diesel_cli --version "~2.3" --no-default-features --features postgres,sqlite-bundled --locked
fi
export DIESEL_VECTOR_REQUIRE_CLI=1
# As root, the full-disk and read-only-directory tests mount a tmpfs or a read-only bind mount (or use
# chattr +i): being unable to is then a failure, not a skip.
if [ "$(id -u)" -eq 0 ]; then
    export DIESEL_VECTOR_REQUIRE_MOUNT=1
fi

step "features: none (value type and codecs only)"
cargo check --no-default-features --lib

step "features: sqlite (default: bundled SQLite, sqlite-vec compiled in)"
cargo test

step "features: sqlite with the system's libsqlite3 and no sqlite-vec"
cargo test --no-default-features --features sqlite

step "features: pg"
cargo test --no-default-features --features pg

step "features: async + bundled (diesel-async, no libpq): the async tests, the example, doctests"
cargo check --no-default-features --features async --lib
cargo test --no-default-features --features async,bundled --lib --test async --examples
cargo test --no-default-features --features async,bundled --doc
scripts/check-async-app.sh

step "features: cli without pg (the SQLite-only binary: no libpq to load)"
cargo build --no-default-features --features cli,bundled --bin diesel-vector
scripts/check-sqlite-cli.sh target/debug/diesel-vector

step "features: all (pg + sqlite + r2d2 + serde + jsonl + cli + async: the diesel-vector binary and its tests)"
cargo test --all-features

step "all tests passed, PostgreSQL tests included"
