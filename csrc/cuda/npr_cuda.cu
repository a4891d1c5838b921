// The CUDA ops: input checks and layout (npr.h), the choice of kernel instance and the launch.
// The per-thread work is host-and-device code in row_pair_kernel.h and window_kernel.h (run on
// the host by tests/cpp/test_cuda_bodies.cpp); this file adds only the __global__ wrappers.

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "../npr.h"
#include "row_pair_kernel.h"
#include "window_kernel.h"

namespace npr_cuda::cuda {
namespace {

// NPR_CUDA_INDEX64=1 in the environment, read once: every launch takes its 64-bit-index instance,
// so that a GPU check (bench/gpu_session.py) runs those on small inputs too. The same kernels run.
bool force_index64() {
  static const bool forced = [] {
    const char* value = std::getenv("NPR_CUDA_INDEX64");
    return value != nullptr && std::string(value) == "1";
  }();
  return forced;
}

template <Pass kPass, typename T, typename U, int V, bool kUnitInner>
__global__ void __launch_bounds__(kThreadsPerBlock, 2)
    row_pair_kernel(const T* __restrict__ in, T* __restrict__ out, GridParams<U> params) {
  row_pair_thread<kPass, T, U, V, kUnitInner>(in, out, params, static_cast<U>(blockIdx.x), static_cast<U>(threadIdx.x));
}

template <Pass kPass, typename T, typename U, int V, bool kShared>
__global__ void __launch_bounds__(kThreadsPerBlock)
    window_kernel(const T* __restrict__ in, T* __restrict__ out, TileParams<U> params) {
  __shared__ alignas(16) unsigned char tile[kShared ? kTileBytes : 16];
  T* shared = reinterpret_cast<T*>(tile);
  const auto block = static_cast<U>(blockIdx.x), thread = static_cast<U>(threadIdx.x);
  window_load_phase<kPass, T, U, V, kShared>(in, params, block, thread, shared);
  if constexpr (kShared) {
    __syncthreads();
  }
  window_compute_phase<kPass, T, U, V, kShared>(in, out, params, block, thread, shared);
}

template <Pass kPass, typename T>
void launch_window(const PlaneLayout& layout, const Window& window) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const int64_t numel = layout.output.numel();
  WindowChoice choice = choose_window_kernel(kPass, sizeof(T), layout.row_length(), layout.inner, window, numel,
                                             reinterpret_cast<uintptr_t>(in), reinterpret_cast<uintptr_t>(out));
  choice.index32 = choice.index32 && !force_index64();
  with_window_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    const auto params = make_tile_params<typename I::U>(kPass, sizeof(T), layout.planes, layout.height, layout.width,
                                                        layout.inner, window, choice);
    window_kernel<kPass, T, typename I::U, I::V, I::kShared>
        <<<launch_blocks(params.blocks, kPass, numel), kThreadsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
            in, out, params);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <Pass kPass, typename T>
void launch(const PlaneLayout& layout) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const int64_t numel = layout.output.numel();
  KernelChoice choice = choose_kernel(sizeof(T), layout.row_length(), layout.inner, numel,
                                      reinterpret_cast<uintptr_t>(in), reinterpret_cast<uintptr_t>(out));
  choice.index32 = choice.index32 && !force_index64();
  with_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    const auto params = make_grid_params<typename I::U>(layout.planes, layout.height, layout.width, layout.inner, I::V);
    row_pair_kernel<kPass, T, typename I::U, I::V, I::kUnitInner>
        <<<launch_blocks(blocks_for_items(params.items), kPass, numel), kThreadsPerBlock, 0,
           c10::cuda::getCurrentCUDAStream()>>>(in, out, params);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

// npr (kForward) and npr_backward (kBackward) on a GPU, on x's device.
template <Pass kPass>
at::Tensor cuda_op(const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  return run_pass(kPass, x, window, anchor, [](const PlaneLayout& layout, const Window& fitted) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, layout.input.scalar_type(), op_name(kPass), [&] {
      if (fitted.is_default()) {
        launch<kPass, scalar_t>(layout);
      } else {
        launch_window<kPass, scalar_t>(layout, fitted);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, CUDA, m) {
  m.impl("npr", &cuda_op<Pass::kForward>);
  m.impl("npr_backward", &cuda_op<Pass::kBackward>);
}

}  // namespace npr_cuda::cuda
