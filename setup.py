"""Builds npr_cuda's extension npr_cuda._C through CMake (CMakeLists.txt, the one build
description of sources, instruction-set flags and CUDA architectures): the CPU kernels always,
the CUDA kernels whenever a CUDA build of torch and a CUDA toolkit of its version are present,
GPU or not.

    pip install --no-build-isolation -e .

Environment:
    NPR_BUILD_CUDA        auto (default): CUDA kernels if possible; 1: require them; 0: skip them
    CUDA_HOME             the CUDA toolkit; default: the real prefix of the nvcc on PATH
    TORCH_CUDA_ARCH_LIST  GPU architectures; default: the visible GPUs', or CMakeLists.txt's
                          NPR_DEFAULT_CUDA_ARCH_LIST when no GPU is visible (a compile-only machine)
    MAX_JOBS              parallel compile jobs
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
CUDA_MODES = {"auto": "AUTO", "1": "ON", "0": "OFF"}


def visible_gpu_arch_list():
    """The visible GPUs' architectures as TORCH_CUDA_ARCH_LIST spells them, or None."""
    import torch

    if torch.version.cuda is None or not torch.cuda.is_available():
        return None
    capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))


class CMakeBuild(build_ext):
    """Configures and builds CMakeLists.txt's `_C` target into the folder setuptools expects. The
    build folder, build/cmake-python, persists, so that a repeated install recompiles only what
    changed."""

    def build_extension(self, ext):
        mode = os.environ.get("NPR_BUILD_CUDA", "auto").strip().lower()
        if mode not in CUDA_MODES:
            raise SystemExit(f"NPR_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
        if shutil.which("cmake") is None:
            raise SystemExit("npr_cuda: building needs cmake >= 3.18 on PATH (pip install cmake)")
        build_dir = os.path.join(ROOT, "build", "cmake-python")
        ext_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        visible = visible_gpu_arch_list() if mode != "0" else None
        cmake_mode, required_by = CUDA_MODES[mode], ""
        if mode == "auto" and visible:  # a GPU is there: its kernels, or a build error that says why
            cmake_mode, required_by = "ON", "a GPU is visible (NPR_BUILD_CUDA=auto), but"
        configure = [
            "cmake", "-S", ROOT, "-B", build_dir,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DNPR_BUILD_PYTHON_MODULE=ON",
            "-DNPR_BUILD_TESTS=OFF",
            f"-DNPR_BUILD_CUDA={cmake_mode}",
            f"-DNPR_CUDA_REQUIRED_BY={required_by}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={ext_dir}",
        ]  # fmt: skip
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"] if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")) else []
        configure.append(f"-DTORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST') or visible or ''}")
        subprocess.run(configure, check=True)
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", build_dir, "--target", "_C", "-j", jobs], check=True)


setup(ext_modules=[Extension("npr_cuda._C", sources=[])], cmdclass={"build_ext": CMakeBuild})
