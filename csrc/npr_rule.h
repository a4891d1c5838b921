#pragma once
// The NPR rule, written once for the CPU and CUDA kernels.
//
//   npr(x)[..., h, w] = x[..., h, w] - x[..., anchor(h), anchor(w)],  anchor(i) = 2 * (i / 2)
//
// i.e. every pixel minus the top-left pixel of its 2x2 block. A trailing partial block (odd H
// or W) uses its own top-left pixel. The kernels see every tensor as a contiguous
// [planes, H, W, inner] array: inner = 1 for NCHW-contiguous tensors and inner = C for
// channels_last ones, so one element (w, i) of a row sits at column w * inner + i.
//
// Generalised (the paper's ablation): a window of lh x lw pixels and an anchor (r, c) in it,
//
//   npr(x)[..., h, w] = x[..., h, w] - x[..., A(h, H, lh, r), A(w, W, lw, c)],
//   A(i, n, l, o) = min(l * (i / l) + o, n - 1)
//
// a partial window at the bottom or right edge taking its anchor clamped to the last row or
// column. The default, a 2x2 window anchored at (0, 0), is the rule above and has kernels of
// its own.

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace npr_cuda {

// The top-left index of the 2-wide block that holds index i.
C10_HOST_DEVICE constexpr int64_t anchor_index(int64_t i) { return i & ~int64_t{1}; }

// min(first + o, n - 1): the anchor index of the window whose first index is `first`, along a
// side of n, for the anchor offset o (in any index type: the CUDA kernels use 32-bit ones).
template <typename Index>
C10_HOST_DEVICE constexpr Index clamped_anchor(Index first, Index o, Index n) {
  return first + o < n - 1 ? first + o : n - 1;
}

// The anchor index A(i, n, l, o) of index i along a side of n, for windows of l and offset o.
C10_HOST_DEVICE constexpr int64_t window_anchor(int64_t i, int64_t n, int64_t l, int64_t o) {
  return clamped_anchor(l * (i / l), o, n);
}

// A window and its anchor, as the ops take them: window (lh, lw) >= 1, 0 <= anchor < window.
struct Window {
  int64_t rows = 2;
  int64_t cols = 2;
  int64_t anchor_row = 0;
  int64_t anchor_col = 0;

  C10_HOST_DEVICE constexpr bool is_default() const {
    return rows == 2 && cols == 2 && anchor_row == 0 && anchor_col == 0;
  }
};

// The window, no larger than an image of height x width (both >= 1), that gives `w`'s result
// under the rule: a window of l >= n rows holds all n rows, so for every i < n
// A(i, n, l, o) = min(o, n - 1) = A(i, n, n, min(o, n - 1)); likewise for columns. The ops fit
// every window before any kernel sees it, so no kernel sizes, indexes or allocates by a window
// larger than the tensor, whatever the caller asked for (up to int64's largest).
C10_HOST_DEVICE constexpr Window fit_window(const Window& w, int64_t height, int64_t width) {
  return {w.rows < height ? w.rows : height, w.cols < width ? w.cols : width,
          w.anchor_row < height - 1 ? w.anchor_row : height - 1, w.anchor_col < width - 1 ? w.anchor_col : width - 1};
}

// Whether `w` is fitted to an image of height x width (fit_window): what every kernel assumes.
C10_HOST_DEVICE constexpr bool is_fitted(const Window& w, int64_t height, int64_t width) {
  return w.rows >= 1 && w.cols >= 1 && w.rows <= height && w.cols <= width && w.anchor_row >= 0 && w.anchor_col >= 0 &&
         w.anchor_row < w.rows && w.anchor_col < w.cols;
}

// Row pairs: an even row h and the odd row h + 1 share the anchors of row h, so both kernels
// give each row pair to one worker. Pairs are numbered plane by plane.
C10_HOST_DEVICE constexpr int64_t row_pairs_per_plane(int64_t height) { return (height + 1) / 2; }

template <typename Index>
struct RowPair {
  Index even_row;    // offset of the even row's first element in the [planes, H, W, inner] array
  bool has_odd_row;  // false for the last row of an odd height
};

// Row pair `pair` of the tensor, given its plane = pair / pairs_per_plane (divided by the
// caller: the CUDA kernels use a precomputed divider).
template <typename Index>
C10_HOST_DEVICE inline RowPair<Index> row_pair(Index pair, Index plane, Index pairs_per_plane, Index height,
                                               Index row_length) {
  const Index h = 2 * (pair - plane * pairs_per_plane);
  return {(plane * height + h) * row_length, h + 1 < height};
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

// The sum of g over a window of `rows` x `cols` pixels, in opmath precision and in row-major
// order: for the 2x2 block (h, w), (h, w + 1), (h + 1, w), (h + 1, w + 1), the order of ATen's
// nearest-upsample backward, on which bitwise equality depends. load(dh, dw) gives g at
// (h0 + dh, w0 + dw) in opmath; a window cut by the right or bottom edge has fewer rows or
// columns. (The vector paths of the 2x2 kernels add whole lanes in this same order.)
template <typename opmath_t, typename Load>
C10_HOST_DEVICE inline opmath_t window_sum(const Load& load, int64_t rows, int64_t cols) {
  opmath_t sum = load(0, 0);
  for (int64_t dh = 0; dh < rows; ++dh) {
    for (int64_t dw = dh == 0 ? 1 : 0; dw < cols; ++dw) {
      sum += load(dh, dw);
    }
  }
  return sum;
}

// window_sum for a 2x2 block cut (or not) by the right and bottom edges, unrolled by hand: as a
// call of window_sum, the CUDA kernels indexed their registers at run time and spilled (local
// memory in 8 instances, bench/sass_summary.py).
template <typename opmath_t, typename Load>
C10_HOST_DEVICE inline opmath_t block_sum(const Load& load, bool has_right, bool has_below) {
  opmath_t sum = load(0, 0);
  if (has_right) {
    sum += load(0, 1);
  }
  if (has_below) {
    sum += load(1, 0);
    if (has_right) {
      sum += load(1, 1);
    }
  }
  return sum;
}

// Backward value at an anchor, in opmath precision. NPR is linear, out = x - anchor for every
// pixel of the block, so d/d(anchor) = g_anchor - sum(g over the block). As in the official
// formula's backward, the block's `sum` (block_sum above) is rounded to the tensor's dtype before the subtraction:
// bitwise equal to it. Every other pixel's gradient is its own g, unchanged.
template <typename scalar_t>
C10_HOST_DEVICE inline at::opmath_type<scalar_t> anchor_gradient(at::opmath_type<scalar_t> g_anchor,
                                                                 at::opmath_type<scalar_t> sum) {
  using opmath_t = at::opmath_type<scalar_t>;
  return g_anchor - static_cast<opmath_t>(static_cast<scalar_t>(sum));
}

}  // namespace npr_cuda
