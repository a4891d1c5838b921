"""npr_cuda: the NPR operator (CVPR 2024) as a fused CPU/CUDA torch op, and the detector on it."""

from .ops import build_info, cuda_kernels_built, npr, npr_backward

__all__ = ["build_info", "cuda_kernels_built", "npr", "npr_backward"]
