// The CPU kernels compiled for AVX-512 (F, BW, VL, DQ); see npr_kernel_target.h.

#include "npr_cpu_isa.h"

#if NPR_CUDA_CPU_X86_KERNELS
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "npr_kernel_target.h"
#endif
