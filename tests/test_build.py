"""The built extension itself: every instruction set's kernels stay in their own copy.

CMakeLists.txt compiles kernels_avx2.cpp and kernels_avx512.cpp with those sets' compiler flags.
Every inline function of torch's headers that they share with the baseline files is compiled in
each, and the linker keeps one copy: if it kept a wide one, a CPU without the set would fault in
code that has nothing to do with our kernels. The machine code is read here for that."""

import platform
import re
import shutil
import subprocess

import pytest

import npr_cuda

pytestmark = pytest.mark.skipif(
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
