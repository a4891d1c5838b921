#!/usr/bin/env bash
# The CPU kernels and the host run of the CUDA bodies under AddressSanitizer and UBSan, in a build
# folder of their own (build/sanitize; the normal build stays as it is):
#   1. CMake builds the Python module and the C++ tests with -fsanitize=address,undefined
#      (CMakeLists.txt's NPR_SANITIZE; no CUDA kernels: only host code can be sanitized here);
#   2. the op's tests run against that module, from a copy of the package and of tests/, with the
#      sanitizer runtimes preloaded into Python, so that torch's CPU tensors get redzones too;
#   3. ctest runs test_npr_dispatch and test_cuda_bodies over tests/kernel_shapes.txt.
# The first report of either sanitizer ends its process and fails the step. .ci/run runs this;
# run it alone with `bash .ci/sanitize.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/sanitize
jobs="${MAX_JOBS:-2}"

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNPR_BUILD_CUDA=OFF -DNPR_BUILD_PYTHON_MODULE=ON \
  -DNPR_SANITIZE=address,undefined -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/$build/module" > "$build.log" 2>&1 ||
  { cat "$build.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target _C test_npr_dispatch test_cuda_bodies

# The package's Python files beside the sanitized module, and the tests beside them: run from
# there, `import npr_cuda` finds this copy, never the checkout's own build.
stage="$build/stage"
rm -rf "$stage" && mkdir -p "$stage"
cp -r npr_cuda tests pyproject.toml "$stage/"
find "$stage" -name '__pycache__' -prune -exec rm -rf {} + -o -name '*.so' -exec rm -f {} +
cp "$build"/module/_C*.so "$build/generated/_built_for.py" "$stage/npr_cuda/"

export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
runtimes="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
# torch.compile's tests stay out: inductor compiles and loads C++ of its own, uninstrumented, and
# they test the op's registration, not its kernels (which the other tests run). --capture=sys:
# pytest captures Python's output only, so a sanitizer's report (written to file descriptor 2
# just before it aborts the process) reaches the log.
readelf -d "$stage"/npr_cuda/_C*.so | grep -q 'NEEDED.*libasan' || { echo "the staged module is not sanitized" >&2; exit 1; }
(cd "$stage" && LD_PRELOAD="$runtimes" python -c 'import npr_cuda, os; assert npr_cuda.__file__.startswith(os.getcwd())' &&
  LD_PRELOAD="$runtimes" python -m pytest -q -p no:cacheprovider --capture=sys \
  tests/test_npr_op.py tests/test_npr_window.py tests/test_npr_huge_windows.py -k "not torch_compile")
ctest --test-dir "$build" --output-on-failure -R "npr_dispatch|cuda_bodies_on_host"
