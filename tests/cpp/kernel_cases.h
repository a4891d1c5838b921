#pragma once
// The cases of tests/kernel_shapes.txt and the tensors a host run of the CUDA bodies works on:
// inputs with NaN, Inf and -0 at a chosen offset from an aligned allocation, surrounded by NaN;
// NaN-poisoned outputs with slack after them; the CPU op to compare with, bit for bit.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../../csrc/cuda/grid.h"
#include "../../csrc/npr.h"

namespace npr_cuda::cuda::testing {

struct Case {
  int64_t n, c, h, w;
  bool channels_last;
  int64_t offset;

  int64_t numel() const { return n * c * h * w; }
  std::string name() const {
    std::ostringstream s;
    s << n << "x" << c << "x" << h << "x" << w << (channels_last ? " channels_last" : " NCHW") << " offset " << offset;
    return s.str();
  }
};

// tests/kernel_shapes.txt: the shapes and windows every instance is checked on, and the shapes and
// windows of the memory model (lines "model ..." and "model-window ...").
struct KernelCases {
  std::vector<Case> shapes, model_shapes;
  std::vector<Window> windows, model_windows;
};

inline KernelCases read_cases(const char* path) {
  std::ifstream file(path);
  if (!file) {
    std::cerr << "cannot read " << path << "\n";
    std::exit(2);
  }
  KernelCases cases;
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::istringstream fields(line);
    std::string word;
    if (line.rfind("window ", 0) == 0 || line.rfind("model-window ", 0) == 0) {
      Window w;
      fields >> word >> w.rows >> w.cols >> w.anchor_row >> w.anchor_col;
      (word == "window" ? cases.windows : cases.model_windows).push_back(w);
      continue;
    }
    const bool model = line.rfind("model ", 0) == 0;
    if (model) {
      fields >> word;
    }
    Case c;
    std::string layout;
    fields >> c.n >> c.c >> c.h >> c.w >> layout >> c.offset;
    c.channels_last = layout == "nhwc";
    (model ? cases.model_shapes : cases.shapes).push_back(c);
  }
  return cases;
}

// Elements past a tensor of case `c` that a grid without its guard could reach: the last block's
// tail of up to kThreadsPerBlock - 1 row-pair items of up to 16 elements, a few row pairs on (the
// window kernels' blocks are their tiles: none past the tensor).
inline int64_t slack_elements(const Case& c) { return 2 * kThreadsPerBlock * 16 + 4 * c.w * c.c + 8192; }

// Under AddressSanitizer (.ci/sanitize.sh) the input ends where its allocation does, so that the
// allocation's redzone reports a read past it where it happens; otherwise the input has
// slack_elements after it. Either way, the memory around the input holds NaN: a stray read that
// reaches a result shows in the bitwise comparison (and the host run counts loads outside it).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kInputRedzone = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kInputRedzone = true;
#else
constexpr bool kInputRedzone = false;
#endif
#else
constexpr bool kInputRedzone = false;
#endif

inline at::Tensor as_case_layout(const Case& c, const at::Tensor& flat) {
  return c.channels_last ? flat.view({c.n, c.h, c.w, c.c}).permute({0, 3, 1, 2}) : flat.view({c.n, c.c, c.h, c.w});
}

// Random values with NaN, +-Inf and -0 sprinkled in, as `dtype`, starting `offset` elements into
// a 64-byte aligned allocation of NaN (torch's CPU allocations are), in the case's memory layout.
inline at::Tensor make_input(const Case& c, at::ScalarType dtype, std::mt19937& rng) {
  const int64_t numel = c.numel();
  at::Tensor values = at::randn({numel}, at::kDouble);
  auto* v = values.data_ptr<double>();
  const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0};
  for (int64_t i = 0; i < numel; ++i) {
    if (rng() % 8 == 0) {
      v[i] = specials[rng() % 5];
    }
  }
  const int64_t after = kInputRedzone ? 0 : slack_elements(c);
  at::Tensor storage = at::full({c.offset + numel + after}, NAN, at::TensorOptions().dtype(dtype));
  TORCH_CHECK(reinterpret_cast<uintptr_t>(storage.data_ptr()) % 64 == 0, "expected a 64-byte aligned allocation");
  at::Tensor flat = storage.narrow(0, c.offset, numel);
  flat.copy_(values);
  return as_case_layout(c, flat);
}

// A NaN-poisoned output for `layout` at the start of a buffer with slack_elements after it, so
// that a store past the output lands in memory of the test's own. `slack` receives that part.
inline at::Tensor poisoned_output(const Case& c, const PlaneLayout& layout, at::Tensor* slack = nullptr) {
  const int64_t numel = layout.input.numel();
  const at::Tensor flat = at::full({numel + slack_elements(c)}, NAN, layout.input.options());
  if (slack != nullptr) {
    *slack = flat.narrow(0, numel, slack_elements(c));
  }
  return as_case_layout(c, flat.narrow(0, 0, numel));
}

// NaN at the same places and every other element bit for bit equal.
inline bool bitwise_equal(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.contiguous(), e = expected.contiguous();
  if (!at::equal(a.isnan(), e.isnan())) {
    return false;
  }
  const at::ScalarType bits = e.element_size() == 2 ? at::kShort : e.element_size() == 4 ? at::kInt : at::kLong;
  return at::equal(a.masked_fill(e.isnan(), 0).view(bits), e.masked_fill(e.isnan(), 0).view(bits));
}

// The CPU kernels, through the dispatcher.
inline at::Tensor cpu_op(Pass pass, const at::Tensor& x, const Window& w) {
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow(pass == Pass::kForward ? "npr_cuda::npr" : "npr_cuda::npr_backward", "")
                      .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef)>();
  return op.call(x, {w.rows, w.cols}, {w.anchor_row, w.anchor_col});
}

inline std::string window_name(const Window& w) {
  return "window " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + " anchor (" +
         std::to_string(w.anchor_row) + ", " + std::to_string(w.anchor_col) + ")";
}

}  // namespace npr_cuda::cuda::testing
