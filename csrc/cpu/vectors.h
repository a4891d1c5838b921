#pragma once
// What every CPU kernel builds on, in its instruction set's namespace (kernels.h): at::vec's
// Vectorized, the compute type, the Chunk of two opmath vectors, cover() for rows in chunks, and
// pixel masks for bitwise selections.

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (DEFAULT, AVX2 or AVX512) before including the CPU kernels (kernels.h)"
#endif

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

template <typename scalar_t>
using opmath_t = at::opmath_type<scalar_t>;

template <typename scalar_t>
constexpr bool kIsReduced = std::is_same_v<scalar_t, c10::Half> || std::is_same_v<scalar_t, c10::BFloat16>;

// A chunk of 2 * Vectorized<opmath_t>::size() consecutive elements, held as two opmath vectors.
template <typename scalar_t>
struct Chunk {
  using Vec = Vectorized<opmath_t<scalar_t>>;
  static constexpr int64_t kSize = 2 * Vec::size();
  Vec lo, hi;

  static Chunk load(const scalar_t* p) {
    if constexpr (kIsReduced<scalar_t>) {
      auto [lo, hi] = at::vec::convert_to_float<scalar_t>(Vectorized<scalar_t>::loadu(p));
      return {lo, hi};
    } else {
      return {Vec::loadu(p), Vec::loadu(p + Vec::size())};
    }
  }
  void store(scalar_t* p) const {
    if constexpr (kIsReduced<scalar_t>) {
      at::vec::convert_from_float<scalar_t>(lo, hi).store(p);
    } else {
      lo.store(p);
      hi.store(p + Vec::size());
    }
  }
  // npr_rule.h's anchor_gradient, lane by lane: the block sum rounded to scalar_t first.
  static Vec anchor_gradient(const Vec& g_anchor, const Vec& block_sum) {
    if constexpr (kIsReduced<scalar_t>) {
      const auto rounded = at::vec::convert_from_float<scalar_t>(block_sum, block_sum);
      return g_anchor - std::get<0>(at::vec::convert_to_float<scalar_t>(rounded));
    } else {
      return g_anchor - block_sum;
    }
  }
};

// Calls chunk(c) for chunks of kSize columns covering [begin, end), the last one moved back to
// end at `end` (overlapping its neighbour: every output is a function of the input only, so the
// overlap writes the same values twice), or element(c) for each column of a shorter range.
template <int64_t kSize, typename ChunkFn, typename ElementFn>
C10_ALWAYS_INLINE void cover(int64_t begin, int64_t end, const ChunkFn& chunk, const ElementFn& element) {
  if (end - begin < kSize) {
    for (int64_t c = begin; c < end; ++c) {
      element(c);
    }
    return;
  }
  int64_t c = begin;
  for (; c + kSize <= end; c += kSize) {
    chunk(c);
  }
  if (c < end) {
    chunk(end - kSize);
  }
}

// A selection mask for a row of `length` elements: every bit set at the `inner` elements of each
// pixel that starts at first, first + period, ..., zero elsewhere.
template <typename scalar_t>
std::vector<scalar_t> pixel_mask(int64_t length, int64_t first, int64_t period, int64_t inner) {
  std::vector<scalar_t> mask(length, scalar_t(0));
  const auto all_ones = c10::bit_cast<scalar_t>(static_cast<at::vec::int_same_size_t<scalar_t>>(-1));
  for (int64_t k = first; k + inner <= length; k += period) {
    std::fill_n(mask.data() + k, inner, all_ones);
  }
  return mask;
}

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
