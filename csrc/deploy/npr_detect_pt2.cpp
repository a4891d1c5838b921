// npr_detect_pt2: runs a detector that npr-export wrote as an AOTInductor package (.pt2), from C++
// with no Python, and prints the probability of fake of each image of a batch.
//
//   npr_detect_pt2 npr.pt2 batch.pt
//
// batch.pt is a float32 (N, 3, H, W) tensor saved by Python's torch.save, preprocessed as the
// package's metadata says (printed first): RGB in [0, 1], normalised with the ImageNet mean and
// std, at the size the package was exported for. The package calls npr_cuda::npr through the
// dispatcher, which finds it because this program links the operator library npr_cuda_ops.

#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

at::Tensor read_saved_tensor(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw std::runtime_error(path + ": cannot open");
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const c10::IValue value = torch::jit::pickle_load(bytes);
  if (!value.isTensor()) {
    throw std::runtime_error(path + ": expected one tensor saved by torch.save");
  }
  at::Tensor batch = value.toTensor();
  if (batch.dim() != 4 || batch.size(1) != 3 || batch.scalar_type() != at::kFloat) {
    throw std::runtime_error(path + ": expected a float32 (N, 3, H, W) batch, got " + batch.toString() + " of shape " +
                             c10::str(batch.sizes()));
  }
  return batch;
}

void print_metadata(torch::inductor::AOTIModelPackageLoader& loader) {
  const auto metadata = loader.get_metadata();
  const std::map<std::string, std::string> sorted(metadata.begin(), metadata.end());
  for (const auto& [key, value] : sorted) {
    if (key.rfind("npr_cuda.", 0) == 0) {
      std::printf("# %s: %s\n", key.c_str(), value.c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.pt2 BATCH.pt\n", argv[0]);
    return 2;
  }
  try {
    torch::inductor::AOTIModelPackageLoader loader(argv[1]);
    print_metadata(loader);
    const at::Tensor batch = read_saved_tensor(argv[2]);
    const std::vector<at::Tensor> outputs = loader.run({batch});
    const at::Tensor probabilities = outputs.at(0).to(at::kCPU).to(at::kDouble).sigmoid().flatten();
    for (int64_t i = 0; i < probabilities.numel(); ++i) {
      std::printf("%lld\t%.9f\n", static_cast<long long>(i), probabilities[i].item<double>());
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "npr_detect_pt2: %s\n", error.what());
    return 1;
  }
  return 0;
}
