#!/usr/bin/env bash
# The `diesel-vector` binary built with `--no-default-features --features cli,bundled` (SQLite only) links no
# libpq, refuses a PostgreSQL URL with an error that names the missing feature, and works on SQLite:
#   1. `ldd` of the binary shows no libpq;
#   2. `doctor` on a postgres:// URL exits 1 with "no PostgreSQL support" and the `pg` feature;
#   3. on a fresh SQLite file: `migration run`, `doctor` (healthy), a `search` of the seed's table (empty: no
#      rows, exit 0) and a query of the wrong dimensions (exit 1, the dimensions named).
#
#   scripts/check-sqlite-cli.sh target/debug/diesel-vector
set -euo pipefail

log() { printf '[check-sqlite-cli] %s\n' "$*" >&2; }
die() { printf '[check-sqlite-cli] error: %s\n' "$*" >&2; exit 1; }

binary=${1:?the diesel-vector binary built with --features cli and without pg}
[ -x "$binary" ] || die "$binary is not an executable"

if ldd "$binary" | grep -qi 'libpq'; then
    ldd "$binary" >&2
    die "$binary loads libpq"
fi
log "ldd: no libpq"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

set +e
"$binary" --database-url postgres://nobody@127.0.0.1:1/none doctor > "$dir/out" 2> "$dir/err"
status=$?
set -e
[ "$status" -eq 1 ] || die "doctor on a postgres:// URL exited $status, not 1"
grep -q 'no PostgreSQL support' "$dir/err" && grep -q '`pg` cargo feature' "$dir/err" \
    || die "the error does not name the missing feature: $(cat "$dir/err")"
log "a postgres:// URL: $(cat "$dir/err")"

db="$dir/app.db"
"$binary" --database-url "$db" migration run >&2
"$binary" --database-url "$db" doctor > "$dir/doctor" || die "doctor on a fresh SQLite file: $(cat "$dir/doctor")"
grep -q 'verdict *healthy' "$dir/doctor" || die "doctor's verdict: $(tail -1 "$dir/doctor")"
log "migration run, doctor: healthy"

# A 1536-dim query (the seed's dimensions) on the empty table: no rows, exit 0.
query="[$(printf '0.5,%.0s' $(seq 1535))0.5]"
"$binary" --database-url "$db" search --table fragment_embeddings --vector "$query" -k 3 > "$dir/search" \
    || die "search on the empty table failed"
set +e
"$binary" --database-url "$db" search --table fragment_embeddings --vector '[1,2,3]' -k 3 > /dev/null 2> "$dir/err"
status=$?
set -e
[ "$status" -eq 1 ] && grep -q '1536' "$dir/err" || die "a 3-dim query: exit $status, $(cat "$dir/err")"
log "search: an empty result, and a query of the wrong dimensions refused ($(cat "$dir/err"))"
