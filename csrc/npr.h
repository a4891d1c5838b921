#pragma once
// Host-side code shared by the CPU and CUDA backends: input checks and the
// [planes, H, W, inner] view that both kernels work on (see npr_rule.h).

#include <ATen/core/Tensor.h>

#include "npr_rule.h"

// NPR_BUILD_CUDA: 1 in a build with the CUDA kernels (set by CMakeLists.txt, whose switch has the
// same name), else 0.
#ifndef NPR_BUILD_CUDA
#define NPR_BUILD_CUDA 0
#endif

namespace npr_cuda {

// The two ops, npr and its adjoint npr_backward, which every backend implements as one pass.
enum class Pass { kForward, kBackward };

constexpr const char* op_name(Pass pass) { return pass == Pass::kForward ? "npr" : "npr_backward"; }

struct PlaneLayout {
  at::Tensor input;   // contiguous in `input`'s memory format: read in place, never copied
                      // when the caller's tensor is NCHW-contiguous or channels_last
  at::Tensor output;  // same shape, dtype, device and memory format as `input`
  int64_t planes;     // product of everything that is neither H, W nor channels_last's C
  int64_t height;
  int64_t width;
  int64_t inner;  // elements per pixel in memory: 1, or C for channels_last

  int64_t row_length() const { return width * inner; }
};

// What both ops accept, checked here for the real kernels and, through npr_cuda._C, for the
// fake ones (so that torch.compile rejects a bad input when it traces): at least 2 dimensions
// and a floating dtype. Raises ValueError / TypeError (in Python) naming `op_name`.
void check_input(const at::Tensor& x, const char* op_name);

// The window and anchor arguments of both ops, checked: two values each, window >= 1,
// 0 <= anchor < window; ValueError (in Python) naming `op_name` otherwise.
Window check_window(at::IntArrayRef window, at::IntArrayRef anchor, const char* op_name);

// Checks `x` for op `op_name` (check_input) and allocates the output. A tensor that is
// neither NCHW-contiguous nor channels_last is made contiguous first.
PlaneLayout prepare_planes(const at::Tensor& x, const char* op_name);

// `pass` on x through the dispatcher, from its first key (autograd, batching, tracing included):
// how the autograd and batching rules call the ops.
at::Tensor call_op(Pass pass, const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor);

// Every backend's op: the window and input checked, the layout prepared, run(layout, window)
// called where there is anything to compute, with the window fitted to the image (fit_window),
// and the output returned.
template <typename Run>
at::Tensor run_pass(Pass pass, const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor, const Run& run) {
  const Window checked = check_window(window, anchor, op_name(pass));
  const PlaneLayout layout = prepare_planes(x, op_name(pass));
  if (layout.output.numel() > 0) {
    run(layout, fit_window(checked, layout.height, layout.width));
  }
  return layout.output;
}

}  // namespace npr_cuda
