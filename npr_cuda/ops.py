"""The Python face of the ``npr_cuda`` operator library.

The kernels, schemas and autograd live in C++ (``csrc/``; autograd at the Autograd key, in
``csrc/npr_autograd.cpp``, where it costs no Python on each call); this module registers the
fake kernels (shapes, strides and dtypes for torch.compile and meta tensors), which run the
real input checks. NPR is linear, so its backward is the adjoint op ``npr_backward`` and the
backward of that is ``npr`` again: double backward works.
"""

import torch
from torch import Tensor

from . import _C


def npr(x: Tensor) -> Tensor:
    """NPR (Neighboring Pixel Relationships) of ``x``: each pixel minus the top-left pixel of its
    2x2 block, ``out[..., h, w] = x[..., h, w] - x[..., 2*(h//2), 2*(w//2)]``.

    A drop-in for the official ``x - F.interpolate(F.interpolate(x, scale_factor=0.5,
    mode='nearest', recompute_scale_factor=True), scale_factor=2, mode='nearest',
    recompute_scale_factor=True)``, bitwise equal to it on even H and W, in one pass.

    Args:
        x: float32, float64, float16 or bfloat16 tensor of shape (..., H, W) on CPU or CUDA.
            Odd H or W, where the official formula raises, keep the same rule: a trailing
            partial block uses its own top-left pixel.

    Returns:
        A tensor of x's shape, dtype and device; channels_last when x is channels_last.
    """
    return torch.ops.npr_cuda.npr(x)


def npr_backward(grad: Tensor) -> Tensor:
    """The gradient of :func:`npr` (its adjoint): ``grad``, minus at each block's top-left pixel
    the sum of ``grad`` over the block."""
    return torch.ops.npr_cuda.npr_backward(grad)


def output_memory_format(x: Tensor) -> torch.memory_format:
    """The memory format of both ops' outputs for input ``x``: channels_last (_3d) when x is
    exactly that and not also contiguous, else contiguous. Mirrors ``prepare_planes`` in
    csrc/npr.cpp, which allocates the real outputs."""
    if not x.is_contiguous():
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
        if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
            return torch.channels_last_3d
    return torch.contiguous_format


@torch.library.register_fake("npr_cuda::npr")
def _npr_fake(x: Tensor) -> Tensor:
    _C.check_input(x, "npr")  # the real kernels' checks, so that tracing rejects what they reject
    return torch.empty_like(x, memory_format=output_memory_format(x))


@torch.library.register_fake("npr_cuda::npr_backward")
def _npr_backward_fake(grad: Tensor) -> Tensor:
    _C.check_input(grad, "npr_backward")
    return torch.empty_like(grad, memory_format=output_memory_format(grad))


def build_info() -> dict:
    """How the loaded extension was built and runs: ``{'cuda': bool, 'cuda_arch_list': str,
    'cpu_isa': 'AVX512', 'AVX2' or 'DEFAULT' (the CPU kernels in use), 'torch': str}``."""
    return {**_C.build_info(), "torch": torch.__version__}


def cuda_kernels_built() -> bool:
    """Whether this build has the CUDA kernels (they are compiled whenever nvcc and a CUDA build
    of torch were present at build time, GPU or not)."""
    return bool(_C.build_info()["cuda"])
