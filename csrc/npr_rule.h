#pragma once
// The NPR rule, written once for the CPU and CUDA kernels.
//
//   npr(x)[..., h, w] = x[..., h, w] - x[..., anchor(h), anchor(w)],  anchor(i) = 2 * (i / 2)
//
// i.e. every pixel minus the top-left pixel of its 2x2 block. A trailing partial block (odd H
// or W) uses its own top-left pixel. The kernels see every tensor as a contiguous
// [planes, H, W, inner] array: inner = 1 for NCHW-contiguous tensors and inner = C for
// channels_last ones, so one element (w, i) of a row sits at column w * inner + i.

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace npr_cuda {

// The top-left index of the 2-wide block that holds index i.
C10_HOST_DEVICE constexpr int64_t anchor_index(int64_t i) {
  return i & ~int64_t{1};
}

// Distance from column `col` of a row back to the column of its anchor pixel.
C10_HOST_DEVICE constexpr int64_t anchor_column_offset(int64_t w, int64_t inner) {
  return (w - anchor_index(w)) * inner;
}

// Forward value: computed in the type ATen computes `x - y` in (float for half and bfloat16)
// and rounded once, so it is bitwise equal to the official eager formula. Never a literal 0:
// x - x of an Inf or NaN is NaN, as in the reference.
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t residual(scalar_t x, scalar_t anchor) {
  using opmath_t = at::opmath_type<scalar_t>;
  return static_cast<scalar_t>(static_cast<opmath_t>(x) - static_cast<opmath_t>(anchor));
}

// Backward value at an anchor, in opmath precision. NPR is linear, out = x - anchor for every
// pixel of the block, so d/d(anchor) = g_anchor - sum(g over the block). As in the official
// formula's backward, `block_sum` (accumulated in opmath precision, row-major, the order of
// ATen's nearest-upsample backward) is rounded to the tensor's dtype before the subtraction:
// bitwise equal to it. Every other pixel's gradient is its own g, unchanged.
template <typename scalar_t>
C10_HOST_DEVICE inline at::opmath_type<scalar_t> anchor_gradient(
    at::opmath_type<scalar_t> g_anchor, at::opmath_type<scalar_t> block_sum) {
  using opmath_t = at::opmath_type<scalar_t>;
  return g_anchor - static_cast<opmath_t>(static_cast<scalar_t>(block_sum));
}

}  // namespace npr_cuda
