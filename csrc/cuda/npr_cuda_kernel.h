#pragma once
// The CUDA kernels' per-thread work, as host-and-device code: npr_cuda.cu's __global__ functions
// compute their work item and call run_item(); tests/cpp/test_cuda_bodies.cpp compiles this
// header with the host compiler and runs every item of every instance on the CPU, so the
// kernels' index arithmetic and bodies are checked on every commit, GPU or not. Only the
// 16-byte store is PTX, behind __CUDA_ARCH__. No at::Tensor here: the launcher and the test
// pass plain sizes and pointers.
//
// Work item: `vec` consecutive columns of a row pair (even row h and row h + 1, which share the
// anchors of row h), in a tensor seen as [planes, H, W, inner] (npr_rule.h). The thread loads
// both rows (and, for channels_last, the anchors and right neighbours outside its columns,
// through the cache) before it stores anything, so that all its reads are in flight at once.

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "../npr.h"
#include "../npr_rule.h"
#include "fast_divider.h"

namespace npr_cuda::cuda {

// How a work item reaches memory: one aligned pack of `vec` elements per row (4, 8 or 16 bytes),
// or `vec` elements read one by one (any alignment and row length; the row's last item may be
// partial). Either way the index arithmetic is done once per item, not per element.
enum class Access { kPack, kScalar };

// One kernel instance, as the launcher chooses it (choose_kernel) for a tensor.
struct KernelChoice {
  int vec;  // elements per work item (per row)
  Access access;
  bool unit_inner;  // NCHW: every anchor is in the item's own registers
  bool index32;     // 32-bit index arithmetic (the tensor has fewer than 2^31 elements)

  bool operator==(const KernelChoice& o) const {
    return vec == o.vec && access == o.access && unit_inner == o.unit_inner && index32 == o.index32;
  }
};

// Elements in 16 bytes: the widest pack, and the work of a kScalar item.
template <typename T>
constexpr int kVec16 = static_cast<int>(16 / sizeof(T));

// The widest pack (16, 8 or 4 bytes, at least 2 elements, and an even count for NCHW rows, whose
// anchors must fall inside the item) that divides the row length and to which both tensors
// are aligned; else element access, kVec16 elements an item.
inline KernelChoice choose_kernel(int64_t element_size, int64_t row_length, int64_t inner, int64_t numel,
                                  uintptr_t in_address, uintptr_t out_address) {
  const bool index32 = numel <= std::numeric_limits<int32_t>::max();
  for (const int64_t bytes : {16, 8, 4}) {
    const int64_t vec = bytes / element_size;
    if (vec >= 2 && row_length % vec == 0 && in_address % bytes == 0 && out_address % bytes == 0) {
      return {static_cast<int>(vec), Access::kPack, inner == 1, index32};
    }
  }
  return {static_cast<int>(16 / element_size), Access::kScalar, inner == 1, index32};
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
  FastDivider<U> chunks_per_row;   // items per row pair: ceil(row_length / vec)
  FastDivider<U> pairs_per_plane;  // ceil(height / 2)
  FastDivider<U> pixel_of_column;  // inner: column -> pixel (channels_last)
};

template <typename U>
GridParams<U> make_grid_params(int64_t planes, int64_t height, int64_t width, int64_t inner, int vec) {
  GridParams<U> p;
  const int64_t row_length = width * inner;
  const int64_t chunks = (row_length + vec - 1) / vec;
  const int64_t pairs_per_plane = row_pairs_per_plane(height);
  p.items = static_cast<U>(planes * pairs_per_plane * chunks);
  p.height = static_cast<U>(height);
  p.width = static_cast<U>(width);
  p.inner = static_cast<U>(inner);
  p.row_length = static_cast<U>(row_length);
  p.even_height = height % 2 == 0;
  p.chunks_per_row = FastDivider<U>(static_cast<U>(chunks));
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
  const U pair = p.chunks_per_row.div(item);
  const U column = (item - pair * p.chunks_per_row.divisor) * static_cast<U>(vec);
  if (p.even_height) {  // H = 2 * pairs_per_plane: (plane * H + h) * row_length = 2 * pair * row_length
    return {2 * pair * p.row_length + column, column, true};
  }
  const U plane = p.pairs_per_plane.div(pair);
  const RowPair<U> rows = row_pair(pair, plane, p.pairs_per_plane.divisor, p.height, p.row_length);
  return {rows.even_row + column, column, rows.has_odd_row};
}

// ------------------------------------------------------------------------------- host checks

#ifndef __CUDA_ARCH__
// What a host run of the bodies (tests/cpp/test_cuda_bodies.cpp) checks that the host alone would
// not notice. A pack access not aligned to the pack's size works through memcpy here and faults
// on a GPU ("misaligned address"): it throws MisalignedPack. And a test can count every element
// stored (HostStores), to see each output written exactly once and nothing outside it.
struct MisalignedPack : std::logic_error {
  using std::logic_error::logic_error;
};

inline void check_pack_alignment(const void* p, size_t bytes) {
  const auto past = reinterpret_cast<uintptr_t>(p) % bytes;
  if (past != 0) {
    throw MisalignedPack("a " + std::to_string(bytes) + "-byte pack access " + std::to_string(past) +
                         " bytes past an aligned address");
  }
}

// Stores per element of [begin, begin + counts.size() elements); stores elsewhere are `outside`.
struct HostStores {
  uintptr_t begin = 0;
  size_t element_size = 1;
  std::vector<int> counts;
  int64_t outside = 0;

  void add(const void* p, int n) {
    const auto at = reinterpret_cast<uintptr_t>(p);
    for (int k = 0; k < n; ++k) {
      const uintptr_t element = (at - begin) / element_size + k;
      if (at < begin || element >= counts.size()) {
        ++outside;
      } else {
        ++counts[element];
      }
    }
  }
};

// The counter a test installs for its host runs; none by default.
inline HostStores*& host_stores() {
  static HostStores* stores = nullptr;
  return stores;
}
#endif

// `n` elements stored at p: counted on the host, when a test asks.
template <typename T>
C10_HOST_DEVICE inline void note_stores([[maybe_unused]] const T* p, [[maybe_unused]] int n) {
#ifndef __CUDA_ARCH__
  if (HostStores* stores = host_stores()) {
    stores->add(p, n);
  }
#endif
}

// ------------------------------------------------------------------------------ loads, stores

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// `n` valid elements of an item (n == V for kPack); the others are zero, computed on and never
// stored.
template <Access A, typename T, int V>
C10_HOST_DEVICE inline void load_item(const T* p, T (&v)[V], int n) {
  if constexpr (A == Access::kPack) {
#ifdef __CUDA_ARCH__
    const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v[k] = pack.v[k];
    }
#else
    check_pack_alignment(p, sizeof(Pack<T, V>));
    std::memcpy(v, p, sizeof(v));
#endif
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v[k] = k < n ? p[k] : T(0);
    }
  }
}

template <Access A, typename T, int V>
C10_HOST_DEVICE inline void store_item(T* p, const T (&v)[V], int n) {
  if constexpr (A == Access::kPack) {
#ifdef __CUDA_ARCH__
    Pack<T, V> pack;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      pack.v[k] = v[k];
    }
    if constexpr (sizeof(pack) == 16) {
      // One st.global.v4: nvcc 13.0 split the plain store of a computed 16-byte pack into one
      // 4-byte STG per element (seen in the SASS). An ordinary weak store, STG.E.128.
      uint32_t words[4];
      memcpy(words, &pack, sizeof(words));
      asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(words[0]), "r"(words[1]), "r"(words[2]),
                   "r"(words[3])
                   : "memory");
    } else {
      *reinterpret_cast<Pack<T, V>*>(p) = pack;
    }
#else
    check_pack_alignment(p, sizeof(Pack<T, V>));
    std::memcpy(p, v, sizeof(v));
#endif
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      if (k < n) {
        p[k] = v[k];
      }
    }
  }
  note_stores(p, n);
}

// ------------------------------------------------------------------------------------ bodies

// The valid elements of a kScalar item: V, or fewer for the row's last item.
template <typename U>
C10_HOST_DEVICE inline int elements_left(const GridParams<U>& p, U column, int vec) {
  const U left = p.row_length - column;
  return left < static_cast<U>(vec) ? static_cast<int>(left) : vec;
}

// Pixel w and channel i of each column of an item, stepped along from one division.
template <typename U>
struct ColumnCursor {
  U w;
  U i;
  C10_HOST_DEVICE ColumnCursor(const GridParams<U>& p, U column) : w(p.pixel_of_column.div(column)) {
    i = column - w * p.inner;
  }
  C10_HOST_DEVICE void advance(U inner) {
    if (++i == inner) {
      i = 0;
      ++w;
    }
  }
};

template <typename T, typename U, int V, Access A, bool kUnitInner>
C10_HOST_DEVICE inline void forward_item(const T* __restrict__ x, T* __restrict__ out, const GridParams<U>& p, U item) {
  const ItemPlace<U> at = locate(p, item, V);
  const int n = A == Access::kPack ? V : elements_left(p, at.column, V);
  T even[V], odd[V], anchors[V];
  load_item<A>(x + at.first, even, n);
  if (at.has_odd_row) {
    load_item<A>(x + at.first + p.row_length, odd, n);
  }
  if constexpr (kUnitInner) {  // items start at even columns: anchor k is element k & ~1
#pragma unroll
    for (int k = 0; k < V; ++k) {
      anchors[k] = even[k & ~1];
    }
  } else {  // an odd pixel's anchor is one pixel back, maybe before the item: read it through the cache
    ColumnCursor<U> cursor(p, at.column);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      anchors[k] = cursor.w % 2 == 0 ? even[k] : k < n ? x[at.first + k - p.inner] : T(0);
      cursor.advance(p.inner);
    }
  }
  T result[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    result[k] = residual(even[k], anchors[k]);
  }
  if (at.has_odd_row) {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      odd[k] = residual(odd[k], anchors[k]);
    }
  }
  store_item<A>(out + at.first, result, n);
  if (at.has_odd_row) {
    store_item<A>(out + at.first + p.row_length, odd, n);
  }
}

// The odd row's gradient passes through; in the even row each anchor gets g minus its block's
// sum (npr_rule.h) and every other element passes through.
template <typename T, typename U, int V, Access A, bool kUnitInner>
C10_HOST_DEVICE inline void backward_item(const T* __restrict__ g, T* __restrict__ out, const GridParams<U>& p,
                                          U item) {
  using opmath_t = at::opmath_type<T>;
  const ItemPlace<U> at = locate(p, item, V);
  const int n = A == Access::kPack ? V : elements_left(p, at.column, V);
  T even[V], odd[V];
  load_item<A>(g + at.first, even, n);
  if (at.has_odd_row) {
    load_item<A>(g + at.first + p.row_length, odd, n);
  }
  T result[V];
  [[maybe_unused]] ColumnCursor<U> cursor(p, kUnitInner ? U{0} : at.column);
  // Where channels_last reads each element's right neighbour (used at anchors, if any).
  [[maybe_unused]] const T* right_even = g + at.first + p.inner;
  [[maybe_unused]] const T* right_odd = right_even + p.row_length;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    result[k] = even[k];
    const bool is_anchor = kUnitInner ? k % 2 == 0 : cursor.w % 2 == 0;
    if (is_anchor && k < n) {
      // The right neighbour: in the item's registers for NCHW rows, else read through the cache.
      const auto load = [&](int dh, int dw) -> opmath_t {
        if (dw == 0) {
          return static_cast<opmath_t>(dh == 0 ? even[k] : odd[k]);
        }
        if constexpr (kUnitInner) {
          return static_cast<opmath_t>(dh == 0 ? even[k | 1] : odd[k | 1]);
        } else {
          return static_cast<opmath_t>((dh == 0 ? right_even : right_odd)[k]);
        }
      };
      const bool has_right = kUnitInner ? (A == Access::kPack || k + 1 < n) : cursor.w + 1 < p.width;
      const opmath_t sum = block_sum<opmath_t>(load, has_right, at.has_odd_row);
      result[k] = static_cast<T>(anchor_gradient<T>(static_cast<opmath_t>(even[k]), sum));
    }
    if constexpr (!kUnitInner) {
      cursor.advance(p.inner);
    }
  }
  store_item<A>(out + at.first, result, n);
  if (at.has_odd_row) {
    store_item<A>(out + at.first + p.row_length, odd, n);
  }
}

template <Pass kPass, typename T, typename U, int V, Access A, bool kUnitInner>
C10_HOST_DEVICE inline void run_item(const T* __restrict__ in, T* __restrict__ out, const GridParams<U>& p, U item) {
  if constexpr (kPass == Pass::kForward) {
    forward_item<T, U, V, A, kUnitInner>(in, out, p, item);
  } else {
    backward_item<T, U, V, A, kUnitInner>(in, out, p, item);
  }
}

// -------------------------------------------------------------------------------- the grid

// Threads per block of every kernel; the launcher gives each launch blocks_for(items) blocks.
constexpr int kThreadsPerBlock = 256;

// The number of blocks for `items` work items, checked against the grid's limit.
inline unsigned int blocks_for(uint64_t items, Pass pass, int64_t numel) {
  const uint64_t blocks = (items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), op_name(pass), ": tensor of ", numel,
              " elements is too large for one kernel launch");
  return static_cast<unsigned int>(blocks);
}

// Thread `thread` of block `block` of a row-pair kernel: its work item, where the grid has one
// there (the last block's tail has none). The __global__ wrappers call this with blockIdx.x and
// threadIdx.x, and the host test with every (block, thread) of the launch, so both walk one grid.
template <Pass kPass, typename T, typename U, int V, Access A, bool kUnitInner>
C10_HOST_DEVICE inline void row_pair_thread(const T* __restrict__ in, T* __restrict__ out, const GridParams<U>& p,
                                            U block, U thread) {
  const U item = block * static_cast<U>(kThreadsPerBlock) + thread;
  if (item < p.items) {
    run_item<kPass, T, U, V, A, kUnitInner>(in, out, p, item);
  }
}

// ---------------------------------------------------------------------------------- instances

// A compile-time kernel instance, handed to with_instance's callback.
template <typename U_, int V_, Access A_, bool kUnitInner_>
struct Instance {
  using U = U_;
  static constexpr int V = V_;
  static constexpr Access A = A_;
  static constexpr bool kUnitInner = kUnitInner_;
};

template <typename T, typename U, bool kUnitInner, typename Fn>
void with_access(const KernelChoice& c, Fn&& fn) {
  constexpr int kVec = kVec16<T>;
  if (c.access == Access::kScalar && c.vec == kVec) {
    return fn(Instance<U, kVec, Access::kScalar, kUnitInner>{});
  }
  if (c.access == Access::kPack) {
    if (c.vec == kVec) {
      return fn(Instance<U, kVec, Access::kPack, kUnitInner>{});
    }
    if constexpr (kVec / 2 >= 2) {
      if (c.vec == kVec / 2) {
        return fn(Instance<U, kVec / 2, Access::kPack, kUnitInner>{});
      }
    }
    if constexpr (kVec / 4 >= 2) {
      if (c.vec == kVec / 4) {
        return fn(Instance<U, kVec / 4, Access::kPack, kUnitInner>{});
      }
    }
  }
  throw std::logic_error("npr_cuda: no kernel instance for this choice");
}

// Calls fn(Instance<...>{}) for the instance `c` names: the one place where a run-time choice
// becomes template arguments, for the launcher and the host test alike.
template <typename T, typename Fn>
void with_instance(const KernelChoice& c, Fn&& fn) {
  if (c.index32) {
    c.unit_inner ? with_access<T, uint32_t, true>(c, fn) : with_access<T, uint32_t, false>(c, fn);
  } else {
    c.unit_inner ? with_access<T, uint64_t, true>(c, fn) : with_access<T, uint64_t, false>(c, fn);
  }
}

}  // namespace npr_cuda::cuda
