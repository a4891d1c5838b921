#pragma once
// The window backward's bfloat16 windows side by side: AVX-512 permutes.

#include <array>
#include <cstdint>
#include <cstring>

#include "../prefetch.h"
#include "../window_group.h"
#include "intrinsics.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// bfloat16 windows side by side, for the backward on AVX-512. anchor_chunk's sums compute a lane
// for every element and keep those of each window's first pixel: `inner` lanes in cols * inner
// (3 in 24 for RGB channels_last at l = 8). Here the first pixels of windows() consecutive
// windows, as int32 pairs (BFloat16Pairs), are brought into one vector by two-source permutes of
// 32-bit lanes (vpermt2d: one micro-op, where the 16-bit vpermt2w takes three) and blends, so
// that every lane summed is kept. Usable where a window holds an even number of elements (every
// window then starts a pair), a pixel 2 to 16, and that saves at least half the operations;
// elsewhere `usable()` is false.
class WindowPairs {
 public:
  WindowPairs() = default;  // not usable

  WindowPairs(int64_t inner, int64_t stride) {
    if (!BFloat16Pairs::kUsable || inner < 2 || inner > 16 || stride % 2 != 0) {
      return;
    }
    const int64_t pairs = (inner + 1) / 2;  // lanes per window
    const int64_t windows = kLanes / pairs;
    const int64_t sources = ((windows - 1) * stride / 2 + pairs - 1) / kLanes + 1;  // vectors read
    const int64_t source_pairs = (sources + 1) / 2;
    // Operations per step: permutes, blends, 2 splits and 2 additions for `windows` windows,
    // against 4 per vector of 32 elements. Where that saves less than half (l = 4 for RGB), it
    // measured slower (bench/RESULTS.md, the window backward's log): it copies the group first,
    // where the per-element sums copy large groups with their loads (kFusedCopyBytes).
    if (source_pairs > kMaxSourcePairs || 2 * (2 * source_pairs + 3) * 8 > stride * windows) {
      return;
    }
    windows_ = windows;
    pairs_ = pairs;
    stride_ = stride;
    reach_ = sources * 2 * kLanes;
    source_pairs_ = static_cast<int>(source_pairs);
    second_.fill(kLanes);
    if (sources % 2 != 0) {  // the last permute's second vector would lie past what is read
      second_[source_pairs - 1] = 0;
    }
    for (int64_t w = 0; w < windows; ++w) {
      for (int64_t j = 0; j < pairs; ++j) {
        const int64_t lane = w * pairs + j;
        const int64_t source = (w * stride / 2 + j) / kLanes;
        index_[source / 2][lane] = static_cast<int32_t>((w * stride / 2 + j) % (2 * kLanes));
        blend_[source / 2] |= static_cast<uint16_t>(1u << lane);
        keep_[lane] = static_cast<int32_t>((2 * j < inner ? 0xFFFFu : 0u) | (2 * j + 1 < inner ? 0xFFFF0000u : 0u));
      }
    }
  }

  bool usable() const { return source_pairs_ > 0; }
  int64_t windows() const { return windows_; }
  // Elements read per step from the first window's start: the windows() windows from element k
  // on are summed here only where k + reach() + (cols - 1) * inner is within the row.
  int64_t reach() const { return reach_; }

  // anchor_chunk's rule for the windows() windows of a row group from element k of its rows on:
  // anchor_out[k'] = g - round(window sum) at each element k' of their first pixels, with
  // g = anchor_in[k'], the sums in npr_rule.h's row-major order.
  void sum_windows(const c10::BFloat16* group, const GroupShape& shape, int64_t k, const c10::BFloat16* anchor_in,
                   c10::BFloat16* anchor_out, PrefetchStream& stream) const {
    switch (source_pairs_) {
      case 1:
        return sums<1>(group, shape, k, anchor_in, anchor_out, stream);
      case 2:
        return sums<2>(group, shape, k, anchor_in, anchor_out, stream);
      case 3:
        return sums<3>(group, shape, k, anchor_in, anchor_out, stream);
      default:
        return sums<kMaxSourcePairs>(group, shape, k, anchor_in, anchor_out, stream);
    }
  }

 private:
  static constexpr int kLanes = 16;  // int32 lanes of a vector
  static constexpr int kMaxSourcePairs = 4;

  // The first pixels' pairs of the windows whose first starts at `at`.
  template <int kSourcePairs>
  C10_ALWAYS_INLINE __m512i gather(const c10::BFloat16* at) const {
    __m512i lanes = _mm512_setzero_si512();
    for (int p = 0; p < kSourcePairs; ++p) {
      const c10::BFloat16* from = at + 4 * kLanes * p;
      const __m512i picked = _mm512_permutex2var_epi32(_mm512_loadu_si512(from), _mm512_loadu_si512(index_[p].data()),
                                                       _mm512_loadu_si512(from + 2 * second_[p]));
      lanes = p == 0 ? picked : _mm512_mask_blend_epi32(blend_[p], lanes, picked);
    }
    return lanes;
  }

  template <int kSourcePairs>
  void sums(const c10::BFloat16* group, const GroupShape& shape, int64_t k, const c10::BFloat16* anchor_in,
            c10::BFloat16* anchor_out, PrefetchStream& stream) const {
    using P = BFloat16Pairs;
    P::FVec even, odd;
    for (int64_t dh = 0; dh < shape.rows; ++dh) {
      stream.step();
      const c10::BFloat16* row = group + dh * shape.length + k;
      for (int64_t dw = 0; dw < shape.cols; ++dw) {
        const P::IVec lanes(gather<kSourcePairs>(row + dw * shape.inner));
        const bool first = dh == 0 && dw == 0;
        even = first ? P::even(lanes) : even + P::even(lanes);
        odd = first ? P::odd(lanes) : odd + P::odd(lanes);
      }
    }
    const P::IVec g(gather<kSourcePairs>(anchor_in + k));
    const P::IVec gradients =
        P::select(g, P::pack(P::anchor_gradient(P::even(g), even), P::anchor_gradient(P::odd(g), odd)),
                  P::IVec::loadu(keep_.data()));
    std::array<int32_t, kLanes> written;
    gradients.store(written.data());
    for (int64_t w = 0; w < windows_; ++w) {
      std::memcpy(anchor_out + k + w * stride_, written.data() + w * pairs_, pairs_ * sizeof(int32_t));
    }
  }

  int64_t windows_ = 0;
  int64_t pairs_ = 0;
  int64_t stride_ = 0;
  int64_t reach_ = 0;
  int source_pairs_ = 0;
  std::array<int64_t, kMaxSourcePairs> second_{};  // where each permute's second vector starts, in int32 lanes
  std::array<std::array<int32_t, kLanes>, kMaxSourcePairs> index_{};
  std::array<uint16_t, kMaxSourcePairs> blend_{};  // the lanes each permute gives
  std::array<int32_t, kLanes> keep_{};             // bits of the first pixels' elements
};

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
