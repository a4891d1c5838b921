#pragma once
// The AVX-512 intrinsics, for the code that only the AVX-512 copy of the kernels has.

#if !defined(CPU_CAPABILITY_AVX512)
#error "csrc/cpu/avx512/ is compiled into the AVX-512 kernels only (kernels_avx512.cpp)"
#endif

#include <immintrin.h>
