"""Pure-PyTorch NPR, for tests and as a fallback that runs wherever torch runs.

- :func:`official_npr` is the official code's formula, verbatim: 4-D input, even H and W.
- :func:`npr_reference` is the same element rule for any rank >= 2 and any H, W: where H or W is
  odd, the trailing partial block uses its own top-left pixel (the official formula raises
  there; the official README's alternative is to crop the last row/column first).
"""

import torch.nn.functional as F
from torch import Tensor


def official_npr(x: Tensor) -> Tensor:
    """``x - up(down(x))`` with nearest down-sampling by 2 and nearest up-sampling by 2, exactly
    as in the official NPR repository (networks/resnet.py). ``x`` is (N, C, H, W)."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2, mode="nearest", recompute_scale_factor=True)


def npr_reference(x: Tensor) -> Tensor:
    """``x[..., h, w] - x[..., 2*(h//2), 2*(w//2)]`` for any tensor of rank >= 2."""
    if x.dim() < 2:
        raise ValueError(
            f"npr_reference: expected a tensor with at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}"
        )
    height, width = x.shape[-2:]
    anchors = x[..., ::2, ::2]
    spread = anchors.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return x - spread[..., :height, :width]
