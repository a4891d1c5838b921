// The CPU ops: input checks and layout (npr.h), then the kernels of npr_kernel_impl.h compiled
// for the best instruction set that both this build and the running CPU have. The choice is
// ATen's own (at::get_cpu_capability(), which honours ATEN_CPU_CAPABILITY=default|avx2|...).

#define CPU_CAPABILITY DEFAULT
#include "npr_kernel_impl.h"
#undef CPU_CAPABILITY

#include "npr_cpu_isa.h"

#include <ATen/Version.h>
#include <torch/library.h>

namespace npr_cuda::cpu {
namespace {

bool use_avx2_kernels() {
#if NPR_CUDA_CPU_AVX2
  static const bool avx2 = at::get_cpu_capability() != "DEFAULT";  // AVX2 or AVX512
  return avx2;
#else
  return false;
#endif
}

at::Tensor npr_cpu(const at::Tensor& x) {
  const PlaneLayout layout = prepare_planes(x, "npr");
#if NPR_CUDA_CPU_AVX2
  if (use_avx2_kernels()) {
    AVX2::npr_forward(layout);
    return layout.output;
  }
#endif
  DEFAULT::npr_forward(layout);
  return layout.output;
}

at::Tensor npr_backward_cpu(const at::Tensor& grad) {
  const PlaneLayout layout = prepare_planes(grad, "npr_backward");
#if NPR_CUDA_CPU_AVX2
  if (use_avx2_kernels()) {
    AVX2::npr_backward(layout);
    return layout.output;
  }
#endif
  DEFAULT::npr_backward(layout);
  return layout.output;
}

}  // namespace

std::string kernel_isa() {
  return use_avx2_kernels() ? "AVX2" : "DEFAULT";
}

TORCH_LIBRARY_IMPL(npr_cuda, CPU, m) {
  m.impl("npr", &npr_cpu);
  m.impl("npr_backward", &npr_backward_cpu);
}

}  // namespace npr_cuda::cpu
