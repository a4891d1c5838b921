#pragma once
// The default 2x2 window's kernels, by row pair: an even row h and the odd row h + 1 share the
// anchors of row h, so one pass reads each element once and writes each output once. NCHW rows
// (one element per pixel) take the pair path: 2 * Vectorized<float>::size() columns at a time,
// the anchors lined up with their pairs in registers. The forward of wider pixels
// (channels_last) and of NCHW row tails takes the spread path (spread_vectors.h).

#include <ATen/Parallel.h>

#include <cstring>
#include <utility>

#include "../npr.h"
#include "../npr_rule.h"
#include "bfloat16_pairs.h"
#include "prefetch.h"
#include "spread_vectors.h"
#include "tuning.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// Columns [0, end) of `row` (a row pair's even row or its odd one), NCHW, end a multiple of
// Chunk::kSize; the anchors are at the even columns of `even`. bfloat16 pairs them up as above;
// other types split even and odd columns with deinterleave and spread each anchor over its pair
// with interleave(even, even).
template <typename scalar_t>
void forward_pair_vectorized(const scalar_t* row, const scalar_t* even, scalar_t* out, int64_t end) {
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable) {
    using P = BFloat16Pairs;
    for (int64_t c = 0; c < end; c += P::kSize) {
      const auto anchors = P::even(P::load(even + c));
      const auto lanes = P::load(row + c);
      P::store(out + c, P::pack(P::even(lanes) - anchors, P::odd(lanes) - anchors));
    }
    return;
  }
  using C = Chunk<scalar_t>;
  for (int64_t c = 0; c < end; c += C::kSize) {
    const C top = C::load(even + c);
    const auto anchors = at::vec::deinterleave2(top.lo, top.hi).first;
    const auto [spread_lo, spread_hi] = at::vec::interleave2(anchors, anchors);
    const C x = row == even ? top : C::load(row + c);
    C{x.lo - spread_lo, x.hi - spread_hi}.store(out + c);
  }
}

// Backward over columns [c, c + Chunk::kSize) of an NCHW row pair, c even: each anchor (even
// column of the even row) becomes g - round(block sum), the sum taken row-major; everything else
// passes through. The odd row is copied by the same chunk: two read and two write streams
// together measured faster from DRAM than the even row first and then the odd row's copy,
// unlike the forward's (bench/RESULTS.md, stream order).
template <typename scalar_t>
C10_ALWAYS_INLINE void backward_pair_chunk(const scalar_t* even, const scalar_t* odd, scalar_t* out_even,
                                           scalar_t* out_odd, int64_t c) {
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable) {
    using P = BFloat16Pairs;
    const auto top = P::load(even + c);
    const auto g00 = P::even(top);
    auto sum = g00 + P::odd(top);
    if (odd != nullptr) {
      const auto bottom = P::load(odd + c);
      sum = sum + P::even(bottom);
      sum = sum + P::odd(bottom);
      P::store(out_odd + c, bottom);
    }
    const auto anchors = P::anchor_gradient(g00, sum);
    P::store(out_even + c, P::low_half(P::round_high(anchors)) | (top & P::IVec(P::kHighHalf)));
  } else {
    using C = Chunk<scalar_t>;
    const C top = C::load(even + c);
    const auto [g00, g01] = at::vec::deinterleave2(top.lo, top.hi);
    auto sum = g00 + g01;
    if (odd != nullptr) {
      const C bottom = C::load(odd + c);
      const auto [g10, g11] = at::vec::deinterleave2(bottom.lo, bottom.hi);
      sum = sum + g10;
      sum = sum + g11;
      std::memcpy(out_odd + c, odd + c, C::kSize * sizeof(scalar_t));  // bits unchanged
    }
    const auto anchors = C::anchor_gradient(g00, sum);
    const auto [lo, hi] = at::vec::interleave2(anchors, g01);
    C{lo, hi}.store(out_even + c);
  }
}

// Forward over columns [begin, length) of `row` (a row pair's even row or its odd one), the
// anchors in `even`.
template <typename scalar_t>
void forward_spread(const scalar_t* row, const scalar_t* even, scalar_t* out, int64_t begin, int64_t length,
                    int64_t inner, bool first_row, const scalar_t* odd_pixels) {
  using S = SpreadVectors<scalar_t>;
  cover<S::kSize>(
      begin, length, [&](int64_t c) { S::residuals(row, even, c, inner, first_row, odd_pixels, out); },
      [&](int64_t c) { out[c] = residual(row[c], even[c - anchor_column_offset(c / inner, inner)]); });
}

// Backward of an NCHW row pair of `length` columns: chunks of the pair path over the whole
// blocks, the last one moved back to end with them (cover), scalar where the row is shorter than
// a chunk and at a last odd column (an anchor with no right neighbour). The chunk is forced inline
// (as is cover): out of line, it reloaded the row pointers at every chunk. The function itself is
// kept out of run_row_pairs' task loop: inlined there, the float32 backward at 32x3x224x224
// measured slower (bench/RESULTS.md, "Build").
template <typename scalar_t>
C10_NOINLINE void backward_nchw_pair(const scalar_t* even, const scalar_t* odd, scalar_t* out_even, scalar_t* out_odd,
                                     int64_t length) {
  using compute_t = opmath_t<scalar_t>;
  const auto scalar = [&](int64_t c) {
    out_even[c] = even[c];
    if (c == anchor_index(c)) {
      const auto load = [&](int64_t dh, int64_t dw) { return static_cast<compute_t>((dh == 0 ? even : odd)[c + dw]); };
      const compute_t sum = block_sum<compute_t>(load, c + 1 < length, odd != nullptr);
      out_even[c] = static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(even[c]), sum));
    }
    if (odd != nullptr) {
      out_odd[c] = odd[c];
    }
  };
  const int64_t blocks_end = length - length % 2;
  cover<Chunk<scalar_t>::kSize>(
      0, blocks_end,
      [&](int64_t c) C10_ALWAYS_INLINE_ATTRIBUTE { backward_pair_chunk(even, odd, out_even, out_odd, c); }, scalar);
  if (blocks_end < length) {
    scalar(blocks_end);
  }
}

template <Pass kPass, typename scalar_t>
void run_row_pairs(const PlaneLayout& layout) {
  const int64_t length = layout.row_length();
  const int64_t inner = layout.inner;
  TORCH_INTERNAL_ASSERT(kPass == Pass::kForward || inner == 1, "npr_backward: row pairs are for NCHW rows");
  const int64_t pairs_per_plane = row_pairs_per_plane(layout.height);
  const int64_t pairs = layout.planes * pairs_per_plane;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / (2 * length));
  // Forward: NCHW rows go through the pair path up to the last whole chunk, the rest the spread
  // path.
  const int64_t spread_begin = inner == 1 ? length - length % Chunk<scalar_t>::kSize : 0;
  const scalar_t* in = layout.input.const_data_ptr<scalar_t>();
  scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();

  // The odd-pixel mask of a row, for the spread path.
  const std::vector<scalar_t> odd_pixels =
      pixel_mask<scalar_t>(kPass == Pass::kForward && spread_begin < length ? length : 0, inner, 2 * inner, inner);

  // Pairs of short rows prefetch the rows ahead of them, as the window kernels do: the hardware
  // prefetcher had not kept ahead of rows of 224 elements (bench/RESULTS.md, "2026-11-29,
  // later"). Longer ones are left to it.
  const bool prefetch = 2 * length * static_cast<int64_t>(sizeof(scalar_t)) <= kPrefetchedPairBytes;
  const int64_t distance = prefetch_distance<scalar_t>(2 * length);

  at::parallel_for(0, pairs, grain, [&](int64_t begin, int64_t end) {
    const auto last = row_pair(end - 1, (end - 1) / pairs_per_plane, pairs_per_plane, layout.height, length);
    const int64_t task_end = last.even_row + (last.has_odd_row ? 2 : 1) * length;
    for (int64_t pair = begin; pair < end; ++pair) {
      const auto [offset, has_odd] = row_pair(pair, pair / pairs_per_plane, pairs_per_plane, layout.height, length);
      const int64_t rows = has_odd ? 2 : 1;
      const PrefetchRange fetched =
          rows_ahead(in, out, offset, prefetch ? rows * length : 0, distance, task_end,
                     kPass == Pass::kForward ? kRowPairForwardPrefetch : kRowPairBackwardPrefetch);
      const scalar_t* even = in + offset;
      const scalar_t* odd = has_odd ? even + length : nullptr;
      scalar_t* out_even = out + offset;
      scalar_t* out_odd = has_odd ? out_even + length : nullptr;

      if constexpr (kPass == Pass::kForward) {
        // One row after the other, each a single sequential stream (the odd row reads the even
        // row's anchors again from L1; both rows per chunk measured slower: bench/RESULTS.md,
        // stream order), with a prefetch step into L2 before each: at once before the pair, or
        // into L1, the bfloat16 forward measured slower (bench/RESULTS.md, "2026-11-29, night").
        PrefetchStream stream(fetched, rows);
        for (const auto& [row, out_row] : {std::pair{even, out_even}, std::pair{odd, out_odd}}) {
          if (row == nullptr) {
            continue;
          }
          stream.step();
          forward_pair_vectorized(row, even, out_row, spread_begin);
          if (spread_begin < length) {
            forward_spread(row, even, out_row, spread_begin, length, inner, offset == 0, odd_pixels.data());
          }
        }
      } else {
        PrefetchStream stream(fetched, 1);  // at once: both rows go together, chunk by chunk
        stream.step();
        backward_nchw_pair(even, odd, out_even, out_odd, length);
      }
    }
  });
}

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
