#pragma once
// How a host run of the CUDA bodies (tests/cpp/test_cuda_bodies.cpp) sees what the host alone would
// not: every global access a thread issues, with the instruction that issued it. The test checks
// pack alignment (a GPU faults on a misaligned pack), counts each output element's stores, and
// models how each warp's accesses fall into 32-byte sectors (tests/cpp/memory_model.h). On the
// device every hook compiles to the plain access.

#include <c10/macros/Macros.h>

#include <cstddef>
#include <cstdint>
#ifndef __CUDA_ARCH__
#include <stdexcept>
#include <string>
#endif

#define NPR_STRINGIFY_(x) #x
#define NPR_STRINGIFY(x) NPR_STRINGIFY_(x)
// The instruction a global access belongs to: its place in the source. Threads of a warp that
// reach one site for the same time issue one warp-level instruction together (SIMT).
#define NPR_SITE __FILE__ ":" NPR_STRINGIFY(__LINE__)

namespace npr_cuda::cuda {

enum class MemoryOp { kLoad, kStore };

#ifndef __CUDA_ARCH__
struct MisalignedPack : std::logic_error {
  using std::logic_error::logic_error;
};

// What a host run installs to see the accesses; none by default (the library's own host code,
// such as the launcher, never runs a body).
struct HostObserver {
  virtual ~HostObserver() = default;
  virtual void access(MemoryOp op, const char* site, const void* address, size_t bytes) = 0;
};

inline HostObserver*& host_observer() {
  static HostObserver* observer = nullptr;
  return observer;
}
#endif

// `bytes` at p, read or written by instruction `site`: seen by the host run's observer.
C10_HOST_DEVICE inline void note_access([[maybe_unused]] MemoryOp op, [[maybe_unused]] const char* site,
                                        [[maybe_unused]] const void* p, [[maybe_unused]] size_t bytes) {
#ifndef __CUDA_ARCH__
  if (HostObserver* observer = host_observer()) {
    observer->access(op, site, p, bytes);
  }
#endif
}

// A pack access not aligned to its size works on the host and faults on a GPU: MisalignedPack.
C10_HOST_DEVICE inline void check_pack_alignment([[maybe_unused]] const void* p, [[maybe_unused]] size_t bytes) {
#ifndef __CUDA_ARCH__
  const auto past = reinterpret_cast<uintptr_t>(p) % bytes;
  if (past != 0) {
    throw MisalignedPack("a " + std::to_string(bytes) + "-byte pack access " + std::to_string(past) +
                         " bytes past an aligned address");
  }
#endif
}

// One element read from or written to global memory by instruction `site`.
template <typename T>
C10_HOST_DEVICE inline T load_global(const char* site, const T* p) {
  note_access(MemoryOp::kLoad, site, p, sizeof(T));
  return *p;
}

template <typename T>
C10_HOST_DEVICE inline void store_global(const char* site, T* p, T value) {
  note_access(MemoryOp::kStore, site, p, sizeof(T));
  *p = value;
}

}  // namespace npr_cuda::cuda
