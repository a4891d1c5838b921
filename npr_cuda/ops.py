"""The Python face of the ``npr_cuda`` operator library.

The kernels, schemas and autograd live in C++ (``csrc/``; autograd at the Autograd key, in
``csrc/npr_autograd.cpp``, where it costs no Python on each call); this module registers the
fake kernels (shapes, strides and dtypes for torch.compile and meta tensors), which run the
real input checks. NPR is linear, so its backward is the adjoint op ``npr_backward`` and the
backward of that is ``npr`` again: double backward works.
"""

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from . import _C
from .reference import Window


def _pair(value: Window, name: str, op: str) -> List[int]:
    """`value` as [rows, columns]: an int n is [n, n]. TypeError naming the op otherwise; the
    ranges are the kernels' to check (ValueError)."""
    if torch.jit.is_scripting():  # TorchScript has checked the types already
        if isinstance(value, int):
            return [value, value]
        return [value[0], value[1]]
    return _checked_pair(value, name, op)


_INT64_LIMIT = 2**63


@torch.jit.unused
def _checked_pair(value: Window, name: str, op: str) -> List[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = [value, value]
    elif (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        pair = [int(value[0]), int(value[1])]
    else:
        raise TypeError(f"{op}: expected {name} as an int or a pair of ints (rows, columns), got {value!r}")
    if not all(-_INT64_LIMIT <= v < _INT64_LIMIT for v in pair):  # the schema's int is int64
        raise ValueError(f"{op}: expected {name} values within int64 (below 2**63 in magnitude), got {value!r}")
    return pair


def npr(x: Tensor, window: Window = 2, anchor: Tuple[int, int] = (0, 0)) -> Tensor:
    """NPR (Neighboring Pixel Relationships) of ``x``: each pixel minus the anchor pixel of its
    window; by default the top-left pixel of its 2x2 block,
    ``out[..., h, w] = x[..., h, w] - x[..., 2*(h//2), 2*(w//2)]``.

    With the defaults, a drop-in for the official ``x - F.interpolate(F.interpolate(x,
    scale_factor=0.5, mode='nearest', recompute_scale_factor=True), scale_factor=2,
    mode='nearest', recompute_scale_factor=True)``, bitwise equal to it on even H and W, in one
    pass.

    Args:
        x: float32, float64, float16 or bfloat16 tensor of shape (..., H, W) on CPU or CUDA.
        window: the window size l (the paper's ablation), an int or (rows, columns), >= 1.
        anchor: the reference pixel (r, c) inside the window, 0 <= r, c < window; the paper's
            index j of an l x l window is (j // l, j % l).

    The rule: ``out[..., h, w] = x[..., h, w] - x[..., A(h, H, lh, r), A(w, W, lw, c)]`` with
    ``A(i, n, l, o) = min(l * (i // l) + o, n - 1)``: a partial window at the bottom or right
    edge (odd H or W for l = 2, where the official formula raises) takes its anchor clamped to
    the last row or column.

    Returns:
        A tensor of x's shape, dtype and device; channels_last when x is channels_last.
    """
    return torch.ops.npr_cuda.npr(x, _pair(window, "window", "npr"), _pair(anchor, "anchor", "npr"))


def npr_backward(grad: Tensor, window: Window = 2, anchor: Tuple[int, int] = (0, 0)) -> Tensor:
    """The gradient of :func:`npr` (its adjoint): ``grad``, minus at each window's anchor the
    sum of ``grad`` over the window (in row-major order, rounded to the dtype first)."""
    op = "npr_backward"
    return torch.ops.npr_cuda.npr_backward(grad, _pair(window, "window", op), _pair(anchor, "anchor", op))


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
def _npr_fake(x: Tensor, window: Sequence[int] = (2, 2), anchor: Sequence[int] = (0, 0)) -> Tensor:
    _C.check_input(x, list(window), list(anchor), "npr")  # the kernels' own checks: tracing rejects what they reject
    return torch.empty_like(x, memory_format=output_memory_format(x))


@torch.library.register_fake("npr_cuda::npr_backward")
def _npr_backward_fake(grad: Tensor, window: Sequence[int] = (2, 2), anchor: Sequence[int] = (0, 0)) -> Tensor:
    _C.check_input(grad, list(window), list(anchor), "npr_backward")
    return torch.empty_like(grad, memory_format=output_memory_format(grad))


def _register_vmap_rule(op_name: str) -> None:
    """torch.func.vmap's batching rule for ``npr_cuda::<op_name>``: the op treats every dimension
    before (H, W) as batch, so a vmapped call is one call on the input with the vmapped dimension
    moved to the front (without a rule, vmap ran the op once per slice, with a warning). In Python:
    functorch's C++ interpreter headers are not usable from an extension (torch 2.14 ships them
    without the nlohmann/json header they include); the rule runs only under vmap."""
    op = getattr(torch.ops.npr_cuda, op_name).default

    @torch.library.register_vmap(f"npr_cuda::{op_name}")
    def batched(info, in_dims, x, window=(2, 2), anchor=(0, 0)):
        x_dim = in_dims[0]
        if x_dim is None:
            return op(x, window, anchor), None
        if x.dim() - 1 < 2:  # each example must be a valid input on its own
            raise ValueError(
                f"{op_name}: expected a tensor with at least 2 dimensions (..., H, W) per vmapped example, "
                f"got examples of shape {tuple(x.movedim(x_dim, 0).shape[1:])}"
            )
        return op(x.movedim(x_dim, 0), window, anchor), 0


_register_vmap_rule("npr")
_register_vmap_rule("npr_backward")


def build_info() -> dict:
    """How the loaded extension was built and runs: ``{'cuda': bool, 'cuda_arch_list': str,
    'cpu_isa': 'AVX512', 'AVX2' or 'DEFAULT' (the CPU kernels in use), 'torch': str}``."""
    return {**_C.build_info(), "torch": torch.__version__}


def cuda_kernels_built() -> bool:
    """Whether this build has the CUDA kernels (they are compiled whenever nvcc and a CUDA build
    of torch were present at build time, GPU or not)."""
    return bool(_C.build_info()["cuda"])
