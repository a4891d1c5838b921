"""npr-train --recipe GenImage: the recipe's settings and transforms, and resume, data workers
and interruption behaving as for the default recipe (the pixels of its train transform against
the official one: tests/detector/test_genimage.py)."""

import os
import signal

import pytest
import torch
from helpers.cli import exit_message
from helpers.image_folders import write_image
from helpers.training import assert_same_weights, log_of, signal_at_step, train_args, weights_of

import npr_cuda.detector.training as training
from npr_cuda.cli import train as train_cli
from npr_cuda.detector import genimage, load_detector, tiling

SIZES = [(20, 28), (12, 40), (33, 17), (32, 32), (40, 45)]  # (width, height), mostly below the crop of 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train/ and val/ with the recipe's class, sdv4 (8 real, 8 fake each), and another class
    that the recipe leaves out."""
    root = tmp_path_factory.mktemp("GenImage")
    for split in ("train", "val"):
        for cls, count in (("sdv4", 8), ("adm", 2)):
            for label, folder in enumerate(("0_real", "1_fake")):
                for i in range(count):
                    size = SIZES[(i + label) % len(SIZES)]
                    write_image(str(root / split / cls / folder / f"{i}.png"), size=size, seed=100 * label + i)
    return str(root)


def genimage_args(data, output, *extra):
    return train_args(data, output, "--recipe", "GenImage", *extra, resize=False)


def count_calls(monkeypatch, cls):
    """Counts the calls of `cls` instances (in this process: data workers 0)."""
    calls, call = [], cls.__call__

    def counted(self, *args):
        calls.append(1)
        return call(self, *args)

    monkeypatch.setattr(cls, "__call__", counted)
    return calls


def test_the_recipe_trains_one_epoch_of_sdv4_with_its_transforms(data, tmp_path, monkeypatch):
    train_calls = count_calls(monkeypatch, genimage.GenImageTrainTransform)
    validation_tiles = count_calls(monkeypatch, tiling.TranslateDuplicate)
    train_cli.main(genimage_args(data, tmp_path))
    (record,) = log_of(tmp_path)  # one epoch
    assert record["images"] == 16 and record["steps"] == 2 and 0 <= record["val_acc"] <= 1
    assert len(train_calls) == 16 and len(validation_tiles) == 16  # sdv4 only, train and val
    config = torch.load(tmp_path / "last.pth", weights_only=True)["config"]
    assert (config["recipe"], config["seed"], config["niter"], config["delr_freq"]) == ("GenImage", 70, 1, 20)
    load_detector(str(tmp_path / "last.pth"))


def test_options_override_the_recipe_and_the_default_recipe_is_unchanged():
    args = train_cli.parse_args(["d", "--output", "o", "--recipe", "GenImage", "--seed", "5", "--classes", "adm"])
    assert (args.seed, args.niter, args.delr_freq, args.classes) == (5, 1, 20, "adm")
    args = train_cli.parse_args(["d", "--output", "o"])
    assert (args.recipe, args.seed, args.niter, args.delr_freq, args.classes, args.load_size) == (
        "ForenSynths",
        100,
        50,
        10,
        "",
        256,
    )


def test_interrupted_and_resumed_it_ends_as_a_straight_run_with_any_workers(data, tmp_path, monkeypatch):
    """A straight run with 2 data workers, and one with none stopped by SIGTERM in its first
    step and resumed: bitwise the same weights."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    args = genimage_args(data, straight, "--val-split", "")
    args[args.index("--workers") + 1] = "2"
    train_cli.main(args)
    real_loss = signal_at_step(monkeypatch, signal.SIGTERM, 1)
    with pytest.raises(SystemExit) as stopped:
        train_cli.main(genimage_args(data, interrupted, "--val-split", ""))
    assert stopped.value.code == 128 + signal.SIGTERM
    saved = torch.load(interrupted / "last.pth", weights_only=True)
    assert (saved["epoch"], saved["step"]) == (0, 1)
    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", real_loss)
    train_cli.main(genimage_args(data, interrupted, "--val-split", "", "--resume", str(interrupted / "last.pth")))
    assert_same_weights(weights_of(straight), weights_of(interrupted))
    assert sorted(os.listdir(interrupted)) == sorted(os.listdir(straight))


def test_settings_the_recipe_has_no_place_for_are_refused(data, tmp_path, capsys):
    exit_message(capsys, 2, train_cli.main, genimage_args(data, tmp_path, "--load-size", "40"), "--load-size: the Gen")
    message = "--blur-prob: expected 0 with the GenImage recipe"
    exit_message(capsys, 2, train_cli.main, genimage_args(data, tmp_path, "--blur-prob", "0.5"), message)
    assert not os.path.exists(tmp_path / "last.pth")


def test_a_checkpoint_resumes_with_its_own_recipe_only(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_cli.main(genimage_args(data, run, "--val-split", "", "--niter", "1"))
    other = [data, "--output", str(run), "--classes", "sdv4", "--load-size", "40", "--crop-size", "32"]
    other += ["--batch-size", "8", "--device", "cpu", "--quiet", "--resume", str(run / "last.pth")]
    exit_message(
        capsys, 2, train_cli.main, other, r"--recipe: ForenSynths, but .*last.pth was trained with the GenImage"
    )
