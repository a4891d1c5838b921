#pragma once
// The CPU kernels' tuning constants, in one place. Each was chosen by a measurement in
// bench/RESULTS.md (the section named beside it), on 2-core cloud hosts: an Intel Xeon with
// 48 KiB of L1 data cache per core, and an AMD EPYC with 32 KiB of L1 and 1 MiB of L2 per core.
// They do not depend on the instruction set, so every copy of the kernels shares them.

#include <cstdint>

namespace npr_cuda::cpu {

// Elements below which a task is not worth a thread: ATen's GRAIN_SIZE, which at::parallel_for
// uses for its own element-wise kernels.
constexpr int64_t kElementsPerTask = 32768;

// How far ahead of a unit of work (a row pair, a row group) its software prefetch runs: its own
// size's worth of rows, this many bytes or more on. The hardware prefetcher, which stops at page
// boundaries, had kept ahead of neither pass at rows of 224 elements ("2026-11-29, later").
constexpr int64_t kPrefetchAheadBytes = 8 << 10;

// Row pairs up to this size prefetch the rows ahead; longer ones are left to the hardware
// prefetcher ("2026-11-29, later").
constexpr int64_t kPrefetchedPairBytes = 4 << 10;

// The cache level a prefetch fills.
enum class PrefetchInto { kL1, kL2 };
// From DRAM at 32x3x224x224, L2 measured faster than L1 for the row groups and for the row
// pairs' forward (stepped row by row) on the Xeon ("2026-11-29, evening" and "night"), and for
// the row pairs' backward on the EPYC, with its smaller L1, where the Xeon had shown no
// difference ("2026-12-06: the row pairs' backward prefetches into L2").
constexpr PrefetchInto kRowPairForwardPrefetch = PrefetchInto::kL2;
constexpr PrefetchInto kRowPairBackwardPrefetch = PrefetchInto::kL2;
constexpr PrefetchInto kRowGroupPrefetch = PrefetchInto::kL2;

// The size of a row group from which the window backward copies with the loads of its sums
// rather than with memcpy first. On the Xeon (48 KiB of L1), memcpy first was faster for groups
// up to 16 KiB (read back from L1 by the sums) and slower from 18 KiB (bfloat16 channels_last
// rows of 1024 pixels, l = 3: 1.05x clone fused, 1.37x copied first; "Any window and anchor on
// CPU").
constexpr int64_t kFusedCopyBytes = 16 << 10;

// Chunks of the window backward's sums per step: 2 chains of additions each, so that 8 chains'
// latencies overlap.
constexpr int kSumChunksPerStep = 4;

}  // namespace npr_cuda::cpu
