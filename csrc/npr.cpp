// The npr_cuda operator library: schemas, and the checks and layout shared by every backend.
// Kernels: cpu/npr_cpu.cpp and cuda/npr_cuda.cu; autograd: npr_autograd.cpp; fake (meta) kernels:
// npr_cuda/ops.py.

#include "npr.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace npr_cuda {

namespace {

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

}  // namespace

void check_input(const at::Tensor& x, const char* op_name) {
  // sym_sizes(): a fake tensor under torch.compile may have symbolic sizes.
  TORCH_CHECK_VALUE(x.dim() >= 2, op_name, ": expected a tensor with at least 2 dimensions (..., H, W), got shape ",
                    x.sym_sizes());
  TORCH_CHECK_TYPE(is_supported_dtype(x.scalar_type()), op_name,
                   ": expected a floating-point tensor (float32, float64, float16 or bfloat16), "
                   "got dtype ",
                   x.scalar_type());
}

Window check_window(at::IntArrayRef window, at::IntArrayRef anchor, const char* op_name) {
  TORCH_CHECK_VALUE(window.size() == 2 && window[0] >= 1 && window[1] >= 1, op_name,
                    ": expected a window of at least 1 x 1 pixels, (rows, columns), got ", window);
  TORCH_CHECK_VALUE(
      anchor.size() == 2 && anchor[0] >= 0 && anchor[1] >= 0 && anchor[0] < window[0] && anchor[1] < window[1], op_name,
      ": expected an anchor (row, column) inside the ", window[0], " x ", window[1],
      " window, 0 <= anchor < window, got ", anchor);
  return {window[0], window[1], anchor[0], anchor[1]};
}

PlaneLayout prepare_planes(const at::Tensor& x, const char* op_name) {
  check_input(x, op_name);

  // The same rule as ops.py's output_memory_format(): the fake kernel must agree with it.
  at::MemoryFormat format = at::MemoryFormat::Contiguous;
  if (!x.is_contiguous()) {
    if (x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
      format = at::MemoryFormat::ChannelsLast;
    } else if (x.dim() == 5 && x.is_contiguous(at::MemoryFormat::ChannelsLast3d)) {
      format = at::MemoryFormat::ChannelsLast3d;
    }
  }
  at::Tensor input = x.contiguous(format);  // no copy unless x is some other strided view
  const int64_t height = x.size(-2);
  const int64_t width = x.size(-1);
  // channels_last(_3d) memory order is N, [D,] H, W, C: C becomes the inner pixel dimension.
  const int64_t inner = format == at::MemoryFormat::Contiguous ? 1 : x.size(1);
  const int64_t planes = height * width * inner == 0 ? 0 : x.numel() / (height * width * inner);
  return {input, at::empty_like(input, format), planes, height, width, inner};
}

at::Tensor call_op(Pass pass, const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  using Signature = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef);
  static const auto find = [](const char* name) {
    return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
  };
  static const auto npr = find("npr_cuda::npr");
  static const auto npr_backward = find("npr_cuda::npr_backward");
  return (pass == Pass::kForward ? npr : npr_backward).call(x, window, anchor);
}

namespace {

// Reached only in a build without the CUDA kernels: say how to get them, rather than the
// dispatcher's generic "could not run with arguments from the 'CUDA' backend".
[[noreturn]] void cuda_not_built(const char* op_name) {
  TORCH_CHECK(false, op_name,
              ": got a CUDA tensor, but this npr_cuda build has no CUDA kernels. Rebuild it "
              "with nvcc and a CUDA build of torch present: "
              "NPR_BUILD_CUDA=1 pip install --no-build-isolation -e .");
}

}  // namespace

TORCH_LIBRARY(npr_cuda, m) {
  m.def("npr(Tensor x, int[2] window=[2, 2], int[2] anchor=[0, 0]) -> Tensor");
  m.def("npr_backward(Tensor grad, int[2] window=[2, 2], int[2] anchor=[0, 0]) -> Tensor");
}

#if !NPR_BUILD_CUDA
TORCH_LIBRARY_IMPL(npr_cuda, CUDA, m) {
  m.impl("npr", [](const at::Tensor&, at::IntArrayRef, at::IntArrayRef) -> at::Tensor { cuda_not_built("npr"); });
  m.impl("npr_backward",
         [](const at::Tensor&, at::IntArrayRef, at::IntArrayRef) -> at::Tensor { cuda_not_built("npr_backward"); });
}
#endif

}  // namespace npr_cuda
