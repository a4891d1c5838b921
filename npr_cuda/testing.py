"""What checking the op takes, written once for the tests (tests/helpers) and the GPU checks
(bench/cuda_checks.py): the official formula at any size and its gradient, any window's backward
spelled out, bit-for-bit comparison, inputs with NaN, Inf and signed zeros, and poisoned output
memory. Needs torch only."""

import math

import torch
import torch.nn.functional as F

from npr_cuda.reference import official_npr

# The integer type of each floating element size, to compare bits.
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def official_expected(x):
    """The official formula's values for any rank >= 2 and any H, W: applied per (H, W) plane,
    on x zero-padded to even H and W, then cropped back (the padding only adds blocks' missing
    right/bottom neighbours, which no kept pixel uses as its anchor)."""
    height, width = x.shape[-2:]
    planes = x.reshape(-1, 1, height, width)
    padded = F.pad(planes, (0, width % 2, 0, height % 2))
    return official_npr(padded)[..., :height, :width].reshape(x.shape)


def official_gradient(x, grad):
    """d(official_expected(x) . grad)/dx through autograd, i.e. the official formula's backward."""
    leaf = x.detach().requires_grad_(True)
    (result,) = torch.autograd.grad(official_expected(leaf), leaf, grad)
    return result


def bit_differences(actual, expected):
    """(elements that differ bit for bit, of those how many only in a zero's sign, the first
    differing index or None), on the CPU. NaN counts as equal to NaN wherever both have one:
    NaN payloads are not compared, since ATen's own vectorised and scalar paths give different
    NaN bits."""
    actual, expected = actual.detach().cpu().contiguous(), expected.detach().cpu().contiguous()
    nan = expected.isnan()
    bits = _BITS[expected.element_size()]
    differ = (actual.masked_fill(nan, 0).view(bits) != expected.masked_fill(nan, 0).view(bits)) | (
        actual.isnan() != nan
    )
    zero_sign = differ & (actual == 0) & (expected == 0)
    first = tuple(differ.nonzero()[0].tolist()) if differ.any() else None
    return int(differ.sum()), int(zero_sign.sum()), first


def assert_bitwise_equal(actual, expected):
    """Same shape and dtype, NaN at the same places and every other element bit for bit equal
    (so +0.0 and -0.0 differ)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    differ, _, first = bit_differences(actual, expected)
    assert differ == 0, f"{differ} of {expected.numel()} elements differ, first at {first}"


def with_special_values(values, gen, fraction=0.125):
    """`values` (float64) with NaN, +-Inf, -0 and +0 put at a random `fraction` of the places."""
    special = torch.tensor([math.nan, math.inf, -math.inf, -0.0, 0.0], dtype=torch.float64)
    values = values.clone()
    where = torch.rand(values.shape, generator=gen) < fraction
    values[where] = special[torch.randint(0, len(special), (int(where.sum()),), generator=gen)]
    return values


def on_poisoned_memory(fn, x):
    """fn(x) with torch's deterministic mode on, in which every fresh allocation (the op's
    output among them) is filled with NaN before use: an element the kernel does not write
    stays NaN and fails a comparison."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        return fn(x)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def window_gradient(grad, window, anchor):
    """The generalised backward rule, spelled out: the gradient passes through; at each window's
    anchor it is g minus the window's sum, accumulated in opmath (float32 for 16-bit dtypes) in
    row-major order and rounded to the dtype first. The additions run in that order for all
    windows at once (one elementwise add per window position), so every sum is the sequential one."""
    (lh, lw) = (window, window) if isinstance(window, int) else window
    r, c = anchor
    height, width = grad.shape[-2:]
    opmath = torch.float64 if grad.dtype == torch.float64 else torch.float32
    g = grad.to(opmath)
    nh, nw = -(-height // lh), -(-width // lw)
    total = None
    for dh in range(min(lh, height)):  # a window's rows and columns past the image's add nothing
        for dw in range(min(lw, width)):
            rows, cols = torch.arange(nh) * lh + dh, torch.arange(nw) * lw + dw
            values = g.index_select(-2, rows.clamp(max=height - 1)).index_select(-1, cols.clamp(max=width - 1))
            inside = (rows < height)[:, None] & (cols < width)[None, :]
            total = values if total is None else torch.where(inside, total + values, total)
    anchor_rows = torch.clamp(torch.arange(nh) * lh + r, max=height - 1)
    anchor_cols = torch.clamp(torch.arange(nw) * lw + c, max=width - 1)
    at_anchors = g.index_select(-2, anchor_rows).index_select(-1, anchor_cols)
    out = grad.clone()
    out[..., anchor_rows[:, None], anchor_cols[None, :]] = (at_anchors - total.to(grad.dtype).to(opmath)).to(grad.dtype)
    return out
