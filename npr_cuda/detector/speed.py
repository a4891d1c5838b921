"""Running the detector fast: what the tools do to the model, and which of it changes the numbers.

Always (the numbers stay those of the official model: per-image probabilities equal within 1e-6
on the tests' data; an image within about that of the 0.5 threshold may change sides):

- batch norms folded into the convolutions before them (inference only): the eval-mode scale and
  shift are applied to the weights once instead of to every activation;
- channels_last (NHWC) weights and inputs: oneDNN's and cuDNN's fastest convolution layout;
- ``torch.inference_mode()``.

On request or by the ``auto`` rule (the numbers stay equal within 1e-5):

- ``torch.compile`` (inductor, weights frozen and prepacked for inference). It costs seconds per
  image size before the first batch, so ``auto`` compiles on a CPU for runs of at least
  :data:`COMPILE_MIN_IMAGES` images and for training runs of at least
  :data:`COMPILE_MIN_TRAIN_STEPS` steps (the compilation costs, and the compiled speeds, behind
  them: bench/RESULTS.md, "The tools end to end against the official code"), and not
  on a GPU, where its gain is unmeasured: ``on`` asks for it. The batch dimension is compiled
  dynamic, so a last, smaller batch does not compile again; images of many sizes compile at most
  a few graphs (dynamo makes the sizes dynamic after the second).
  If compilation fails (no C++ compiler, say), one message, and the run goes on uncompiled.

Only on request: bf16 autocast (``amp``), because it changes the numbers; CUDA graphs, because
they need a GPU and one image size (each new shape records a graph), and are unmeasured here.
"""

import copy
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .model import NPRResNet

COMPILE_CHOICES = ("auto", "on", "off")
AMP_CHOICES = ("off", "bf16")
COMPILE_MIN_IMAGES = 2000
COMPILE_MIN_TRAIN_STEPS = 200
COMPILE_ERRORS = (torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError)


class SpeedOptionError(ValueError):
    """A combination of speed options that cannot work (CUDA graphs on a CPU, say)."""


@dataclass(frozen=True)
class SpeedOptions:
    """How the detector is run for inference; the defaults keep the official numbers."""

    compile: str = "auto"  # auto, on or off
    amp: str = "off"  # off or bf16: changes the numbers
    cuda_graphs: bool = False  # GPU and one image size only: changes nothing but the launch cost

    def check(self, device: torch.device, fixed_size: bool) -> None:
        """SpeedOptionError for a setting or combination that cannot work on `device`; `fixed_size`:
        whether every image reaches the model at one size (a resizing protocol)."""
        if self.compile not in COMPILE_CHOICES:
            raise SpeedOptionError(f"compile: expected one of {COMPILE_CHOICES}, got {self.compile!r}")
        if self.amp not in AMP_CHOICES:
            raise SpeedOptionError(f"amp: expected one of {AMP_CHOICES}, got {self.amp!r}")
        if self.cuda_graphs:
            if device.type != "cuda":
                raise SpeedOptionError(f"CUDA graphs need a CUDA device, not {device}")
            if not fixed_size:
                raise SpeedOptionError(
                    "CUDA graphs need one image size (a graph is recorded per shape): resize the images"
                )
            if self.compile == "off":
                raise SpeedOptionError("CUDA graphs are recorded by torch.compile: they need compile auto or on")

    def compiles(self, device: torch.device, images: int) -> bool:
        """Whether inference over `images` images on `device` is compiled."""
        return self.cuda_graphs or auto_compiles(self.compile, device, images >= COMPILE_MIN_IMAGES)


def auto_compiles(choice: str, device: torch.device, long_run: bool) -> bool:
    """`choice` (auto, on, off) resolved: auto compiles long runs on a CPU."""
    return choice == "on" or (choice == "auto" and device.type == "cpu" and long_run)


def fold_batch_norms(model: NPRResNet) -> NPRResNet:
    """A copy of `model` for inference whose batch norms are folded into the convolutions before
    them (and replaced by identities). `model` itself is left as it is."""
    folded = copy.deepcopy(model).eval()

    def fold(parent: nn.Module, conv: str, norm: str) -> None:
        setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, norm)))
        setattr(parent, norm, nn.Identity())

    fold(folded, "conv1", "bn1")
    for layer in (folded.layer1, folded.layer2):
        for block in layer:
            for i in (1, 2, 3):
                fold(block, f"conv{i}", f"bn{i}")
            if block.downsample is not None:
                fold(block.downsample, "0", "1")
    return folded


class Compiled:
    """``torch.compile(module, **settings)`` that falls back to `module` itself, with one message
    on stderr, when compilation fails; `compiled` says which is running."""

    def __init__(self, module: Callable[..., Tensor], **settings):
        self.module = module
        self.compiled = torch.compile(module, **settings)

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except COMPILE_ERRORS as error:
                reason = str(error).strip().splitlines()[0][:200]
                print(f"npr-cuda: torch.compile failed ({reason}); running uncompiled", file=sys.stderr)
                self.compiled = None
        return self.module(*args)


class FastDetector:
    """The detector prepared for inference with `options` (see the module doc): call it on a batch
    of ImageNet-normalised images, on any device, in any layout, for logits (N, 1) as float32.
    `description` says what it does, for the progress output."""

    def __init__(self, model: NPRResNet, device: torch.device, options: SpeedOptions, compile_model: bool):
        self.device = torch.device(device)
        self.model = fold_batch_norms(model).to(self.device, memory_format=torch.channels_last)
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16}[options.amp]
        self.run: Callable[[Tensor], Tensor] = self.model
        steps = ["batch norms folded", "channels_last"]
        if compile_model:
            # triton.cudagraphs is what mode="reduce-overhead" sets (mode and options exclude each other).
            self.run = Compiled(self.model, options={"freezing": True, "triton.cudagraphs": options.cuda_graphs})
            steps.append("torch.compile (the first batch of each size compiles: seconds)")
            steps += ["CUDA graphs"] if options.cuda_graphs else []
        steps += [f"{options.amp} autocast"] if self.amp_dtype is not None else []
        self.description = ", ".join(steps)

    def __call__(self, images: Tensor) -> Tensor:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if isinstance(self.run, Compiled):
            torch._dynamo.maybe_mark_dynamic(images, 0)  # one graph for every batch size
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None),
        ):
            return self.run(images).float()


def fast_detector(
    model: NPRResNet, device: torch.device, options: Optional[SpeedOptions] = None, images: int = 0, fixed_size=True
) -> FastDetector:
    """`model` prepared for inference over `images` images on `device` (SpeedOptionError for a
    combination that cannot work there)."""
    options = options or SpeedOptions()
    device = torch.device(device)
    options.check(device, fixed_size)
    return FastDetector(model, device, options, options.compiles(device, images))
