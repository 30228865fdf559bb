#!/usr/bin/env bash
# Every benchmark report of BENCHMARKS.md, one after the other, as one Markdown document on stdout
# (progress on stderr): codecs, KNN and migrations, bulk insert and copy. Each report runs its contenders
# interleaved on the same generated data in one process and prints medians, spreads, the ratios to the
# baselines measured in the same run, its bars and the environment.
#
#   scripts/bench.sh            # codec, KNN at 10k, migrations, bulk insert and copy at 10k: about 12 min
#   scripts/bench.sh --large    # and KNN, bulk insert and copy at 100k as well: about 50 min more
#
# Provisions a throwaway PostgreSQL 15 + pgvector (scripts/with-pg.sh) unless PG_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PG_DATABASE_URL:-}" ] && [[ "${DATABASE_URL:-}" != postgres* ]]; then
    exec scripts/with-pg.sh "$0" "$@"
fi
db_args=() load_args=()
case "${1:-}" in
    "") ;;
    --large) db_args=(--sizes 10000,100000); load_args=(--large) ;;
    *) echo "usage: scripts/bench.sh [--large]" >&2; exit 2 ;;
esac
scripts/bench-codec.sh
scripts/bench-db.sh "${db_args[@]}"
scripts/bench-load.sh "${load_args[@]}"
