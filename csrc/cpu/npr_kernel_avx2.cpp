// The CPU kernels compiled for AVX2 (+FMA, F16C), chosen at run time by npr_kernel.cpp.
//
// Every header that is not at::vec is included first, at the baseline: inline functions from
// torch's headers must not be compiled for AVX2 here, or the linker could pick those copies
// for the whole library. What follows the pragma (at::vec, in its CPU_CAPABILITY=AVX2
// namespace, and our kernels, in npr_cuda::cpu::AVX2) is AVX2 code only.

#include "npr_cpu_isa.h"

#if NPR_CUDA_CPU_AVX2

#include "../npr_rule.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
// In C++ the pragma enables the instructions but not their feature macros, which sleef.h and
// at::vec test to declare their AVX2 code.
#ifndef __AVX2__
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define __F16C__ 1
#endif

#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "npr_kernel_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif  // NPR_CUDA_CPU_AVX2
