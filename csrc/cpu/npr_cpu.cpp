// The CPU ops: input checks and layout (npr.h), then the kernels of kernels.h compiled for the
// instruction set ATen chose for its own kernels (at::get_cpu_capability(): the best the running
// CPU has, capped by ATEN_CPU_CAPABILITY=default|avx2|avx512), where this build has it. This
// file only selects and registers; the kernels are in kernels_{default,avx2,avx512}.cpp.

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

void run_kernel_in_use(Pass pass, const PlaneLayout& layout, const Window& window) {
  switch (kernel_isa_in_use()) {
#if NPR_CUDA_CPU_X86_KERNELS
    case Isa::kAvx512:
      return AVX512::run_kernel(pass, layout, window);
    case Isa::kAvx2:
      return AVX2::run_kernel(pass, layout, window);
#endif
    default:
      return DEFAULT::run_kernel(pass, layout, window);
  }
}

// npr (kForward) and npr_backward (kBackward) on the CPU.
template <Pass kPass>
at::Tensor cpu_op(const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  return run_pass(kPass, x, window, anchor,
                  [](const PlaneLayout& layout, const Window& checked) { run_kernel_in_use(kPass, layout, checked); });
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
  m.impl("npr", &cpu_op<Pass::kForward>);
  m.impl("npr_backward", &cpu_op<Pass::kBackward>);
}

}  // namespace npr_cuda::cpu
