#!/usr/bin/env bash
# Every benchmark report of BENCHMARKS.md, one after the other, as one Markdown document on stdout
# (progress on stderr): codecs, KNN and migrations, bulk insert and copy. Each report runs its contenders
# interleaved on the same generated data in one process and prints medians, spreads, the ratios to the
# baselines measured in the same run, its bars and the environment.
#
#   scripts/bench.sh            # the issue's default sizes, 10k and 100k rows: about 1 hour on 2 cores
#   scripts/bench.sh --quick    # 10k rows only: about 12 minutes
#   scripts/bench.sh --huge     # 10k, 100k and 1M rows: many hours, ~13 GB of memory, ~10 GB of disk
#
# Provisions a throwaway PostgreSQL 15 + pgvector (scripts/with-pg.sh) unless PG_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PG_DATABASE_URL:-}" ] && [[ "${DATABASE_URL:-}" != postgres* ]]; then
    exec scripts/with-pg.sh "$0" "$@"
fi
case "${1:-}" in
    "") sizes=10000,100000 ;;
    --quick) sizes=10000 ;;
    --huge) sizes=10000,100000,1000000 ;;
    *) echo "usage: scripts/bench.sh [--quick | --huge]" >&2; exit 2 ;;
esac
scripts/bench-codec.sh
scripts/bench-db.sh --sizes "$sizes"
scripts/bench-load.sh --sizes "$sizes"
