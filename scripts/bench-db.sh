#!/usr/bin/env bash
# The database benchmark report (issue 6, workloads 3 and 5): KNN top-10 on SQLite and PostgreSQL (the DSL
# and the search API against the same job in hand-written SQL, vec0, exact scans, ivfflat, HNSW, the crate's
# Rust distance functions against sqlite-vec's, recall@10 against an exact scan in Rust) and migrations (the
# runner against the SQL it runs), contenders interleaved, as Markdown on stdout.
#
#   scripts/with-pg.sh scripts/bench-db.sh   # a throwaway PostgreSQL + pgvector, unless PG_DATABASE_URL is set
#   scripts/bench-db.sh                  # 10k vectors, ~4 min on 2 shared cores (first build ~2 min more)
#   scripts/bench-db.sh --sizes 10000,100000 --queries 10 --reps 5   # adds 100k vectors, ~12 min more
#   scripts/bench-db.sh --only migrations --backend sqlite
#
# Without PG_DATABASE_URL the PostgreSQL workloads are skipped (said on stderr). Every run creates its own
# databases (`bench_*`) and SQLite files in the temporary directory, and removes them.
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n 10 cargo run --quiet --release --locked -p diesel-vector-bench --bin db-report -- "$@"
