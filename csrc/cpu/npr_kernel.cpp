// The CPU ops: input checks and layout (npr.h), then the kernels of npr_kernel_impl.h compiled
// for the instruction set ATen chose for its own kernels (at::get_cpu_capability(): the best the
// running CPU has, capped by ATEN_CPU_CAPABILITY=default|avx2|avx512), where this build has it.

#define CPU_CAPABILITY DEFAULT
#include "npr_kernel_impl.h"
#undef CPU_CAPABILITY

#include "npr_cpu_isa.h"

#include <ATen/Version.h>
#include <torch/library.h>

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

// One pass's kernels for each instruction set built (null where a set is not).
struct PassKernels {
  void (*baseline)(const PlaneLayout&);
  void (*avx2)(const PlaneLayout&);
  void (*avx512)(const PlaneLayout&);

  void operator()(const PlaneLayout& layout) const {
    switch (kernel_isa_in_use()) {
      case Isa::kAvx512:
        return avx512(layout);
      case Isa::kAvx2:
        return avx2(layout);
      case Isa::kDefault:
        return baseline(layout);
    }
  }
};

#if NPR_CUDA_CPU_X86_KERNELS
constexpr PassKernels kForward{DEFAULT::npr_forward, AVX2::npr_forward, AVX512::npr_forward};
constexpr PassKernels kBackward{DEFAULT::npr_backward, AVX2::npr_backward, AVX512::npr_backward};
#else
constexpr PassKernels kForward{DEFAULT::npr_forward, nullptr, nullptr};
constexpr PassKernels kBackward{DEFAULT::npr_backward, nullptr, nullptr};
#endif

at::Tensor run(const at::Tensor& input, const char* op_name, const PassKernels& kernels) {
  const PlaneLayout layout = prepare_planes(input, op_name);
  kernels(layout);
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
