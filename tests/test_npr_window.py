"""npr and npr_backward with any window size and anchor (the paper's ablation): the rule, the
author's two formulas, the backward rule, autograd, torch.compile, TorchScript and bad arguments,
on every device present."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from helpers.tensors import DEVICES, DTYPES, make_input
from torch._subclasses.fake_tensor import FakeTensorMode

from npr_cuda import npr, npr_backward
from npr_cuda.reference import author_padding_npr, author_unfold_npr, npr_reference
from npr_cuda.testing import assert_bitwise_equal, on_poisoned_memory, window_gradient, with_special_values

# (window, anchor): the default, other anchors of 2, the ablation's 3, 4 and 8, 1 (NPR = 0),
# non-square windows.
WINDOWS = [
    (2, (0, 0)),
    (2, (1, 1)),
    (3, (1, 2)),
    (4, (3, 3)),
    (8, (7, 0)),
    (1, (0, 0)),
    ((2, 3), (1, 2)),
    ((5, 1), (4, 0)),
]
# (H, W): multiples of the windows, partial windows at the edges, smaller than the window, rows
# of more whole windows than a vector has lanes (the CPU backward sums 4 chunks of lanes at a
# time, then one, the last moved back, and a row shorter than a chunk element by element), and
# row groups past 16 KiB (the CPU backward then copies them with its sums' loads, not memcpy).
SIZES = [(8, 24), (7, 9), (13, 6), (3, 2), (1, 1), (10, 141), (9, 1500)]
LAYOUTS = ["contiguous", "channels_last", "sliced"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window,anchor", WINDOWS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_both_passes_follow_the_rule_bitwise(device, dtype, window, anchor, size, layout, gen):
    x = make_input((2, 3, *size), dtype, device, layout, gen)
    expected = npr_reference(x, window, anchor)
    assert_bitwise_equal(on_poisoned_memory(lambda t: npr(t, window, anchor), x), expected)
    assert_bitwise_equal(author_padding_npr(x, window, anchor), expected)
    gradient = on_poisoned_memory(lambda t: npr_backward(t, window, anchor), x)
    assert_bitwise_equal(gradient, window_gradient(x.contiguous(), window, anchor))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window,anchor", [(2, (0, 0)), (3, (1, 2)), (4, (3, 3)), (8, (7, 0))])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_subnormals_follow_the_rule_bitwise(device, dtype, window, anchor, layout, gen):
    """Multiples of a quarter of the smallest normal, up to two of it: the differences and window
    sums are subnormal in places, and a kernel that flushed them to zero (as AVX512-BF16's
    rounding instruction does) would give other bits than the rule's."""
    x = make_input((2, 3, 10, 70), dtype, device, layout, gen)
    tiny = torch.finfo(dtype).tiny
    quarters = torch.randint(-8, 9, x.shape, generator=gen, dtype=torch.float64)
    x.copy_(quarters * tiny / 4)  # exact in every dtype; x keeps its layout
    expected = npr_reference(x, window, anchor)
    assert ((expected.abs() < tiny) & (expected != 0)).any()
    assert_bitwise_equal(on_poisoned_memory(lambda t: npr(t, window, anchor), x), expected)
    gradient = on_poisoned_memory(lambda t: npr_backward(t, window, anchor), x)
    expected_gradient = window_gradient(x.contiguous(), window, anchor)
    assert ((expected_gradient.abs() < tiny) & (expected_gradient != 0)).any()
    assert_bitwise_equal(gradient, expected_gradient)


# (shape, layout): ranks 2, 3 and 5, and the layouts the kernels read in place (channels_last_3d)
# or take through a contiguous copy (transposed, expanded with stride 0, sliced).
RANKS_AND_LAYOUTS = [
    ((7, 10), "contiguous"),
    ((3, 9, 7), "contiguous"),
    ((3, 9, 7), "sliced"),
    ((2, 3, 4, 9, 11), "contiguous"),
    ((2, 3, 4, 9, 11), "channels_last"),
    ((2, 3, 4, 9, 11), "sliced"),
    ((2, 3, 9, 11), "transposed"),
    ((2, 3, 9, 11), "expanded"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window,anchor", [(3, (1, 2)), (4, (3, 3)), ((2, 3), (1, 0))])
@pytest.mark.parametrize("shape,layout", RANKS_AND_LAYOUTS)
def test_any_rank_and_layout_with_nan_inf_and_signed_zeros(device, dtype, window, anchor, shape, layout, gen):
    """Both passes bitwise against the rule for windows other than 2, with NaN, +-Inf, -0 and +0
    among the values (subnormals: the test above)."""
    x = make_input(shape, dtype, device, layout, gen)
    source = x[:1] if layout == "expanded" else x  # expanded: every batch entry is one memory
    values = with_special_values(source.double().cpu(), gen)
    first_row = values[(0,) * (values.dim() - 2)][0]
    first_row[:4] = torch.tensor([math.nan, math.inf, -math.inf, -0.0])  # at least one of each
    if layout == "expanded":
        x = values.to(dtype=dtype, device=device).expand(shape)
    else:
        x.copy_(values)  # x keeps its layout
    expected = npr_reference(x, window, anchor)
    assert_bitwise_equal(on_poisoned_memory(lambda t: npr(t, window, anchor), x), expected)
    gradient = on_poisoned_memory(lambda t: npr_backward(t, window, anchor), x)
    assert_bitwise_equal(gradient, window_gradient(x.contiguous(), window, anchor))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("channels", [2, 3, 5, 8, 11, 16])
@pytest.mark.parametrize("window,anchor", [(4, (1, 3)), (6, (2, 5)), (8, (5, 6)), ((3, 8), (2, 7))])
def test_backward_of_channels_last_pixels_of_2_to_16_elements(device, dtype, channels, window, anchor, gen):
    """Rows of 300 pixels: the CPU backward sums the first pixels of several bfloat16 windows side
    by side there (int32 pairs gathered by permutes, 1 to 8 pairs per window), then the rest of
    the row with its per-element sums."""
    x = make_input((2, channels, 9, 300), dtype, device, "channels_last", gen)
    gradient = on_poisoned_memory(lambda t: npr_backward(t, window, anchor), x)
    assert_bitwise_equal(gradient, window_gradient(x.contiguous(), window, anchor))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("window", [2, 3, 4])
def test_the_author_unfold_formula_is_pixel_unshuffle_of_npr(device, window, gen):
    x = make_input((2, 3, 12, 24), torch.float32, device, "contiguous", gen)
    for j in range(window * window):
        expected = F.pixel_unshuffle(npr(x, window, (j // window, j % window)), window)
        assert_bitwise_equal(author_unfold_npr(x, window, j), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("window,anchor", WINDOWS[1:5])
def test_backward_equals_autograd_through_the_author_formula(device, dtype, window, anchor, gen):
    """Within rounding: the author's formula sums the window through nearest-upsample's backward
    in its own order."""
    x = make_input((2, 3, 11, 13), dtype, device, "contiguous", gen)
    grad = make_input((2, 3, 11, 13), dtype, device, "contiguous", gen)
    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(author_padding_npr(leaf, window, anchor), leaf, grad)
    torch.testing.assert_close(npr_backward(grad, window, anchor), expected)
    leaf = x.clone().requires_grad_(True)
    (through_npr,) = torch.autograd.grad(npr(leaf, window, anchor), leaf, grad)
    assert_bitwise_equal(through_npr, npr_backward(grad, window, anchor))


@pytest.mark.parametrize("window,anchor", [(3, (1, 2)), ((2, 3), (1, 0))])
def test_gradcheck_and_gradgradcheck(window, anchor, gen):
    x = make_input((1, 2, 7, 8), torch.float64, "cpu", "contiguous", gen).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: npr(t, window, anchor), (x,))
    assert torch.autograd.gradgradcheck(lambda t: npr(t, window, anchor), (x,))


@pytest.mark.parametrize("op", ["npr", "npr_backward"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck_with_windows(op, layout, gen):
    x = make_input((2, 3, 7, 10), torch.float32, "cpu", layout, gen).requires_grad_(True)
    torch.library.opcheck(getattr(torch.ops.npr_cuda, op).default, (x, [3, 4], [2, 1]))


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(dynamic, gen):
    compiled = torch.compile(lambda t: npr(t, 4, (1, 3)) * 2.0, fullgraph=True, dynamic=dynamic)
    for size in [(8, 12), (10, 9)]:
        x = make_input((2, 3, *size), torch.float32, "cpu", "contiguous", gen)
        assert_bitwise_equal(compiled(x), npr_reference(x, 4, (1, 3)) * 2.0)


@pytest.mark.parametrize("op,adjoint", [(npr, npr_backward), (npr_backward, npr)])
@pytest.mark.parametrize("window,anchor", [(2, (0, 0)), (3, (1, 1))])
def test_torch_compile_of_the_backward_compiled_autograd(op, adjoint, window, anchor, gen):
    """Compiled autograd traces each op's graph node as the adjoint op's call."""
    x = make_input((2, 3, 8, 9), torch.float32, "cpu", "contiguous", gen).requires_grad_(True)
    g = make_input((2, 3, 8, 9), torch.float32, "cpu", "contiguous", gen)
    with torch._dynamo.compiled_autograd._enable(torch.compile(backend="eager", fullgraph=True)):
        op(x, window, anchor).backward(g)
    assert_bitwise_equal(x.grad, adjoint(g, window, anchor))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript(gen):
    @torch.jit.script
    def scripted(x: torch.Tensor) -> torch.Tensor:
        return npr(x, 3, (2, 1))

    x = make_input((2, 3, 8, 10), torch.float32, "cpu", "contiguous", gen)
    assert_bitwise_equal(scripted(x), npr_reference(x, 3, (2, 1)))


@pytest.mark.parametrize("op", [npr, npr_backward])
@pytest.mark.parametrize(
    "window,anchor,error,message",
    [
        (0, (0, 0), ValueError, "expected a window of at least 1 x 1 pixels"),
        ((2, -1), (0, 0), ValueError, "expected a window of at least 1 x 1 pixels"),
        (3, (3, 0), ValueError, "expected an anchor (row, column) inside the 3 x 3 window"),
        (3, (0, -1), ValueError, "expected an anchor (row, column) inside the 3 x 3 window"),
        (2.5, (0, 0), TypeError, "expected window as an int or a pair of ints"),
        (True, (0, 0), TypeError, "expected window as an int or a pair of ints"),
        ((2, 3, 4), (0, 0), TypeError, "expected window as an int or a pair of ints"),
        (2, (0,), TypeError, "expected anchor as an int or a pair of ints"),
        (2, "00", TypeError, "expected anchor as an int or a pair of ints"),
        (2**63, (0, 0), ValueError, "expected window values within int64"),
        ((2, 3), (0, -(2**63) - 1), ValueError, "expected anchor values within int64"),
    ],
)
def test_bad_windows_and_anchors_name_the_op(op, window, anchor, error, message):
    with pytest.raises(error, match=f"{op.__name__}: " + re.escape(message)):
        op(torch.zeros(2, 4, 4), window, anchor)


def test_fake_kernels_check_windows_too():
    mode = FakeTensorMode()
    fake = mode.from_tensor(torch.zeros(2, 4, 4))
    with mode, pytest.raises(ValueError, match="npr: expected an anchor"):
        torch.ops.npr_cuda.npr(fake, [2, 2], [2, 0])


def test_a_window_larger_than_the_image_is_legal(gen):
    x = make_input((1, 1, 3, 5), torch.float32, "cpu", "contiguous", gen)
    out = npr(x, 8, (6, 7))  # every anchor clamps to the last row and column
    assert_bitwise_equal(out, x - x[..., 2:3, 4:5])
