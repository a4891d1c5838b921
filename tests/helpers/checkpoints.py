"""Detector checkpoints with random weights, for the tools' tests."""

import torch

from npr_cuda.detector import npr_resnet50


def write_random_detector(path, window=2, anchor=(0, 0), seed=0, fc1_std=5.0):
    """A checkpoint of an npr_resnet50 with random weights and a non-trivial fc1, so that the
    probabilities spread out (a smaller `fc1_std` keeps them off 0 and 1, where they are least
    sensitive to the logits); the window and anchor recorded as npr-train records them."""
    torch.manual_seed(seed)
    model = npr_resnet50(window=window, anchor=anchor)
    with torch.no_grad():
        model.fc1.weight.normal_(0, fc1_std)
    if (window, anchor) == (2, (0, 0)):
        torch.save(model.state_dict(), path)  # a raw state dict, as the released NPR.pth
    else:
        torch.save({"model": model.state_dict(), "config": {"npr_window": window, "npr_anchor": list(anchor)}}, path)
    return str(path)
