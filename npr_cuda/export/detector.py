"""The whole detector, input to logit, out of Python: an ONNX model for onnxruntime (``.onnx``) or
an AOTInductor package for C++ and Python (``.pt2``), and the runners that load either.

The exported graph is :class:`~npr_cuda.detector.model.NPRResNet` in eval mode: the crop to even
sizes (official window), ``npr(x) * 2/3`` with the checkpoint's window and anchor, the network,
the logit. What it expects, and how to preprocess for it, is written into the file's metadata
(:func:`describe`), which ``npr-detect --model`` reads back.
"""

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from ..detector.data import IMAGENET_MEAN, IMAGENET_STD

SUFFIXES = (".onnx", ".pt2")
EXTRA = "pip install 'npr-cuda[export]'"


class ExportError(ValueError):
    """A request that cannot be exported: an unknown suffix, a .pt2 without a fixed size."""


@dataclass(frozen=True)
class InputSpec:
    """The input an exported detector takes. `resize` and `crop` are the official test transforms
    (npr-detect's --resize N, --crop N); either fixes the image size, which a .pt2 needs."""

    window: Tuple[int, int]
    anchor: Tuple[int, int]
    resize: Optional[int] = None
    crop: Optional[int] = None

    @property
    def size(self) -> Optional[int]:
        return self.crop or self.resize


def describe(spec: InputSpec) -> Dict[str, str]:
    """The metadata written into an exported model: what it takes, and how it was made."""
    return {
        "npr_cuda.input": (
            "float32 NCHW RGB batch, pixels in [0, 1] normalised with the ImageNet mean "
            f"{IMAGENET_MEAN} and std {IMAGENET_STD}; "
            + (f"{spec.size}x{spec.size} images" if spec.size else "any height and width >= 2")
        ),
        "npr_cuda.output": "one logit per image; sigmoid(logit) is the probability of fake",
        "npr_cuda.resize": str(spec.resize or ""),
        "npr_cuda.crop": str(spec.crop or ""),
        "npr_cuda.window": f"{spec.window[0]},{spec.window[1]}",
        "npr_cuda.anchor": f"{spec.anchor[0]},{spec.anchor[1]}",
    }


def spec_from_metadata(metadata: Dict[str, str]) -> InputSpec:
    """The InputSpec that :func:`describe` wrote; ExportError for a file npr-export did not make."""
    try:
        window, anchor = (tuple(int(v) for v in metadata[f"npr_cuda.{key}"].split(",")) for key in ("window", "anchor"))
        resize, crop = (int(metadata[f"npr_cuda.{key}"] or 0) or None for key in ("resize", "crop"))
        return InputSpec(window, anchor, resize, crop)
    except (KeyError, ValueError):
        raise ExportError("not a detector exported by npr-export (its npr_cuda.* metadata is missing)") from None


def _example(spec: InputSpec) -> Tensor:
    size = spec.size or 64
    return torch.rand(2, 3, size, size)  # batch 2: export specialises sizes 0 and 1


def _dynamic_shapes(spec: InputSpec):
    """A dynamic batch always; dynamic height and width unless the spec fixes the size."""
    dynamic = {0: torch.export.Dim("batch", min=1, max=4096)}
    if spec.size is None:
        dynamic.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
    return {"x": dynamic}


def export_onnx(model: nn.Module, path: str, spec: InputSpec) -> None:
    try:
        from .onnx_ops import ONNX_TRANSLATIONS, OPSET
    except ImportError as error:
        raise ImportError(f"exporting to ONNX needs onnx and onnxscript ({error}): {EXTRA}") from None
    program = torch.onnx.export(
        model,
        (_example(spec),),
        dynamo=True,
        custom_translation_table=ONNX_TRANSLATIONS,
        dynamic_shapes=_dynamic_shapes(spec),
        opset_version=OPSET,
        verbose=False,
    )
    program.model.metadata_props.update(describe(spec))
    program.save(path, external_data=False)


def export_pt2(model: nn.Module, path: str, spec: InputSpec) -> None:
    device = next(model.parameters()).device
    program = torch.export.export(model, (_example(spec).to(device),), dynamic_shapes=_dynamic_shapes(spec))
    torch._inductor.aoti_compile_and_package(
        program, package_path=path, inductor_configs={"aot_inductor.metadata": describe(spec)}
    )


def check_request(path: str, size: Optional[int]) -> str:
    """The format `path` asks for (its suffix); ExportError for one that cannot be written."""
    suffix = os.path.splitext(path)[1]
    if suffix not in SUFFIXES:
        raise ExportError(f"{path}: unknown format {suffix or '(no suffix)'}; the output ends in .onnx or .pt2")
    if suffix == ".pt2" and size is None:
        raise ExportError("a .pt2 package is compiled for one image size: give --resize N or --crop N")
    return suffix


def export_detector(model: nn.Module, path: str, spec: InputSpec) -> Dict[str, str]:
    """Writes `model` (eval mode, CPU or CUDA) to `path` in the format its suffix names, atomically:
    a failure or an interruption leaves no file, and never half of one. Returns the metadata."""
    suffix = check_request(path, spec.size)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.partial{suffix}")
    try:
        with torch.no_grad():
            (export_onnx if suffix == ".onnx" else export_pt2)(model.eval(), temporary, spec)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return describe(spec)


class OnnxDetector:
    """An exported .onnx detector in onnxruntime, called like a model: a CPU batch to logits."""

    def __init__(self, path: str, device: torch.device):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(f"running an .onnx model needs onnxruntime: {EXTRA}") from None
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(path, providers=providers)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.description = f"onnxruntime ({', '.join(self.session.get_providers())})"

    def __call__(self, images: Tensor) -> Tensor:
        (logits,) = self.session.run(None, {self.input_name: images.float().contiguous().numpy()})
        return torch.from_numpy(logits)


class Pt2Detector:
    """An exported .pt2 AOTInductor package, called like a model: a CPU batch to logits."""

    def __init__(self, path: str, device: torch.device):
        self.runner = torch._inductor.aoti_load_package(path)
        self.metadata = dict(self.runner.get_metadata())
        self.device = torch.device(self.metadata.get("AOTI_DEVICE_KEY", "cpu"))
        self.description = f"AOTInductor package ({self.device})"

    def __call__(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.runner(images.float().to(self.device)).cpu()


def load_exported(path: str, device: torch.device) -> Callable[[Tensor], Tensor]:
    """The runner for an exported detector, by its suffix: OnnxDetector or Pt2Detector, each with
    ``metadata`` (what :func:`describe` wrote) and ``description``."""
    suffix = os.path.splitext(path)[1]
    if suffix not in SUFFIXES:
        raise ExportError(f"{path}: unknown format {suffix or '(no suffix)'}; expected an .onnx or .pt2 file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    runner = OnnxDetector if suffix == ".onnx" else Pt2Detector
    try:
        return runner(path, device)
    except ImportError:
        raise
    except Exception as error:  # the runtimes' own errors for a file they cannot read
        what = "onnxruntime" if suffix == ".onnx" else "AOTInductor"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{path}: {what} cannot load it ({first_line})") from None
