"""Decoding for the detector: PIL (what the tools and the official code use) against
torchvision.io, from file to ImageNet-normalised float tensor, on the same PNG files.

Times, per image and on one thread (a data worker's share), ``load_rgb`` + the native-size
transform against ``torchvision.io.decode_image`` + the same ToTensor/Normalize arithmetic, and
checks that both give the same tensor (PNG is lossless; JPEG decoders may differ).

    python bench/bench_decode.py --images 64 --size 256
"""

import argparse
import statistics
import tempfile
import time

import torch
from bench_detector import write_tree
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import functional as TF

from npr_cuda.detector.data import IMAGENET_MEAN, IMAGENET_STD, PRESETS, eval_transform, list_images, load_rgb


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="side of the PNGs (256: the ForenSynths size)")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the files per decoder (median)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    transform = eval_transform(PRESETS["GANGen-Detection"])  # native size: decoding alone
    decoders = {
        "PIL": lambda path: transform(load_rgb(path)),
        "torchvision.io": lambda path: TF.normalize(
            decode_image(read_file(path), mode=ImageReadMode.RGB).float().div(255), IMAGENET_MEAN, IMAGENET_STD
        ),
    }
    with tempfile.TemporaryDirectory() as root:
        paths = list_images(write_tree(root, args.images, args.size))
        same = all(torch.equal(decoders["PIL"](p), decoders["torchvision.io"](p)) for p in paths)
        times = {name: [] for name in decoders}
        for _ in range(args.repeats):
            for name, decode in decoders.items():
                start = time.perf_counter()
                for path in paths:
                    decode(path)
                times[name].append((time.perf_counter() - start) / len(paths))
    print(f"{args.images} PNGs of {args.size}x{args.size}, one thread; torch {torch.__version__}")
    for name, values in times.items():
        print(f"{name:15} {statistics.median(values) * 1e3:6.2f} ms an image")
    print(f"same tensors: {same}")


if __name__ == "__main__":
    main()
