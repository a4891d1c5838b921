// The CPU kernels compiled for the compiler's baseline instruction set: the fallback on every
// CPU, and the only copy on CPUs other than x86-64 (see npr_cpu_isa.h).

#define CPU_CAPABILITY DEFAULT
#include "kernels.h"
