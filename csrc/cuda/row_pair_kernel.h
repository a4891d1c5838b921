#pragma once
// The default 2x2 window's CUDA kernels, as host-and-device code: npr_cuda.cu's __global__
// function calls row_pair_thread(), and tests/cpp/test_cuda_bodies.cpp compiles this header with
// the host compiler and runs every thread of every instance on the CPU, so the kernels' index
// arithmetic, bodies and memory traffic are checked on every commit, GPU or not. No at::Tensor
// here: the launcher and the test pass plain sizes and pointers.
//
// Work item: V consecutive elements of a row pair (even row h and row h + 1, which share the
// anchors of row h), in a tensor seen as [planes, H, W, inner] (npr_rule.h). Consecutive threads
// take consecutive items of a row, so a warp's loads and stores are each one contiguous run:
//   - NCHW rows, V >= 2: both rows by pack; every anchor (and, backward, every right neighbour)
//     is in the item's own registers.
//   - channels_last rows, by pack: an odd pixel's anchor lies `inner` elements back, maybe in
//     another item's pack; the thread loads the aligned packs that hold the V elements `inner`
//     back (forward), or `inner` on (backward: the right neighbours), whole, so that those loads
//     too are contiguous runs across the warp, served from the lines its own loads fetch.
//   - any layout, V = 1 (a row not divisible by a pack, or a view not aligned to one): one
//     element a thread, its anchor or neighbours read one by one. Lanes hold consecutive
//     elements, so each access is still one contiguous run.

#include <cstdint>
#include <limits>
#include <stdexcept>

#include "../npr.h"
#include "../npr_rule.h"
#include "fast_divider.h"
#include "grid.h"
#include "packs.h"

namespace npr_cuda::cuda {

// One kernel instance, as the launcher chooses it (choose_kernel) for a tensor.
struct KernelChoice {
  int vec;          // elements per work item per row: a pack's, or 1
  bool unit_inner;  // NCHW by pack: every anchor is in the item's own registers
  bool index32;     // 32-bit index arithmetic (the tensor has fewer than 2^31 elements)

  bool operator==(const KernelChoice& o) const {
    return vec == o.vec && unit_inner == o.unit_inner && index32 == o.index32;
  }
};

// The widest pack (16, 8 or 4 bytes, at least 2 elements: an even count, so that NCHW rows' anchors
// fall inside the item) that divides the row length and to which both tensors are aligned; else
// one element an item.
inline KernelChoice choose_kernel(int64_t element_size, int64_t row_length, int64_t inner, int64_t numel,
                                  uintptr_t in_address, uintptr_t out_address) {
  const bool index32 = numel <= std::numeric_limits<int32_t>::max();
  for (const int64_t bytes : {16, 8, 4}) {
    const int64_t vec = bytes / element_size;
    if (vec >= 2 && row_length % vec == 0 && in_address % bytes == 0 && out_address % bytes == 0) {
      return {static_cast<int>(vec), inner == 1, index32};
    }
  }
  return {1, false, index32};
}

// The launch-constant sizes a work item is located with.
template <typename U>
struct GridParams {
  U items;  // work items in the grid
  U height;
  U width;
  U inner;
  U row_length;  // width * inner
  bool even_height;
  U left_shift;                    // (-inner) mod V: where the elements `inner` back start in their first aligned pack
  U right_shift;                   // inner mod V: the same for the elements `inner` on
  FastDivider<U> items_per_row;    // row_length / V
  FastDivider<U> pairs_per_plane;  // ceil(height / 2)
  FastDivider<U> pixel_of_column;  // inner: column -> pixel
};

template <typename U>
GridParams<U> make_grid_params(int64_t planes, int64_t height, int64_t width, int64_t inner, int vec) {
  GridParams<U> p;
  const int64_t row_length = width * inner;
  const int64_t pairs_per_plane = row_pairs_per_plane(height);
  p.items = static_cast<U>(planes * pairs_per_plane * (row_length / vec));
  p.height = static_cast<U>(height);
  p.width = static_cast<U>(width);
  p.inner = static_cast<U>(inner);
  p.row_length = static_cast<U>(row_length);
  p.even_height = height % 2 == 0;
  p.left_shift = static_cast<U>((vec - inner % vec) % vec);
  p.right_shift = static_cast<U>(inner % vec);
  p.items_per_row = FastDivider<U>(static_cast<U>(row_length / vec));
  p.pairs_per_plane = FastDivider<U>(static_cast<U>(pairs_per_plane));
  p.pixel_of_column = FastDivider<U>(static_cast<U>(inner));
  return p;
}

template <typename U>
struct ItemPlace {
  U first;   // offset of the item's first element in the even row
  U column;  // its column in the row
  bool has_odd_row;
};

template <typename U>
C10_HOST_DEVICE inline ItemPlace<U> locate(const GridParams<U>& p, U item, int vec) {
  const U pair = p.items_per_row.div(item);
  const U column = (item - pair * p.items_per_row.divisor) * static_cast<U>(vec);
  if (p.even_height) {  // H = 2 * pairs_per_plane: (plane * H + h) * row_length = 2 * pair * row_length
    return {2 * pair * p.row_length + column, column, true};
  }
  const U plane = p.pairs_per_plane.div(pair);
  const RowPair<U> rows = row_pair(pair, plane, p.pairs_per_plane.divisor, p.height, p.row_length);
  return {rows.even_row + column, column, rows.has_odd_row};
}

// Which of an item's V elements belong to even pixels (the anchors' pixels) and which have a
// pixel to their right, from one division: one bit per element (bits, not bool arrays, which the
// compiler kept in predicate registers and spilled to local memory for V = 8).
template <typename U, int V>
struct PixelParity {
  uint32_t even = 0;
  uint32_t has_right = 0;

  C10_HOST_DEVICE PixelParity(const GridParams<U>& p, U column) {
    U w = p.pixel_of_column.div(column);
    U i = column - w * p.inner;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      even |= static_cast<uint32_t>(w % 2 == 0) << k;
      has_right |= static_cast<uint32_t>(w + 1 < p.width) << k;
      if (++i == p.inner) {
        i = 0;
        ++w;
      }
    }
  }
  C10_HOST_DEVICE bool is_even(int k) const { return (even >> k) & 1u; }
  C10_HOST_DEVICE bool any_odd() const { return even != (1u << V) - 1; }
  C10_HOST_DEVICE bool any_even_with_right() const { return (even & has_right) != 0; }
};

// The V elements of `row` from column `column` + `ahead` - `behind` on (one pixel back: behind =
// inner; one pixel on: ahead = inner), from the aligned packs that hold them, loaded whole;
// `shift` is where they start in the first pack (a launch constant: rows and items are aligned).
// A pack outside the row holds none of the elements a caller uses (they are in the row) and is
// not loaded. site_lo, site_hi: the two loads' instructions.
template <typename T, typename U, int V>
C10_HOST_DEVICE inline void load_neighbours(const char* site_lo, const char* site_hi, const T* row, U row_length,
                                            U column, U ahead, U behind, U shift, T (&out)[V]) {
  T lo[V] = {}, hi[V] = {};
  // Where the first pack starts, signed: it may lie before the row. Rows are shorter than 2^63.
  const auto start = static_cast<int64_t>(column + ahead) - static_cast<int64_t>(behind + shift);
  const auto length = static_cast<int64_t>(row_length);
  if (start >= 0 && start < length) {
    load_pack(site_lo, row + start, lo);
  }
  if (shift > 0 && start + V >= 0 && start + V < length) {
    load_pack(site_hi, row + start + V, hi);
  }
  shifted_pack(lo, hi, static_cast<int>(shift), out);
}

template <typename T, typename U, int V, bool kUnitInner>
C10_HOST_DEVICE inline void forward_item(const T* __restrict__ x, T* __restrict__ out, const GridParams<U>& p, U item) {
  const ItemPlace<U> at = locate(p, item, V);
  const T* even_row = x + (at.first - at.column);
  T even[V], odd[V], anchors[V];
  load_pack(NPR_SITE, x + at.first, even);
  if (at.has_odd_row) {
    load_pack(NPR_SITE, x + at.first + p.row_length, odd);
  }
  if constexpr (kUnitInner) {  // items start at even columns: anchor k is element k & ~1
#pragma unroll
    for (int k = 0; k < V; ++k) {
      anchors[k] = even[k & ~1];
    }
  } else {  // an odd pixel's anchor: the element `inner` back in the even row
    const PixelParity<U, V> parity(p, at.column);
    T back[V] = {};
    if (parity.any_odd() || V == 1) {  // V = 1: every lane loads, so that the warp's load is one run
      load_neighbours(NPR_SITE, NPR_SITE, even_row, p.row_length, at.column, U{0}, p.inner, p.left_shift, back);
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      anchors[k] = parity.is_even(k) ? even[k] : back[k];
    }
  }
  T result[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    result[k] = residual(even[k], anchors[k]);
  }
  store_pack(NPR_SITE, out + at.first, result);
  if (at.has_odd_row) {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      odd[k] = residual(odd[k], anchors[k]);
    }
    store_pack(NPR_SITE, out + at.first + p.row_length, odd);
  }
}

// The odd row's gradient passes through; in the even row each anchor gets g minus its block's
// sum (npr_rule.h) and every other element passes through.
template <typename T, typename U, int V, bool kUnitInner>
C10_HOST_DEVICE inline void backward_item(const T* __restrict__ g, T* __restrict__ out, const GridParams<U>& p,
                                          U item) {
  using opmath_t = at::opmath_type<T>;
  const ItemPlace<U> at = locate(p, item, V);
  T even[V], odd[V] = {};  // odd: zero where there is no odd row (read, never used, below)
  load_pack(NPR_SITE, g + at.first, even);
  if (at.has_odd_row) {
    load_pack(NPR_SITE, g + at.first + p.row_length, odd);
  }
  // Each anchor's block sum (npr_rule.h's block_sum order: g(0,0), g(0,1), g(1,0), g(1,1)), its
  // right neighbours in the item's registers for NCHW by pack, else `inner` on.
  uint32_t anchors;
  opmath_t sums[V];
  if constexpr (kUnitInner) {
    anchors = 0x55555555u & ((1u << V) - 1);  // even columns; V divides the row and is even
#pragma unroll
    for (int k = 0; k < V; k += 2) {
      const auto load = [&](int dh, int dw) -> opmath_t {
        return static_cast<opmath_t>(dh == 0 ? even[k + dw] : odd[k + dw]);
      };
      sums[k] = block_sum<opmath_t>(load, true, at.has_odd_row);
    }
  } else {
    // A row at a time, in the same order: each row's right neighbours loaded and added before the
    // next row's, so that fewer registers are live (two rows' at once spilled, bench/sass_summary.py).
    const PixelParity<U, V> parity(p, at.column);
    anchors = parity.even;
    const bool neighbours = parity.any_even_with_right() || V == 1;  // V = 1: every lane loads, as above
    const T* even_row = g + (at.first - at.column);
    const auto add_row = [&](const T(&row)[V], const T* row_start, bool first) {
      T right[V];
      if (neighbours) {
        load_neighbours(NPR_SITE, NPR_SITE, row_start, p.row_length, at.column, p.inner, U{0}, p.right_shift, right);
      }
#pragma unroll
      for (int k = 0; k < V; ++k) {
        sums[k] = first ? static_cast<opmath_t>(row[k]) : sums[k] + static_cast<opmath_t>(row[k]);
        if (neighbours && ((parity.has_right >> k) & 1u)) {
          sums[k] += static_cast<opmath_t>(right[k]);
        }
      }
    };
    add_row(even, even_row, true);
    if (at.has_odd_row) {
      add_row(odd, even_row + p.row_length, false);
    }
  }
  T result[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    result[k] =
        (anchors >> k) & 1u ? static_cast<T>(anchor_gradient<T>(static_cast<opmath_t>(even[k]), sums[k])) : even[k];
  }
  store_pack(NPR_SITE, out + at.first, result);
  if (at.has_odd_row) {
    store_pack(NPR_SITE, out + at.first + p.row_length, odd);
  }
}

// Thread `thread` of block `block` of a row-pair kernel: its work item, where the grid has one
// there (the last block's tail has none). The __global__ wrapper calls this with blockIdx.x and
// threadIdx.x, and the host test with every (block, thread) of the launch, so both walk one grid.
template <Pass kPass, typename T, typename U, int V, bool kUnitInner>
C10_HOST_DEVICE inline void row_pair_thread(const T* __restrict__ in, T* __restrict__ out, const GridParams<U>& p,
                                            U block, U thread) {
  const U item = block * static_cast<U>(kThreadsPerBlock) + thread;
  if (item < p.items) {
    if constexpr (kPass == Pass::kForward) {
      forward_item<T, U, V, kUnitInner>(in, out, p, item);
    } else {
      backward_item<T, U, V, kUnitInner>(in, out, p, item);
    }
  }
}

// ---------------------------------------------------------------------------------- instances

// A compile-time kernel instance, handed to with_instance's callback.
template <typename U_, int V_, bool kUnitInner_>
struct Instance {
  using U = U_;
  static constexpr int V = V_;
  static constexpr bool kUnitInner = kUnitInner_;
};

template <typename T, typename U, bool kUnitInner, typename Fn>
void with_vec(const KernelChoice& c, Fn&& fn) {
  constexpr int kVec = kVec16<T>;
  if (c.vec == kVec) {
    return fn(Instance<U, kVec, kUnitInner>{});
  }
  if constexpr (kVec / 2 >= 2) {
    if (c.vec == kVec / 2) {
      return fn(Instance<U, kVec / 2, kUnitInner>{});
    }
  }
  if constexpr (kVec / 4 >= 2) {
    if (c.vec == kVec / 4) {
      return fn(Instance<U, kVec / 4, kUnitInner>{});
    }
  }
  if constexpr (!kUnitInner) {
    if (c.vec == 1) {
      return fn(Instance<U, 1, false>{});
    }
  }
  throw std::logic_error("npr_cuda: no kernel instance for this choice");
}

// Calls fn(Instance<...>{}) for the instance `c` names: the one place where a run-time choice
// becomes template arguments, for the launcher and the host test alike.
template <typename T, typename Fn>
void with_instance(const KernelChoice& c, Fn&& fn) {
  if (c.index32) {
    c.unit_inner ? with_vec<T, uint32_t, true>(c, fn) : with_vec<T, uint32_t, false>(c, fn);
  } else {
    c.unit_inner ? with_vec<T, uint64_t, true>(c, fn) : with_vec<T, uint64_t, false>(c, fn);
  }
}

}  // namespace npr_cuda::cuda
