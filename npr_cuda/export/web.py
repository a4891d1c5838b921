"""The detector as a static web page (npr-export --web DIR): a folder that a browser runs on the
visitor's own machine, with no server code and no upload.

    DIR/index.html, npr-*.js      the page and its scripts (package data, npr_cuda/export/web_page/)
    DIR/detector.onnx             the detector, exactly as npr-export writes it (with its metadata)
    DIR/npr-map.onnx              the NPR op alone, for the |NPR| map beside each image
    DIR/npr-web.json              what the page needs to know: size rules, pixel limit, metadata
    DIR/ort/                      onnxruntime-web's WASM build, at the pinned version
    DIR/npr-file-assets.js        the last three again, as base64 in a classic script: what the
                                  page loads when opened from a file, where browsers fetch nothing

The runtime files come from a local copy of the npm package ``onnxruntime-web`` at
:data:`ONNXRUNTIME_WEB_VERSION` (``npm install onnxruntime-web@VERSION``): npr-export downloads
nothing, and the 14 MB WebAssembly binary is not shipped inside this Python package. The folder is
written atomically: a failed export leaves the previous one, or nothing.
"""

import base64
import json
import os
import shutil
from importlib import resources
from typing import Dict, List, Optional

import torch
from torch import nn

from ..detector.data import DEFAULT_MAX_PIXELS, MIN_SIDE
from ..detector.model import DEFAULT_ANCHOR, DEFAULT_WINDOW, crop_to_even
from ..ops import npr
from ..output_paths import folder_problem
from .detector import ExportError, InputSpec, describe, export_detector, export_onnx

# The one place the runtime's version is named: .ci/run installs it, npr-export checks it.
ONNXRUNTIME_WEB_VERSION = "1.31.1"
# onnxruntime-web's WASM-only build: its classic script (the global `ort`), its Emscripten loader
# and the binary.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
RUNTIME_LOADER, RUNTIME_BINARY = RUNTIME_FILES[1:]
# The page, from npr_cuda/export/web_page/ (package data).
PAGE_FILES = ("index.html", "npr-page.css", "npr-page.js", "npr-decode.js", "npr-png.js", "npr-preprocess.js")
CONFIG_FILE = "npr-web.json"
FILE_ASSETS = "npr-file-assets.js"
RUNTIME_FOLDER = "ort"
INSTALL_HINT = f"npm install onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}"


class WebExportError(ExportError):
    """A web export that cannot be made: no runtime files, a folder that is not ours to replace."""


def find_runtime(path: Optional[str]) -> str:
    """The folder holding :data:`RUNTIME_FILES` of onnxruntime-web at the pinned version. `path` is
    the npm package's folder (``node_modules/onnxruntime-web``), its ``dist/``, or a folder with
    ``node_modules/`` in it; None looks in ``./node_modules``. WebExportError says how to get it."""
    given = path or "."
    nested = os.path.join(given, "node_modules", "onnxruntime-web")
    candidates = [nested] if path is None else [given, nested]
    candidates += [os.path.dirname(os.path.abspath(given))] if path is not None and _is_dist(given) else []
    for package in candidates:
        manifest = os.path.join(package, "package.json")
        if os.path.isfile(manifest):
            return _checked_dist(package, manifest, given)
    where = f"--onnxruntime-web {path}" if path else "no --onnxruntime-web given, and ./node_modules"
    raise WebExportError(
        f"--web needs onnxruntime-web {ONNXRUNTIME_WEB_VERSION}'s runtime files: {where} has no onnxruntime-web "
        f"package; run `{INSTALL_HINT}` and give --onnxruntime-web node_modules/onnxruntime-web"
    )


def _is_dist(folder: str) -> bool:
    return os.path.basename(os.path.normpath(folder)) == "dist"


def _checked_dist(package: str, manifest: str, given: str) -> str:
    """`package`'s dist/ folder, if it is onnxruntime-web at the pinned version with every file."""
    try:
        with open(manifest, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as error:
        raise WebExportError(f"--onnxruntime-web {given}: cannot read {manifest} ({error})") from None
    if info.get("name") != "onnxruntime-web" or info.get("version") != ONNXRUNTIME_WEB_VERSION:
        found = f"{info.get('name')} {info.get('version')}"
        raise WebExportError(
            f"--onnxruntime-web {given}: found {found}, need onnxruntime-web {ONNXRUNTIME_WEB_VERSION} "
            f"(`{INSTALL_HINT}`)"
        )
    dist = os.path.join(package, "dist")
    missing = [name for name in RUNTIME_FILES if not os.path.isfile(os.path.join(dist, name))]
    if missing:
        raise WebExportError(f"--onnxruntime-web {given}: {dist} lacks {', '.join(missing)} (`{INSTALL_HINT}`)")
    return dist


class NPRMap(nn.Module):
    """NPR of the normalised image, as the detector computes it before its ``* 2/3``: the official
    window crops odd sizes to even first, as ``NPRResNet.features`` does; another window takes the
    image whole."""

    def __init__(self, window, anchor):
        super().__init__()
        self.window, self.anchor = tuple(window), tuple(anchor)

    def forward(self, x):
        # The detector's own check; it also tells torch.export that H, W >= 2, without which
        # the crop's contiguity (for the op's fake kernel) would depend on the sizes.
        if x.dim() != 4 or x.shape[-2] < MIN_SIDE or x.shape[-1] < MIN_SIDE:
            raise ValueError(f"NPR map: expected images (N, 3, H, W) with H, W >= 2, got shape {tuple(x.shape)}")
        if self.window == DEFAULT_WINDOW and self.anchor == DEFAULT_ANCHOR:
            return npr(crop_to_even(x))
        return npr(x, self.window, self.anchor)


def export_npr_map(path: str, spec: InputSpec) -> None:
    """The NPR op alone as ONNX (the same exact translation as the detector's), input as the
    detector's: any batch, and any height and width unless the spec fixes the size."""
    export_onnx(NPRMap(spec.window, spec.anchor).eval(), path, spec)


def page_config(spec: InputSpec, max_pixels: int) -> Dict[str, object]:
    """npr-web.json: how the page prepares images (npr-detect's rules) and the runtime it loads."""
    return {
        "resize": spec.resize,
        "crop": spec.crop,
        "max_pixels": max_pixels,
        "min_side": MIN_SIDE,
        "onnxruntime_web": ONNXRUNTIME_WEB_VERSION,
        "metadata": describe(spec),
    }


def check_target(folder: str) -> None:
    """WebExportError unless `folder` is absent, empty, or a page npr-export wrote before."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise WebExportError(f"--web {folder}: exists and is not a folder")
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        raise WebExportError(f"--web {folder}: not empty, and not a page npr-export wrote (no {CONFIG_FILE})")
    # The page is written beside the folder and renamed into place: its parent must take both.
    problem = folder_problem(os.path.dirname(os.path.abspath(folder)))
    if problem:
        raise WebExportError(f"--web {folder}: its folder {problem}")


def _write_folder(model: nn.Module, folder: str, spec: InputSpec, runtime: str, max_pixels: int) -> None:
    os.makedirs(os.path.join(folder, RUNTIME_FOLDER))
    page = resources.files(__package__).joinpath("web_page")
    for name in PAGE_FILES:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(page.joinpath(name).read_bytes())
    for name in RUNTIME_FILES:
        shutil.copyfile(os.path.join(runtime, name), os.path.join(folder, RUNTIME_FOLDER, name))
    export_detector(model, os.path.join(folder, "detector.onnx"), spec)
    with torch.no_grad():
        export_npr_map(os.path.join(folder, "npr-map.onnx"), spec)
    config = page_config(spec, max_pixels)
    with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    write_file_assets(folder, config)


def write_file_assets(folder: str, config: Dict[str, object]) -> None:
    """FILE_ASSETS: `config`, the runtime's loader and binary and the two models of `folder`, as
    base64 strings in one classic script (global ``NprFileAssets``), for the page opened from a
    file: browsers run such a script there, where they fetch nothing and refuse modules."""

    def base64_of(*path: str) -> str:
        with open(os.path.join(folder, *path), "rb") as f:
            return base64.b64encode(f.read()).decode("ascii")

    assets = {
        "config": config,
        "loader": base64_of(RUNTIME_FOLDER, RUNTIME_LOADER),
        "wasm": base64_of(RUNTIME_FOLDER, RUNTIME_BINARY),
        "detector": base64_of("detector.onnx"),
        "nprMap": base64_of("npr-map.onnx"),
    }
    with open(os.path.join(folder, FILE_ASSETS), "w", encoding="ascii") as f:
        f.write("// Written by npr-export --web: what the page loads when opened from a file.\n")
        f.write(f"globalThis.NprFileAssets = {json.dumps(assets)};\n")


def export_web(
    model: nn.Module, folder: str, spec: InputSpec, runtime: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> List[str]:
    """Writes the page for `model` into `folder` (see the module doc), with the runtime files from
    `runtime` (:func:`find_runtime`). Built beside it and swapped in whole, so that a failure or an
    interruption leaves the previous folder, or none. Returns the files written, sorted."""
    folder = os.path.abspath(folder)
    check_target(folder)
    partial = f"{folder}.{os.getpid()}.partial"
    previous = f"{folder}.{os.getpid()}.previous"
    try:
        _write_folder(model, partial, spec, runtime, max_pixels)
        if os.path.isdir(folder):
            os.replace(folder, previous)
        try:
            os.replace(partial, folder)
        except OSError:
            if os.path.isdir(previous):
                os.replace(previous, folder)
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(previous, ignore_errors=True)
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names)
