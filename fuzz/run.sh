#!/usr/bin/env bash
# Runs fuzz targets in turn, each until 10 million executions or a time limit, and keeps each
# one's libFuzzer log in fuzz/logs/ (FUZZING.md's figures come from their closing lines).
#
#   fuzz/run.sh [seconds per target, default 600] [target ...]   (all targets when none named)
#
# cargo fuzz needs nightly compiler flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them. No sanitizer: the crate forbids unsafe code and no target reaches a C dependency, and
# without AddressSanitizer every target runs several times faster. New inputs go to
# fuzz/corpus/<target> (not checked in); fuzz/seeds/<target> and fuzz/regressions/<target> are
# read as well; a crash is saved in fuzz/artifacts/<target>/ (copy it to
# fuzz/regressions/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  inputs=("corpus/$target" "seeds/$target")
  if [ -d "regressions/$target" ]; then
    inputs+=("regressions/$target")
  fi
  echo "==> $target (at most ${seconds}s or 10,000,000 runs)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "${inputs[@]}" -- \
    -runs=10000000 -max_total_time="$seconds" -print_final_stats=1 >"logs/$target.log" 2>&1 \
    || echo "$target: FAILED, see fuzz/logs/$target.log and fuzz/artifacts/$target/"
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done|stat::number_of_executed_units|stat::average_exec_per_sec|panicked|ERROR' \
    "logs/$target.log" || true
done
