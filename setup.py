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

The version names the torch and CUDA it is built for (0.1.0+torch2.14.cu130), as the binary only
works with that torch release; npr_cuda/__init__.py refuses to load under another one.
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
CUDA_MODES = {"auto": "AUTO", "1": "ON", "0": "OFF"}
BASE_VERSION = "0.1.0"


def version_and_torch_requirement():
    """The package version with the torch it is built for as the local part, and the torch
    requirement that goes with it: the binary works with that one release only. The names come
    from npr_cuda/release.py, which the import-time check uses, loaded on its own (the package
    cannot be imported before it is built)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("npr_release", os.path.join(ROOT, "npr_cuda", "release.py"))
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    major, minor = release.release(torch.__version__)
    local = release.local_version(torch.__version__, torch.version.cuda)
    return f"{BASE_VERSION}+{local}", f"torch=={major}.{minor}.*"


def visible_gpu_arch_list():
    """The visible GPUs' architectures as TORCH_CUDA_ARCH_LIST spells them, or None."""
    import torch

    if torch.version.cuda is None or not torch.cuda.is_available():
        return None
    capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))


class CMakeBuild(build_ext):
    """Configures and builds CMakeLists.txt's `_C` target into the folder setuptools expects. The
    build folder, build/cmake-<python>-torch<version>-<editable|wheel>, persists, so that a
    repeated install recompiles only what changed, and builds against other torch releases, or for
    a wheel's other GPU architectures, keep apart."""

    def run(self):
        # Whether the build is imported from the source tree (pip install -e, build_ext --inplace);
        # read here, as setuptools clears `inplace` while it builds and copies the module after.
        self.in_source_tree = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def build_extension(self, ext):
        mode = os.environ.get("NPR_BUILD_CUDA", "auto").strip().lower()
        if mode not in CUDA_MODES:
            raise SystemExit(f"NPR_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
        if shutil.which("cmake") is None:
            raise SystemExit("npr_cuda: building needs cmake >= 3.18 on PATH (pip install cmake)")
        import torch

        python = f"py{sys.version_info.major}{sys.version_info.minor}"
        purpose = "editable" if self.in_source_tree else "wheel"
        build_dir = os.path.join(ROOT, "build", f"cmake-{python}-torch{torch.__version__}-{purpose}")
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
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={os.path.join(build_dir, 'module')}",
        ]  # fmt: skip
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"] if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")) else []
        configure.append(f"-DTORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST') or visible or ''}")
        subprocess.run(configure, check=True)
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", build_dir, "--target", "_C", "-j", jobs], check=True)
        # Each build folder keeps its own module, so that one folder's build never looks up to
        # date for another's; setuptools packs what is in ext_dir.
        module = os.path.join(build_dir, "module", os.path.basename(self.get_ext_fullpath(ext.name)))
        built_for = os.path.join(build_dir, "generated", "_built_for.py")
        os.makedirs(ext_dir, exist_ok=True)
        for path in (module, built_for):
            shutil.copy2(path, ext_dir)
        if self.in_source_tree:
            # The source package is the one imported; setuptools copies the module there itself.
            shutil.copy2(built_for, os.path.join(ROOT, "npr_cuda"))


VERSION, TORCH_REQUIREMENT = version_and_torch_requirement()
setup(
    version=VERSION,
    install_requires=[TORCH_REQUIREMENT],
    ext_modules=[Extension("npr_cuda._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
