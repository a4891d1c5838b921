#pragma once
// The CUDA kernels for every window but the default 2x2 one (which has the row-pair kernels of
// npr_cuda_kernel.h), as host-and-device code like those: npr_cuda.cu's window_kernel calls
// window_thread(), and tests/cpp/test_cuda_bodies.cpp runs every thread of its launch on the host.
//
// Work item: one window of one channel (the pixel's element i of `inner`). Every item does the
// same work, a window's rows x cols elements, each read once: the forward loads the anchor once
// and subtracts it from every element; the backward copies every element but the anchor while
// it sums them, in npr_rule.h's row-major order, and then writes the anchor's gradient. No thread
// waits on another's sum, and three divisions by launch constants locate an item.

#include "npr_cuda_kernel.h"

namespace npr_cuda::cuda {

template <typename U>
struct WindowParams {
  U items;  // planes x window rows x window columns x inner
  U height;
  U width;
  U inner;
  U row_length;
  U rows;  // the window and its anchor
  U cols;
  U anchor_row;
  U anchor_col;
  FastDivider<U> channel_of_item;    // inner
  FastDivider<U> windows_per_row;    // ceil(width / cols)
  FastDivider<U> windows_per_plane;  // ceil(height / rows): window rows per plane
};

template <typename U>
WindowParams<U> make_window_params(int64_t planes, int64_t height, int64_t width, int64_t inner, const Window& w) {
  // run_pass fits the window (fit_window), so every size below fits in U with the tensor's.
  TORCH_CHECK(is_fitted(w, height, width), "npr_cuda: internal error: a window not fitted to the image");
  const int64_t across = (width + w.cols - 1) / w.cols;
  const int64_t down = (height + w.rows - 1) / w.rows;
  WindowParams<U> p;
  p.items = static_cast<U>(planes * down * across * inner);
  p.height = static_cast<U>(height);
  p.width = static_cast<U>(width);
  p.inner = static_cast<U>(inner);
  p.row_length = static_cast<U>(width * inner);
  p.rows = static_cast<U>(w.rows);
  p.cols = static_cast<U>(w.cols);
  p.anchor_row = static_cast<U>(w.anchor_row);
  p.anchor_col = static_cast<U>(w.anchor_col);
  p.channel_of_item = FastDivider<U>(p.inner);
  p.windows_per_row = FastDivider<U>(static_cast<U>(across));
  p.windows_per_plane = FastDivider<U>(static_cast<U>(down));
  return p;
}

// Where work item `item`'s window lies: its first element, its size (smaller at the right and
// bottom edges) and its anchor element (clamped into a partial window, npr_rule.h).
template <typename U>
struct WindowPlace {
  U first;
  U rows;
  U cols;
  U anchor;
};

template <typename U>
C10_HOST_DEVICE inline WindowPlace<U> locate_window(const WindowParams<U>& p, U item) {
  const U pixel_item = p.channel_of_item.div(item);
  const U i = item - pixel_item * p.inner;
  const U window_row_item = p.windows_per_row.div(pixel_item);
  const U first_col = (pixel_item - window_row_item * p.windows_per_row.divisor) * p.cols;
  const U plane = p.windows_per_plane.div(window_row_item);
  const U first_row = (window_row_item - plane * p.windows_per_plane.divisor) * p.rows;
  const U first = (plane * p.height + first_row) * p.row_length + first_col * p.inner + i;
  const U anchor_dh = clamped_anchor(first_row, p.anchor_row, p.height) - first_row;
  const U anchor_dw = clamped_anchor(first_col, p.anchor_col, p.width) - first_col;
  return {first, p.height - first_row < p.rows ? p.height - first_row : p.rows,
          p.width - first_col < p.cols ? p.width - first_col : p.cols,
          first + anchor_dh * p.row_length + anchor_dw * p.inner};
}

template <Pass kPass, typename T, typename U>
C10_HOST_DEVICE inline void window_item(const T* __restrict__ in, T* __restrict__ out, const WindowParams<U>& p,
                                        U item) {
  using opmath_t = at::opmath_type<T>;
  const WindowPlace<U> at = locate_window(p, item);
  const auto element = [&](int64_t dh, int64_t dw) {
    return at.first + static_cast<U>(dh) * p.row_length + static_cast<U>(dw) * p.inner;
  };
  if constexpr (kPass == Pass::kForward) {
    const T anchor = in[at.anchor];
    for (U dh = 0; dh < at.rows; ++dh) {
      for (U dw = 0; dw < at.cols; ++dw) {
        const U e = element(dh, dw);
        out[e] = residual(in[e], anchor);
        note_stores(out + e, 1);
      }
    }
  } else {
    // window_sum reads each element once, in the rule's order; every one but the anchor passes
    // through as it is read.
    const auto load = [&](int64_t dh, int64_t dw) -> opmath_t {
      const U e = element(dh, dw);
      const T g = in[e];
      if (e != at.anchor) {
        out[e] = g;
        note_stores(out + e, 1);
      }
      return static_cast<opmath_t>(g);
    };
    const opmath_t sum = window_sum<opmath_t>(load, static_cast<int64_t>(at.rows), static_cast<int64_t>(at.cols));
    out[at.anchor] = static_cast<T>(anchor_gradient<T>(static_cast<opmath_t>(in[at.anchor]), sum));
    note_stores(out + at.anchor, 1);
  }
}

// Thread `thread` of block `block` of a window kernel: its work item, where the grid has one
// there. The __global__ wrapper and the host test both call this (see row_pair_thread).
template <Pass kPass, typename T, typename U>
C10_HOST_DEVICE inline void window_thread(const T* __restrict__ in, T* __restrict__ out, const WindowParams<U>& p,
                                          U block, U thread) {
  const U item = block * static_cast<U>(kThreadsPerBlock) + thread;
  if (item < p.items) {
    window_item<kPass, T, U>(in, out, p, item);
  }
}

}  // namespace npr_cuda::cuda
