#!/usr/bin/env bash
# The bulk insert and copy report (issue 6, workloads 2 and 4): every contender on the same generated
# embeddings, interleaved, a fresh database per run, medians, spreads and ratios to the baselines measured in
# the same run, the issue's bars, and the environment, as Markdown on stdout (progress on stderr).
#
#   scripts/bench-load.sh                   # 10k rows, 7 repetitions after 1 warm-up round: ~3.5 min
#   scripts/bench-load.sh --large           # and 100k rows: ~25 min more
#   scripts/bench-load.sh --huge            # and 1M rows: hours, ~13 GB of memory
#   scripts/bench-load.sh --only copy --sizes 20000 --reps 7
#
# Needs PG_DATABASE_URL: a superuser URL on a PostgreSQL server with pgvector, where it creates and drops
# databases named dvload_<pid>_*; without it, scripts/with-pg.sh provisions a throwaway cluster (needs root
# for the installs). SQLite files go to $TMPDIR (default /tmp).
#
# Runs under `nice` so that it does not crowd out other work on a shared machine; the report's environment
# block shows the load average, and the copy's bars need the second core (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
nice -n 10 cargo build --quiet --release --locked -p diesel-vector-bench --bin load-report
exec scripts/with-pg.sh nice -n 10 target/release/load-report "$@"
