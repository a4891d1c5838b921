// The CUDA ops: input checks and layout (npr.h), the choice of kernel instance and the launch.
// The per-thread work is host-and-device code in npr_cuda_kernel.h (tested on the host by
// tests/cpp/test_cuda_bodies.cpp); this file adds only the __global__ wrapper around it.

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>

#include "../npr.h"
#include "npr_cuda_kernel.h"

namespace npr_cuda::cuda {
namespace {

constexpr int kThreadsPerBlock = 256;

template <Pass kPass, typename T, typename U, int V, Access A, bool kUnitInner>
__global__ void __launch_bounds__(kThreadsPerBlock)
    row_pair_kernel(const T* __restrict__ in, T* __restrict__ out, GridParams<U> params) {
  const U item = static_cast<U>(blockIdx.x) * static_cast<U>(blockDim.x) + threadIdx.x;
  if (item < params.items) {
    run_item<kPass, T, U, V, A, kUnitInner>(in, out, params, item);
  }
}

template <Pass kPass, typename T>
void launch(const PlaneLayout& layout) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const KernelChoice choice = choose_kernel(sizeof(T), layout.row_length(), layout.inner, layout.output.numel(),
                                            reinterpret_cast<uintptr_t>(in), reinterpret_cast<uintptr_t>(out));
  with_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    const auto params = make_grid_params<typename I::U>(layout.planes, layout.height, layout.width, layout.inner, I::V);
    const uint64_t blocks = (static_cast<uint64_t>(params.items) + kThreadsPerBlock - 1) / kThreadsPerBlock;
    TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), op_name(kPass), ": tensor of ", layout.output.numel(),
                " elements is too large for one kernel launch");
    row_pair_kernel<kPass, T, typename I::U, I::V, I::A, I::kUnitInner>
        <<<static_cast<unsigned int>(blocks), kThreadsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(in, out,
                                                                                                        params);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <Pass kPass>
at::Tensor run_pass(const at::Tensor& x) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  const PlaneLayout layout = prepare_planes(x, op_name(kPass));
  if (layout.output.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), op_name(kPass),
                                    [&] { launch<kPass, scalar_t>(layout); });
  }
  return layout.output;
}

at::Tensor npr_cuda(const at::Tensor& x) { return run_pass<Pass::kForward>(x); }

at::Tensor npr_backward_cuda(const at::Tensor& grad) { return run_pass<Pass::kBackward>(grad); }

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, CUDA, m) {
  m.impl("npr", &npr_cuda);
  m.impl("npr_backward", &npr_backward_cuda);
}

}  // namespace npr_cuda::cuda
