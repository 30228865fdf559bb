#!/usr/bin/env bash
# The quantized index engine's report (issue 12, pure part): scan kernels per SIMD level against the memory
# bandwidth floor and a naive scalar baseline, recall against the candidates reranked, latency of the default
# search from memory and from SQLite, sqlite-vec's vec0 on the same rows, memory and build times; on the
# tests' clustered generator and an embedding-like one. Markdown on stdout.
#
#   scripts/bench-ann.sh                 # 100k x 1536, 100 queries: ~2 GB of memory, ~3 GB of temp disk, a few min
#   scripts/bench-ann.sh --quick         # 10k rows
#   scripts/bench-ann.sh --rows 1000000  # 1M rows: ~13 GB of memory (the SQLite part needs ~7 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n 10 cargo run --quiet --release --locked -p diesel-vector-bench --bin ann-report -- "$@"
