"""The tools' exit statuses: a run that could read nothing fails (1, one line), and every output
path is checked before any work (2, one line), so that no run is refused after it is done."""

import pytest
from helpers.checkpoints import write_random_detector
from helpers.cli import exit_message
from helpers.image_folders import make_generator_tree, write_broken_files

from npr_cuda.cli import demo as demo_cli
from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import eval as eval_cli
from npr_cuda.cli import export as export_cli

RUN = ["--workers", "0", "--device", "cpu", "--quiet"]


@pytest.fixture
def weights(tmp_path):
    return write_random_detector(tmp_path / "weights.pth")


def no_work(*args, **kwargs):
    raise AssertionError("the run started before its outputs were checked")


def test_eval_fails_when_no_image_could_be_read(tmp_path, weights, capsys):
    root = tmp_path / "set"
    for label in ("0_real", "1_fake"):
        write_broken_files(str(root / "gan" / label))
    err = exit_message(capsys, 1, eval_cli.main, [str(root), "--weights", weights, *RUN])
    assert (
        "skipped 4 image(s)" in err and err.strip().splitlines()[-1] == "npr-eval: none of the 4 images could be read"
    )


def test_detect_fails_with_one_line_when_no_image_could_be_read(tmp_path, weights, capsys):
    broken = write_broken_files(str(tmp_path / "b"))
    err = exit_message(capsys, 1, detect_cli.main, [*broken, "--weights", weights, *RUN])
    assert err.strip().splitlines()[-1] == "npr-detect: none of the 2 images could be read"


def test_eval_of_a_root_whose_label_folders_are_empty(tmp_path, weights, capsys):
    for label in ("0_real", "1_fake"):
        (tmp_path / "set" / label).mkdir(parents=True)
    argv = [str(tmp_path / "set"), "--weights", weights, *RUN]
    exit_message(capsys, 1, eval_cli.main, argv, r"npr-eval: .*set: no images found under 0_real/1_fake")


@pytest.mark.parametrize(
    "output,message",
    [
        ("{tmp}/", r"is a folder, not a file"),
        ("{tmp}/absent/t.out", r"its folder does not exist \(.*absent\)"),
        ("{tmp}/weights.pth/t.out", r"weights.pth is not a folder"),
    ],
)
@pytest.mark.parametrize("flag", ["--csv", "--json"])
def test_eval_outputs_are_checked_before_the_run(tmp_path, weights, capsys, monkeypatch, flag, output, message):
    make_generator_tree(str(tmp_path / "set"), per_class=1)
    monkeypatch.setattr(eval_cli, "evaluate", no_work)
    argv = [str(tmp_path / "set"), "--weights", weights, *RUN, flag, output.format(tmp=tmp_path)]
    exit_message(capsys, 2, eval_cli.main, argv, f"npr-eval: {flag} .*{message}")


@pytest.mark.parametrize(
    "output,message",
    [
        ("{tmp}/absent/m.onnx", r"its folder does not exist \(.*absent\)"),
        ("{tmp}/absent/m.pt2", r"its folder does not exist \(.*absent\)"),
        ("{tmp}/m.onnx", r"is a folder, not a file"),
    ],
)
def test_export_output_is_checked_before_any_work(tmp_path, weights, capsys, monkeypatch, output, message):
    (tmp_path / "m.onnx").mkdir()
    monkeypatch.setattr(export_cli, "load_detector", no_work)
    argv = ["--weights", weights, "--output", output.format(tmp=tmp_path), "--resize", "32"]
    exit_message(capsys, 2, export_cli.main, argv, f"npr-export: --output .*{message}")


def test_export_web_folder_is_checked_before_any_work(tmp_path, weights, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr(export_cli, "load_detector", no_work)
    argv = ["--weights", weights, "--web", str(tmp_path / "a_file" / "page")]
    exit_message(capsys, 2, export_cli.main, argv, r"npr-export: --web .*page: its folder is a file, not a folder")


@pytest.mark.parametrize("flag", ["--json", "--figure"])
def test_demo_outputs_are_checked_before_any_work(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.setattr(demo_cli, "run_seed", no_work)
    argv = ["--device", "cpu", flag, str(tmp_path / "absent" / "out")]
    exit_message(capsys, 2, demo_cli.main, argv, f"npr-demo: {flag} .*its folder does not exist")
