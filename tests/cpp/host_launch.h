#pragma once
// A kernel launch run on the host, as a GPU would run it: every thread of every block the
// launcher would launch, through the kernel's own thread functions and guards; the blocks in a
// shuffled order (no block may depend on another's running first, and a store that overran into
// a block run earlier is not hidden by that block's own store), and within a block, each phase
// over all its threads before the next (__syncthreads). Every access is seen by a HostRun
// (memory_model.h).

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/cuda/row_pair_kernel.h"
#include "../../csrc/cuda/window_kernel.h"
#include "memory_model.h"

namespace npr_cuda::cuda::testing {

// The input and output of `layout` as the HostRun sees them.
inline HostRun host_run_for(const PlaneLayout& layout, bool model) {
  const auto span = [](const at::Tensor& t) {
    return Span{reinterpret_cast<uintptr_t>(t.data_ptr()), static_cast<uint64_t>(t.numel() * t.element_size())};
  };
  return HostRun(span(layout.input), span(layout.output), layout.input.element_size(), model);
}

// Runs `phases` (each a function of block and thread) for every thread of `blocks` blocks, into
// `run`, which is installed as the host observer meanwhile. Pack misalignment propagates as
// MisalignedPack.
template <typename U, typename... Phases>
void walk_blocks(uint64_t blocks, HostRun& run, std::mt19937& rng, const Phases&... phases) {
  std::vector<uint64_t> order(blocks);
  std::iota(order.begin(), order.end(), uint64_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  host_observer() = &run;
  try {
    for (const uint64_t block : order) {
      (
          [&] {
            for (unsigned t = 0; t < static_cast<unsigned>(kThreadsPerBlock); ++t) {
              run.begin_thread(t);
              phases(static_cast<U>(block), static_cast<U>(t));
            }
          }(),
          ...);
      run.end_block();
    }
  } catch (...) {
    host_observer() = nullptr;
    throw;
  }
  host_observer() = nullptr;
}

// Row-pair instance `choice` of `pass` on the host, into layout.output.
template <typename T>
void run_row_pairs(Pass pass, const KernelChoice& choice, const PlaneLayout& layout, HostRun& run, std::mt19937& rng) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  with_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    using U = typename I::U;
    const auto p = make_grid_params<U>(layout.planes, layout.height, layout.width, layout.inner, I::V);
    launch_blocks(blocks_for_items(p.items), pass, layout.output.numel());
    walk_blocks<U>(blocks_for_items(p.items), run, rng, [&](U block, U thread) {
      if (pass == Pass::kForward) {
        row_pair_thread<Pass::kForward, T, U, I::V, I::kUnitInner>(in, out, p, block, thread);
      } else {
        row_pair_thread<Pass::kBackward, T, U, I::V, I::kUnitInner>(in, out, p, block, thread);
      }
    });
  });
}

// Window instance `choice` of `pass` for window `w` (fitted to the image first, as run_pass does)
// on the host, into layout.output; each block's shared memory a fresh NaN-filled buffer.
template <typename T>
void run_windows(Pass pass, const WindowChoice& choice, const Window& w, const PlaneLayout& layout, HostRun& run,
                 std::mt19937& rng) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const Window fitted = fit_window(w, layout.height, layout.width);
  with_window_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    using U = typename I::U;
    const auto p =
        make_tile_params<U>(pass, sizeof(T), layout.planes, layout.height, layout.width, layout.inner, fitted, choice);
    launch_blocks(p.blocks, pass, layout.output.numel());
    std::vector<T> shared(kTileBytes / sizeof(T));
    const auto load = [&](U block, U thread) {
      if (thread == 0) {
        std::fill(shared.begin(), shared.end(), static_cast<T>(NAN));
      }
      if (pass == Pass::kForward) {
        window_load_phase<Pass::kForward, T, U, I::V, I::kShared>(in, p, block, thread, shared.data());
      } else {
        window_load_phase<Pass::kBackward, T, U, I::V, I::kShared>(in, p, block, thread, shared.data());
      }
    };
    const auto compute = [&](U block, U thread) {
      if (pass == Pass::kForward) {
        window_compute_phase<Pass::kForward, T, U, I::V, I::kShared>(in, out, p, block, thread, shared.data());
      } else {
        window_compute_phase<Pass::kBackward, T, U, I::V, I::kShared>(in, out, p, block, thread, shared.data());
      }
    };
    walk_blocks<U>(p.blocks, run, rng, load, compute);
  });
}

}  // namespace npr_cuda::cuda::testing
