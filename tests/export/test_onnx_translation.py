"""The op's ONNX translation (npr_cuda.export.onnx_ops) run by onnxruntime, bitwise against the
op, over windows, anchors, dtypes, ranks 2 to 5 and random sizes (odd, smaller than the window,
1), with NaN, Inf and -0 among the values: through one model exported with every size dynamic,
and through one with static sizes."""

import pytest
import torch

import npr_cuda
from npr_cuda.testing import assert_bitwise_equal, with_special_values

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from npr_cuda.export import ONNX_TRANSLATIONS  # noqa: E402
from npr_cuda.export.onnx_ops import OPSET  # noqa: E402

# The last two: far larger than any input, the translation's int64 indices giving the rule there too.
WINDOWS = [
    (2, (0, 0)),
    (3, (1, 2)),
    ((2, 3), (1, 2)),
    (4, (3, 3)),
    (1, (0, 0)),
    ((5, 1), (4, 0)),
    ((2**63 - 1, 3), (2**63 - 2, 1)),
    ((4, 2**32 + 1), (3, 2**32)),
]
RANKS = (2, 3, 4, 5)


class EveryWindow(torch.nn.Module):
    """npr of each input (one per rank) for each window and anchor: one export covers them all.
    numpy, and so onnxruntime's Python API, has no bfloat16: for it the model takes and gives
    float32 and casts to and from bfloat16 inside (exact both ways), so the translation still
    sees bfloat16."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, *inputs):
        if self.dtype == torch.bfloat16:
            inputs = [x.to(torch.bfloat16) for x in inputs]
        outputs = tuple(npr_cuda.npr(x, window, anchor) for x in inputs for window, anchor in WINDOWS)
        return tuple(y.float() for y in outputs) if self.dtype == torch.bfloat16 else outputs


def feed_dtype(dtype):
    return torch.float32 if dtype == torch.bfloat16 else dtype


def session_for(inputs, dynamic, path, dtype=None):
    shapes = tuple({d: torch.export.Dim.DYNAMIC for d in range(x.dim())} for x in inputs) if dynamic else None
    program = torch.onnx.export(
        EveryWindow(inputs[0].dtype if dtype is None else dtype),
        inputs,
        dynamo=True,
        custom_translation_table=ONNX_TRANSLATIONS,
        dynamic_shapes=(shapes,) if dynamic else None,
        opset_version=OPSET,
        verbose=False,
    )
    program.save(str(path))
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def random_inputs(gen, dtype, sizes=None):
    sizes = sizes or [int(v) for v in torch.randint(1, 12, (2 * len(RANKS),), generator=gen)]
    inputs = []
    for i, rank in enumerate(RANKS):
        lead = [2, 3, 1][: rank - 2]
        x = torch.randn(*lead, sizes[2 * i], sizes[2 * i + 1], generator=gen, dtype=torch.float64)
        inputs.append(with_special_values(x, gen).to(dtype))
    return tuple(inputs)


def assert_runs_bitwise(session, inputs, dtype):
    outputs = session.run(None, {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs)})
    expected = EveryWindow(dtype)(*inputs)
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert_bitwise_equal(torch.from_numpy(got), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dynamic_sizes_bitwise(dtype, gen, tmp_path):
    example = random_inputs(gen, feed_dtype(dtype), sizes=[6] * 8)
    session = session_for(example, dynamic=True, path=tmp_path / "npr.onnx", dtype=dtype)
    for _ in range(4):
        assert_runs_bitwise(session, random_inputs(gen, feed_dtype(dtype)), dtype)


def test_static_sizes_bitwise(gen, tmp_path):
    inputs = random_inputs(gen, torch.float32, sizes=[7, 9, 5, 1, 16, 13, 3, 4])
    assert_runs_bitwise(session_for(inputs, dynamic=False, path=tmp_path / "npr.onnx"), inputs, torch.float32)
