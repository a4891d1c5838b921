"""Images for the NPR detector: the official folder conventions, transforms and test protocols.

Folder layout (the official ``get_dataset``): images under ``root/0_real`` (label 0) and
``root/1_fake`` (label 1), searched recursively; or, when neither is directly under ``root``,
under each subfolder of ``root`` (or those named in ``classes``), concatenated. Labels come from
the folder names, not from their sorted order.

Loading never stops a long run: a file that cannot be used (truncated, not an image, more pixels
than ``max_pixels``, smaller than the detector's 2x2 minimum) becomes a :class:`Failure` carrying
its path and the reason, which the loaders pass on to be reported. Folders are walked once each,
symbolic links included (a link back up the tree, or two links to one folder, add nothing).
"""

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from .tiling import TranslateDuplicate

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
LABELS = {"0_real": 0, "1_fake": 1}
# Images with more pixels are skipped unless the caller raises the limit: a decompression bomb
# (a small file declaring a huge image) costs minutes and gigabytes, and native-size inference
# needs a few hundred bytes per pixel (4096 x 4096 = 16.8 MP: about 5 GB).
DEFAULT_MAX_PIXELS = 4096 * 4096
MIN_SIDE = 2  # the detector's input, cropped to even sizes, must stay at least 2x2

_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageTooLarge(ValueError):
    """An image with more pixels than the limit it is loaded with."""


@dataclass(frozen=True)
class Protocol:
    """How a test set is fed to the model: resize to load_size x load_size first or not, centre
    crop to crop_size or not, and a batch size the protocol prescribes (None: the user's).
    ``tile``: images smaller than that on a side are first tiled up to it ("translate and
    duplicate", instead of a resize: the GenImage protocol, with crop_size; :mod:`.tiling`)."""

    resize: bool
    crop: bool
    batch_size: Optional[int] = None
    load_size: int = 256
    crop_size: int = 224
    tile: Optional[int] = None

    @property
    def fixed_size(self) -> bool:
        """Whether every image reaches the model at one size (resized, or centre-cropped, which pads)."""
        return self.resize or self.crop


# The official test.py settings, and its README's for AIGCDetectBenchmark (batch size 1; odd
# sizes are cropped to even by the model itself) and GenImage (small images tiled instead of a
# resize, then the centre crop). "val" is the validation during training.
PRESETS: Dict[str, Protocol] = {
    "ForenSynths": Protocol(resize=True, crop=False),
    "GANGen-Detection": Protocol(resize=False, crop=False),
    "DiffusionForensics": Protocol(resize=True, crop=False),
    "UniversalFakeDetect": Protocol(resize=True, crop=False),
    "AIGCDetectBenchmark": Protocol(resize=False, crop=False, batch_size=1),
    "GenImage": Protocol(resize=False, crop=True, tile=224),
    "val": Protocol(resize=True, crop=True),
}


def to_rgb(image: Image.Image, rescale_high_bit_depth: bool = False) -> Image.Image:
    """8-bit RGB from any PIL mode, the pixels of the official loader's ``convert('RGB')``: alpha
    dropped (RGBA, LA), palette colours (through RGBA, as Pillow asks for a palette with
    transparency: the same colours), CMYK converted, and 16-bit, 32-bit or float grayscale
    clipped to 0..255 (a 16-bit photo turns almost white). With ``rescale_high_bit_depth``,
    integer grayscale wider than 8 bits is shifted down by 8 bits instead: npr-detect's choice
    for a user's photo, where clipping would leave nothing to see."""
    if rescale_high_bit_depth and image.mode.startswith("I"):  # "I;16", "I;16B", "I" (holds 16-bit PNGs)
        values = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    elif image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


@contextmanager
def _our_limit_instead_of_pillows():
    """Pillow's decompression-bomb check off for one ``Image.open`` of ours, and back at once:
    load_rgb checks its own limit right after, which may be higher than Pillow's (it is what the
    caller asked for) and which says more. Pillow's limit is one setting for the whole process:
    other code keeps its guard, except during the microseconds of our own header reads; the lock
    keeps two of ours from undoing each other's restore."""
    with _PILLOW_LIMIT_LOCK:
        pillows = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pillows


def load_rgb(
    path: str, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, rescale_high_bit_depth: bool = False
) -> Image.Image:
    """The image at ``path`` as 8-bit RGB (:func:`to_rgb`), fully decoded (a truncated file raises
    OSError). More than ``max_pixels`` pixels (None: no limit) raises ImageTooLarge before
    anything is decoded; this limit, not Pillow's, applies here."""
    with _our_limit_instead_of_pillows():
        image = Image.open(path)
    with image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLarge(
                f"{width}x{height} = {width * height} pixels, more than the limit of {max_pixels} "
                "(--max-pixels raises it)"
            )
        image.load()
        return to_rgb(image, rescale_high_bit_depth)


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str) -> List[str]:
    """Image files under ``folder``, recursively, in sorted order. Linked folders are followed,
    but each real folder is walked once, under the first name reached: a link loop (``self ->
    .``) or two links to one folder add nothing."""
    found, reached = [], {os.path.realpath(folder)}
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(subdirs):
            real = os.path.realpath(os.path.join(directory, name))
            if real not in reached:
                reached.add(real)
                kept.append(name)
        subdirs[:] = kept
        found += [os.path.join(directory, name) for name in sorted(files) if is_image_file(name)]
    return found


def has_label_folders(folder: str) -> bool:
    """Whether 0_real or 1_fake sits directly in `folder` (else its subfolders hold them)."""
    return any(os.path.isdir(os.path.join(folder, name)) for name in LABELS)


def subfolders(folder: str) -> List[str]:
    """The names of the folders directly in `folder`, sorted."""
    return [name for name in sorted(os.listdir(folder)) if os.path.isdir(os.path.join(folder, name))]


def labelled_images(folder: str) -> List[Tuple[str, int]]:
    """(path, label) for the images under folder/0_real and folder/1_fake."""
    samples = []
    for name, label in LABELS.items():
        if os.path.isdir(os.path.join(folder, name)):
            samples += [(path, label) for path in list_images(os.path.join(folder, name))]
    return samples


def one_label_note(folder: str, samples: Sequence[Tuple[str, int]]) -> Optional[str]:
    """For images under ``folder`` that carry one label only: which label folder has none, and
    the folders that are there (so that a misspelt ``1_Fake`` shows); None otherwise."""
    present = {label for _, label in samples}
    missing = [name for name, label in LABELS.items() if label not in present]
    if len(missing) != 1:
        return None
    there = ", ".join(subfolders(folder)) if os.path.isdir(folder) else ""
    return f"{folder}: no {missing[0]} images (folders there: {there or 'none'})"


def real_fake_samples(
    root: str,
    classes: Optional[Sequence[str]] = None,
    skipped: Optional[List[str]] = None,
    one_label: Optional[List[str]] = None,
) -> List[Tuple[str, int]]:
    """(path, label) for every image of a root in the official layout (see the module doc).

    A class folder named in ``classes`` must hold 0_real/1_fake images; so must ``root``. A
    subfolder found on its own that holds none (``.ipynb_checkpoints``, notes, an empty class) is
    left out and, if ``skipped`` is a list, appended to it with the reason. A class folder whose
    images carry one label only is kept and, if ``one_label`` is a list, named in it
    (:func:`one_label_note`)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder")
    if has_label_folders(root):
        if classes:
            raise ValueError(
                f"{root} holds 0_real/1_fake itself, so it has no class folders to pick from (classes {list(classes)})"
            )
        roots = [root]
    else:
        roots = [os.path.join(root, name) for name in (list(classes) if classes else subfolders(root))]
    samples = []
    for folder in roots:
        found = labelled_images(folder) if os.path.isdir(folder) else []
        if found:
            samples += found
            note = one_label_note(folder, found) if folder != root else None
            if note and one_label is not None:
                one_label.append(note)
        elif classes:
            raise FileNotFoundError(f"{folder}: expected 0_real and/or 1_fake image folders in it")
        elif skipped is not None:
            skipped.append(f"{folder}: no images in 0_real/1_fake folders")
    if not samples:
        raise FileNotFoundError(f"{root}: no images found under 0_real/1_fake folders")
    return samples


def eval_transform(protocol: Protocol):
    steps = [TranslateDuplicate(protocol.tile)] if protocol.tile else []
    steps += [T.Resize((protocol.load_size, protocol.load_size))] if protocol.resize else []
    steps += [T.CenterCrop(protocol.crop_size)] if protocol.crop else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@dataclass
class Failure:
    """An image that could not be used, and why."""

    path: str
    reason: str


class ImageDataset(Dataset):
    """(image tensor, label, path) for a list of (path, label); a Failure for a file that cannot
    be used (broken, more than ``max_pixels`` pixels, smaller than 2x2 once transformed). Label
    -1 means unknown (images to classify). Pixels are the official loader's unless
    ``rescale_high_bit_depth`` (:func:`to_rgb`)."""

    def __init__(
        self,
        samples: Sequence[Tuple[str, int]],
        transform,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        rescale_high_bit_depth: bool = False,
    ):
        self.samples = list(samples)
        self.transform = transform
        self.max_pixels = max_pixels
        self.rescale_high_bit_depth = rescale_high_bit_depth

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            image = self.transform_image(load_rgb(path, self.max_pixels, self.rescale_high_bit_depth), index)
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
            return Failure(path, f"{type(error).__name__}: {error}")
        height, width = image.shape[-2:]
        if height < MIN_SIDE or width < MIN_SIDE:
            return Failure(path, f"too small for the detector: {width}x{height}, needs at least {MIN_SIDE}x{MIN_SIDE}")
        return image, label, path

    def transform_image(self, image: Image.Image, index: int) -> Tensor:
        return self.transform(image)


@dataclass
class Batch:
    """A loader's batch: images grouped by size (each group one tensor), and the failures."""

    groups: List[Tuple[Tensor, Tensor, List[str]]] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)

    def pin_memory(self) -> "Batch":
        """This batch with its tensors in page-locked memory. DataLoader(pin_memory=True) calls
        it (it pins only what has this method), so that the copies to the GPU with
        non_blocking=True are asynchronous."""
        pinned = [(images.pin_memory(), labels.pin_memory(), paths) for images, labels, paths in self.groups]
        return Batch(pinned, self.failures)


def collate_by_size(items) -> Batch:
    """Stacks the images of each size separately, so that a run over images of many sizes (no
    resize) batches what it can instead of failing."""
    batch = Batch()
    by_size: Dict[Tuple[int, ...], list] = {}
    for item in items:
        if isinstance(item, Failure):
            batch.failures.append(item)
        else:
            by_size.setdefault(tuple(item[0].shape), []).append(item)
    for group in by_size.values():
        images, labels, paths = zip(*group)
        batch.groups.append((torch.stack(images), torch.tensor(labels), list(paths)))
    return batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    shuffle: bool = False,
    sampler=None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_by_size,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
