"""The tools' progress where stderr is not a terminal (a log file, a pipe, pytest's capture):
one line per stage (a generator, a detection run, an epoch, a seed), no carriage return; and npr-demo's estimate
of the time left, said once, only after its steps were timed."""

import re

from helpers.checkpoints import write_random_detector
from helpers.image_folders import make_generator_tree, write_image

from npr_cuda.cli import demo as demo_cli
from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli
from npr_cuda.cli import train as train_cli


def test_detect_prints_one_line_for_its_images(tmp_path, capsys):
    weights = write_random_detector(tmp_path / "w.pth")
    images = [write_image(str(tmp_path / "images" / f"{i}.png"), seed=i) for i in range(3)]
    detect_cli.main([*images, "--weights", weights, "--workers", "0", "--device", "cpu", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert "\r" not in err
    assert len(re.findall(r"^npr-detect: 2/2 batches in [0-9.]+ s", err, re.M)) == 1, err


def test_train_prints_a_line_per_epoch_and_per_validation(tmp_path, capsys):
    for split in ("train", "val"):
        for label, folder in enumerate(("0_real", "1_fake")):
            for i in range(4):
                write_image(str(tmp_path / "data" / split / folder / f"{i}.png"), size=(40, 40), seed=10 * label + i)
    argv = [str(tmp_path / "data"), "--output", str(tmp_path / "run"), "--niter", "2", "--batch-size", "4"]
    argv += ["--load-size", "40", "--crop-size", "32", "--workers", "0", "--device", "cpu"]
    train_cli.main(argv)
    err = capsys.readouterr().err
    assert "\r" not in err
    for epoch in (1, 2):
        line = re.findall(rf"^epoch {epoch}/2: 2/2 batches in .*", err, re.M)
        assert len(line) == 1 and "loss=" in line[0] and "img_s=" in line[0], err
    assert len(re.findall(r"^validate: \d+/\d+ batch(es)? in ", err, re.M)) == 2, err


def test_demo_prints_a_line_per_seed_and_no_estimate_for_a_short_run(tmp_path, capsys):
    tiny = "--crops 2 --size 16 --epochs 1 --batch-size 8 --device cpu --seeds 2 --seed 5 --figure".split()
    demo_cli.main([*tiny, ""])
    err = capsys.readouterr().err
    assert "\r" not in err
    steps = demo_cli.math.ceil(2 * 2 * len(demo_cli.TRAIN_PHOTOS) / 8)
    assert steps < demo_cli.WARMUP_STEPS + demo_cli.TIMED_STEPS
    for seed in (5, 6):
        assert len(re.findall(rf"^seed {seed}: train on transposed_conv: {steps}/{steps} steps in ", err, re.M)) == 1
    assert "training left" not in err


def test_the_demo_estimate_times_only_steps_after_the_warmup():
    now = [0.0]
    estimate = demo_cli.TimeLeft(total_steps=100, clock=lambda: now[0])
    warmup, timed = demo_cli.WARMUP_STEPS, demo_cli.TIMED_STEPS
    said = []
    for step in range(1, 101):
        now[0] += 5.0 if step <= warmup else 0.25  # slow warm-up steps, then 0.25 s each
        said.append(estimate.step())
    assert said[: warmup + timed - 1] == [None] * (warmup + timed - 1)
    left = 0.25 * (100 - warmup - timed)
    assert said[warmup + timed - 1] == f"npr-demo: 100 training steps, 250 ms each: about {left:.0f} s of training left"
    assert [s for s in said if s] == [said[warmup + timed - 1]]  # said once


def test_eval_prints_a_line_per_generator(tmp_path, capsys):
    weights = write_random_detector(tmp_path / "w.pth")
    make_generator_tree(str(tmp_path / "tree"), generators=("gan_a", "gan_b"), per_class=2)
    eval_cli.main([str(tmp_path / "tree"), "--weights", weights, "--workers", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert "\r" not in err
    for generator in ("gan_a", "gan_b"):
        assert len(re.findall(rf"^{generator}: 1/1 batch in [0-9.]+ s", err, re.M)) == 1, err
