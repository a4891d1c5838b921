"""The GenImage protocol: translate and duplicate, the GenImage preset's test transform and the
GenImage recipe's train transform give the official pipeline's pixels, image by image, bit for
bit (helpers.official_genimage writes the official code out)."""

import numpy as np
import pytest
import torch
from helpers.image_folders import write_image
from helpers.official_genimage import official_test_transform, official_train_transform, pil_loader
from helpers.official_genimage import translate_duplicate as official_translate_duplicate
from PIL import Image

from npr_cuda.detector.data import PRESETS, ImageDataset, eval_transform, load_rgb
from npr_cuda.detector.genimage import GenImageTrainTransform
from npr_cuda.detector.tiling import TranslateDuplicate, tiled_size, translate_duplicate
from npr_cuda.detector.training import TrainDataset, sample_generator

# (width, height): below, at and above 224 on each side, odd and even, and 1-pixel lines.
SIZES = [
    (1, 1),
    (1, 300),
    (57, 113),
    (100, 224),
    (223, 223),
    (224, 224),
    (224, 100),
    (225, 97),
    (97, 225),
    (226, 229),
    (300, 301),
    (448, 225),
]
MODES = [("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("RGB", "JPEG")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests convert hundreds of small images: on a busy machine torch's threads fight
    over them (to_tensor of 224x224 pixels: 26 ms with 2 threads, 1.3 ms with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An image file of every size in SIZES but 1x1 (the official paste takes 0.2 s to tile it),
    their modes and formats taken in turn from MODES."""
    folder = tmp_path_factory.mktemp("genimage")
    paths = []
    for i, size in enumerate(SIZES[1:]):
        for k, (mode, fmt) in enumerate(MODES):
            if (i + k) % 2 == 0:  # half the combinations, every size and every mode among them
                paths.append(
                    write_image(str(folder / f"{i}_{mode}.{fmt.lower()}"), size=size, mode=mode, seed=i, fmt=fmt)
                )
    return paths


def test_tiled_sizes_by_hand():
    assert tiled_size(100, 300, 224) == (300, 300)  # only the short side repeats
    assert tiled_size(224, 223, 224) == (224, 446)
    assert tiled_size(57, 113, 224) == (228, 226)
    assert tiled_size(1, 1, 224) == (224, 224)
    assert tiled_size(224, 224, 224) == (224, 224) and tiled_size(225, 500, 224) == (225, 500)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_tiles_equal_the_official_paste(size, mode):
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA").convert(mode)
    expected = official_translate_duplicate(image.convert("RGB"), 224)  # the official loader's RGB first
    tiled = translate_duplicate(image, 224)
    assert tiled.mode == "RGB" and tiled.size == expected.size == tiled_size(*size, 224)
    assert np.array_equal(np.asarray(tiled), np.asarray(expected))
    assert np.array_equal(np.asarray(tiled)[: size[1], : size[0]], np.asarray(image.convert("RGB")))  # top-left


def test_the_preset_gives_the_official_pixels(files):
    """npr-eval's dataset under the GenImage preset against the official ImageFolder transform."""
    dataset = ImageDataset([(path, 0) for path in files], eval_transform(PRESETS["GenImage"]))
    for index, path in enumerate(files):
        image, _, _ = dataset[index]
        expected = official_test_transform()(pil_loader(path))
        assert image.shape == (3, 224, 224) and torch.equal(image, expected), path


def test_the_train_transform_gives_the_official_pixels_for_a_seed(files):
    """With a generator seeded s, the recipe's train transform is the official one after
    torch.manual_seed(s): the same crops and flips, the same pixels. Over the seeds both flips
    and several crops occur."""
    transform, positions, flips = GenImageTrainTransform(224), set(), set()
    for path in files:
        for seed in range(3):
            torch.manual_seed(seed)
            expected = official_train_transform()(pil_loader(path))
            image = transform(load_rgb(path), torch.Generator().manual_seed(seed))
            assert torch.equal(image, expected), (path, seed)
            tiled = translate_duplicate(load_rgb(path), 224)
            positions.add(transform.crop_position(tiled, torch.Generator().manual_seed(seed)))
            flips.add(
                torch.equal(
                    image, GenImageTrainTransform(224, flip=False)(load_rgb(path), torch.Generator().manual_seed(seed))
                )
            )
    assert len(positions) > 4 and flips == {True, False}


def test_the_training_dataset_draws_each_image_from_its_own_seed(files):
    """The recipe's training data: image i of epoch e is the official transform after
    torch.manual_seed of the seed that (seed, e, i) gives, whatever the order it is read in."""
    dataset = TrainDataset([(path, 1) for path in files], GenImageTrainTransform(224), seed=70, max_pixels=None)
    dataset.epoch = 1
    for index in reversed(range(len(files))):
        image, label, path = dataset[index]
        torch.manual_seed(sample_generator(70, 1, index).initial_seed())
        assert torch.equal(image, official_train_transform()(pil_loader(path))) and label == 1


def test_the_tiling_step_is_picklable_and_checks_its_size():
    import pickle

    step = pickle.loads(pickle.dumps(TranslateDuplicate(32)))
    assert step(Image.new("RGB", (5, 40))).size == (35, 40) and "32" in repr(step)
    with pytest.raises(ValueError, match="at least 1"):
        TranslateDuplicate(0)
