#!/usr/bin/env bash
# What a lent GPU should run, in one call (device time is short): build, the CUDA tests,
# compute-sanitizer over the kernels' parity tests, the op and detector benchmarks. Logs and
# JSON go to $OUT (default bench/out); the last lines printed are the summary.
#   bash bench/gpu_session.sh
set -uo pipefail
out=${OUT:-bench/out}
mkdir -p "$out"
summary=()
step() {  # step NAME COMMAND...: runs it, output to $out/NAME.log, records its exit status
  local name=$1
  shift
  local start=$SECONDS
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  summary+=("$name: exit $rc, $((SECONDS - start)) s")
  tail -n 25 "$out/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
step build pip install --no-build-isolation --no-deps -e .
step tests_cuda python -m pytest -q -p no:cacheprovider tests/test_npr_op.py -m cuda
step sanitizer compute-sanitizer --tool memcheck --error-exitcode 1 python -m pytest -q -x -p no:cacheprovider \
  tests/test_npr_op.py -m cuda -k "(matches_official or vector_chunks or pixel_widths or unaligned or backward_matches)"
step bench_nchw python bench/bench_npr.py --devices cuda --json "$out/gpu_nchw.json" --markdown
step bench_channels_last python bench/bench_npr.py --devices cuda --channels-last --json "$out/gpu_cl.json" --markdown
step bench_detector python bench/bench_detector.py --device cuda --json "$out/gpu_detector.json"
step tests_all python -m pytest -q -p no:cacheprovider tests
printf '%s\n' "${summary[@]}"
