#!/usr/bin/env bash
# Everything a lent GPU should run, in one call: device time is about 15 minutes in all, the
# machine's start included, so this takes about 8 minutes on an H100 when everything passes.
# Each step has its own time limit and writes its log under $OUT as it finishes (a run cut short
# still returns what it did); the summary ($OUT/summary.txt) ends the output.
#
#   bash bench/gpu_session.sh          # on the GPU machine (it builds for sm_90 first)
#   bash bench/gpu_session.sh --cpu    # the same steps on the CPU, tiny, no build: tries the script
#
# Steps, in order: the GPU and the build (build_info, cubins, SASS summary); every kernel instance
# against the CPU op and the official formula; the CUDA pytest suite; more than 2^31 elements;
# compute-sanitizer memcheck and initcheck; kernel launches per call; the bandwidth tables (and
# one for a 4x4 window); the detector, alone and end to end; ncu on the case slowest against clone.
set -uo pipefail
cd "$(dirname "$0")/.."
cpu=0
[ "${1:-}" = "--cpu" ] && cpu=1
out=${OUT:-bench/out/gpu_session}
mkdir -p "$out"
summary=()

step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, log in $out/NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  summary+=("$(printf '%-16s exit %3d  %4d s' "$name" "$rc" $((SECONDS - start)))")
  printf '%s\n' "${summary[@]}" > "$out/summary.txt"
  echo "== $name: exit $rc ($((SECONDS - start)) s)"
  tail -n 12 "$out/$name.log"
}
skip() {  # skip NAME WHY
  summary+=("$(printf '%-16s skipped: %s' "$1" "$2")")
  printf '%s\n' "${summary[@]}" > "$out/summary.txt"
}
have() { command -v "$1" > /dev/null; }

if [ $cpu = 1 ]; then
  dev=cpu big=1x3x64x64,2x3x64x64 small=1x3x32x32,2x3x24x24 fallback=1x3x30x30,1x3x31x31 wide=1x64x16x16 dtypes=float32,bfloat16
  bench_seconds=0.02
else
  dev=cuda big=8x3x1024x1024,32x3x1024x1024 small=1x3x224x224,32x3x224x224 fallback=8x3x1022x1022,8x3x1023x1023
  wide=8x64x256x256 dtypes=float32,bfloat16,float16 bench_seconds=0.1
fi
bench() {  # bench NAME SHAPES [bench_npr.py options]
  local name=$1 shapes=$2
  shift 2
  step "$name" 150 python bench/bench_npr.py --devices "$dev" --dtypes "$dtypes" --shapes "$shapes" \
    --seconds "$bench_seconds" --markdown --json "$out/$name.json" "$@"
}

if [ $cpu = 0 ]; then
  step gpu 30 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.memory,driver_version --format=csv
  step build 300 env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 NPR_BUILD_CUDA=1 \
    pip install --no-build-isolation --no-deps -e .
else
  skip gpu "--cpu"
  skip build "--cpu: the installed build is used"
fi
step build_info 60 python -c "import torch, npr_cuda; print(npr_cuda.build_info()); \
print(torch.cuda.get_device_properties(0) if torch.cuda.is_available() else 'no GPU')"
if have cuobjdump || python -c "import nvidia" 2> /dev/null; then
  step sass 60 python bench/sass_summary.py --markdown --check
else
  skip sass "no cuobjdump"
fi
step parity 180 python bench/cuda_checks.py parity --device "$dev"
step pytest_cuda 240 python -m pytest -q -p no:cacheprovider -m cuda tests/test_npr_op.py
step large 180 python bench/cuda_checks.py large --device "$dev"
if have compute-sanitizer; then
  step memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 1 python bench/cuda_checks.py launch-each
  step initcheck 240 compute-sanitizer --tool initcheck --error-exitcode 1 python bench/cuda_checks.py launch-each
else
  skip memcheck "no compute-sanitizer"
  skip initcheck "no compute-sanitizer"
fi
step kernels 60 python bench/cuda_checks.py kernels --device "$dev"
bench bench_nchw_large "$big"
bench bench_cl_large "$big" --channels-last
bench bench_nchw_small "$small,$fallback" --no-compiled
bench bench_cl_small "$small,$wide" --channels-last --no-compiled
bench bench_window4 "$big" --window 4 --anchor 1,3  # the window kernels, against the author's formula
step detector 150 python bench/bench_detector.py --device "$dev" --batch-size "$([ $cpu = 1 ] && echo 2 || echo 64)" \
  --size "$([ $cpu = 1 ] && echo 64 || echo 224)" --steps 5 --channels-last --json "$out/detector.json"
# The tools end to end against the official paths (issue 15): eval and one training epoch on a
# generated tree, images/s and the speed-up.
step end_to_end 150 python bench/bench_detector.py --end-to-end --device "$dev" \
  --images "$([ $cpu = 1 ] && echo 8 || echo 512)" --size "$([ $cpu = 1 ] && echo 48 || echo 256)" \
  --batch-size "$([ $cpu = 1 ] && echo 4 || echo 32)" --workers "$([ $cpu = 1 ] && echo 0 || echo 8)" \
  --json "$out/end_to_end.json"
if have ncu; then
  step ncu 180 ncu --set full --kernel-name regex:row_pair_kernel --launch-skip 2 --launch-count 1 \
    python bench/cuda_checks.py slowest "$out"/bench_*.json  # 2 warm-up launches, then the one measured
else
  step slowest 60 python bench/cuda_checks.py slowest --device "$dev" "$out"/bench_*.json
  skip ncu "no ncu"
fi
echo "== summary ($out/summary.txt)"
cat "$out/summary.txt"
