#pragma once
// Host-side code shared by the CPU and CUDA backends: input checks and the
// [planes, H, W, inner] view that both kernels work on (see npr_rule.h).

#include <ATen/core/Tensor.h>

namespace npr_cuda {

struct PlaneLayout {
  at::Tensor input;   // contiguous in `input`'s memory format: read in place, never copied
                      // when the caller's tensor is NCHW-contiguous or channels_last
  at::Tensor output;  // same shape, dtype, device and memory format as `input`
  int64_t planes;     // product of everything that is neither H, W nor channels_last's C
  int64_t height;
  int64_t width;
  int64_t inner;      // elements per pixel in memory: 1, or C for channels_last

  int64_t row_length() const { return width * inner; }
};

// Checks `x` for op `op_name` (dtype, rank) and allocates the output. A tensor that is
// neither NCHW-contiguous nor channels_last is made contiguous first.
PlaneLayout prepare_planes(const at::Tensor& x, const char* op_name);

}  // namespace npr_cuda
