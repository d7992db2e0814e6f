"""The CUDA kernels' arithmetic and indexing, checked without a GPU.

tools/cuda_emu compiles the real csrc/*/cuda/*.cu sources for the CPU (each
CUDA thread a std::thread, __shared__ a static, __syncthreads a barrier), so
tiling, bounds, gather rules, split-K reduction and shared-memory staging are
compared with torch here and in CI. Speed, warps and memory ordering on a real
GPU are what tests/test_cuda_ops.py and compute-sanitizer check on one.
Shapes are small: the emulation runs every CUDA thread one after another.
"""
import ctypes
import importlib.util
import os
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from _helpers import conv_shape16, pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "convbench_cuda_emu_build", os.path.join(ROOT, "tools", "cuda_emu", "build.py"))
emu_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(emu_build)

DTYPE_ID = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
ALGO_ID = {"auto": 0, "direct": 1, "implicit_gemm": 3, "fused": 5}
ALGOS = ["direct", "implicit_gemm", "fused", "auto"]
UNIT = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


@pytest.fixture(scope="module")
def lib():
    if emu_build.cuda_include() is None or shutil.which("g++") is None:
        pytest.skip("needs g++ and the CUDA headers")
    so = ctypes.CDLL(emu_build.build())
    so.emu_conv2d.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 6
    so.emu_choose.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    so.emu_max_pool2d.argtypes = [ctypes.c_int] * 2 + [ctypes.c_void_p] * 6
    return so


def _shape(*args, **kwargs):
    return (ctypes.c_longlong * 16)(*conv_shape16(*args, **kwargs))


def _call(lib, pass_, algo, dtype, s, a, b, bias, out):
    err = ctypes.create_string_buffer(512)
    rc = lib.emu_conv2d(pass_, ALGO_ID[algo], DTYPE_ID[dtype], s, a.data_ptr(), b.data_ptr(),
                        0 if bias is None else bias.data_ptr(), out.data_ptr(), err)
    if rc:
        raise ValueError(err.value.decode())
    return out


def _poisoned(shape, dtype):
    return torch.full(shape, float("nan"), dtype=dtype)


def conv_all(lib, x, w, b, dy, cfg, algo):
    s = _shape(x, w, **cfg)
    y = _call(lib, 0, algo, x.dtype, s, x, w, b, _poisoned(dy.shape, x.dtype))
    dx = _call(lib, 1, algo, x.dtype, s, dy, w, None, _poisoned(x.shape, x.dtype))
    dw = _call(lib, 2, algo, x.dtype, s, dy, x, None, _poisoned(w.shape, x.dtype))
    return y, dx, dw


def torch_all(x, w, b, dy, cfg):
    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    y = F.conv2d(x, w, None if b is None else b.double(), **cfg)
    dx, dw = torch.autograd.grad(y, (x, w), dy.double())
    return y.detach(), dx, dw


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


# (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
CASES = [
    (2, 1, 10, 9, 16, 3, 3, 1, 0, 1, 1, True),
    (2, 16, 8, 8, 8, 5, 5, 1, 0, 1, 1, True),
    (1, 3, 9, 11, 5, 3, 5, 2, (1, 2), 1, 1, True),
    (2, 6, 11, 7, 9, 3, 3, (2, 1), 2, (2, 3), 3, False),
    (1, 8, 6, 6, 8, 3, 3, 1, 1, 1, 8, False),     # depthwise
    (1, 4, 5, 5, 70, 2, 2, 3, 1, 1, 1, True),     # K past one fused chunk, even kernel
    (1, 24, 5, 4, 40, 1, 1, 1, 0, 1, 1, True),    # 1x1, wide: BN = 64 tiles
    (1, 3, 5, 6, 4, 5, 5, 1, 2, 2, 1, True),      # window larger than the image
    (1, 40, 3, 3, 3, 3, 3, 1, 1, 1, 1, False),    # fused grad-input: Cg past one chunk
]


def _random_cases(count, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        g = rng.choice([1, 1, 2])
        C, K = g * rng.randint(1, 5), g * rng.randint(1, 9)
        R, S = rng.randint(1, 4), rng.randint(1, 4)
        sh, sw, dh, dw = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 2)
        ph, pw = rng.randint(0, (dh * (R - 1)) // 2), rng.randint(0, (dw * (S - 1)) // 2)
        H, W = rng.randint(dh * (R - 1) + 1, 12), rng.randint(dw * (S - 1) + 1, 12)
        out.append((rng.randint(1, 3), C, H, W, K, R, S, (sh, sw), (ph, pw), (dh, dw), g,
                    rng.random() < 0.5))
    return out


def make(case, dtype, seed=0):
    N, C, H, W, K, R, S, stride, padding, dilation, groups, bias = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(K, C // groups, R, S, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(K, generator=g, dtype=torch.float64).to(dtype) if bias else None
    cfg = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = F.conv2d(x.double(), w.double(), None, **cfg)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)
    return x, w, b, dy, cfg


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES + _random_cases(6, 99),
                         ids=lambda c: "x".join(map(str, c[:7])))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_emulated_conv2d_all_passes(lib, case, algo, dtype):
    x, w, b, dy, cfg = make(case, dtype)
    ours = conv_all(lib, x, w, b, dy, cfg, algo)
    ref = torch_all(x, w, b, dy, cfg)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for name, o, r in zip(("forward", "grad-input", "grad-weight"), ours, ref):
        assert torch.isfinite(o).all(), f"{name}: unwritten (NaN-poisoned) elements"
        assert rel_err(o, r) <= tol, name


@pytest.mark.parametrize("algo", ["fused", "implicit_gemm"])
@pytest.mark.parametrize("case", [(40, 1, 32, 32, 20, 3, 3, 1, 0, 1, 1, True),
                                  (40, 20, 32, 32, 1, 3, 3, 1, 1, 1, 1, False),
                                  (40, 2, 30, 31, 16, 2, 3, 1, 0, 1, 1, True)],
                         ids=["oct32-fwd", "oct32-dgrad", "oct16"])
def test_emulated_large_enough_for_wide_blocks(lib, case, algo):
    # Enough pixels that the fused launcher keeps 128-thread blocks and
    # 16/32-channel chunks (small problems get narrower ones).
    x, w, b, dy, cfg = make(case, torch.float32)
    for name, o, r in zip(("forward", "grad-input", "grad-weight"),
                          conv_all(lib, x, w, b, dy, cfg, algo), torch_all(x, w, b, dy, cfg)):
        assert rel_err(o, r) <= 1e-5, name


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_emulated_conv2d_half_types(lib, algo, dtype):
    # float32 accumulation and one rounding of each result: a few unit roundoffs
    # of the storage type against the float64 function of the same inputs.
    for case in (CASES[1], CASES[3]):
        x, w, b, dy, cfg = make(case, dtype)
        ours = conv_all(lib, x, w, b, dy, cfg, algo)
        for o, r in zip(ours, torch_all(x, w, b, dy, cfg)):
            assert o.dtype == dtype
            assert rel_err(o, r) <= 2 * UNIT[dtype]


@pytest.mark.parametrize("algo", ["direct", "implicit_gemm"])
def test_emulated_grad_weight_split_k_deterministic(lib, algo):
    # N*P*Q spans many split-K chunks; the result is bitwise stable.
    x, w, b, dy, cfg = make((8, 2, 12, 12, 3, 3, 3, 1, 1, 1, 1, False), torch.float32)
    s = _shape(x, w, **cfg)
    first = _call(lib, 2, algo, torch.float32, s, dy, x, None, _poisoned(w.shape, torch.float32))
    again = _call(lib, 2, algo, torch.float32, s, dy, x, None, _poisoned(w.shape, torch.float32))
    assert torch.equal(first, again)
    assert rel_err(first, torch_all(x, w, b, dy, cfg)[2]) <= 1e-5


def test_emulated_asymmetric_padding_and_empty(lib):
    x, w, b, dy, _ = make((2, 3, 7, 6, 4, 4, 4, 1, 0, 1, 1, True), torch.float64)
    s = _shape(x, w, 1, 1, 1, 1, P=7, Q=6)  # 'same' with an even kernel
    xp = F.pad(x, (1, 2, 1, 2))
    dy = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    for algo in ALGOS:
        y = _call(lib, 0, algo, torch.float64, s, x, w, b, _poisoned((2, 4, 7, 6), torch.float64))
        assert rel_err(y, F.conv2d(xp, w, b)) <= 1e-12
        dx = _call(lib, 1, algo, torch.float64, s, dy, w, None, _poisoned(x.shape, torch.float64))
        xr = x.clone().requires_grad_()
        (ref_dx,) = torch.autograd.grad(F.conv2d(F.pad(xr, (1, 2, 1, 2)), w), (xr,), dy)
        assert rel_err(dx, ref_dx) <= 1e-12
    # empty batch: grad-weight of an empty sum is zero
    x0 = torch.empty(0, 3, 7, 6, dtype=torch.float64)
    s0 = _shape(x0, w, 1, 0, 1, 1)
    dw = _call(lib, 2, "auto", torch.float64, s0, torch.empty(0, 4, 4, 3, dtype=torch.float64), x0,
               None, _poisoned(w.shape, torch.float64))
    assert torch.equal(dw, torch.zeros_like(dw))


def test_emulated_unknown_algo_raises(lib):
    x, w, b, dy, cfg = make(CASES[0], torch.float32)
    s = _shape(x, w, **cfg)
    err = ctypes.create_string_buffer(512)
    assert lib.emu_conv2d(0, 2, 0, s, x.data_ptr(), w.data_ptr(), 0, dy.data_ptr(), err) == 1
    assert b"im2col" in err.value


POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 0, 1, False),
    (1, 2, 9, 7, 3, 2, 1, 1, False),
    (1, 2, 7, 8, 3, 1, 1, 1, False),
    (1, 2, 11, 12, (3, 2), (2, 1), (1, 0), (2, 3), True),
]


def _pool_out(n, k, s, p, d, ceil_mode):
    num = n + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_emulated_max_pool2d(lib, case, dtype):
    N, C, H, W, k, st, p, d, ceil_mode = case
    x = torch.randn(N, C, H, W).to(dtype)
    if dtype == torch.float32:
        x[0, 0, 1, 1] = float("nan")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (k, st, p, d))
    P, Q = _pool_out(H, kh, sh, ph, dh, ceil_mode), _pool_out(W, kw, sw, pw, dw, ceil_mode)
    s = (ctypes.c_longlong * 14)(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw)
    y, idx = _poisoned((N, C, P, Q), dtype), torch.full((N, C, P, Q), -7, dtype=torch.int64)
    err = ctypes.create_string_buffer(512)
    assert lib.emu_max_pool2d(0, DTYPE_ID[dtype], s, x.data_ptr(), 0, y.data_ptr(),
                              idx.data_ptr(), err) == 0, err.value
    ref, ref_idx = F.max_pool2d(x.float(), k, st, p, d, ceil_mode=ceil_mode, return_indices=True)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(y.float().nan_to_num(7.0), ref.nan_to_num(7.0))
    dy = torch.randn(N, C, P, Q).to(dtype)
    dx = _poisoned(x.shape, dtype)
    assert lib.emu_max_pool2d(1, DTYPE_ID[dtype], s, dy.data_ptr(), ref_idx.data_ptr(),
                              dx.data_ptr(), 0, err) == 0, err.value
    ref_dx = torch.zeros(N, C, H * W, dtype=torch.float64).scatter_add_(
        2, ref_idx.flatten(2), dy.double().flatten(2)).reshape(x.shape)
    tol = {torch.float64: 1e-15, torch.float32: 1e-7}.get(dtype, UNIT.get(dtype))
    assert rel_err(dx, ref_dx) <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_emulated_max_pool2d_last_nan_and_ties(lib, case, dtype):
    # Small integers (ties everywhere) with NaN, -inf, inf: every NaN replaces
    # the running maximum (the last NaN gives the index), ties keep the first,
    # as torch's CPU and CUDA kernels do; compared bit for bit with torch's CPU.
    N, C, H, W, k, st, p, d, ceil_mode = case
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-2, 3, (N, C, H, W), generator=g).double()
    u = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    x[u < 0.25] = float("nan")
    x[(u >= 0.25) & (u < 0.35)] = -float("inf")
    x[(u >= 0.35) & (u < 0.40)] = float("inf")
    x = x.to(dtype)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (k, st, p, d))
    P, Q = _pool_out(H, kh, sh, ph, dh, ceil_mode), _pool_out(W, kw, sw, pw, dw, ceil_mode)
    s = (ctypes.c_longlong * 14)(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw)
    y, idx = _poisoned((N, C, P, Q), dtype), torch.full((N, C, P, Q), -7, dtype=torch.int64)
    err = ctypes.create_string_buffer(512)
    assert lib.emu_max_pool2d(0, DTYPE_ID[dtype], s, x.data_ptr(), 0, y.data_ptr(),
                              idx.data_ptr(), err) == 0, err.value
    ref, ref_idx = F.max_pool2d(x.double(), k, st, p, d, ceil_mode=ceil_mode,
                                return_indices=True)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(y.double().nan_to_num(7.0), ref.nan_to_num(7.0))
