"""What the command-line tools share: the parser, the common arguments and their checks, device
resolution, printing paths safely, and the list of skipped files.

Exit status: 0 done, 1 the run failed (nothing readable, an error while running), 2 a bad
argument (a value out of range, a missing or unreadable file), 130 / 143 stopped by Ctrl-C /
SIGTERM (npr-train, after saving).
"""

import argparse
import os
import sys

import torch

from ..detector.data import DEFAULT_MAX_PIXELS
from ..detector.model import NPR_IMPLEMENTATIONS
from ..detector.speed import (
    AMP_CHOICES,
    COMPILE_CHOICES,
    COMPILE_MIN_IMAGES,
    SpeedOptionError,
    SpeedOptions,
    fast_detector,
)
from ..output_paths import file_problem
from .argument_types import int_pair, non_negative_int, positive_int

USAGE_ERROR = 2

# On a CPU the model's threads use every core, and decoding costs a tenth of the model's time or
# less: a second worker only takes cores from the model (2 cores, compiled npr-eval: 41 images/s
# with 1 worker, 33 with 2).
CORES_PER_CPU_WORKER = 8


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the tool's docstring's first paragraph, the rest its epilog."""
    description, _, epilog = doc.partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


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
            default=None,
            help=f"data loading processes (default: on a GPU, one per core up to {max_workers}; on a CPU, one "
            f"per {CORES_PER_CPU_WORKER} cores, at least 1)",
        )
        parser.set_defaults(max_workers=max_workers)
        parser.add_argument(
            "--max-pixels",
            type=positive_int,
            default=DEFAULT_MAX_PIXELS,
            help=f"skip images with more pixels (default {DEFAULT_MAX_PIXELS}, 4096x4096): decompression bombs, "
            "and the memory of native-size inference, a few hundred bytes a pixel",
        )


def default_workers(device: torch.device, max_workers: int = 8) -> int:
    """Data loading processes for a run on `device` when --workers is not given."""
    cores = os.cpu_count() or 1
    if device.type == "cpu":
        return max(1, cores // CORES_PER_CPU_WORKER)
    return min(max_workers, cores)


def data_workers(args, device: torch.device) -> int:
    """--workers, or its default for `device`."""
    return args.workers if args.workers is not None else default_workers(device, args.max_workers)


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


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """--compile, --amp and --cuda-graphs of the inference tools (npr_cuda.detector.speed)."""
    parser.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help=f"torch.compile the model: auto (default) compiles on a CPU for {COMPILE_MIN_IMAGES} images or more; "
        "compiling costs seconds per image size, and keeps the numbers",
    )
    parser.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default="off",
        help="bf16 autocast: faster where bfloat16 is, but changes the logits (4e-3 in bench/RESULTS.md)",
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="replay the compiled model as CUDA graphs (GPU, one image size: resize)",
    )


def build_fast_detector(prog: str, model, device, args, images: int, fixed_size: bool):
    """The FastDetector that the speed arguments ask for (exit 2 for a combination that cannot
    work); says what it runs on stderr unless --quiet."""
    options = SpeedOptions(compile=args.compile, amp=args.amp, cuda_graphs=args.cuda_graphs)
    try:
        detector = fast_detector(model, device, options, images, fixed_size)
    except SpeedOptionError as error:
        usage_error(prog, str(error))
    if not getattr(args, "quiet", False):
        print(f"{prog}: {images} images on {device}; model: {detector.description}", file=sys.stderr)
    return detector


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


def check_output_file(prog: str, flag: str, path: str) -> None:
    """Exit 2, in one line, when no file can be written at `path` (a folder there, its folder
    missing or not writable): called before any work, so that no run fails at its end."""
    problem = file_problem(path)
    if problem:
        usage_error(prog, f"{flag} {path}: {problem}")


def nothing_read(prog: str, failures) -> None:
    """The end of a run that could read none of its images: the list of them, one line, exit 1."""
    report_failures(failures)
    print(f"{prog}: none of the {len(failures)} images could be read", file=sys.stderr)
    raise SystemExit(1)


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
