#pragma once
// The CUDA kernels for every window but the default 2x2 one (which has the row-pair kernels of
// row_pair_kernel.h), as host-and-device code like those: npr_cuda.cu's window_kernel runs
// window_load_phase, __syncthreads, then window_compute_phase; tests/cpp/test_cuda_bodies.cpp
// runs every thread of a block through the first phase before the second, as the barrier orders
// them, and checks results, stores and memory traffic.
//
// Work: a block takes a tile, the rows of one window row of one plane (a band of `rows` rows,
// fewer at the bottom) across a segment of whole windows of the row (fewer at its end), and its
// threads take the tile's packs of V elements in row-major order: each warp's loads and stores are
// contiguous runs, whatever the window. No thread's work depends on another's but through the
// shared tile:
//   1. load phase: what the results need from other threads' packs goes to shared memory, each
//      element once: the anchor row's segment (forward), or the whole tile (backward, whose window
//      sums read every element);
//   2. compute phase: forward, each pack of x minus its anchors, read from the shared row;
//      backward, g passes through and each anchor gets g - round(window sum), the sum taken in
//      the rule's row-major order (npr_rule.h) from the shared tile by the thread whose pack holds
//      the anchor.
// A tile that does not fit in kTileBytes of shared memory (a window of thousands of elements,
// which only a window as large as a large image gives) is read from global memory instead, one
// element a thread: correct, not coalesced.

#include <cstdint>
#include <limits>
#include <numeric>

#include "../npr.h"
#include "../npr_rule.h"
#include "fast_divider.h"
#include "grid.h"
#include "packs.h"

namespace npr_cuda::cuda {

// Shared memory a block keeps its tile in.
constexpr int64_t kTileBytes = 16 * 1024;

// One window kernel instance, as the launcher chooses it (choose_window_kernel).
struct WindowChoice {
  int vec;      // elements per pack: kVec16, or 1
  bool shared;  // the tile in shared memory (else read from global memory, vec 1)
  bool index32;

  bool operator==(const WindowChoice& o) const { return vec == o.vec && shared == o.shared && index32 == o.index32; }
};

// Elements of a tile's segment of the row: whole windows and whole packs, about one pack per
// thread of a block, within kTileBytes where the tile is shared (forward: one row of it; backward:
// all of its rows); 0 where even one such unit does not fit. The whole row where it is shorter.
inline int64_t tile_segment(Pass pass, int64_t element_size, int64_t row_length, int64_t inner, const Window& w,
                            int vec, bool shared) {
  const int64_t unit = std::lcm(w.cols * inner, int64_t{vec});
  const int64_t shared_rows = pass == Pass::kForward ? 1 : w.rows;
  int64_t segment = std::max(unit, kThreadsPerBlock * vec / w.rows / unit * unit);
  if (shared) {
    const int64_t capacity = kTileBytes / element_size / shared_rows / unit * unit;
    if (std::min(unit, row_length) * shared_rows * element_size > kTileBytes) {
      return 0;
    }
    segment = std::min(segment, std::max(capacity, unit));
  }
  return std::min(segment, row_length);
}

// Packs of 16 bytes where the rows and both tensors allow, else elements; the tile in shared
// memory where it fits.
inline WindowChoice choose_window_kernel(Pass pass, int64_t element_size, int64_t row_length, int64_t inner,
                                         const Window& w, int64_t numel, uintptr_t in_address, uintptr_t out_address) {
  const bool index32 = numel <= std::numeric_limits<int32_t>::max();
  const int vec16 = static_cast<int>(16 / element_size);
  const bool packs = row_length % vec16 == 0 && in_address % 16 == 0 && out_address % 16 == 0;
  const int vec = packs ? vec16 : 1;
  if (tile_segment(pass, element_size, row_length, inner, w, vec, true) > 0) {
    return {vec, true, index32};
  }
  return {1, tile_segment(pass, element_size, row_length, inner, w, 1, true) > 0, index32};
}

template <typename U>
struct TileParams {
  U blocks;
  U height;
  U width;
  U inner;
  U row_length;
  U rows;  // the window (fitted to the image) and its anchor
  U cols;
  U anchor_row;
  U anchor_col;
  U segment;                         // elements of a full segment
  FastDivider<U> segments_per_row;   // ceil(row_length / segment)
  FastDivider<U> bands_per_plane;    // ceil(height / rows)
  FastDivider<U> packs_per_segment;  // segment / V, rounded up
  FastDivider<U> pixel_of_column;    // inner
  FastDivider<U> window_of_pixel;    // cols
};

template <typename U>
TileParams<U> make_tile_params(Pass pass, int64_t element_size, int64_t planes, int64_t height, int64_t width,
                               int64_t inner, const Window& w, const WindowChoice& choice) {
  // run_pass fits the window (fit_window), so every size below fits in U with the tensor's.
  TORCH_CHECK(is_fitted(w, height, width), "npr_cuda: internal error: a window not fitted to the image");
  const int64_t row_length = width * inner;
  const int64_t segment = tile_segment(pass, element_size, row_length, inner, w, choice.vec, choice.shared);
  TORCH_CHECK(segment > 0, "npr_cuda: internal error: no tile for this window");
  const int64_t segments = (row_length + segment - 1) / segment;
  const int64_t bands = (height + w.rows - 1) / w.rows;
  TileParams<U> p;
  p.blocks = static_cast<U>(planes * bands * segments);
  p.height = static_cast<U>(height);
  p.width = static_cast<U>(width);
  p.inner = static_cast<U>(inner);
  p.row_length = static_cast<U>(row_length);
  p.rows = static_cast<U>(w.rows);
  p.cols = static_cast<U>(w.cols);
  p.anchor_row = static_cast<U>(w.anchor_row);
  p.anchor_col = static_cast<U>(w.anchor_col);
  p.segment = static_cast<U>(segment);
  p.segments_per_row = FastDivider<U>(static_cast<U>(segments));
  p.bands_per_plane = FastDivider<U>(static_cast<U>(bands));
  p.packs_per_segment = FastDivider<U>(static_cast<U>((segment + choice.vec - 1) / choice.vec));
  p.pixel_of_column = FastDivider<U>(static_cast<U>(inner));
  p.window_of_pixel = FastDivider<U>(static_cast<U>(w.cols));
  return p;
}

// Where block `block`'s tile lies.
template <typename U>
struct TilePlace {
  U first;       // offset of its first element: first row, first column of the segment
  U rows;        // its rows (the band's)
  U column;      // the segment's first column in the row
  U length;      // the segment's elements
  U anchor_row;  // the band's anchor row, as a row of the tile
};

template <typename U>
C10_HOST_DEVICE inline TilePlace<U> locate_tile(const TileParams<U>& p, U block) {
  const U band_of_plane = p.segments_per_row.div(block);  // plane * bands + band
  const U segment = block - band_of_plane * p.segments_per_row.divisor;
  const U plane = p.bands_per_plane.div(band_of_plane);
  const U first_row = (band_of_plane - plane * p.bands_per_plane.divisor) * p.rows;
  const U column = segment * p.segment;
  TilePlace<U> t;
  t.first = (plane * p.height + first_row) * p.row_length + column;
  t.rows = p.height - first_row < p.rows ? p.height - first_row : p.rows;
  t.column = column;
  t.length = p.row_length - column < p.segment ? p.row_length - column : p.segment;
  t.anchor_row = clamped_anchor(first_row, p.anchor_row, p.height) - first_row;
  return t;
}

// The tile's elements, by tile row and column: from shared memory (the load phase put them there;
// a row of the tile is `segment` elements apart), or from global memory.
template <typename T, typename U, bool kShared>
struct TileView {
  const T* base;  // shared: the tile; global: the tensor at the tile's first element
  U stride;       // shared: the segment; global: the row length

  C10_HOST_DEVICE T at(U row, U column) const {
    if constexpr (kShared) {
      return base[row * stride + column];
    } else {
      return load_global(NPR_SITE, base + row * stride + column);
    }
  }
};

// Calls fn(tile row, tile column) for each of this thread's packs of a tile of `rows` rows (the
// packs of a row that start past `length` are none).
template <typename U, int V, typename Fn>
C10_HOST_DEVICE inline void for_each_pack(const TileParams<U>& p, U rows, U length, U thread, const Fn& fn) {
  const U packs = rows * p.packs_per_segment.divisor;
  for (U q = thread; q < packs; q += static_cast<U>(kThreadsPerBlock)) {
    const U row = p.packs_per_segment.div(q);
    const U column = (q - row * p.packs_per_segment.divisor) * static_cast<U>(V);
    if (column < length) {
      fn(row, column);
    }
  }
}

// Phase 1: into shared memory, the anchor row's segment (forward) or the whole tile (backward).
template <Pass kPass, typename T, typename U, int V, bool kShared>
C10_HOST_DEVICE inline void window_load_phase(const T* __restrict__ in, const TileParams<U>& p, U block, U thread,
                                              T* shared) {
  if constexpr (kShared) {
    const TilePlace<U> t = locate_tile(p, block);
    const U from_row = kPass == Pass::kForward ? t.anchor_row : U{0};
    const U rows = kPass == Pass::kForward ? U{1} : t.rows;
    for_each_pack<U, V>(p, rows, t.length, thread, [&](U row, U column) {
      T v[V];
      load_pack(NPR_SITE, in + t.first + (from_row + row) * p.row_length + column, v);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        shared[row * p.segment + column + k] = v[k];
      }
    });
  }
}

// Pixel, channel and window of an element of a row, stepped along from one division each.
template <typename U>
struct WindowCursor {
  U pixel, channel, window_first;  // window_first: the first pixel of the element's window

  C10_HOST_DEVICE WindowCursor(const TileParams<U>& p, U column) : pixel(p.pixel_of_column.div(column)) {
    channel = column - pixel * p.inner;
    window_first = p.window_of_pixel.div(pixel) * p.cols;
  }
  C10_HOST_DEVICE U anchor_pixel(const TileParams<U>& p) const {
    return clamped_anchor(window_first, p.anchor_col, p.width);
  }
  C10_HOST_DEVICE void advance(const TileParams<U>& p) {
    if (++channel == p.inner) {
      channel = 0;
      if (++pixel == window_first + p.cols) {
        window_first = pixel;
      }
    }
  }
};

template <typename T, typename U, int V, bool kShared>
C10_HOST_DEVICE inline void forward_tile(const T* __restrict__ x, T* __restrict__ out, const TileParams<U>& p,
                                         const TilePlace<U>& t, U thread, const T* shared) {
  const TileView<T, U, kShared> anchors{kShared ? shared : x + t.first + t.anchor_row * p.row_length,
                                        kShared ? p.segment : p.row_length};
  for_each_pack<U, V>(p, t.rows, t.length, thread, [&](U row, U column) {
    const U offset = t.first + row * p.row_length + column;
    T v[V];
    load_pack(NPR_SITE, x + offset, v);
    WindowCursor<U> cursor(p, t.column + column);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const U anchor_column = cursor.anchor_pixel(p) * p.inner + cursor.channel - t.column;
      v[k] = residual(v[k], anchors.at(0, anchor_column));
      cursor.advance(p);
    }
    store_pack(NPR_SITE, out + offset, v);
  });
}

template <typename T, typename U, int V, bool kShared>
C10_HOST_DEVICE inline void backward_tile(const T* __restrict__ g, T* __restrict__ out, const TileParams<U>& p,
                                          const TilePlace<U>& t, U thread, const T* shared) {
  using opmath_t = at::opmath_type<T>;
  const TileView<T, U, kShared> tile{kShared ? shared : g + t.first, kShared ? p.segment : p.row_length};
  for_each_pack<U, V>(p, t.rows, t.length, thread, [&](U row, U column) {
    T v[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v[k] = tile.at(row, column + k);
    }
    if (row == t.anchor_row) {
      WindowCursor<U> cursor(p, t.column + column);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        if (cursor.pixel == cursor.anchor_pixel(p)) {
          const U first = cursor.window_first * p.inner + cursor.channel - t.column;
          const U cols = p.width - cursor.window_first < p.cols ? p.width - cursor.window_first : p.cols;
          const auto load = [&](int64_t dh, int64_t dw) -> opmath_t {
            return static_cast<opmath_t>(tile.at(static_cast<U>(dh), first + static_cast<U>(dw) * p.inner));
          };
          const opmath_t sum = window_sum<opmath_t>(load, static_cast<int64_t>(t.rows), static_cast<int64_t>(cols));
          v[k] = static_cast<T>(anchor_gradient<T>(static_cast<opmath_t>(v[k]), sum));
        }
        cursor.advance(p);
      }
    }
    store_pack(NPR_SITE, out + t.first + row * p.row_length + column, v);
  });
}

// Phase 2: this thread's packs of the tile, computed and stored.
template <Pass kPass, typename T, typename U, int V, bool kShared>
C10_HOST_DEVICE inline void window_compute_phase(const T* __restrict__ in, T* __restrict__ out, const TileParams<U>& p,
                                                 U block, U thread, const T* shared) {
  const TilePlace<U> t = locate_tile(p, block);
  if constexpr (kPass == Pass::kForward) {
    forward_tile<T, U, V, kShared>(in, out, p, t, thread, shared);
  } else {
    backward_tile<T, U, V, kShared>(in, out, p, t, thread, shared);
  }
}

// A compile-time window kernel instance, handed to with_window_instance's callback.
template <typename U_, int V_, bool kShared_>
struct WindowInstance {
  using U = U_;
  static constexpr int V = V_;
  static constexpr bool kShared = kShared_;
};

template <typename T, typename U, typename Fn>
void with_window_vec(const WindowChoice& c, Fn&& fn) {
  if (!c.shared) {
    return fn(WindowInstance<U, 1, false>{});
  }
  if (c.vec == kVec16<T>) {
    return fn(WindowInstance<U, kVec16<T>, true>{});
  }
  fn(WindowInstance<U, 1, true>{});
}

// Calls fn(WindowInstance<...>{}) for the instance `c` names, for the launcher and the host test.
template <typename T, typename Fn>
void with_window_instance(const WindowChoice& c, Fn&& fn) {
  c.index32 ? with_window_vec<T, uint32_t>(c, fn) : with_window_vec<T, uint64_t>(c, fn);
}

}  // namespace npr_cuda::cuda
