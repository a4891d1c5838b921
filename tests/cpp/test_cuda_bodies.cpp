// The CUDA kernels' per-thread code (csrc/cuda/row_pair_kernel.h, window_kernel.h), compiled
// with the host compiler and run here, every thread of every block of the launch the launcher
// would make (host_launch.h: the blocks shuffled, each phase over the whole block before the
// next), for every instance that could run on each case and for the one the launcher chooses:
// forward and backward x float32, float64, float16, bfloat16 x every pack width and the element
// path x NCHW and channels_last x 32- and 64-bit indices, for the default window's row-pair
// kernels and for the window kernels (the file's windows, up to int64's largest; the tile in
// shared memory by packs or by elements, or read from global memory), over
// tests/kernel_shapes.txt, on inputs with NaN, Inf and -0 surrounded by NaN, into NaN-poisoned
// outputs, compared bit for bit with the CPU op. Every access is seen (memory_model.h): each
// output element must be written exactly once, nothing outside the output, the output's slack
// left as it was, nothing loaded outside the input, and every pack access aligned to its size,
// as a GPU requires. Also: the fast divider against `/`, and the launcher's choices. Run by ctest,
// so by CI.
//
//   test_cuda_bodies SHAPES_FILE                            the checks
//   test_cuda_bodies SHAPES_FILE --memory-model OUT.json    the memory model's cases and goals
//                                                           (memory_model_report.h)

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "host_launch.h"
#include "kernel_cases.h"
#include "memory_model_report.h"

using namespace npr_cuda;
using namespace npr_cuda::cuda;
using namespace npr_cuda::cuda::testing;

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

// Every row-pair instance that could run on `layout`: each pack that fits it, and the element
// path, with 32- and 64-bit indices.
std::vector<KernelChoice> valid_choices(const PlaneLayout& layout, int64_t element_size) {
  std::vector<KernelChoice> choices;
  const auto in = reinterpret_cast<uintptr_t>(layout.input.data_ptr());
  const auto out = reinterpret_cast<uintptr_t>(layout.output.data_ptr());
  for (const bool index32 : {true, false}) {
    for (const int64_t bytes : {16, 8, 4}) {
      const int64_t vec = bytes / element_size;
      if (vec >= 2 && layout.row_length() % vec == 0 && in % bytes == 0 && out % bytes == 0) {
        choices.push_back({static_cast<int>(vec), layout.inner == 1, index32});
      }
    }
    choices.push_back({1, false, index32});
  }
  return choices;
}

// Every window instance that could run on `layout` for `fitted`: the tile in shared memory by
// 16-byte packs (where they fit the rows and tensors) or by elements, where the tile fits, and
// read from global memory, with 32- and 64-bit indices.
std::vector<WindowChoice> valid_window_choices(Pass pass, const PlaneLayout& layout, const Window& fitted,
                                               int64_t element_size) {
  std::vector<WindowChoice> choices;
  const int vec16 = static_cast<int>(16 / element_size);
  const bool packs = layout.row_length() % vec16 == 0 &&
                     reinterpret_cast<uintptr_t>(layout.input.data_ptr()) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(layout.output.data_ptr()) % 16 == 0;
  for (const bool index32 : {true, false}) {
    if (packs && tile_segment(pass, element_size, layout.row_length(), layout.inner, fitted, vec16, true) > 0) {
      choices.push_back({vec16, true, index32});
    }
    if (tile_segment(pass, element_size, layout.row_length(), layout.inner, fitted, 1, true) > 0) {
      choices.push_back({1, true, index32});
    }
    choices.push_back({1, false, index32});
  }
  return choices;
}

// Runs `launch(run)` (a host launch into layout.output) with every access seen, and checks what
// a GPU would fault on or hide: no pack access misaligned, each output element written exactly
// once and nothing outside the output (its slack still NaN), nothing loaded outside the input.
template <typename Launch>
bool run_checked(const PlaneLayout& layout, const at::Tensor& slack, const std::string& what, const Launch& launch) {
  HostRun run = host_run_for(layout, /*model=*/false);
  try {
    launch(run);
  } catch (const MisalignedPack& e) {
    check(false, what + ": " + e.what());
    return false;
  }
  const bool once = run.elements_stored_once() == run.output_elements() && run.stores_outside() == 0;
  check(once, what + ": every output element written exactly once (" + std::to_string(run.elements_stored_once()) +
                  " of " + std::to_string(run.output_elements()) + " once, " + std::to_string(run.stores_outside()) +
                  " stores outside)");
  const bool untouched = slack.isnan().all().item<bool>();
  check(untouched, what + ": the output's slack left as it was");
  check(run.loads_outside() == 0, what + ": no load outside the input (" + std::to_string(run.loads_outside()) + ")");
  return once && untouched && run.loads_outside() == 0;
}

// The window kernels (any window but the default): every instance that could run, and the one
// the launcher chooses, against the CPU op.
void check_window_instances(const Case& c, const std::vector<Window>& windows, at::ScalarType dtype,
                            std::mt19937& rng) {
  const at::Tensor x = make_input(c, dtype, rng);
  for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
    for (const Window& w : windows) {
      const at::Tensor expected = cpu_op(pass, x, w);
      PlaneLayout layout = prepare_planes(x, op_name(pass));
      at::Tensor slack;
      layout.output = poisoned_output(c, layout, &slack);
      const Window fitted = fit_window(w, layout.height, layout.width);
      const WindowChoice chosen = choose_window_kernel(
          pass, x.element_size(), layout.row_length(), layout.inner, fitted, x.numel(),
          reinterpret_cast<uintptr_t>(layout.input.data_ptr()), reinterpret_cast<uintptr_t>(layout.output.data_ptr()));
      std::vector<WindowChoice> choices = valid_window_choices(pass, layout, fitted, x.element_size());
      const std::string where =
          std::string(op_name(pass)) + " " + c10::toString(dtype) + " " + c.name() + ", " + window_name(w);
      if (std::find(choices.begin(), choices.end(), chosen) == choices.end()) {
        check(false, where + ": the launcher's choice, " + describe(chosen) + ", is not valid here");
        choices.push_back(chosen);
      }
      for (const WindowChoice& choice : choices) {
        layout.output = poisoned_output(c, layout, &slack);
        const std::string what = where + ", instance " + describe(choice) + (choice == chosen ? " (chosen)" : "");
        bool ran = false;
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "run_windows", [&] {
          ran = run_checked(layout, slack, what,
                            [&](HostRun& run) { run_windows<scalar_t>(pass, choice, w, layout, run, rng); });
        });
        check(ran && bitwise_equal(layout.output, expected), what + ": equals the CPU op bit for bit");
      }
    }
  }
}

// The row-pair kernels: every instance that could run on the case, and the one the launcher
// chooses (run even if it is not among them, so that a wrong choice fails where the device would:
// in its accesses).
void check_instances(const Case& c, at::ScalarType dtype, std::mt19937& rng) {
  const at::Tensor x = make_input(c, dtype, rng);
  for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
    const at::Tensor expected = cpu_op(pass, x, Window{});
    PlaneLayout layout = prepare_planes(x, op_name(pass));
    check(layout.input.data_ptr() == x.data_ptr(), "the layout reads the input in place, " + c.name());
    at::Tensor slack;
    layout.output = poisoned_output(c, layout, &slack);
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
      layout.output = poisoned_output(c, layout, &slack);  // an element the instance does not write stays NaN
      const std::string what = where + ", instance " + describe(choice) + (choice == chosen ? " (chosen)" : "");
      bool ran = false;
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "run_row_pairs", [&] {
        ran = run_checked(layout, slack, what,
                          [&](HostRun& run) { run_row_pairs<scalar_t>(pass, choice, layout, run, rng); });
      });
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
      {4, 224, 1, 1000, 0, 0, {4, true, true}},     // float32, 16-byte packs
      {4, 226, 1, 1000, 0, 0, {2, true, true}},     // W = 2 mod 4: 8-byte packs
      {4, 225, 1, 1000, 0, 0, {1, false, true}},    // odd W: elements
      {4, 224, 1, 1000, 4, 0, {1, false, true}},    // offset view by one element
      {4, 224, 1, 1000, 8, 0, {2, true, true}},     // offset by two: 8-byte packs
      {2, 228, 1, 1000, 0, 0, {4, true, true}},     // bfloat16, W = 4 mod 8
      {2, 230, 1, 1000, 0, 0, {2, true, true}},     // bfloat16, W = 6 mod 8
      {2, 224, 1, 1000, 0, 0, {8, true, true}},     // bfloat16, 16-byte packs
      {8, 224, 1, 1000, 0, 0, {2, true, true}},     // float64
      {8, 225, 1, 1000, 0, 0, {1, false, true}},    // float64, odd W
      {4, 672, 3, 1000, 0, 0, {4, false, true}},    // channels_last C = 3, W = 224
      {4, 669, 3, 1000, 0, 0, {1, false, true}},    // channels_last C = 3, W = 223
      {2, 224, 1, big - 1, 0, 0, {8, true, true}},  // the largest 32-bit tensor
      {2, 224, 1, big, 0, 0, {8, true, false}},     // 2^31 elements: 64-bit indices
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
  const bool model = argc == 4 && std::string(argv[2]) == "--memory-model";
  if (argc != 2 && !model) {
    std::cerr << "usage: test_cuda_bodies tests/kernel_shapes.txt [--memory-model OUT.json]\n";
    return 2;
  }
  const unsigned seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  at::manual_seed(seed);
  std::mt19937 rng(seed);
  std::mt19937_64 rng64(seed);
  const KernelCases cases = read_cases(argv[1]);
  if (model) {
    check(!cases.model_shapes.empty() && !cases.model_windows.empty(), "the memory model's cases were read");
    run_memory_model(cases, argv[3], rng, check);
  } else {
    check_divider<uint32_t>(rng64);
    check_divider<uint64_t>(rng64);
    check_launcher_choices();
    check(cases.shapes.size() >= 20 && cases.windows.size() >= 6, "the shape and window lists were read");
    for (const Case& c : cases.shapes) {
      for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
        check_instances(c, dtype, rng);
        check_window_instances(c, cases.windows, dtype, rng);
      }
    }
  }
  std::cout << checks - failures << " passed, " << failures << " failed\n";
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
