"""The npr_cuda::npr and npr_cuda::npr_backward ops: values, layouts, autograd, torch.compile,
TorchScript and bad input, on every device present."""

import os
import platform
import re
import subprocess
import sys

import pytest
import torch
from helpers.tensors import DEVICES, DTYPES, assert_equal_values, make_input, randn, requires_cuda
from torch._subclasses.fake_tensor import FakeTensorMode

import npr_cuda
from npr_cuda import npr, npr_backward
from npr_cuda.reference import npr_reference, official_npr
from npr_cuda.testing import assert_bitwise_equal, official_expected, official_gradient, on_poisoned_memory

# (H, W): even, odd, and the degenerate 1-wide cases.
SIZES = [(6, 8), (5, 7), (1, 1), (1, 6), (7, 1), (2, 2), (4, 3)]
BATCH = {2: (), 3: (3,), 4: (2, 3), 5: (2, 3, 2)}
LAYOUTS = ["contiguous", "channels_last", "sliced", "transposed", "expanded"]


def shape_of(rank, size):
    return (*BATCH[rank], *size)


def assert_both_passes_match_official(x):
    """npr(x) bitwise and npr_backward(x) value for value against the official formula, each
    into poisoned memory (an element left unwritten fails)."""
    assert_bitwise_equal(on_poisoned_memory(npr, x), official_expected(x))
    assert_equal_values(on_poisoned_memory(npr_backward, x), official_gradient(torch.zeros_like(x), x))


def skip_unsupported(rank, layout):
    if layout == "channels_last" and rank not in (4, 5):
        pytest.skip("channels_last exists for 4-D and 5-D tensors only")
    if layout == "expanded" and rank == 2:
        pytest.skip("a 2-D tensor has no batch dimension to expand")


# ---------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [2, 3, 4, 5])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_matches_official_bitwise(device, dtype, rank, size, layout, gen):
    skip_unsupported(rank, layout)
    x = make_input(shape_of(rank, size), dtype, device, layout, gen)
    expected = official_expected(x)
    assert_bitwise_equal(on_poisoned_memory(npr, x), expected)
    assert_bitwise_equal(npr_reference(x), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_forward_on_a_detector_sized_batch(device, dtype, layout, gen):
    """Large enough for several CPU threads and many CUDA blocks, vectorised paths included."""
    x = make_input((4, 3, 66, 224), dtype, device, layout, gen)
    assert_bitwise_equal(on_poisoned_memory(npr, x), official_npr(x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [15, 16, 17, 31, 32, 33, 37, 40, 64, 65])
def test_vector_chunks_and_their_tails(device, dtype, width, gen):
    """Widths around the SIMD chunk sizes (8 to 32 elements): vector body plus scalar tail."""
    for layout in ("contiguous", "channels_last"):
        assert_both_passes_match_official(make_input((2, 3, 5, width), dtype, device, layout, gen))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [2, 4, 5, 16, 40])
def test_channels_last_pixel_widths(device, dtype, channels, gen):
    """channels_last pixels of C elements: anchors one pixel back or on, vectors straddling
    pixels, pixels wider than a vector, odd widths (a last pixel without a right neighbour)."""
    for width in (1, 2, 3, 7, 12, 33):
        assert_both_passes_match_official(make_input((2, channels, 5, width), dtype, device, "channels_last", gen))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_unaligned_storage_offset(device, dtype, gen):
    """A view one element into its storage: rows not 16-byte aligned (the scalar CUDA path)."""
    base = randn((2 * 3 * 8 * 16 + 1,), dtype, device, gen)
    x = base[1:].view(2, 3, 8, 16)
    assert_bitwise_equal(on_poisoned_memory(npr, x), official_npr(x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "rank,layout,fmt",
    [
        (4, "contiguous", torch.contiguous_format),
        (4, "channels_last", torch.channels_last),
        (5, "channels_last", torch.channels_last_3d),
        (4, "transposed", torch.contiguous_format),
    ],
)
def test_output_memory_format(device, rank, layout, fmt, gen):
    x = make_input(shape_of(rank, (6, 8)), torch.float32, device, layout, gen)
    for out in (npr(x), npr_backward(x)):
        assert out.is_contiguous(memory_format=fmt)
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_like_the_reference(device, dtype, gen):
    # 40 columns: SIMD chunks and a scalar tail, NCHW and channels_last.
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = make_input((2, 3, 6, 40), dtype, device, "contiguous", gen)
        special = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
        where = torch.randint(0, x.numel(), (200,), generator=gen)
        x.view(-1)[where] = special[torch.arange(200) % 3].to(device)
        x[..., 0, 0] = float("inf")  # an anchor: its whole block becomes NaN or -inf
        x[..., 2, 2] = float("nan")
        x = x.contiguous(memory_format=fmt)
        out = npr(x)
        assert out.isnan().any() and out.isinf().any()
        assert_bitwise_equal(out, official_npr(x))
        assert_equal_values(npr_backward(x), official_gradient(torch.zeros_like(x), x))


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_nan_payloads_stay_nan(device, gen):
    """NaNs with every payload and sign, signalling ones too, at anchors and elsewhere: the
    bfloat16 kernels round without a NaN special case, which must not turn any into a number."""
    x = make_input((2, 4, 64), torch.bfloat16, device, "contiguous", gen)
    payloads = torch.tensor([0x7FFF, 0xFFFF, 0x7F81, 0xFF81, 0x7FC0, 0xFFC1], dtype=torch.int32).to(torch.int16)
    bits = x.view(torch.int16)
    bits[0, :, :6] = payloads.to(device)  # columns 0-5 of every row: anchors and their neighbours
    bits[1, 1::2, 7:13] = payloads.to(device)  # odd rows only
    assert x.isnan().sum() == 4 * 6 + 2 * 6
    assert_bitwise_equal(npr(x), official_npr(x[None])[0])
    assert_equal_values(npr_backward(x), official_gradient(torch.zeros_like(x), x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4), (2, 3, 4, 0), (0, 0)])
def test_zero_size_gives_empty_result(device, shape):
    x = torch.empty(shape, device=device)
    for op in (npr, npr_backward):
        out = op(x)
        assert out.shape == x.shape and out.numel() == 0


@pytest.mark.parametrize("layout,copies", [("contiguous", False), ("channels_last", False), ("transposed", True)])
def test_input_read_in_place(layout, copies, gen):
    """NCHW-contiguous and channels_last inputs are read where they are; other strides are
    copied first (which the profiler sees as an aten::copy_)."""
    x = make_input((2, 3, 8, 8), torch.float32, "cpu", layout, gen)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        npr(x)
    names = {event.name for event in prof.events()}
    assert ("aten::copy_" in names) == copies, sorted(names)


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("op", [npr, npr_backward])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_one_cuda_kernel_per_call(op, layout, gen):
    x = make_input((4, 3, 64, 64), torch.float32, "cuda", layout, gen)
    op(x)  # warm-up: module loading stays out of the trace
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        op(x)
        torch.cuda.synchronize()
    kernels = [event.name for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA]
    assert len(kernels) == 1, kernels


def test_poisoning_reaches_the_output(gen):
    """on_poisoned_memory() only tests something if the freed NaN block becomes the output."""
    for layout in ("contiguous", "channels_last"):
        x = make_input((2, 3, 6, 8), torch.float32, "cpu", layout, gen)
        assert on_poisoned_memory(torch.empty_like, x).isnan().all()


def test_reference_equals_official_on_even_sizes(gen):
    x = make_input((2, 3, 8, 10), torch.float32, "cpu", "contiguous", gen)
    assert_bitwise_equal(npr_reference(x), official_npr(x))


# --------------------------------------------------------------------------------- backward


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [2, 4, 5])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_matches_official_autograd(device, dtype, rank, size, layout, gen):
    skip_unsupported(rank, layout)
    grad = make_input(shape_of(rank, size), dtype, device, layout, gen)
    expected = official_gradient(torch.zeros_like(grad), grad)
    assert_equal_values(on_poisoned_memory(npr_backward, grad), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_autograd_uses_npr_backward(device, dtype, layout, gen):
    x = make_input((2, 3, 7, 10), dtype, device, layout, gen).requires_grad_(True)
    grad = make_input((2, 3, 7, 10), dtype, device, layout, gen)
    npr(x).backward(grad)
    assert_bitwise_equal(x.grad, npr_backward(grad))
    assert_equal_values(x.grad, official_gradient(x, grad))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [(4, 6), (5, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_gradcheck_and_gradgradcheck(device, size, layout, gen):
    x = make_input((2, 3, *size), torch.float64, device, layout, gen).requires_grad_(True)
    assert torch.autograd.gradcheck(npr, (x,))
    assert torch.autograd.gradgradcheck(npr, (x,))
    assert torch.autograd.gradcheck(npr_backward, (x,))


# ------------------------------------------------------------------ torch.library and compile


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["npr", "npr_backward"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, op, layout, requires_grad, gen):
    x = make_input((2, 3, 6, 5), torch.float32, device, layout, gen).requires_grad_(requires_grad)
    torch.library.opcheck(getattr(torch.ops.npr_cuda, op).default, (x,))


def scaled_npr(x):
    return npr(x) * 2.0 / 3.0  # the detector's input


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(device, dynamic, gen):
    torch._dynamo.reset()
    compiled = torch.compile(scaled_npr, fullgraph=True, dynamic=dynamic)
    for shape in [(2, 3, 8, 10), (1, 3, 12, 6)]:  # a second shape: recompiles or stays dynamic
        x = make_input(shape, torch.float32, device, "contiguous", gen).requires_grad_(True)
        out = compiled(x)
        assert_bitwise_equal(out, scaled_npr(x))
        out.sum().backward()
        assert_bitwise_equal(x.grad, npr_backward(torch.full_like(x, 2.0 / 3.0)))
    explanation = torch._dynamo.explain(scaled_npr)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript(gen):
    @torch.jit.script
    def scripted(x: torch.Tensor) -> torch.Tensor:
        return npr(x) * 2.0 / 3.0

    x = make_input((2, 3, 8, 10), torch.float32, "cpu", "contiguous", gen).requires_grad_(True)
    assert "npr_cuda::npr(" in str(scripted.inlined_graph)
    out = scripted(x)
    assert_bitwise_equal(out, scaled_npr(x))
    out.sum().backward()
    assert_bitwise_equal(x.grad, npr_backward(torch.full_like(x, 2.0 / 3.0)))


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("op", [npr, npr_backward])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_rejects_non_floating_dtypes(op, dtype):
    with pytest.raises(
        TypeError,
        match=r"npr\w*: expected a floating-point tensor \(float32, float64, float16 or bfloat16\), got dtype",
    ):
        op(torch.zeros(2, 4, 4, dtype=dtype))


@pytest.mark.parametrize("op", [npr, npr_backward])
@pytest.mark.parametrize("shape", [(), (5,)])
def test_rejects_fewer_than_two_dims(op, shape):
    with pytest.raises(
        ValueError, match=r"npr\w*: expected a tensor with at least 2 dimensions \(\.\.\., H, W\), got shape"
    ):
        op(torch.zeros(shape))


@pytest.mark.parametrize("op", ["npr", "npr_backward"])
@pytest.mark.parametrize("bad", ["rank", "dtype"])
def test_fake_kernels_reject_what_the_kernels_reject(op, bad):
    """The fake kernels run the real checks: a bad input fails when torch.compile traces it, with
    the real kernel's message, not later at run time."""
    x = torch.zeros(5) if bad == "rank" else torch.zeros(4, 4, dtype=torch.int32)
    real_op = getattr(torch.ops.npr_cuda, op)
    with pytest.raises((ValueError, TypeError)) as real:
        real_op(x)
    mode = FakeTensorMode()
    fake = mode.from_tensor(x)
    with mode, pytest.raises(type(real.value), match=re.escape(str(real.value))):
        real_op(fake)
    compiled = torch.compile(real_op, fullgraph=True, backend="eager")
    with pytest.raises(Exception, match=re.escape(str(real.value))):
        compiled(x)


def test_reference_rejects_fewer_than_two_dims():
    with pytest.raises(ValueError, match="npr_reference: expected a tensor with at least 2 dimensions"):
        npr_reference(torch.zeros(5))


@pytest.mark.skipif(
    not torch.cuda.is_available() or npr_cuda.cuda_kernels_built(),
    reason="needs a GPU and a build without the CUDA kernels (the C++ test covers the message)",
)
def test_cuda_tensor_without_cuda_kernels_says_how_to_rebuild():
    with pytest.raises(
        RuntimeError, match="npr: got a CUDA tensor, but this npr_cuda build has no CUDA kernels.*NPR_BUILD_CUDA=1"
    ):
        npr(torch.zeros(2, 2, device="cuda"))


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_narrower_cpu_kernels(capability, tmp_path):
    """The kernels for CPUs without AVX-512 or without AVX2 (chosen here with ATen's own
    switch), through the parity tests above and the window rule's, in a fresh process."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch, npr_cuda; print(torch.backends.cpu.get_cpu_capability(), npr_cuda.build_info()['cpu_isa'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    aten_isa, kernel_isa = check.stdout.split()
    if aten_isa != capability.upper():
        pytest.skip(f"this CPU or build has no {capability} (ATen runs {aten_isa})")
    assert kernel_isa == aten_isa
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            __file__,
            os.path.join(os.path.dirname(__file__), "test_npr_window.py"),
            "-k",
            "(matches_official or vector_chunks or pixel_widths or nan or gradcheck or rule_bitwise) and cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout


def test_build_info():
    info = npr_cuda.build_info()
    if platform.machine() in ("x86_64", "AMD64"):
        assert info["cpu_isa"] == torch.backends.cpu.get_cpu_capability()  # ATen's choice, ours too
    assert info["cuda"] == npr_cuda.cuda_kernels_built()
    assert info["torch"] == torch.__version__
    if info["cuda"]:
        assert info["cuda_arch_list"]
