#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the other, and prints a
# line per target: executions, coverage (libFuzzer's `cov` edges and `ft` features), corpus size, and
# whether it found anything. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The corpus of each target grows in fuzz/corpus/TARGET (kept between runs, not committed); a crash is
# saved in fuzz/artifacts/TARGET and its input printed, and the script exits 1 after running the rest.
# Not part of .ci/run: fuzzing runs as long as it is given. FUZZING.md records the runs so far.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi

echo "building ${#targets[@]} targets (nightly, address sanitizer)" >&2
cargo +nightly fuzz build >&2
# The built binaries are run directly, so that editing the crate during a long run rebuilds nothing.
bin_dir="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

mkdir -p logs
failed=0
printf '%-16s %12s %8s %8s %8s %10s  %s\n' target executions cov ft corpus exec/s result
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    status=0
    # One job on one core: the machine is shared. -timeout: a single input taking 10 s is a finding.
    mkdir -p "artifacts/$target"
    "$bin_dir/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "corpus/$target" -type f | wc -l)
    rate=$(( ${runs:-0} / (seconds > 0 ? seconds : 1) ))
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FOUND (exit $status): see fuzz/$log and fuzz/artifacts/$target"
        failed=1
    fi
    printf '%-16s %12s %8s %8s %8s %10s  %s\n' "$target" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$rate" "$result"
done
exit "$failed"
