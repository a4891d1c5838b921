// The Python extension module npr_cuda._C. Importing it loads the operator library (the
// TORCH_LIBRARY registrations in the other sources); its functions report how it was built and
// run the ops' input checks for the fake kernels (npr_cuda/ops.py), so that they are written once.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include <string>
#include <vector>

#include "build_config.h"     // NPR_CUDA_ARCH_LIST
#include "cpu/npr_cpu_isa.h"  // also npr.h

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def(
      "build_info",
      [] {
        pybind11::dict info;
        info["cuda"] = static_cast<bool>(NPR_BUILD_CUDA);
        info["cuda_arch_list"] = NPR_CUDA_ARCH_LIST;
        info["cpu_isa"] = npr_cuda::cpu::kernel_isa();
        return info;
      },
      "How this build of npr_cuda was compiled: {'cuda': bool, 'cuda_arch_list': str, 'cpu_isa': str}.");
  m.def(
      "check_input",
      [](const at::Tensor& x, const std::vector<int64_t>& window, const std::vector<int64_t>& anchor,
         const std::string& op_name) {
        npr_cuda::check_input(x, op_name.c_str());
        npr_cuda::check_window(window, anchor, op_name.c_str());
      },
      "The ops' argument checks (rank >= 2, floating dtype, window and anchor): ValueError or TypeError naming "
      "op_name.");
}
