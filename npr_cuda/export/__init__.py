"""The detector out of Python (npr-export): ONNX for onnxruntime, AOTInductor packages for C++.

``ONNX_TRANSLATIONS`` (the op as standard ONNX ops, :mod:`.onnx_ops`) needs onnx and onnxscript,
the ``export`` extra; it is imported on first use, so that the ``.pt2`` path works without them.
"""

from .detector import (
    EXTRA,
    ExportError,
    InputSpec,
    check_request,
    describe,
    export_detector,
    load_exported,
    spec_from_metadata,
)

__all__ = ["ONNX_TRANSLATIONS", "ExportError", "InputSpec", "describe", "export_detector", "load_exported"]
__all__ += ["check_request", "spec_from_metadata"]


def __getattr__(name):
    if name == "ONNX_TRANSLATIONS":
        try:
            from .onnx_ops import ONNX_TRANSLATIONS
        except ImportError as error:
            raise ImportError(f"npr_cuda.export.ONNX_TRANSLATIONS needs onnxscript ({error}): {EXTRA}") from None
        return ONNX_TRANSLATIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
