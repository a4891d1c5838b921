// Compiles npr_kernel_impl.h for one x86 instruction set, named by CPU_CAPABILITY (AVX2 or
// AVX512), in a file of its own (npr_kernel_avx2.cpp, npr_kernel_avx512.cpp); the rest of the
// build stays at the baseline and npr_kernel.cpp picks a set at run time.
//
// Every header that is not at::vec is included first, at the baseline: inline functions from
// torch's headers must not be compiled for the wider set here, or the linker could pick those
// copies for the whole library. What follows the target pragma (at::vec, in its CPU_CAPABILITY
// namespace, and our kernels, in npr_cuda::cpu::<CPU_CAPABILITY>) uses the wider set only.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../npr.h"
#include "../npr_rule.h"

// The sets are ATen's own for its kernels of the same name. In C++ the pragma enables the
// instructions but not their feature macros, which sleef.h and at::vec test to declare their
// code, so those are defined by hand.
#if defined(CPU_CAPABILITY_AVX512)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif
#ifndef __AVX512F__
#define __AVX512F__ 1
#define __AVX512BW__ 1
#define __AVX512VL__ 1
#define __AVX512DQ__ 1
#endif
#elif defined(CPU_CAPABILITY_AVX2)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#else
#error "define CPU_CAPABILITY and CPU_CAPABILITY_AVX2 or CPU_CAPABILITY_AVX512 first"
#endif
#ifndef __AVX2__
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define __F16C__ 1
#endif

#include "npr_kernel_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
