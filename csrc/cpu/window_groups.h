#pragma once
// Every window but the default 2x2 one at (0, 0), and that one's channels_last backward, by
// groups of win.rows rows, one task each: WindowForward (window_forward.h) or WindowBackward
// (window_backward.h) does each group's work, and each group's work prefetches the rows
// kPrefetchAheadBytes ahead of it, in steps (PrefetchStream).

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../npr.h"
#include "../npr_rule.h"
#include "prefetch.h"
#include "tuning.h"
#include "window_backward.h"
#include "window_forward.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {
namespace {

// A row group's first row, its anchor row and the row after its last, as rows of the
// [planes * H, row] array.
struct GroupRows {
  int64_t first, anchor, end;
};

inline GroupRows group_rows(int64_t group, int64_t groups_per_plane, int64_t height, const Window& win) {
  const int64_t plane = group / groups_per_plane;
  const int64_t first = (group - plane * groups_per_plane) * win.rows;
  return {plane * height + first, plane * height + window_anchor(first, height, win.rows, win.anchor_row),
          plane * height + std::min(first + win.rows, height)};
}

template <Pass kPass, typename scalar_t>
void run_window_groups(const PlaneLayout& layout, const Window& win) {
  using Plan = std::conditional_t<kPass == Pass::kForward, WindowForward<scalar_t>, WindowBackward<scalar_t>>;
  const Plan plan(win, layout.width, layout.inner);
  const int64_t length = layout.row_length();
  const int64_t groups_per_plane = (layout.height + win.rows - 1) / win.rows;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / (win.rows * length));
  const int64_t distance = prefetch_distance<scalar_t>(win.rows * length);  // whole groups
  const scalar_t* in = layout.input.const_data_ptr<scalar_t>();
  scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();

  at::parallel_for(0, layout.planes * groups_per_plane, grain, [&](int64_t begin, int64_t end) {
    std::vector<typename Plan::Scratch> scratch(plan.scratch_elements());
    // Prefetches stay within the task.
    const int64_t task_end = group_rows(end - 1, groups_per_plane, layout.height, win).end * length;
    for (int64_t group = begin; group < end; ++group) {
      const GroupRows rows = group_rows(group, groups_per_plane, layout.height, win);
      const int64_t offset = rows.first * length;
      const int64_t count = rows.end - rows.first;
      const PrefetchRange ahead = rows_ahead(in, out, offset, count * length, distance, task_end, kRowGroupPrefetch);
      plan.run_group(in + offset, out + offset, count, rows.anchor - rows.first, ahead, scratch.data());
    }
  });
}

}  // namespace
}  // namespace npr_cuda::cpu::CPU_CAPABILITY
