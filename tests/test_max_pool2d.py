"""convbench.max_pool2d against torch.nn.functional.max_pool2d: values,
indices and gradients on randomly drawn shapes and arguments."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("hypothesis")  # an optional extra (the GPU machine lacks it)
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convbench  # noqa: E402

# Every test here runs once per CPU ISA build this machine can run.
pytestmark = pytest.mark.usefixtures("cpu_isa")


@st.composite
def pool_problems(draw, overlapping=False):
    """Shapes and arguments of a max_pool2d call. overlapping: windows that
    overlap (stride below the dilated kernel) on larger planes, so gradients
    of one input sum from several windows; mostly integer inputs."""
    k_min, hw_max, c_max = (2, 24, 5) if overlapping else (1, 14, 4)
    k = (draw(st.integers(k_min, k_min + 3)), draw(st.integers(k_min, k_min + 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if overlapping:
        stride = tuple(draw(st.integers(1, max(1, d * (kk - 1)))) for kk, d in zip(k, dilation))
    else:
        stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2)]))
    eff = [d * (kk - 1) + 1 for kk, d in zip(k, dilation)]
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    # Up to 40 columns (non-overlapping draws): rows of windows that fill the
    # CPU forward's vectors (16 float lanes with AVX-512) and leave partial ones.
    w_max = hw_max if overlapping else 40
    h = draw(st.integers(max(1, eff[0] - 2 * padding[0]), hw_max))
    w = draw(st.integers(max(1, eff[1] - 2 * padding[1]), w_max))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, c_max)), h, w),
                kernel_size=k, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=draw(st.booleans()),
                ints=draw(st.sampled_from([True, True, False]) if overlapping else st.booleans()))


def _input(p, dtype, requires_grad=False):
    """Normal values, or (ints) integers in [-2, 2]: then most windows hold
    ties, which the first-maximum rule must break the way torch does."""
    if p["ints"]:
        x = torch.randint(-2, 3, p["shape"]).to(dtype)
    else:
        x = torch.randn(*p["shape"], dtype=dtype)
    return x.requires_grad_(requires_grad)


def _has_empty_window(size, k, s, pad, d, ceil_mode):
    """Whether some window along one axis reads only padding (possible with
    dilation). torch then reports an index past the input and its backward
    writes out of bounds (heap corruption), so it cannot be the oracle there."""
    s = s or k
    out = convbench.reference.max_pool2d_output_size((size, 1), (k, 1), (s, 1), (pad, 0), (d, 1),
                                                   ceil_mode)[0]
    return any(all(not 0 <= o * s - pad + j * d < size for j in range(k)) for o in range(out))


def _empty_window(p):
    s = p["stride"] if isinstance(p["stride"], tuple) else (p["stride"],) * 2
    return any(_has_empty_window(p["shape"][2 + a], p["kernel_size"][a], s[a], p["padding"][a],
                                 p["dilation"][a], p["ceil_mode"]) for a in range(2))


def _pool_args(p):
    return {k: p[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}


def _ours_and_torchs(x, p, grad_like):
    """convbench's and torch's max_pool2d of x with p's arguments, each as
    (values, indices, x's gradient for the output gradient grad_like(values))."""
    args = _pool_args(p)
    ours, ours_idx = convbench.max_pool2d(x, **args, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, **args, return_indices=True)
    g = grad_like(ref)
    (ours_g,) = torch.autograd.grad(ours, x, g)
    (ref_g,) = torch.autograd.grad(ref, x, g)
    return (ours, ours_idx, ours_g), (ref, ref_idx, ref_g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@settings(max_examples=60, deadline=None)
@given(p=pool_problems())
def test_max_pool2d_matches_torch(p, dtype):
    assume(not _empty_window(p))
    x = _input(p, dtype, requires_grad=True)
    (ours, ours_idx, ours_g), (ref, ref_idx, ref_g) = _ours_and_torchs(x, p, torch.randn_like)
    assert torch.equal(ours, ref)  # a max is exact
    assert torch.equal(ours_idx, ref_idx)
    # Overlapping windows sum gradients, possibly in another order.
    torch.testing.assert_close(ours_g, ref_g, rtol=1e-6 if dtype == torch.float32 else 1e-13,
                               atol=1e-6 if dtype == torch.float32 else 1e-13)


def test_window_of_only_padding():
    # A dilated window can start in the padding and step over the input: torch
    # gives -inf and an index one past the window's row; we give the same, and
    # our backward ignores such an index instead of writing out of bounds.
    x = torch.randn(1, 1, 13, 1, dtype=torch.float64, requires_grad=True)
    args = dict(kernel_size=(1, 2), stride=3, padding=(0, 1), dilation=(1, 2), ceil_mode=True)
    assert _empty_window(dict(shape=x.shape, **args))
    ours, idx = convbench.max_pool2d(x, **args, return_indices=True)
    ref, ref_idx = F.max_pool2d(x.detach(), **args, return_indices=True)
    assert torch.equal(ours, ref) and torch.equal(idx, ref_idx)
    assert torch.isinf(ours).all()
    (grad,) = torch.autograd.grad(ours, x, torch.ones_like(ours))
    assert torch.equal(grad, torch.zeros_like(x))


@pytest.mark.parametrize("axis", [2, 3])
def test_a_window_of_only_padding_is_its_axis_only_window(axis):
    """Every small geometry the forward accepts: where a window reads only
    padding, every window along that axis does (so the gradient is zero and
    the CPU backward skips the plane); elsewhere the gradient is dy summed at
    the indices. Checked through the public API on each axis."""
    empty_axes = 0
    for size in range(1, 9):
        for k in range(1, 5):
            for pad in range(k // 2 + 1):
                for s in (1, 2, 3):
                    for d in (1, 2, 3, 4):
                        for ceil_mode in (False, True):
                            try:
                                P = convbench.reference.max_pool2d_output_size(
                                    (size, 1), (k, 1), (s, 1), (pad, 0), (d, 1), ceil_mode)[0]
                            except ValueError:
                                continue
                            shape, kk, ss, pp, dd = [1, 2, 1, 1], [1, 1], [1, 1], [0, 0], [1, 1]
                            shape[axis] = size
                            a = axis - 2
                            kk[a], ss[a], pp[a], dd[a] = k, s, pad, d
                            x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
                            y, idx = convbench.max_pool2d(x, kk, ss, pp, dd, ceil_mode,
                                                          return_indices=True)
                            empty = torch.isinf(y).flatten(2)[0, 0]
                            assert empty.all() or not empty.any(), (size, k, s, pad, d, ceil_mode)
                            empty_axes += bool(empty.all())
                            dy = torch.randn_like(y)
                            (dx,) = torch.autograd.grad(y, x, dy)
                            want = torch.zeros_like(x).flatten(2)
                            if not empty.any():
                                want.scatter_add_(2, idx.flatten(2), dy.flatten(2))
                            assert torch.equal(dx.flatten(2), want), (size, k, s, pad, d, P)
    assert empty_axes > 10  # the padded geometries were reached


def test_ties_and_nan_follow_torch():
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, float("nan"), 2.0], [3.0, 3.0, 3.0]]]])
    for k, s in [(2, 1), (3, 1), (2, 2)]:
        ours = convbench.max_pool2d(x, k, s, return_indices=True)
        ref = F.max_pool2d(x, k, s, return_indices=True)
        torch.testing.assert_close(ours[0], ref[0], equal_nan=True)
        assert torch.equal(ours[1], ref[1])


def _nan_heavy(shape, dtype, rng):
    """Small integers (ties everywhere) with NaN, -inf and inf sprinkled in."""
    x = torch.from_numpy(rng.integers(-2, 3, shape).astype(np.float64)).to(dtype)
    u = torch.from_numpy(rng.random(shape))
    x[u < 0.25] = float("nan")
    x[(u >= 0.25) & (u < 0.35)] = -float("inf")
    x[(u >= 0.35) & (u < 0.40)] = float("inf")
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@settings(max_examples=60, deadline=None)
@given(p=pool_problems(), seed=st.integers(0, 2**32 - 1))
def test_nan_ties_and_infinities_follow_torch(p, seed, dtype, layout):
    # torch's rule (checked by experiment on its CPU kernels, NCHW and
    # channels_last): a value replaces the running maximum if it is greater or
    # NaN, so equal values keep the first and the LAST NaN gives the index.
    # Values and indices must match bit for bit, and so must the gradient,
    # which lands where the index says.
    assume(not _empty_window(p))
    x = _nan_heavy(p["shape"], dtype, np.random.default_rng(seed))
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    # Small-integer gradients: sums of overlapping windows are exact in any order.
    (ours, ours_idx, ours_g), (ref, ref_idx, ref_g) = _ours_and_torchs(
        x, p, lambda y: torch.randint(-3, 4, y.shape).to(dtype))
    assert torch.equal(ours_idx, ref_idx)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(ours_g, ref_g)
    # The NumPy reference encodes the same rule.
    ry, ri = convbench.reference.max_pool2d(x.detach().numpy(), return_indices=True,
                                            **_pool_args(p))
    assert np.array_equal(ri, ref_idx.numpy())


def test_last_nan_wins_in_each_window():
    # Two NaNs in one window, and windows sharing a NaN: the index is the last
    # NaN of each window in scan order (row by row), not the first.
    nan = float("nan")
    x = torch.tensor([[[[nan, 1.0, nan], [5.0, nan, 2.0], [3.0, 3.0, 0.0]]]])
    for k, s, d in [(2, 1, 1), (3, 1, 1), (2, 1, 2), ((1, 3), 1, 1)]:
        ours = convbench.max_pool2d(x, k, s, dilation=d, return_indices=True)[1]
        ref = F.max_pool2d(x, k, s, dilation=d, return_indices=True)[1]
        assert torch.equal(ours, ref), (k, s, d, ours, ref)
    assert convbench.max_pool2d(x, 3, return_indices=True)[1].item() == 4


def test_empty_batch_is_allowed():
    x = torch.randn(0, 3, 6, 6, requires_grad=True)
    ours, ref = convbench.max_pool2d(x, 2), F.max_pool2d(x, 2)
    assert ours.shape == ref.shape == (0, 3, 3, 3)
    ours.sum().backward()
    assert x.grad.shape == x.shape


def test_module_defaults_and_unbatched():
    x = torch.randn(3, 9, 9)
    pool = convbench.nn.MaxPool2d(2)
    assert torch.equal(pool(x), torch.nn.MaxPool2d(2)(x))
    pool = convbench.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    ours, idx = pool(x)
    ref, ref_idx = torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True, return_indices=True)(x)
    assert torch.equal(ours, ref) and torch.equal(idx, ref_idx)


def test_gradcheck():
    x = torch.randn(2, 3, 8, 7, dtype=torch.float64, requires_grad=True)

    def f(x):
        return convbench.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                                    ceil_mode=True)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_non_contiguous_input():
    x = torch.randn(2, 5, 10, 10).to(memory_format=torch.channels_last)
    ours = convbench.max_pool2d(x, 2, return_indices=True)
    ref = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])


def test_backward_is_deterministic_with_overlap():
    x = torch.randn(8, 4, 20, 20, requires_grad=True)
    g = torch.randn(8, 4, 20, 20)
    first = torch.autograd.grad(convbench.max_pool2d(x, 3, 1, 1, ceil_mode=False), x, g)[0]
    again = torch.autograd.grad(convbench.max_pool2d(x, 3, 1, 1, ceil_mode=False), x, g)[0]
    assert torch.equal(first, again)


@settings(max_examples=40, deadline=None)
@given(p=pool_problems())
def test_max_pool2d_matches_numpy_reference(p):
    x = _input(p, torch.float64)
    args = _pool_args(p)
    ours, idx = convbench.max_pool2d(x, **args, return_indices=True)
    ref, ref_idx = convbench.reference.max_pool2d(x.numpy(), **args, return_indices=True)
    assert np.array_equal(ours.numpy(), ref) and np.array_equal(idx.numpy(), ref_idx)
    if not _empty_window(p):
        dy = torch.randn_like(ours)
        dx = torch.ops.convbench.max_pool2d_backward(
            dy, idx, list(x.shape), list(args["kernel_size"]), list(_pair(args["stride"] or
            args["kernel_size"])), list(args["padding"]), list(args["dilation"]))
        ref_dx = convbench.reference.max_pool2d_backward(dy.numpy(), ref_idx, x.shape)
        np.testing.assert_allclose(dx.numpy(), ref_dx, rtol=1e-13, atol=1e-13)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@settings(max_examples=40, deadline=None)
@given(p=pool_problems(overlapping=True))
def test_max_pool2d_backward_overlapping_windows_matches_torch(p, dtype):
    assume(not _empty_window(p))
    x = _input(p, dtype, requires_grad=True)
    # Integer gradients: sums of them are exact in any order, so equal bits.
    (_, ours_idx, ours_g), (_, ref_idx, ref_g) = _ours_and_torchs(
        x, p, lambda y: torch.randint(-4, 5, y.shape).to(dtype))
    assert torch.equal(ours_idx, ref_idx)
    assert torch.equal(ours_g, ref_g)
