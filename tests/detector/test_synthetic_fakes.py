"""npr-demo's offline data: deterministic for a seed, near-identity fakes with their
up-sampler's trace, and the figure."""

import pytest
import torch
from PIL import Image

from npr_cuda.detector.synthetic_fakes import (
    FAMILIES,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    UpsamplingGenerator,
    figure,
    load_photo,
    make_split,
)
from npr_cuda.reference import npr_reference

PHOTOS = ["astronaut", "china"]


def test_every_photo_ships_offline():
    for name in TRAIN_PHOTOS + TEST_PHOTOS:
        photo = load_photo(name)
        assert photo.dtype.name == "uint8" and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 128
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)


def test_data_is_deterministic_for_a_seed():
    first, again, other = (make_split(PHOTOS, 3, 16, seed) for seed in (7, 7, 8))
    assert list(first) == ["real", *FAMILIES]
    for key in first:
        assert first[key].shape == (6, 3, 16, 16)
        assert torch.equal(first[key], again[key])
        assert not torch.equal(first[key], other[key])


@pytest.mark.parametrize("family", FAMILIES)
def test_fakes_look_like_their_input(family):
    photo = torch.from_numpy(load_photo("astronaut")[100:164, 200:264]).permute(2, 0, 1)[None].float() / 255
    fake = UpsamplingGenerator(family, seed=3)(photo)
    assert fake.shape == photo.shape and 0 <= fake.min() and fake.max() <= 1
    assert torch.equal(fake * 255, torch.round(fake * 255))  # 8-bit, like a saved image
    assert (fake - photo).abs().mean() < 0.08  # near-identity: about what a 2x down/up round trip loses
    assert abs(fake.mean() - photo.mean()) < 0.02  # same brightness (up to the borders of a transposed conv)
    if family == "nearest":  # the purest trace: every pixel equals its block's anchor
        assert torch.equal(npr_reference(fake), torch.zeros_like(fake))


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown up-sampler family 'lanczos'"):
        UpsamplingGenerator("lanczos", seed=0)


def test_figure(tmp_path):
    path = tmp_path / "f.png"
    figure(make_split(PHOTOS, 2, 16, 0), str(path), columns=2, zoom=2)
    image = Image.open(path)
    assert image.size == (150 + 2 * 2 * (32 + 4), 5 * (32 + 4) + 4)


def ring_over_interior(maps):
    """Mean of (N, H, W) maps on the outer 2-pixel ring over their mean inside it."""
    ring = torch.ones(maps.shape[-2:], dtype=torch.bool)
    ring[2:-2, 2:-2] = False
    return (maps[:, ring].mean() / maps[:, ~ring].mean()).item()


@pytest.mark.parametrize("seed", [0, 1])
def test_fakes_have_no_frame_that_the_reals_lack(seed):
    """The generators zero-pad; the kept interior must not carry that frame. With the frame (fakes
    generated at the crop size), the outer ring's mean |NPR| over the interior's was 4.6-6.6x the
    reals' for transposed convolution and pixel shuffle, and the ring 10-13% darker for transposed
    convolution; without it, 0.93-1.11x and within 4%, from crop-to-crop spread (20 crops of 5
    photos). The bounds sit between: 1.25x for |NPR|, 6% for brightness."""
    split = make_split(TEST_PHOTOS, 20, 64, seed)
    real_npr = ring_over_interior(npr_reference(split["real"]).abs().mean(1))
    real_brightness = ring_over_interior(split["real"].mean(1))
    for family in FAMILIES:
        fake_npr = npr_reference(split[family]).abs().mean(1)
        if family == "nearest":
            assert fake_npr.max() == 0  # nearest up-sampling: NPR exactly zero, everywhere
        else:
            assert 0.8 < ring_over_interior(fake_npr) / real_npr < 1.25, family
        assert abs(ring_over_interior(split[family].mean(1)) / real_brightness - 1) < 0.06, family
