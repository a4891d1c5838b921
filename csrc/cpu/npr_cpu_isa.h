#pragma once
// Which instruction sets the CPU kernels are compiled for (kernels.h, once per set), and the entry
// point each copy has.

#include <string>

#include "../npr.h"

// AVX2 and AVX-512 kernels: x86-64 with GCC or Clang, for which CMakeLists.txt compiles
// kernels_avx2.cpp and kernels_avx512.cpp with those sets' flags and the rest at the baseline.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NPR_CUDA_CPU_X86_KERNELS 1
#else
#define NPR_CUDA_CPU_X86_KERNELS 0
#endif

namespace npr_cuda::cpu {

// One pass over `layout` (input read, output written; at least one element) for `window`, with
// one instruction set's kernels: the 2x2 row-pair kernels for the default window, the window
// kernels for any other.
namespace DEFAULT {
void run_kernel(Pass pass, const PlaneLayout& layout, const Window& window);
}  // namespace DEFAULT
#if NPR_CUDA_CPU_X86_KERNELS
namespace AVX2 {
void run_kernel(Pass pass, const PlaneLayout& layout, const Window& window);
}  // namespace AVX2
namespace AVX512 {
void run_kernel(Pass pass, const PlaneLayout& layout, const Window& window);
}  // namespace AVX512
#endif

// The instruction set the CPU ops run with in this process: "AVX512", "AVX2" or "DEFAULT".
std::string kernel_isa();

}  // namespace npr_cuda::cpu
