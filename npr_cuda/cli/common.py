"""Arguments and helpers shared by the command-line tools."""

import argparse
import sys

import torch

from ..reference import official_npr
from ..ops import npr

NPR_IMPLEMENTATIONS = {"npr_cuda": npr, "official": official_npr}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available; default)")
    parser.add_argument("--npr", choices=sorted(NPR_IMPLEMENTATIONS), default="npr_cuda",
                        help="NPR implementation inside the model: the fused op (default) or the official formula")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {name}: no CUDA GPU is visible")
    return device


def report_failures(failures, stream=None) -> None:
    """Lists the images that were skipped, at the end of a run (on stderr by default)."""
    stream = stream or sys.stderr
    if failures:
        print(f"skipped {len(failures)} unreadable image(s):", file=stream)
        for failure in failures:
            print(f"  {failure.path}: {failure.reason}", file=stream)
