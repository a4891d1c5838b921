"""Running the detector over a loader of :mod:`npr_cuda.detector.data` batches."""

import time
from dataclasses import dataclass, field
from typing import Callable, List

from torch import Tensor

from .data import DEFAULT_MAX_PIXELS, Failure
from .progress import progress_bar


@dataclass
class Predictions:
    paths: List[str] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    probs: List[float] = field(default_factory=list)  # probability of fake: sigmoid(logit)
    failures: List[Failure] = field(default_factory=list)
    seconds: float = 0.0


def fake_probabilities(detector: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """P(fake) = sigmoid(logit) for each image of a batch, as float32 (N,)."""
    return detector(images).float().sigmoid().flatten()


def predict(
    detector: Callable[[Tensor], Tensor],
    loader,
    desc: str = "predict",
    progress: bool = True,
    max_batch_pixels: int = DEFAULT_MAX_PIXELS,
) -> Predictions:
    """Probabilities of fake for every image the loader yields. `detector` takes a batch on the
    CPU to logits: a :class:`~npr_cuda.detector.speed.FastDetector`. A forward pass sees at
    most ``max_batch_pixels`` pixels (or one image), which bounds the memory of native-size
    inference on large images; the protocols' batches stay whole."""
    out = Predictions()
    start = time.perf_counter()
    for batch in progress_bar(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        out.failures += batch.failures
        for images, labels, paths in batch.groups:
            per_pass = max(1, max_batch_pixels // (images.shape[-2] * images.shape[-1]))
            for chunk in images.split(per_pass):
                out.probs += fake_probabilities(detector, chunk).tolist()  # tolist waits for the device
            out.labels += labels.tolist()
            out.paths += paths
    out.seconds = time.perf_counter() - start
    return out
