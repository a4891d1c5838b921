// The Python extension module npr_cuda._C. Importing it loads the operator library (the
// TORCH_LIBRARY registrations in the other sources); its one function reports how it was built.

#include "cpu/npr_cpu_isa.h"

#include <pybind11/pybind11.h>

#ifndef NPR_CUDA_ARCH_LIST
#define NPR_CUDA_ARCH_LIST ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def(
      "build_info",
      [] {
        pybind11::dict info;
#ifdef NPR_CUDA_WITH_CUDA
        info["cuda"] = true;
#else
        info["cuda"] = false;
#endif
        info["cuda_arch_list"] = NPR_CUDA_ARCH_LIST;
        info["cpu_isa"] = npr_cuda::cpu::kernel_isa();
        return info;
      },
      "How this build of npr_cuda was compiled: {'cuda': bool, 'cuda_arch_list': str, 'cpu_isa': str}.");
}
