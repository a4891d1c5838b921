#pragma once
// bfloat16 rows handled as int32 lanes of element pairs, with integer operations only.

#include "vectors.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// bfloat16 rows read as int32 lanes: lane p holds column 2p (an anchor) in its low half and
// column 2p + 1 in its high half (little-endian). A bfloat16 is the high half of its float, so
// each half becomes a float with one mask or shift: even and odd columns come apart, and each
// anchor lines up with its pair, with lane-wise integer operations and no shuffles.
struct BFloat16Pairs {
  using IVec = Vectorized<int32_t>;
  using FVec = Vectorized<float>;
  static constexpr int64_t kSize = 2 * IVec::size();  // elements per vector
  static constexpr bool kUsable = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && kSize == Chunk<c10::BFloat16>::kSize;

  static IVec load(const c10::BFloat16* p) { return IVec::loadu(p); }
  static void store(c10::BFloat16* p, const IVec& lanes) { lanes.store(p); }
  static FVec even(const IVec& lanes) { return at::vec::cast<float>(lanes << IVec(16)); }
  static FVec odd(const IVec& lanes) { return at::vec::cast<float>(lanes & IVec(kHighHalf)); }
  // f rounded to bfloat16 (to nearest even, as c10::BFloat16), in the high half. NaN needs no
  // special case here: every value rounded is computed from widened bfloat16s, and a NaN result
  // of such arithmetic is an operand's NaN (quieted) or the default NaN, both with a zero low
  // half, to which the rounding bias adds no carry: it stays NaN.
  static IVec round_high(const FVec& f) {
    const IVec bits = at::vec::cast<int32_t>(f);
    return (bits + ((bits >> IVec(16)) & IVec(1)) + IVec(0x7FFF)) & IVec(kHighHalf);
  }
  static IVec low_half(const IVec& high) { return (high >> IVec(16)) & IVec(0xFFFF); }
  // npr_rule.h's anchor_gradient, lane by lane: the block sum rounded to bfloat16 first.
  static FVec anchor_gradient(const FVec& g_anchor, const FVec& block_sum) {
    return g_anchor - at::vec::cast<float>(round_high(block_sum));
  }
  static IVec pack(const FVec& even, const FVec& odd) { return low_half(round_high(even)) | round_high(odd); }
  // x - a for every element.
  static IVec difference(const IVec& x, const IVec& a) { return pack(even(x) - even(a), odd(x) - odd(a)); }
  // b where the mask's elements are set, a elsewhere, bit for bit (16-bit mask elements).
  static IVec select(const IVec& a, const IVec& b, const IVec& mask) { return a ^ ((a ^ b) & mask); }

  static constexpr int32_t kHighHalf = static_cast<int32_t>(0xFFFF0000u);
};

// Whether scalar_t's rows go through BFloat16Pairs.
template <typename scalar_t>
constexpr bool kUsesPairs = std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable;

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
