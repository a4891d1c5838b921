"""Running the detector over a loader of :mod:`npr_cuda.detector.data` batches."""

import time
from dataclasses import dataclass, field
from typing import List

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .data import Failure


@dataclass
class Predictions:
    paths: List[str] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    probs: List[float] = field(default_factory=list)  # probability of fake: sigmoid(logit)
    failures: List[Failure] = field(default_factory=list)
    seconds: float = 0.0


def fake_probabilities(model: nn.Module, images: Tensor) -> Tensor:
    """P(fake) = sigmoid(logit) for each image of a batch, as float32 (N,)."""
    return model(images).float().sigmoid().flatten()


def predict(model, loader, device, desc: str = "predict", progress: bool = True) -> Predictions:
    """Probabilities of fake for every image the loader yields (model in eval mode, no grad)."""
    model.eval()
    out = Predictions()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            out.failures += batch.failures
            for images, labels, paths in batch.groups:
                images = images.to(device, non_blocking=True)
                out.probs += fake_probabilities(model, images).tolist()
                out.labels += labels.tolist()
                out.paths += paths
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    out.seconds = time.perf_counter() - start
    return out
