// Autograd for both ops, in C++ at the Autograd key (as torchvision's ops do): a Python autograd
// formula (torch.library.register_autograd) costs several microseconds of host time per call,
// which is the whole cost of the op on a small tensor (bench/RESULTS.md, host time per call).
//
// NPR is linear: the gradient of npr is npr_backward (its adjoint), and the gradient of
// npr_backward is npr. Each backward calls the other op through the dispatcher, autograd
// included, so double backward works.

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "npr.h"

namespace npr_cuda {
namespace {

using Signature = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef);
using OpHandle = c10::TypedOperatorHandle<Signature>;

const OpHandle& op_handle(Pass pass) {
  static const auto find = [](const char* name) {
    return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
  };
  static const OpHandle npr = find("npr_cuda::npr");
  static const OpHandle npr_backward = find("npr_cuda::npr_backward");
  return pass == Pass::kForward ? npr : npr_backward;
}

template <Pass kPass>
struct LinearOp : public torch::autograd::Function<LinearOp<kPass>> {
  static constexpr Pass kAdjoint = kPass == Pass::kForward ? Pass::kBackward : Pass::kForward;

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, at::IntArrayRef window,
                            at::IntArrayRef anchor) {
    ctx->saved_data["window"] = window.vec();
    ctx->saved_data["anchor"] = anchor.vec();
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return op_handle(kPass).call(x, window, anchor);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto window = ctx->saved_data["window"].toIntVector();
    const auto anchor = ctx->saved_data["anchor"].toIntVector();
    return {op_handle(kAdjoint).call(grads[0], window, anchor), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, Autograd, m) {
  m.impl("npr", [](const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
    return LinearOp<Pass::kForward>::apply(x, window, anchor);
  });
  m.impl("npr_backward", [](const at::Tensor& grad, at::IntArrayRef window, at::IntArrayRef anchor) {
    return LinearOp<Pass::kBackward>::apply(grad, window, anchor);
  });
}

}  // namespace npr_cuda
