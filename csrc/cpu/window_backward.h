#pragma once
// The window backward (any window but the default 2x2 one, and that one's channels_last
// backward), by row groups: every row copied (the gradient passes through; by memcpy, or for
// large groups by the loads that sum the windows), and each window's anchor rewritten with
// g - round(window sum), the sum row-major (npr_rule.h), with vectors whose lane k sums the
// window that starts at element k (anchor_chunk), or for bfloat16's wide windows with vectors of
// several windows' first pixels (WindowPairs, AVX-512 only).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "../npr_rule.h"
#include "prefetch.h"
#include "tuning.h"
#include "window_group.h"

#if defined(CPU_CAPABILITY_AVX512)
#include "avx512/window_pairs.h"
#else
namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {
// Below AVX-512 there are no two-source permutes: every window is summed by anchor_chunk.
struct WindowPairs {
  WindowPairs() = default;
  WindowPairs(int64_t, int64_t) {}
  bool usable() const { return false; }
  int64_t windows() const { return 0; }
  int64_t reach() const { return 0; }
  void sum_windows(const c10::BFloat16*, const GroupShape&, int64_t, const c10::BFloat16*, c10::BFloat16*,
                   PrefetchStream&) const {}
};
}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
#endif

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// anchor_chunk's sums for NCHW bfloat16 rows (one element per pixel) and windows of even width,
// which all start at even columns: a load at k + 2j holds, in its even and odd halves, elements
// 2j and 2j + 1 of the windows that start at its even lanes, so that each load serves two steps
// of their chains, and only those chains are summed (the loads shifted by one where k is odd:
// the window starts are then the odd lanes). They stand for both halves of `sum`: the other
// half is never selected. Reads stay where anchor_chunk's do: up to element
// k + lanes + cols - 2 of each row. `stream` takes a step at each row.
template <int kChunks, typename Vec>
C10_ALWAYS_INLINE void nchw_even_window_sums(const c10::BFloat16* group, const GroupShape& shape, int64_t k,
                                             c10::BFloat16* copy, int64_t skip_row, std::array<Vec, 2 * kChunks>& sum,
                                             PrefetchStream& stream) {
  using P = BFloat16Pairs;
  const int64_t shift = k % 2;  // from k to the first window start
  std::array<Vec, kChunks> chains;
  for (int64_t dh = 0; dh < shape.rows; ++dh) {
    stream.step();
    const c10::BFloat16* row = group + dh * shape.length + k;
    if (copy != nullptr && dh != skip_row) {
      for (int m = 0; m < kChunks; ++m) {
        P::store(copy + dh * shape.length + k + m * P::kSize, P::load(row + m * P::kSize));
      }
    }
    for (int m = 0; m < kChunks; ++m) {
      const auto lanes = P::load(row + shift + m * P::kSize);
      chains[m] = dh == 0 ? P::even(lanes) : chains[m] + P::even(lanes);
      chains[m] = chains[m] + P::odd(lanes);
    }
    for (int64_t j = 1; 2 * j < shape.cols; ++j) {
      for (int m = 0; m < kChunks; ++m) {
        const auto lanes = P::load(row + shift + 2 * j + m * P::kSize);
        chains[m] = chains[m] + P::even(lanes);
        chains[m] = chains[m] + P::odd(lanes);
      }
    }
  }
  for (int m = 0; m < kChunks; ++m) {
    sum[2 * m] = chains[m];
    sum[2 * m + 1] = chains[m];
  }
}

// Chunks [k, k + kChunks * Chunk::kSize) of a row group's anchor row, backward: lane k sums the
// window whose first element is group[k] in npr_rule.h's row-major order, in opmath precision,
// with plain loads shifted by whole pixels and rows (no gathers or permutes: on this CPU both
// measured slower than these sums, which compute every lane and keep 1 in cols), so that the
// sums are the scalar ones bit for bit; a bitwise selection by `starts` (pixel_mask: the
// windows' first elements) keeps the sums of window starts only: anchor_out[k] = g - round(sum)
// there, with g = anchor_in[k], and anchor_in[k] elsewhere. 2 * kChunks independent chains of
// additions, so that their latency overlaps. Where `copy` is not null, the group's rows are
// copied to it from the loads at each row's start, except row `skip_row` (anchor_out's).
// `stream` takes a step at each row.
template <int kChunks, typename scalar_t>
C10_ALWAYS_INLINE void anchor_chunk(const GroupElement<scalar_t>* group, const GroupShape& shape, int64_t k,
                                    scalar_t* copy, int64_t skip_row, const scalar_t* anchor_in, scalar_t* anchor_out,
                                    const scalar_t* starts, PrefetchStream& stream) {
  using C = Chunk<scalar_t>;
  using Vec = typename C::Vec;
  using P = BFloat16Pairs;
  constexpr bool kPairs = kUsesPairs<scalar_t>;
  // window_sum's order, written out: npr_rule.h is compiled at the baseline instruction set, and
  // GCC does not inline this file's wider vector code into it (measured much slower).
  std::array<Vec, 2 * kChunks> sum;
  const auto add = [&](const GroupElement<scalar_t>* at, int m, bool first, scalar_t* copy_to) {
    Vec a, b;
    if constexpr (kPairs) {
      const auto lanes = P::load(at);
      a = P::even(lanes);
      b = P::odd(lanes);
      if (copy_to != nullptr) {
        P::store(copy_to, lanes);
      }
    } else {
      a = Vec::loadu(at);
      b = Vec::loadu(at + Vec::size());
      if constexpr (!kGroupWidened<scalar_t>) {
        if (copy_to != nullptr) {
          a.store(copy_to);
          b.store(copy_to + Vec::size());
        }
      }
    }
    sum[2 * m] = first ? a : sum[2 * m] + a;
    sum[2 * m + 1] = first ? b : sum[2 * m + 1] + b;
  };
  const auto generic_sums = [&] {
    for (int64_t dh = 0; dh < shape.rows; ++dh) {
      stream.step();
      const auto* row = group + dh * shape.length + k;
      scalar_t* row_copy = copy != nullptr && dh != skip_row ? copy + dh * shape.length + k : nullptr;
      for (int m = 0; m < kChunks; ++m) {
        add(row + m * C::kSize, m, dh == 0, row_copy == nullptr ? nullptr : row_copy + m * C::kSize);
      }
      for (int64_t dw = 1; dw < shape.cols; ++dw) {
        for (int m = 0; m < kChunks; ++m) {
          add(row + dw * shape.inner + m * C::kSize, m, false, nullptr);
        }
      }
    }
  };
  if constexpr (kPairs) {
    if (shape.inner == 1 && shape.cols % 2 == 0) {
      nchw_even_window_sums<kChunks>(group, shape, k, copy, skip_row, sum, stream);
    } else {
      generic_sums();
    }
  } else {
    generic_sums();
  }
  for (int m = 0; m < kChunks; ++m) {
    const int64_t at = k + m * C::kSize;
    if constexpr (kPairs) {
      const auto g = P::load(anchor_in + at);
      const auto gradients =
          P::pack(P::anchor_gradient(P::even(g), sum[2 * m]), P::anchor_gradient(P::odd(g), sum[2 * m + 1]));
      P::store(anchor_out + at, P::select(g, gradients, P::load(starts + at)));
    } else if constexpr (kIsReduced<scalar_t>) {
      using V = Vectorized<scalar_t>;
      const C g = C::load(anchor_in + at);
      const V gradients = at::vec::convert_from_float<scalar_t>(C::anchor_gradient(g.lo, sum[2 * m]),
                                                                C::anchor_gradient(g.hi, sum[2 * m + 1]));
      V::blendv(V::loadu(anchor_in + at), gradients, V::loadu(starts + at)).store(anchor_out + at);
    } else {
      for (int half = 0; half < 2; ++half) {
        const int64_t lane = at + half * Vec::size();
        const Vec g = Vec::loadu(anchor_in + lane);
        Vec::blendv(g, g - sum[2 * m + half], Vec::loadu(starts + lane)).store(anchor_out + lane);
      }
    }
  }
}

// The window backward, planned once per call for a tensor's rows: each row group is copied (the
// gradient passes through), then each window's anchor becomes g - round(window sum), npr_rule.h's
// rule. The anchor row's whole windows are summed as one span of lanes, up to the last one's
// first pixel (`starts_`: pixel_mask of their first elements), the first of them side by side
// where WindowPairs is usable; a partial window at the right edge after, scalar.
template <typename scalar_t>
class WindowBackward {
 public:
  // The scratch a task needs: rows * length floats for the types widened first (kGroupWidened).
  using Scratch = float;

  WindowBackward(const Window& win, int64_t width, int64_t inner)
      : win_(win),
        width_(width),
        inner_(inner),
        length_(width * inner),
        window_stride_(win.cols * inner),
        span_(width / win.cols == 0 ? 0 : (width / win.cols - 1) * window_stride_ + inner),
        starts_(pixel_mask<scalar_t>(span_, 0, window_stride_, inner)),
        side_by_side_(kUsesPairs<scalar_t> ? WindowPairs(inner, window_stride_) : WindowPairs()) {
    // The first windows side by side: as many whole blocks of windows() as are read within the
    // rows; anchor_chunk's sums from begin_ on.
    const int64_t block = side_by_side_.windows() * window_stride_;
    const int64_t room = length_ - side_by_side_.reach() - (win.cols - 1) * inner;
    blocks_ = !side_by_side_.usable() || room < 0
                  ? 0
                  : std::min(room / block + 1, width / win.cols / side_by_side_.windows());
    begin_ = blocks_ * block;
  }

  int64_t scratch_elements() const { return kGroupWidened<scalar_t> ? win_.rows * length_ : 0; }

  // One row group of `rows` rows, the anchor row `anchor_dh` of them; `ahead` is prefetched over
  // the sums, a step at each row of each anchor_chunk.
  void run_group(const scalar_t* group_in, scalar_t* group_out, int64_t rows, int64_t anchor_dh,
                 const PrefetchRange& ahead, Scratch* wide) const {
    const GroupShape shape{rows, win_.cols, inner_, length_};
    // Where a group is large (past kFusedCopyBytes), the sums' loads copy the span's columns and
    // everything else is copied after; a smaller group, or one whose first windows are summed side
    // by side, is copied first, with memcpy, and summed from L1. (Types widened first are copied by
    // the widening.)
    const bool fused_copy = !kGroupWidened<scalar_t> && blocks_ == 0 && span_ >= kChunk &&
                            rows * length_ * static_cast<int64_t>(sizeof(scalar_t)) > kFusedCopyBytes;
    const GroupElement<scalar_t>* group = copy_first(group_in, group_out, rows, fused_copy, wide);
    const int64_t anchor_at = anchor_dh * length_ + win_.anchor_col * inner_;
    if (span_ >= kChunk) {
      sum_span(group, shape, fused_copy ? group_out : nullptr, anchor_dh, group_in + anchor_at, group_out + anchor_at,
               ahead);
    } else {
      sum_short_span(group, shape, group_in + anchor_at, group_out + anchor_at, ahead);
    }
    if (fused_copy) {
      copy_rest(group_in, group_out, rows, anchor_dh);
    }
    right_edge_gradients(group_in, group_out, shape, anchor_dh);
  }

 private:
  static constexpr int64_t kChunk = Chunk<scalar_t>::kSize;

  // Copies the group to group_out unless the sums' loads will (fused_copy), and returns what the
  // sums read: the input, or its widened copy in `wide`.
  const GroupElement<scalar_t>* copy_first(const scalar_t* group_in, scalar_t* group_out, int64_t rows, bool fused_copy,
                                           Scratch* wide) const {
    const int64_t count = rows * length_;
    if constexpr (kGroupWidened<scalar_t>) {
      using V = Vectorized<scalar_t>;
      int64_t c = 0;
      for (; c + V::size() <= count; c += V::size()) {
        const V x = V::loadu(group_in + c);
        x.store(group_out + c);
        const auto [lo, hi] = at::vec::convert_to_float<scalar_t>(x);
        lo.store(wide + c);
        hi.store(wide + c + Vectorized<float>::size());
      }
      for (; c < count; ++c) {
        group_out[c] = group_in[c];
        wide[c] = static_cast<float>(group_in[c]);
      }
      return wide;
    } else {
      (void)wide;
      if (!fused_copy) {
        std::memcpy(group_out, group_in, count * sizeof(scalar_t));
      }
      return group_in;
    }
  }

  // The span's sums by vectors: the side-by-side blocks, then anchor_chunk's steps of
  // kSumChunksPerStep chunks, the last chunk moved back to end at the span's end. Where `copy` is
  // not null, the loads copy the span's columns to it.
  void sum_span(const GroupElement<scalar_t>* group, const GroupShape& shape, scalar_t* copy, int64_t anchor_dh,
                const scalar_t* anchor_in, scalar_t* anchor_out, const PrefetchRange& ahead) const {
    constexpr int64_t kStep = kSumChunksPerStep * kChunk;
    const int64_t rest = std::max<int64_t>(span_ - begin_, 0);
    const int64_t calls = blocks_ + rest / kStep + (rest % kStep + kChunk - 1) / kChunk;
    PrefetchStream stream(ahead, calls * shape.rows);  // a step at each row of each call
    if constexpr (kUsesPairs<scalar_t>) {
      for (int64_t k = 0; k < begin_; k += side_by_side_.windows() * window_stride_) {
        side_by_side_.sum_windows(group, shape, k, anchor_in, anchor_out, stream);
      }
    }
    const scalar_t* starts = starts_.data();
    int64_t k = begin_;
    for (; k + kStep <= span_; k += kStep) {
      anchor_chunk<kSumChunksPerStep, scalar_t>(group, shape, k, copy, anchor_dh, anchor_in, anchor_out, starts,
                                                stream);
    }
    for (; k < span_; k += kChunk) {
      anchor_chunk<1, scalar_t>(group, shape, std::min(k, span_ - kChunk), copy, anchor_dh, anchor_in, anchor_out,
                                starts, stream);
    }
  }

  // The span's sums, scalar, for rows shorter than a chunk.
  void sum_short_span(const GroupElement<scalar_t>* group, const GroupShape& shape, const scalar_t* anchor_in,
                      scalar_t* anchor_out, const PrefetchRange& ahead) const {
    using compute_t = opmath_t<scalar_t>;
    PrefetchStream stream(ahead, 1);  // at once: the rows are shorter than a chunk
    stream.step();
    for (int64_t k = begin_; k < span_; ++k) {
      if (k % window_stride_ < inner_) {
        const auto load = [&](int64_t dh, int64_t dw) {
          return static_cast<compute_t>(group[k + dh * length_ + dw * inner_]);
        };
        const compute_t sum = window_sum<compute_t>(load, shape.rows, win_.cols);
        anchor_out[k] = static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(anchor_in[k]), sum));
      }
    }
  }

  // After a fused copy, what the chunks did not copy: each row's end, and the anchor row's start.
  void copy_rest(const scalar_t* group_in, scalar_t* group_out, int64_t rows, int64_t anchor_dh) const {
    const int64_t anchor_offset = win_.anchor_col * inner_;
    for (int64_t dh = 0; dh < rows; ++dh) {
      const int64_t from = dh == anchor_dh ? span_ + anchor_offset : span_;
      std::memcpy(group_out + dh * length_ + from, group_in + dh * length_ + from, (length_ - from) * sizeof(scalar_t));
    }
    std::memcpy(group_out + anchor_dh * length_, group_in + anchor_dh * length_, anchor_offset * sizeof(scalar_t));
  }

  // The backward of the group's partial window at the right edge, if it has one (its anchor
  // clamped), scalar, after the group's rows have been copied.
  void right_edge_gradients(const scalar_t* group_in, scalar_t* group_out, const GroupShape& shape,
                            int64_t anchor_dh) const {
    using compute_t = opmath_t<scalar_t>;
    const int64_t first_col = (width_ / win_.cols) * win_.cols;
    if (first_col == width_) {
      return;
    }
    const int64_t at = anchor_dh * length_ + window_anchor(first_col, width_, win_.cols, win_.anchor_col) * inner_;
    for (int64_t i = 0; i < inner_; ++i) {
      const auto load = [&](int64_t dh, int64_t dw) {
        return static_cast<compute_t>(group_in[dh * length_ + (first_col + dw) * inner_ + i]);
      };
      const compute_t sum = window_sum<compute_t>(load, shape.rows, width_ - first_col);
      group_out[at + i] =
          static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(group_in[at + i]), sum));
    }
  }

  Window win_;
  int64_t width_;
  int64_t inner_;
  int64_t length_;
  int64_t window_stride_;  // from one window's first column to the next's
  int64_t span_;           // the anchor row's lanes up to the last whole window's first pixel
  std::vector<scalar_t> starts_;
  WindowPairs side_by_side_;
  int64_t blocks_ = 0;  // blocks of windows summed side by side
  int64_t begin_ = 0;   // where anchor_chunk's sums start
};

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
