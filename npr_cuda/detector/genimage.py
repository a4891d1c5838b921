"""The GenImage recipe of the official README: training on Stable Diffusion v1.4's images.

Its README's GenImage section changes three things of the default recipe: "translate and
duplicate" (:mod:`.tiling`) replaces the resize in every transform; the random seed is 70; the
tests keep the centre crop (no_crop False). Its command is ``train.py --batch_size 32 --lr 0.0002
--niter 1 --cropSize 224 --classes sdv4``: one epoch, the other settings the options' defaults
(``delr_freq`` 20, which one epoch never reaches). The train transform is then translate and
duplicate -> RandomCrop(224) -> RandomHorizontalFlip -> ToTensor -> ImageNet Normalize (the
README's Compose has no blur or JPEG step); validation and testing translate and duplicate ->
CenterCrop(224) -> ToTensor -> Normalize (``data.PRESETS["GenImage"]``).

Official tree (its train.py with the README's test config): ``DATAROOT/train/sdv4`` and
``DATAROOT/val/sdv4``, each with ``0_real``/``1_fake``; the tests in ``DATAROOT/test/<generator>``
for ADM, biggan, glide, midjourney, sdv5, vqdm and wukong.
"""

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from .data import IMAGENET_MEAN, IMAGENET_STD, Protocol
from .tiling import translate_duplicate

RECIPE = "GenImage"
SEED = 70
EPOCHS = 1
DELR_FREQ = 20  # the official options' default: the README's GenImage command does not set it
TRAIN_CLASSES = ("sdv4",)


def validation_protocol(crop_size: int = 224) -> Protocol:
    """The validation (and test) transform of the recipe: tiles, then the centre crop."""
    return Protocol(resize=False, crop=True, tile=crop_size, crop_size=crop_size)


class GenImageTrainTransform:
    """The recipe's train transform, every random choice drawn from a given generator in the
    order torchvision's RandomCrop and RandomHorizontalFlip draw from the global one: with a
    generator seeded s, the pixels are the official transform's after ``torch.manual_seed(s)``."""

    def __init__(self, crop_size: int = 224, flip: bool = True):
        self.crop_size, self.flip = crop_size, flip

    def __call__(self, image: Image.Image, gen: torch.Generator) -> torch.Tensor:
        image = translate_duplicate(image, self.crop_size)
        top, left = self.crop_position(image, gen)
        image = TF.crop(image, top, left, self.crop_size, self.crop_size)
        if self.flip and torch.rand(1, generator=gen) < 0.5:
            image = TF.hflip(image)
        return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)

    def crop_position(self, image: Image.Image, gen: torch.Generator):
        """(top, left) as RandomCrop.get_params draws them: nothing drawn when the image is the
        crop's size; rows first. Tiling makes both sides at least the crop's."""
        width, height = image.size
        if (width, height) == (self.crop_size, self.crop_size):
            return 0, 0
        top = int(torch.randint(0, height - self.crop_size + 1, size=(1,), generator=gen))
        left = int(torch.randint(0, width - self.crop_size + 1, size=(1,), generator=gen))
        return top, left
