"""Prints, as CMake code, what CMakeLists.txt needs to know of the installed torch: its version,
the CUDA version it was built with (empty for a CPU build), its headers, its libraries' folder and
its C++ ABI. Read from Python rather than from torch's own CMake package, which refuses to load
when torch is a CUDA build and no CUDA toolkit is installed, where a CPU-only build is still
possible."""

import torch
import torch.utils.cpp_extension as cpp_extension


def cmake_list(values):
    return ";".join(str(v).replace("\\", "/") for v in values)


print(f'set(TORCH_VERSION "{torch.__version__}")')
print(f'set(TORCH_CUDA_VERSION "{torch.version.cuda or ""}")')
print(f'set(TORCH_INCLUDE_DIRS "{cmake_list(cpp_extension.include_paths())}")')
print(f'set(TORCH_LIBRARY_DIR "{cmake_list(cpp_extension.library_paths())}")')
print(f"set(TORCH_CXX11_ABI {int(torch._C._GLIBCXX_USE_CXX11_ABI)})")
