"""npr-eval --preset GenImage and npr-detect --tile against the official GenImage pipeline
(helpers.official_genimage: the README's tiling, the official transforms, ImageFolder,
validate.py's model and metrics), on a generated test tree of images below, at and above
224 pixels on each side, in several modes."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from helpers.checkpoints import write_random_detector
from helpers.cli import exit_message
from helpers.image_folders import write_image
from helpers.official_genimage import official_validate

from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli

GENERATORS = ("ADM", "sdv5")
SIZES = [(57, 113), (224, 224), (231, 226), (100, 300)]  # (width, height); more in tests/detector/test_genimage.py
MODES = ["RGB", "L", "RGBA", "P"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """test/<generator>/{0_real,1_fake}/*.png, as the official train.py's GenImage test config reads them."""
    root = tmp_path_factory.mktemp("GenImage") / "test"
    for g, generator in enumerate(GENERATORS):
        for label, folder in enumerate(("0_real", "1_fake")):
            for i, size in enumerate(SIZES[label::2]):
                mode = MODES[(g + label + i) % len(MODES)]
                write_image(
                    str(root / generator / folder / f"{i}.png"), size=size, mode=mode, seed=10 * g + 3 * label + i
                )
    return str(root)


@pytest.fixture(scope="module")
def weights(tree, tmp_path_factory):
    """Random weights, fc1's bias set so that the tree's median image sits at P(fake) 0.5: the
    accuracies then depend on which side of the threshold each image falls."""
    path = write_random_detector(tmp_path_factory.mktemp("weights") / "genimage.pth", fc1_std=0.05)
    probs = np.concatenate([official_validate(os.path.join(tree, g), path)["probs"] for g in GENERATORS])
    state = torch.load(path, weights_only=True)
    state["fc1.bias"] -= float(np.median(np.log(probs / (1 - probs))))
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def official(tree, weights):
    """{generator: validate.py's results} of the official pipeline."""
    return {generator: official_validate(os.path.join(tree, generator), weights) for generator in GENERATORS}


def eval_table(root, weights, table, capsys):
    """npr-eval --preset GenImage over `root`, its table written to `table` as CSV: the first
    line it printed and {generator: CSV row}."""
    argv = [root, "--weights", weights, "--preset", "GenImage", "--batch-size", "4", "--workers", "0"]
    eval_cli.main(argv + ["--device", "cpu", "--csv", str(table), "--quiet"])
    first_line = capsys.readouterr().out.splitlines()[0]
    with open(table) as f:
        return first_line, {row["generator"]: row for row in csv.DictReader(f)}


def test_eval_gives_the_official_metrics_per_generator(tree, weights, official, tmp_path, capsys):
    first_line, rows = eval_table(tree, weights, tmp_path / "table.csv", capsys)
    assert first_line.startswith("preset GenImage: resize False, crop True, tile 224; cpu;")
    assert list(rows) == [*GENERATORS, "mean"]
    for generator, expected in official.items():
        assert int(rows[generator]["n"]) == len(expected["probs"])
        for key in ("acc", "ap", "real_acc", "fake_acc"):
            assert abs(float(rows[generator][key]) - expected[key]) <= 1e-6, (generator, key)
    for key in ("acc", "ap"):  # the mean row, as test.py averages the generators
        mean = sum(expected[key] for expected in official.values()) / len(official)
        assert abs(float(rows["mean"][key]) - mean) <= 1e-6
    probs = np.concatenate([expected["probs"] for expected in official.values()])
    assert (probs > 0.5).sum() == (probs < 0.5).sum()  # as the weights were made: both sides of 0.5


def test_the_original_genimage_layout_linked_into_0_real_1_fake(tree, weights, tmp_path, capsys):
    """GenImage ships <generator>/val/{ai,nature}; linked as 0_real (nature) and 1_fake (ai), as
    docs/detector.md says, npr-eval reads the same images with the same labels."""
    original, linked = tmp_path / "original", tmp_path / "linked"
    for generator in GENERATORS:
        for ours, theirs in (("0_real", "nature"), ("1_fake", "ai")):
            os.makedirs(original / generator / "val", exist_ok=True)
            os.symlink(os.path.join(tree, generator, ours), original / generator / "val" / theirs)
            os.makedirs(linked / generator, exist_ok=True)
            os.symlink(original / generator / "val" / theirs, linked / generator / ours)
    argv = [str(original), "--weights", weights, "--preset", "GenImage", "--device", "cpu"]
    err = exit_message(capsys, 1, eval_cli.main, argv, "no generator folder with 0_real/1_fake images")
    assert all(f"skipping {original / generator}" in err for generator in GENERATORS)  # unlinked: named, not misread
    _, rows = eval_table(tree, weights, tmp_path / "a.csv", capsys)
    _, rows_linked = eval_table(str(linked), weights, tmp_path / "b.csv", capsys)
    assert rows_linked == rows


def test_detect_with_tile_and_crop_scores_as_the_official_pipeline(tree, weights, official, capsys):
    folder = os.path.join(tree, "ADM")
    argv = [folder, "--weights", weights, "--tile", "224", "--crop", "224", "--jsonl", "--workers", "0"]
    detect_cli.main(argv + ["--device", "cpu", "--quiet"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = official["ADM"]["probs"]  # ImageFolder's order: 0_real, then 1_fake, sorted
    assert [os.path.relpath(line["path"], folder) for line in lines] == [
        f"{folder}/{i}.png" for folder in ("0_real", "1_fake") for i in range(2)
    ]
    assert max(abs(line["prob_fake"] - prob) for line, prob in zip(lines, expected)) <= 1e-5


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--tile", "224", "--resize", "256"], "--tile 224 and --resize 256: tiling replaces the resize"),
        (["--tile", "100", "--crop", "224"], "--tile 100 is below --crop 224"),
        (["--tile", "0"], "--tile"),
    ],
)
def test_detect_refuses_tile_combinations_that_cannot_work(tree, weights, capsys, extra, message):
    argv = [os.path.join(tree, "ADM"), "--weights", weights, "--device", "cpu", *extra]
    exit_message(capsys, 2, detect_cli.main, argv, message)
