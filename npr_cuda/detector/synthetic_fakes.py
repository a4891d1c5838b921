"""Offline data for npr-demo: real photographs that ship inside packages, and fakes made from
them by small fixed CNN "generators" whose last stage up-samples by 2.

Real images are random crops of scikit-image's sample photographs (and scikit-learn's two).
A generator halves a crop (2x2 average), perturbs it with a fixed near-identity 3x3 convolution
and up-samples it back with one of four families of up-samplers (nearest, bilinear, transposed
convolution, pixel shuffle), then rounds to 8 bits like a saved image: the fake looks like the
photo but carries its up-sampler's trace in every 2x2 block, which is what NPR exposes.
"""

from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor, nn

from ..reference import npr_reference
from .data import IMAGENET_MEAN, IMAGENET_STD

# Photographs (scikit-image names; "china" and "flower" are scikit-learn's). The last five are
# held out: test crops come from photos the detector never saw.
TRAIN_PHOTOS = [
    "astronaut",
    "chelsea",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "stereo_motorcycle",
    "brick",
    "grass",
    "gravel",
    "moon",
    "clock",
    "flower",
]
TEST_PHOTOS = ["coffee", "rocket", "camera", "coins", "china"]
FAMILIES = ["nearest", "bilinear", "transposed_conv", "pixel_shuffle"]


def load_photo(name: str) -> np.ndarray:
    """An 8-bit RGB (H, W, 3) photograph shipped with scikit-image or scikit-learn."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs: the left view
        image = image[0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def random_crops(photo: np.ndarray, count: int, size: int, rng: np.random.Generator) -> Tensor:
    """`count` crops of size x size at random positions, as float (count, 3, size, size) in [0, 1]."""
    height, width = photo.shape[:2]
    tops = rng.integers(0, height - size + 1, count)
    lefts = rng.integers(0, width - size + 1, count)
    crops = np.stack([photo[top : top + size, left : left + size] for top, left in zip(tops, lefts)])
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255


class UpsamplingGenerator(nn.Module):
    """Fixed (seeded, untrained) near-identity generator ending in a 2x up-sampler."""

    def __init__(self, family: str, seed: int):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown up-sampler family {family!r}; expected one of {FAMILIES}")
        self.family = family
        gen = torch.Generator().manual_seed(seed)

        def perturbed(weight, phases=1):
            """weight + noise that sums to zero over the taps each output phase uses, so the
            generator keeps the image's colours and brightness and changes only its texture."""
            noise = torch.randn(weight.shape, generator=gen) * 0.03
            for a in range(phases):
                for b in range(phases):
                    taps = noise[..., a::phases, b::phases]
                    taps -= taps.mean(dim=(-2, -1), keepdim=True)
            return weight + noise

        identity3x3 = torch.zeros(3, 3, 3, 3)
        identity3x3[range(3), range(3), 1, 1] = 1
        self.mix = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.mix.weight.data = perturbed(identity3x3)
        if family == "transposed_conv":  # a bilinear kernel per channel, perturbed: checkerboard traces
            ramp = torch.tensor([0.25, 0.75, 0.75, 0.25])
            kernel = torch.zeros(3, 3, 4, 4)
            kernel[range(3), range(3)] = torch.outer(ramp, ramp)
            self.up = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
            self.up.weight.data = perturbed(kernel, phases=2)
        elif family == "pixel_shuffle":  # each sub-pixel a slightly different copy of its input
            weight = torch.zeros(12, 3, 3, 3)
            for channel in range(3):
                weight[4 * channel : 4 * channel + 4, channel, 1, 1] = 1
            self.up = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, bias=False), nn.PixelShuffle(2))
            self.up[0].weight.data = perturbed(weight)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """[0, 1] images (N, 3, H, W), H and W even, to fakes of the same size, 8-bit rounded."""
        x = F.avg_pool2d(x, 2)
        x = self.mix(x)
        if self.family in ("nearest", "bilinear"):
            x = F.interpolate(
                x, scale_factor=2, mode=self.family, **({"align_corners": False} if self.family == "bilinear" else {})
            )
        else:
            x = self.up(x)
        return torch.round(x.clamp(0, 1) * 255) / 255


# Pixels cut from each side of a generated image: the generators' convolutions zero-pad, which
# darkens a frame a few pixels wide (its |NPR| would be a bright border that a detector can learn
# instead of the up-sampling lattice). Even, so that the kept interior keeps the 2x2 grid.
MARGIN = 8


def interior(images: Tensor, margin: int = MARGIN) -> Tensor:
    return images[..., margin:-margin, margin:-margin]


def make_split(photos: List[str], crops_per_photo: int, size: int, seed: int) -> Dict[str, Tensor]:
    """{'real': crops, family: fakes...}, [0, 1] images of size x size; every family fakes its
    own fresh crops. Everything is cut, as the interior, from a crop MARGIN pixels larger on each
    side (generated first, for the fakes), so that reals and fakes are framed alike. `seed` draws
    the crops; each family's generator is the same fixed one in every split."""
    rng = np.random.default_rng(seed)
    images = {name: load_photo(name) for name in photos}

    def crops():
        return torch.cat([random_crops(images[name], crops_per_photo, size + 2 * MARGIN, rng) for name in photos])

    split = {"real": interior(crops())}
    with torch.no_grad():
        for index, family in enumerate(FAMILIES):
            split[family] = interior(UpsamplingGenerator(family, seed=index)(crops()))
    return split


def normalise(images: Tensor) -> Tensor:
    """[0, 1] images to the detector's ImageNet-normalised input."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def figure(split: Dict[str, Tensor], path: str, columns: int = 4, zoom: int = 3, window=2, anchor=(0, 0)) -> None:
    """A PNG: for real crops and each family, a row of crops and a row of their |NPR| maps (NPR
    with `window` and `anchor`)."""
    size = split["real"].shape[-1] * zoom
    label_width, gap = 150, 4
    rows = list(split)
    canvas = Image.new("RGB", (label_width + columns * 2 * (size + gap), len(rows) * (size + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(rows):
        y = gap + r * (size + gap)
        draw.text((6, y + size // 2 - 12), name.replace("_", " "), fill="black")
        draw.text((6, y + size // 2 + 2), "image | NPR", fill="gray")
        images = split[name][:: max(1, len(split[name]) // columns)][:columns]  # spread over the photos
        maps = npr_reference(images, window, anchor).abs().sum(1, keepdim=True)
        maps = (maps / maps.flatten(1).quantile(0.99, dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)).clamp(0, 1)
        for c in range(columns):
            for k, tile in enumerate((images[c], maps[c].expand(3, -1, -1))):
                pixels = (tile.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                x = label_width + (2 * c + k) * (size + gap)
                canvas.paste(Image.fromarray(pixels).resize((size, size), Image.NEAREST), (x, y))
    canvas.save(path)


def labelled(split: Dict[str, Tensor], families: List[str]) -> Tuple[Tensor, Tensor]:
    """Real crops (label 0) and the given families' fakes (label 1), normalised."""
    fakes = torch.cat([split[f] for f in families])
    images = torch.cat([split["real"], fakes])
    labels = torch.cat([torch.zeros(len(split["real"])), torch.ones(len(fakes))])
    return normalise(images), labels
