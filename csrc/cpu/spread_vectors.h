#pragma once
// Forward vectors at any column of rows of wide pixels: each anchor selected bitwise.

#include "bfloat16_pairs.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// Pixels `inner` elements wide, any alignment: one Vectorized<scalar_t> of elements at a time,
// each anchor fetched from its own column or from `inner` columns back. `odd_pixels` is a row
// mask with every bit set at the elements of odd pixels; selections by it are bitwise, so that
// the anchors keep their exact bits (NaN payloads included).
template <typename scalar_t>
struct SpreadVectors {
  using V = Vectorized<scalar_t>;
  static constexpr int64_t kSize = V::size();
  static constexpr bool kPairs = kUsesPairs<scalar_t>;

  // Columns [c, c + kSize) of `row` (the even row or the odd one) minus their anchors, selected
  // from the even row. Chunks start where the output rows do, so that the stores stay aligned.
  // (The odd row selects the anchors again rather than reading them from a scratch row: an
  // extra store per chunk costs more than a selection from L1.)
  C10_ALWAYS_INLINE static void residuals(const scalar_t* row, const scalar_t* even, int64_t c, int64_t inner,
                                          bool first_row, const scalar_t* odd_pixels, scalar_t* out) {
    if constexpr (kPairs) {
      using P = BFloat16Pairs;
      const auto a =
          P::select(P::load(even + c), one_pixel_back<P::IVec>(even, c, inner, first_row), P::load(odd_pixels + c));
      P::store(out + c, P::difference(P::load(row + c), a));
    } else {
      const V a = V::blendv(V::loadu(even + c), one_pixel_back<V>(even, c, inner, first_row), V::loadu(odd_pixels + c));
      difference(V::loadu(row + c), a).store(out + c);
    }
  }

  // The elements one pixel before columns [c, c + kSize). Before a row's start that is the end of
  // the row above, read but never selected; only the tensor's first row has nothing there and
  // takes a zero-padded copy.
  template <typename Vec>
  static Vec one_pixel_back(const scalar_t* row, int64_t c, int64_t inner, bool first_row) {
    if (c >= inner || !first_row) {
      return Vec::loadu(row + c - inner);
    }
    std::array<scalar_t, kSize> window{};
    const int64_t skip = inner - c;
    if (skip < kSize) {
      std::copy(row, row + kSize - skip, window.begin() + skip);
    }
    return Vec::loadu(window.data());
  }

  C10_ALWAYS_INLINE static V difference(const V& x, const V& a) {
    if constexpr (kIsReduced<scalar_t>) {
      const auto [x_lo, x_hi] = at::vec::convert_to_float<scalar_t>(x);
      const auto [a_lo, a_hi] = at::vec::convert_to_float<scalar_t>(a);
      return at::vec::convert_from_float<scalar_t>(x_lo - a_lo, x_hi - a_hi);
    } else {
      return x - a;
    }
  }
};

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
