"""CUDA conv2d / max_pool2d kernels against torch on the same GPU.

Every CUDA algorithm, pass and dtype is compared with torch.nn.functional
(cuDNN with TF32 off) on random inputs. The kernels are reached through the
public API (convbench.conv2d / max_pool2d, autograd) where it exists, and
through convbench._C with torch tensors' data pointers otherwise, so the
kernels are checked the same way before and after the Python layer lands.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import convbench
from _helpers import NO_GPU, conv_shape16, pair, random_conv_cases

try:
    from convbench import _C
except ImportError:  # pragma: no cover - unbuilt checkout
    _C = None


def _cuda_usable():
    if _C is None or not torch.cuda.is_available():
        return False
    if hasattr(convbench, "cuda_available"):
        return convbench.cuda_available()
    return bool(_C.cuda_compiled()) and _C.cuda_device_count() > 0


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _cuda_usable(), reason=f"{NO_GPU} needs convbench built with CUDA and a GPU"),
]

if _C is not None and _cuda_usable():
    _ALGO_NAME = {v: k for k, v in _C.CONV2D_ALGO_IDS.items()}
    ALGOS = [_ALGO_NAME[a] for a in _C.conv2d_algos(_C.DEVICE_CUDA)] + ["auto"]
else:
    ALGOS = ["direct", "implicit_gemm", "fused", "auto"]

PUBLIC_API = hasattr(convbench, "conv2d") and hasattr(convbench, "max_pool2d")


@pytest.fixture(autouse=True)
def _no_tf32():
    # torch's reference must be true float32 for a 1e-5 comparison.
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


# ---------------------------------------------------------------- raw calls


def _ids(t, algo):
    return (
        _C.DEVICE_CUDA,
        t.device.index,
        torch.cuda.current_stream(t.device).cuda_stream,
        _C.DTYPE_IDS[str(t.dtype).replace("torch.", "")],
        _C.CONV2D_ALGO_IDS[algo],
    )


def raw_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1, algo="auto", P=None, Q=None):
    s = conv_shape16(x, w, stride, padding, dilation, groups, P, Q)
    y = torch.full((s[0], s[4], s[7], s[8]), float("nan"), device=x.device, dtype=x.dtype)
    _C.conv2d_forward(*_ids(x, algo), s, x.data_ptr(), w.data_ptr(),
                      0 if b is None else b.data_ptr(), y.data_ptr())
    return y


def raw_backward_input(dy, x_shape, w, stride, padding, dilation, groups, algo):
    x = torch.empty(x_shape, device=dy.device, dtype=dy.dtype)
    s = conv_shape16(x, w, stride, padding, dilation, groups, dy.shape[2], dy.shape[3])
    dx = torch.full(x_shape, float("nan"), device=dy.device, dtype=dy.dtype)
    _C.conv2d_backward_input(*_ids(dy, algo), s, dy.data_ptr(), w.data_ptr(), dx.data_ptr())
    return dx


def raw_backward_weight(dy, x, w_shape, stride, padding, dilation, groups, algo):
    w = torch.empty(w_shape, device=dy.device, dtype=dy.dtype)
    s = conv_shape16(x, w, stride, padding, dilation, groups, dy.shape[2], dy.shape[3])
    dw = torch.full(w_shape, float("nan"), device=dy.device, dtype=dy.dtype)
    ids = _ids(dy, algo)
    n = _C.conv2d_workspace_size(2, ids[3], ids[4], 0, s)  # split-K partial sums
    ws = torch.full((n,), 255, dtype=torch.uint8, device=dy.device) if n else None
    _C.conv2d_backward_weight(*ids, s, dy.contiguous().data_ptr(), x.data_ptr(),
                              dw.data_ptr(), 0, ws.data_ptr() if n else 0, n)
    return dw


class _RawConv(torch.autograd.Function):
    """Autograd over the raw kernels, used only until convbench.conv2d exists."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups, algo):
        ctx.save_for_backward(x, w)
        ctx.cfg = (stride, padding, dilation, groups, algo)
        ctx.has_bias = b is not None
        return raw_forward(x.contiguous(), w.contiguous(), b, stride, padding, dilation,
                           groups, algo)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dy = dy.contiguous()
        dx = raw_backward_input(dy, x.shape, w.contiguous(), *ctx.cfg)
        dw = raw_backward_weight(dy, x.contiguous(), w.shape, *ctx.cfg)
        db = dy.sum(dim=(0, 2, 3)) if ctx.has_bias else None
        return dx, dw, db, None, None, None, None, None


def conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    if PUBLIC_API:
        return convbench.conv2d(x, w, b, stride, padding, dilation, groups, algo=algo)
    return _RawConv.apply(x, w, b, stride, padding, dilation, groups, algo)


def _pool_out(n, k, s, p, d, ceil_mode):
    num = n + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # torch: last window must start inside
        out -= 1
    return out


def max_pool(x, kernel, stride, padding, dilation, ceil_mode=False):
    if PUBLIC_API:
        return convbench.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode,
                                    return_indices=True)
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel, stride, padding, dilation))
    P = _pool_out(H, kh, sh, ph, dh, ceil_mode)
    Q = _pool_out(W, kw, sw, pw, dw, ceil_mode)
    y = torch.full((N, C, P, Q), float("nan"), device=x.device, dtype=x.dtype)
    idx = torch.full((N, C, P, Q), -7, device=x.device, dtype=torch.int64)
    ids = _ids(x, "auto")
    _table_call("max_pool2d_forward", ids, dict(N=N, C=C, H=H, W=W, P=P, Q=Q, kernel_h=kh,
                kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, dil_h=dh, dil_w=dw),
                x, y, idx)
    return y, idx


def _table_call(name, ids, fields, *buffers):
    """A raw call of table kernel `name`, the shape given by field name."""
    k = _C.kernel(name)
    k(*ids[:4], [fields[f] for f in k.shape_fields], [b.data_ptr() for b in buffers])


def max_pool_backward(dy, idx, x_shape, kernel, stride, padding, dilation):
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel, stride, padding, dilation))
    dx = torch.full(x_shape, float("nan"), device=dy.device, dtype=dy.dtype)
    ids = _ids(dy, "auto")
    _table_call("max_pool2d_backward", ids, dict(N=N, C=C, H=H, W=W, P=dy.shape[2],
                Q=dy.shape[3], kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph,
                pad_w=pw, dil_h=dh, dil_w=dw), dy.contiguous(), idx, dx)
    return dx


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


# ---------------------------------------------------------------- shapes

# (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
CASES = [
    (50, 1, 32, 32, 16, 3, 3, 1, 0, 1, 1, True),     # homework first layer
    (50, 16, 30, 30, 8, 5, 5, 1, 0, 1, 1, True),
    (50, 8, 13, 13, 16, 7, 7, 1, 0, 1, 1, False),
    (128, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, True),    # MNIST, padding 1, large batch
    (50, 64, 15, 15, 128, 3, 3, 1, 0, 1, 1, True),   # CIFAR width engine
    (1, 3, 17, 23, 5, 3, 5, 2, (1, 2), 1, 1, True),  # batch 1, odd sizes, stride 2
    (3, 6, 19, 11, 9, 3, 3, (2, 1), 2, (2, 3), 3, True),  # groups, dilation, stride
    (2, 8, 9, 9, 8, 3, 3, 1, 1, 1, 8, False),        # depthwise
    (4, 12, 10, 10, 40, 1, 1, 1, 0, 1, 2, True),     # 1x1, 20 channels per group
    (2, 4, 7, 7, 70, 2, 2, 3, 1, 1, 1, True),        # K past one fused chunk, even kernel
    (2, 3, 5, 6, 4, 5, 5, 1, 2, 2, 1, True),         # kernel window larger than image
]


ALL_CASES = CASES + random_conv_cases(8, seed=1234, groups=(1, 1, 2, 3), per_group=(6, 12),
                                       kernel=5, size=21, batch=5)


def _make(case, dtype=torch.float32, device="cuda", seed=0):
    N, C, H, W, K, R, S, stride, padding, dilation, groups, bias = case
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(N, C, H, W, generator=gen, dtype=torch.float64).to(device, dtype)
    w = torch.randn(K, C // groups, R, S, generator=gen, dtype=torch.float64).to(device, dtype)
    b = torch.randn(K, generator=gen, dtype=torch.float64).to(device, dtype) if bias else None
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


# ---------------------------------------------------------------- conv2d float32


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_conv2d_float32_all_passes_match_torch(case, algo):
    x, w, b, cfg = _make(case)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(xr, wr, b, **cfg)
    dy = torch.randn_like(ref)
    ref_dx, ref_dw = torch.autograd.grad(ref, (xr, wr), dy)

    xo, wo = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = conv(xo, wo, b, algo=algo, **cfg)
    assert out.shape == ref.shape
    assert torch.isfinite(out).all(), "unwritten output (poisoned with NaN)"
    dx, dw = torch.autograd.grad(out, (xo, wo), dy)
    # float32 with float32 accumulation on both sides: norm-wise 1e-5.
    assert rel_err(out, ref) <= 1e-5
    assert rel_err(dx, ref_dx) <= 1e-5
    assert rel_err(dw, ref_dw) <= 1e-5


@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_asymmetric_padding_through_P_Q(algo):
    # 'same' padding for an even kernel: top/left pad 1, one extra row/col read as zero.
    x, w, b, _ = _make((3, 4, 11, 10, 6, 4, 4, 1, 0, 1, 1, True))
    y = raw_forward(x, w, b, 1, 1, 1, 1, algo, P=11, Q=10)
    ref = F.conv2d(F.pad(x, (1, 2, 1, 2)), w, b)
    assert rel_err(y, ref) <= 1e-5
    dy = torch.randn_like(ref)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref_dx, ref_dw = torch.autograd.grad(F.conv2d(F.pad(xr, (1, 2, 1, 2)), wr, b), (xr, wr), dy)
    dx = raw_backward_input(dy, x.shape, w, 1, 1, 1, 1, algo)
    dw = raw_backward_weight(dy, x, w.shape, 1, 1, 1, 1, algo)
    assert rel_err(dx, ref_dx) <= 1e-5
    assert rel_err(dw, ref_dw) <= 1e-5


# ---------------------------------------------------------------- half types

# Unit roundoff of the storage type: both torch and we accumulate in float32
# and round each result once, so both errors against float64 are a few of these.
_UNIT = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES[:7], ids=lambda c: "x".join(map(str, c[:7])))
def test_conv2d_half_types_against_float64(case, algo, dtype):
    x, w, b, cfg = _make(case, dtype)
    dy = torch.randn(F.conv2d(x, w, b, **cfg).shape, device="cuda").to(dtype)
    # Reference: exact (float64) function of the same rounded inputs.
    x64, w64, b64, dy64 = (t.double() if t is not None else None for t in (x, w, b, dy))
    x64.requires_grad_(), w64.requires_grad_()
    ref = F.conv2d(x64, w64, b64, **cfg)
    ref_dx, ref_dw = torch.autograd.grad(ref, (x64, w64), dy64)
    # torch's own half result sets the scale of an acceptable error.
    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    tor = F.conv2d(xt, wt, b, **cfg)
    tor_dx, tor_dw = torch.autograd.grad(tor, (xt, wt), dy)

    xo, wo = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = conv(xo, wo, b, algo=algo, **cfg)
    assert out.dtype == dtype
    dx, dw = torch.autograd.grad(out, (xo, wo), dy)
    u = _UNIT[dtype]
    for mine, theirs, exact in ((out, tor, ref), (dx, tor_dx, ref_dx), (dw, tor_dw, ref_dw)):
        # Within 2x torch's error plus one unit roundoff (the output rounding alone).
        assert rel_err(mine, exact) <= 2 * rel_err(theirs, exact) + u


# ---------------------------------------------------------------- float64 gradcheck


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "case",
    [(2, 4, 7, 6, 6, 3, 2, (2, 1), 1, (1, 2), 2, True), (1, 1, 5, 5, 3, 3, 3, 1, 0, 1, 1, False)],
    ids=["groups-stride-dilation", "single-channel"],
)
def test_conv2d_float64_gradcheck(case, algo):
    x, w, b, cfg = _make(case, torch.float64)
    inputs = [x.requires_grad_(), w.requires_grad_()] + ([b.requires_grad_()] if b is not None
                                                         else [])

    def f(x, w, *rest):
        return conv(x, w, rest[0] if rest else None, algo=algo, **cfg)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_float64_matches_torch_tightly(algo):
    x, w, b, cfg = _make(CASES[6], torch.float64)
    y = conv(x, w, b, algo=algo, **cfg)
    assert rel_err(y, F.conv2d(x, w, b, **cfg)) <= 1e-12


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("algo", ALGOS)
def test_grad_weight_bitwise_deterministic(algo, dtype):
    # N*P*Q large enough to be split across many blocks.
    x, w, _, cfg = _make((128, 8, 28, 28, 16, 3, 3, 1, 1, 1, 1, False), dtype)
    dy = torch.randn(128, 16, 28, 28, device="cuda").to(dtype)
    first = raw_backward_weight(dy, x, w.shape, 1, 1, 1, 1, algo)
    for _ in range(3):
        again = raw_backward_weight(dy, x, w.shape, 1, 1, 1, 1, algo)
        assert torch.equal(first, again)


# ---------------------------------------------------------------- streams, devices, edges


@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_on_non_default_stream(algo):
    stream = torch.cuda.Stream()
    x, w, b, cfg = _make(CASES[1])
    ref = F.conv2d(x, w, b, **cfg)
    with torch.cuda.stream(stream):
        # Inputs made on this stream: a kernel on the default stream would race them.
        x2 = x * 1.0
        torch.cuda._sleep(1_000_000)
        x2 = x2 + 0.0
        y = raw_forward(x2, w, b, algo=algo, **cfg)
        dy = torch.ones_like(y)
        dw = raw_backward_weight(dy, x2, w.shape, cfg["stride"], cfg["padding"],
                                 cfg["dilation"], cfg["groups"], algo)
    stream.synchronize()
    assert rel_err(y, ref) <= 1e-5
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    (ref_dw,) = torch.autograd.grad(F.conv2d(xr, wr, b, **cfg), (wr,), torch.ones_like(ref))
    assert rel_err(dw, ref_dw) <= 1e-5


# == 1, not < 2: with no GPU at all the `cuda` mark skips it with the no-GPU
# reason, which the GPU check counts (tools/gpucheck/verdicts.py).
@pytest.mark.skipif(torch.cuda.device_count() == 1, reason="needs a second GPU")
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_on_second_device(algo):
    x, w, b, cfg = _make(CASES[6], device="cuda:1")
    before = torch.cuda.current_device()
    y = conv(x, w, b, algo=algo, **cfg)
    assert y.device == x.device and torch.cuda.current_device() == before
    assert rel_err(y, F.conv2d(x, w, b, **cfg)) <= 1e-5
    pooled, idx = max_pool(x, 2, 2, 0, 1)
    ref, ref_idx = F.max_pool2d(x, 2, 2, return_indices=True)
    assert torch.equal(pooled, ref) and torch.equal(idx, ref_idx)


@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_empty_batch_and_zero_grad_weight(algo):
    x, w, b, cfg = _make((0, 3, 8, 8, 4, 3, 3, 1, 0, 1, 1, True))
    y = raw_forward(x, w, b, algo=algo, **cfg)
    assert y.shape == (0, 4, 6, 6)
    dw = raw_backward_weight(torch.empty(0, 4, 6, 6, device="cuda"), x, w.shape, 1, 0, 1, 1, algo)
    assert torch.equal(dw, torch.zeros_like(dw))


@pytest.mark.skipif(not PUBLIC_API, reason="needs the public API")
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("n", [0, 2])
def test_conv2d_zero_input_channels(algo, n):
    # torch: an empty (N, 0, P, Q) output, gradients of the inputs' shapes,
    # zeros for the bias; no kernel runs.
    x = torch.randn(n, 0, 8, 8, device="cuda", requires_grad=True)
    w = torch.randn(4, 0, 3, 3, device="cuda", requires_grad=True)
    b = torch.randn(4, device="cuda", requires_grad=True)
    y, ref = convbench.conv2d(x, w, b, groups=2, algo=algo), F.conv2d(x, w, b, groups=2)
    assert y.shape == ref.shape == (n, 0, 6, 6)
    grads = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
    for a, r in zip(grads, torch.autograd.grad(ref, (x, w, b), torch.ones_like(ref))):
        assert a.shape == r.shape and torch.equal(a, r)


def test_choose_algo_and_unknown_algo():
    for case in ALL_CASES:
        x, w, _, cfg = _make(case)
        s = conv_shape16(x, w, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
        for p in range(3):
            a = _C.conv2d_choose_algo(_C.DEVICE_CUDA, p, 0, s)
            assert a in _C.conv2d_algos(_C.DEVICE_CUDA)
    x, w, b, cfg = _make(CASES[0])
    with pytest.raises(ValueError, match="im2col"):
        raw_forward(x, w, b, algo="im2col", **cfg)


# ---------------------------------------------------------------- max_pool2d

POOL_CASES = [
    # (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
    (50, 16, 28, 28, 2, 2, 0, 1, False),     # homework 2x2/2
    (3, 5, 13, 11, 3, 2, 1, 1, False),       # overlapping windows, padding
    (2, 3, 14, 15, 3, 1, 1, 1, False),       # stride 1: each element in up to 9 windows
    (2, 4, 17, 19, (3, 2), (2, 1), (1, 0), (2, 3), True),
    (1, 1, 7, 7, 3, 2, 0, 1, True),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_max_pool2d_matches_torch(case, dtype):
    N, C, H, W, k, s, p, d, ceil_mode = case
    x = torch.randn(N, C, H, W, device="cuda").to(dtype)  # half types: many ties
    y, idx = max_pool(x, k, s, p, d, ceil_mode)
    ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    assert torch.equal(y, ref)
    assert torch.equal(idx, ref_idx)  # ties (half types): both keep the first maximum
    dy = torch.randn_like(ref)
    dx = max_pool_backward(dy, ref_idx, x.shape, k, s, p, d)
    # Exact reference: float64 sums of the grads routed by torch's indices.
    # (torch's own half backward adds with half atomics, so it is no yardstick.)
    exact = torch.zeros(N, C, H * W, dtype=torch.float64, device="cuda").scatter_add_(
        2, ref_idx.flatten(2), dy.double().flatten(2)).reshape(x.shape)
    tol = 1e-15 if dtype == torch.float64 else 1e-7 if dtype == torch.float32 else _UNIT[dtype]
    assert rel_err(dx, exact) <= tol  # one rounding of a float32 (double) sum per element
    if PUBLIC_API:  # and through autograd
        xr = x.clone().requires_grad_()
        (dx_api,) = torch.autograd.grad(max_pool(xr, k, s, p, d, ceil_mode)[0], (xr,), dy)
        assert torch.equal(dx_api, dx)


AVG_POOL_CASES = [
    # (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    (50, 16, 28, 28, 2, 2, 0, False, True, None),    # 2x2/2 on a homework-sized batch
    (3, 5, 13, 11, 3, 2, 1, True, False, None),      # ceil_mode's clipped windows, padding
    (2, 3, 14, 15, 3, 1, 1, True, True, None),       # stride 1: each element in up to 9 windows
    (2, 4, 17, 19, (3, 2), (2, 1), (1, 0), True, False, 5),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_avg_pool2d_matches_torch_and_float64(case, dtype):
    N, C, H, W, *args = case
    x = torch.randn(N, C, H, W, device="cuda").to(dtype).requires_grad_()
    y = convbench.avg_pool2d(x, *args)
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    x64 = x.detach().double().requires_grad_()
    y64 = F.avg_pool2d(x64, *args)
    (dx64,) = torch.autograd.grad(y64, x64, dy.double())
    # sums in float (double for float64), one rounding per element
    tol = 1e-15 if dtype == torch.float64 else 1e-6 if dtype == torch.float32 else _UNIT[dtype]
    assert y.dtype == dx.dtype == dtype
    assert rel_err(y, y64) <= tol and rel_err(dx, dx64) <= tol
    if dtype == torch.float32:
        torch.testing.assert_close(y, F.avg_pool2d(x.detach(), *args))


def test_max_pool2d_nan_propagates_and_backward_deterministic():
    x = torch.randn(4, 3, 12, 12, device="cuda")
    x[0, 0, 5, 5] = float("nan")
    y, idx = max_pool(x, 3, 1, 1, 1)
    ref, ref_idx = F.max_pool2d(x, 3, 1, 1, return_indices=True)
    assert torch.equal(y.isnan(), ref.isnan())
    assert torch.equal(y[~y.isnan()], ref[~ref.isnan()])
    assert torch.equal(idx, ref_idx)
    dy = torch.randn_like(ref)
    first = max_pool_backward(dy, idx, x.shape, 3, 1, 1, 1)
    for _ in range(3):
        assert torch.equal(first, max_pool_backward(dy, idx, x.shape, 3, 1, 1, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_max_pool2d_last_nan_and_ties_like_torch(case, dtype):
    # Small integers (ties everywhere) with NaN, -inf, inf: torch's CUDA kernel
    # replaces the running maximum on every NaN, so the last NaN of a window
    # gives the index; values and indices must match bit for bit.
    N, C, H, W, k, s, p, d, ceil_mode = case
    g = torch.Generator(device="cpu").manual_seed(11)
    x = torch.randint(-2, 3, (N, C, H, W), generator=g).double()
    u = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    x[u < 0.25] = float("nan")
    x[(u >= 0.25) & (u < 0.35)] = -float("inf")
    x[(u >= 0.35) & (u < 0.40)] = float("inf")
    x = x.to("cuda", dtype)
    y, idx = max_pool(x, k, s, p, d, ceil_mode)
    ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(y.isnan(), ref.isnan()) and torch.equal(y[~y.isnan()], ref[~ref.isnan()])


# ---------------------------------------------------------------- homework layers


HOMEWORK = [  # (N, Cin, Cout, kernel, HxW, padding)
    (50, 1, 16, 3, 32, 0), (50, 3, 16, 3, 32, 0), (50, 16, 8, 5, 30, 0), (50, 8, 16, 7, 13, 0),
    (50, 16, 16, 5, 12, 0), (50, 16, 8, 3, 10, 0), (50, 16, 8, 7, 26, 0), (50, 8, 16, 5, 10, 0),
    (128, 1, 8, 3, 28, 1), (128, 16, 32, 3, 7, 1), (128, 32, 32, 3, 7, 1),
    (50, 16, 32, 3, 15, 0), (50, 32, 64, 3, 15, 0), (50, 64, 128, 3, 15, 0),
]


@pytest.mark.parametrize("layer", HOMEWORK, ids=lambda l: "-".join(map(str, l)))
def test_homework_layers_auto(layer):
    N, C, K, R, HW, pad = layer
    x, w, b, cfg = _make((N, C, HW, HW, K, R, R, 1, pad, 1, 1, True))
    xo, wo = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = conv(xo, wo, b, **cfg)
    dy = torch.randn_like(out)
    dx, dw = torch.autograd.grad(out, (xo, wo), dy)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(xr, wr, b, **cfg)
    ref_dx, ref_dw = torch.autograd.grad(ref, (xr, wr), dy)
    assert rel_err(out, ref) <= 1e-5
    assert rel_err(dx, ref_dx) <= 1e-5
    assert rel_err(dw, ref_dw) <= 1e-5
    assert math.isfinite(dw.sum().item())


# ---------------------------------------------------------------- workspace, tilings, autotuning


def test_grad_weight_workspace_comes_from_torchs_allocator():
    # The split-K partial sums are a tensor of PyTorch's caching allocator
    # (visible to torch.cuda.memory_*), not memory the kernels allocate.
    x, w, _, cfg = _make((128, 8, 28, 28, 16, 3, 3, 1, 1, 1, 1, False))
    x.requires_grad_()
    w.requires_grad_()
    s = conv_shape16(x, w, 1, 1, 1, 1)
    n = _C.conv2d_workspace_size(2, _C.DTYPE_IDS["float32"], _C.CONV2D_ALGO_IDS["implicit_gemm"],
                                 0, s)
    assert n > 0
    y = conv(x, w, algo="implicit_gemm", **cfg)
    dy = torch.randn_like(y)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    (dw,) = torch.autograd.grad(y, (w,), dy, retain_graph=True)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base >= n  # the workspace was torch's
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    (ref,) = torch.autograd.grad(F.conv2d(xr, wr, **cfg), (wr,), dy)
    assert rel_err(dw, ref) <= 1e-5


@pytest.mark.parametrize("pass_", [0, 1, 2])
def test_every_tuning_variant_matches_torch(pass_):
    # What the autotuner and the GPU check's tuning sweep (tools/gpucheck/conv_cells.py) time: every candidate
    # (algorithm, forced tiling) of the pass.
    from convbench import _launch

    x, w, b, cfg = _make((6, 12, 15, 13, 20, 3, 3, 1, 1, 1, 2, True))
    st, pd, dl, g = pair(cfg["stride"]), pair(cfg["padding"]), pair(cfg["dilation"]), cfg["groups"]
    pad4 = (pd[0], pd[0], pd[1], pd[1])
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = F.conv2d(xr, wr, b, **cfg)
    dy = torch.randn_like(y)
    dx_ref, dw_ref = torch.autograd.grad(y, (xr, wr), dy)
    s = conv_shape16(x, w, st, pd, dl, g)
    names = {v: k for k, v in _C.CONV2D_ALGO_IDS.items()}
    cands = _C.conv2d_candidates(pass_, _C.DTYPE_IDS["float32"], s, _C.DEVICE_CUDA)
    assert len(cands) >= 3
    for a, v in cands:
        algo = names[a]
        if pass_ == 0:
            got, ref = _launch.conv2d_forward(x, w, b, y.shape[2:], st, pad4, dl, g, algo, v), y
        elif pass_ == 1:
            got, ref = _launch.conv2d_backward_input(dy, w, x.shape, st, pad4, dl, g, algo, v), dx_ref
        else:
            got, ref = _launch.conv2d_backward_weight(dy, x, w.shape, st, pad4, dl, g, algo, v), dw_ref
        assert rel_err(got, ref) <= 1e-5, (algo, v)


def test_autotuned_cuda_conv_matches_torch_and_is_keyed_by_gpu():
    x, w, b, cfg = _make(CASES[1])
    x.requires_grad_()
    w.requires_grad_()
    convbench.backends.clear_autotune()
    try:
        with convbench.backends.flags(autotune=True, autotune_cache=None):
            y = conv(x, w, b, **cfg)
            dx, dw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
            keys = list(convbench.backends.autotune_choices())
    finally:
        convbench.backends.clear_autotune()
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    ref = F.conv2d(xr, wr, b, **cfg)
    rdx, rdw = torch.autograd.grad(ref, (xr, wr), torch.ones_like(ref))
    assert rel_err(y, ref) <= 1e-5 and rel_err(dx, rdx) <= 1e-5 and rel_err(dw, rdw) <= 1e-5
    assert len(keys) == 3 and all(k[3] == "cuda:" + torch.cuda.get_device_name() for k in keys)
