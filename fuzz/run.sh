#!/usr/bin/env bash
# Fuzzes every target (or those named) for a budget of executions, then minimises its corpus.
#   fuzz/run.sh                 # 10 million executions each (the release bar, FUZZING.md)
#   RUNS=100000 fuzz/run.sh client_frame config
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable toolchain through
# RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || {
    echo "error: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 1
}
export RUSTC_BOOTSTRAP=1
# The release profile's LTO would re-optimise the whole server into every target: minutes of
# linking each. Fuzzing needs coverage, not LTO.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
RUNS=${RUNS:-10000000}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo fuzz list --fuzz-dir fuzz)
[ -d fuzz/corpus/client_frame ] || fuzz/seed.sh

cargo fuzz build --fuzz-dir fuzz -O --debug-assertions "${TARGETS[@]:0:1}" >/dev/null 2>&1 || true
status=0
printf '%-16s %12s %10s %8s %s\n' target executions exec/s corpus result
for t in "${TARGETS[@]}"; do
    log=$(mktemp)
    started=$(date +%s)
    if cargo fuzz run --fuzz-dir fuzz -O --debug-assertions "$t" "fuzz/corpus/$t" -- \
        -runs="$RUNS" -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/artifacts/$t and $log)"
        status=1
    fi
    secs=$(( $(date +%s) - started ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    if [ "$result" = ok ]; then
        cargo fuzz cmin --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" >/dev/null 2>&1 || true
        rm -f "$log"
    fi
    size=$(find "fuzz/corpus/$t" -type f | wc -l)
    printf '%-16s %12s %10s %8s %s (%ss)\n' "$t" "$execs" "$rate" "$size" "$result" "$secs"
done
exit $status
