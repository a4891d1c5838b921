"""npr-eval and npr-detect end to end, on tiny generated folders and random weights."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from helpers.checkpoints import write_random_detector
from helpers.cli import exit_message
from helpers.image_folders import make_generator_tree, write_broken_files, write_image
from PIL import Image

from npr_cuda.cli import common
from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli
from npr_cuda.detector import load_detector
from npr_cuda.detector.data import PRESETS, eval_transform, load_rgb
from npr_cuda.detector.metrics import binary_metrics


@pytest.fixture
def weights(tmp_path):
    return write_random_detector(tmp_path / "weights.pth")


def probability(weights, path, preset="ForenSynths"):
    image = eval_transform(PRESETS[preset])(load_rgb(path))
    with torch.no_grad():
        return torch.sigmoid(load_detector(weights)(image[None])).item()


def test_eval_table_csv_json_and_skipped_files(tmp_path, weights, capsys):
    root = tmp_path / "testset"
    samples = make_generator_tree(str(root), per_class=3)
    write_image(str(root / "gan_b" / "1_fake" / "odd.png"), size=(33, 27), seed=7)  # odd size, no resize: mixed sizes
    broken = write_broken_files(str(root / "gan_b" / "0_real"))
    samples["gan_b"].append((str(root / "gan_b" / "1_fake" / "odd.png"), 1))
    out_csv, out_json = tmp_path / "t.csv", tmp_path / "t.json"
    eval_cli.main(
        [
            str(root),
            "--weights",
            weights,
            "--preset",
            "GANGen-Detection",
            "--workers",
            "0",
            "--batch-size",
            "4",
            "--csv",
            str(out_csv),
            "--json",
            str(out_json),
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("preset GANGen-Detection: resize False, crop False; cpu;")
    assert [line.split()[0] for line in lines[2:]] == ["gan_a", "gan_b", "mean"]
    for name in broken:
        assert name in captured.err
    assert "skipped 2 image(s)" in captured.err

    rows = {row["generator"]: row for row in csv.DictReader(open(out_csv))}
    for name in ("gan_a", "gan_b"):  # the metrics of the probabilities computed here, one image at a time
        labels = [label for _, label in samples[name]]
        probs = [probability(weights, path, "GANGen-Detection") for path, _ in samples[name]]
        expected = binary_metrics(labels, probs)
        assert int(rows[name]["n"]) == expected["n"]
        for key in ("acc", "ap", "real_acc", "fake_acc"):
            assert float(rows[name][key]) == pytest.approx(expected[key], abs=1e-6)
    assert float(rows["mean"]["acc"]) == pytest.approx((float(rows["gan_a"]["acc"]) + float(rows["gan_b"]["acc"])) / 2)
    report = json.load(open(out_json))
    assert report["preset"] == "GANGen-Detection" and [r["generator"] for r in report["rows"]] == [
        "gan_a",
        "gan_b",
        "mean",
    ]


def test_eval_with_the_official_npr_gives_the_same_table(tmp_path, weights, capsys):
    root = tmp_path / "testset"
    make_generator_tree(str(root), generators=("only",), per_class=2)
    tables = []
    for impl in ("npr_cuda", "official"):
        eval_cli.main(
            [str(root / "only"), "--weights", weights, "--workers", "0", "--device", "cpu", "--npr", impl, "--quiet"]
        )
        tables.append(capsys.readouterr().out.splitlines()[1:])
    assert tables[0] == tables[1] and tables[0][1].split()[0] == "only"


def test_eval_rejects_a_wrong_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    argv = [str(tmp_path), "--weights", str(bad), "--device", "cpu"]
    exit_message(capsys, 2, eval_cli.main, argv, "npr-eval: checkpoint .*bad.pth: not a PyTorch checkpoint")


def test_detect_lines_in_input_order(tmp_path, weights, capsys):
    folder = tmp_path / "mine"
    paths = [
        write_image(str(folder / f"{i}.png"), size=size, seed=i)
        for i, size in enumerate([(64, 64), (30, 41), (64, 64)])
    ]
    single = write_image(str(tmp_path / "single.jpg"), size=(50, 50), seed=9, fmt="JPEG")
    broken = write_broken_files(str(folder / "broken"))
    detect_cli.main([single, str(folder), "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    lines = [line.split("\t") for line in captured.out.splitlines()]
    assert [line[0] for line in lines] == [single] + paths
    for path, prob, label in lines:
        expected = probability(weights, path, "GANGen-Detection")  # no resize, no crop by default
        assert float(prob) == pytest.approx(expected, abs=1e-6)
        assert label == ("fake" if float(prob) > 0.5 else "real")
    assert all(name in captured.err for name in broken)


def test_detect_jsonl_resize_and_crop(tmp_path, weights, capsys):
    path = write_image(str(tmp_path / "a.png"), size=(300, 280))
    detect_cli.main(
        [path, "--weights", weights, "--jsonl", "--resize", "256", "--crop", "224", "--workers", "0", "--device", "cpu"]
    )
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == path and record["label"] in ("real", "fake")
    assert record["prob_fake"] == pytest.approx(probability(weights, path, "val"), abs=1e-6)


def test_detect_fails_when_nothing_is_readable(tmp_path, weights, capsys):
    broken = write_broken_files(str(tmp_path / "b"))
    exit_message(capsys, 1, detect_cli.main, broken + ["--weights", weights, "--workers", "0", "--device", "cpu"])
    exit_message(capsys, 2, detect_cli.main, [str(tmp_path / "absent.png"), "--weights", weights], "no such file")


@pytest.mark.parametrize(
    "tool,module",
    [
        ("npr-eval", "npr_cuda.cli.eval"),
        ("npr-detect", "npr_cuda.cli.detect"),
        ("npr-train", "npr_cuda.cli.train"),
        ("npr-demo", "npr_cuda.cli.demo"),
        ("npr-export", "npr_cuda.cli.export"),
    ],
)
def test_console_scripts_and_python_m(tool, module):
    assert shutil.which(tool), f"{tool} is not installed (pip install -e . installs it)"
    for command in ([tool, "--help"], [sys.executable, "-m", module, "--help"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0 and f"usage: {tool}" in result.stdout


# ----------------------------------------------------- what real folders and users throw at them


def test_detect_skips_images_too_small_and_keeps_the_others(tmp_path, weights, capsys):
    good = write_image(str(tmp_path / "good.png"), size=(40, 40))
    tiny = [write_image(str(tmp_path / f"tiny{w}x{h}.png"), size=(w, h)) for w, h in [(1, 1), (1, 40), (40, 1)]]
    detect_cli.main([str(tmp_path), "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == [good]
    assert all(f"{path}: too small for the detector" in captured.err for path in tiny)


def test_eval_gangen_preset_with_a_tiny_image(tmp_path, weights, capsys):
    make_generator_tree(str(tmp_path / "set"), generators=("gan",), per_class=2)
    write_image(str(tmp_path / "set" / "gan" / "1_fake" / "tiny.png"), size=(1, 40))
    eval_cli.main([str(tmp_path / "set"), "--weights", weights, "--preset", "GANGen-Detection", "--workers", "0",
                   "--device", "cpu", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert "gan " in captured.out and "tiny.png: too small" in captured.err


def test_eval_skips_stray_folders_and_still_writes_everything(tmp_path, weights, capsys):
    root = tmp_path / "set"
    make_generator_tree(str(root), generators=("gan_a", "gan_b"), per_class=2)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("hi")
    (root / "gan_c" / "0_real").mkdir(parents=True)  # a generator with nothing in it
    out_csv = tmp_path / "t.csv"
    argv = [str(root), "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet", "--csv", str(out_csv)]
    eval_cli.main(argv)
    captured = capsys.readouterr()
    assert [row["generator"] for row in csv.DictReader(open(out_csv))] == ["gan_a", "gan_b", "mean"]
    assert all(f"skipping {root / name}" in captured.err for name in (".ipynb_checkpoints", "notes", "gan_c"))
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    exit_message(capsys, 1, eval_cli.main, [str(empty), "--weights", weights, "--device", "cpu"], "no generator folder")


def test_eval_checks_its_output_folders_before_the_run(tmp_path, weights, capsys):
    argv = [str(tmp_path), "--weights", weights, "--device", "cpu", "--csv", str(tmp_path / "no" / "t.csv")]
    exit_message(capsys, 2, eval_cli.main, argv, "its folder does not exist")


def test_a_decompression_bomb_is_skipped_quickly(tmp_path, weights, capsys):
    """A small PNG declaring 10000 x 10000 pixels: skipped before decoding, the rest kept."""
    bomb = str(tmp_path / "bomb.png")
    Image.new("1", (10000, 10000)).save(bomb)
    assert os.path.getsize(bomb) < 200_000
    good = write_image(str(tmp_path / "good.png"), size=(32, 32))
    detect_cli.main([bomb, good, "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == [good]
    assert "bomb.png: ImageTooLarge: 10000x10000 = 100000000 pixels, more than the limit of 16777216" in captured.err
    argv = [good, "--weights", weights, "--workers", "0", "--device", "cpu", "--max-pixels", "1023"]
    exit_message(capsys, 1, detect_cli.main, argv, "more than the limit of 1023")


def test_a_symlink_loop_does_not_multiply_images(tmp_path, weights, capsys):
    root = tmp_path / "set"
    make_generator_tree(str(root), generators=("gan",), per_class=1)
    os.symlink(".", root / "gan" / "1_fake" / "self")
    detect_cli.main([str(root), "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"])
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize(
    "tool,argv",
    [
        (detect_cli, ["--batch-size", "0"]),
        (detect_cli, ["--batch-size", "-1"]),
        (detect_cli, ["--workers", "-1"]),
        (detect_cli, ["--resize", "0"]),
        (detect_cli, ["--crop", "-3"]),
        (detect_cli, ["--max-pixels", "0"]),
        (eval_cli, ["--batch-size", "0"]),
        (eval_cli, ["--workers", "-1"]),
    ],
)
def test_bad_numbers_are_usage_errors(tmp_path, weights, capsys, tool, argv):
    exit_message(capsys, 2, tool.main, [str(tmp_path), "--weights", weights, *argv], "expected")


def test_non_utf8_file_names_print_escaped(tmp_path, weights):
    folder = os.fsencode(str(tmp_path))
    name = os.path.join(folder, b"caf\xe9.png")
    Image.new("RGB", (16, 16)).save(os.fsdecode(name))
    broken = os.path.join(folder, b"bad\xff.png")
    with open(broken, "wb") as f:
        f.write(b"not a png")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    command = ["npr-detect", str(tmp_path), "--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"]
    result = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert "caf\\xe9.png\t" in result.stdout.decode("utf-8")
    assert "bad\\xff.png: " in result.stderr.decode("utf-8")


def test_eval_and_detect_check_the_window_against_the_checkpoint(tmp_path, weights, capsys):
    """A raw state dict means the official window: asking for another is an error."""
    image = write_image(str(tmp_path / "a.png"), size=(32, 32))
    argv = [image, "--weights", weights, "--workers", "0", "--device", "cpu", "--npr-window", "3"]
    exit_message(capsys, 2, detect_cli.main, argv, r"trained with NPR window \(2, 2\), not \(3, 3\)")
    detect_cli.main([*argv[:-1], "2", "--npr-anchor", "0,0", "--quiet"])
    assert capsys.readouterr().out.startswith(image)


@pytest.mark.parametrize(
    "tool, extra, message",
    [
        (eval_cli, ["--preset", "GANGen-Detection"], "npr-eval: CUDA graphs need a CUDA device, not cpu"),
        (detect_cli, [], "npr-detect: CUDA graphs need a CUDA device, not cpu"),
    ],
)
def test_cuda_graphs_are_refused_where_they_cannot_work(tmp_path, weights, capsys, tool, extra, message):
    make_generator_tree(str(tmp_path / "set"), per_class=1)
    argv = [str(tmp_path / "set"), "--weights", weights, "--device", "cpu", "--cuda-graphs", *extra]
    exit_message(capsys, 2, tool.main, argv, message)


def test_eval_says_how_it_runs_the_model(tmp_path, weights, capsys):
    make_generator_tree(str(tmp_path / "set"), per_class=1)
    eval_cli.main([str(tmp_path / "set"), "--weights", weights, "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err
    assert "npr-eval: 4 images on cpu; model: batch norms folded, channels_last" in err
    assert "torch.compile" not in err  # auto: 4 images are far too few to pay for compiling


@pytest.mark.parametrize(
    "cores, device, cap, expected",
    [(2, "cpu", 8, 1), (16, "cpu", 8, 2), (16, "cuda", 8, 8), (16, "cuda", 4, 4), (2, "cuda", 8, 2)],
)
def test_default_data_workers(monkeypatch, cores, device, cap, expected):
    """On a CPU the model's threads take every core: one worker per 8; on a GPU one per core."""
    monkeypatch.setattr(common.os, "cpu_count", lambda: cores)
    assert common.default_workers(torch.device(device), cap) == expected
