#pragma once
// The CPU kernels, compiled once per instruction set: kernels_default.cpp for the compiler's
// baseline, kernels_avx2.cpp and kernels_avx512.cpp with those sets' compiler flags
// (CMakeLists.txt). Each copy lives in its own namespace, npr_cuda::cpu::<CPU_CAPABILITY>,
// following ATen's at::vec convention, so the copies never clash; npr_cpu.cpp picks one at run
// time.
//
// Which file holds what:
//   row_pairs.h        the default 2x2 window, by row pair (forward; NCHW backward)
//   window_groups.h    any other window by row groups, and the 2x2 channels_last backward:
//   window_forward.h     the spread-and-subtract forward
//   window_backward.h    the copy-and-sum backward
//   avx512/            code only the AVX-512 copy has (two-source permutes)
//   prefetch.h, tuning.h, vectors.h, bfloat16_pairs.h, spread_vectors.h: what they share

#include <ATen/Dispatch.h>

#include "../npr.h"
#include "npr_cpu_isa.h"
#include "row_pairs.h"
#include "window_groups.h"

namespace npr_cuda::cpu::CPU_CAPABILITY {

void run_kernel(Pass pass, const PlaneLayout& layout, const Window& window) {
  // run_pass fits the window: the kernels size scratch and tasks by it.
  TORCH_CHECK(is_fitted(window, layout.height, layout.width),
              "npr_cuda: internal error: a window not fitted to the image");
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
