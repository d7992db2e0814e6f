"""convbench.reference (the NumPy oracle) against its loop versions and torch.nn.functional.

Tolerance: float64 throughout; each output is a sum of at most a few hundred
products of O(1) numbers, so rounding differences between summation orders stay
near 1e2 * eps ~ 1e-14 of the magnitude; we allow 1e-12 (relative to the largest
reference value, which also covers entries that cancel to ~0).  Max-pool values
and indices involve no arithmetic and must match exactly.
"""

import importlib.util
import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("hypothesis")  # an optional extra (the GPU machine lacks it)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

try:
    from convbench import reference as R
except ImportError:  # package __init__ needs the compiled module; the oracle does not
    _path = pathlib.Path(__file__).resolve().parents[1] / "python" / "convbench" / "reference.py"
    _spec = importlib.util.spec_from_file_location("convbench_reference", _path)
    R = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(R)

RTOL = 1e-12

# torch warns that it copies the input for 'same' with even kernels; irrelevant here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def assert_close(actual, expected, rtol=RTOL):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def test_module_does_not_import_torch():
    src = pathlib.Path(R.__file__).read_text()
    assert "import torch" not in src and "from torch" not in src


# ----------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------

@st.composite
def conv_cases(draw, max_hw=9, max_c=3, max_k=4, max_n=2):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, max_c)), draw(st.integers(1, max_c))
    R_, S_ = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(R.PADDING_MODES))
    form = draw(st.sampled_from(["int", "tuple", "valid", "same"]))
    if form == "same":
        stride = (1, 1)
        pad_arg = "same"
        pads = [dil[0] * (R_ - 1), dil[1] * (S_ - 1)]  # totals; each side <= total
    elif form == "valid":
        pad_arg, pads = "valid", [0, 0]
    elif form == "int":
        p = draw(st.integers(0, 2))
        pad_arg, pads = p, [p, p]
    else:
        pad_arg = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        pads = list(pad_arg)
    # input big enough for the kernel (and for reflect, which needs pad < size)
    hw = []
    for k, d, p in zip((R_, S_), dil, pads):
        lo = max(1, d * (k - 1) + 1 - (2 * p if form in ("int", "tuple") else p), p + 1)
        hw.append(draw(st.integers(lo, max(lo, max_hw))))
    stride_arg = stride if draw(st.booleans()) else stride[0] if stride[0] == stride[1] else stride
    dil_arg = dil if dil[0] != dil[1] or draw(st.booleans()) else dil[0]
    return dict(
        N=draw(st.integers(1, max_n)), C=groups * cg, K=groups * kg, H=hw[0], W=hw[1],
        R=R_, S=S_, bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
        kw=dict(stride=stride_arg, padding=pad_arg, dilation=dil_arg, groups=groups,
                padding_mode=mode),
    )


def _make(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    w = rng.standard_normal((case["K"], case["C"] // case["kw"]["groups"], case["R"], case["S"]))
    b = rng.standard_normal(case["K"]) if case["bias"] else None
    return rng, x, w, b


def _torch_conv(x, w, b, kw, dy):
    """Forward and grads through torch.nn.Conv2d (it owns the padding_mode semantics)."""
    m = torch.nn.Conv2d(x.shape[1], w.shape[0], w.shape[2:], bias=b is not None,
                        dtype=torch.float64, **kw)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        if b is not None:
            m.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_()
    y = m(xt)
    if dy is None:
        return y.detach().numpy()
    y.backward(torch.from_numpy(dy))
    db = m.bias.grad.numpy() if b is not None else None
    return y.detach().numpy(), xt.grad.numpy(), m.weight.grad.numpy(), db


def _vectorised(x, w, b, kw, dy):
    return (R.conv2d(x, w, b, **kw), R.conv2d_backward_input(dy, w, x.shape, **kw),
            R.conv2d_backward_weight(dy, x, w.shape, **kw),
            R.conv2d_backward_bias(dy) if b is not None else None)


def _loops(x, w, b, kw, dy):
    return (R.conv2d_loops(x, w, b, **kw), R.conv2d_backward_input_loops(dy, w, x.shape, **kw),
            R.conv2d_backward_weight_loops(dy, x, w.shape, **kw), None)  # no bias grad of its own


def _assert_same_conv(case, actual, expected):
    """actual and expected, each (x, w, b, kw, dy) -> (y, dx, dw, db), agree on
    a drawn case (a None db is not compared)."""
    rng, x, w, b = _make(case)
    kw = case["kw"]
    dy = rng.standard_normal(R.conv2d(x, w, b, **kw).shape)
    for got, want in zip(actual(x, w, b, kw, dy), expected(x, w, b, kw, dy)):
        if got is not None and want is not None:
            assert_close(got, want)


@settings(max_examples=120, deadline=None)
@given(conv_cases(max_hw=12, max_c=4, max_k=5, max_n=3))
def test_conv2d_vectorised_matches_torch(case):
    _assert_same_conv(case, _vectorised, _torch_conv)


@settings(max_examples=40, deadline=None)
@given(conv_cases(max_hw=7, max_c=2, max_k=3, max_n=2))
def test_conv2d_loops_match_vectorised(case):
    _assert_same_conv(case, _loops, _vectorised)


@settings(max_examples=40, deadline=None)
@given(conv_cases(max_hw=10, max_c=3, max_k=4))
def test_conv2d_output_size_matches_torch(case):
    _, x, w, b = _make(case)
    kw = dict(case["kw"])
    del kw["padding_mode"], kw["groups"]
    P, Q = R.conv2d_output_size((case["H"], case["W"]), (case["R"], case["S"]), **kw)
    yt = _torch_conv(x, w, b, case["kw"], None)
    assert yt.shape[2:] == (P, Q)


def test_conv2d_even_kernel_same_is_asymmetric_like_torch():
    # total padding 3 -> top/left 1, bottom/right 2 (torch's split)
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((3, 2, 4, 2))
    for mode in R.PADDING_MODES:
        y = R.conv2d(x, w, padding="same", padding_mode=mode)
        assert y.shape == (1, 3, 6, 5)
        assert_close(y, _torch_conv(x, w, None, dict(padding="same", padding_mode=mode), None))


def test_conv2d_float32_in_float32_out():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    y = R.conv2d(x, w, stride=2, padding=1, groups=2)
    assert y.dtype == np.float32
    yt = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1, groups=2)
    assert_close(y, yt.numpy(), rtol=1e-5)


# ----------------------------------------------------------------------------
# The homework: my_conv2d on MNIST-like inputs
# ----------------------------------------------------------------------------

def test_my_conv2d_mnist_like():
    rng = np.random.default_rng(3)
    images = rng.random((4, 1, 28, 28))  # pixel intensities in [0, 1)
    kernels = rng.standard_normal((8, 1, 4, 4))
    out = R.my_conv2d(images, kernels)
    assert out.shape == (4, 8, 25, 25)
    expected = F.conv2d(torch.from_numpy(images), torch.from_numpy(kernels)).numpy()
    assert_close(out, expected)
    assert_close(R.conv2d(images, kernels), expected)


def test_my_conv2d_multichannel():
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((5, 3, 2, 3))
    assert_close(R.my_conv2d(x, k), F.conv2d(torch.from_numpy(x), torch.from_numpy(k)).numpy())


# ----------------------------------------------------------------------------
# max_pool2d
# ----------------------------------------------------------------------------

@st.composite
def pool_cases(draw, max_hw=10, max_n=2, max_c=3):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    stride = draw(st.one_of(st.none(), st.integers(1, 3),
                            st.tuples(st.integers(1, 3), st.integers(1, 3))))
    hw = []
    for kk, dd, pp in zip(k, d, p):
        lo = max(1, dd * (kk - 1) + 1 - 2 * pp)
        hw.append(draw(st.integers(lo, max(lo, max_hw))))
    return dict(
        N=draw(st.integers(1, max_n)), C=draw(st.integers(1, max_c)), H=hw[0], W=hw[1],
        seed=draw(st.integers(0, 2**31 - 1)), special=draw(st.booleans()),
        kw=dict(kernel_size=k if k[0] != k[1] else k[0], stride=stride, padding=p,
                dilation=d, ceil_mode=draw(st.booleans())),
    )


def _pool_input(case):
    rng = np.random.default_rng(case["seed"])
    shape = (case["N"], case["C"], case["H"], case["W"])
    # small integers make ties common (first maximum must win)
    x = rng.integers(-3, 4, size=shape).astype(np.float64)
    if case["special"]:  # NaN and -inf must propagate/behave like torch
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < 0.1] = -np.inf
    return rng, x


@settings(max_examples=150, deadline=None)
@given(pool_cases(max_hw=12, max_n=3))
def test_max_pool2d_vectorised_matches_torch(case):
    rng, x = _pool_input(case)
    kw = case["kw"]
    y, idx = R.max_pool2d(x, return_indices=True, **kw)
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = F.max_pool2d(xt, return_indices=True, **kw)
    np.testing.assert_array_equal(y, yt.detach().numpy())  # NaN == NaN here
    np.testing.assert_array_equal(idx, it.numpy())
    assert y.shape[2:] == R.max_pool2d_output_size((case["H"], case["W"]), **kw)
    np.testing.assert_array_equal(R.max_pool2d(x, **kw), y)
    dy = rng.standard_normal(y.shape)
    H, W = case["H"], case["W"]
    if idx.min() < 0 or idx.max() >= H * W:
        # a window lying wholly in the padding: torch reports an index past the
        # plane (its own backward would write out of bounds); we refuse it
        with pytest.raises(ValueError, match="indices must lie in"):
            R.max_pool2d_backward(dy, idx, x.shape)
        return
    yt.backward(torch.from_numpy(dy))
    assert_close(R.max_pool2d_backward(dy, idx, x.shape), xt.grad.numpy())


@settings(max_examples=60, deadline=None)
@given(pool_cases(max_hw=8))
def test_max_pool2d_loops_match_vectorised(case):
    rng, x = _pool_input(case)
    kw = case["kw"]
    y, idx = R.max_pool2d(x, return_indices=True, **kw)
    yl, il = R.max_pool2d_loops(x, return_indices=True, **kw)
    np.testing.assert_array_equal(yl, y)
    np.testing.assert_array_equal(il, idx)
    if idx.min() >= 0 and idx.max() < x.shape[2] * x.shape[3]:
        dy = rng.standard_normal(y.shape)
        assert_close(R.max_pool2d_backward_loops(dy, idx, x.shape),
                     R.max_pool2d_backward(dy, idx, x.shape))


def test_max_pool2d_nan_and_ties_like_torch():
    nan = np.nan
    x = np.array([[[[nan, 1.0, 5.0, 5.0],
                    [nan, 2.0, 5.0, 5.0]]]])
    y, idx = R.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4  # last NaN in the window
    assert y[0, 0, 0, 1] == 5.0 and idx[0, 0, 0, 1] == 2  # first of the tied maxima
    yt, it = F.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx, it.numpy())


def test_max_pool2d_ceil_mode_drops_window_starting_in_right_padding():
    # H=5, k=2, s=2, p=1: ceil gives 4 windows but the 4th would start at 6 >= H + p
    assert R.max_pool2d_output_size((5, 5), 2, 2, 1, ceil_mode=True) == (3, 3)
    assert R.max_pool2d_output_size((6, 6), 2, 2, 0, ceil_mode=True) == (3, 3)
    assert R.max_pool2d_output_size((7, 7), 2, 2, 0, ceil_mode=True) == (4, 4)
    assert R.max_pool2d_output_size((7, 7), 2, 2, 0, ceil_mode=False) == (3, 3)


def test_max_pool2d_backward_accumulates_overlaps():
    x = np.array([[[[0.0, 0.0, 0.0],
                    [0.0, 9.0, 0.0],
                    [0.0, 0.0, 0.0]]]])
    y, idx = R.max_pool2d(x, 2, stride=1, return_indices=True)
    assert (idx == 4).all()
    dx = R.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_max_pool2d_float32_keeps_dtype():
    x = np.random.default_rng(5).standard_normal((1, 2, 6, 6)).astype(np.float32)
    y, idx = R.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert y.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(y, F.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy())


# ----------------------------------------------------------------------------
# Argument errors
# ----------------------------------------------------------------------------

_x = np.zeros((1, 4, 6, 6))
_w = np.zeros((2, 4, 3, 3))


@pytest.mark.parametrize("fn", [R.conv2d, R.conv2d_loops])
@pytest.mark.parametrize("args, kwargs, fragment", [
    ((np.zeros((4, 6, 6)), _w), {}, "input must be 4-D"),
    ((_x, np.zeros((2, 4, 3))), {}, "weight must be 4-D"),
    ((_x.astype(np.int64), _w), {}, "floating-point"),
    ((_x, np.zeros((2, 2, 3, 3))), dict(groups=3), "not divisible by groups"),
    ((_x, np.zeros((3, 2, 3, 3))), dict(groups=2), "output channels 3 not divisible"),
    ((_x, np.zeros((2, 3, 3, 3))), {}, "input channels"),
    ((_x, np.zeros((2, 4, 7, 3))), {}, "larger than the padded input"),
    ((_x, np.zeros((2, 4, 3, 3))), dict(dilation=3), "larger than the padded input"),
    ((_x, _w), dict(stride=0), "stride must be positive"),
    ((_x, _w), dict(dilation=(1, 0)), "dilation must be positive"),
    ((_x, _w), dict(groups=0), "groups must be a positive int"),
    ((_x, _w), dict(padding=-1), "non-negative"),
    ((_x, _w), dict(padding=(1, 2, 3)), "pair of ints"),
    ((_x, _w), dict(padding="full"), "'valid' or 'same'"),
    ((_x, _w), dict(padding="same", stride=2), "not supported for strided"),
    ((_x, _w), dict(padding_mode="mirror"), "padding_mode must be one of"),
    ((_x, _w), dict(padding=6, padding_mode="reflect"), "reflect padding"),
    ((_x, _w), dict(padding=7, padding_mode="circular"), "circular padding"),
    ((_x, _w, np.zeros(3)), {}, "bias must have shape"),
])
def test_conv2d_errors(fn, args, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        fn(*args, **kwargs)


@pytest.mark.parametrize("fn, args", [
    (R.conv2d_backward_input, (np.zeros((1, 2, 3, 3)), _w, _x.shape)),
    (R.conv2d_backward_input_loops, (np.zeros((1, 2, 3, 3)), _w, _x.shape)),
    (R.conv2d_backward_weight, (np.zeros((1, 2, 3, 3)), _x, _w.shape)),
    (R.conv2d_backward_weight_loops, (np.zeros((1, 2, 3, 3)), _x, _w.shape)),
])
def test_conv2d_backward_rejects_wrong_grad_shape(fn, args):
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 2, 4, 4\)"):
        fn(*args)


def test_conv2d_backward_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape must be"):
        R.conv2d_backward_input(np.zeros((1, 2, 4, 4)), _w, (1, 4, 6))
    with pytest.raises(ValueError, match="weight_shape must be"):
        R.conv2d_backward_weight(np.zeros((1, 2, 4, 4)), _x, (2, 4, 0, 3))


def test_my_conv2d_errors():
    with pytest.raises(ValueError, match="input channels"):
        R.my_conv2d(np.zeros((1, 2, 5, 5)), np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="larger than the input"):
        R.my_conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 4, 2)))


@pytest.mark.parametrize("fn", [R.max_pool2d, R.max_pool2d_loops])
@pytest.mark.parametrize("args, kwargs, fragment", [
    ((np.zeros((2, 6, 6)), 2), {}, "input must be 4-D"),
    ((_x, 0), {}, "kernel_size must be positive"),
    ((_x, 2), dict(stride=0), "stride must be positive"),
    ((_x, 2), dict(dilation=0), "dilation must be positive"),
    ((_x, 2), dict(padding=-1), "non-negative"),
    ((_x, 3), dict(padding=2), "half of kernel size"),
    ((_x, (2, 4)), dict(padding=(2, 2)), "half of kernel size"),
    ((_x, 4), dict(dilation=3), "too small"),
])
def test_max_pool2d_errors(fn, args, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        fn(*args, **kwargs)


@pytest.mark.parametrize("fn", [R.max_pool2d_backward, R.max_pool2d_backward_loops])
def test_max_pool2d_backward_errors(fn):
    dy = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="indices must lie in"):
        fn(dy, np.full((1, 1, 2, 2), 9), (1, 1, 3, 3))
    with pytest.raises(ValueError, match="indices shape"):
        fn(dy, np.zeros((1, 1, 2, 3), dtype=np.int64), (1, 1, 3, 3))
    with pytest.raises(ValueError, match="indices must be integers"):
        fn(dy, np.zeros((1, 1, 2, 2)), (1, 1, 3, 3))
    with pytest.raises(ValueError, match="does not match input_shape"):
        fn(dy, np.zeros((1, 1, 2, 2), dtype=np.int64), (1, 2, 3, 3))
