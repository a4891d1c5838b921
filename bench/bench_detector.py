"""The NPR detector against the official code: the model alone, or the whole jobs end to end.

Model mode (default): on random 3 x SIZE x SIZE batches, an inference forward (eval mode, no
grad) and a training step (forward, BCEWithLogitsLoss, backward, Adam step: the official
recipe), for each NPR implementation inside the same model, interleaved step by step; prints
images/s (median step time) and the peak memory of each (CUDA: max_memory_allocated; CPU: peak
resident set above the start).

    python bench/bench_detector.py --device cpu --batch-size 32 --steps 10

End-to-end mode (--end-to-end): on a generated tree of PNG photographs (crops of the photos that
ship with scikit-image, half of them up-sampled by 2 as fakes), in the same run, alternately:
the official evaluation path as validate.py runs it (an ImageFolder, the official transforms, a
DataLoader, the eager model with the official NPR formula, written here) against npr-eval's path
(npr_cuda.cli.eval, ForenSynths preset), and one epoch of the official trainer's loop (written
here) against npr-train's (npr_cuda.detector.training.train). Wall time of each job from start
to end (model set-up, loader start, compilation included); images/s, the ratio, and how far the
probabilities of the two evaluations are apart. The speed-up is the median over repeats of each
repeat's ratio (this machine's speed drifts over minutes).

    python bench/bench_detector.py --end-to-end --device cpu --images 256 --size 256 --workers 2
"""

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from run_record import write_report
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from tqdm import tqdm

from npr_cuda.cli.common import default_workers
from npr_cuda.cli.eval import generator_predictions
from npr_cuda.detector import NPR_IMPLEMENTATIONS, npr_resnet50
from npr_cuda.detector.data import DEFAULT_MAX_PIXELS, IMAGENET_MEAN, IMAGENET_STD, PRESETS, real_fake_samples
from npr_cuda.detector.metrics import binary_metrics
from npr_cuda.detector.speed import COMPILE_CHOICES, SpeedOptions, fast_detector
from npr_cuda.detector.synthetic_fakes import TRAIN_PHOTOS, load_photo
from npr_cuda.detector.training import TrainConfig, train, train_step
from npr_cuda.reference import formula_npr


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="image side (model mode: the training crop is 224)")
    parser.add_argument("--steps", type=int, default=10, help="model mode: timed steps per candidate")
    parser.add_argument("--channels-last", action="store_true", help="model mode: channels_last model and batches")
    parser.add_argument("--end-to-end", action="store_true", help="time the whole jobs against the official code")
    parser.add_argument("--images", type=int, default=256, help="end to end: images in the tree (half fake)")
    parser.add_argument("--workers", type=int, default=2, help="end to end: the official path's data loaders")
    parser.add_argument(
        "--our-workers", type=int, default=None, help="end to end: our tools' (default: their own default)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="end to end: alternating runs of each job (median)")
    parser.add_argument("--compile", choices=COMPILE_CHOICES, default="auto", help="end to end: our tools' --compile")
    parser.add_argument("--jobs", default="eval,train", help="end to end: eval, train or both")
    parser.add_argument("--tree", default=None, help="end to end: keep the generated tree here (default: a temp dir)")
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


def model_mode(args, argv):
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


# ------------------------------------------------------------------------------ end to end
def write_tree(root: str, images: int, size: int, seed: int = 0) -> str:
    """root/gen/{0_real,1_fake}/*.png, `images` in all: size x size crops of the shipped photos;
    a fake is a crop at half the size up-sampled by 2 (nearest), the trace NPR sees."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(name) for name in TRAIN_PHOTOS]
    photos = [photo for photo in photos if min(photo.shape[:2]) >= size]
    folder = os.path.join(root, "gen")
    for i in range(images):
        label = i % 2
        photo = photos[i % len(photos)]
        side = size // 2 if label else size
        top, left = (int(rng.integers(0, n - side + 1)) for n in photo.shape[:2])
        pixels = photo[top : top + side, left : left + side]
        if label:
            pixels = pixels.repeat(2, 0).repeat(2, 1)
        os.makedirs(os.path.join(folder, ("0_real", "1_fake")[label]), exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, ("0_real", "1_fake")[label], f"{i:05d}.png"))
    return folder


def official_model(state, device):
    """The official network (its NPR formula, NCHW, eager) with `state`."""
    model = npr_resnet50(npr_impl=formula_npr)
    model.load_state_dict(state)
    return model.to(device)


def official_eval(folder, state, device, batch_size, workers):
    """validate.py with the ForenSynths settings: ImageFolder, Resize 256, ToTensor, Normalize,
    no shuffle; sigmoid of the logits. Returns {path: probability}."""
    transform = T.Compose([T.Resize((256, 256)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = datasets.ImageFolder(folder, transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    model = official_model(state, device).eval()
    probs = []
    with torch.no_grad():
        for images, _ in loader:
            probs.extend(model(images.to(device)).sigmoid().flatten().tolist())
    return {path: prob for (path, _), prob in zip(dataset.samples, probs)}


def npr_eval(folder, state, device, batch_size, workers, compile_choice):
    """npr-eval's path (the ForenSynths preset) over the same folder. Returns {path: probability}."""
    samples = real_fake_samples(folder)
    model = npr_resnet50()
    model.load_state_dict(state)
    detector = fast_detector(model.to(device), device, SpeedOptions(compile=compile_choice), len(samples))
    result = generator_predictions(
        detector, "npr-eval", samples, PRESETS["ForenSynths"], batch_size, workers, DEFAULT_MAX_PIXELS, progress=False
    )
    return dict(zip(result.paths, result.probs))


def official_train_epoch(folder, device, batch_size, workers):
    """One epoch of the official train.py loop: ImageFolder, Resize 256, RandomCrop 224, flip,
    shuffled DataLoader; Adam 2e-4, BCEWithLogitsLoss on output.squeeze(1), eager NCHW model."""
    transform = T.Compose(
        [
            T.Resize((256, 256)),
            T.RandomCrop(224),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    loader = DataLoader(datasets.ImageFolder(folder, transform), batch_size, shuffle=True, num_workers=workers)
    torch.manual_seed(100)
    model = official_model(npr_resnet50().state_dict(), device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
    for images, labels in loader:
        loss = F.binary_cross_entropy_with_logits(model(images.to(device)).squeeze(1), labels.to(device).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def npr_train_epoch(folder, device, batch_size, workers, compile_choice):
    """One epoch of npr-train (its defaults, no validation) over the same folder."""
    with tempfile.TemporaryDirectory() as output:
        config = TrainConfig(
            output=output,
            niter=1,
            batch_size=batch_size,
            workers=workers,
            device=str(device),
            compile=compile_choice,
            progress=False,
        )
        train(config, real_fake_samples(folder), None)


def time_end_to_end(args, device, jobs, ours):
    """({(job, path): [seconds per repeat]}, {path: eval probabilities}) for the official and our
    tools, run side by side in each repeat on one folder of images."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_tree(args.tree or scratch, args.images, args.size)
        torch.manual_seed(0)
        state = npr_resnet50().state_dict()
        state["fc1.weight"] = torch.randn_like(state["fc1.weight"]) * 0.2  # probabilities spread out
        candidates = []
        if "eval" in jobs:
            candidates += [
                ("eval", "official", lambda: official_eval(folder, state, device, args.batch_size, args.workers)),
                ("eval", "npr-eval", lambda: npr_eval(folder, state, device, args.batch_size, ours, args.compile)),
            ]
        if "train" in jobs:
            candidates += [
                ("train", "official", lambda: official_train_epoch(folder, device, args.batch_size, args.workers)),
                ("train", "npr-train", lambda: npr_train_epoch(folder, device, args.batch_size, ours, args.compile)),
            ]
        times = {(job, path): [] for job, path, _ in candidates}
        probs = {}
        for _ in tqdm(range(args.repeats), desc="end to end", file=sys.stderr):
            for job, path, run in candidates:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                result = run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[job, path].append(time.perf_counter() - start)
                if job == "eval":
                    probs[path] = result
    return times, probs


def end_to_end_rows(args, times):
    """A row per (job, path): images, median seconds and images/s, and the speed-up over the
    official path, per repeat and their median."""
    trained = args.images - args.images % args.batch_size  # npr-train drops the last partial batch
    rows = []
    for (job, path), seconds in times.items():
        images = args.images if job == "eval" or path == "official" else trained
        official = [args.images / t for t in times[job, "official"]]
        # The speed-up per repeat (runs side by side see the same machine), then the median: this
        # machine's speed drifts by up to 2x over minutes, which medians of each alone mix in.
        speedups = [images / t / rate for t, rate in zip(seconds, official)]
        rows.append(
            {
                "job": job,
                "path": path,
                "images": images,
                "seconds": statistics.median(seconds),
                "images_per_s": images / statistics.median(seconds),
                "speedup": statistics.median(speedups),
                "speedups": speedups,
            }
        )
    return rows


def eval_agreement(probs):
    """Whether the official evaluation and npr-eval scored the same images alike."""
    official, mine = probs["official"], probs["npr-eval"]
    paths = sorted(official)
    agreement = {
        "same_images": sorted(mine) == paths,
        "max_abs_prob_diff": max(abs(official[p] - mine[p]) for p in paths) if sorted(mine) == paths else math.nan,
        "official": binary_metrics([int("1_fake" in p) for p in paths], [official[p] for p in paths]),
        "npr-eval": binary_metrics([int("1_fake" in p) for p in paths], [mine.get(p, math.nan) for p in paths]),
    }
    theirs, mine = agreement["official"], agreement["npr-eval"]
    print(
        f"eval agreement: same images {agreement['same_images']}, max |P(fake) difference| "
        f"{agreement['max_abs_prob_diff']:.2e}; official / npr-eval: acc {theirs['acc']:.4f} / {mine['acc']:.4f}, "
        f"AP {theirs['ap']:.6f} / {mine['ap']:.6f}"
    )
    return agreement


def end_to_end(args, argv):
    device = torch.device(args.device)
    jobs = args.jobs.split(",")
    ours = default_workers(device) if args.our_workers is None else args.our_workers  # what the tools pick
    times, probs = time_end_to_end(args, device, jobs, ours)
    rows = end_to_end_rows(args, times)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{name}; {args.images} PNGs of {args.size}x{args.size}; batch {args.batch_size}; workers: official "
        f"{args.workers}, ours {ours}; "
        f"--compile {args.compile}; median of {args.repeats}; torch {torch.__version__}"
    )
    print(f"{'job':6} {'path':10} {'images':>7} {'seconds':>8} {'images/s':>9} {'speedup':>8}  per repeat")
    for row in rows:
        print(
            f"{row['job']:6} {row['path']:10} {row['images']:7d} {row['seconds']:8.1f} {row['images_per_s']:9.1f} "
            f"{row['speedup']:7.2f}x  {' '.join(f'{x:.2f}' for x in row['speedups'])}"
        )
    agreement = eval_agreement(probs) if "eval" in jobs else {}
    if args.json:
        write_report(
            args.json, "bench/bench_detector.py", argv, device=name, args=vars(args), rows=rows, agreement=agreement
        )


def main(argv=None):
    args = parse_args(argv)
    if args.end_to_end:
        end_to_end(args, argv)
    else:
        model_mode(args, argv)


if __name__ == "__main__":
    main()
