#pragma once
// Global memory as the kernel bodies touch it: a pack of V consecutive elements, 4, 8 or 16
// bytes, aligned to its size, moved by one instruction (LDG/STG.E.128 for 16 bytes), or one
// element (V = 1). Every access goes through host_run.h's hooks with the instruction's site, so
// that the host run checks its alignment and models its sectors.

#include <cstdint>
#include <cstring>

#include "host_run.h"

namespace npr_cuda::cuda {

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Elements in 16 bytes: the widest pack.
template <typename T>
constexpr int kVec16 = static_cast<int>(16 / sizeof(T));

// V elements from p (a pack, or one element for V = 1), as instruction `site`.
template <typename T, int V>
C10_HOST_DEVICE inline void load_pack(const char* site, const T* p, T (&v)[V]) {
  if constexpr (V == 1) {
    v[0] = load_global(site, p);
  } else {
    check_pack_alignment(p, sizeof(Pack<T, V>));
    note_access(MemoryOp::kLoad, site, p, sizeof(Pack<T, V>));
#ifdef __CUDA_ARCH__
    const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v[k] = pack.v[k];
    }
#else
    std::memcpy(v, p, sizeof(v));
#endif
  }
}

template <typename T, int V>
C10_HOST_DEVICE inline void store_pack(const char* site, T* p, const T (&v)[V]) {
  if constexpr (V == 1) {
    store_global(site, p, v[0]);
  } else {
    check_pack_alignment(p, sizeof(Pack<T, V>));
    note_access(MemoryOp::kStore, site, p, sizeof(Pack<T, V>));
#ifdef __CUDA_ARCH__
    Pack<T, V> pack;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      pack.v[k] = v[k];
    }
    if constexpr (sizeof(pack) == 16) {
      // One st.global.v4: nvcc 13.0 split the plain store of a computed 16-byte pack into one
      // 4-byte STG per element (seen in the SASS). An ordinary weak store, STG.E.128, to the
      // global address of p (st.global takes a global-space address, not a generic one).
      uint32_t words[4];
      memcpy(words, &pack, sizeof(words));
      asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)), "r"(words[0]),
                   "r"(words[1]), "r"(words[2]), "r"(words[3])
                   : "memory");
    } else {
      *reinterpret_cast<Pack<T, V>*>(p) = pack;
    }
#else
    std::memcpy(p, v, sizeof(v));
#endif
  }
}

// The V elements starting `shift` into the 2V elements lo ++ hi (0 <= shift < V): a shift that is
// the same for every thread of a launch, so the branch is uniform and each case a fixed move.
template <typename T, int V>
C10_HOST_DEVICE inline void shifted_pack(const T (&lo)[V], const T (&hi)[V], int shift, T (&out)[V]) {
#pragma unroll
  for (int s = 0; s < V; ++s) {
    if (s == shift) {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        out[k] = k + s < V ? lo[k + s] : hi[k + s - V];
      }
    }
  }
}

}  // namespace npr_cuda::cuda
