// The CUDA kernels' per-thread code (csrc/cuda/npr_cuda_kernel.h), compiled with the host
// compiler and run here for every instance the launcher can choose, and for the one it chooses:
// forward and backward x float32, float64, float16, bfloat16 x every pack width and the element
// path x NCHW and channels_last x 32- and 64-bit indices, and the window kernels (the file's
// windows, up to int64's largest) x 32- and 64-bit indices, over tests/kernel_shapes.txt, on
// inputs with NaN, Inf and -0, into NaN-poisoned outputs, compared bit for bit with the CPU op.
// Each run walks the launch's grid as the device would (blocks_for's block count,
// kThreadsPerBlock threads, the kernels' own thread-to-item step and guard) and counts every
// element stored: each output element must be written exactly once, and nothing past the output
// (the buffers have slack there). Every pack access must be aligned to its size, as a GPU
// requires. Also: the fast divider against `/`, and the launcher's choice of instance. Run by
// ctest, so by CI.
//
//   test_cuda_bodies SHAPES_FILE

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../../csrc/cuda/npr_cuda_kernel.h"
#include "../../csrc/cuda/window_kernel.h"

using namespace npr_cuda;
using namespace npr_cuda::cuda;

namespace {

int failures = 0;
int checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    std::cout << "FAILED  " << what << "\n";
    ++failures;
  }
}

struct Case {
  int64_t n, c, h, w;
  bool channels_last;
  int64_t offset;

  std::string name() const {
    std::ostringstream s;
    s << n << "x" << c << "x" << h << "x" << w << (channels_last ? " channels_last" : " NCHW") << " offset " << offset;
    return s.str();
  }
};

// The shapes and the windows (other than the default) of tests/kernel_shapes.txt.
struct KernelCases {
  std::vector<Case> shapes;
  std::vector<Window> windows;
};

KernelCases read_cases(const char* path) {
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
    if (line.rfind("window ", 0) == 0) {
      std::string word;
      Window w;
      fields >> word >> w.rows >> w.cols >> w.anchor_row >> w.anchor_col;
      cases.windows.push_back(w);
      continue;
    }
    Case c;
    std::string layout;
    fields >> c.n >> c.c >> c.h >> c.w >> layout >> c.offset;
    c.channels_last = layout == "nhwc";
    cases.shapes.push_back(c);
  }
  return cases;
}

// Elements past a tensor of case `c` that a grid without its guard could reach: the last block's
// tail of up to kThreadsPerBlock - 1 items, which for the row-pair kernels lie a few row pairs on
// and for the window kernels (one item per window and channel; a window may be the whole image)
// up to that many planes on.
int64_t slack_elements(const Case& c) {
  const int64_t planes = kThreadsPerBlock - 1 + 2;
  return (planes * c.h + 4) * c.w * c.c + 8192;
}

// Under AddressSanitizer (.ci/sanitize.sh) the input ends where its allocation does, so that the
// allocation's redzone reports a read past it where it happens; otherwise the input has
// slack_elements after it. Either way, the memory around the input holds NaN: a stray read that
// reaches a result shows in the bitwise comparison.
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

// Random values with NaN, +-Inf and -0 sprinkled in, as `dtype`, starting `offset` elements
// into a 64-byte aligned allocation of NaN (torch's CPU allocations are), in the case's memory
// layout.
at::Tensor make_input(const Case& c, at::ScalarType dtype, std::mt19937& rng) {
  const int64_t numel = c.n * c.c * c.h * c.w;
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
  return c.channels_last ? flat.view({c.n, c.h, c.w, c.c}).permute({0, 3, 1, 2}) : flat.view({c.n, c.c, c.h, c.w});
}

// NaN at the same places and every other element bit for bit equal.
bool bitwise_equal(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.contiguous(), e = expected.contiguous();
  if (!at::equal(a.isnan(), e.isnan())) {
    return false;
  }
  const at::ScalarType bits = e.element_size() == 2 ? at::kShort : e.element_size() == 4 ? at::kInt : at::kLong;
  return at::equal(a.masked_fill(e.isnan(), 0).view(bits), e.masked_fill(e.isnan(), 0).view(bits));
}

// Every instance that could run on `layout`: each pack that fits it, and the element path,
// with 32- and 64-bit indices.
std::vector<KernelChoice> valid_choices(const PlaneLayout& layout, int64_t element_size) {
  std::vector<KernelChoice> choices;
  const auto in = reinterpret_cast<uintptr_t>(layout.input.data_ptr());
  const auto out = reinterpret_cast<uintptr_t>(layout.output.data_ptr());
  for (const bool index32 : {true, false}) {
    for (const int64_t bytes : {16, 8, 4}) {
      const int64_t vec = bytes / element_size;
      if (vec >= 2 && layout.row_length() % vec == 0 && in % bytes == 0 && out % bytes == 0) {
        choices.push_back({static_cast<int>(vec), Access::kPack, layout.inner == 1, index32});
      }
    }
    choices.push_back({static_cast<int>(16 / element_size), Access::kScalar, layout.inner == 1, index32});
  }
  return choices;
}

std::string describe(const KernelChoice& c) {
  return std::string(c.access == Access::kPack ? "pack " : "elements ") + std::to_string(c.vec) +
         (c.unit_inner ? " NCHW" : " channels_last") + (c.index32 ? " int32" : " int64");
}

// A NaN-poisoned output for `layout` at the start of a buffer with slack_elements after it, so
// that a store past the output lands in memory of the test's own.
at::Tensor poisoned_output(const Case& c, const PlaneLayout& layout) {
  const int64_t numel = layout.input.numel();
  const at::Tensor flat = at::full({numel + slack_elements(c)}, NAN, layout.input.options());
  const at::Tensor out = flat.narrow(0, 0, numel);
  return c.channels_last ? out.view({c.n, c.h, c.w, c.c}).permute({0, 3, 1, 2}) : out.view({c.n, c.c, c.h, c.w});
}

// Calls thread(block, thread) for every thread of a launch over `items` work items, as the
// launcher sizes it.
template <typename U, typename Thread>
void walk_grid(uint64_t items, Pass pass, const Thread& thread) {
  const U blocks = blocks_for(items, pass, static_cast<int64_t>(items));
  for (U block = 0; block < blocks; ++block) {
    for (U t = 0; t < static_cast<U>(kThreadsPerBlock); ++t) {
      thread(block, t);
    }
  }
}

// Runs `grid` (a walk over every thread of a launch) into `output` with every store counted;
// checks that no pack access was misaligned, that each output element was written exactly once
// and nothing else, and returns whether all that held. `what` names the run in failures.
template <typename Grid>
bool run_counted(const at::Tensor& output, const std::string& what, const Grid& grid) {
  HostStores stores;
  stores.begin = reinterpret_cast<uintptr_t>(output.data_ptr());
  stores.element_size = output.element_size();
  stores.counts.assign(output.numel(), 0);
  host_stores() = &stores;
  try {
    grid();
  } catch (const MisalignedPack& e) {
    host_stores() = nullptr;
    check(false, what + ": " + e.what());
    return false;
  }
  host_stores() = nullptr;
  const auto written = std::count(stores.counts.begin(), stores.counts.end(), 1);
  const bool once = written == output.numel() && stores.outside == 0;
  check(once, what + ": every output element written exactly once (" + std::to_string(written) + " of " +
                  std::to_string(output.numel()) + " once, " + std::to_string(stores.outside) + " stores outside)");
  return once;
}

// Runs instance `choice` of `pass` on the host, every thread of its launch, into `layout.output`.
template <typename T>
bool run_grid(Pass pass, const KernelChoice& choice, const PlaneLayout& layout, const std::string& what) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  bool ok = true;
  with_instance<T>(choice, [&](auto instance) {
    using I = decltype(instance);
    using U = typename I::U;
    const auto params = make_grid_params<U>(layout.planes, layout.height, layout.width, layout.inner, I::V);
    ok = run_counted(layout.output, what, [&] {
      walk_grid<U>(params.items, pass, [&](U block, U thread) {
        if (pass == Pass::kForward) {
          row_pair_thread<Pass::kForward, T, U, I::V, I::A, I::kUnitInner>(in, out, params, block, thread);
        } else {
          row_pair_thread<Pass::kBackward, T, U, I::V, I::A, I::kUnitInner>(in, out, params, block, thread);
        }
      });
    });
  });
  return ok;
}

// The CPU kernels, through the dispatcher.
at::Tensor cpu_op(Pass pass, const at::Tensor& x, const Window& w) {
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow(pass == Pass::kForward ? "npr_cuda::npr" : "npr_cuda::npr_backward", "")
                      .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef)>();
  return op.call(x, {w.rows, w.cols}, {w.anchor_row, w.anchor_col});
}

std::string window_name(const Window& w) {
  return "window " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + " anchor (" +
         std::to_string(w.anchor_row) + ", " + std::to_string(w.anchor_col) + ")";
}

// Window kernel `pass` for `w` on the host, every thread of its launch, into `layout.output`;
// the window fitted to the image first, as the ops do (run_pass).
template <typename T, typename U>
bool run_window_grid(Pass pass, const Window& w, const PlaneLayout& layout, const std::string& what) {
  const T* in = layout.input.const_data_ptr<T>();
  T* out = layout.output.mutable_data_ptr<T>();
  const Window fitted = fit_window(w, layout.height, layout.width);
  const auto p = make_window_params<U>(layout.planes, layout.height, layout.width, layout.inner, fitted);
  return run_counted(layout.output, what, [&] {
    walk_grid<U>(p.items, pass, [&](U block, U thread) {
      if (pass == Pass::kForward) {
        window_thread<Pass::kForward, T, U>(in, out, p, block, thread);
      } else {
        window_thread<Pass::kBackward, T, U>(in, out, p, block, thread);
      }
    });
  });
}

// The window kernels (any window but the default): every element of `x`, for 32- and 64-bit
// indices, against the CPU op.
void check_window_instances(const Case& c, const std::vector<Window>& windows, at::ScalarType dtype,
                            std::mt19937& rng) {
  const at::Tensor x = make_input(c, dtype, rng);
  for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
    for (const Window& w : windows) {
      const at::Tensor expected = cpu_op(pass, x, w);
      PlaneLayout layout = prepare_planes(x, op_name(pass));
      for (const bool index32 : {true, false}) {
        layout.output = poisoned_output(c, layout);
        const std::string what = std::string(op_name(pass)) + " " + c10::toString(dtype) + " " + c.name() + ", " +
                                 window_name(w) + (index32 ? " int32" : " int64");
        bool ran = false;
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "window_thread", [&] {
          ran = index32 ? run_window_grid<scalar_t, uint32_t>(pass, w, layout, what)
                        : run_window_grid<scalar_t, uint64_t>(pass, w, layout, what);
        });
        check(ran && bitwise_equal(layout.output, expected), what + ": equals the CPU op bit for bit");
      }
    }
  }
}

// Every instance that could run on the case, and the one the launcher chooses (run even if it
// is not among them, so that a wrong choice fails where the device would: in its accesses).
void check_instances(const Case& c, at::ScalarType dtype, std::mt19937& rng) {
  const at::Tensor x = make_input(c, dtype, rng);
  for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
    const at::Tensor expected = cpu_op(pass, x, Window{});
    PlaneLayout layout = prepare_planes(x, op_name(pass));
    check(layout.input.data_ptr() == x.data_ptr(), "the layout reads the input in place, " + c.name());
    layout.output = poisoned_output(c, layout);
    const KernelChoice chosen = choose_kernel(x.element_size(), layout.row_length(), layout.inner, x.numel(),
                                              reinterpret_cast<uintptr_t>(layout.input.data_ptr()),
                                              reinterpret_cast<uintptr_t>(layout.output.data_ptr()));
    std::vector<KernelChoice> choices = valid_choices(layout, x.element_size());
    const std::string where = std::string(op_name(pass)) + " " + c10::toString(dtype) + " " + c.name();
    if (std::find(choices.begin(), choices.end(), chosen) == choices.end()) {
      check(false, where + ": the launcher's choice, " + describe(chosen) + ", is not valid here");
      choices.push_back(chosen);
    }
    for (const KernelChoice& choice : choices) {
      layout.output = poisoned_output(c, layout);  // an element the instance does not write stays NaN
      const std::string what = where + ", instance " + describe(choice) + (choice == chosen ? " (chosen)" : "");
      bool ran = false;
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "run_grid",
                                      [&] { ran = run_grid<scalar_t>(pass, choice, layout, what); });
      check(ran && bitwise_equal(layout.output, expected), what + ": equals the CPU op bit for bit");
    }
  }
}

template <typename U>
void check_divider(std::mt19937_64& rng) {
  const U limit = U{1} << (sizeof(U) * 8 - 1);  // dividends and divisors below 2^(N-1)
  bool exact = true;
  for (U d = 1; d < 300; ++d) {
    const FastDivider<U> divider(d);
    for (U n = 0; n < 3000; ++n) {
      exact = exact && divider.div(n) == n / d;
    }
  }
  for (int i = 0; i < 200000; ++i) {
    const U d = static_cast<U>(rng() % (i % 2 ? 1000 : limit - 1)) + 1;
    const U n = static_cast<U>(rng() % limit);
    exact = exact && FastDivider<U>(d).div(n) == n / d;
  }
  for (const U d : {U{1}, U{2}, U{3}, U{7}, limit / 2, limit / 2 + 1, limit - 1}) {
    for (const U n : {U{0}, d - 1, d, limit - 2, limit - 1}) {
      exact = exact && FastDivider<U>(d).div(n) == n / d;
    }
  }
  check(exact, std::string("FastDivider<") + (sizeof(U) == 4 ? "uint32" : "uint64") + "> equals integer division");
}

void check_launcher_choices() {
  // (element size, row length, inner, numel, in address, out address) -> choice
  struct Expectation {
    int64_t element_size, row_length, inner, numel;
    uintptr_t in, out;
    KernelChoice choice;
  };
  const int64_t big = int64_t{1} << 31;
  const Expectation cases[] = {
      {4, 224, 1, 1000, 0, 0, {4, Access::kPack, true, true}},     // float32, 16-byte packs
      {4, 226, 1, 1000, 0, 0, {2, Access::kPack, true, true}},     // W = 2 mod 4: 8-byte packs
      {4, 225, 1, 1000, 0, 0, {4, Access::kScalar, true, true}},   // odd W: elements
      {4, 224, 1, 1000, 4, 0, {4, Access::kScalar, true, true}},   // offset view by one element
      {4, 224, 1, 1000, 8, 0, {2, Access::kPack, true, true}},     // offset by two: 8-byte packs
      {2, 228, 1, 1000, 0, 0, {4, Access::kPack, true, true}},     // bfloat16, W = 4 mod 8
      {2, 230, 1, 1000, 0, 0, {2, Access::kPack, true, true}},     // bfloat16, W = 6 mod 8
      {2, 224, 1, 1000, 0, 0, {8, Access::kPack, true, true}},     // bfloat16, 16-byte packs
      {8, 224, 1, 1000, 0, 0, {2, Access::kPack, true, true}},     // float64
      {8, 225, 1, 1000, 0, 0, {2, Access::kScalar, true, true}},   // float64, odd W
      {4, 672, 3, 1000, 0, 0, {4, Access::kPack, false, true}},    // channels_last C = 3, W = 224
      {4, 669, 3, 1000, 0, 0, {4, Access::kScalar, false, true}},  // channels_last C = 3, W = 223
      {2, 224, 1, big - 1, 0, 0, {8, Access::kPack, true, true}},  // the largest 32-bit tensor
      {2, 224, 1, big, 0, 0, {8, Access::kPack, true, false}},     // 2^31 elements: 64-bit indices
  };
  for (const auto& e : cases) {
    const KernelChoice got = choose_kernel(e.element_size, e.row_length, e.inner, e.numel, e.in, e.out);
    check(got == e.choice, "launcher choice for element size " + std::to_string(e.element_size) + ", row " +
                               std::to_string(e.row_length) + ", inner " + std::to_string(e.inner) + ", numel " +
                               std::to_string(e.numel) + ": expected " + describe(e.choice) + ", got " + describe(got));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: test_cuda_bodies tests/kernel_shapes.txt\n";
    return 2;
  }
  const unsigned seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  at::manual_seed(seed);
  std::mt19937 rng(seed);
  std::mt19937_64 rng64(seed);

  check_divider<uint32_t>(rng64);
  check_divider<uint64_t>(rng64);
  check_launcher_choices();
  const KernelCases cases = read_cases(argv[1]);
  check(cases.shapes.size() >= 20 && cases.windows.size() >= 6, "the shape and window lists were read");
  for (const Case& c : cases.shapes) {
    for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
      check_instances(c, dtype, rng);
      check_window_instances(c, cases.windows, dtype, rng);
    }
  }
  std::cout << checks - failures << " passed, " << failures << " failed\n";
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
