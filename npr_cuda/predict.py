"""Running the detector over a loader of :mod:`npr_cuda.data` batches."""

import time
from dataclasses import dataclass, field
from typing import List

import torch
from tqdm import tqdm

from .data import Failure


@dataclass
class Predictions:
    paths: List[str] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    probs: List[float] = field(default_factory=list)  # probability of fake: sigmoid(logit)
    failures: List[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.probs) / self.seconds if self.seconds > 0 else float("nan")


def predict(model, loader, device, desc: str = "predict", progress: bool = True,
            channels_last: bool = False) -> Predictions:
    """Probabilities of fake for every image the loader yields (model in eval mode, no grad)."""
    model.eval()
    out = Predictions()
    start = time.perf_counter()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            out.failures += batch.failures
            for images, labels, paths in batch.groups:
                images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                out.probs += model(images).float().sigmoid().flatten().tolist()
                out.labels += labels.tolist()
                out.paths += paths
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    out.seconds = time.perf_counter() - start
    return out
