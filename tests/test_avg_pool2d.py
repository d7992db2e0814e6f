"""convbench.avg_pool2d against the NumPy reference (float64) and
torch.nn.functional.avg_pool2d (every dtype): values and gradients on drawn
shapes and arguments (padding, ceil_mode, count_include_pad,
divisor_override), the operators' checks, the layer and convert()."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("hypothesis")  # an optional extra (the GPU machine lacks it)
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convbench  # noqa: E402
from convbench import reference  # noqa: E402

from _helpers import rel_err  # noqa: E402

# Every test here runs once per CPU ISA build this machine can run.
pytestmark = pytest.mark.usefixtures("cpu_isa")
_ops = torch.ops.convbench


@st.composite
def avg_problems(draw):
    """An avg_pool2d call. Windows of 1 row (the forward's row-itself path),
    2 rows and 3 or more (its later-row loop), overlapping or not; widths up
    to 40 (vectors of the vertical sums and partial ones); ceil_mode's
    clipped last window; the three divisor rules."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2), (2, 1)]))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * padding[0]), 14))
    w = draw(st.integers(max(1, k[1] - 2 * padding[1]), 40))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w),
                args=(k, stride, padding, draw(st.booleans()), draw(st.booleans()),
                      draw(st.sampled_from([None, None, 1, 3, -2]))),
                ints=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def _input(p, dtype):
    """Normal values, or small integers with exact zeros (sums that are exact);
    from the drawn seed, so a failure replays."""
    g = torch.Generator().manual_seed(p["seed"])
    if p["ints"]:
        return torch.randint(-2, 3, p["shape"], generator=g).to(dtype)
    return torch.randn(*p["shape"], generator=g, dtype=dtype)


def _grad_output(p, shape, dtype):
    g = torch.Generator().manual_seed(p["seed"] + 1)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _reference(x, dy, args):
    y = reference.avg_pool2d(x.double().numpy(), *args)
    dx = reference.avg_pool2d_backward(dy.double().numpy(), x.shape, *args)
    return torch.from_numpy(y), torch.from_numpy(dx)


def _scaled_error(got, want, scale, floor=0.0):
    """max |got - want| / scale elementwise, scale the same average of the
    absolute values: what rounding errors of a sum are bounded by (a plain
    relative error blows up where positive and negative terms cancel).
    `floor`: an absolute error allowed on top (a subnormal result's rounding)."""
    err = ((got.double() - want).abs() - floor).clamp_min(0)
    return (err / scale.clamp_min(1e-30)).max().item()


def _ours(x, dy, args):
    x = x.clone().requires_grad_(True)
    y = convbench.avg_pool2d(x, *args)
    (dx,) = torch.autograd.grad(y, x, dy)
    return y, dx


@settings(max_examples=60, deadline=None)
@given(p=avg_problems())
def test_float64_matches_the_reference(p):
    x = _input(p, torch.float64)
    out = reference.avg_pool2d(x.numpy(), *p["args"])
    dy = _grad_output(p, out.shape, torch.float64)
    y, dx = _ours(x, dy, p["args"])
    ref_y, ref_dx = _reference(x, dy, p["args"])
    scale_y, scale_dx = (t.abs() for t in _reference(x.abs(), dy.abs(), p["args"]))
    assert y.shape == ref_y.shape
    # 16 terms at most: 16 * 2^-53 ~ 2e-15 of the scale
    assert _scaled_error(y, ref_y, scale_y) <= 1e-14
    assert _scaled_error(dx, ref_dx, scale_dx) <= 1e-14


@settings(max_examples=60, deadline=None)
@given(p=avg_problems(), dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
@example(p={"shape": (2, 2, 3, 31), "args": ((2, 3), None, (0, 0), True, False, None),
            "ints": False, "seed": 110210}, dtype=torch.float16)  # subnormal gradients
def test_every_dtype_matches_torch_and_the_reference(p, dtype):
    x = _input(p, dtype)
    t = F.avg_pool2d(x.float(), *p["args"])
    dy = _grad_output(p, t.shape, dtype)
    y, dx = _ours(x, dy, p["args"])
    assert y.dtype == dx.dtype == dtype
    ref_y, ref_dx = _reference(x, dy, p["args"])
    scale_y, scale_dx = _reference(x.abs(), dy.abs(), p["args"])
    scale_y, scale_dx = scale_y.abs(), scale_dx.abs()  # (a negative divisor_override)
    # Summed in float32 (at most 16 terms: 16 * 2^-24 ~ 1e-6 of the scale),
    # then the half types round once (2^-11, 2^-8 relative; float16 results
    # below 2^-14 are subnormal, spaced 2^-24: half of that absolute).
    tol = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    floor = 2.0 ** -25 if dtype == torch.float16 else 0.0
    assert _scaled_error(y, ref_y, scale_y, floor) <= tol
    assert _scaled_error(dx, ref_dx, scale_dx, floor) <= tol
    if dtype == torch.float32:  # torch sums in another order: the same bound, twice
        assert _scaled_error(y, t.double(), scale_y) <= 2 * tol


def test_integer_inputs_average_exactly():
    # Sums of small integers are exact, so each output is the one correctly
    # rounded quotient: equal to torch's bit for bit.
    x = torch.randint(-3, 4, (2, 3, 11, 37)).float()
    for args in [(2, None, 0, False, True, None), (3, 2, 1, True, False, None),
                 ((3, 1), (2, 1), (1, 0), True, True, None), (4, 3, 2, True, True, 5)]:
        torch.testing.assert_close(convbench.avg_pool2d(x, *args), F.avg_pool2d(x, *args),
                                   rtol=0, atol=0)


def test_overlapping_windows_sum_every_gradient():
    # stride 1, 3x3: each interior input is in 9 windows; ceil_mode clips the
    # last windows against the padded input, which count_include_pad counts.
    x = torch.randn(2, 2, 9, 21, dtype=torch.float64)
    for cip in (True, False):
        args = (3, 1, 1, True, cip, None)
        dy = torch.randn(F.avg_pool2d(x, *args).shape, dtype=torch.float64)
        _, dx = _ours(x, dy, args)
        assert rel_err(dx, _reference(x, dy, args)[1]) <= 1e-13


def test_gradients_are_checked_to_second_order():
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    for args in [([3, 3], [2, 2], [1, 1], True, False, None), ([2, 3], [1, 2], [1, 0], False,
                                                               True, 4)]:
        f = lambda t: _ops.avg_pool2d(t, *args)  # noqa: E731
        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))
        # the gradient operator itself, to second order (it is linear in grad_output)
        dy = torch.randn(f(x).shape, dtype=torch.float64, requires_grad=True)
        g = lambda d: _ops.avg_pool2d_backward(d, list(x.shape), *args)  # noqa: E731
        assert torch.autograd.gradcheck(g, (dy,)) and torch.autograd.gradgradcheck(g, (dy,))


def test_forward_mode_and_vmap_match_torch():
    x = torch.randn(3, 2, 2, 8, 8, dtype=torch.float64)
    args = (3, 2, 1, True, False, None)
    t = torch.randn_like(x[0])
    _, jvp = torch.func.jvp(lambda v: convbench.avg_pool2d(v, *args), (x[0],), (t,))
    torch.testing.assert_close(jvp, F.avg_pool2d(t, *args))
    batched = torch.vmap(lambda v: convbench.avg_pool2d(v, *args))(x)
    torch.testing.assert_close(batched, F.avg_pool2d(x.flatten(0, 1), *args).unflatten(0, (3, 2)))
    per_sample = torch.vmap(torch.func.grad(lambda v: convbench.avg_pool2d(v, *args).sin().sum()))
    expect = torch.vmap(torch.func.grad(lambda v: F.avg_pool2d(v, *args).sin().sum()))
    torch.testing.assert_close(per_sample(x), expect(x))


def test_unbatched_and_empty_batches():
    x = torch.randn(3, 9, 9)
    torch.testing.assert_close(convbench.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1))
    e = torch.randn(0, 3, 9, 9, requires_grad=True)
    y = convbench.avg_pool2d(e, 3, 2, 1)
    assert y.shape == (0, 3, 5, 5)
    y.sum().backward()
    assert e.grad.shape == e.shape


@pytest.mark.parametrize("args,match", [
    ((2, 2, 2), "at most half of kernel size"),
    ((0,), "kernel_size must be positive"),
    ((2, 0), "stride must be positive"),
    ((2, 2, 0, False, True, 0), "divisor_override must be a non-zero int"),
    ((2, 2, 0, False, True, 1.5), "divisor_override must be a non-zero int"),
    ((9,), "output size .* is too small"),
    ((2, 2, 0, 1), "ceil_mode must be a bool"),
])
def test_bad_arguments_name_the_problem(args, match):
    with pytest.raises((RuntimeError, ValueError, TypeError), match=match):
        convbench.avg_pool2d(torch.randn(1, 2, 5, 5), *args)


def test_bad_inputs_name_the_problem():
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        convbench.avg_pool2d(torch.randn(5, 5), 2)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        convbench.avg_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int64), 2)
    with pytest.raises(RuntimeError, match="only the batch dimension may be empty"):
        convbench.avg_pool2d(torch.randn(1, 0, 4, 4), 2)
    with pytest.raises(TypeError, match="must be a tensor"):
        convbench.avg_pool2d(np.ones((1, 1, 4, 4)), 2)
    # the gradient operator called directly checks grad_output against the forward's size
    with pytest.raises(RuntimeError, match=r"grad_output has shape \[1, 2, 3, 3\].*\[1, 2, 2, 2\]"):
        _ops.avg_pool2d_backward(torch.randn(1, 2, 3, 3), [1, 2, 5, 5], [2, 2], [2, 2], [0, 0],
                                 False, True, None)


def test_layer_is_torchs_drop_in_and_convert_swaps_it():
    ours = convbench.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                  count_include_pad=False, divisor_override=None)
    theirs = torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    assert repr(ours) == repr(theirs) and ours.state_dict() == theirs.state_dict()
    x = torch.randn(2, 3, 10, 11)
    torch.testing.assert_close(ours(x), theirs(x))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), theirs)
    converted = convbench.nn.convert(model)
    assert type(converted[2]) is convbench.nn.AvgPool2d
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-6)
    assert "avg_pool2d" in convbench.__all__ and convbench.functional.avg_pool2d is \
        convbench.avg_pool2d


def test_compiles_and_exports():
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    f = torch.compile(lambda v: convbench.avg_pool2d(v, 3, 2, 1, True, False), backend="eager",
                      fullgraph=True)
    y = f(x)
    torch.testing.assert_close(y, F.avg_pool2d(x, 3, 2, 1, True, False))
    ep = torch.export.export(convbench.nn.AvgPool2d(2), (x.detach(),))
    assert "convbench.avg_pool2d" in str(ep.graph)
