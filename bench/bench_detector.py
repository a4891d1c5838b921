"""The NPR detector with the official NPR formula against the same model with npr_cuda.npr.

Times, on random 3 x SIZE x SIZE batches, an inference forward (eval mode, no grad) and a
training step (forward, BCEWithLogitsLoss, backward, Adam step: the official recipe), for each
NPR implementation, interleaved step by step; prints images/s (median step time) and the peak
memory of each (CUDA: max_memory_allocated; CPU: peak resident set above the start).

    python bench/bench_detector.py --device cpu --batch-size 32 --steps 10
"""

import argparse
import statistics
import sys
import time

import torch
from run_record import write_report
from tqdm import tqdm

from npr_cuda.detector import NPR_IMPLEMENTATIONS, npr_resnet50
from npr_cuda.detector.training import train_step


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="image side (the training crop is 224)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per candidate")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def rss_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


class PeakMemory:
    """Peak bytes allocated during a region: CUDA's allocator counter, or the process's peak
    resident set on Linux (reset through /proc/self/clear_refs)."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = rss_kib("VmRSS:") * 1024
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = rss_kib("VmHWM:") * 1024 - self.base


def make_step(mode, model, optimizer, images, labels):
    if mode == "inference":

        def step():
            with torch.inference_mode():
                model(images)
    else:

        def step():
            train_step(model, optimizer, images, labels)

    return step


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, 2, (args.batch_size,), device=device).float()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for mode in ("inference", "train"):
        steps, peaks = {}, {}
        for name, impl in NPR_IMPLEMENTATIONS.items():
            torch.manual_seed(0)
            model = npr_resnet50(npr_impl=impl).to(device, memory_format=fmt).train(mode == "train")
            optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
            steps[name] = make_step(mode, model, optimizer, images, labels)
            for _ in range(2):  # warm-up: cuDNN choices, Adam state, allocator pools, one-time caches
                steps[name]()
        for name, step in steps.items():  # peaks after every candidate's warm-up: no first-comer costs
            with PeakMemory(device) as peak:
                step()
            peaks[name] = peak.peak
        times = {name: [] for name in steps}
        for _ in tqdm(range(args.steps), desc=mode, file=sys.stderr):
            for name, step in steps.items():
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[name].append(time.perf_counter() - start)
        for name in steps:
            median = statistics.median(times[name])
            rows.append(
                {
                    "mode": mode,
                    "npr": name,
                    "images_per_s": args.batch_size / median,
                    "step_ms": median * 1e3,
                    "peak_mib": peaks[name] / 2**20,
                }
            )
    base = {row["mode"]: row["images_per_s"] for row in rows if row["npr"] == "official"}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{name}; batch {args.batch_size} x 3 x {args.size} x {args.size}; "
        f"{'channels_last' if args.channels_last else 'NCHW'}; torch {torch.__version__}"
    )
    print(f"{'mode':10} {'npr':9} {'images/s':>9} {'step ms':>9} {'peak MiB':>9} {'speedup':>8}")
    for row in rows:
        print(
            f"{row['mode']:10} {row['npr']:9} {row['images_per_s']:9.1f} {row['step_ms']:9.1f} {row['peak_mib']:9.1f} "
            f"{row['images_per_s'] / base[row['mode']]:7.2f}x"
        )
    if args.json:
        write_report(args.json, "bench/bench_detector.py", argv, device=name, args=vars(args), rows=rows)


if __name__ == "__main__":
    main()
