"""npr-eval: the official test protocol of the NPR detector over a folder of generators.

    npr-eval /data/ForenSynths/test --weights NPR.pth --preset ForenSynths
    python -m npr_cuda.cli.eval /data/GANGen-Detection --weights NPR.pth --preset GANGen-Detection --csv out.csv

ROOT's subfolders are generators, each in the official layout (0_real/1_fake, directly or under
class folders); a ROOT that holds 0_real/1_fake itself is one generator. For each: accuracy,
average precision, and the accuracies on real and on fake images (sigmoid > 0.5), then the mean
row, as the official test.py prints them (in percent).
"""

import csv
import json
import math
import os
import sys

import numpy as np

from ..detector.checkpoint import CheckpointError, load_detector
from ..detector.data import (
    PRESETS,
    ImageDataset,
    Protocol,
    eval_transform,
    has_label_folders,
    make_loader,
    real_fake_samples,
    subfolders,
)
from ..detector.metrics import binary_metrics, json_safe
from ..detector.model import NPR_IMPLEMENTATIONS
from ..detector.predict import predict
from .common import (
    add_common_arguments,
    add_speed_arguments,
    add_window_arguments,
    build_fast_detector,
    check_output_file,
    data_workers,
    new_parser,
    nothing_read,
    printable,
    report_failures,
    resolve_device,
    usage_error,
)

COLUMNS = ["generator", "n", "acc", "ap", "real_acc", "fake_acc", "classes"]
METRICS = ["acc", "ap", "real_acc", "fake_acc"]
ONE_CLASS_NOTE = (
    "one class only: AP is what scikit-learn's average_precision_score (validate.py's) gives there, 1.0 with "
    "fakes only and 0.0 with reals only, averaged into the mean as test.py averages every folder's AP; the "
    "absent class's accuracy is left out of the mean"
)


def parse_args(argv=None):
    parser = new_parser("npr-eval", __doc__)
    parser.add_argument("root", help="folder whose subfolders are generators")
    parser.add_argument(
        "--weights", required=True, help="NPR.pth, model_epoch_last_3090.pth or an npr-train checkpoint"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="ForenSynths",
        help="test protocol (resize to 256 or not, or tile small images up to 224 as GenImage does; centre crop "
        "224 or not; batch size); default ForenSynths",
    )
    parser.add_argument("--csv", help="also write the table here as CSV")
    parser.add_argument("--json", help="also write the table here as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_arguments(parser, batch_size=64, batch_help="default 64 (the preset's, if it fixes one)")
    add_window_arguments(parser, training=False)
    add_speed_arguments(parser)
    return parser.parse_args(argv)


def generators(root, skipped):
    """(name, samples) for each generator under root that holds 0_real/1_fake images; the
    folders that hold none are appended to `skipped` with the reason. FileNotFoundError for a
    root that holds 0_real/1_fake folders without images."""
    if has_label_folders(root):
        return [(os.path.basename(os.path.normpath(root)), real_fake_samples(root))]
    found = []
    for name in subfolders(root):
        try:
            found.append((name, real_fake_samples(os.path.join(root, name), skipped=skipped)))
        except FileNotFoundError as error:
            skipped.append(str(error))
    return found


def generator_predictions(detector, name, samples, protocol: Protocol, batch_size, workers, max_pixels, progress=True):
    """The probabilities of one generator's images under `protocol`; `detector` is a FastDetector."""
    dataset = ImageDataset(samples, eval_transform(protocol), max_pixels)
    pin_memory = detector.device.type == "cuda"
    loader = make_loader(dataset, protocol.batch_size or batch_size, workers, pin_memory=pin_memory)
    return predict(detector, loader, desc=name, progress=progress, max_batch_pixels=max_pixels)


def evaluate(detector, generator_samples, protocol: Protocol, batch_size, workers, max_pixels, progress=True):
    """Rows of COLUMNS per generator plus the mean row, the failures, and the throughput."""
    rows, failures, images, seconds = [], [], 0, 0.0
    for name, samples in generator_samples:
        result = generator_predictions(detector, name, samples, protocol, batch_size, workers, max_pixels, progress)
        failures += result.failures
        images += len(result.probs)
        seconds += result.seconds
        rows.append({"generator": name, **binary_metrics(result.labels, result.probs)})
    if rows:
        mean = {
            key: float(np.nanmean([row[key] for row in rows]))
            if any(not math.isnan(row[key]) for row in rows)
            else math.nan
            for key in METRICS
        }
        rows.append({"generator": "mean", "n": sum(row["n"] for row in rows), **mean, "classes": ""})
    return rows, failures, (images / seconds if seconds else math.nan)


def format_table(rows) -> str:
    """The table in percent; a folder with one class is marked, and a note says what its AP is."""
    lines = [f"{'generator':24} {'n':>7} {'acc':>6} {'ap':>6} {'real acc':>9} {'fake acc':>9}"]
    for row in rows:
        mark = f"  {row['classes']}" if row["classes"] in ("real only", "fake only") else ""
        lines.append(
            f"{printable(row['generator']):24} {row['n']:7d} "
            + " ".join(
                f"{100 * row[key]:{width}.1f}"
                for key, width in (("acc", 6), ("ap", 6), ("real_acc", 9), ("fake_acc", 9))
            )
            + mark
        )
    if any(row["classes"] in ("real only", "fake only") for row in rows):
        lines.append(ONE_CLASS_NOTE)
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device, "npr-eval")
    if not os.path.isdir(args.root):
        usage_error("npr-eval", f"{args.root}: no such folder")
    for flag, output in (("--csv", args.csv), ("--json", args.json)):  # checked now, not after the run
        if output:
            check_output_file("npr-eval", flag, output)
    try:
        model = load_detector(
            args.weights, device, window=args.npr_window, anchor=args.npr_anchor, npr_impl=NPR_IMPLEMENTATIONS[args.npr]
        )
    except (CheckpointError, FileNotFoundError) as error:
        usage_error("npr-eval", str(error))
    skipped = []
    try:
        found = generators(args.root, skipped)
    except FileNotFoundError as error:  # ROOT/0_real and ROOT/1_fake without images
        print(f"npr-eval: {printable(str(error))}", file=sys.stderr)
        raise SystemExit(1) from None
    for reason in skipped:
        print(f"npr-eval: skipping {printable(reason)}", file=sys.stderr)
    if not found:
        print(f"npr-eval: {printable(args.root)}: no generator folder with 0_real/1_fake images in it", file=sys.stderr)
        raise SystemExit(1)
    protocol = PRESETS[args.preset]
    images = sum(len(samples) for _, samples in found)
    detector = build_fast_detector("npr-eval", model, device, args, images, fixed_size=protocol.fixed_size)
    rows, failures, rate = evaluate(
        detector, found, protocol, args.batch_size, data_workers(args, device), args.max_pixels, not args.quiet
    )
    if not rows[-1]["n"]:
        nothing_read("npr-eval", failures)
    tiles = f", tile {protocol.tile}" if protocol.tile else ""  # GenImage: translate and duplicate
    print(f"preset {args.preset}: resize {protocol.resize}, crop {protocol.crop}{tiles}; {device}; {rate:.1f} images/s")
    print(format_table(rows))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        with open(args.json, "w") as f:
            report = {"preset": args.preset, "weights": args.weights, "images_per_second": rate, "rows": rows}
            json.dump(json_safe(report), f, indent=1, allow_nan=False)
    report_failures(failures)


if __name__ == "__main__":
    main()
