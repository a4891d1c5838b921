"""npr-demo: the paper's phenomenon, offline, in a few minutes on a CPU.

    npr-demo                                   # train on transposed convolutions, test on all four
    npr-demo --train-family bilinear --figure demo.png

Real images are crops of photographs shipped with scikit-image and scikit-learn; fakes are the
same kind of crops passed through small fixed CNN generators that end in a 2x up-sampler
(nearest, bilinear, transposed convolution, pixel shuffle; see
npr_cuda.detector.synthetic_fakes). The NPR detector
is trained on one family and tested on all four, on crops of photographs it never saw. A PNG
shows real and fake crops beside their NPR maps.
"""

import json
import math
import sys
import time

import torch
from tqdm import tqdm

from ..detector.metrics import binary_metrics
from ..detector.model import NPR_IMPLEMENTATIONS, npr_resnet50
from ..detector.predict import fake_probabilities
from ..detector.synthetic_fakes import FAMILIES, TEST_PHOTOS, TRAIN_PHOTOS, figure, labelled, make_split
from ..detector.training import train_step
from .common import add_common_arguments, new_parser, resolve_device


def parse_args(argv=None):
    parser = new_parser("npr-demo", __doc__)
    parser.add_argument(
        "--train-family",
        choices=FAMILIES,
        default="transposed_conv",
        help="the up-sampler the detector learns (default transposed_conv, as in ProGAN-like generators)",
    )
    parser.add_argument("--crops", type=int, default=40, help="crops per photograph (default 40)")
    parser.add_argument("--size", type=int, default=64, help="crop side (even; default 64)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-4, help="the official 2e-4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="npr_demo.png", help="where to write the PNG ('' for none)")
    parser.add_argument("--json", default=None, help="also write the results here")
    add_common_arguments(parser, batch_size=32, batch_help="default 32", image_files=False)
    args = parser.parse_args(argv)
    if args.size % 2 or args.size < 8:
        parser.error("--size must be even and at least 8")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device, "npr-demo")
    started = time.perf_counter()
    print(
        f"npr-demo: {args.crops} crops of {args.size}x{args.size} from each of {len(TRAIN_PHOTOS)} training and "
        f"{len(TEST_PHOTOS)} test photographs; fakes from {len(FAMILIES)} up-sampler families",
        file=sys.stderr,
    )
    train_split = make_split(TRAIN_PHOTOS, args.crops, args.size, seed=args.seed)
    test_split = make_split(TEST_PHOTOS, args.crops, args.size, seed=args.seed + 1)
    if args.figure:
        figure(test_split, args.figure)
        print(f"npr-demo: wrote {args.figure}", file=sys.stderr)

    torch.manual_seed(args.seed)
    model = npr_resnet50(npr_impl=NPR_IMPLEMENTATIONS[args.npr]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    images, labels = labelled(train_split, [args.train_family])
    steps_per_epoch = math.ceil(len(labels) / args.batch_size)
    order_gen = torch.Generator().manual_seed(args.seed)
    model.train()
    progress = tqdm(
        total=args.epochs * steps_per_epoch, desc=f"train on {args.train_family}", unit="step", file=sys.stderr
    )
    for epoch in range(args.epochs):
        order = torch.randperm(len(labels), generator=order_gen)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            loss = train_step(model, optimizer, images[batch].to(device), labels[batch].to(device))
            progress.update()
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}")
            if epoch == 0 and step == 1:  # the first step warms up; the second is a fair sample
                per_step = progress.format_dict["elapsed"] / 2
                print(
                    f"\nnpr-demo: {args.epochs * steps_per_epoch} training steps, about "
                    f"{per_step * args.epochs * steps_per_epoch:.0f} s",
                    file=sys.stderr,
                )
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
    print(
        f"\nNPR detector trained on {args.train_family} up-sampling, tested on unseen photographs "
        f"({len(test_split['real'])} real and {len(test_split['real'])} fake crops per family):"
    )
    print(f"{'up-sampler':18} {'acc':>6} {'AP':>6} {'real acc':>9} {'fake acc':>9}")
    for row in rows:
        mark = " (trained on)" if row["trained_on"] else ""
        print(
            f"{row['family']:18} {100 * row['acc']:6.1f} {100 * row['ap']:6.1f} {100 * row['real_acc']:9.1f} "
            f"{100 * row['fake_acc']:9.1f}{mark}"
        )
    print(f"({time.perf_counter() - started:.0f} s on {device})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
