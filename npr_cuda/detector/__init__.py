"""The NPR detector on top of :func:`npr_cuda.npr`: the official model and its checkpoints
(``model``, ``checkpoint``), images and test protocols (``data``), the official metrics
(``metrics``), inference (``predict``) and what makes it fast (``speed``), the training recipe
(``training``) and the demo's offline real and fake images (``synthetic_fakes``).

Needs the ``detector`` extra (torchvision, pillow, scikit-learn, tqdm); the op alone needs only
torch.
"""

try:
    import PIL  # noqa: F401
    import sklearn  # noqa: F401
    import torchvision  # noqa: F401
    import tqdm  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f"npr_cuda.detector needs torchvision, pillow, scikit-learn and tqdm ({error}); "
        "install them with: pip install 'npr-cuda[detector]'"
    ) from error

from .checkpoint import CheckpointError, load_detector, load_weights, read_state_dict
from .model import NPR_IMPLEMENTATIONS, NPRResNet, npr_resnet50
from .speed import FastDetector, SpeedOptions, fast_detector

__all__ = [
    "NPR_IMPLEMENTATIONS",
    "CheckpointError",
    "FastDetector",
    "NPRResNet",
    "SpeedOptions",
    "fast_detector",
    "load_detector",
    "load_weights",
    "npr_resnet50",
    "read_state_dict",
]
