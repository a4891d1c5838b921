// The CPU kernels compiled for AVX-512 (F, BW, VL, DQ) with FMA and F16C. CMakeLists.txt gives
// this file, and only this one, those instruction sets' compiler flags; npr_cpu.cpp calls it
// only on CPUs that have them. Built last, so that the linker keeps the baseline copy of every
// inline function that this file shares with the others (tests/test_build.py checks the library
// for that).

#include "npr_cpu_isa.h"

#if NPR_CUDA_CPU_X86_KERNELS
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || \
    !defined(__FMA__) || !defined(__F16C__)
#error "kernels_avx512.cpp is compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c (CMakeLists.txt)"
#endif
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "kernels.h"
#endif
