"""What the command-line tools share: the parser, the common arguments and their checks, device
resolution, printing paths safely, and the list of skipped files.

Exit status: 0 done, 1 the run failed (nothing readable, an error while running), 2 a bad
argument (a value out of range, a missing or unreadable file), 130 / 143 stopped by Ctrl-C /
SIGTERM (npr-train, after saving).
"""

import argparse
import math
import os
import sys

import torch

from ..detector.data import DEFAULT_MAX_PIXELS
from ..detector.model import NPR_IMPLEMENTATIONS

USAGE_ERROR = 2


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the tool's docstring's first paragraph, the rest its epilog."""
    description, _, epilog = doc.partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def number(kind, low=None, low_inclusive=True, high=None):
    """An argparse type: a finite `kind` (int or float) within [low or (low, high]."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value < low or (value == low and not low_inclusive)):
            bound = "at least" if low_inclusive else "more than"
            raise argparse.ArgumentTypeError(f"expected {bound} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected at most {high}, got {text}")
        return value

    return parse


positive_int = number(int, 1)
non_negative_int = number(int, 0)
positive_float = number(float, 0, low_inclusive=False)
probability = number(float, 0, high=1)


def add_common_arguments(
    parser: argparse.ArgumentParser, batch_size: int, batch_help: str, max_workers: int = 8, image_files: bool = True
) -> None:
    """--device, --npr and --batch-size; for tools that read image files also --workers and
    --max-pixels; with the tool's own defaults."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available; default)")
    parser.add_argument(
        "--npr",
        choices=sorted(NPR_IMPLEMENTATIONS),
        default="npr_cuda",
        help="NPR implementation inside the model: the fused op (default) or the official formula",
    )
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help=batch_help)
    if image_files:
        parser.add_argument(
            "--workers",
            type=non_negative_int,
            default=min(max_workers, os.cpu_count() or 1),
            help="data loading processes",
        )
        parser.add_argument(
            "--max-pixels",
            type=positive_int,
            default=DEFAULT_MAX_PIXELS,
            help=f"skip images with more pixels (default {DEFAULT_MAX_PIXELS}, 4096x4096): decompression bombs, "
            "and the memory of native-size inference, a few hundred bytes a pixel",
        )


def int_pair(text):
    """An argparse type: N (meaning N,N) or A,B, non-negative integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected N or A,B (integers >= 0), got {text!r}")
    return values * 2 if len(values) == 1 else values


def add_window_arguments(parser: argparse.ArgumentParser, training: bool) -> None:
    """--npr-window and --npr-anchor: set them for training (defaults: the paper's 2 and 0,0);
    for a trained model the checkpoint records them, and a value given must agree with it."""
    note = "" if training else "; default: what the checkpoint records (given, it must agree)"
    parser.add_argument(
        "--npr-window",
        type=int_pair,
        default=(2, 2) if training else None,
        metavar="L or LH,LW",
        help="NPR window size (the paper's l)" + (" (default 2)" if training else note),
    )
    parser.add_argument(
        "--npr-anchor",
        type=int_pair,
        default=(0, 0) if training else None,
        metavar="R,C",
        help="anchor pixel in the window; the paper's index j of an l x l window is j // l, j %% l"
        + (" (default 0,0)" if training else note),
    )


def resolve_device(name: str, prog: str) -> torch.device:
    """The torch.device that --device NAME means; exits with a message when it is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        usage_error(prog, f"--device {name}: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        usage_error(prog, f"--device {name}: no CUDA GPU is visible")
    return device


def usage_error(prog: str, message: str):
    """One line on stderr naming the tool, exit status 2."""
    print(f"{prog}: {printable(message)}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def printable(text: str) -> str:
    """`text` safe for any output encoding: a file name that is not valid UTF-8 (its bytes kept
    as surrogates by Python) is printed with those bytes escaped, never an encoding error."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def report_failures(failures, stream=None) -> None:
    """Lists the images that were skipped, at the end of a run (on stderr by default)."""
    stream = stream or sys.stderr
    if failures:
        print(f"skipped {len(failures)} image(s):", file=stream)
        for failure in failures:
            print(f"  {printable(failure.path)}: {printable(failure.reason)}", file=stream)
