"""Small generated image folders in the official layout, for the data and CLI tests."""

import os

import numpy as np
from PIL import Image


def write_image(path, size=(40, 48), mode="RGB", seed=0, fmt=None):
    """A random image of `size` (W, H) in PIL `mode`, saved at `path`."""
    rng = np.random.default_rng(seed)
    width, height = size
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode in ("I;16", "I"):
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "P":
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert("P")
        image.info["transparency"] = 0
    else:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    image.save(path, format=fmt)
    return path


def write_broken_files(folder):
    """A truncated PNG and a text file named like an image."""
    good = write_image(os.path.join(folder, "whole.png"), seed=99)
    with open(good, "rb") as f:
        data = f.read()
    os.remove(good)
    truncated = os.path.join(folder, "truncated.png")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    text = os.path.join(folder, "not_an_image.jpg")
    with open(text, "w") as f:
        f.write("hello")
    return [truncated, text]


def make_generator_tree(root, generators=("gan_a", "gan_b"), per_class=3, size=(40, 48)):
    """root/<generator>/{0_real,1_fake}/*.png; returns {generator: [(path, label), ...]}."""
    samples = {}
    for g, name in enumerate(generators):
        samples[name] = []
        for label, folder in enumerate(("0_real", "1_fake")):
            for i in range(per_class):
                path = write_image(
                    os.path.join(root, name, folder, f"{i}.png"), size=size, seed=100 * g + 10 * label + i
                )
                samples[name].append((path, label))
    return samples


def write_dataset(root, per_class=8, size=40, seed=0):
    """root/{train,val}/{0_real,1_fake}/*.png, `per_class` of each, for training. Real: noise.
    Fake: noise at half resolution, up-sampled by 2 (nearest): the trace NPR sees."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for label, folder in enumerate(("0_real", "1_fake")):
            os.makedirs(os.path.join(root, split, folder), exist_ok=True)
            for i in range(per_class):
                if label == 0:
                    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                else:
                    pixels = rng.integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
                Image.fromarray(pixels).save(os.path.join(root, split, folder, f"{i}.png"))
    return root
