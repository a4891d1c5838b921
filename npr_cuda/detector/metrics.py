"""The official validation metrics (validate.py): a prediction is "fake" when
sigmoid(logit) > 0.5; accuracy overall and on the real-only and fake-only subsets, and average
precision (scikit-learn's ``average_precision_score``, fake as the positive class)."""

import math
from typing import Dict, Sequence

import numpy as np
from sklearn.metrics import average_precision_score

THRESHOLD = 0.5


def binary_metrics(labels: Sequence[int], probs: Sequence[float]) -> Dict[str, float]:
    """``{'n', 'acc', 'ap', 'real_acc', 'fake_acc'}`` for labels (0 real, 1 fake) and
    probabilities of fake. A subset that is absent gives NaN (AP needs both classes)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.shape != probs.shape or labels.ndim != 1:
        raise ValueError(f"binary_metrics: labels {labels.shape} and probs {probs.shape} must be equal-length vectors")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("binary_metrics: labels must be 0 (real) or 1 (fake)")
    fake_predicted = probs > THRESHOLD
    correct = fake_predicted == (labels == 1)

    def mean(mask):
        return float(correct[mask].mean()) if mask.any() else math.nan

    both = (labels == 0).any() and (labels == 1).any()
    return {
        "n": int(labels.size),
        "acc": mean(np.ones_like(correct)),
        "ap": float(average_precision_score(labels, probs)) if both else math.nan,
        "real_acc": mean(labels == 0),
        "fake_acc": mean(labels == 1),
    }
