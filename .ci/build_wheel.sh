#!/usr/bin/env bash
# Builds the wheel of npr_cuda for the torch installed with the `python` on PATH:
# dist/npr_cuda-<version>+torch<X.Y>.cu<NNN>-<python>-manylinux_2_28_x86_64.whl, with the CPU
# kernels (every instruction set) and the CUDA kernels for the GPU architectures below
# (TORCH_CUDA_ARCH_LIST overrides them). auditwheel checks it against the manylinux_2_28 policy and
# names it so; it bundles nothing, as torch's own libraries, the CUDA runtime and OpenMP come with
# torch (torchvision and torchao exclude the same).
set -euo pipefail
cd "$(dirname "$0")/.."
export NPR_BUILD_CUDA="${NPR_BUILD_CUDA:-1}"
# Ampere (A100, A10/RTX 30xx), Ada (L4/RTX 40xx), Hopper, Blackwell (B200, RTX 50xx), and PTX of
# the newest for what comes after.
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;8.6;8.9;9.0;10.0;12.0+PTX}"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
python -m pip wheel --no-build-isolation --no-deps --wheel-dir "$raw" .
python -m auditwheel repair --plat manylinux_2_28_x86_64 --wheel-dir dist \
  --exclude 'libtorch*.so' --exclude 'libc10*.so' --exclude 'libcudart.so.*' --exclude 'libgomp.so.*' \
  "$raw"/npr_cuda-*.whl
