#pragma once
// The launch grid every kernel shares: 256 threads a block, and the block count checked against
// the grid's limit.

#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>

#include "../npr.h"

namespace npr_cuda::cuda {

constexpr int kThreadsPerBlock = 256;

// The number of blocks of kThreadsPerBlock threads for `items` work items.
inline uint64_t blocks_for_items(uint64_t items) { return (items + kThreadsPerBlock - 1) / kThreadsPerBlock; }

// `blocks`, checked against the grid's limit, as a launch takes it.
inline unsigned int launch_blocks(uint64_t blocks, Pass pass, int64_t numel) {
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), op_name(pass), ": tensor of ", numel,
              " elements is too large for one kernel launch");
  return static_cast<unsigned int>(blocks);
}

}  // namespace npr_cuda::cuda
