// The CPU kernels compiled for AVX2 (+FMA, F16C); see npr_kernel_target.h.

#include "npr_cpu_isa.h"

#if NPR_CUDA_CPU_X86_KERNELS
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "npr_kernel_target.h"
#endif
