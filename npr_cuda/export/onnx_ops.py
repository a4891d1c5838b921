"""The op as standard ONNX: a translation table for the dynamo ONNX exporter,

    torch.onnx.export(model, args, dynamo=True, custom_translation_table=ONNX_TRANSLATIONS)

``npr_cuda::npr`` becomes, per axis, the anchor index of every row and column, exactly the rule
of csrc/npr_rule.h, ``A(i, n, l, o) = min(l * (i // l) + o, n - 1)`` (int64 Range, Div, Mul,
Add, Min), two Gathers and a Sub. It is exact for any window, anchor, rank >= 2 and size, static
or dynamic. ``Resize`` in nearest mode would not be: it does not clamp a partial window's anchor,
and runtimes differ in its coordinate rules. bfloat16 is computed in float and rounded once, as
ATen does, through Casts, since onnxruntime's CPU kernels have no bfloat16 Sub.

The backward is not translated: an exported detector only infers, and ONNX has no scatter-add
whose summation order is defined, which a bitwise window sum would need.
"""

from typing import Sequence

import torch
from onnxscript import ir
from onnxscript import opset18 as op

OPSET = 18


def _anchor_indices(size, length: int, offset: int):
    """The anchor row (or column) of each of `size` rows: min(l * (i // l) + o, n - 1), int64."""
    i = op.Range(op.Constant(value_int=0), size, op.Constant(value_int=1))
    start = op.Mul(op.Div(i, op.Constant(value_int=length)), op.Constant(value_int=length))
    return op.Min(op.Add(start, op.Constant(value_int=offset)), op.Sub(size, op.Constant(value_int=1)))


def npr_onnx(x, window: Sequence[int] = (2, 2), anchor: Sequence[int] = (0, 0)):
    """``npr_cuda::npr(x, window, anchor)`` in ONNX ops (the schema's defaults, which the exported
    graph omits, are the official 2x2 window and its top-left anchor)."""
    (rows, columns), (row, column) = window, anchor
    dtype = x.dtype
    if dtype == ir.DataType.BFLOAT16:
        x = op.Cast(x, to=ir.DataType.FLOAT)
    height = op.Squeeze(op.Shape(x, start=-2, end=-1))
    width = op.Squeeze(op.Shape(x, start=-1))
    anchor_rows = op.Gather(x, _anchor_indices(height, rows, row), axis=-2)
    anchors = op.Gather(anchor_rows, _anchor_indices(width, columns, column), axis=-1)
    out = op.Sub(x, anchors)
    return op.Cast(out, to=ir.DataType.BFLOAT16) if dtype == ir.DataType.BFLOAT16 else out


ONNX_TRANSLATIONS = {torch.ops.npr_cuda.npr.default: npr_onnx}
