// Autograd for both ops, in C++ at the Autograd key, written as ATen's own generated kernels are
// (a graph node and a forward-mode tangent), so that both ops compose with torch.func (grad, vjp,
// jvp, jacrev, jacfwd, hessian) and forward-mode AD as ATen ops do: functorch refuses a
// torch::autograd::Function, and a Python autograd formula costs several microseconds of host
// time per call, the whole cost of the op on a small tensor (bench/RESULTS.md, host time per
// call). libtorch callers of the ops through the dispatcher get the same autograd.
//
// NPR is linear: the gradient of npr is npr_backward (its adjoint), the gradient of npr_backward
// is npr, and each op's tangent is the op itself applied to the input's tangent. Each rule calls
// the other op, or the op itself, through the dispatcher, autograd included, so that every order
// of derivative nests.

#include <torch/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/dynamo/compiled_autograd.h>
#include <torch/library.h>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npr.h"

namespace npr_cuda {
namespace {

constexpr Pass adjoint(Pass pass) { return pass == Pass::kForward ? Pass::kBackward : Pass::kForward; }

// How autograd holds graph nodes: std::shared_ptr up to torch 2.13 (the wheels' 2.11 among them),
// c10::intrusive_ptr from 2.14.
using NodePtr = decltype(torch::autograd::Edge::function);

template <typename Concrete, typename... Args>
NodePtr make_node(Args&&... args) {
  if constexpr (std::is_same_v<NodePtr, std::shared_ptr<torch::autograd::Node>>) {
    // As torch's own C++ Functions, released by deleteNode (no recursion down a long graph); found
    // when instantiated (2.14 has no deleteNode, and never takes this branch).
    return NodePtr(new Concrete(std::forward<Args>(args)...), [](auto* node) { deleteNode(node); });
  } else {
    return c10::make_intrusive<Concrete>(std::forward<Args>(args)...);
  }
}

// The graph node of one call of `pass`: maps the output's gradient to the input's by the adjoint
// op. It keeps only the window and anchor: a linear op's gradient needs no saved tensor.
class AdjointNode : public torch::autograd::Node {
 public:
  AdjointNode(Pass pass, at::IntArrayRef window, at::IntArrayRef anchor)
      : pass_(pass), window_(window.vec()), anchor_(anchor.vec()) {}

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    if (!grads[0].defined() || !should_compute_output(0)) {
      return {at::Tensor()};
    }
    return {call_op(adjoint(pass_), grads[0], window_, anchor_)};
  }

  std::string name() const override { return pass_ == Pass::kForward ? "NprBackward" : "NprBackwardBackward"; }

  // Compiled autograd (torch.compile of a backward): the node's identity for its cache, and its
  // backward traced as the adjoint op's call, which has a fake kernel like any op.
  void compiled_args(torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    args.collect(static_cast<int64_t>(pass_));
    args.collect(window_);
    args.collect(anchor_);
  }

  torch::autograd::variable_list apply_with_saved(const torch::autograd::variable_list& grads,
                                                  torch::dynamo::autograd::SwapSavedVariables&) override {
    return apply(torch::autograd::variable_list(grads));
  }

 private:
  Pass pass_;
  std::vector<int64_t> window_;
  std::vector<int64_t> anchor_;
};

// The Autograd-key kernel of `kPass`: the op below autograd, then its graph node where x requires
// grad, and its tangent where x has one (forward-mode AD, level 0 as in ATen's kernels; functorch
// nests levels by wrapping tensors).
template <Pass kPass>
at::Tensor autograd_kernel(const at::Tensor& x, at::IntArrayRef window, at::IntArrayRef anchor) {
  NodePtr node;
  if (torch::autograd::compute_requires_grad(x)) {
    node = make_node<AdjointNode>(kPass, window, anchor);
    node->set_next_edges(torch::autograd::collect_next_edges(x));
  }
  at::Tensor out;
  {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    out = call_op(kPass, x, window, anchor);
  }
  if (node) {
    torch::autograd::set_history(out, node);
  }
  if (torch::autograd::isFwGradDefined(x)) {
    const at::Tensor tangent = x._fw_grad(/*level=*/0);
    out._set_fw_grad(call_op(kPass, tangent, window, anchor), /*level=*/0, /*is_inplace_op=*/false);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, Autograd, m) {
  m.impl("npr", &autograd_kernel<Pass::kForward>);
  m.impl("npr_backward", &autograd_kernel<Pass::kBackward>);
}

}  // namespace npr_cuda
