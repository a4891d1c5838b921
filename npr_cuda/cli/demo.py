"""npr-demo: the paper's phenomenon, offline, in a few minutes on a CPU.

    npr-demo                                   # train on transposed convolutions, test on all four
    npr-demo --train-family bilinear --seeds 5 --figure demo.png

Real images are crops of photographs shipped with scikit-image and scikit-learn; fakes are the
same kind of crops passed through small fixed CNN generators that end in a 2x up-sampler
(nearest, bilinear, transposed convolution, pixel shuffle; see npr_cuda.detector.synthetic_fakes),
both cut from the interior of larger crops so that no generator's padding frames them. The NPR
detector is trained on one family and tested on all four, on crops of photographs it never saw,
once per seed (crops, initial weights, order); the table gives the mean and the range over the
seeds. A PNG shows real and fake crops beside their NPR maps.
"""

import json
import math
import statistics
import sys
import time

import torch

from ..detector.metrics import binary_metrics
from ..detector.model import NPR_IMPLEMENTATIONS, npr_resnet50
from ..detector.predict import fake_probabilities
from ..detector.progress import progress_bar
from ..detector.synthetic_fakes import FAMILIES, TEST_PHOTOS, TRAIN_PHOTOS, figure, labelled, make_split
from ..detector.training import train_step
from .argument_types import int_pair, positive_int
from .common import add_common_arguments, check_output_file, new_parser, resolve_device

METRICS = ["acc", "ap", "real_acc", "fake_acc"]
TEST_SEED_OFFSET = 10_000  # the test crops of seed s are drawn with s + this: never a training seed
# The first steps allocate and warm up and say little about the rest; the estimate of the time
# left waits for this many, then times this many more.
WARMUP_STEPS, TIMED_STEPS = 5, 10


def parse_args(argv=None):
    parser = new_parser("npr-demo", __doc__)
    parser.add_argument(
        "--train-family",
        choices=FAMILIES,
        default="transposed_conv",
        help="the up-sampler the detector learns (default transposed_conv, as in ProGAN-like generators)",
    )
    parser.add_argument("--crops", type=positive_int, default=40, help="crops per photograph (default 40)")
    parser.add_argument("--size", type=int, default=64, help="crop side (even; default 64)")
    parser.add_argument("--epochs", type=positive_int, default=6)
    parser.add_argument("--lr", type=float, default=2e-4, help="the official 2e-4")
    parser.add_argument("--window", type=int_pair, default=(2, 2), metavar="L or LH,LW", help="NPR window (default 2)")
    parser.add_argument("--anchor", type=int_pair, default=(0, 0), metavar="R,C", help="its anchor (default 0,0)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="runs, one per seed (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--figure", default="npr_demo.png", help="where to write the PNG ('' for none)")
    parser.add_argument("--json", default=None, help="also write the results here")
    add_common_arguments(parser, batch_size=32, batch_help="default 32", image_files=False)
    args = parser.parse_args(argv)
    if min(args.window) < 1 or not all(a < w for a, w in zip(args.anchor, args.window)):
        parser.error(
            f"--window {args.window} and --anchor {args.anchor}: expected window >= 1 and 0 <= anchor < window"
        )
    if args.size % 2 or args.size < 8:
        parser.error("--size must be even and at least 8")
    return args


class TimeLeft:
    """The training time left, said once: after WARMUP_STEPS steps, from the TIMED_STEPS after
    them (timing from the start counted the data, the figure and the warm-up, and overestimated
    a 136 s run as about 405 s). Only the training steps are timed; a run too short to time
    them says nothing."""

    def __init__(self, total_steps: int, clock=time.perf_counter):
        self.total_steps, self.clock = total_steps, clock
        self.done, self.timing_since = 0, None

    def step(self):
        """Counts a finished training step; returns the estimate once, when it is measured."""
        self.done += 1
        if self.done == WARMUP_STEPS:
            self.timing_since = self.clock()
        elif self.done == WARMUP_STEPS + TIMED_STEPS:
            per_step = (self.clock() - self.timing_since) / TIMED_STEPS
            left = per_step * (self.total_steps - self.done)
            return (
                f"npr-demo: {self.total_steps} training steps, {per_step * 1000:.0f} ms each: "
                f"about {left:.0f} s of training left"
            )
        return None


def run_seed(args, seed, device, estimate) -> list:
    """Trains a detector on `seed`'s crops of the training photos; its rows on the test photos."""
    train_split = make_split(TRAIN_PHOTOS, args.crops, args.size, seed=seed)
    test_split = make_split(TEST_PHOTOS, args.crops, args.size, seed=TEST_SEED_OFFSET + seed)
    if args.figure and seed == args.seed:
        figure(test_split, args.figure, window=args.window, anchor=args.anchor)
        print(f"npr-demo: wrote {args.figure}", file=sys.stderr)
    torch.manual_seed(seed)
    model = npr_resnet50(npr_impl=NPR_IMPLEMENTATIONS[args.npr], window=args.window, anchor=args.anchor).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    images, labels = labelled(train_split, [args.train_family])
    steps_per_epoch = math.ceil(len(labels) / args.batch_size)
    order_gen = torch.Generator().manual_seed(seed)
    model.train()
    progress = progress_bar(desc=f"seed {seed}: train on {args.train_family}", unit="step",
                            total=args.epochs * steps_per_epoch)  # fmt: skip
    for epoch in range(args.epochs):
        order = torch.randperm(len(labels), generator=order_gen)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            loss = train_step(model, optimizer, images[batch].to(device), labels[batch].to(device))
            progress.update()
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}")
            said = estimate.step()
            if said:
                progress.write(said, file=sys.stderr)
    progress.close()
    model.eval()
    rows = []
    with torch.inference_mode():
        for family in FAMILIES:
            test_images, test_labels = labelled(test_split, [family])
            probs = torch.cat(
                [fake_probabilities(model, chunk.to(device)).cpu() for chunk in test_images.split(args.batch_size)]
            )
            rows.append(
                {
                    "family": family,
                    "trained_on": family == args.train_family,
                    **binary_metrics(test_labels.long().tolist(), probs.tolist()),
                }
            )
    return rows


def summarise(per_seed) -> list:
    """Per family: mean, min and max over the seeds of each metric (NaN-free seeds only)."""
    summary = []
    for index, family in enumerate(FAMILIES):
        row = {"family": family, "trained_on": per_seed[0]["rows"][index]["trained_on"], "seeds": len(per_seed)}
        for key in METRICS:
            values = [run["rows"][index][key] for run in per_seed if not math.isnan(run["rows"][index][key])]
            row[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)} if values else None
        summary.append(row)
    return summary


def format_summary(summary) -> str:
    def cell(stat):
        return f"{100 * stat['mean']:5.1f} [{100 * stat['min']:5.1f}-{100 * stat['max']:5.1f}]" if stat else "-"

    lines = [f"{'up-sampler':16} " + " ".join(f"{name:>19}" for name in ("acc", "AP", "real acc", "fake acc"))]
    for row in summary:
        mark = " (trained on)" if row["trained_on"] else ""
        lines.append(f"{row['family']:16} " + " ".join(f"{cell(row[key]):>19}" for key in METRICS) + mark)
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    for flag, output in (("--figure", args.figure), ("--json", args.json)):  # checked before the runs
        if output:
            check_output_file("npr-demo", flag, output)
    device = resolve_device(args.device, "npr-demo")
    started = time.perf_counter()
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(
        f"npr-demo: {args.crops} crops of {args.size}x{args.size} from each of {len(TRAIN_PHOTOS)} training and "
        f"{len(TEST_PHOTOS)} test photographs; fakes from {len(FAMILIES)} up-sampler families; seeds {seeds}",
        file=sys.stderr,
    )
    steps_per_seed = args.epochs * math.ceil(2 * args.crops * len(TRAIN_PHOTOS) / args.batch_size)
    estimate = TimeLeft(len(seeds) * steps_per_seed)
    per_seed = [{"seed": seed, "rows": run_seed(args, seed, device, estimate)} for seed in seeds]
    summary = summarise(per_seed)
    print(
        f"\nNPR detector (window {args.window[0]}x{args.window[1]}, anchor {args.anchor}) trained on "
        f"{args.train_family} up-sampling, tested on unseen photographs "
        f"({args.crops * len(TEST_PHOTOS)} real and as many fake crops per family); "
        f"mean [min-max] over {len(seeds)} seed(s):"
    )
    print(format_summary(summary))
    print(f"({time.perf_counter() - started:.0f} s on {device})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "per_seed": per_seed}, f, indent=1)


if __name__ == "__main__":
    main()
