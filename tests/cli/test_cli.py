"""npr-eval and npr-detect end to end, on tiny generated folders and random weights."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch
from helpers.image_folders import make_generator_tree, write_broken_files, write_image

from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli
from npr_cuda.detector import load_detector, npr_resnet50
from npr_cuda.detector.data import PRESETS, eval_transform, load_rgb
from npr_cuda.detector.metrics import binary_metrics


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = str(tmp_path / "weights.pth")
    model = npr_resnet50()
    with torch.no_grad():  # a non-trivial fc1 so that the probabilities spread out
        model.fc1.weight.normal_(0, 5)
    torch.save(model.state_dict(), path)
    return path


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
    assert "skipped 2 unreadable image(s)" in captured.err

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


def test_eval_rejects_a_wrong_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    with pytest.raises(SystemExit, match="npr-eval: checkpoint .*bad.pth: not a PyTorch checkpoint"):
        eval_cli.main([str(tmp_path), "--weights", str(bad), "--device", "cpu"])


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


def test_detect_fails_when_nothing_is_readable(tmp_path, weights):
    broken = write_broken_files(str(tmp_path / "b"))
    with pytest.raises(SystemExit) as exit_info:
        detect_cli.main(broken + ["--weights", weights, "--workers", "0", "--device", "cpu", "--quiet"])
    assert exit_info.value.code == 1
    with pytest.raises(SystemExit, match="no such file or folder"):
        detect_cli.main([str(tmp_path / "absent.png"), "--weights", weights])


@pytest.mark.parametrize(
    "tool,module",
    [
        ("npr-eval", "npr_cuda.cli.eval"),
        ("npr-detect", "npr_cuda.cli.detect"),
        ("npr-train", "npr_cuda.cli.train"),
        ("npr-demo", "npr_cuda.cli.demo"),
    ],
)
def test_console_scripts_and_python_m(tool, module):
    assert shutil.which(tool), f"{tool} is not installed (pip install -e . installs it)"
    for command in ([tool, "--help"], [sys.executable, "-m", module, "--help"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0 and f"usage: {tool}" in result.stdout
