// CUDA kernels. One thread owns kVec consecutive columns of a row pair (even row h and row
// h + 1, which share the anchors of row h): it reads each of its elements once and writes each
// output once, with 16-byte loads and stores when rows are 16-byte aligned. Index arithmetic
// is 64-bit throughout.

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <limits>

#include "../npr.h"
#include "../npr_rule.h"

namespace npr_cuda::cuda {
namespace {

constexpr int kThreadsPerBlock = 256;
constexpr int kVectorBytes = 16;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}

// A 16-byte Pack is stored with one st.global.v4: nvcc 13.0 split the plain store of a computed
// Pack into one 4-byte STG per element whenever the address came from locate()'s divisions
// (seen in the SASS). The asm is an ordinary weak store (STG.E.128, as a vectorised store
// compiles to); its "memory" clobber keeps it ordered with the other accesses.
template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& pack) {
  if constexpr (sizeof(pack) == 16) {
    uint32_t words[4];
    memcpy(words, &pack, sizeof(words));
    asm("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(words[0]), "r"(words[1]), "r"(words[2]), "r"(words[3])
        : "memory");
  } else {
    *reinterpret_cast<Pack<T, N>*>(p) = pack;
  }
}

// Where the thread for work item `item` works: the start of its columns in the even row.
struct RowPairGrid {
  int64_t height;
  int64_t row_length;  // width * inner
  int64_t inner;
  int64_t chunks_per_row;   // row_length / kVec
  int64_t pairs_per_plane;  // ceil(height / 2)
  int64_t items;            // planes * pairs_per_plane * chunks_per_row
};

struct WorkItem {
  int64_t even_row;  // offset of the even row's first element
  int64_t column;    // first column this thread owns
  bool has_odd_row;  // false for the last row of an odd height
};

__device__ __forceinline__ WorkItem locate(const RowPairGrid& grid, int64_t item, int vec) {
  const int64_t pair = item / grid.chunks_per_row;
  const RowPair rows = row_pair(pair, grid.pairs_per_plane, grid.height, grid.row_length);
  return {rows.even_row, (item - pair * grid.chunks_per_row) * vec, rows.has_odd_row};
}

// Pixel index w and channel i of column `column` of a row; stepped along without dividing.
struct ColumnCursor {
  int64_t w;
  int64_t i;
  __device__ explicit ColumnCursor(int64_t column, int64_t inner)
      : w(column / inner), i(column - (column / inner) * inner) {}
  __device__ void advance(int64_t inner) {
    if (++i == inner) {
      i = 0;
      ++w;
    }
  }
};

// kUnitInner: NCHW rows with kVec even, so a thread's columns start at an even pixel and every
// anchor is in the thread's own registers. Otherwise an anchor may lie before the thread's
// columns and is read again through the cache (the DRAM traffic stays one read per element).
template <typename T, int kVec, bool kUnitInner>
__device__ __forceinline__ void forward_item(const T* __restrict__ x, T* __restrict__ out, const RowPairGrid& grid,
                                             const WorkItem& at) {
  const int64_t first = at.even_row + at.column;
  const Pack<T, kVec> even = load_pack<T, kVec>(x + first);
  Pack<T, kVec> anchors;
  if constexpr (kUnitInner) {
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      anchors.v[k] = even.v[k & ~1];
    }
  } else {
    ColumnCursor cursor(at.column, grid.inner);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      anchors.v[k] = x[first + k - anchor_column_offset(cursor.w, grid.inner)];
      cursor.advance(grid.inner);
    }
  }

  Pack<T, kVec> result;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    result.v[k] = residual(even.v[k], anchors.v[k]);
  }
  store_pack<T, kVec>(out + first, result);

  if (at.has_odd_row) {
    const Pack<T, kVec> odd = load_pack<T, kVec>(x + first + grid.row_length);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      result.v[k] = residual(odd.v[k], anchors.v[k]);
    }
    store_pack<T, kVec>(out + first + grid.row_length, result);
  }
}

// The odd row's gradient passes through; in the even row each anchor gets g minus its block's
// sum (npr_rule.h) and every other element passes through.
template <typename T, int kVec, bool kUnitInner>
__device__ __forceinline__ void backward_item(const T* __restrict__ g, T* __restrict__ out, const RowPairGrid& grid,
                                              const WorkItem& at) {
  using opmath_t = at::opmath_type<T>;
  const int64_t first = at.even_row + at.column;
  const int64_t width = grid.row_length / grid.inner;

  const Pack<T, kVec> even = load_pack<T, kVec>(g + first);
  Pack<T, kVec> odd;
  if (at.has_odd_row) {
    odd = load_pack<T, kVec>(g + first + grid.row_length);
    store_pack<T, kVec>(out + first + grid.row_length, odd);
  }

  Pack<T, kVec> result = even;
  ColumnCursor cursor(at.column, grid.inner);
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    if (kUnitInner ? k % 2 == 0 : cursor.w == anchor_index(cursor.w)) {
      // The right neighbour is in this thread's registers for NCHW rows, else read from cache.
      const auto load = [&](int dh, int dw) -> opmath_t {
        const Pack<T, kVec>& row = dh == 0 ? even : odd;
        if (dw == 0) {
          return static_cast<opmath_t>(row.v[k]);
        }
        if constexpr (kUnitInner) {
          return static_cast<opmath_t>(row.v[k | 1]);
        } else {
          return static_cast<opmath_t>(g[first + dh * grid.row_length + k + grid.inner]);
        }
      };
      const bool has_right = kUnitInner || cursor.w + 1 < width;
      const opmath_t sum = block_sum<opmath_t>(load, has_right, at.has_odd_row);
      result.v[k] = static_cast<T>(anchor_gradient<T>(static_cast<opmath_t>(even.v[k]), sum));
    }
    if constexpr (!kUnitInner) {
      cursor.advance(grid.inner);
    }
  }
  store_pack<T, kVec>(out + first, result);
}

template <Pass kPass, typename T, int kVec, bool kUnitInner>
__global__ void __launch_bounds__(kThreadsPerBlock)
    row_pair_kernel(const T* __restrict__ in, T* __restrict__ out, RowPairGrid grid) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (item >= grid.items) {
    return;
  }
  const WorkItem at = locate(grid, item, kVec);
  if constexpr (kPass == Pass::kForward) {
    forward_item<T, kVec, kUnitInner>(in, out, grid, at);
  } else {
    backward_item<T, kVec, kUnitInner>(in, out, grid, at);
  }
}

// Runs one pass over the row pairs of `layout`: 16-byte vectors when the rows allow them, one
// element per thread otherwise.
template <Pass kPass, typename T>
void launch_row_pairs(const PlaneLayout& layout) {
  constexpr int kVec = kVectorBytes / sizeof(T);
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const bool vectorized = reinterpret_cast<std::uintptr_t>(in) % kVectorBytes == 0 &&
                          reinterpret_cast<std::uintptr_t>(out) % kVectorBytes == 0 && layout.row_length() % kVec == 0;
  const int vec = vectorized ? kVec : 1;

  RowPairGrid grid;
  grid.height = layout.height;
  grid.row_length = layout.row_length();
  grid.inner = layout.inner;
  grid.chunks_per_row = grid.row_length / vec;
  grid.pairs_per_plane = row_pairs_per_plane(layout.height);
  grid.items = layout.planes * grid.pairs_per_plane * grid.chunks_per_row;

  const int64_t blocks = (grid.items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), op_name(kPass), ": tensor of ", layout.output.numel(),
              " elements is too large for one kernel launch");
  const dim3 grid_dim(static_cast<unsigned int>(blocks));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (!vectorized) {
    row_pair_kernel<kPass, T, 1, false><<<grid_dim, kThreadsPerBlock, 0, stream>>>(in, out, grid);
  } else if (layout.inner == 1) {
    row_pair_kernel<kPass, T, kVec, true><<<grid_dim, kThreadsPerBlock, 0, stream>>>(in, out, grid);
  } else {
    row_pair_kernel<kPass, T, kVec, false><<<grid_dim, kThreadsPerBlock, 0, stream>>>(in, out, grid);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <Pass kPass>
at::Tensor run_pass(const at::Tensor& x) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  const PlaneLayout layout = prepare_planes(x, op_name(kPass));
  if (layout.output.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), op_name(kPass),
                                    [&] { launch_row_pairs<kPass, scalar_t>(layout); });
  }
  return layout.output;
}

at::Tensor npr_cuda(const at::Tensor& x) { return run_pass<Pass::kForward>(x); }

at::Tensor npr_backward_cuda(const at::Tensor& grad) { return run_pass<Pass::kBackward>(grad); }

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, CUDA, m) {
  m.impl("npr", &npr_cuda);
  m.impl("npr_backward", &npr_backward_cuda);
}

}  // namespace npr_cuda::cuda
