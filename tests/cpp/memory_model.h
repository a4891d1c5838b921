#pragma once
// What a host run of a CUDA kernel body shows about its memory traffic, as Nsight Compute counts
// it on a GPU: every global access a thread issues is recorded with its instruction (host_run.h's
// sites); the accesses of a warp's 32 threads to one site, for the same time, form one warp-level
// instruction (a request), which touches a set of 32-byte sectors. Per launch:
//   - load and store efficiency: the distinct bytes each instruction asks for over the bytes of
//     the sectors it touches, summed over all instructions (1.00: every sector fully used);
//   - unique sectors: the sectors of the input and output touched at all, over the fewest that
//     hold the two tensors (1.00: each byte read once from memory and written once);
//   - the blocks launched, and how many waves of an H100 they fill.
// Also the check of every store: each output element written exactly once, nothing outside it.
// Torch-free.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "../../csrc/cuda/host_run.h"

namespace npr_cuda::cuda::testing {

constexpr uint64_t kSectorBytes = 32;
constexpr int kWarpSize = 32;
// An H100 SXM: 132 SMs, 2048 resident threads each, so 1056 blocks of 256 threads a wave.
constexpr double kH100BlocksPerWave = 132.0 * 2048 / 256;

// A tensor's bytes in memory.
struct Span {
  uintptr_t begin = 0;
  uint64_t bytes = 0;

  bool holds(uintptr_t address, uint64_t n) const { return address >= begin && address + n <= begin + bytes; }
  uint64_t first_sector() const { return begin / kSectorBytes; }
  uint64_t sectors() const { return bytes == 0 ? 0 : (begin + bytes - 1) / kSectorBytes - first_sector() + 1; }
};

struct Traffic {
  uint64_t needed_bytes = 0;  // distinct bytes the instructions ask for
  uint64_t sector_bytes = 0;  // bytes of the sectors they touch
  uint64_t instructions = 0;

  double efficiency() const { return sector_bytes == 0 ? 1.0 : double(needed_bytes) / double(sector_bytes); }
};

// The observer a host run installs (host_observer()): call begin_thread before each thread's
// work in each phase, and end_block after a block's last phase.
class HostRun : public HostObserver {
 public:
  // `model`: also group accesses into warp instructions (slower); the store count always runs.
  HostRun(Span input, Span output, uint64_t element_size, bool model)
      : input_(input),
        output_(output),
        element_size_(element_size),
        model_(model),
        stores_(output.bytes / element_size, 0),
        read_sectors_(input.sectors(), false),
        written_sectors_(output.sectors(), false) {}

  void begin_thread(unsigned thread) {
    thread_ = thread;
    if (sites_.size() <= thread) {
      sites_.resize(thread + 1);
    }
  }

  void access(MemoryOp op, const char* site, const void* address, size_t bytes) override {
    const auto at = reinterpret_cast<uintptr_t>(address);
    if (op == MemoryOp::kStore) {
      count_store(at, bytes);
    } else if (!input_.holds(at, bytes)) {
      ++loads_outside_;
    }
    mark(op == MemoryOp::kLoad ? input_ : output_, op == MemoryOp::kLoad ? read_sectors_ : written_sectors_, at, bytes);
    if (model_) {
      records_.push_back({thread_ / kWarpSize, op, site, occurrence(site), at, static_cast<uint32_t>(bytes)});
    }
  }

  // Groups the block's accesses into warp instructions and adds up their sectors.
  void end_block() {
    ++blocks_;
    std::sort(records_.begin(), records_.end());
    for (size_t first = 0; first < records_.size();) {
      size_t end = first + 1;
      while (end < records_.size() && records_[end].same_instruction(records_[first])) {
        ++end;
      }
      add_instruction(first, end);
      first = end;
    }
    records_.clear();
    for (auto& counts : sites_) {
      counts.clear();
    }
  }

  // Each output element stored exactly once, nothing stored outside the output, nothing loaded
  // outside the input.
  int64_t elements_stored_once() const { return std::count(stores_.begin(), stores_.end(), 1); }
  int64_t output_elements() const { return static_cast<int64_t>(stores_.size()); }
  int64_t stores_outside() const { return stores_outside_; }
  int64_t loads_outside() const { return loads_outside_; }

  const Traffic& loads() const { return traffic_[0]; }
  const Traffic& stores() const { return traffic_[1]; }
  uint64_t blocks() const { return blocks_; }
  double unique_sector_ratio() const {
    const auto touched = std::count(read_sectors_.begin(), read_sectors_.end(), true) +
                         std::count(written_sectors_.begin(), written_sectors_.end(), true);
    return double(touched) / double(input_.sectors() + output_.sectors());
  }

 private:
  struct Record {
    unsigned warp;
    MemoryOp op;
    const char* site;
    int occurrence;
    uintptr_t address;
    uint32_t bytes;

    auto key() const { return std::make_tuple(warp, op, site, occurrence); }
    bool same_instruction(const Record& o) const { return key() == o.key(); }
    bool operator<(const Record& o) const {
      return std::make_pair(key(), address) < std::make_pair(o.key(), o.address);
    }
  };

  // How many times the current thread has reached `site` before.
  int occurrence(const char* site) {
    auto& counts = sites_[thread_];
    for (auto& [s, n] : counts) {
      if (s == site) {
        return n++;
      }
    }
    counts.emplace_back(site, 1);
    return 0;
  }

  void count_store(uintptr_t at, size_t bytes) {
    for (size_t k = 0; k < bytes / element_size_; ++k) {
      const uintptr_t element = at + k * element_size_;
      if (!output_.holds(element, element_size_)) {
        ++stores_outside_;
      } else {
        ++stores_[(element - output_.begin) / element_size_];
      }
    }
  }

  static void mark(const Span& span, std::vector<bool>& sectors, uintptr_t at, size_t bytes) {
    for (uint64_t s = at / kSectorBytes; s <= (at + bytes - 1) / kSectorBytes; ++s) {
      if (s >= span.first_sector() && s - span.first_sector() < sectors.size()) {
        sectors[s - span.first_sector()] = true;
      }
    }
  }

  // Records [first, end): one warp instruction, sorted by address.
  void add_instruction(size_t first, size_t end) {
    Traffic& t = traffic_[records_[first].op == MemoryOp::kLoad ? 0 : 1];
    ++t.instructions;
    uintptr_t covered_to = 0;  // distinct bytes: the union of [address, address + bytes)
    uint64_t last_sector = UINT64_MAX;
    for (size_t i = first; i < end; ++i) {
      const uintptr_t a = records_[i].address, b = a + records_[i].bytes;
      if (b > covered_to) {
        t.needed_bytes += b - std::max(a, covered_to);
        covered_to = b;
      }
      for (uint64_t s = a / kSectorBytes; s <= (b - 1) / kSectorBytes; ++s) {
        if (s != last_sector && (last_sector == UINT64_MAX || s > last_sector)) {
          t.sector_bytes += kSectorBytes;
          last_sector = s;
        }
      }
    }
  }

  Span input_, output_;
  uint64_t element_size_;
  bool model_;
  std::vector<int> stores_;
  std::vector<bool> read_sectors_, written_sectors_;
  int64_t stores_outside_ = 0, loads_outside_ = 0;
  unsigned thread_ = 0;
  std::vector<std::vector<std::pair<const char*, int>>> sites_;
  std::vector<Record> records_;
  Traffic traffic_[2];
  uint64_t blocks_ = 0;
};

}  // namespace npr_cuda::cuda::testing
