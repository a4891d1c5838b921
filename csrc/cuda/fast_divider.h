#pragma once
// Division by a divisor fixed at launch, as a multiply-high and a shift: no call to the GPU's
// 64-bit division routine (a CALL in the SASS, with spills around it) in any kernel.
//
// Granlund and Montgomery's round-up method: for a divisor d with s = ceil(log2 d) and
// magic = floor(2^N * (2^s - d) / d) + 1 (N = 32 or 64 bits), n / d = (mulhi(n, magic) + n) >> s
// for every n < 2^(N-1) (so that the sum cannot overflow). Tested exhaustively on small values
// and at the edges in tests/cpp/test_cuda_bodies.cpp.

#include <c10/macros/Macros.h>

#include <cstdint>
#include <type_traits>

namespace npr_cuda::cuda {

template <typename U>
struct FastDivider {
  static_assert(std::is_same_v<U, uint32_t> || std::is_same_v<U, uint64_t>, "32- or 64-bit unsigned");

  U divisor = 1;
  U magic = 1;
  unsigned shift = 0;

  FastDivider() = default;

  // d >= 1 and d < 2^(N-1); computed on the host.
  explicit FastDivider(U d) : divisor(d) {
    while ((U{1} << shift) < d) {
      ++shift;
    }
    if constexpr (std::is_same_v<U, uint32_t>) {
      magic = static_cast<U>(((uint64_t{1} << shift) - d) * (uint64_t{1} << 32) / d + 1);
    } else {
      using u128 = unsigned __int128;
      magic = static_cast<U>((((u128{1} << shift) - d) << 64) / d + 1);
    }
  }

  // n / divisor, for n < 2^(N-1).
  C10_HOST_DEVICE U div(U n) const { return (mulhi(n, magic) + n) >> shift; }

  static C10_HOST_DEVICE U mulhi(U a, U b) {
#ifdef __CUDA_ARCH__
    if constexpr (std::is_same_v<U, uint32_t>) {
      return __umulhi(a, b);
    } else {
      return __umul64hi(a, b);
    }
#else
    if constexpr (std::is_same_v<U, uint32_t>) {
      return static_cast<U>((static_cast<uint64_t>(a) * b) >> 32);
    } else {
      return static_cast<U>((static_cast<unsigned __int128>(a) * b) >> 64);
    }
#endif
  }
};

}  // namespace npr_cuda::cuda
