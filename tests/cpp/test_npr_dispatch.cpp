// Calls the npr_cuda ops through the dispatcher, as any C++ (libtorch) user would, and checks
// them against ATen's nearest up/down-sampling formula and against a plain loop.
// Run by ctest (see CMakeLists.txt); exits non-zero on the first failed check.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#ifndef NPR_BUILD_CUDA
#error "CMakeLists.txt defines NPR_BUILD_CUDA to 1 or 0 for this test"
#endif

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok      " : "FAILED  ") << what << "\n";
  failures += ok ? 0 : 1;
}

using Signature = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef);

// An op with its default window (2 x 2) and anchor (0, 0), as the schema has them.
struct NprOp {
  c10::TypedOperatorHandle<Signature> handle;
  at::Tensor call(const at::Tensor& x, at::IntArrayRef window = {2, 2}, at::IntArrayRef anchor = {0, 0}) const {
    return handle.call(x, window, anchor);
  }
};

NprOp find_op(const char* name) {
  return {c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>()};
}

// The official formula: x - up(down(x)), nearest, factor 2 (even H and W).
at::Tensor official(const at::Tensor& x) {
  const auto down = at::upsample_nearest2d(x, {x.size(2) / 2, x.size(3) / 2});
  return x - at::upsample_nearest2d(down, {x.size(2), x.size(3)});
}

// The element rule, spelled out: x[n, c, h, w] - x[n, c, 2 * (h / 2), 2 * (w / 2)].
at::Tensor loop_reference(const at::Tensor& x) {
  const at::Tensor xd = x.to(at::kDouble).contiguous();
  at::Tensor out = at::empty_like(xd);
  const auto in = xd.accessor<double, 4>();
  auto res = out.accessor<double, 4>();
  for (int64_t n = 0; n < xd.size(0); ++n)
    for (int64_t c = 0; c < xd.size(1); ++c)
      for (int64_t h = 0; h < xd.size(2); ++h)
        for (int64_t w = 0; w < xd.size(3); ++w) res[n][c][h][w] = in[n][c][h][w] - in[n][c][2 * (h / 2)][2 * (w / 2)];
  return out.to(x.scalar_type());
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace

int main() {
  at::manual_seed(std::random_device{}());
  const NprOp npr = find_op("npr_cuda::npr");
  const NprOp npr_backward = find_op("npr_cuda::npr_backward");

  for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    const std::string type = c10::toString(dtype);
    for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      const std::string where = type + (format == at::MemoryFormat::Contiguous ? " NCHW" : " NHWC");
      const at::Tensor even = at::randn({2, 3, 8, 10}, at::kDouble).to(dtype).contiguous(format);
      const at::Tensor out = npr.call(even);
      check(at::equal(out, official(even)), "npr equals the official formula, " + where);
      check(out.is_contiguous(format), "npr keeps the memory format, " + where);

      const at::Tensor odd = at::randn({2, 3, 7, 9}, at::kDouble).to(dtype).contiguous(format);
      check(at::equal(npr.call(odd), loop_reference(odd)), "npr on odd H, W equals the loop, " + where);

      // npr_backward is npr's adjoint: <npr(x), g> == <x, npr_backward(g)>.
      const at::Tensor x = at::randn({2, 3, 7, 10}, at::kDouble).contiguous(format);
      const at::Tensor g = at::randn({2, 3, 7, 10}, at::kDouble).contiguous(format);
      const double lhs = (npr.call(x) * g).sum().item<double>();
      const double rhs = (x * npr_backward.call(g)).sum().item<double>();
      check(std::abs(lhs - rhs) < 1e-9 * (1 + std::abs(lhs)), "npr_backward is the adjoint of npr, " + where);
      // ... for any window and anchor too (3 x 4 anchored at (2, 1), partial windows at the edges).
      const double lhs3 = (npr.call(x, {3, 4}, {2, 1}) * g).sum().item<double>();
      const double rhs3 = (x * npr_backward.call(g, {3, 4}, {2, 1})).sum().item<double>();
      check(std::abs(lhs3 - rhs3) < 1e-9 * (1 + std::abs(lhs3)),
            "npr_backward is npr's adjoint for a 3x4 window, " + where);
    }
  }

  // Autograd for libtorch callers of the ops through the dispatcher: backward() reaches each op's
  // adjoint, and a second backward (create_graph) goes through the adjoint's own rule.
  {
    const at::Tensor x = at::randn({2, 3, 7, 10}, at::kDouble).requires_grad_(true);
    const at::Tensor g = at::randn({2, 3, 7, 10}, at::kDouble).requires_grad_(true);
    const at::Tensor y = npr.call(x, {3, 4}, {2, 1});
    const at::Tensor gx = torch::autograd::grad({y}, {x}, {g}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    check(at::equal(gx, npr_backward.call(g, {3, 4}, {2, 1})), "autograd through npr gives npr_backward");
    const at::Tensor u = at::randn({2, 3, 7, 10}, at::kDouble);
    const at::Tensor x2 = at::randn({2, 3, 7, 10}, at::kDouble).requires_grad_(true);
    const at::Tensor gg = torch::autograd::grad({npr_backward.call(x2, {3, 4}, {2, 1})}, {x2}, {u})[0];
    check(at::equal(gg, npr.call(u, {3, 4}, {2, 1})), "autograd through npr_backward gives npr");
    check(gx.requires_grad(), "the gradient of npr has a graph of its own, in g (double backward)");
  }

  const std::string bad_dtype = error_of([&] { npr.call(at::zeros({2, 4, 4}, at::kLong)); });
  check(bad_dtype.find("npr: expected a floating-point tensor") != std::string::npos,
        "an integer tensor is rejected: " + bad_dtype);
  const std::string bad_rank = error_of([&] { npr_backward.call(at::zeros({5})); });
  check(bad_rank.find("npr_backward: expected a tensor with at least 2 dimensions") != std::string::npos,
        "a 1-D tensor is rejected: " + bad_rank);

  const std::string bad_anchor = error_of([&] { npr.call(at::zeros({4, 4}), {3, 3}, {0, 3}); });
  check(bad_anchor.find("npr: expected an anchor (row, column) inside the 3 x 3 window") != std::string::npos,
        "an anchor outside the window is rejected: " + bad_anchor);

  if (!NPR_BUILD_CUDA) {
    // The CUDA entry of a build without CUDA kernels says how to get them.
    const std::string no_cuda = error_of([&] {
      npr.handle.redispatch(c10::DispatchKeySet(c10::DispatchKey::CUDA), at::zeros({2, 2}), std::vector<int64_t>{2, 2},
                            std::vector<int64_t>{0, 0});
    });
    check(no_cuda.find("has no CUDA kernels") != std::string::npos &&
              no_cuda.find("NPR_BUILD_CUDA=1") != std::string::npos,
          "without CUDA kernels, a CUDA tensor gets the rebuild hint: " + no_cuda);
  }

  std::cout << (failures == 0 ? "all checks passed" : "checks failed: " + std::to_string(failures)) << "\n";
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
