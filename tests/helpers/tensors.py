"""Tensors for the op tests: devices and dtypes to parametrise over, inputs in every memory
layout, and value comparison. The references, bitwise comparison and poisoned memory are
npr_cuda.testing's, shared with bench/cuda_checks.py."""

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
