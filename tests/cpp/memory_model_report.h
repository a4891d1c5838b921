#pragma once
// The memory model's cases (tests/kernel_shapes.txt's "model" lines): each shape x float32 and
// bfloat16 x the default window and the "model-window" ones x both passes, through the instance
// the launcher chooses, run on the host with every access modelled (memory_model.h), checked bit
// for bit against the CPU op, and held to the goals:
//   - aligned cases (tensors and rows aligned to a pack): loads and stores each use at least 90%
//     of the bytes of the sectors they touch, and touch at most 1.02x the fewest sectors;
//   - unaligned ones (element access): at least 50% each;
//   - shapes of at least 32x3x224x224 elements fill at least one wave of an H100.
// One JSON record per case goes to the output file (bench/memory_model.py prints the table).

#include <fstream>
#include <functional>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "host_launch.h"
#include "kernel_cases.h"

namespace npr_cuda::cuda::testing {

constexpr double kAlignedEfficiency = 0.90;
constexpr double kUnalignedEfficiency = 0.50;
constexpr double kMaxUniqueSectorRatio = 1.02;
constexpr int64_t kFullWaveElements = int64_t{32} * 3 * 224 * 224;

inline std::string describe(const KernelChoice& c) {
  return "row_pair V=" + std::to_string(c.vec) + (c.unit_inner ? " NCHW" : "") + (c.index32 ? " int32" : " int64");
}

inline std::string describe(const WindowChoice& c) {
  return "window V=" + std::to_string(c.vec) + (c.shared ? " shared" : " global") + (c.index32 ? " int32" : " int64");
}

struct ModelRecord {
  std::string kernel, pass, dtype, layout, window, shape;
  bool aligned = false, bitwise = false;
  double load_efficiency = 0, store_efficiency = 0, unique_sector_ratio = 0, waves = 0;
  uint64_t blocks = 0, load_instructions = 0, store_instructions = 0, load_sectors = 0, store_sectors = 0;
  int64_t numel = 0;

  // The goals this record misses, in words; empty when it meets them all.
  std::string missed() const {
    std::ostringstream out;
    const double least = aligned ? kAlignedEfficiency : kUnalignedEfficiency;
    if (!bitwise) {
      out << " not bitwise equal to the CPU op;";
    }
    if (load_efficiency < least || store_efficiency < least) {
      out << " efficiency below " << least << ";";
    }
    if (aligned && unique_sector_ratio > kMaxUniqueSectorRatio) {
      out << " unique sectors above " << kMaxUniqueSectorRatio << "x;";
    }
    if (numel >= kFullWaveElements && waves < 1.0) {
      out << " less than one wave;";
    }
    return out.str();
  }

  std::string json() const {
    std::ostringstream out;
    out << std::setprecision(6) << "{\"kernel\": \"" << kernel << "\", \"pass\": \"" << pass << "\", \"dtype\": \""
        << dtype << "\", \"layout\": \"" << layout << "\", \"window\": \"" << window << "\", \"shape\": \"" << shape
        << "\", \"aligned\": " << (aligned ? "true" : "false") << ", \"load_efficiency\": " << load_efficiency
        << ", \"store_efficiency\": " << store_efficiency << ", \"unique_sector_ratio\": " << unique_sector_ratio
        << ", \"blocks\": " << blocks << ", \"waves\": " << waves << ", \"load_instructions\": " << load_instructions
        << ", \"store_instructions\": " << store_instructions << ", \"load_sectors\": " << load_sectors
        << ", \"store_sectors\": " << store_sectors << ", \"bitwise\": " << (bitwise ? "true" : "false")
        << ", \"goals_met\": " << (missed().empty() ? "true" : "false") << "}";
    return out.str();
  }
};

// One case through the launcher's instance, modelled.
template <typename T>
ModelRecord model_case(const Case& c, const Window& w, Pass pass, std::mt19937& rng) {
  const at::Tensor x = make_input(c, c10::CppTypeToScalarType<T>::value, rng);
  PlaneLayout layout = prepare_planes(x, op_name(pass));
  layout.output = poisoned_output(c, layout);
  const Window fitted = fit_window(w, layout.height, layout.width);
  const auto in = reinterpret_cast<uintptr_t>(layout.input.data_ptr());
  const auto out = reinterpret_cast<uintptr_t>(layout.output.data_ptr());
  HostRun run = host_run_for(layout, /*model=*/true);
  ModelRecord r;
  if (fitted.is_default()) {
    const KernelChoice choice = choose_kernel(sizeof(T), layout.row_length(), layout.inner, x.numel(), in, out);
    run_row_pairs<T>(pass, choice, layout, run, rng);
    r.kernel = describe(choice);
    r.aligned = choice.vec > 1;
  } else {
    const WindowChoice choice =
        choose_window_kernel(pass, sizeof(T), layout.row_length(), layout.inner, fitted, x.numel(), in, out);
    run_windows<T>(pass, choice, fitted, layout, run, rng);
    r.kernel = describe(choice);
    r.aligned = choice.vec > 1;
  }
  r.bitwise = bitwise_equal(layout.output, cpu_op(pass, x, w)) && run.elements_stored_once() == x.numel() &&
              run.stores_outside() == 0 && run.loads_outside() == 0;
  r.pass = op_name(pass);
  r.dtype = c10::toString(x.scalar_type());
  r.layout = c.channels_last ? "channels_last" : "NCHW";
  r.window = std::to_string(w.rows) + "x" + std::to_string(w.cols) + " at (" + std::to_string(w.anchor_row) + ", " +
             std::to_string(w.anchor_col) + ")";
  r.shape = std::to_string(c.n) + "x" + std::to_string(c.c) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w) +
            (c.offset ? " +" + std::to_string(c.offset) : "");
  r.load_efficiency = run.loads().efficiency();
  r.store_efficiency = run.stores().efficiency();
  r.unique_sector_ratio = run.unique_sector_ratio();
  r.blocks = run.blocks();
  r.waves = double(run.blocks()) / kH100BlocksPerWave;
  r.load_instructions = run.loads().instructions;
  r.store_instructions = run.stores().instructions;
  r.load_sectors = run.loads().sector_bytes / kSectorBytes;  // Nsight Compute's l1tex__t_sectors_..._op_ld
  r.store_sectors = run.stores().sector_bytes / kSectorBytes;
  r.numel = x.numel();
  return r;
}

// Every model case: the records written to `path`, and check(ok, what) called once per case.
inline void run_memory_model(const KernelCases& cases, const std::string& path, std::mt19937& rng,
                             const std::function<void(bool, const std::string&)>& check) {
  std::vector<Window> windows{Window{}};
  windows.insert(windows.end(), cases.model_windows.begin(), cases.model_windows.end());
  std::ofstream json(path);
  json << "[\n";
  bool first = true;
  for (const Case& c : cases.model_shapes) {
    for (const Window& w : windows) {
      for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
        for (const bool bf16 : {false, true}) {
          const ModelRecord r = bf16 ? model_case<c10::BFloat16>(c, w, pass, rng) : model_case<float>(c, w, pass, rng);
          json << (first ? "" : ",\n") << "  " << r.json();
          json.flush();
          first = false;
          check(r.missed().empty(), "memory model " + r.kernel + " " + r.pass + " " + r.dtype + " " + r.layout + " " +
                                        r.shape + " window " + r.window + ":" + r.missed() + " " + r.json());
        }
      }
    }
  }
  json << "\n]\n";
}

}  // namespace npr_cuda::cuda::testing
