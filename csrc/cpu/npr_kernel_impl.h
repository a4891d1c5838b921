// The CPU kernels, compiled once per instruction set: npr_kernel.cpp includes this file for
// CPU_CAPABILITY=DEFAULT (the compiler's baseline), npr_kernel_avx2.cpp for AVX2 (+FMA, F16C).
// Each copy lives in its own namespace, npr_cuda::cpu::<CPU_CAPABILITY>, following ATen's
// at::vec convention, so the two never clash; npr_kernel.cpp picks one at run time.
//
// Work is split by row pair: an even row h and the odd row h + 1 share the anchors of row h, so
// one pass reads each element once and writes each output once. NCHW rows (one element per
// pixel) take the pair path: 2 * Vectorized<float>::size() columns at a time, the anchors
// lined up with their pairs in registers. Other pixel widths (channels_last) and row tails take
// the spread path: the row of anchors (each pair's first pixel written twice) is built in a small
// buffer, and each output row is then a plain vectorised subtraction; their backward copies the
// rows and corrects the anchors, a quarter of the elements.

#include "../npr.h"
#include "../npr_rule.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (DEFAULT or AVX2) before including npr_kernel_impl.h"
#endif

namespace npr_cuda::cpu::CPU_CAPABILITY {

void npr_forward(const PlaneLayout& layout);
void npr_backward(const PlaneLayout& layout);

namespace {

using at::vec::Vectorized;

template <typename scalar_t>
using opmath_t = at::opmath_type<scalar_t>;

template <typename scalar_t>
constexpr bool kIsReduced =
    std::is_same_v<scalar_t, c10::Half> || std::is_same_v<scalar_t, c10::BFloat16>;

// --------------------------------------------------------------------------- pair path (NCHW)

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
  // Each value rounded to scalar_t and back: what storing it in a scalar_t tensor keeps.
  static Vec round_to_storage(const Vec& v) {
    if constexpr (kIsReduced<scalar_t>) {
      return std::get<0>(at::vec::convert_to_float<scalar_t>(at::vec::convert_from_float<scalar_t>(v, v)));
    } else {
      return v;
    }
  }
};

// bfloat16 rows read as int32 lanes: lane p holds column 2p (an anchor) in its low half and
// column 2p + 1 in its high half (little-endian). A bfloat16 is the high half of its float, so
// each half becomes a float with one mask or shift: even and odd columns come apart, and each
// anchor lines up with its pair, with lane-wise integer operations and no shuffles.
struct BFloat16Pairs {
  using IVec = Vectorized<int32_t>;
  using FVec = Vectorized<float>;
  static constexpr int64_t kSize = 2 * IVec::size();  // elements per vector
  static constexpr bool kUsable = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
                                  kSize == Chunk<c10::BFloat16>::kSize;

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
  static IVec pack(const FVec& even, const FVec& odd) { return low_half(round_high(even)) | round_high(odd); }

  static constexpr int32_t kHighHalf = static_cast<int32_t>(0xFFFF0000u);
};

// Columns [0, end) of an NCHW row pair, end a multiple of Chunk::kSize. Anchors sit at even
// columns: bfloat16 pairs them up as above; other types split even and odd columns with
// deinterleave and spread each anchor over its pair with interleave(even, even).
template <typename scalar_t>
void forward_pair_vectorized(const scalar_t* even, const scalar_t* odd, scalar_t* out_even,
                             scalar_t* out_odd, int64_t end) {
  // One row after the other, each a single sequential stream; the second reads the even row's
  // anchors again from L1.
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable) {
    using P = BFloat16Pairs;
    for (const auto& [row, out] : {std::pair{even, out_even}, std::pair{odd, out_odd}}) {
      if (row == nullptr) {
        continue;
      }
      for (int64_t c = 0; c < end; c += P::kSize) {
        const auto anchors = P::even(P::load(even + c));
        const auto lanes = P::load(row + c);
        P::store(out + c, P::pack(P::even(lanes) - anchors, P::odd(lanes) - anchors));
      }
    }
    return;
  }
  using C = Chunk<scalar_t>;
  for (const auto& [row, out] : {std::pair{even, out_even}, std::pair{odd, out_odd}}) {
    if (row == nullptr) {
      continue;
    }
    for (int64_t c = 0; c < end; c += C::kSize) {
      const C top = C::load(even + c);
      const auto anchors = at::vec::deinterleave2(top.lo, top.hi).first;
      const auto [spread_lo, spread_hi] = at::vec::interleave2(anchors, anchors);
      const C x = row == even ? top : C::load(row + c);
      C{x.lo - spread_lo, x.hi - spread_hi}.store(out + c);
    }
  }
}

// Backward over columns [0, end) of an NCHW row pair: each anchor (even column of the even row)
// becomes g - round(block sum), the sum taken row-major; everything else passes through. The
// odd row is copied first, so that each row is one sequential stream; the sums read it from L1.
template <typename scalar_t>
void backward_pair_vectorized(const scalar_t* even, const scalar_t* odd, scalar_t* out_even,
                              scalar_t* out_odd, int64_t end) {
  if (odd != nullptr) {
    std::memcpy(out_odd, odd, end * sizeof(scalar_t));
  }
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable) {
    using P = BFloat16Pairs;
    for (int64_t c = 0; c < end; c += P::kSize) {
      const auto top = P::load(even + c);
      const auto g00 = P::even(top);
      auto sum = g00 + P::odd(top);
      if (odd != nullptr) {
        const auto bottom = P::load(odd + c);
        sum = sum + P::even(bottom);
        sum = sum + P::odd(bottom);
      }
      const auto anchors = g00 - at::vec::cast<float>(P::round_high(sum));
      P::store(out_even + c, P::low_half(P::round_high(anchors)) | (top & P::IVec(P::kHighHalf)));
    }
    return;
  }
  using C = Chunk<scalar_t>;
  for (int64_t c = 0; c < end; c += C::kSize) {
    const C top = C::load(even + c);
    const auto [g00, g01] = at::vec::deinterleave2(top.lo, top.hi);
    auto sum = g00 + g01;
    if (odd != nullptr) {
      const C bottom = C::load(odd + c);
      const auto [g10, g11] = at::vec::deinterleave2(bottom.lo, bottom.hi);
      sum = sum + g10;
      sum = sum + g11;
    }
    const auto anchors = g00 - C::round_to_storage(sum);
    const auto [lo, hi] = at::vec::interleave2(anchors, g01);
    C{lo, hi}.store(out_even + c);
  }
}

// --------------------------------------------------------------------------------- spread path

// out[c] = x[c] - anchors[c] for columns [begin, end): vectorised, in opmath precision.
template <typename scalar_t>
void subtract_row(const scalar_t* x, const scalar_t* anchors, scalar_t* out, int64_t begin, int64_t end) {
  using C = Chunk<scalar_t>;
  int64_t c = begin;
  for (; c + C::kSize <= end; c += C::kSize) {
    const C a = C::load(anchors + c);
    const C v = C::load(x + c);
    C{v.lo - a.lo, v.hi - a.hi}.store(out + c);
  }
  for (; c < end; ++c) {
    out[c] = residual(x[c], anchors[c]);
  }
}

// anchors[w * inner + i] = even[anchor_index(w) * inner + i] for pixels [begin, width), `begin`
// even: each pair's first pixel, written twice.
template <typename scalar_t, int64_t kInner>
void spread_anchors(const scalar_t* even, scalar_t* anchors, int64_t begin, int64_t width, int64_t runtime_inner) {
  const int64_t inner = kInner > 0 ? kInner : runtime_inner;
  for (int64_t w = begin; w < width; ++w) {
    const scalar_t* from = even + anchor_index(w) * inner;
    scalar_t* to = anchors + w * inner;
    for (int64_t i = 0; i < inner; ++i) {
      to[i] = from[i];
    }
  }
}

// Backward for pixels [begin, width), `begin` even, once the rows have been copied to the
// output: each anchor gets g - round(block sum), the sum in opmath precision, row-major. `odd`
// is null for the last row of an odd H; a trailing partial block has no right neighbours.
template <typename scalar_t, int64_t kInner, bool kHasOdd>
void correct_anchors(const scalar_t* even, const scalar_t* odd, scalar_t* out_even, int64_t begin,
                     int64_t width, int64_t runtime_inner) {
  using compute_t = opmath_t<scalar_t>;
  const int64_t inner = kInner > 0 ? kInner : runtime_inner;
  const auto correct = [&](int64_t c, int64_t i, bool has_right) {
    compute_t sum = static_cast<compute_t>(even[c + i]);
    if (has_right) {
      sum += static_cast<compute_t>(even[c + inner + i]);
    }
    if constexpr (kHasOdd) {
      sum += static_cast<compute_t>(odd[c + i]);
      if (has_right) {
        sum += static_cast<compute_t>(odd[c + inner + i]);
      }
    }
    out_even[c + i] = static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(even[c + i]), sum));
  };
  const int64_t full_end = width - width % 2;
  for (int64_t w = begin; w < full_end; w += 2) {
    for (int64_t i = 0; i < inner; ++i) {
      correct(w * inner, i, true);
    }
  }
  if (width % 2 != 0) {
    for (int64_t i = 0; i < inner; ++i) {
      correct(full_end * inner, i, false);
    }
  }
}

// ------------------------------------------------------------------------------------ driver

// Elements below which a task is not worth a thread (ATen's GRAIN_SIZE).
constexpr int64_t kElementsPerTask = 32768;

enum class Pass { kForward, kBackward };

template <Pass kPass, typename scalar_t, int64_t kInner>
void run_row_pairs(const PlaneLayout& layout) {
  const int64_t length = layout.row_length();
  const int64_t pairs_per_plane = (layout.height + 1) / 2;
  const int64_t pairs = layout.planes * pairs_per_plane;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / (2 * length));
  // NCHW rows go through the pair path up to the last whole chunk.
  const int64_t vector_end = kInner == 1 ? length - length % Chunk<scalar_t>::kSize : 0;
  const scalar_t* in = layout.input.const_data_ptr<scalar_t>();
  scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();

  at::parallel_for(0, pairs, grain, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> anchors(kPass == Pass::kForward && vector_end < length ? length : 0);
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t plane = pair / pairs_per_plane;
      const int64_t h = 2 * (pair - plane * pairs_per_plane);
      const int64_t offset = (plane * layout.height + h) * length;
      const bool has_odd = h + 1 < layout.height;
      const scalar_t* even = in + offset;
      const scalar_t* odd = has_odd ? even + length : nullptr;
      scalar_t* out_even = out + offset;
      scalar_t* out_odd = has_odd ? out_even + length : nullptr;
      const int64_t spread_begin = vector_end / layout.inner;  // first pixel of the spread path

      if constexpr (kPass == Pass::kForward) {
        forward_pair_vectorized(even, odd, out_even, out_odd, vector_end);
        if (vector_end < length) {
          spread_anchors<scalar_t, kInner>(even, anchors.data(), spread_begin, layout.width, layout.inner);
          subtract_row(even, anchors.data(), out_even, vector_end, length);
          if (has_odd) {
            subtract_row(odd, anchors.data(), out_odd, vector_end, length);
          }
        }
      } else {
        backward_pair_vectorized(even, odd, out_even, out_odd, vector_end);
        if (vector_end < length) {
          std::memcpy(out_even + vector_end, even + vector_end, (length - vector_end) * sizeof(scalar_t));
          if (has_odd) {
            std::memcpy(out_odd + vector_end, odd + vector_end, (length - vector_end) * sizeof(scalar_t));
          }
          if (has_odd) {
            correct_anchors<scalar_t, kInner, true>(even, odd, out_even, spread_begin, layout.width, layout.inner);
          } else {
            correct_anchors<scalar_t, kInner, false>(even, odd, out_even, spread_begin, layout.width, layout.inner);
          }
        }
      }
    }
  });
}

// Runs the pass with the pixel width as a compile-time constant where it is a common one (1:
// NCHW, 3: RGB channels_last), and read at run time (kInner = 0) otherwise.
template <Pass kPass>
void run(const PlaneLayout& layout) {
  if (layout.output.numel() == 0) {
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, layout.input.scalar_type(), "npr_cpu", [&] {
    if (layout.inner == 1) {
      run_row_pairs<kPass, scalar_t, 1>(layout);
    } else if (layout.inner == 3) {
      run_row_pairs<kPass, scalar_t, 3>(layout);
    } else {
      run_row_pairs<kPass, scalar_t, 0>(layout);
    }
  });
}

}  // namespace

void npr_forward(const PlaneLayout& layout) {
  run<Pass::kForward>(layout);
}

void npr_backward(const PlaneLayout& layout) {
  run<Pass::kBackward>(layout);
}

}  // namespace npr_cuda::cpu::CPU_CAPABILITY
