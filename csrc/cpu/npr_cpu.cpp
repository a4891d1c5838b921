// The CPU ops: input checks and layout (npr.h), then the kernels of npr_kernel_impl.h compiled
// for the instruction set ATen chose for its own kernels (at::get_cpu_capability(): the best the
// running CPU has, capped by ATEN_CPU_CAPABILITY=default|avx2|avx512), where this build has it.
// This file only selects and registers; the kernels are in npr_kernel_{default,avx2,avx512}.cpp.

#include <ATen/Version.h>
#include <torch/library.h>

#include "npr_cpu_isa.h"

namespace npr_cuda::cpu {
namespace {

enum class Isa { kDefault, kAvx2, kAvx512 };

// ATen's choice for its own kernels, where this build has kernels for it.
Isa kernel_isa_in_use() {
#if NPR_CUDA_CPU_X86_KERNELS
  static const Isa isa = [] {
    const std::string capability = at::get_cpu_capability();
    return capability == "AVX512" ? Isa::kAvx512 : capability == "AVX2" ? Isa::kAvx2 : Isa::kDefault;
  }();
  return isa;
#else
  return Isa::kDefault;
#endif
}

template <Pass kPass>
at::Tensor run_pass(const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  const Window win = check_window(window, anchor, op_name(kPass));
  const PlaneLayout layout = prepare_planes(x, op_name(kPass));
  switch (kernel_isa_in_use()) {
#if NPR_CUDA_CPU_X86_KERNELS
    case Isa::kAvx512:
      AVX512::run_kernel(kPass, layout, win);
      break;
    case Isa::kAvx2:
      AVX2::run_kernel(kPass, layout, win);
      break;
#endif
    default:
      DEFAULT::run_kernel(kPass, layout, win);
  }
  return layout.output;
}

at::Tensor npr_cpu(const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  return run_pass<Pass::kForward>(x, window, anchor);
}

at::Tensor npr_backward_cpu(const at::Tensor& grad, at::IntArrayRef window, at::IntArrayRef anchor) {
  return run_pass<Pass::kBackward>(grad, window, anchor);
}

}  // namespace

std::string kernel_isa() {
  switch (kernel_isa_in_use()) {
    case Isa::kAvx512:
      return "AVX512";
    case Isa::kAvx2:
      return "AVX2";
    case Isa::kDefault:
      break;
  }
  return "DEFAULT";
}

TORCH_LIBRARY_IMPL(npr_cuda, CPU, m) {
  m.impl("npr", &npr_cpu);
  m.impl("npr_backward", &npr_backward_cpu);
}

}  // namespace npr_cuda::cpu
