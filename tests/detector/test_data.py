"""Image loading, the official folder layout, transforms, batching by size, and the metrics."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from helpers.image_folders import make_generator_tree, write_broken_files, write_image
from PIL import Image
from torch.utils.data._utils.pin_memory import pin_memory

from npr_cuda.detector.data import (
    PRESETS,
    Batch,
    Failure,
    ImageDataset,
    ImageTooLarge,
    eval_transform,
    list_images,
    load_rgb,
    make_loader,
    real_fake_samples,
    to_rgb,
)
from npr_cuda.detector.metrics import binary_metrics, json_safe


@pytest.mark.parametrize(
    "mode,fmt",
    [
        ("RGB", "PNG"),
        ("L", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("CMYK", "JPEG"),
        ("I;16", "PNG"),
        ("RGB", "JPEG"),
        ("RGB", "WEBP"),
        ("1", "BMP"),
    ],
)
def test_every_mode_loads_as_8bit_rgb(tmp_path, mode, fmt):
    path = write_image(str(tmp_path / f"image.{fmt.lower()}"), size=(21, 13), mode=mode, fmt=fmt)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (21, 13)


@pytest.mark.parametrize(
    "values,dtype",
    [
        ([0, 200, 256, 32768, 65535], np.uint16),
        ([-5, 0, 200, 256, 70000], np.int32),
        ([-3, 0.5, 1.5, 300, 1000], np.float32),
    ],
)
def test_high_bit_depth_images_are_clipped_as_the_official_convert_rgb(values, dtype):
    """The official loader's convert('RGB') clips to 0..255: a 16-bit photo turns almost white,
    and the protocols' pixels are those."""
    image = Image.fromarray(np.array([values], dtype=dtype))
    rgb = np.asarray(to_rgb(image))
    assert rgb.tolist() == np.asarray(image.convert("RGB")).tolist()
    assert rgb[0, :, 0].tolist()[-2:] == [255, 255] and (rgb[..., 0] == rgb[..., 2]).all()


def test_16bit_grayscale_is_rescaled_where_asked():
    """npr-detect's choice for a user's photo: the 16-bit range shifted down by 8 bits."""
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(values), rescale_high_bit_depth=True))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and (rgb[..., 0] == rgb[..., 2]).all()


def test_palette_with_transparency_gives_the_official_colours(tmp_path):
    path = write_image(str(tmp_path / "p.png"), size=(9, 7), mode="P")
    assert np.array_equal(np.asarray(load_rgb(path)), np.asarray(Image.open(path).convert("RGB")))


def test_rgba_drops_alpha_like_the_official_loader():
    rgba = Image.fromarray(np.full((2, 2, 4), [10, 20, 30, 0], dtype=np.uint8), "RGBA")
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [10, 20, 30]


def test_real_fake_labels_come_from_folder_names(tmp_path):
    write_image(str(tmp_path / "1_fake" / "a.png"))  # only fakes: label 1, not 0 as ImageFolder would say
    write_image(str(tmp_path / "1_fake" / "deeper" / "b.png"))
    (tmp_path / "1_fake" / "notes.txt").write_text("not an image")
    assert [label for _, label in real_fake_samples(str(tmp_path))] == [1, 1]


def test_class_folders_are_concatenated(tmp_path):
    for cls in ("car", "cat"):
        for folder in ("0_real", "1_fake"):
            write_image(str(tmp_path / cls / folder / f"{cls}.png"))
    samples = real_fake_samples(str(tmp_path))
    assert [(os.path.relpath(path, tmp_path), label) for path, label in samples] == [
        ("car/0_real/car.png", 0),
        ("car/1_fake/car.png", 1),
        ("cat/0_real/cat.png", 0),
        ("cat/1_fake/cat.png", 1),
    ]
    assert len(real_fake_samples(str(tmp_path), classes=["cat"])) == 2


def test_layout_errors_name_the_folder(tmp_path):
    (tmp_path / "car").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found under 0_real/1_fake"):
        real_fake_samples(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="car: expected 0_real and/or 1_fake image folders"):
        real_fake_samples(str(tmp_path), classes=["car"])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        real_fake_samples(str(tmp_path / "absent"))


def test_stray_subfolders_are_skipped_and_reported(tmp_path):
    """.ipynb_checkpoints, a notes folder and a class with empty label folders hold no images:
    left out and reported, the real classes kept."""
    write_image(str(tmp_path / "car" / "0_real" / "a.png"))
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    (tmp_path / "empty" / "0_real").mkdir(parents=True)
    skipped = []
    samples = real_fake_samples(str(tmp_path), skipped=skipped)
    assert [os.path.relpath(path, tmp_path) for path, _ in samples] == ["car/0_real/a.png"]
    assert sorted(os.path.basename(reason.split(":")[0]) for reason in skipped) == [
        ".ipynb_checkpoints",
        "empty",
        "notes",
    ]


def test_classes_with_label_folders_at_the_root_are_refused(tmp_path):
    write_image(str(tmp_path / "0_real" / "a.png"))
    with pytest.raises(ValueError, match="holds 0_real/1_fake itself"):
        real_fake_samples(str(tmp_path), classes=["car", "dog"])


def test_two_links_to_one_folder_are_walked_once(tmp_path):
    """Sibling links that resolve to the same folder (and that folder itself) add its images once."""
    write_image(str(tmp_path / "store" / "a.png"))
    os.makedirs(tmp_path / "0_real")
    for name in ("link_1", "link_2"):
        os.symlink(tmp_path / "store", tmp_path / "0_real" / name)
    assert [os.path.relpath(p, tmp_path) for p in list_images(str(tmp_path / "0_real"))] == ["0_real/link_1/a.png"]
    os.symlink(tmp_path / "store", tmp_path / "store" / "again")
    assert [os.path.relpath(p, tmp_path) for p in list_images(str(tmp_path / "store"))] == ["store/a.png"]


def test_a_symlink_loop_is_walked_once(tmp_path):
    write_image(str(tmp_path / "0_real" / "a.png"))
    write_image(str(tmp_path / "0_real" / "sub" / "b.png"))
    os.symlink(".", tmp_path / "0_real" / "self")
    os.symlink("..", tmp_path / "0_real" / "sub" / "up")
    assert [os.path.relpath(p, tmp_path) for p in list_images(str(tmp_path / "0_real"))] == [
        "0_real/a.png",
        "0_real/sub/b.png",
    ]


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_images_too_small_for_the_detector_are_failures(tmp_path, size):
    path = write_image(str(tmp_path / "tiny.png"), size=size)
    item = ImageDataset([(path, 0)], eval_transform(PRESETS["GANGen-Detection"]))[0]
    assert isinstance(item, Failure) and "too small for the detector" in item.reason


def test_more_pixels_than_the_limit_is_a_failure_before_decoding(tmp_path):
    path = write_image(str(tmp_path / "big.png"), size=(64, 48))
    item = ImageDataset([(path, 0)], eval_transform(PRESETS["GANGen-Detection"]), max_pixels=64 * 48 - 1)[0]
    assert isinstance(item, Failure) and "64x48 = 3072 pixels, more than the limit of 3071" in item.reason
    assert not isinstance(ImageDataset([(path, 0)], eval_transform(PRESETS["GANGen-Detection"]), 64 * 48)[0], Failure)


@pytest.mark.parametrize(
    "preset,expected", [("ForenSynths", (3, 256, 256)), ("GANGen-Detection", (3, 48, 40)), ("val", (3, 224, 224))]
)
def test_presets_resize_and_crop(tmp_path, preset, expected):
    path = write_image(str(tmp_path / "x.png"), size=(40, 48))
    assert eval_transform(PRESETS[preset])(load_rgb(path)).shape == expected


def test_broken_files_are_reported_and_mixed_sizes_batch(tmp_path):
    paths = [
        write_image(str(tmp_path / f"{i}.png"), size=size, seed=i)
        for i, size in enumerate([(40, 48), (33, 17), (40, 48), (33, 17), (64, 64)])
    ]
    broken = write_broken_files(str(tmp_path / "broken"))
    dataset = ImageDataset(
        [(p, i % 2) for i, p in enumerate(paths + broken)], eval_transform(PRESETS["GANGen-Detection"])
    )
    batches = list(make_loader(dataset, batch_size=16, workers=2))
    assert len(batches) == 1
    groups, failures = batches[0].groups, batches[0].failures
    assert sorted(images.shape[0] for images, _, _ in groups) == [1, 2, 2]
    assert sorted(f.path for f in failures) == sorted(broken)
    assert all(isinstance(f, Failure) and f.reason for f in failures)
    seen = {p: (images[k], labels[k]) for images, labels, ps in groups for k, p in enumerate(ps)}
    assert sorted(seen) == sorted(paths)
    expected = eval_transform(PRESETS["GANGen-Detection"])(load_rgb(paths[1]))
    assert torch.equal(seen[paths[1]][0], expected) and seen[paths[1]][1] == 1


def test_generator_tree_helper(tmp_path):
    samples = make_generator_tree(str(tmp_path), per_class=2)
    assert real_fake_samples(str(tmp_path / "gan_a")) == samples["gan_a"]


# ---------------------------------------------------------------------------------- metrics
def test_metrics_by_hand():
    # scores ranked 0.9 (fake), 0.6 (real), 0.4 (fake), 0.1 (real): precision 1 at recall 1/2,
    # 2/3 at recall 1, so AP = 1/2 * 1 + 1/2 * 2/3.
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m.pop("classes") == "both"
    assert m == pytest.approx({"n": 4, "acc": 0.5, "ap": 0.5 + 1 / 3, "real_acc": 0.5, "fake_acc": 0.5})


def test_metrics_threshold_is_strictly_greater_than_half():
    m = binary_metrics([0, 1], [0.5, 0.5000001])
    assert m["real_acc"] == 1.0 and m["fake_acc"] == 1.0


def test_metrics_with_one_class_only():
    """scikit-learn's average precision, as validate.py reports it: 1.0 with fakes only, 0.0 with
    reals only; the accuracy of the absent subset is NaN (validate.py's accuracy_score fails)."""
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["fake_acc"] == pytest.approx(2 / 3) and math.isnan(m["real_acc"]) and m["ap"] == 1.0
    assert m["classes"] == "fake only"
    m = binary_metrics([0, 0], [0.2, 0.7])
    assert m["real_acc"] == 0.5 and math.isnan(m["fake_acc"]) and m["ap"] == 0.0 and m["classes"] == "real only"
    assert binary_metrics([0, 1], [0.2, 0.7])["classes"] == "both"
    empty = binary_metrics([], [])
    assert empty["n"] == 0 and math.isnan(empty["acc"]) and math.isnan(empty["ap"]) and empty["classes"] == "none"


def test_metrics_with_nan_probabilities():
    """A diverged model's NaN is no ranking: AP is NaN (scikit-learn raised), a NaN counts as
    not fake (NaN > 0.5 is false), as validate.py's threshold does."""
    m = binary_metrics([0, 0, 1, 1], [0.1, math.nan, 0.9, math.nan])
    assert math.isnan(m["ap"]) and m["acc"] == 0.75 and m["real_acc"] == 1.0 and m["fake_acc"] == 0.5


def test_json_safe_turns_nan_and_inf_into_null():
    record = {"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": "x", "e": 3}
    assert json.loads(json.dumps(json_safe(record), allow_nan=False)) == {
        "a": None,
        "b": [1.5, None, {"c": None}],
        "d": "x",
        "e": 3,
    }


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="equal-length"):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        binary_metrics([0, 2], [0.5, 0.5])


# ---------------------------------------------------------------------- Pillow's own limit
def test_importing_the_data_module_leaves_pillows_limit_alone():
    """A process that loads images for other reasons (a service handling uploads) keeps
    Pillow's decompression-bomb guard after importing the detector's data module."""
    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; "
        "import npr_cuda.detector.data; print(before, Image.MAX_IMAGE_PIXELS)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] != "None"


def test_the_projects_limit_replaces_pillows_only_inside_its_loading(tmp_path, monkeypatch):
    """Pillow's limit set low: an image under ours loads anyway, with no warning; Pillow's own
    guard is back, unchanged, once load_rgb returns; an image over ours fails with our reason."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = write_image(str(tmp_path / "a.png"), size=(40, 30))  # 1200 pixels: Pillow would refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_rgb(path, max_pixels=5000).size == (40, 30)
        assert load_rgb(path, max_pixels=None).size == (40, 30)
    assert Image.MAX_IMAGE_PIXELS == 100
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(ImageTooLarge, match="more than the limit of 1000"):
        load_rgb(path, max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == 100


# --------------------------------------------------------------------------- pinned batches
def test_batches_pin_their_tensors_for_the_loaders_pin_memory(tmp_path, monkeypatch):
    """DataLoader(pin_memory=True) pins what has a pin_memory() method: a Batch has one, which
    pins every group's images and labels (and keeps the paths and failures)."""
    pinned = []

    def fake_pin(tensor, *args, **kwargs):
        copy = tensor.clone()
        pinned.append(copy)
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    batch = Batch(groups=[(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), ["a", "b"])], failures=[Failure("c", "x")])
    result = pin_memory(batch, device=None)
    images, labels, paths = result.groups[0]
    assert any(images is p for p in pinned) and any(labels is p for p in pinned)
    assert paths == ["a", "b"] and result.failures == batch.failures
