"""Where the tools follow the official pipeline and where they differ on purpose: the mean row
over generator folders of one class, and the pixels of 16-bit images."""

import csv
import math
import os

import numpy as np
import pytest
import torch
from helpers.checkpoints import write_random_detector
from helpers.image_folders import make_generator_tree
from PIL import Image
from sklearn.metrics import average_precision_score

from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli
from npr_cuda.detector import load_detector
from npr_cuda.detector.data import PRESETS, eval_transform

RUN = ["--workers", "0", "--device", "cpu", "--quiet"]


@pytest.fixture
def weights(tmp_path):
    return write_random_detector(tmp_path / "weights.pth")


def test_one_class_folders_count_in_the_mean_as_the_official_test_does(tmp_path, weights, capsys):
    """validate.py's average_precision_score gives 1.0 for a folder of fakes only and 0.0 for one
    of reals only, and test.py averages every folder's AP: so does the mean row, which the table
    marks."""
    root = tmp_path / "set"
    make_generator_tree(str(root), generators=("both", "fakes", "reals"), per_class=2)
    for folder in ("fakes/0_real", "reals/1_fake"):
        for path in (root / folder).iterdir():
            path.unlink()
    out_csv = tmp_path / "t.csv"
    eval_cli.main([str(root), "--weights", weights, *RUN, "--csv", str(out_csv)])
    out = capsys.readouterr().out
    rows = {row["generator"]: row for row in csv.DictReader(open(out_csv))}
    assert (float(rows["fakes"]["ap"]), float(rows["reals"]["ap"])) == (1.0, 0.0)
    assert (rows["both"]["classes"], rows["fakes"]["classes"], rows["reals"]["classes"]) == (
        "both",
        "fake only",
        "real only",
    )
    assert float(rows["mean"]["ap"]) == pytest.approx((float(rows["both"]["ap"]) + 1.0 + 0.0) / 3)
    assert float(rows["mean"]["acc"]) == pytest.approx(
        sum(float(rows[g]["acc"]) for g in ("both", "fakes", "reals")) / 3
    )
    assert float(rows["both"]["ap"]) == pytest.approx(
        average_precision_score([0, 0, 1, 1], probabilities(weights, root / "both"))
    )
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines["fakes"].endswith("fake only") and lines["reals"].endswith("real only")
    assert "one class only" in out


def probabilities(weights, folder):
    images = [
        eval_transform(PRESETS["ForenSynths"])(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*/*.png"))
    ]
    with torch.no_grad():
        return torch.sigmoid(load_detector(weights)(torch.stack(images))).flatten().tolist()


def gradient_16bit(path):
    """A 16-bit grayscale gradient over the whole range: convert('RGB') clips it to 255 from
    value 255 on, almost all white; a shift by 8 bits keeps the gradient."""
    values = (np.arange(48 * 40, dtype=np.uint32).reshape(40, 48) * 34).astype(np.uint16)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(values).save(path)
    return path


class RecordingDetector:
    """Stands in for the FastDetector: keeps every batch it is given."""

    device = torch.device("cpu")

    def __init__(self):
        self.batches = []

    def __call__(self, images):
        self.batches.append(images)
        return torch.zeros(images.shape[0], 1)


def test_eval_presets_read_16bit_images_as_the_official_loader(tmp_path):
    path = gradient_16bit(str(tmp_path / "gan" / "1_fake" / "g.png"))
    for preset in ("ForenSynths", "GANGen-Detection", "val"):
        detector = RecordingDetector()
        eval_cli.generator_predictions(detector, "gan", [(path, 1)], PRESETS[preset], 4, 0, 10**8, progress=False)
        official = eval_transform(PRESETS[preset])(Image.open(path).convert("RGB"))
        assert torch.equal(detector.batches[0][0], official), preset


def test_detect_rescales_16bit_images_rather_than_clip_them(tmp_path, weights, capsys):
    path = gradient_16bit(str(tmp_path / "g.png"))
    detect_cli.main([path, "--weights", weights, *RUN])
    prob = float(capsys.readouterr().out.split("\t")[1])
    rescaled = Image.fromarray((np.asarray(Image.open(path), dtype=np.int64) >> 8).astype(np.uint8)).convert("RGB")
    clipped = Image.open(path).convert("RGB")
    by_hand = {}
    for name, image in (("rescaled", rescaled), ("clipped", clipped)):
        with torch.no_grad():
            by_hand[name] = torch.sigmoid(
                load_detector(weights)(eval_transform(PRESETS["GANGen-Detection"])(image)[None])
            ).item()
    assert not math.isclose(by_hand["rescaled"], by_hand["clipped"], abs_tol=1e-4)
    assert prob == pytest.approx(by_hand["rescaled"], abs=1e-6)
