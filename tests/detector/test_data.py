"""Image loading, the official folder layout, transforms, batching by size, and the metrics."""

import math
import os

import numpy as np
import pytest
import torch
from helpers.image_folders import make_generator_tree, write_broken_files, write_image
from PIL import Image

from npr_cuda.detector.data import (
    PRESETS,
    Failure,
    ImageDataset,
    eval_transform,
    list_images,
    load_rgb,
    make_loader,
    real_fake_samples,
    to_rgb,
)
from npr_cuda.detector.metrics import binary_metrics


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


def test_16bit_grayscale_is_rescaled_not_clipped():
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and (rgb[..., 0] == rgb[..., 2]).all()


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
    assert m == pytest.approx({"n": 4, "acc": 0.5, "ap": 0.5 + 1 / 3, "real_acc": 0.5, "fake_acc": 0.5})


def test_metrics_threshold_is_strictly_greater_than_half():
    m = binary_metrics([0, 1], [0.5, 0.5000001])
    assert m["real_acc"] == 1.0 and m["fake_acc"] == 1.0


def test_metrics_with_one_class_only():
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["fake_acc"] == pytest.approx(2 / 3) and math.isnan(m["real_acc"]) and math.isnan(m["ap"])


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="equal-length"):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        binary_metrics([0, 2], [0.5, 0.5])
