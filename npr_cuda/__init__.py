"""npr_cuda: the NPR operator (CVPR 2024) as a fused CPU/CUDA torch op, and the detector on it."""

from .release import check_torch_release

check_torch_release()  # before the compiled module loads: a clear error under the wrong torch

from .ops import build_info, cuda_kernels_built, npr, npr_backward  # noqa: E402

__all__ = ["build_info", "cuda_kernels_built", "npr", "npr_backward"]
