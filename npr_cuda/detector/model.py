"""The NPR detector (official ``networks/resnet.py``, ``resnet50(num_classes=1)``) on top of
:func:`npr_cuda.npr`.

The network is a ResNet-50 cut after ``layer2``: conv1 3x3 stride 2 (3->64, no bias), bn1, relu,
maxpool 3x3 stride 2, layer1 (3 bottlenecks, 64), layer2 (4 bottlenecks, 128, stride 2), global
average pool, ``fc1 = Linear(512, num_classes)``. Its input is ``npr(x) * 2.0 / 3.0`` with x the
ImageNet-normalised image. Parameter names, order and shapes equal the official model's, so the
released ``NPR.pth`` and ``model_epoch_last_3090.pth`` load with ``strict=True``; the
bottlenecks are torchvision's, whose parameter names and forward are the official ones.
"""

from typing import Callable, Tuple

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

from ..ops import npr
from ..reference import formula_npr, window_pair

__all__ = ["NPR_IMPLEMENTATIONS", "DEFAULT_WINDOW", "DEFAULT_ANCHOR", "NPRResNet", "npr_resnet50", "crop_to_even"]

# What computes NPR inside the model: the fused op, or the published formulas (for comparisons):
# each takes (x, window, anchor).
NPR_IMPLEMENTATIONS = {"npr_cuda": npr, "official": formula_npr}
DEFAULT_WINDOW, DEFAULT_ANCHOR = (2, 2), (0, 0)  # the paper's choice, the official model's


def crop_to_even(x: Tensor) -> Tensor:
    """Drops the last row and/or column where H or W is odd: the official README's protocol for
    odd-sized images (the official formula needs even sizes). A view, no copy."""
    height, width = x.shape[-2:]
    return x[..., : height - height % 2, : width - width % 2]


class NPRResNet(nn.Module):
    """The official NPR detector. ``npr_impl`` computes NPR; the default is the fused op, and
    :func:`npr_cuda.reference.formula_npr` gives the published computation (for comparisons).
    ``window`` and ``anchor`` generalise NPR as in the paper's ablation (see :func:`npr_cuda.npr`);
    the defaults are the official model's. They are settings, not weights: the state dict is the
    same for every window, and a training checkpoint records them (detector/checkpoint.py)."""

    def __init__(
        self,
        num_classes: int = 1,
        npr_impl: Callable[..., Tensor] = npr,
        window: Tuple[int, int] = DEFAULT_WINDOW,
        anchor: Tuple[int, int] = DEFAULT_ANCHOR,
    ):
        super().__init__()
        self.npr_impl = npr_impl
        self.window = window_pair(window)
        self.anchor = window_pair(anchor)
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
        """The input of conv1: NPR of the normalised image, scaled by 2/3 in the official order
        of operations. With the official window, odd sizes are cropped to even first (the
        official README's protocol); another window takes the image whole (partial windows at the
        edges use clamped anchors)."""
        if self.window == DEFAULT_WINDOW and self.anchor == DEFAULT_ANCHOR:
            return self.npr_impl(crop_to_even(x)) * 2.0 / 3.0
        return self.npr_impl(x, self.window, self.anchor) * 2.0 / 3.0

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-2] < 2 or x.shape[-1] < 2:
            raise ValueError(f"NPR detector: expected images (N, 3, H, W) with H, W >= 2, got shape {tuple(x.shape)}")
        x = self.conv1(self.features(x))
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))


def npr_resnet50(num_classes: int = 1, **kwargs) -> NPRResNet:
    """The official ``resnet50(num_classes=1)`` of NPR (see :class:`NPRResNet`)."""
    return NPRResNet(num_classes=num_classes, **kwargs)
