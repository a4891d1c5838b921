"""Pure-PyTorch NPR, for tests and as a fallback that runs wherever torch runs.

- :func:`official_npr` is the official code's formula, verbatim: 4-D input, even H and W, the
  2x2 window anchored at its top-left pixel.
- :func:`npr_reference` is the element rule for any rank >= 2, any H, W, window and anchor:
  ``x[..., h, w] - x[..., A(h, H, lh, r), A(w, W, lw, c)]``, ``A(i, n, l, o) = min(l * (i // l) + o, n - 1)``.
- :func:`author_padding_npr` and :func:`author_unfold_npr` are the two recipes the paper's author
  gave for other windows and anchors (official repository, issue #24), written as described;
  :func:`formula_npr` picks the official formula or the first, by window.
"""

from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Window = Union[int, Tuple[int, int]]


def official_npr(x: Tensor) -> Tensor:
    """``x - up(down(x))`` with nearest down-sampling by 2 and nearest up-sampling by 2, exactly
    as in the official NPR repository (networks/resnet.py). ``x`` is (N, C, H, W)."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2, mode="nearest", recompute_scale_factor=True)


def window_pair(value: Window) -> Tuple[int, int]:
    """A window (or anchor) as (rows, columns): an int n is (n, n)."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def anchor_indices(n: int, size: int, offset: int, device=None) -> Tensor:
    """A(i, n, l, o) = min(l * (i // l) + o, n - 1) for i in range(n), window l = size, o = offset."""
    i = torch.arange(n, device=device)
    return torch.clamp(size * torch.div(i, size, rounding_mode="floor") + offset, max=n - 1)


def npr_reference(x: Tensor, window: Window = 2, anchor: Tuple[int, int] = (0, 0)) -> Tensor:
    """The element rule (module doc) for any tensor of rank >= 2, by gathering the anchors."""
    if x.dim() < 2:
        raise ValueError(
            f"npr_reference: expected a tensor with at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}"
        )
    (lh, lw), (r, c) = window_pair(window), anchor
    height, width = x.shape[-2:]
    rows = anchor_indices(height, lh, r, x.device)
    cols = anchor_indices(width, lw, c, x.device)
    return x - x.index_select(-2, rows).index_select(-1, cols)


def author_padding_npr(x: Tensor, window: Window = 2, anchor: Tuple[int, int] = (0, 0)) -> Tensor:
    """The author's first recipe: drop the first r rows and c columns, pad the end by repeating
    the last row and column up to a multiple of the window (enough to cover H and W again),
    nearest-down-sample by the window, nearest-up-sample by it, crop to H x W, subtract. Any
    rank >= 2 and size."""
    (lh, lw), (r, c) = window_pair(window), anchor
    height, width = x.shape[-2:]
    planes = x.reshape(-1, 1, height, width)
    # An anchor beyond a small image's last row or column leaves nothing to drop down to: keep
    # that last one (every window's anchor is then clamped to it, as the rule says).
    shifted = planes[..., min(r, height - 1) :, min(c, width - 1) :]
    padded_h, padded_w = -(-height // lh) * lh, -(-width // lw) * lw  # multiples of the window, >= H, W
    padded = F.pad(shifted, (0, padded_w - shifted.shape[-1], 0, padded_h - shifted.shape[-2]), mode="replicate")
    down = F.interpolate(padded, size=(padded_h // lh, padded_w // lw), mode="nearest")
    up = F.interpolate(down, size=(padded_h, padded_w), mode="nearest")
    return (planes - up[..., :height, :width]).reshape(x.shape)


def formula_npr(x: Tensor, window: Window = 2, anchor: Tuple[int, int] = (0, 0)) -> Tensor:
    """NPR by the published formulas: the official one for the default window (2, anchor
    (0, 0)), the author's padding formula for any other."""
    if window_pair(window) == (2, 2) and tuple(anchor) == (0, 0):
        return official_npr(x)
    return author_padding_npr(x, window, anchor)


def author_unfold_npr(x: Tensor, window: int, j: int) -> Tensor:
    """The author's second recipe, where the window l divides H and W: cut (N, C, H, W) into
    non-overlapping l x l windows, subtract element j of each (row-major) from all l * l, and
    stack the l * l slices on the channel axis: (N, C * l * l, H / l, W / l), the layout of
    ``F.pixel_unshuffle`` (it equals ``F.pixel_unshuffle(npr(x, l, (j // l, j % l)), l)``)."""
    slices = F.pixel_unshuffle(x, window)  # channel c * l * l + k holds element k of each window
    n, channels, height, width = slices.shape
    grouped = slices.reshape(n, channels // (window * window), window * window, height, width)
    return (grouped - grouped[:, :, j : j + 1]).reshape(slices.shape)
