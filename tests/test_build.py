"""The build itself: every instruction set's kernels stay in their own copy, and the CUDA kernels
build from NVIDIA's pip packages where no system toolkit is installed.

CMakeLists.txt compiles kernels_avx2.cpp and kernels_avx512.cpp with those sets' compiler flags.
Every inline function of torch's headers that they share with the baseline files is compiled in
each, and the linker keeps one copy: if it kept a wide one, a CPU without the set would fault in
code that has nothing to do with our kernels. The machine code is read here for that."""

import os
import platform
import re
import shutil
import subprocess
import sys

import pytest
import torch

import npr_cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

reads_x86_machine_code = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None,
    reason="reads x86-64 machine code with objdump",
)

FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")
YMM = re.compile(r"%ymm")
ZMM = re.compile(r"%zmm|%k[1-7]\b")  # 512-bit registers, or AVX-512 mask registers


def wide_functions(library):
    """{demangled function name: {"ymm", "zmm"}} for each function of `library` that uses 256- or
    512-bit registers."""
    text = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", library], capture_output=True, text=True, check=True
    ).stdout
    found, name = {}, None
    for line in text.splitlines():
        match = FUNCTION.match(line)
        if match:
            name = match.group(1)
        elif name is not None:
            if ZMM.search(line):
                found.setdefault(name, set()).add("zmm")
            elif YMM.search(line):
                found.setdefault(name, set()).add("ymm")
    return found


def outside_their_set(found):
    """The functions whose registers their name's instruction set does not allow: AVX-512 only in
    npr_cuda::cpu::AVX512 and at::vec::AVX512 (template instances named after them included),
    AVX2 there or in the AVX2 namespaces."""
    return {
        name: registers
        for name, registers in found.items()
        if "AVX512" not in name and not ("AVX2" in name and registers == {"ymm"})
    }


@reads_x86_machine_code
def test_wide_instructions_stay_in_their_instruction_sets_namespaces():
    found = wide_functions(npr_cuda._C.__file__)
    if npr_cuda.build_info()["cpu_isa"] != "DEFAULT":
        assert any("npr_cuda::cpu::AVX512" in name for name in found), "no AVX-512 kernels found in the library"
    assert outside_their_set(found) == {}


def test_the_check_names_a_wide_copy_of_a_shared_function():
    found = {
        "c10::detail::_str_wrapper<char const&>::call[abi:cxx11](char const&)": {"ymm"},
        "npr_cuda::cpu::AVX2::run_kernel(npr_cuda::Pass, npr_cuda::PlaneLayout const&, npr_cuda::Window const&)": {
            "ymm"
        },
        "npr_cuda::cpu::AVX2::(anonymous namespace)::f()": {"zmm"},
        "void at::parallel_for<npr_cuda::cpu::AVX512::(anonymous namespace)::g()::{lambda(long, long)#1}>()": {"zmm"},
    }
    assert set(outside_their_set(found)) == {
        "c10::detail::_str_wrapper<char const&>::call[abi:cxx11](char const&)",
        "npr_cuda::cpu::AVX2::(anonymous namespace)::f()",
    }


def hiding_commands():
    """Shell commands that hide the system CUDA toolkit inside a private mount namespace: a tmpfs
    over its prefix (and /usr/local/cuda's), /dev/null over each nvcc on PATH."""
    commands, prefixes = [], set()
    nvcc = shutil.which("nvcc")
    if nvcc:
        dryrun = subprocess.run([nvcc, "--dryrun", "-c", "probe.cu"], capture_output=True, text=True).stderr
        top = re.search(r"^#\$ TOP=(.+)$", dryrun, re.MULTILINE)
        if top:
            prefixes.add(os.path.realpath(top.group(1).strip()))
        commands += [f"mount --bind /dev/null {path}" for path in {nvcc, os.path.realpath(nvcc)}]
    if os.path.isdir("/usr/local/cuda"):
        prefixes.add(os.path.realpath("/usr/local/cuda"))
    return [f"mount -t tmpfs none {prefix}" for prefix in sorted(prefixes)] + commands


def pip_toolkit_present():
    if torch.version.cuda is None:
        return False
    import nvidia

    major = torch.version.cuda.split(".")[0]
    return any(os.path.exists(os.path.join(p, f"cu{major}", "bin", "nvcc")) for p in nvidia.__path__)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not pip_toolkit_present(),
    reason="needs root, unshare, a CUDA build of torch and the pip toolkit (cuda-toolkit in requirements.txt)",
)
def test_cuda_kernels_build_from_the_pip_toolkit_with_the_system_one_hidden(tmp_path):
    build, package = tmp_path / "build", tmp_path / "package"
    configure = (
        f"cmake -S {ROOT} -B {build} -G Ninja -DPython3_EXECUTABLE={sys.executable} -DNPR_BUILD_PYTHON_MODULE=ON "
        f"-DNPR_BUILD_TESTS=OFF -DNPR_BUILD_CUDA=AUTO -DTORCH_CUDA_ARCH_LIST=9.0 "
        f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={build}"
    )
    script = " && ".join([*hiding_commands(), "! command -v nvcc", configure, f"cmake --build {build} --target _C"])
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "the CUDA toolkit from pip" in result.stdout and "CUDA kernels ON" in result.stdout
    # The module just built, in a copy of the package, imported instead of the checkout's.
    shutil.copytree(os.path.join(ROOT, "npr_cuda"), package / "npr_cuda", ignore=shutil.ignore_patterns("_C*.so"))
    shutil.copy(next(build.glob("_C*.so")), package / "npr_cuda")
    probe = "import npr_cuda; print(npr_cuda.__file__, npr_cuda.cuda_kernels_built())"
    shown = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        cwd=package,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(package)},
    )
    assert shown.stdout.split() == [str(package / "npr_cuda" / "__init__.py"), "True"], shown.stderr[-2000:]


GLIBC_VERSION = re.compile(r"\(GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)")


@pytest.mark.skipif(shutil.which("objdump") is None, reason="reads the library's symbols with objdump")
def test_the_library_needs_no_glibc_newer_than_manylinux_2_28():
    """The wheels promise glibc 2.28 (manylinux_2_28); a newer versioned symbol, such as the
    __libc_single_threaded of GCC 11+'s headers (csrc/manylinux_compat.cpp), would make the
    library fail to load there, and auditwheel refuse the wheel."""
    symbols = subprocess.run(["objdump", "-T", npr_cuda._C.__file__], capture_output=True, text=True, check=True)
    newer = sorted(
        line.split()[-1]
        for line in symbols.stdout.splitlines()
        if (match := GLIBC_VERSION.search(line)) and (int(match[1]), int(match[2])) > (2, 28)
    )
    assert newer == []


def test_the_readme_builds_the_wheel_with_the_script_ci_tests():
    """The README's wheel command (the line after '# Build a wheel') runs .ci/build_wheel.sh,
    the script whose wheel .ci/test_wheel.sh installs and tests."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        lines = readme.read().splitlines()
    command = lines[lines.index("# Build a wheel") + 1]
    assert command.endswith("bash .ci/build_wheel.sh")
    assert os.path.exists(os.path.join(ROOT, ".ci", "build_wheel.sh"))
