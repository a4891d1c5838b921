"""The settings of a training run (:class:`TrainConfig`, the official recipe by default) and
their checks, made before the first step so that no run dies at the end of an epoch on a bad one."""

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..output_paths import folder_problem
from . import genimage
from .data import DEFAULT_MAX_PIXELS
from .model import DEFAULT_ANCHOR, DEFAULT_WINDOW, NPR_IMPLEMENTATIONS
from .speed import COMPILE_CHOICES

MAX_SEED = 2**63 - 1  # torch.manual_seed's and numpy's SeedSequence's common range, from 0
# The least crop at which one image still leaves BatchNorm more than one value per channel in
# the deepest layer (three stride-2 stages: 16 -> 8 -> 4 -> 2x2); a batch may hold one image.
MIN_CROP_SIZE = 16
# The transforms of a run: the default recipe's (Resize 256) or the GenImage recipe's (tiles).
RECIPES = ("ForenSynths", genimage.RECIPE)
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """The settings of a training run; the defaults are the official recipe."""

    output: str  # folder for last.pth and log.jsonl
    batch_size: int = 32  # global: split evenly over the processes
    lr: float = 2e-4
    beta1: float = 0.9
    niter: int = 50  # epochs
    delr_freq: int = 10  # lr x0.9 at the end of epochs N+1, 2N+1, ... (counted from 1), as official
    seed: int = 100  # 0 to MAX_SEED
    workers: int = 0
    load_size: int = 256
    crop_size: int = 224
    flip: bool = True
    blur_prob: float = 0.0
    blur_sigma: Tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: Tuple[int, int] = (30, 100)
    amp: str = "off"  # off, bf16 or fp16
    channels_last: bool = True  # oneDNN's and cuDNN's fastest layout (bench/RESULTS.md: training steps)
    compile: str = "auto"  # torch.compile the training step: auto, on, off (see speed.py)
    save_every: int = 1000  # also checkpoint every this many steps (0: epochs only)
    resume: Optional[str] = None  # a checkpoint to continue from
    device: str = "cpu"
    npr: str = "npr_cuda"  # a key of NPR_IMPLEMENTATIONS
    npr_window: Tuple[int, int] = DEFAULT_WINDOW  # NPR's window and anchor (the paper's ablation)
    npr_anchor: Tuple[int, int] = DEFAULT_ANCHOR
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS  # larger images are skipped
    progress: bool = True
    # The train and validation transforms, one of RECIPES; the GenImage recipe's seed and epochs
    # (genimage.SEED, genimage.EPOCHS) are the caller's to set, as npr-train --recipe does.
    recipe: str = "ForenSynths"

    def validate(self) -> None:
        """ConfigError naming the first setting that cannot work: everything is checked before
        the first step, so that no run dies at the end of an epoch on a bad setting."""

        def require(ok, field_name, expected):
            if not ok:
                raise ConfigError(field_name, f"expected {expected}, got {getattr(self, field_name)!r}")

        def finite(value):
            return isinstance(value, (int, float)) and math.isfinite(value)

        problem = folder_problem(self.output)
        require(problem is None, "output", f"a folder it can write to ({self.output} {problem})")
        require(isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED, "seed", f"an integer from 0 to {MAX_SEED}")
        require(self.batch_size >= 1, "batch_size", "at least 1")
        require(finite(self.lr) and self.lr > 0, "lr", "a finite number above 0")
        require(finite(self.beta1) and 0 <= self.beta1 < 1, "beta1", "a number in [0, 1)")
        require(self.niter >= 1, "niter", "at least 1 epoch")
        require(self.delr_freq >= 1, "delr_freq", "at least 1")
        require(self.workers >= 0, "workers", "0 or more")
        require(self.crop_size >= MIN_CROP_SIZE, "crop_size", f"at least {MIN_CROP_SIZE} (for a batch of one image)")
        require(  # the GenImage recipe tiles instead of resizing: no load_size
            self.recipe == genimage.RECIPE or self.load_size >= self.crop_size,
            "load_size",
            f"at least crop_size ({self.crop_size})",
        )
        require(0 <= self.blur_prob <= 1, "blur_prob", "a probability in [0, 1]")
        require(0 <= self.jpeg_prob <= 1, "jpeg_prob", "a probability in [0, 1]")
        require(0 <= self.blur_sigma[0] <= self.blur_sigma[1], "blur_sigma", "0 <= LOW <= HIGH")
        require(1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100, "jpeg_quality", "1 <= LOW <= HIGH <= 100")
        require(self.save_every >= 0, "save_every", "0 or more")
        require(self.max_pixels is None or self.max_pixels >= 1, "max_pixels", "at least 1")
        require(self.amp in AMP_DTYPES, "amp", f"one of {sorted(AMP_DTYPES)}")
        require(self.compile in COMPILE_CHOICES, "compile", f"one of {COMPILE_CHOICES}")
        require(self.npr in NPR_IMPLEMENTATIONS, "npr", f"one of {sorted(NPR_IMPLEMENTATIONS)}")
        require(len(self.npr_window) == 2 and min(self.npr_window) >= 1, "npr_window", "rows, columns >= 1")
        require(
            len(self.npr_anchor) == 2 and all(0 <= a < w for a, w in zip(self.npr_anchor, self.npr_window)),
            "npr_anchor",
            f"row, column inside the window {tuple(self.npr_window)}",
        )
        require(torch.device(self.device).type != "cuda" or torch.cuda.is_available(), "device", "a visible GPU")
        require(self.recipe in RECIPES, "recipe", f"one of {RECIPES}")
        tiles = self.recipe == genimage.RECIPE
        for name in ("blur_prob", "jpeg_prob"):  # the GenImage transform has no such step
            require(not tiles or getattr(self, name) == 0, name, f"0 with the {genimage.RECIPE} recipe")


class ConfigError(ValueError):
    """A TrainConfig setting that cannot work; `field` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
