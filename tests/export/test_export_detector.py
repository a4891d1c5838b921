"""npr-export and npr-detect --model: the whole detector through .onnx (onnxruntime) and .pt2
(AOTInductor) gives the probabilities of npr-detect --weights within 1e-5, and every bad request
is one line and exit status 2, with nothing left half-written."""

import json
import os
import zipfile

import pytest
import torch
from helpers.checkpoints import write_random_detector
from helpers.cli import exit_message
from helpers.image_folders import write_image

from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import export as export_cli
from npr_cuda.export import detector as export_detector_module
from npr_cuda.export import spec_from_metadata

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

RUN = ["--workers", "0", "--device", "cpu", "--quiet", "--jsonl"]


@pytest.fixture
def images(tmp_path):
    sizes = [(40, 48), (33, 41), (40, 48), (2, 2), (57, 30)]  # odd sizes, the least the model takes
    return [write_image(str(tmp_path / "images" / f"{i}.png"), size=size, seed=i) for i, size in enumerate(sizes)]


def probabilities(capsys, argv):
    capsys.readouterr()
    detect_cli.main(argv + RUN)
    return [json.loads(line)["prob_fake"] for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("window,anchor", [(2, (0, 0)), (3, (1, 2))])
def test_onnx_any_size_matches_the_checkpoint(tmp_path, images, capsys, window, anchor):
    weights = write_random_detector(tmp_path / "w.pth", window, anchor, fc1_std=0.02)
    model = str(tmp_path / "npr.onnx")
    export_cli.main(["--weights", weights, "--output", model])
    printed = capsys.readouterr().out
    assert f"npr_cuda.window: {window},{window}" in printed and "ImageNet mean" in printed
    graph = onnx.load(model)  # standard operators only, no functions of another domain: data, no code
    assert {node.domain for node in graph.graph.node} == {""} and not graph.functions
    expected = probabilities(capsys, [*images, "--weights", weights])
    assert probabilities(capsys, [*images, "--model", model]) == pytest.approx(expected, abs=1e-5)
    assert len(expected) == len(images) and max(expected) - min(expected) > 1e-3  # not all alike
    assert all(0.05 < p < 0.95 for p in expected)  # where a change in the logits shows


def test_pt2_fixed_size_matches_the_checkpoint(tmp_path, images, capsys):
    weights = write_random_detector(tmp_path / "w.pth", fc1_std=0.02)
    model = str(tmp_path / "npr.pt2")
    export_cli.main(["--weights", weights, "--output", model, "--resize", "48"])
    runner = export_detector_module.load_exported(model, torch.device("cpu"))
    assert spec_from_metadata(runner.metadata).resize == 48
    with zipfile.ZipFile(model) as package:  # compiled code, run when loaded: npr-detect --help says so
        assert any(name.endswith(".so") for name in package.namelist())
    expected = probabilities(capsys, [*images, "--weights", weights, "--resize", "48"])
    assert probabilities(capsys, [*images, "--model", model]) == pytest.approx(expected, abs=1e-5)
    # The recorded preprocessing may be repeated, never changed.
    assert probabilities(capsys, [*images, "--model", model, "--resize", "48"]) == pytest.approx(expected, abs=1e-5)
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", model, "--crop", "32"], "exported for --resize 48")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--output", "{tmp}/m.txt"], r"unknown format \.txt; the output ends in \.onnx or \.pt2"),
        (["--output", "{tmp}/m"], r"unknown format \(no suffix\)"),
        (["--output", "{tmp}/m.pt2"], r"compiled for one image size: give --resize N or --crop N"),
    ],
)
def test_export_refuses_what_it_cannot_write(tmp_path, capsys, argv, message):
    weights = write_random_detector(tmp_path / "w.pth")
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    exit_message(capsys, 2, export_cli.main, ["--weights", weights, *argv], message)
    assert sorted(os.listdir(tmp_path)) == ["w.pth"]


def test_export_refuses_a_checkpoint_that_is_not_a_detector(tmp_path, capsys):
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    exit_message(capsys, 2, export_cli.main, ["--weights", str(tmp_path / "other.pth"), "--output", "m.onnx"], "other")


def test_export_without_onnxscript_names_the_extra(tmp_path, capsys, monkeypatch):
    weights = write_random_detector(tmp_path / "w.pth")
    monkeypatch.setitem(__import__("sys").modules, "npr_cuda.export.onnx_ops", None)  # as if not installed
    output = str(tmp_path / "m.onnx")
    exit_message(capsys, 2, export_cli.main, ["--weights", weights, "--output", output], r"npr-cuda\[export\]")
    assert not os.path.exists(output)


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def fails_half_way(model, path, spec):
        with open(path, "wb") as partial:
            partial.write(b"half a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(export_detector_module, "export_onnx", fails_half_way)
    weights = write_random_detector(tmp_path / "w.pth")
    (tmp_path / "m.onnx").write_bytes(b"the previous model")
    with pytest.raises(OSError, match="No space left"):
        export_cli.main(["--weights", weights, "--output", str(tmp_path / "m.onnx")])
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "w.pth"]
    assert (tmp_path / "m.onnx").read_bytes() == b"the previous model"


def test_detect_help_says_which_exported_files_run_code(capsys):
    with pytest.raises(SystemExit):
        detect_cli.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "A .pt2 holds compiled code that runs when it is loaded: load only packages you exported yourself" in help_text
    )
    assert "an .onnx file is data" in help_text


def test_detect_model_refuses_options_fixed_at_export(tmp_path, images, capsys):
    weights = write_random_detector(tmp_path / "w.pth")
    model = str(tmp_path / "npr.onnx")
    export_cli.main(["--weights", weights, "--output", model])
    for extra in (["--compile", "on"], ["--npr-window", "3"], ["--amp", "bf16"]):
        exit_message(capsys, 2, detect_cli.main, [*images, "--model", model, *extra], "for --weights only")
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", str(tmp_path / "m.bin")], "unknown format")
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", str(tmp_path / "absent.onnx")], "no such file")
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", model, "--weights", weights], "not allowed with")


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_detect_model_refuses_a_file_the_runtime_cannot_load(tmp_path, images, capsys, suffix):
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(b"not a model at all")
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", str(broken)], "cannot load it")


def test_detect_model_refuses_an_onnx_file_npr_export_did_not_write(tmp_path, images, capsys):
    import onnx

    plain = tmp_path / "plain.onnx"
    identity = onnx.helper.make_node("Identity", ["x"], ["y"])
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [identity], "g", [tensor("x", onnx.TensorProto.FLOAT, None)], [tensor("y", onnx.TensorProto.FLOAT, None)]
    )
    onnx.save(onnx.helper.make_model(graph), str(plain))
    exit_message(capsys, 2, detect_cli.main, [*images, "--model", str(plain)], "not a detector exported by npr-export")


def test_onnx_with_a_fixed_size_keeps_the_batch_dynamic(tmp_path, images, capsys):
    import onnxruntime

    weights = write_random_detector(tmp_path / "w.pth", fc1_std=0.02)
    model = str(tmp_path / "npr.onnx")
    export_cli.main(["--weights", weights, "--output", model, "--resize", "40", "--crop", "32"])
    assert "32x32 images" in capsys.readouterr().out
    (given,) = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()
    assert isinstance(given.shape[0], str) and given.shape[1:] == [3, 32, 32]
    expected = probabilities(capsys, [*images, "--weights", weights, "--resize", "40", "--crop", "32"])
    assert probabilities(capsys, [*images, "--model", model]) == pytest.approx(expected, abs=1e-5)
