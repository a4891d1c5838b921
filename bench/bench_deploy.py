"""The exported detector against the detector in PyTorch: images/s of each way to run it, on the
same batches, in the same run.

    python bench/bench_deploy.py --batch-size 32 --size 224 --repeats 20

Candidates, all from the same random weights, given the same normalised float32 batch:
- eager: npr_resnet50 in eval mode under inference_mode (the official model's arithmetic);
- fast_detector: what npr-eval and npr-detect run (batch norms folded, channels_last), uncompiled
  and compiled (torch.compile, prepacked weights);
- onnxruntime: npr-export's .onnx (any size), on onnxruntime's CPU provider;
- pt2: npr-export's .pt2 (AOTInductor, compiled for SIZE), through aoti_load_package.
Each candidate's calls alternate with the others' (this machine's speed drifts over minutes);
the median call time gives images/s, with the ratio to eager, and the largest difference of each
candidate's probabilities from eager's. Preparation (export, compilation) is timed apart.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from run_record import write_report

from npr_cuda.detector import npr_resnet50
from npr_cuda.detector.speed import SpeedOptions, fast_detector
from npr_cuda.export import InputSpec, export_detector, load_exported


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="image side (the .pt2 is compiled for it)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per candidate")
    parser.add_argument("--candidates", default="eager,fast_detector,fast_detector+compile,onnxruntime,pt2")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def prepare(name, model, folder, size):
    """The callable for one candidate: a CPU batch to logits."""
    device = torch.device("cpu")
    if name == "eager":
        return lambda images: model(images)
    if name.startswith("fast_detector"):
        options = SpeedOptions(compile="on" if name.endswith("+compile") else "off")
        return fast_detector(model, device, options, images=1, fixed_size=True)
    path = os.path.join(folder, "npr.onnx" if name == "onnxruntime" else "npr.pt2")
    export_detector(model, path, InputSpec(model.window, model.anchor, resize=size if name == "pt2" else None))
    return load_exported(path, device)


def time_candidates(runners, images, repeats):
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            with torch.inference_mode():
                run(images)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(0)
    model = npr_resnet50().eval()
    images = torch.randn(args.batch_size, 3, args.size, args.size)
    runners, prepare_s, probs = {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.candidates.split(","):
            start = time.perf_counter()
            runners[name] = prepare(name, model, folder, args.size)
            with torch.inference_mode():
                probs[name] = runners[name](images).float().sigmoid().flatten()  # also the warm-up
            prepare_s[name] = time.perf_counter() - start
        medians = time_candidates(runners, images, args.repeats)
    cpu = f"CPU, {torch.get_num_threads()} threads"
    print(f"{cpu}; batch {args.batch_size} x 3 x {args.size} x {args.size}; torch {torch.__version__}")
    print(f"{'candidate':24} {'images/s':>9} {'vs eager':>9} {'prepare s':>10} {'max |dP|':>9}")
    rows = []
    for name, median in medians.items():
        row = {
            "candidate": name,
            "images_per_s": args.batch_size / median,
            "vs_eager": medians.get("eager", median) / median,
            "prepare_s": prepare_s[name],
            "max_abs_prob_diff": float((probs[name] - probs.get("eager", probs[name])).abs().max()),
        }
        rows.append(row)
        print(
            f"{name:24} {row['images_per_s']:9.1f} {row['vs_eager']:8.2f}x {row['prepare_s']:10.1f} "
            f"{row['max_abs_prob_diff']:9.1e}"
        )
    if args.json:
        write_report(args.json, "bench/bench_deploy.py", argv or sys.argv[1:], device=cpu, args=vars(args), rows=rows)


if __name__ == "__main__":
    main()
