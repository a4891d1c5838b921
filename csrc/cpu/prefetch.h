#pragma once
// Software prefetch of the rows ahead of a unit of work, spread over the work in steps.

#include <algorithm>
#include <cstdint>

#include "tuning.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// The input and output rows that a unit of work (a row pair, a row group) prefetches: its own
// size's worth, kPrefetchAheadBytes or more ahead of it (tuning.h).
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

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
