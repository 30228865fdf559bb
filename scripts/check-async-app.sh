#!/usr/bin/env bash
# An async application built with `default-features = false, features = ["async", "bundled"]` links no
# libpq, and runs its migrations and searches (the crate's `run_async`) on both backends:
#   1. `cargo tree` of those features has no pq-sys (and has it with `pg`, so that the check can fail);
#   2. the example examples/async_app.rs, built with those features, loads no libpq (`ldd`);
#   3. the example migrates, writes and searches on a fresh SQLite file and a fresh PostgreSQL database.
#
#   PG_DATABASE_URL=postgres://... scripts/check-async-app.sh   # a role that may CREATE DATABASE
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-async-app] %s\n' "$*" >&2; }
die() { printf '[check-async-app] error: %s\n' "$*" >&2; exit 1; }

features=(--no-default-features --features async,bundled)
[ -n "${PG_DATABASE_URL:-}" ] || die "PG_DATABASE_URL is needed (scripts/with-pg.sh provides one)"

if cargo tree -e normal "${features[@]}" | grep -q 'pq-sys'; then
    cargo tree -e normal -i pq-sys "${features[@]}" >&2 || true
    die "pq-sys (libpq) is in the dependency tree of features async,bundled"
fi
cargo tree -e normal --no-default-features --features pg | grep -q 'pq-sys' \
    || die "cargo tree shows no pq-sys even with feature pg: the check above proves nothing"
log "cargo tree: no pq-sys with async,bundled (pq-sys present with pg)"

cargo build --quiet "${features[@]}" --example async_app
binary="${CARGO_TARGET_DIR:-target}/debug/examples/async_app"
ldd "$binary" >&2
if ldd "$binary" | grep -qi 'libpq'; then
    die "$binary loads libpq"
fi
log "ldd: $binary loads no libpq"

work=$(mktemp -d)
database="dv_async_app_$$"
cleanup() {
    rm -rf "$work"
    psql -q "$PG_DATABASE_URL" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

DATABASE_URL="$work/app.db" "$binary" >&2 || die "the example failed on SQLite"
# A second start finds nothing pending and the same documents searchable.
DATABASE_URL="$work/app.db" "$binary" >&2 || die "the example failed on SQLite, second start"

psql -q "$PG_DATABASE_URL" -c "CREATE DATABASE $database" >/dev/null
base=${PG_DATABASE_URL%%\?*}
query=${PG_DATABASE_URL#"$base"}
pg_url="${base%/*}/$database$query"
DATABASE_URL="$pg_url" "$binary" >&2 || die "the example failed on PostgreSQL"
DATABASE_URL="$pg_url" "$binary" >&2 || die "the example failed on PostgreSQL, second start"
log "the example migrated, wrote and searched on SQLite and PostgreSQL, twice each"
