"""The official validation metrics (validate.py): a prediction is "fake" when
sigmoid(logit) > 0.5; accuracy overall and on the real-only and fake-only subsets, and average
precision (scikit-learn's ``average_precision_score``, fake as the positive class)."""

import math
import warnings
from typing import Any, Dict, Sequence

import numpy as np
from sklearn.metrics import average_precision_score

THRESHOLD = 0.5
CLASSES = {(True, True): "both", (True, False): "real only", (False, True): "fake only", (False, False): "none"}


def binary_metrics(labels: Sequence[int], probs: Sequence[float]) -> Dict[str, Any]:
    """``{'n', 'acc', 'ap', 'real_acc', 'fake_acc', 'classes'}`` for labels (0 real, 1 fake) and
    probabilities of fake; ``classes`` says which labels are there: 'both', 'real only', 'fake
    only' or 'none'.

    With one class only, AP is what validate.py's scikit-learn call gives: 1.0 for fakes only,
    0.0 for reals only (test.py averages it into its mean); the absent subset's accuracy is NaN.
    A NaN probability (a diverged model) counts as "not fake" (NaN > 0.5 is false) and makes AP
    NaN, where scikit-learn would raise."""
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

    classes = CLASSES[bool((labels == 0).any()), bool((labels == 1).any())]
    return {
        "n": int(labels.size),
        "acc": mean(np.ones_like(correct)),
        "ap": average_precision(labels, probs) if classes != "none" else math.nan,
        "real_acc": mean(labels == 0),
        "fake_acc": mean(labels == 1),
        "classes": classes,
    }


def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """scikit-learn's average precision; NaN where a probability is NaN. The warning it gives for
    reals only (no positive class, AP 0.0) is expected here: the caller reports the classes."""
    if np.isnan(probs).any():
        return math.nan
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No positive class found in y_true")
        return float(average_precision_score(labels, probs))


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None, in dicts, lists and tuples:
    ``json.dumps`` would write NaN and Infinity, which strict JSON parsers reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
