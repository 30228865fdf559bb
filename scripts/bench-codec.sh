#!/usr/bin/env bash
# The codec benchmark report: every codec workload, contenders interleaved, medians, spreads and ratios to
# the baselines measured in the same run, the issue's bars, and the environment, as Markdown on stdout.
#
#   scripts/bench-codec.sh                  # 21 repetitions of ~10 ms batches per contender, ~10 s
#   scripts/bench-codec.sh --reps 41 --batch-ms 20
#
# Runs under `nice` so that it does not crowd out other work on a shared machine (on a quiet machine the
# niceness makes no difference; on a busy one the spreads show it).
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n 10 cargo run --quiet --release --locked -p diesel-vector-bench --bin codec-report -- "$@"
