// The CPU kernels, compiled once per instruction set: npr_kernel_default.cpp includes this file
// for CPU_CAPABILITY=DEFAULT (the compiler's baseline), npr_kernel_target.h for AVX2 and AVX512.
// Each copy lives in its own namespace, npr_cuda::cpu::<CPU_CAPABILITY>, following ATen's
// at::vec convention, so the copies never clash; npr_cpu.cpp picks one at run time.
//
// The default 2x2 window's work is split by row pair: an even row h and the odd row h + 1 share
// the anchors of row h, so one pass reads each element once and writes each output once. NCHW
// rows (one element per pixel) take the pair path: 2 * Vectorized<float>::size() columns at a
// time, the anchors lined up with their pairs in registers. The forward of wider pixels
// (channels_last) and of NCHW row tails takes the spread path: vectors at any column, each
// anchor selected from its own column or from one pixel back. Every other window, and the 2x2
// window's channels_last backward, is done by row groups (run_window_groups).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "../npr_rule.h"
#include "npr_cpu_isa.h"

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (DEFAULT, AVX2 or AVX512) before including npr_kernel_impl.h"
#endif

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

template <typename scalar_t>
using opmath_t = at::opmath_type<scalar_t>;

template <typename scalar_t>
constexpr bool kIsReduced = std::is_same_v<scalar_t, c10::Half> || std::is_same_v<scalar_t, c10::BFloat16>;

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

// ------------------------------------------------------------------------ spread path (forward)

// Pixels `inner` elements wide, any alignment: one Vectorized<scalar_t> of elements at a time,
// each anchor fetched from its own column or from `inner` columns back. `odd_pixels` is a row
// mask with every bit set at the elements of odd pixels; selections by it are bitwise, so that
// the anchors keep their exact bits (NaN payloads included).
template <typename scalar_t>
struct SpreadVectors {
  using V = Vectorized<scalar_t>;
  static constexpr int64_t kSize = V::size();
  static constexpr bool kPairs = std::is_same_v<scalar_t, c10::BFloat16> && BFloat16Pairs::kUsable;

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
// (as is cover): out of line, it reloaded the row pointers at every chunk.
template <typename scalar_t>
void backward_nchw_pair(const scalar_t* even, const scalar_t* odd, scalar_t* out_even, scalar_t* out_odd,
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

// --------------------------------------------------------------------------------- prefetching

// The input and output rows that a unit of work (a row pair, a row group) prefetches: its own
// size's worth, kPrefetchAheadBytes or more ahead of it (bench/RESULTS.md, "2026-11-29, later").
constexpr int64_t kPrefetchAheadBytes = 8 << 10;
// The cache level prefetched into. From DRAM at 32x3x224x224, L2 measured faster than L1 for the
// row groups and for the row pairs' forward (stepped row by row); the row pairs' backward, no
// different, keeps L1 (bench/RESULTS.md, "2026-11-29, evening" and "night").
enum class PrefetchInto { kL1, kL2 };
struct PrefetchRange {
  const void* in = nullptr;
  void* out = nullptr;
  int64_t bytes = 0;
  PrefetchInto into = PrefetchInto::kL1;
};

// A PrefetchRange fetched (its output for writing) a few cache lines at each of `steps` calls of
// step(), so that the requests spread over the work they overlap: at once, they stalled on the
// CPU's line fill buffers (perf: a quarter of the backward's time). step() is for named streams
// only: on a temporary, PrefetchStream(range, 1).step(), GCC 12 emitted no prefetch at all
// (bench/RESULTS.md, "2026-11-29, night").
class PrefetchStream {
 public:
  PrefetchStream(const PrefetchRange& range, int64_t steps)
      : in_(static_cast<const char*>(range.in)),
        out_(static_cast<char*>(range.out)),
        left_(range.bytes),
        bytes_per_step_(((range.bytes + 63) / 64 + steps - 1) / std::max<int64_t>(steps, 1) * 64),
        into_(range.into) {}

  void step() & {
    const int64_t bytes = std::min(bytes_per_step_, left_);
#if defined(__GNUC__) || defined(__clang__)
    for (int64_t byte = 0; byte < bytes; byte += 64) {
      if (into_ == PrefetchInto::kL2) {
        __builtin_prefetch(in_ + byte, 0, 2);
        __builtin_prefetch(out_ + byte, 1, 2);
      } else {
        __builtin_prefetch(in_ + byte, 0, 3);
        __builtin_prefetch(out_ + byte, 1, 3);
      }
    }
#endif
    in_ += bytes;
    out_ += bytes;
    left_ -= bytes;
  }

 private:
  const char* in_;
  char* out_;
  int64_t left_;
  int64_t bytes_per_step_;
  PrefetchInto into_;
};

// The rows prefetched by the work on elements [offset, offset + count) of a task that ends at
// element task_end: as many, `distance` elements on (kPrefetchAheadBytes or more, in whole units
// of `unit` elements: prefetch_distance), none past the task's end, into `into`.
template <typename scalar_t>
int64_t prefetch_distance(int64_t unit) {
  return (kPrefetchAheadBytes / static_cast<int64_t>(sizeof(scalar_t)) / unit + 1) * unit;
}
template <typename scalar_t>
PrefetchRange rows_ahead(const scalar_t* in, scalar_t* out, int64_t offset, int64_t count, int64_t distance,
                         int64_t task_end, PrefetchInto into) {
  const int64_t begin = std::min(offset + distance, task_end);
  return {in + begin, out + begin, (std::min(begin + count, task_end) - begin) * static_cast<int64_t>(sizeof(scalar_t)),
          into};
}

// ------------------------------------------------------------------------------------ driver

// Elements below which a task is not worth a thread (ATen's GRAIN_SIZE).
constexpr int64_t kElementsPerTask = 32768;

// Row pairs up to this size prefetch the rows ahead (run_row_pairs).
constexpr int64_t kPrefetchedPairBytes = 4 << 10;

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
      const PrefetchRange fetched = rows_ahead(in, out, offset, prefetch ? rows * length : 0, distance, task_end,
                                               kPass == Pass::kForward ? PrefetchInto::kL2 : PrefetchInto::kL1);
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

// -------------------------------------------------------------------------- any other window

// Windows of win.rows x win.cols pixels (any but 2x2 at (0, 0), and that one's channels_last
// backward), by groups of win.rows rows (one task each). Forward: the anchor row's values,
// spread over a row (each element takes its anchor's; an L1-resident buffer), are subtracted
// from each row of the group with vectors, so that memory sees one read and one write per
// element. Backward: every row copied (the gradient passes through; by
// memcpy, or for large groups by the loads that sum the windows), and each window's anchor
// rewritten with g - round(window sum), the sum row-major (npr_rule.h), with vectors whose lane
// k sums the window that starts at element k (anchor_chunk, backward_group), or for bfloat16's
// wide windows with vectors of several windows' first pixels (WindowPairs). Each group's work
// prefetches the rows 8 KiB ahead (PrefetchStream).

// Whether a row's anchors can be spread with vector gathers, where no PermutedSpread (below) is
// usable: float and double (at::vec has gathers for them; a 16-bit type has no index of its own
// width).
template <typename scalar_t>
constexpr bool kGathered = std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>;

// 16- and 32-bit rows on AVX-512: the anchors of a vector of columns (32 or 16) lie within two
// vectors' worth of consecutive elements of the anchor row when windows are at most a vector's
// worth of elements wide, so two masked loads and one two-source permute (vpermt2w, vpermt2d)
// spread them, each chunk's lowest anchor and the others' offsets from it worked out once per
// call. (at::vec has no 16-bit gather, and its float gather measured slower: half of the float
// forward's time at l = 3.) Elsewhere, or for wider windows, `usable()` is false.
template <int kBytes>
class PermutedSpread {
 public:
  static_assert(kBytes == 2 || kBytes == 4);
  static constexpr int64_t kSize = 64 / kBytes;  // elements of a 512-bit vector
  using Offset = std::conditional_t<kBytes == 2, int16_t, int32_t>;

  PermutedSpread() = default;  // not usable

  template <typename Index>
  explicit PermutedSpread(const std::vector<Index>& index) {
#if defined(CPU_CAPABILITY_AVX512)
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
#else
    (void)index;
#endif
  }

  bool usable() const { return !first_.empty(); }

  // spread[c] = anchors[index[c]] for the row of `length` elements the plan was made for.
  template <typename scalar_t>
  void spread(const scalar_t* anchors, scalar_t* spread, int64_t length) const {
#if defined(CPU_CAPABILITY_AVX512)
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
#else
    (void)anchors, (void)spread, (void)length;
#endif
  }

 private:
  std::vector<int64_t> first_;
  std::vector<Offset> offsets_;
};

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
  if constexpr (SpreadVectors<scalar_t>::kPairs) {
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

// A row group of the window backward: `rows` rows of `length` elements, windows `cols` pixels
// of `inner` elements wide.
struct GroupShape {
  int64_t rows;
  int64_t cols;
  int64_t inner;
  int64_t length;
};

// How the window backward reads a row group: bfloat16 as it is, each int32 lane of a load
// split into its even and odd element (BFloat16Pairs: no shuffles); half widened to float
// once, before the sums (a conversion at each of the sums' reads cost more); float and double
// as they are.
template <typename scalar_t>
constexpr bool kGroupWidened = kIsReduced<scalar_t> && !SpreadVectors<scalar_t>::kPairs;
template <typename scalar_t>
using GroupElement = std::conditional_t<kGroupWidened<scalar_t>, float, scalar_t>;

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
  constexpr bool kPairs = SpreadVectors<scalar_t>::kPairs;
  // window_sum's order, written out: npr_rule.h is compiled at the baseline instruction set, and
  // GCC does not inline this file's wider vector code into it (measured 2x slower).
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
#if defined(CPU_CAPABILITY_AVX512)
    if (!BFloat16Pairs::kUsable || inner < 2 || inner > 16 || stride % 2 != 0) {
      return;
    }
    const int64_t pairs = (inner + 1) / 2;  // lanes per window
    const int64_t windows = kLanes / pairs;
    const int64_t sources = ((windows - 1) * stride / 2 + pairs - 1) / kLanes + 1;  // vectors read
    const int64_t source_pairs = (sources + 1) / 2;
    // Operations per step: permutes, blends, 2 splits and 2 additions for `windows` windows,
    // against 4 per vector of 32 elements. Where that saves less than half (l = 4 for RGB), it
    // measured slower (1024 pixels: 1.03 -> 1.07x clone): it copies the group first, where the
    // per-element sums copy large groups with their loads (kFusedCopyBytes).
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
#else
    (void)inner, (void)stride;
#endif
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
#if defined(CPU_CAPABILITY_AVX512)
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
#else
    (void)group, (void)shape, (void)k, (void)anchor_in, (void)anchor_out, (void)stream;
#endif
  }

 private:
  static constexpr int kLanes = 16;  // int32 lanes of a vector
  static constexpr int kMaxSourcePairs = 4;

#if defined(CPU_CAPABILITY_AVX512)
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
#endif

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

// The backward of a row group's partial window at the right edge, if it has one (its anchor
// clamped), scalar, after the group's rows have been copied.
template <typename scalar_t>
void right_edge_gradients(const scalar_t* group_in, scalar_t* group_out, const GroupShape& shape, int64_t width,
                          const Window& win, int64_t anchor_dh) {
  using compute_t = opmath_t<scalar_t>;
  const int64_t first_col = (width / win.cols) * win.cols;
  if (first_col == width) {
    return;
  }
  const int64_t at = anchor_dh * shape.length + window_anchor(first_col, width, win.cols, win.anchor_col) * shape.inner;
  for (int64_t i = 0; i < shape.inner; ++i) {
    const auto load = [&](int64_t dh, int64_t dw) {
      return static_cast<compute_t>(group_in[dh * shape.length + (first_col + dw) * shape.inner + i]);
    };
    const compute_t sum = window_sum<compute_t>(load, shape.rows, width - first_col);
    group_out[at + i] = static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(group_in[at + i]), sum));
  }
}

// The size of a row group from which the window backward copies with the loads of its sums
// rather than with memcpy first: measured on this machine's CPU (48 KiB of L1 data cache),
// memcpy first was faster for groups up to 16 KiB (read back from L1 by the sums) and slower
// for groups from 18 KiB (bfloat16 channels_last rows of 1024 pixels, l = 3: 1.05x clone fused,
// 1.37x copied first; bench/RESULTS.md).
constexpr int64_t kFusedCopyBytes = 16 << 10;

// The backward of one row group: every element passes through (copied), then each window's
// anchor becomes g - round(window sum), npr_rule.h's rule. `group_in` is the group's input,
// `wide` a scratch of rows * length floats for the types widened first (kGroupWidened); the
// anchor row is row `anchor_dh` of the group, its anchors `anchor_offset` elements into each
// window. The whole windows are summed as one span of `span` lanes, up to the last one's first
// pixel (`starts`: pixel_mask of their first elements); a partial window at the right edge after.
// `ahead` is prefetched over the sums, a step at each row of each anchor_chunk.
template <typename scalar_t>
void backward_group(const scalar_t* group_in, scalar_t* group_out, float* wide, const GroupShape& shape, int64_t width,
                    const Window& win, int64_t anchor_dh, int64_t span, const scalar_t* starts,
                    const PrefetchRange& ahead, const WindowPairs& side_by_side) {
  using compute_t = opmath_t<scalar_t>;
  constexpr int64_t kChunk = Chunk<scalar_t>::kSize;
  constexpr int kChunksPerStep = 4;  // 8 chains of additions
  const int64_t length = shape.length;
  const int64_t inner = shape.inner;
  const int64_t anchor_offset = win.anchor_col * inner;
  const int64_t anchor_at = anchor_dh * length + anchor_offset;
  const scalar_t* anchor_in = group_in + anchor_at;
  scalar_t* anchor_out = group_out + anchor_at;
  // The first windows side by side where that is usable: as many whole windows() as are read
  // within the rows; anchor_chunk's sums from `begin` on.
  const int64_t window_stride = win.cols * inner;
  const int64_t block = side_by_side.windows() * window_stride;
  const int64_t room = length - side_by_side.reach() - (win.cols - 1) * inner;
  const int64_t blocks =
      !side_by_side.usable() || room < 0 ? 0 : std::min(room / block + 1, width / win.cols / side_by_side.windows());
  const int64_t begin = blocks * block;
  // Where a group is large (past kFusedCopyBytes), the sums' loads copy the span's columns and
  // everything else is copied after; a smaller group, or one whose first windows are summed side
  // by side, is copied first, with memcpy, and summed from L1. (Types widened first are copied by
  // the widening.)
  const bool fused_copy = !kGroupWidened<scalar_t> && blocks == 0 && span >= kChunk &&
                          shape.rows * length * static_cast<int64_t>(sizeof(scalar_t)) > kFusedCopyBytes;
  const GroupElement<scalar_t>* group = nullptr;
  if constexpr (kGroupWidened<scalar_t>) {
    using V = Vectorized<scalar_t>;
    const int64_t count = shape.rows * length;
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
    group = wide;
  } else {
    (void)wide;
    group = group_in;
    if (!fused_copy) {
      std::memcpy(group_out, group_in, shape.rows * length * sizeof(scalar_t));
    }
  }

  if (span >= kChunk) {
    scalar_t* copy = fused_copy ? group_out : nullptr;
    const int64_t rest = std::max<int64_t>(span - begin, 0);
    const int64_t calls =
        blocks + rest / (kChunksPerStep * kChunk) + (rest % (kChunksPerStep * kChunk) + kChunk - 1) / kChunk;
    PrefetchStream stream(ahead, calls * shape.rows);  // a step at each row of each call
    if constexpr (SpreadVectors<scalar_t>::kPairs) {
      for (int64_t k = 0; k < begin; k += block) {
        side_by_side.sum_windows(group, shape, k, anchor_in, anchor_out, stream);
      }
    }
    int64_t k = begin;
    for (; k + kChunksPerStep * kChunk <= span; k += kChunksPerStep * kChunk) {
      anchor_chunk<kChunksPerStep, scalar_t>(group, shape, k, copy, anchor_dh, anchor_in, anchor_out, starts, stream);
    }
    for (; k < span; k += kChunk) {  // the last chunk moved back to end at the span's end
      anchor_chunk<1, scalar_t>(group, shape, std::min(k, span - kChunk), copy, anchor_dh, anchor_in, anchor_out,
                                starts, stream);
    }
  } else {
    PrefetchStream stream(ahead, 1);  // at once: the rows are shorter than a chunk
    stream.step();
    for (int64_t k = begin; k < span; ++k) {
      if (k % window_stride < inner) {
        const auto load = [&](int64_t dh, int64_t dw) {
          return static_cast<compute_t>(group[k + dh * length + dw * inner]);
        };
        const compute_t sum = window_sum<compute_t>(load, shape.rows, win.cols);
        anchor_out[k] = static_cast<scalar_t>(anchor_gradient<scalar_t>(static_cast<compute_t>(anchor_in[k]), sum));
      }
    }
  }
  if (fused_copy) {  // what the chunks did not copy: each row's end, and the anchor row's start
    for (int64_t dh = 0; dh < shape.rows; ++dh) {
      const int64_t from = dh == anchor_dh ? span + anchor_offset : span;
      std::memcpy(group_out + dh * length + from, group_in + dh * length + from, (length - from) * sizeof(scalar_t));
    }
    std::memcpy(group_out + anchor_dh * length, group_in + anchor_dh * length, anchor_offset * sizeof(scalar_t));
  }
  right_edge_gradients(group_in, group_out, shape, width, win, anchor_dh);
}

template <Pass kPass, typename scalar_t>
void run_window_groups(const PlaneLayout& layout, const Window& win) {
  const int64_t length = layout.row_length();
  const int64_t inner = layout.inner;
  const int64_t height = layout.height;
  const int64_t width = layout.width;
  const int64_t groups_per_plane = (height + win.rows - 1) / win.rows;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / (win.rows * length));
  const scalar_t* in = layout.input.const_data_ptr<scalar_t>();
  scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();
  // The column of each column's anchor, in the anchor row (an integer of the element's width
  // for float and double, which vector gathers then read).
  using Index = std::conditional_t<kGathered<scalar_t>, at::vec::int_same_size_t<scalar_t>, int64_t>;
  TORCH_CHECK(length <= std::numeric_limits<Index>::max(), "npr: rows of ", length, " elements are too long");
  std::vector<Index> anchor_column(length);
  for (int64_t c = 0; c < length; ++c) {
    anchor_column[c] =
        static_cast<Index>(window_anchor(c / inner, width, win.cols, win.anchor_col) * inner + c % inner);
  }
  const SpreadPlan<scalar_t> permuted =
      kPass == Pass::kForward && sizeof(scalar_t) <= 4 ? SpreadPlan<scalar_t>(anchor_column) : SpreadPlan<scalar_t>();
  const int64_t whole_windows = width / win.cols;  // per row; a partial one may follow
  const int64_t window_stride = win.cols * inner;  // from one window's column to the next's
  const WindowPairs side_by_side =
      kPass == Pass::kBackward && SpreadVectors<scalar_t>::kPairs ? WindowPairs(inner, window_stride) : WindowPairs();
  // The anchor row's whole windows are done as one span: up to the last one's first pixel.
  const int64_t span = whole_windows == 0 ? 0 : (whole_windows - 1) * window_stride + inner;
  // Backward: the mask of each whole window's first pixel in that span.
  const std::vector<scalar_t> starts =
      pixel_mask<scalar_t>(kPass == Pass::kBackward ? span : 0, 0, window_stride, inner);

  // Each group's work prefetches the rows this far ahead of it (whole groups), in steps: the
  // hardware prefetcher, which stops at page boundaries, had kept ahead of neither pass at rows
  // of 224 elements (bench/RESULTS.md, "2026-11-29, later").
  const int64_t group_elements = win.rows * length;
  const int64_t distance = prefetch_distance<scalar_t>(group_elements);

  at::parallel_for(0, layout.planes * groups_per_plane, grain, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> spread(kPass == Pass::kForward ? length : 0);
    std::vector<float> widened(kPass == Pass::kBackward && kGroupWidened<scalar_t> ? group_elements : 0);
    // A group's first row, its anchor row and the row after its last, as rows of the
    // [planes * H, row] array.
    struct Rows {
      int64_t first, anchor, end;
    };
    const auto rows_of = [&](int64_t group) {
      const int64_t plane = group / groups_per_plane;
      const int64_t first = (group - plane * groups_per_plane) * win.rows;
      return Rows{plane * height + first, plane * height + window_anchor(first, height, win.rows, win.anchor_row),
                  plane * height + std::min(first + win.rows, height)};
    };
    const int64_t task_end = rows_of(end - 1).end * length;  // prefetches stay within the task
    for (int64_t group = begin; group < end; ++group) {
      const Rows rows = rows_of(group);
      const int64_t offset = rows.first * length;
      const PrefetchRange fetched =
          rows_ahead(in, out, offset, (rows.end - rows.first) * length, distance, task_end, PrefetchInto::kL2);
      if constexpr (kPass == Pass::kForward) {
        PrefetchStream stream(fetched, rows.end - rows.first);  // a step at each row
        spread_row(in + rows.anchor * length, anchor_column.data(), permuted, spread.data(), length);
        for (int64_t row = rows.first; row < rows.end; ++row) {
          stream.step();
          subtract_row(in + row * length, spread.data(), out + row * length, length);
        }
      } else {
        backward_group(in + offset, out + offset, widened.data(),
                       GroupShape{rows.end - rows.first, win.cols, inner, length}, width, win, rows.anchor - rows.first,
                       span, starts.data(), fetched, side_by_side);
      }
    }
  });
}

}  // namespace

void run_kernel(Pass pass, const PlaneLayout& layout, const Window& window) {
  if (layout.output.numel() == 0) {
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, layout.input.scalar_type(), "npr_cpu", [&] {
    // The 2x2 window's channels_last backward measured faster by row groups than by row pairs
    // (bench/RESULTS.md, "2026-11-29, evening").
    if (window.is_default() && (pass == Pass::kForward || layout.inner == 1)) {
      if (pass == Pass::kForward) {
        run_row_pairs<Pass::kForward, scalar_t>(layout);
      } else {
        run_row_pairs<Pass::kBackward, scalar_t>(layout);
      }
    } else if (pass == Pass::kForward) {
      run_window_groups<Pass::kForward, scalar_t>(layout, window);
    } else {
      run_window_groups<Pass::kBackward, scalar_t>(layout, window);
    }
  });
}

}  // namespace npr_cuda::cpu::CPU_CAPABILITY
