"""What the command-line tools share: the parser, the common arguments, device resolution and
the list of skipped files."""

import argparse
import os
import sys
from typing import Optional

import torch

from ..detector.model import NPR_IMPLEMENTATIONS


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the tool's docstring's first paragraph, the rest its epilog."""
    description, _, epilog = doc.partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_common_arguments(
    parser: argparse.ArgumentParser, batch_size: int, batch_help: str, max_workers: Optional[int] = 8
) -> None:
    """--device, --npr, --batch-size and --workers, with the tool's own defaults."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available; default)")
    parser.add_argument(
        "--npr",
        choices=sorted(NPR_IMPLEMENTATIONS),
        default="npr_cuda",
        help="NPR implementation inside the model: the fused op (default) or the official formula",
    )
    parser.add_argument("--batch-size", type=int, default=batch_size, help=batch_help)
    if max_workers is not None:
        parser.add_argument(
            "--workers", type=int, default=min(max_workers, os.cpu_count() or 1), help="data loading processes"
        )


def resolve_device(name: str, prog: str) -> torch.device:
    """The torch.device that --device NAME means; exits with a message when it is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        sys.exit(f"{prog}: --device {name}: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"{prog}: --device {name}: no CUDA GPU is visible")
    return device


def report_failures(failures, stream=None) -> None:
    """Lists the images that were skipped, at the end of a run (on stderr by default)."""
    stream = stream or sys.stderr
    if failures:
        print(f"skipped {len(failures)} unreadable image(s):", file=stream)
        for failure in failures:
            print(f"  {failure.path}: {failure.reason}", file=stream)
