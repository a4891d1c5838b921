#pragma once
// How the window backward sees a row group.

#include "bfloat16_pairs.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

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
constexpr bool kGroupWidened = kIsReduced<scalar_t> && !kUsesPairs<scalar_t>;
template <typename scalar_t>
using GroupElement = std::conditional_t<kGroupWidened<scalar_t>, float, scalar_t>;

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
