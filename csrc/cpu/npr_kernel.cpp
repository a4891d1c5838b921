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

// One pass's kernels for each instruction set built (avx2 is null where none is).
struct PassKernels {
  void (*baseline)(const PlaneLayout&);
  void (*avx2)(const PlaneLayout&);
};

#if NPR_CUDA_CPU_AVX2
constexpr PassKernels kForward{DEFAULT::npr_forward, AVX2::npr_forward};
constexpr PassKernels kBackward{DEFAULT::npr_backward, AVX2::npr_backward};
#else
constexpr PassKernels kForward{DEFAULT::npr_forward, nullptr};
constexpr PassKernels kBackward{DEFAULT::npr_backward, nullptr};
#endif

at::Tensor run(const at::Tensor& input, const char* op_name, const PassKernels& kernels) {
  const PlaneLayout layout = prepare_planes(input, op_name);
  (kernels.avx2 != nullptr && use_avx2_kernels() ? kernels.avx2 : kernels.baseline)(layout);
  return layout.output;
}

at::Tensor npr_cpu(const at::Tensor& x) {
  return run(x, "npr", kForward);
}

at::Tensor npr_backward_cpu(const at::Tensor& grad) {
  return run(grad, "npr_backward", kBackward);
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
