"""The NPR detector (official ``networks/resnet.py``, ``resnet50(num_classes=1)``) on top of
:func:`npr_cuda.npr`, and loading of its checkpoints.

The network is a ResNet-50 cut after ``layer2``: conv1 3x3 stride 2 (3->64, no bias), bn1, relu,
maxpool 3x3 stride 2, layer1 (3 bottlenecks, 64), layer2 (4 bottlenecks, 128, stride 2), global
average pool, ``fc1 = Linear(512, num_classes)``. Its input is ``npr(x) * 2.0 / 3.0`` with x the
ImageNet-normalised image. Parameter names, order and shapes equal the official model's, so the
released ``NPR.pth`` and ``model_epoch_last_3090.pth`` load with ``strict=True``; the
bottlenecks are torchvision's, whose parameter names and forward are the official ones.
"""

import os
from typing import Callable, Dict

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

from .ops import npr

__all__ = ["NPRResNet", "npr_resnet50", "CheckpointError", "read_state_dict", "load_weights", "load_detector"]


def crop_to_even(x: Tensor) -> Tensor:
    """Drops the last row and/or column where H or W is odd: the official README's protocol for
    odd-sized images (the official formula needs even sizes). A view, no copy."""
    height, width = x.shape[-2:]
    return x[..., : height - height % 2, : width - width % 2]


class NPRResNet(nn.Module):
    """The official NPR detector. ``npr_impl`` computes NPR; the default is the fused op, and
    :func:`npr_cuda.reference.official_npr` gives the official computation (for comparisons)."""

    def __init__(self, num_classes: int = 1, npr_impl: Callable[[Tensor], Tensor] = npr):
        super().__init__()
        self.npr_impl = npr_impl
        self.inplanes = 64
        # Registration order is the state-dict order of the official model.
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        """The input of conv1: NPR of the (even-cropped) normalised image, scaled by 2/3 in the
        official order of operations."""
        return self.npr_impl(crop_to_even(x)) * 2.0 / 3.0

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.features(x))
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))


def npr_resnet50(num_classes: int = 1, **kwargs) -> NPRResNet:
    """The official ``resnet50(num_classes=1)`` of NPR (see :class:`NPRResNet`)."""
    return NPRResNet(num_classes=num_classes, **kwargs)


class CheckpointError(ValueError):
    """A file that is not an NPR detector checkpoint, or one that does not fit the model."""


def read_state_dict(path: str) -> Dict[str, Tensor]:
    """The state dict in ``path``: a raw state dict (the released NPR.pth) or a training
    checkpoint ``{'model': state_dict, ...}`` (the official trainer's and npr-train's). Loaded
    with ``weights_only=True``: no arbitrary object is ever unpickled. A ``module.`` prefix (a
    model saved inside DataParallel/DistributedDataParallel) is removed."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only errors all mean the same here
        raise CheckpointError(
            f"checkpoint {path}: not a PyTorch checkpoint of tensors that can be loaded safely "
            f"(torch.load with weights_only=True failed: {type(error).__name__}: {error})"
        ) from error
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"checkpoint {path}: expected a state dict (names to tensors) or a dict with a 'model' "
            f"state dict, got {type(obj).__name__}"
            + (f" with keys {sorted(obj)[:10]}" if isinstance(obj, dict) else "")
        )
    if all(key.startswith("module.") for key in obj):
        obj = {key[len("module."):]: value for key, value in obj.items()}
    return obj


def load_weights(model: nn.Module, path: str) -> nn.Module:
    """Loads the checkpoint at ``path`` into ``model`` strictly; a mismatch raises
    :class:`CheckpointError` naming the missing, unexpected and wrongly shaped entries."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        def first(names):
            return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")

        problems = [f"{label} ({len(names)}): {first(names)}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)) if names]
        raise CheckpointError(f"checkpoint {path} does not fit the NPR detector: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model


def load_detector(path: str, device="cpu", **kwargs) -> NPRResNet:
    """An :func:`npr_resnet50` with the weights in ``path``, on ``device``, in eval mode."""
    return load_weights(npr_resnet50(**kwargs), path).to(device).eval()
