"""npr and npr_backward under torch.func and forward-mode AD, where the official formula works:
grad, vjp, jacrev, jvp, jacfwd, hessian, dual tensors, vmap over any dimension with the ops' own
batching rule (functorch's per-slice fallback is disabled here, so a missing rule raises), per-
sample gradients vmap(grad), and nesting (grad of grad, jvp of grad, vjp of grad).

Each result is checked against the same transform of the pure-PyTorch reference (npr_reference,
its adjoint for npr_backward, official_npr for the default window): within 1e-12 in float64. Where
the transform only calls the ops (a vjp is the adjoint op, a jvp the op on the tangent, a vmapped
call one call on the batch), the result must also equal that call bit for bit, in every dtype
tested, so that no transform can return zeros or another op's values unseen."""

import pytest
import torch
from helpers.tensors import DEVICES, make_input
from torch import func
from torch.autograd import forward_ad

from npr_cuda import npr, npr_backward
from npr_cuda.reference import npr_reference, official_npr
from npr_cuda.testing import assert_bitwise_equal

WINDOWS = [(2, (0, 0)), ((2, 3), (1, 2))]
DTYPES = [torch.float64, torch.bfloat16]
SHAPE = (2, 3, 5, 6)


@pytest.fixture(autouse=True)
def no_vmap_fallback():
    """vmap without functorch's per-slice fallback: an op without a batching rule raises."""
    enabled = torch._C._functorch._is_vmap_fallback_enabled()
    torch._C._functorch._set_vmap_fallback_enabled(False)
    yield
    torch._C._functorch._set_vmap_fallback_enabled(enabled)


def reference_npr(window, anchor):
    """The pure-PyTorch rule; the official formula itself for the default window (4-D, even H, W)."""
    if window == 2 and anchor == (0, 0):
        return lambda t: (
            official_npr(t) if t.dim() == 4 and t.shape[-1] % 2 == t.shape[-2] % 2 == 0 else npr_reference(t)
        )
    return lambda t: npr_reference(t, window, anchor)


def reference_adjoint(window, anchor):
    """npr_backward's reference: the reference rule's adjoint, taken by torch.func.vjp."""
    rule = reference_npr(window, anchor)
    return lambda g: func.vjp(rule, torch.zeros_like(g))[1](g)[0]


def ops(op_name, window, anchor):
    """(the op, its reference, the adjoint op, the adjoint's reference), each a function of one tensor."""
    forward = (lambda t: npr(t, window, anchor), reference_npr(window, anchor))
    backward = (lambda t: npr_backward(t, window, anchor), reference_adjoint(window, anchor))
    return (*forward, *backward) if op_name == "npr" else (*backward, *forward)


def close_in_float64(actual, expected):
    if actual.dtype == torch.float64:
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)


def cases():
    """device x dtype x op x window, the CUDA cases marked as helpers.tensors.DEVICES marks them."""
    params = []
    for device in DEVICES:
        name, marks = (device, ()) if isinstance(device, str) else (device.values[0], device.marks)
        for dtype in DTYPES:
            for op_name in ("npr", "npr_backward"):
                for window, anchor in WINDOWS:
                    params.append(pytest.param(name, dtype, op_name, window, anchor, marks=marks))
    return pytest.mark.parametrize("device,dtype,op_name,window,anchor", params)


@cases()
def test_grad_and_vjp_are_the_adjoint_op(device, dtype, op_name, window, anchor, gen):
    op, reference, adjoint, _ = ops(op_name, window, anchor)
    x, v = (make_input(SHAPE, dtype, device, "contiguous", gen) for _ in range(2))
    grad = func.grad(lambda t: (op(t) * v).sum())(x)
    assert_bitwise_equal(grad, adjoint(v))
    close_in_float64(grad, func.grad(lambda t: (reference(t) * v).sum())(x))
    out, vjp_fn = func.vjp(op, x)
    assert_bitwise_equal(out, op(x))
    assert_bitwise_equal(vjp_fn(v)[0], adjoint(v))
    close_in_float64(vjp_fn(v)[0], func.vjp(reference, x)[1](v)[0])


@cases()
def test_jvp_and_dual_tensors_are_the_op_on_the_tangent(device, dtype, op_name, window, anchor, gen):
    op, reference, _, _ = ops(op_name, window, anchor)
    x, t = (make_input(SHAPE, dtype, device, "contiguous", gen) for _ in range(2))
    out, tangent = func.jvp(op, (x,), (t,))
    assert_bitwise_equal(out, op(x))
    assert_bitwise_equal(tangent, op(t))
    close_in_float64(tangent, func.jvp(reference, (x,), (t,))[1])
    with forward_ad.dual_level():
        dual_out = op(forward_ad.make_dual(x, t))
        assert_bitwise_equal(forward_ad.unpack_dual(dual_out).tangent, op(t))


@cases()
def test_jacrev_and_jacfwd_are_the_op_on_a_basis(device, dtype, op_name, window, anchor, gen):
    """On a 1x2x3x4 input: column k of the Jacobian is the op on the k-th basis tensor (jacfwd),
    row k the adjoint on it (jacrev), both through the batching rules."""
    op, reference, adjoint, _ = ops(op_name, window, anchor)
    x = make_input((1, 2, 3, 4), dtype, device, "contiguous", gen)
    basis = torch.eye(x.numel(), dtype=dtype, device=device).reshape(x.numel(), *x.shape)
    by_columns = torch.stack([op(e) for e in basis], dim=-1).reshape(*x.shape, *x.shape)
    by_rows = torch.stack([adjoint(e) for e in basis]).reshape(*x.shape, *x.shape)
    assert_bitwise_equal(func.jacfwd(op)(x), by_columns)
    assert_bitwise_equal(func.jacrev(op)(x), by_rows)
    close_in_float64(func.jacrev(op)(x), func.jacrev(reference)(x))
    close_in_float64(func.jacfwd(op)(x), func.jacfwd(reference)(x))


@cases()
def test_hessian(device, dtype, op_name, window, anchor, gen):
    """f(x) = sum(op(x)^2): its Hessian is 2 A^T A, small integers, exact in every dtype."""
    op, reference, _, _ = ops(op_name, window, anchor)
    x = make_input((1, 2, 3, 4), dtype, device, "contiguous", gen)
    hessian = func.hessian(lambda t: (op(t) ** 2).sum())(x)
    expected = func.hessian(lambda t: (reference(t) ** 2).sum())(x.double())
    assert hessian.dtype == dtype and hessian.abs().sum() > 0
    torch.testing.assert_close(hessian.double(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op_name", ["npr", "npr_backward"])
@pytest.mark.parametrize("window,anchor", WINDOWS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_vmap_over_any_dimension_is_one_call(device, op_name, window, anchor, layout, gen):
    op = ops(op_name, window, anchor)[0]
    x = make_input((2, 3, 5, 6, 7), torch.float32, device, layout, gen)
    for dim in range(-x.dim(), x.dim()):
        expected = torch.stack([op(example) for example in x.unbind(dim)])
        assert_bitwise_equal(func.vmap(op, in_dims=dim)(x), expected)
    nested = func.vmap(func.vmap(op, in_dims=1), in_dims=0)(x)
    assert_bitwise_equal(nested, torch.stack([torch.stack([op(b) for b in a.unbind(1)]) for a in x.unbind(0)]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", ["npr", "npr_backward"])
@pytest.mark.parametrize("window,anchor", WINDOWS)
def test_per_sample_gradients(device, dtype, op_name, window, anchor, gen):
    """vmap(grad): each example's gradient of <op(x_i), v_i> is the adjoint op on v_i."""
    op, _, adjoint, _ = ops(op_name, window, anchor)
    x, v = (make_input((4, *SHAPE[1:]), dtype, device, "contiguous", gen) for _ in range(2))
    per_sample = func.vmap(func.grad(lambda xi, vi: (op(xi) * vi).sum()))(x, v)
    assert_bitwise_equal(per_sample, torch.stack([adjoint(vi) for vi in v]))


@cases()
def test_nested_transforms(device, dtype, op_name, window, anchor, gen):
    """grad of grad, jvp of grad and vjp of grad of f(x) = sum(op(x)^2) / 2, whose gradient is
    A^T A x: each is A^T A applied to the direction, computed through both ops' own rules."""
    op, reference, adjoint, _ = ops(op_name, window, anchor)
    x, u = (make_input(SHAPE, dtype, device, "contiguous", gen) for _ in range(2))

    def gradient_of(fn):
        return func.grad(lambda t: (fn(t) ** 2).sum() / 2)

    results = {
        "grad of grad": lambda fn: func.grad(lambda t: (gradient_of(fn)(t) * u).sum())(x),
        "jvp of grad": lambda fn: func.jvp(gradient_of(fn), (x,), (u,))[1],
        "vjp of grad": lambda fn: func.vjp(gradient_of(fn), x)[1](u)[0],
    }
    expected = adjoint(op(u))
    for name, transform in results.items():
        got = transform(op)
        assert got.abs().sum() > 0, name
        if dtype == torch.float64:
            torch.testing.assert_close(got, transform(reference), rtol=0, atol=1e-12, msg=name)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12, msg=name)
        else:  # the squares and halves round in bfloat16: A^T A u within its precision
            torch.testing.assert_close(got.double(), expected.double(), rtol=0.05, atol=0.1, msg=name)


@pytest.mark.parametrize("op", [npr, npr_backward])
def test_vmap_of_one_dimensional_examples_names_the_op(op):
    with pytest.raises(ValueError, match=f"{op.__name__}: expected a tensor with at least 2 dimensions"):
        func.vmap(op)(torch.zeros(5, 7))
