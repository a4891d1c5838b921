"""Tensors and references for the op tests: devices and dtypes to parametrise over, inputs in
every memory layout, value comparison and the window backward spelled out. The official formula,
bitwise comparison and poisoned memory are npr_cuda.testing's, shared with bench/cuda_checks.py."""

import pytest
import torch

import npr_cuda

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

_cuda_reason = "no CUDA GPU visible" if not torch.cuda.is_available() else "npr_cuda was built without its CUDA kernels"
# Tests that need the CUDA kernels and a GPU: marked `cuda` (select them with -m cuda).
requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and npr_cuda.cuda_kernels_built()), reason=_cuda_reason
)
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, requires_cuda])]


def randn(shape, dtype, device, gen):
    """Fresh standard-normal values, drawn on the CPU (reproducible from the seed) and moved."""
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)


def make_input(shape, dtype, device, layout, gen):
    """A tensor of `shape` with fresh random values, laid out in memory as `layout` says."""
    height, width = shape[-2:]
    if layout == "contiguous":
        return randn(shape, dtype, device, gen)
    if layout == "channels_last":
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}[len(shape)]
        return randn(shape, dtype, device, gen).contiguous(memory_format=fmt)
    if layout == "sliced":
        base = randn((*[n + 1 for n in shape[:-2]], height + 2, width + 3), dtype, device, gen)
        return base[(slice(1, None),) * (len(shape) - 2) + (slice(1, height + 1), slice(2, width + 2))]
    if layout == "transposed":
        return randn((*shape[:-2], width, height), dtype, device, gen).transpose(-1, -2)
    if layout == "expanded":  # stride 0 along the first dimension
        return randn((1, *shape[1:]), dtype, device, gen).expand(shape)
    raise ValueError(layout)


def assert_equal_values(actual, expected):
    """Equal as numbers: like assert_bitwise_equal, but -0.0 == +0.0 (autograd's gradient
    accumulation starts from +0.0 and so may flip the sign of a zero)."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)


def window_gradient_loop(grad, window, anchor):
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
    for dh in range(lh):
        for dw in range(lw):
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
