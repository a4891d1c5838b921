#pragma once
// The window forward's spread of 16- and 32-bit anchors: AVX-512 two-source permutes.

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../vectors.h"
#include "intrinsics.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// 16- and 32-bit rows on AVX-512: the anchors of a vector of columns (32 or 16) lie within two
// vectors' worth of consecutive elements of the anchor row when windows are at most a vector's
// worth of elements wide, so two masked loads and one two-source permute (vpermt2w, vpermt2d)
// spread them, each chunk's lowest anchor and the others' offsets from it worked out once per
// call. (at::vec has no 16-bit gather, and its float gather measured slower: bench/RESULTS.md.)
// Elsewhere, or for wider windows, `usable()` is false.
template <int kBytes>
class PermutedSpread {
 public:
  static_assert(kBytes == 2 || kBytes == 4);
  static constexpr int64_t kSize = 64 / kBytes;  // elements of a 512-bit vector
  using Offset = std::conditional_t<kBytes == 2, int16_t, int32_t>;

  PermutedSpread() = default;  // not usable

  template <typename Index>
  explicit PermutedSpread(const std::vector<Index>& index) {
    const int64_t length = static_cast<int64_t>(index.size());
    bool fits = length >= kSize;
    cover<kSize>(
        0, fits ? length : 0,
        [&](int64_t c) {
          const auto [low, high] = std::minmax_element(index.begin() + c, index.begin() + c + kSize);
          fits = fits && *high - *low < 2 * kSize;
          first_.push_back(*low);
          for (int64_t j = 0; j < kSize; ++j) {
            offsets_.push_back(static_cast<Offset>(index[c + j] - *low));
          }
        },
        [](int64_t) {});
    if (!fits) {
      first_.clear();
      offsets_.clear();
    }
  }

  bool usable() const { return !first_.empty(); }

  // spread[c] = anchors[index[c]] for the row of `length` elements the plan was made for.
  template <typename scalar_t>
  void spread(const scalar_t* anchors, scalar_t* spread, int64_t length) const {
    static_assert(sizeof(scalar_t) == kBytes);
    int64_t chunk = 0;
    cover<kSize>(
        0, length,
        [&](int64_t c) {
          // Masked loads: nothing is read past the row's end.
          const int64_t first = first_[chunk];
          const int64_t left = length - first;
          const auto mask = [](int64_t n) {
            return n >= kSize ? ~uint32_t(0) : n <= 0 ? uint32_t(0) : (uint32_t(1) << n) - 1;
          };
          const __m512i offsets = _mm512_loadu_si512(offsets_.data() + chunk * kSize);
          if constexpr (kBytes == 2) {
            const __m512i low = _mm512_maskz_loadu_epi16(mask(left), anchors + first);
            const __m512i high = _mm512_maskz_loadu_epi16(mask(left - kSize), anchors + first + kSize);
            _mm512_storeu_si512(spread + c, _mm512_permutex2var_epi16(low, offsets, high));
          } else {
            const __m512i low = _mm512_maskz_loadu_epi32(mask(left), anchors + first);
            const __m512i high = _mm512_maskz_loadu_epi32(mask(left - kSize), anchors + first + kSize);
            _mm512_storeu_si512(spread + c, _mm512_permutex2var_epi32(low, offsets, high));
          }
          ++chunk;
        },
        [](int64_t) {});
  }

 private:
  std::vector<int64_t> first_;
  std::vector<Offset> offsets_;
};

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
