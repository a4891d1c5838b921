"""npr-train: train the NPR detector with the official recipe (see npr_cuda.detector.training).

    npr-train /data/ForenSynths --classes car,cat,chair,horse --output runs/progan
    npr-train /data/ForenSynths --output runs/progan --resume runs/progan/last.pth
    torchrun --nproc_per_node=4 -m npr_cuda.cli.train /data/ForenSynths --output runs/ddp
    npr-train /data/GenImage --recipe GenImage --output runs/sdv4

DATAROOT/<train-split> (and DATAROOT/<val-split>, if present) are in the official layout:
0_real/1_fake, directly or under class folders (--classes picks some). --batch-size is the
global batch, split evenly over the processes torchrun starts. Every epoch appends a JSON line
to OUTPUT/log.jsonl and writes OUTPUT/last.pth, a checkpoint that npr-eval, npr-detect and
--resume read. --recipe GenImage follows the official README's GenImage recipe instead: small
images tiled ("translate and duplicate") where the default recipe resizes, seed 70, one epoch,
classes sdv4; options given override its settings.
"""

import argparse
import os
import sys

from ..detector import genimage
from ..detector.checkpoint import CheckpointError, CheckpointWriteError
from ..detector.data import one_label_note, real_fake_samples
from ..detector.speed import COMPILE_CHOICES, COMPILE_MIN_TRAIN_STEPS
from ..detector.training import (
    MAX_SEED,
    MIN_CROP_SIZE,
    RECIPES,
    ConfigError,
    Diverged,
    Interrupted,
    TrainConfig,
    UnusableData,
    train,
)
from .common import (
    add_common_arguments,
    add_window_arguments,
    data_workers,
    new_parser,
    printable,
    resolve_device,
    usage_error,
)

# The settings that differ between the recipes (the official README's two training commands);
# an option given on the command line overrides its recipe's.
RECIPE_SETTINGS = {
    "ForenSynths": {
        "seed": TrainConfig.seed,
        "niter": TrainConfig.niter,
        "delr_freq": TrainConfig.delr_freq,
        "classes": "",
    },
    genimage.RECIPE: {
        "seed": genimage.SEED,
        "niter": genimage.EPOCHS,
        "delr_freq": genimage.DELR_FREQ,
        "classes": ",".join(genimage.TRAIN_CLASSES),
    },
}


def pair(kind):
    """An argparse type: LOW,HIGH (their range is TrainConfig.validate's to check)."""

    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
        return values

    return parse


def parse_args(argv=None):
    parser = new_parser("npr-train", __doc__)
    parser.add_argument("dataroot")
    parser.add_argument("--output", required=True, help="folder for last.pth and log.jsonl")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val", help="'' for no validation")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="ForenSynths",
        help="the official recipe: ForenSynths (default; resize to 256) or GenImage (small images tiled, "
        "seed 70, 1 epoch, classes sdv4, delr-freq 20)",
    )
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated class folders, e.g. car,cat,chair,horse (default: all; GenImage recipe: sdv4)",
    )
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--niter", type=int, default=None, help="epochs (default 50; GenImage recipe: 1)")
    parser.add_argument(
        "--delr-freq",
        type=int,
        default=None,
        metavar="N",
        help="lr x0.9 (never below 1e-6) at the end of epochs N+1, 2N+1, 3N+1, ... counted from 1: the official "
        "rule, which drops after epochs 11, 21, 31, ... for the default 10 (GenImage recipe: 20)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"0 to {MAX_SEED}; the official seed_torch(100) by default (GenImage recipe: 70)",
    )
    parser.add_argument(
        "--load-size",
        type=int,
        default=None,
        help="resize to this square first (official 256; not with the GenImage recipe, which tiles)",
    )
    parser.add_argument(
        "--crop-size", type=int, default=224, help=f"then crop this square (official 224; at least {MIN_CROP_SIZE})"
    )
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--blur-prob", type=float, default=0.0, help="Gaussian blur probability (official: 0)")
    parser.add_argument("--blur-sigma", type=pair(float), default=(0.0, 3.0), metavar="LOW,HIGH")
    parser.add_argument("--jpeg-prob", type=float, default=0.0, help="JPEG re-compression probability (official: 0)")
    parser.add_argument("--jpeg-quality", type=pair(int), default=(30, 100), metavar="LOW,HIGH")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off", help="mixed precision")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels_last model and batches (default: on; faster training steps, bench/RESULTS.md)",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help=f"torch.compile the training step: auto (default) compiles on a CPU for runs of {COMPILE_MIN_TRAIN_STEPS} "
        "steps or more (compiling costs about 35 s on 2 cores)",
    )
    parser.add_argument(
        "--save-every", type=int, default=1000, help="also checkpoint every this many steps (0: epochs only)"
    )
    parser.add_argument("--resume", default=None, help="an npr-train checkpoint (last.pth) to continue from")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_common_arguments(parser, batch_size=32, batch_help="global batch (default 32)")
    add_window_arguments(parser, training=True)
    return with_recipe_settings(parser.parse_args(argv))


def with_recipe_settings(args):
    """`args` with the settings not given on the command line taken from its --recipe."""
    for name, value in RECIPE_SETTINGS[args.recipe].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.recipe == genimage.RECIPE and args.load_size is not None:
        usage_error("npr-train", f"--load-size: the {genimage.RECIPE} recipe tiles small images instead of resizing")
    if args.load_size is None:
        args.load_size = TrainConfig.load_size
    return args


def config_from(args) -> TrainConfig:
    device = resolve_device(args.device, "npr-train")
    return TrainConfig(
        output=args.output,
        batch_size=args.batch_size,
        lr=args.lr,
        beta1=args.beta1,
        niter=args.niter,
        delr_freq=args.delr_freq,
        seed=args.seed,
        workers=data_workers(args, device),
        load_size=args.load_size,
        crop_size=args.crop_size,
        flip=not args.no_flip,
        blur_prob=args.blur_prob,
        blur_sigma=args.blur_sigma,
        jpeg_prob=args.jpeg_prob,
        jpeg_quality=args.jpeg_quality,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        save_every=args.save_every,
        resume=args.resume,
        device=str(device),
        npr=args.npr,
        npr_window=args.npr_window,
        npr_anchor=args.npr_anchor,
        max_pixels=args.max_pixels,
        progress=not args.quiet,
        recipe=args.recipe,
    )


def flag(error: ConfigError) -> str:
    return f"--{error.field.replace('_', '-')}: {str(error).split(': ', 1)[1]}"


def read_splits(args):
    """The training and validation samples (None: no validation set), each holding both labels;
    exit 2 naming the folder otherwise. Class folders with one label are named on stderr."""
    classes = [c for c in args.classes.split(",") if c]
    skipped, one_label = [], []
    try:
        train_root = os.path.join(args.dataroot, args.train_split)
        train_samples = real_fake_samples(train_root, classes, skipped, one_label)
        val_root = os.path.join(args.dataroot, args.val_split) if args.val_split else None
        val_samples = None
        if val_root and os.path.isdir(val_root):
            val_samples = real_fake_samples(val_root, classes, skipped, one_label)
    except (FileNotFoundError, ValueError) as error:
        usage_error("npr-train", str(error))
    for reason in skipped:
        print(f"npr-train: skipping {printable(reason)}", file=sys.stderr)
    for note in one_label:
        print(f"npr-train: {printable(note)}", file=sys.stderr)
    missing = one_label_note(train_root, train_samples)
    if missing:  # a misspelt 1_fake would train a detector that has never seen a fake
        usage_error("npr-train", f"{missing}; training needs both")
    missing = one_label_note(val_root, val_samples) if val_samples else None
    if missing:
        usage_error("npr-train", f"{missing}; validation needs both (--val-split '' trains without it)")
    if val_root and val_samples is None:
        print(f"npr-train: {printable(val_root)} not found: training without validation", file=sys.stderr)
    return train_samples, val_samples


def main(argv=None):
    args = parse_args(argv)
    config = config_from(args)
    try:
        config.validate()  # every setting, before any data is read
    except ConfigError as error:
        usage_error("npr-train", flag(error))
    train_samples, val_samples = read_splits(args)
    try:
        train(config, train_samples, val_samples)
    except ConfigError as error:
        usage_error("npr-train", flag(error))
    except (CheckpointError, FileNotFoundError) as error:  # --resume
        usage_error("npr-train", str(error))
    except UnusableData as error:  # each process names its own skipped files
        print(f"npr-train: {printable(str(error))}", file=sys.stderr)
        raise SystemExit(1) from None
    except (CheckpointWriteError, Diverged) as error:
        say_once(f"npr-train: {printable(str(error))}")
        raise SystemExit(1) from None
    except Interrupted as stop:
        say_once(f"npr-train: {stop}")
        raise SystemExit(128 + stop.signum) from None  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


def say_once(line: str):
    """A failure every process of a torchrun run meets alike is said by the main one alone."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
