#pragma once
// The window forward (any window but the default 2x2 one): the anchor row of each row group
// spread over a scratch row, then subtracted from each of the group's rows.

#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "../npr_rule.h"
#include "prefetch.h"
#include "spread_vectors.h"

#if defined(CPU_CAPABILITY_AVX512)
#include "avx512/permuted_spread.h"
#else
namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {
// Below AVX-512 there are no two-source permutes: spread_row takes gathers or scalar loads.
template <int kBytes>
struct PermutedSpread {
  PermutedSpread() = default;
  template <typename Index>
  explicit PermutedSpread(const std::vector<Index>&) {}
  bool usable() const { return false; }
  template <typename scalar_t>
  void spread(const scalar_t*, scalar_t*, int64_t) const {}
};
}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
#endif

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// Whether a row's anchors can be spread with vector gathers, where no PermutedSpread (below) is
// usable: float and double (at::vec has gathers for them; a 16-bit type has no index of its own
// width).
template <typename scalar_t>
constexpr bool kGathered = std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>;

// The PermutedSpread for scalar_t's width (none for double: its gathers are kept).
template <typename scalar_t>
using SpreadPlan = PermutedSpread<sizeof(scalar_t) == 2 ? 2 : 4>;

// spread[c] = anchors[index[c]] for a row of `length` elements: permutes where `permuted` is
// usable, else vector gathers for float and double, else scalar. (A scalar loop, or a fill per
// window, measured slower for float: bench/RESULTS.md, window kernels.)
template <typename scalar_t, typename Index>
void spread_row(const scalar_t* anchors, const Index* index, const SpreadPlan<scalar_t>& permuted, scalar_t* spread,
                int64_t length) {
  if constexpr (sizeof(scalar_t) <= 4) {
    if (permuted.usable()) {
      permuted.spread(anchors, spread, length);
      return;
    }
  }
  int64_t c = 0;
  if constexpr (kGathered<scalar_t>) {
    using V = Vectorized<scalar_t>;
    for (; c + V::size() <= length; c += V::size()) {
      at::vec::gather<sizeof(scalar_t)>(anchors, Vectorized<Index>::loadu(index + c)).store(spread + c);
    }
  }
  for (; c < length; ++c) {
    spread[c] = anchors[index[c]];
  }
}

// out = x - spread for `length` elements, with vectors.
template <typename scalar_t>
void subtract_row(const scalar_t* x, const scalar_t* spread, scalar_t* out, int64_t length) {
  int64_t c = 0;
  if constexpr (kUsesPairs<scalar_t>) {
    using P = BFloat16Pairs;
    for (; c + P::kSize <= length; c += P::kSize) {
      P::store(out + c, P::difference(P::load(x + c), P::load(spread + c)));
    }
  } else {
    using V = Vectorized<scalar_t>;
    for (; c + V::size() <= length; c += V::size()) {
      SpreadVectors<scalar_t>::difference(V::loadu(x + c), V::loadu(spread + c)).store(out + c);
    }
  }
  for (; c < length; ++c) {
    out[c] = residual(x[c], spread[c]);
  }
}

// The window forward, planned once per call for a tensor's rows: per row group, the anchor row's
// values are spread over a row (each element takes its anchor's; an L1-resident scratch row),
// then subtracted from each row of the group, so that memory sees one read and one write per
// element.
template <typename scalar_t>
class WindowForward {
 public:
  // The scratch a task needs: the spread row.
  using Scratch = scalar_t;
  // The column of each column's anchor, in the anchor row (an integer of the element's width for
  // float and double, which vector gathers then read).
  using Index = std::conditional_t<kGathered<scalar_t>, at::vec::int_same_size_t<scalar_t>, int64_t>;

  WindowForward(const Window& win, int64_t width, int64_t inner) : length_(width * inner), anchor_column_(length_) {
    TORCH_CHECK(length_ <= std::numeric_limits<Index>::max(), "npr: rows of ", length_, " elements are too long");
    for (int64_t c = 0; c < length_; ++c) {
      anchor_column_[c] =
          static_cast<Index>(window_anchor(c / inner, width, win.cols, win.anchor_col) * inner + c % inner);
    }
    if constexpr (sizeof(scalar_t) <= 4) {
      permuted_ = SpreadPlan<scalar_t>(anchor_column_);
    }
  }

  int64_t scratch_elements() const { return length_; }

  // One row group of `rows` rows, the anchor row `anchor_dh` of them; `ahead` is prefetched a
  // step at each row.
  void run_group(const scalar_t* group_in, scalar_t* group_out, int64_t rows, int64_t anchor_dh,
                 const PrefetchRange& ahead, Scratch* spread) const {
    PrefetchStream stream(ahead, rows);
    spread_row(group_in + anchor_dh * length_, anchor_column_.data(), permuted_, spread, length_);
    for (int64_t dh = 0; dh < rows; ++dh) {
      stream.step();
      subtract_row(group_in + dh * length_, spread, group_out + dh * length_, length_);
    }
  }

 private:
  int64_t length_;
  std::vector<Index> anchor_column_;
  SpreadPlan<scalar_t> permuted_;
};

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
