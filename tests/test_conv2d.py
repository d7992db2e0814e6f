"""convbench.conv2d (every CPU algorithm) against torch.nn.functional.conv2d:
forward and both gradients, on randomly drawn shapes and arguments."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("hypothesis")  # an optional extra (the GPU machine lacks it)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convbench  # noqa: E402
from _helpers import RTOL, assert_close  # noqa: E402

# Every test here runs once per CPU ISA build this machine can run.
pytestmark = pytest.mark.usefixtures("cpu_isa")

CPU_ALGOS = [a for a in convbench.algorithms("cpu")]
DTYPES = [torch.float32, torch.float64]


@st.composite
def conv_problems(draw, winograd=False):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 4))
    cout = groups * draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if winograd:  # the only shapes Winograd F(2x2,3x3) accepts
        kh = kw = 3
        stride = dilation = (1, 1)
    padding = draw(st.sampled_from(["int", "pair", "valid", "same"]))
    if padding == "same":
        stride = (1, 1)
        pad = "same"
    elif padding == "valid":
        pad = "valid"
    elif padding == "int":
        pad = draw(st.integers(0, 3))
    else:
        pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    ph = pw = 0 if isinstance(pad, str) else (pad if isinstance(pad, int) else None)
    if ph is None:
        ph, pw = pad
    min_h = max(1, dilation[0] * (kh - 1) + 1 - 2 * ph)
    min_w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pw)
    h = draw(st.integers(min_h, min_h + 9))
    w = draw(st.integers(min_w, min_w + 9))
    n = draw(st.integers(1, 4))
    bias = draw(st.booleans())
    return dict(n=n, cin=cin, cout=cout, k=(kh, kw), hw=(h, w), stride=stride, padding=pad,
                dilation=dilation, groups=groups, bias=bias, ints=draw(st.booleans()))


def _make(p, dtype):
    """Normal values, or (ints) small integers: exact zeros and ties common,
    and every sum exact."""
    def t(*shape):
        if p.get("ints"):
            return torch.randint(-3, 4, shape).to(dtype).requires_grad_()
        return torch.randn(*shape, dtype=dtype, requires_grad=True)
    x = t(p["n"], p["cin"], *p["hw"])
    w = t(p["cout"], p["cin"] // p["groups"], *p["k"])
    b = t(p["cout"]) if p["bias"] else None
    return x, w, b


def _check(p, dtype, algo):
    x, w, b = _make(p, dtype)
    kwargs = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                  groups=p["groups"])
    ours = convbench.conv2d(x, w, b, **kwargs, algo=algo)
    # The oracle runs in float64 on the same values, so the tolerance bounds
    # our rounding alone (a float32 oracle adds its own, e.g. in bias sums).
    inputs = [x, w] + ([b] if b is not None else [])
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    ref = F.conv2d(*ref_inputs[:2], ref_inputs[2] if b is not None else None, **kwargs)
    assert_close(ours, ref, dtype, f"forward {algo}")
    g = torch.randn_like(ours)
    ours_g = torch.autograd.grad(ours, inputs, g)
    ref_g = torch.autograd.grad(ref, ref_inputs, g.double())
    for name, a, r in zip(["grad_input", "grad_weight"], ours_g, ref_g):
        assert_close(a, r, dtype, f"{name} {algo}")
    if b is not None:
        # A channel's bias gradient sums N*P*Q terms that may cancel to near
        # zero, so bound its error by the sum of the terms' magnitudes.
        mag = g.double().abs().sum((0, 2, 3)).norm().item()
        err = (ours_g[2].double() - ref_g[2]).norm().item()
        assert err <= RTOL[dtype] * mag, f"grad_bias {algo}: error {err:.3e} > {RTOL[dtype]:.0e} * {mag:.3e}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("algo", CPU_ALGOS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_conv2d_matches_torch(data, algo, dtype):
    p = data.draw(conv_problems(winograd=algo == "winograd"))
    _check(p, dtype, algo)


def test_winograd_rejects_shapes_it_cannot_do():
    x, w = torch.randn(1, 2, 8, 8), torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="winograd.*3x3 kernel, stride 1"):
        convbench.conv2d(x, w, stride=2, algo="winograd")


@pytest.mark.parametrize("algo", CPU_ALGOS)
@pytest.mark.parametrize(
    "n,cin,cout,k,hw,pad",
    [(50, 1, 16, 3, 32, 0), (50, 16, 8, 5, 30, 0), (50, 8, 16, 7, 13, 0), (128, 16, 32, 3, 7, 1),
     (3, 3, 5, 3, 1, 1), (1, 7, 9, 1, 11, 0)],
)
def test_homework_shapes(n, cin, cout, k, hw, pad, algo):
    if algo == "winograd" and k != 3:
        pytest.skip("winograd is for 3x3 kernels")
    p = dict(n=n, cin=cin, cout=cout, k=(k, k), hw=(hw, hw), stride=(1, 1), padding=pad,
             dilation=(1, 1), groups=1, bias=True)
    _check(p, torch.float32, algo)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(mode):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    ours = convbench.conv2d(x, w, None, padding=(2, 1), padding_mode=mode)
    ref = F.conv2d(F.pad(x, (1, 1, 2, 2), mode=mode), w)
    assert_close(ours, ref, torch.float64, mode)
    g = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        assert_close(a, r, torch.float64, mode)


def test_same_padding_even_kernel_is_asymmetric_like_torch():
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    w = torch.randn(3, 2, 4, 2, dtype=torch.float64)
    assert_close(convbench.conv2d(x, w, padding="same", dilation=(1, 3)),
                 F.conv2d(x, w, padding="same", dilation=(1, 3)), torch.float64, "same")


def test_unbatched_input():
    x = torch.randn(3, 10, 10, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    out = convbench.conv2d(x, w, padding=1)
    assert out.shape == (4, 10, 10)
    assert_close(out, F.conv2d(x, w, padding=1), torch.float64, "unbatched")


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_non_contiguous_inputs(layout):
    x = torch.randn(4, 6, 12, 12, dtype=torch.float64)
    w = torch.randn(5, 6, 3, 3, dtype=torch.float64)
    if layout == "channels_last":
        x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(2, 3)
    else:
        x = x[:, ::2, 1:, :]
        w = w[:, ::2]
    assert not x.is_contiguous()
    x.requires_grad_(), w.requires_grad_()
    ours, ref = convbench.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1)
    assert_close(ours, ref, torch.float64, layout)
    g = torch.randn_like(ref).to(memory_format=torch.channels_last)
    for a, r in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        assert_close(a, r, torch.float64, layout)


def test_empty_batch():
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    out = convbench.conv2d(x, w)
    assert out.shape == (0, 4, 6, 6)
    out.sum().backward()
    assert x.grad.shape == x.shape and torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("algo", CPU_ALGOS)
@pytest.mark.parametrize("n", [0, 2])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_zero_input_channels(algo, n, groups, bias):
    # torch returns an empty (N, 0, P, Q) output (the bias does not show) and
    # gradients of the inputs' shapes, the bias's being zeros. Exact: nothing
    # is summed but the bias gradient's empty sum.
    x = torch.randn(n, 0, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 0, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if bias else None
    args = dict(stride=(2, 1), padding=1, groups=groups)
    ours, ref = convbench.conv2d(x, w, b, algo=algo, **args), F.conv2d(x, w, b, **args)
    assert ours.shape == ref.shape == (n, 0, 3, 5)
    inputs = (x, w, b) if bias else (x, w)
    g = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
        assert a.shape == r.shape and torch.equal(a, r)
    # The registered op, its fake and the layer agree.
    op = torch.ops.convbench.conv2d(x, w, b, [2, 1], [1, 1, 1, 1], [1, 1], groups, algo)
    assert op.shape == ref.shape
    torch.library.opcheck(torch.ops.convbench.conv2d.default,
                          (x, w, b, [2, 1], [1, 1, 1, 1], [1, 1], groups, algo))
    layer = convbench.nn.Conv2d(0, 4, 3, padding=1, groups=groups, bias=bias, algo=algo)
    assert layer.double()(x).shape == torch.nn.Conv2d(0, 4, 3, padding=1, groups=groups).double()(
        x).shape == (n, 0, 6, 5)


def test_zero_input_channels_unbatched_and_kernel_checks():
    x, w = torch.randn(0, 7, 7), torch.randn(5, 0, 3, 3)
    assert convbench.conv2d(x, w, torch.randn(5)).shape == F.conv2d(x, w).shape == (0, 5, 5)
    # torch's checks still apply: the kernel must fit the input.
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        convbench.conv2d(torch.randn(1, 0, 2, 2), w)
    # The Python layer answers without a kernel; called anyway, the kernels
    # refuse the shape cleanly instead of reading or writing out of bounds.
    y, b = torch.empty(1, 5, 5, 5), torch.zeros(5)
    shape = (1, 0, 7, 7, 5, 3, 3, 5, 5, 1, 1, 0, 0, 1, 1, 1)
    for algo in range(1, 5):
        with pytest.raises(ValueError, match="invalid sizes"):
            convbench._C.conv2d_forward(0, 0, 0, 0, algo, shape, x.data_ptr(), w.data_ptr(),
                                        b.data_ptr(), y.data_ptr(), 0)


@pytest.mark.parametrize("algo", CPU_ALGOS)
def test_gradcheck(algo):
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)

    geometry = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    if algo == "winograd":
        w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        geometry = dict(padding=(1, 2))

    def f(x, w, b):
        return convbench.conv2d(x, w, b, groups=2, algo=algo, **geometry)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_grad_weight_is_deterministic():
    x = torch.randn(64, 8, 20, 20)
    w = torch.randn(16, 8, 3, 3, requires_grad=True)
    g = torch.randn(64, 16, 18, 18)
    for algo in CPU_ALGOS:
        first = torch.autograd.grad(convbench.conv2d(x, w, algo=algo), w, g)[0]
        again = torch.autograd.grad(convbench.conv2d(x, w, algo=algo), w, g)[0]
        assert torch.equal(first, again), algo


@pytest.mark.parametrize("algo", CPU_ALGOS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_conv2d_matches_numpy_reference(data, algo):
    """float64 against the NumPy oracle: forward, grad-input, grad-weight."""
    p = data.draw(conv_problems(winograd=algo == "winograd"))
    x, w, b = _make(p, torch.float64)
    geometry = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                    groups=p["groups"])
    out = convbench.conv2d(x, w, b, **geometry, algo=algo)
    xn, wn = x.detach().numpy(), w.detach().numpy()
    bn = None if b is None else b.detach().numpy()
    ref = convbench.reference.conv2d(xn, wn, bn, **geometry)
    assert_close(out, torch.from_numpy(ref), torch.float64, "forward")
    dy = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), dy)
    dyn = dy.numpy()
    ref_gx = convbench.reference.conv2d_backward_input(dyn, wn, xn.shape, **geometry)
    ref_gw = convbench.reference.conv2d_backward_weight(dyn, xn, wn.shape, **geometry)
    assert_close(gx, torch.from_numpy(ref_gx), torch.float64, "grad_input")
    assert_close(gw, torch.from_numpy(ref_gw), torch.float64, "grad_weight")
