"""npr-train: train the NPR detector with the official recipe (see npr_cuda.training).

    npr-train /data/ForenSynths --classes car,cat,chair,horse --output runs/progan
    npr-train /data/ForenSynths --output runs/progan --resume runs/progan/last.pth
    torchrun --nproc_per_node=4 -m npr_cuda.cli.train /data/ForenSynths --output runs/ddp

DATAROOT/<train-split> (and DATAROOT/<val-split>, if present) are in the official layout:
0_real/1_fake, directly or under class folders (--classes picks some). --batch-size is the
global batch, split evenly over the processes torchrun starts. Every epoch appends a JSON line
to OUTPUT/log.jsonl and writes OUTPUT/last.pth, a checkpoint that npr-eval, npr-detect and
--resume read.
"""

import argparse
import os
import sys

from ..data import real_fake_samples
from ..training import train
from .common import NPR_IMPLEMENTATIONS


def pair(kind):
    def parse(text):
        values = [kind(v) for v in text.split(",")]
        if len(values) != 2 or values[0] > values[1]:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
        return tuple(values)
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="npr-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("dataroot")
    parser.add_argument("--output", required=True, help="folder for last.pth and log.jsonl")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val", help="'' for no validation")
    parser.add_argument("--classes", default="", help="comma-separated class folders, e.g. car,cat,chair,horse (default: all)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (default 32)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--niter", type=int, default=50, help="epochs")
    parser.add_argument("--delr-freq", type=int, default=10, help="lr x0.9 after every this many epochs")
    parser.add_argument("--seed", type=int, default=100, help="the official seed_torch(100) by default")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--load-size", type=int, default=256, help="resize to this square first (official 256)")
    parser.add_argument("--crop-size", type=int, default=224, help="then crop this square (official 224)")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--blur-prob", type=float, default=0.0, help="Gaussian blur probability (official: 0)")
    parser.add_argument("--blur-sigma", type=pair(float), default=(0.0, 3.0), metavar="LOW,HIGH")
    parser.add_argument("--jpeg-prob", type=float, default=0.0, help="JPEG re-compression probability (official: 0)")
    parser.add_argument("--jpeg-quality", type=pair(int), default=(30, 100), metavar="LOW,HIGH")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off", help="mixed precision")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--save-every", type=int, default=1000, help="also checkpoint every this many steps (0: epochs only)")
    parser.add_argument("--resume", default=None, help="an npr-train checkpoint (last.pth) to continue from")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--npr", choices=sorted(NPR_IMPLEMENTATIONS), default="npr_cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.npr_impl = NPR_IMPLEMENTATIONS[args.npr]
    return args


def main(argv=None):
    args = parse_args(argv)
    classes = [c for c in args.classes.split(",") if c]
    try:
        train_samples = real_fake_samples(os.path.join(args.dataroot, args.train_split), classes)
        val_root = os.path.join(args.dataroot, args.val_split) if args.val_split else None
        val_samples = real_fake_samples(val_root, classes) if val_root and os.path.isdir(val_root) else None
    except FileNotFoundError as error:
        sys.exit(f"npr-train: {error}")
    if val_root and val_samples is None:
        print(f"npr-train: {val_root} not found: training without validation", file=sys.stderr)
    train(args, train_samples, val_samples)


if __name__ == "__main__":
    main()
