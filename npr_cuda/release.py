"""The torch release a build of npr_cuda needs. A compiled torch extension works only with the
torch release (major.minor) it was compiled against: under another one it fails to load with an
unresolved symbol, or loads and misbehaves. The build records its torch (``_built_for.py``, beside
the module); importing npr_cuda compares it with the running torch before loading the module.
setup.py loads this file on its own (before anything is built) for the version's local part."""

from typing import Optional, Tuple


def release(version: str) -> Tuple[int, int]:
    """(major, minor) of a torch or CUDA version string: "2.14.1+cu130" -> (2, 14)."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def local_version(torch_version: str, torch_cuda: Optional[str]) -> str:
    """The part of a build's version that names its torch: "torch2.14.cu130", or "torch2.14.cpu"."""
    major, minor = release(torch_version)
    return f"torch{major}.{minor}." + ("cu" + torch_cuda.replace(".", "") if torch_cuda else "cpu")


def mismatch(built_torch: str, built_cuda: str, torch_version: str, torch_cuda: Optional[str]) -> Optional[str]:
    """Why a build made for torch `built_torch` (with CUDA kernels for `built_cuda`, or "" without
    them) cannot load under torch `torch_version` (CUDA `torch_cuda`, or None), or None if it can."""
    built = f"torch {built_torch}" + (f" with CUDA {built_cuda}" if built_cuda else "")
    running = f"torch {torch_version}" + (f" (CUDA {torch_cuda})" if torch_cuda else " (no CUDA)")
    if release(built_torch) != release(torch_version):
        problem = f"npr_cuda was built for {built}, but {running} is installed"
    elif built_cuda and (torch_cuda is None or release(built_cuda)[0] != release(torch_cuda)[0]):
        problem = f"npr_cuda was built for {built}, but {running} is installed: its CUDA kernels cannot load"
    else:
        return None
    return (
        f"{problem}. Install the npr-cuda wheel made for it (its version ends in "
        f"+{local_version(torch_version, torch_cuda)}), "
        "or build npr_cuda against it: pip install --no-build-isolation ."
    )


def check_torch_release() -> None:
    """ImportError, naming both releases and the fix, when this build of npr_cuda was made for
    another torch release than the one imported."""
    import torch

    try:
        from . import _built_for
    except ImportError:
        raise ImportError(
            "npr_cuda: the extension is not built here; build it with pip install --no-build-isolation -e ."
        ) from None
    reason = mismatch(_built_for.TORCH_VERSION, _built_for.CUDA_VERSION, torch.__version__, torch.version.cuda)
    if reason:
        raise ImportError(reason)
