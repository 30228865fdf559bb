#!/usr/bin/env bash
# Issue 12's SQLite bars the ann report does not measure: the exact top 10 from the index's contiguous vectors
# (`codes,vectors`) and from the rows in place against vec0, and the CLI's `search` as a whole process against
# the sqlite3 shell running the raw vec0 query on the same file. Markdown on stdout.
#
#   scripts/bench-sqlite-process.sh                    # 100k x 1536, both data sets: ~1.5 GB of temp disk per set, a few min
#   scripts/bench-sqlite-process.sh --rows 10000       # quicker
#   scripts/bench-sqlite-process.sh --set embedding-like --queries 20 --reps 5
#
# It builds the CLI (release, feature `cli`: SQLite only, no libpq) and sqlite-vec's loadable extension from
# the source the sqlite-vec crate vendors (the same file and version the crate compiles in, -O3 as a release
# build of it), for the system's sqlite3 shell (SQLITE3, default /usr/bin/sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
sqlite3="${SQLITE3:-/usr/bin/sqlite3}"
cargo build --quiet --release --locked --features cli --bin diesel-vector
vec_src="$(cargo metadata --format-version 1 --locked |
    python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "sqlite-vec").rsplit("/", 1)[0])')"
mkdir -p "$target/sqlite-vec"
cc -O3 -fPIC -shared "$vec_src/sqlite-vec.c" -I"$vec_src" -o "$target/sqlite-vec/vec0.so" -lm
exec nice -n 10 cargo run --quiet --release --locked -p diesel-vector-bench --bin sqlite-process-report -- \
    --cli "$target/release/diesel-vector" --sqlite3 "$sqlite3" --extension "$target/sqlite-vec/vec0.so" "$@"
