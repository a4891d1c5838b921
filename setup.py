"""Builds npr_cuda's extension npr_cuda._C: the CPU kernels always, the CUDA kernels whenever
nvcc and a CUDA build of torch are present, GPU or not.

    pip install --no-build-isolation -e .

Environment:
    NPR_BUILD_CUDA        auto (default): CUDA kernels if possible; 1: require them; 0: skip them
    CUDA_HOME             the CUDA toolkit; default: the real prefix of the nvcc on PATH
    TORCH_CUDA_ARCH_LIST  GPU architectures; default: the visible GPUs', or DEFAULT_ARCH_LIST
                          when no GPU is visible (a compile-only machine)
    MAX_JOBS              parallel compile jobs
"""

import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

# A100 and H100/H200 code, plus PTX for newer GPUs. CMakeLists.txt reads this line too.
DEFAULT_ARCH_LIST = "8.0;9.0+PTX"


def find_cuda_home():
    """The CUDA toolkit prefix: CUDA_HOME/CUDA_PATH if set, else where the nvcc on PATH lives.

    `nvcc --dryrun` prints the toolkit's TOP, which is right even when the `nvcc` on PATH is a
    wrapper script in another directory (torch would guess that directory's parent).
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return "/usr/local/cuda" if os.path.exists("/usr/local/cuda/bin/nvcc") else None
    dryrun = subprocess.run([nvcc, "--dryrun", "-c", "probe.cu"], capture_output=True, text=True)
    top = re.search(r"^#\$ TOP=(.+)$", dryrun.stderr, re.MULTILINE)
    if top:
        return os.path.realpath(top.group(1).strip())
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


mode = os.environ.get("NPR_BUILD_CUDA", "auto").strip().lower()
if mode not in ("auto", "0", "1"):
    raise SystemExit(f"NPR_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
cuda_home = find_cuda_home() if mode != "0" else None
if cuda_home:
    os.environ["CUDA_HOME"] = cuda_home  # read by torch.utils.cpp_extension at import

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

with_cuda = mode != "0" and cuda_home is not None and torch.version.cuda is not None
if mode == "1" and not with_cuda:
    raise SystemExit(
        "NPR_BUILD_CUDA=1 but the CUDA kernels cannot be built: "
        f"nvcc toolkit: {cuda_home or 'not found'}, torch.version.cuda: {torch.version.cuda}"
    )
if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
    os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST

sources = [*sorted(glob.glob("csrc/*.cpp")), *sorted(glob.glob("csrc/cpu/*.cpp"))]  # python_module.cpp among them
define_macros = [("NPR_BUILD_CUDA", "1" if with_cuda else "0")]
# -Wno-psabi: GCC notes that passing wide vectors changed ABI in old GCCs, for every at::vec
# AVX2/AVX-512 function (npr_kernel_avx2.cpp, npr_kernel_avx512.cpp); nothing of ours crosses an
# ABI boundary with them.
extra_compile_args = {"cxx": ["-O3", "-Wno-psabi"]}
extra_link_args = []
if "OpenMP" in torch.__config__.parallel_info() and sys.platform != "win32":
    # at::parallel_for is inline: without -fopenmp here it silently runs on one thread.
    extra_compile_args["cxx"].append("-fopenmp")
    extra_link_args.append("-fopenmp")
if with_cuda:
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")
    define_macros += [("NPR_CUDA_ARCH_LIST", f'"{arch_list}"')]
    # No --use_fast_math: it flushes denormals, and the op must match ATen bit for bit.
    extra_compile_args["nvcc"] = ["-O3", "-lineinfo"]
    extension = CUDAExtension
else:
    extension = CppExtension


class BuildWithPersistentObjects(BuildExtension):
    """Keeps object files in build/ so that a repeated `pip install -e .` (an editable install
    builds in a fresh temporary directory) recompiles only what changed, through ninja."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build", "temp")


print(f"npr_cuda: building {'CPU and CUDA' if with_cuda else 'CPU-only'} kernels")
setup(
    ext_modules=[
        extension(
            "npr_cuda._C",
            sources,
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ],
    cmdclass={"build_ext": BuildWithPersistentObjects},
)
