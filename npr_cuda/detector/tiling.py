"""Translate and duplicate: the GenImage protocol's replacement for the resize.

The official README's GenImage section replaces the Resize((256, 256)) of the train and test
transforms with ``translate_duplicate(img, cropSize)``: an image whose shorter side is below
``cropSize`` is pasted, from the top-left corner and stepping by its own width and height, onto
a black RGB canvas of ``width * ceil(cropSize / width)`` by ``height * ceil(cropSize / height)``
pixels; an image at least ``cropSize`` on both sides is returned as it is. The ceil is taken per
side, so a side already at least ``cropSize`` keeps its length (its factor is 1) while the other
is repeated. The canvas is an exact multiple of the image on both sides, so the copies cover it
whole: no black pixel is left, and the result is the image repeated ``ceil(...)`` times each way.

The official loader (torchvision's ImageFolder) has converted the image to RGB before this step;
an image in another mode is converted with ``convert("RGB")`` here first, as that loader does.
"""

import math
from typing import Tuple

import numpy as np
from PIL import Image


def tiled_size(width: int, height: int, size: int) -> Tuple[int, int]:
    """(width, height) after translate-and-duplicate to at least `size` on each side."""
    if min(width, height) >= size:
        return width, height
    return width * math.ceil(size / width), height * math.ceil(size / height)


def translate_duplicate(image: Image.Image, size: int) -> Image.Image:
    """`image` (converted to RGB) tiled from its top-left corner to at least `size` x `size`
    pixels, or returned as it is if it already is that large (see the module doc)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    new_width, new_height = tiled_size(width, height, size)
    if (new_width, new_height) == (width, height):
        return image
    # The official code pastes the image at every (i * width, j * height); between two RGB images
    # a paste without a mask copies the pixels, so repeating the array is the same picture.
    pixels = np.tile(np.asarray(image), (new_height // height, new_width // width, 1))
    return Image.fromarray(pixels, "RGB")


class TranslateDuplicate:
    """translate_duplicate as a torchvision-style transform step (picklable for data workers)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"translate and duplicate: size must be at least 1, got {size}")
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        return translate_duplicate(image, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"
