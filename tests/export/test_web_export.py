"""npr-export --web without a browser: the folder it writes, where the runtime files come from
(a local onnxruntime-web at the pinned version, else one line and exit status 2 saying how to get
it), the folders it refuses or replaces whole, the NPR-map model's exactness, and the page's files
in the package data that wheels carry."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.checkpoints import write_random_detector
from helpers.cli import exit_message

import npr_cuda
from npr_cuda.cli import export as export_cli
from npr_cuda.export import web
from npr_cuda.export.web import (
    FILE_ASSETS,
    ONNXRUNTIME_WEB_VERSION,
    PAGE_FILES,
    RUNTIME_FILES,
    WebExportError,
    find_runtime,
)

pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_runtime(folder, version=ONNXRUNTIME_WEB_VERSION, files=RUNTIME_FILES, name="onnxruntime-web"):
    """An npm package folder laid out as onnxruntime-web's, with placeholder runtime files."""
    os.makedirs(os.path.join(folder, "dist"), exist_ok=True)
    with open(os.path.join(folder, "package.json"), "w") as f:
        json.dump({"name": name, "version": version}, f)
    for file in files:
        with open(os.path.join(folder, "dist", file), "w") as f:
            f.write(f"// {file}")
    return str(folder)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_random_detector(tmp_path_factory.mktemp("weights") / "w.pth")


def test_find_runtime_takes_the_package_its_dist_or_an_npm_prefix(tmp_path, monkeypatch):
    package = fake_runtime(tmp_path / "prefix" / "node_modules" / "onnxruntime-web")
    dist = os.path.join(package, "dist")
    for given in (package, dist, str(tmp_path / "prefix")):
        assert find_runtime(given) == dist
    monkeypatch.chdir(tmp_path / "prefix")
    assert os.path.samefile(find_runtime(None), dist)  # ./node_modules by default
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WebExportError, match=f"run `npm install onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}`"):
        find_runtime(None)


@pytest.mark.parametrize(
    "runtime,message",
    [
        ({"version": "1.0.0"}, f"found onnxruntime-web 1.0.0, need onnxruntime-web {ONNXRUNTIME_WEB_VERSION}"),
        ({"name": "left-pad"}, f"found left-pad {ONNXRUNTIME_WEB_VERSION}, need onnxruntime-web"),
        ({"files": RUNTIME_FILES[:2]}, "lacks ort-wasm-simd-threaded.wasm"),
        (None, f"no onnxruntime-web package; run `npm install onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}`"),
    ],
)
def test_web_without_the_pinned_runtime_is_one_line_and_exit_2(tmp_path, capsys, weights, runtime, message):
    where = fake_runtime(tmp_path / "ort", **runtime) if runtime is not None else str(tmp_path / "nothing")
    argv = ["--weights", weights, "--web", str(tmp_path / "page"), "--onnxruntime-web", where]
    exit_message(capsys, 2, export_cli.main, argv, message)
    assert not os.path.exists(tmp_path / "page")


def test_web_refuses_a_folder_it_did_not_write_and_options_meant_for_it(tmp_path, capsys, weights):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    runtime = fake_runtime(tmp_path / "ort")
    argv = ["--weights", weights, "--web", str(tmp_path / "mine"), "--onnxruntime-web", runtime]
    exit_message(capsys, 2, export_cli.main, argv, "not empty, and not a page npr-export wrote")
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    for extra in (["--max-pixels", "100"], ["--onnxruntime-web", runtime]):
        argv = ["--weights", weights, "--output", str(tmp_path / "m.onnx"), *extra]
        exit_message(capsys, 2, export_cli.main, argv, "for --web only")
    exit_message(capsys, 2, export_cli.main, ["--weights", weights, "--web", "a", "--output", "b.onnx"], "not allowed")


def file_assets(page):
    """What npr-file-assets.js gives the page opened from a file: its settings, and the files it
    carries as base64, decoded."""
    text = (page / FILE_ASSETS).read_text(encoding="ascii")
    assigned = next(line for line in text.splitlines() if line.startswith("globalThis.NprFileAssets = "))
    assets = json.loads(assigned.split(" = ", 1)[1].rstrip(";"))
    return {name: value if name == "config" else base64.b64decode(value) for name, value in assets.items()}


def test_web_writes_the_page_and_replaces_an_earlier_one_whole(tmp_path, capsys, weights, monkeypatch):
    runtime = fake_runtime(tmp_path / "ort")
    page = tmp_path / "page"
    argv = [
        "--weights",
        weights,
        "--web",
        str(page),
        "--onnxruntime-web",
        runtime,
        "--max-pixels",
        "1000",
        "--crop",
        "32",
    ]
    export_cli.main(argv)
    assert "npr_cuda.crop: 32" in capsys.readouterr().out
    written = sorted(os.path.relpath(os.path.join(d, n), page) for d, _, names in os.walk(page) for n in names)
    expected = [*PAGE_FILES, "detector.onnx", "npr-map.onnx", "npr-web.json", *(f"ort/{n}" for n in RUNTIME_FILES)]
    assert written == sorted([*expected, FILE_ASSETS])
    config = json.loads((page / "npr-web.json").read_text())
    assert (config["crop"], config["resize"], config["max_pixels"], config["min_side"]) == (32, None, 1000, 2)
    assert config["onnxruntime_web"] == ONNXRUNTIME_WEB_VERSION and config["metadata"]["npr_cuda.crop"] == "32"
    assert (page / "ort" / "ort.wasm.min.js").read_text() == "// ort.wasm.min.js"  # the runtime's files, as they are
    assert file_assets(page) == {
        "config": config,
        "loader": (page / "ort" / web.RUNTIME_LOADER).read_bytes(),
        "wasm": (page / "ort" / web.RUNTIME_BINARY).read_bytes(),
        "detector": (page / "detector.onnx").read_bytes(),
        "nprMap": (page / "npr-map.onnx").read_bytes(),
    }

    def fails_half_way(model, folder, *args):
        os.makedirs(folder)
        raise OSError("No space left on device")

    monkeypatch.setattr(web, "_write_folder", fails_half_way)
    with pytest.raises(OSError, match="No space left"):
        export_cli.main(argv)
    assert sorted(os.listdir(tmp_path)) == ["ort", "page"] and json.loads((page / "npr-web.json").read_text()) == config


@pytest.mark.parametrize("window,anchor", [((2, 2), (0, 0)), ((3, 3), (1, 2))])
def test_the_map_model_is_npr_cuda_npr_exactly(tmp_path, window, anchor):
    """npr-map.onnx in onnxruntime, bit for bit npr_cuda.npr of its input (the official window
    crops odd sizes to even first, as the detector does), at several sizes."""
    path = str(tmp_path / "map.onnx")
    web.export_npr_map(path, web.InputSpec(window, anchor))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    for height, width in ((33, 41), (2, 2), (64, 7)):
        x = torch.randn(2, 3, height, width)
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        cropped = x[..., : height - height % 2, : width - width % 2] if window == (2, 2) else x
        assert np.array_equal(out, npr_cuda.npr(cropped, window, anchor).numpy())


def test_the_package_data_carries_the_page(tmp_path):
    """setup.py build_py, which gives wheels their Python files, copies the page's files too (with
    a fresh egg-info: a stale one's file list would hide a missing package-data rule)."""
    (tmp_path / "egg").mkdir()
    command = ["egg_info", "--egg-base", str(tmp_path / "egg"), "build_py", "--build-lib", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    built = set(os.listdir(tmp_path / "npr_cuda" / "export" / "web_page"))
    assert set(PAGE_FILES) <= built, set(PAGE_FILES) - built


def test_the_browser_tests_skip_without_chromium_unless_ci_requires_them(monkeypatch):
    from helpers.browser import require_browser

    monkeypatch.setenv("NPR_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("NPR_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        require_browser()
    monkeypatch.setenv("NPR_REQUIRE_BROWSER", "1")
    with pytest.raises(
        pytest.fail.Exception, match="NPR_REQUIRE_BROWSER=1, but the browser tests cannot run: no Chromium"
    ):
        require_browser()


def test_the_docs_name_the_pinned_runtime():
    with open(os.path.join(ROOT, "docs", "deploy.md"), encoding="utf-8") as f:
        deploy = f.read()
    assert f"npm install onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}" in deploy
