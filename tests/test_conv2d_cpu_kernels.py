"""Kernel-level tests of the CPU conv2d kernels (convbench._C with NumPy arrays).

Reference: torch.nn.functional.conv2d in float64 and its autograd gradients.
Asymmetric padding is expressed the way the kernels see it (top/left pad plus
P, Q) and, on the torch side, by F.pad before an unpadded conv.
Tolerance: |ours - ref| <= rtol * mag, with mag the same computation on
absolute values (sum of |terms|), the natural bound for a reordered sum:
float64 rtol 1e-12, float32 rtol 1e-5 (long reductions stay below ~1e-6 here).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convbench._C as C

# Every test here runs once per CPU ISA build this machine can run.
pytestmark = pytest.mark.usefixtures("cpu_isa")

CPU, FWD, BWD_IN, BWD_W = 0, 0, 1, 2
ALGOS = {"direct": 1, "im2col": 2, "winograd": 4}
# Every CPU engine, as (algo id, engine): Direct's three engines are separate
# kernels ("flat" vectorised along output positions, "kvec" along output
# channels, "depthwise" along each group's output rows), and engine 0 is the
# heuristic's pick; im2col's pointwise engine runs 1x1 layers as one GEMM.
ENGINES = {"direct:flat": (1, 1), "direct:kvec": (1, 2), "direct:depthwise": (1, 3),
           "im2col": (2, 1), "im2col:pointwise": (2, 2), "winograd": (4, 1), "winograd:f4x4": (4, 2), "direct": (1, 0),
           "auto": (0, 0)}
# The engines that take any layer (the depthwise engine is built for few
# channels per group but computes any).
ANY_LAYER = ("direct:flat", "direct:kvec", "direct:depthwise", "im2col")
DTYPES = {np.float32: 0, np.float64: 1}
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
# Winograd rounds in the transformed domain: each output mixes (m+2)^2
# transformed products whose coefficients reach 5 (B), 1/24 (G) and 8 (A)
# for F(4x4), so its float32 error relative to sum |terms| grows by ~10x
# (F(2x2)) and ~100x (F(4x4)) over direct's (measured worst over 80 random
# layers: 8e-6 and 4e-5; float64 stays below 3e-14).
RTOL_ENGINE = {("winograd", np.float32): 5e-5, ("winograd:f4x4", np.float32): 2e-4}


def out_size(n, k, stride, pad_lo, pad_hi, dil):
    return (n + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1


class Case:
    def __init__(self, N, C_, H, W, K, R, S, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1),
                 groups=1, bias=True):
        self.N, self.C, self.H, self.W, self.K, self.R, self.S = N, C_, H, W, K, R, S
        self.stride, self.pad, self.dil, self.groups, self.bias = stride, pad, dil, groups, bias
        pt, pb, pl, pr = pad
        self.P = out_size(H, R, stride[0], pt, pb, dil[0])
        self.Q = out_size(W, S, stride[1], pl, pr, dil[1])

    def shape16(self):
        pt, _, pl, _ = self.pad
        return [self.N, self.C, self.H, self.W, self.K, self.R, self.S, self.P, self.Q,
                self.stride[0], self.stride[1], pt, pl, self.dil[0], self.dil[1], self.groups]

    def __repr__(self):
        return (f"N{self.N} C{self.C} {self.H}x{self.W} K{self.K} {self.R}x{self.S} "
                f"s{self.stride} p{self.pad} d{self.dil} g{self.groups} b{self.bias}")


def torch_conv(case, x, w, b):
    pt, pb, pl, pr = case.pad
    return F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, case.stride, 0, case.dil, case.groups)


def reference(case, x, w, b, dy):
    """Forward, grad-input, grad-weight in float64 and their magnitudes."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float64))
    xt, wt = t(x).requires_grad_(), t(w).requires_grad_()
    bt = t(b) if b is not None else None
    y = torch_conv(case, xt, wt, bt)
    dx, dw = torch.autograd.grad(y, (xt, wt), t(dy))
    xa, wa = t(np.abs(x)).requires_grad_(), t(np.abs(w)).requires_grad_()
    ba = t(np.abs(b)) if b is not None else None
    ya = torch_conv(case, xa, wa, ba)
    dxa, dwa = torch.autograd.grad(ya, (xa, wa), t(np.abs(dy)))
    return [(y.detach().numpy(), ya.detach().numpy()), (dx.numpy(), dxa.numpy()),
            (dw.numpy(), dwa.numpy())]


def run_pass(pass_, algo, case, dtype, x, w, b, dy, fill=np.nan):
    """algo: an ENGINES name or a raw algo id (engine 0)."""
    algo, engine = ENGINES[algo] if isinstance(algo, str) else (algo, 0)
    dt = DTYPES[dtype]
    s16 = case.shape16()
    if pass_ == FWD:
        out = np.full((case.N, case.K, case.P, case.Q), fill, dtype)
        C.conv2d_forward(CPU, 0, 0, dt, algo, s16, x.ctypes.data, w.ctypes.data,
                         b.ctypes.data if b is not None else 0, out.ctypes.data, engine)
    elif pass_ == BWD_IN:
        out = np.full(x.shape, fill, dtype)
        C.conv2d_backward_input(CPU, 0, 0, dt, algo, s16, dy.ctypes.data, w.ctypes.data,
                                out.ctypes.data, engine)
    else:
        out = np.full(w.shape, fill, dtype)
        C.conv2d_backward_weight(CPU, 0, 0, dt, algo, s16, dy.ctypes.data, x.ctypes.data,
                                 out.ctypes.data, engine)
    return out


def make_data(case, dtype, rng, ints=False):
    """Normal values, or (ints) small integers: ties and exact zeros, sums exact."""
    def draw(*shape):
        v = rng.integers(-3, 4, size=shape) if ints else rng.standard_normal(shape)
        return v.astype(dtype)
    x = draw(case.N, case.C, case.H, case.W)
    w = draw(case.K, case.C // case.groups, case.R, case.S)
    b = draw(case.K) if case.bias else None
    dy = draw(case.N, case.K, case.P, case.Q)
    return x, w, b, dy


def engine_rtol(name, pass_, case, dtype):
    """(rtol, Winograd output tile or 0)."""
    if name == "auto" and C.conv2d_choose_algo(CPU, pass_, DTYPES[dtype],
                                               case.shape16()) == ALGOS["winograd"]:
        name = "winograd:f4x4"  # (auto may pick either Winograd engine)
    tile = {"winograd": 2, "winograd:f4x4": 4}.get(name, 0)
    return RTOL_ENGINE.get((name, dtype), RTOL[dtype]), tile


def tile_magnitude(mag, m):
    """Winograd's rounding follows its tile's transformed sums, not each
    output's own terms: an output whose terms are small (an image edge of a
    full-padding input gradient) beside large ones shares their error. The
    largest sum|terms| within m - 1 positions covers any tile holding it."""
    pad = m - 1
    padded = np.pad(mag, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(padded, (2 * pad + 1, 2 * pad + 1), (2, 3))
    return win.max(axis=(-2, -1))


def check_case(case, dtype, algos=ANY_LAYER, seed=0,
               passes=(FWD, BWD_IN, BWD_W), ints=False):
    rng = np.random.default_rng(seed)
    x, w, b, dy = make_data(case, dtype, rng, ints)
    ref = reference(case, x, w, b, dy)
    for name in algos:
        for pass_ in passes:
            got = run_pass(pass_, name, case, dtype, x, w, b, dy)
            want, mag = ref[pass_]
            assert got.shape == want.shape
            assert np.all(np.isfinite(got)), f"{name} pass {pass_} {case}: non-finite output"
            err = np.abs(got.astype(np.float64) - want)
            rtol, tile = engine_rtol(name, pass_, case, dtype)
            if tile and pass_ != BWD_W:
                mag = tile_magnitude(mag, tile)
            bound = rtol * (mag + np.finfo(np.float64).tiny)
            bad = err > bound
            assert not bad.any(), (
                f"{name} pass {pass_} {dtype.__name__} {case}: {bad.sum()} elements off, "
                f"max err/mag {np.max(err / (mag + 1e-300)):.3g}")


def random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        groups = int(rng.choice([1, 1, 1, 2, 3]))
        cg, kg = int(rng.integers(1, 6)), int(rng.integers(1, 7))
        R, S = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = tuple(int(v) for v in rng.integers(0, 4, size=4))
        H = int(rng.integers(1, 20)) + dil[0] * (R - 1)
        W = int(rng.integers(1, 20)) + dil[1] * (S - 1)
        case = Case(int(rng.integers(1, 4)), cg * groups, H, W, kg * groups, R, S, stride, pad,
                    dil, groups, bool(rng.integers(0, 2)))
        if case.P > 0 and case.Q > 0:
            cases.append(case)
    return cases


# Homework-like layers (reduced batch) plus awkward corners.
FIXED = [
    Case(2, 1, 32, 32, 16, 3, 3),
    Case(2, 3, 32, 32, 16, 3, 3, pad=(1, 1, 1, 1)),
    Case(2, 16, 30, 30, 8, 5, 5),
    Case(2, 8, 13, 13, 16, 7, 7),
    Case(2, 16, 12, 12, 16, 5, 5, bias=False),
    Case(1, 32, 7, 7, 32, 3, 3, pad=(1, 1, 1, 1)),
    Case(1, 64, 15, 15, 128, 3, 3),
    Case(1, 1, 1, 1, 1, 1, 1),
    Case(1, 4, 9, 11, 6, 3, 3, pad=(0, 1, 2, 0)),            # asymmetric ('same'-like)
    Case(1, 4, 10, 10, 6, 4, 4, pad=(1, 2, 1, 2)),            # even kernel, 'same'
    Case(3, 6, 17, 19, 9, 3, 5, stride=(2, 3), dil=(2, 1), groups=3),
    Case(2, 8, 16, 16, 8, 3, 3, pad=(1, 1, 1, 1), groups=8),  # depthwise
    Case(1, 2, 5, 40, 3, 1, 3, stride=(1, 2), pad=(0, 0, 3, 3)),
    Case(2, 5, 8, 8, 7, 3, 3, pad=(3, 3, 3, 3), dil=(3, 3)),  # dilation larger than image
    # >= 16 output channels per group on small outputs: Direct's channel-vectorised engine
    Case(2, 16, 11, 9, 32, 3, 3, stride=(2, 1), pad=(1, 0, 2, 1), dil=(1, 2)),
    Case(2, 8, 10, 10, 32, 3, 3, pad=(1, 1, 1, 1), groups=2, bias=False),
    Case(1, 4, 13, 13, 16, 3, 3, stride=(2, 2)),
    Case(3, 24, 6, 6, 24, 2, 2, pad=(1, 0, 0, 1)),
    # One vector of output channels (8 float / 4 double): 8-row weight-gradient
    # tiles, the last one partial (C*R*S = 225)
    Case(2, 9, 9, 9, 8, 5, 5),
    Case(2, 9, 9, 9, 4, 5, 5, bias=False),
    # Outputs narrower than a register tile (tiles span rows, so the taps a
    # tile skips must suit every row it touches), padding on both sides.
    Case(2, 4, 5, 2, 16, 3, 3, pad=(1, 1, 1, 1)),
    Case(1, 3, 6, 3, 20, 3, 2, pad=(2, 1, 1, 2), dil=(1, 2)),
    # Wide layers, batch 1, several channel blocks and position blocks;
    # output channels that are not whole vectors (tails of every width).
    Case(1, 64, 7, 7, 80, 3, 3, pad=(1, 1, 1, 1)),
    Case(1, 48, 9, 9, 72, 3, 3, stride=(2, 2), pad=(1, 1, 1, 1)),
    Case(2, 33, 12, 12, 40, 1, 1),
    Case(1, 16, 20, 19, 36, 5, 5, pad=(2, 2, 2, 2), bias=False),
    # Weights past 1 MiB at batch 1: the channel-vectorised engine streams
    # them chunk by chunk of input channels (uneven last chunk, channel tail).
    Case(1, 256, 5, 5, 160, 3, 3, pad=(1, 1, 1, 1)),
    Case(1, 200, 6, 7, 144, 3, 3, stride=(2, 1), pad=(1, 1, 0, 2), groups=2),
    # ... and over several images at once; dW past 512 KiB: one weight-
    # gradient part, parallel inside each chunk of images.
    Case(3, 256, 4, 4, 144, 3, 3, pad=(1, 1, 1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", FIXED, ids=repr)
def test_fixed_cases(case, dtype):
    check_case(case, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", random_cases(40, seed=1234), ids=repr)
def test_random_cases(case, dtype):
    check_case(case, dtype, seed=hash(repr(case)) & 0xFFFF)


# Winograd F(2x2,3x3) and F(4x4,3x3): forward and input gradient of 3x3 /
# stride 1 / dilation 1. Partial tiles of both sizes, input channels that are
# not whole vectors, several output-channel blocks, tasks across images.
WINOGRAD = [
    Case(2, 1, 32, 32, 16, 3, 3),
    Case(3, 16, 15, 15, 32, 3, 3, pad=(1, 1, 1, 1)),   # odd output: partial tiles
    Case(2, 6, 9, 12, 10, 3, 3, pad=(0, 2, 1, 0), groups=2, bias=False),
    Case(1, 5, 3, 3, 7, 3, 3, pad=(2, 2, 2, 2)),        # input-gradient pad < 0 side
    Case(4, 32, 7, 7, 32, 3, 3, pad=(1, 1, 1, 1)),
    Case(1, 3, 4, 20, 5, 3, 3),
    Case(3, 21, 10, 13, 70, 3, 3, pad=(1, 0, 2, 1)),
    Case(2, 40, 6, 6, 24, 3, 3, pad=(3, 3, 3, 3)),     # input-gradient crop (pad > 2)
    Case(5, 8, 9, 9, 136, 3, 3, pad=(1, 1, 1, 1), groups=2, bias=False),
    # Rows wider than a task (69 and 35 tiles against at most 32 a task):
    # tasks start and end inside tile rows, and one task's rows each hold a
    # run that stops short of the row's end (the output window's partial runs).
    Case(2, 4, 6, 140, 5, 3, 3, pad=(1, 1, 0, 0)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", WINOGRAD, ids=repr)
def test_winograd(case, dtype):
    check_case(case, dtype, algos=("winograd", "winograd:f4x4"), passes=(FWD, BWD_IN))


def test_winograd_weight_grad_takes_autos_choice():
    case = Case(2, 3, 6, 6, 4, 3, 3)
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    ours = run_pass(BWD_W, "winograd", case, np.float64, x, w, b, dy)
    auto = run_pass(BWD_W, 0, case, np.float64, x, w, b, dy)
    np.testing.assert_array_equal(ours, auto)


@pytest.mark.parametrize("pass_, case", [
    (FWD, Case(1, 2, 8, 8, 2, 5, 5)),
    (FWD, Case(1, 2, 8, 8, 2, 3, 3, stride=(2, 2))),
    (BWD_IN, Case(1, 2, 8, 8, 2, 3, 3, dil=(2, 2))),
])
def test_winograd_rejects_what_it_does_not_cover(pass_, case):
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    with pytest.raises(ValueError, match="winograd"):
        run_pass(pass_, "winograd", case, np.float64, x, w, b, dy)


# Wide layers (16+ channels per group on both sides, 160+ output tiles of
# 2x2) that auto would send to Winograd were they 3x3, stride 1, dilation 1:
# the geometry check must stop it (Winograd computes such a layer wrongly).
NOT_WINOGRAD = [Case(8, 16, 16, 16, 16, 5, 5, pad=(2, 2, 2, 2)),
                Case(8, 16, 32, 32, 16, 3, 3, stride=(2, 2), pad=(1, 1, 1, 1)),
                Case(8, 16, 32, 32, 16, 3, 3, stride=(1, 2), pad=(1, 1, 1, 1)),
                Case(8, 16, 16, 16, 16, 3, 3, pad=(2, 2, 2, 2), dil=(2, 2)),
                Case(8, 32, 16, 16, 32, 1, 3, pad=(0, 0, 1, 1), groups=2)]


def _as_3x3(case):
    return Case(case.N, case.C, case.P, case.Q, case.K, 3, 3, pad=(1, 1, 1, 1),
                groups=case.groups)


@pytest.mark.parametrize("case", NOT_WINOGRAD, ids=repr)
def test_auto_keeps_wide_layers_winograd_cannot_do_away_from_it(case):
    # The same layer as a 3x3 stride-1 one is Winograd's: these are wide enough.
    assert C.conv2d_choose_algo(CPU, FWD, DTYPES[np.float32], _as_3x3(case).shape16()) \
        == ALGOS["winograd"]
    for pass_ in (FWD, BWD_IN):
        assert C.conv2d_choose_algo(CPU, pass_, DTYPES[np.float32], case.shape16()) \
            != ALGOS["winograd"]
    check_case(case, np.float32, algos=("auto",), passes=(FWD, BWD_IN))


def test_full_batch_layer_float32():
    check_case(Case(50, 3, 32, 32, 16, 3, 3), np.float32)


@pytest.mark.parametrize("algo", ANY_LAYER)
def test_weight_grad_deterministic(algo):
    case = Case(37, 8, 20, 20, 16, 3, 3, pad=(1, 1, 1, 1))
    rng = np.random.default_rng(7)
    x, w, b, dy = make_data(case, np.float32, rng)
    first = run_pass(BWD_W, algo, case, np.float32, x, w, b, dy)
    for _ in range(3):
        again = run_pass(BWD_W, algo, case, np.float32, x, w, b, dy)
        assert np.array_equal(first.view(np.uint32), again.view(np.uint32))


@pytest.mark.parametrize("algo", ANY_LAYER)
@pytest.mark.parametrize("N", [1, 5, 37])
# C >= 8: Direct's channel-vectorised wgrad; K = 4 on 6x6: its 8-row tiles (float64)
@pytest.mark.parametrize("C_, K, HW, p", [(6, 12, 15, 1), (8, 12, 15, 1), (9, 4, 6, 0)])
def test_weight_grad_same_bits_for_any_thread_count(algo, N, C_, K, HW, p):
    check_wgrad_bits_per_thread_count(algo, Case(N, C_, HW, HW, K, 3, 3, pad=(p, p, p, p)),
                                      np.float64, seed=N)


def check_wgrad_bits_per_thread_count(algo, case, dtype, seed):
    """The weight gradient on 1, 2 and 3 threads, bit for bit (torch shares
    the OpenMP runtime, so set_num_threads reaches our kernels)."""
    x, w, b, dy = make_data(case, dtype, np.random.default_rng(seed))
    old = torch.get_num_threads()
    try:
        outs = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            outs.append(run_pass(BWD_W, algo, case, dtype, x, w, b, dy))
    finally:
        torch.set_num_threads(old)
    bits = np.uint64 if dtype == np.float64 else np.uint32
    for o in outs[1:]:
        assert np.array_equal(outs[0].view(bits), o.view(bits))


@pytest.mark.parametrize("algo", ANY_LAYER)
def test_empty_batch(algo):
    case = Case(0, 3, 8, 8, 4, 3, 3)
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    y = run_pass(FWD, algo, case, np.float64, x, w, b, dy)
    assert y.size == 0
    dw = run_pass(BWD_W, algo, case, np.float64, x, w, b, dy)
    assert np.array_equal(dw, np.zeros_like(dw))


def test_auto_and_algo_list():
    algos = C.conv2d_algos(CPU)
    assert set(ALGOS.values()) <= set(algos)
    case = Case(2, 3, 12, 12, 5, 3, 3)
    for pass_ in (FWD, BWD_IN, BWD_W):
        for dt in DTYPES.values():
            assert C.conv2d_choose_algo(CPU, pass_, dt, case.shape16()) in algos
    check_case(case, np.float64, algos=())  # reference itself runs
    rng = np.random.default_rng(3)
    x, w, b, dy = make_data(case, np.float64, rng)
    ref = reference(case, x, w, b, dy)
    for pass_ in (FWD, BWD_IN, BWD_W):
        got = run_pass(pass_, 0, case, np.float64, x, w, b, dy)
        np.testing.assert_allclose(got, ref[pass_][0], rtol=0, atol=1e-12 * ref[pass_][1].max())


@pytest.mark.parametrize("algo, name", [(3, "implicit_gemm"), (4, "winograd"), (5, "fused")])
def test_unsupported_algo_names_it(algo, name):
    case = Case(1, 2, 6, 6, 2, 3, 3)
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    if algo in C.conv2d_algos(CPU):
        pytest.skip(f"{name} is implemented on the CPU")
    with pytest.raises(ValueError, match=name):
        run_pass(FWD, algo, case, np.float64, x, w, b, dy)


def test_bad_dtype_rejected():
    case = Case(1, 2, 6, 6, 2, 3, 3)
    x, w, b, dy = make_data(case, np.float32, np.random.default_rng(0))
    y = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="float32, float64, float16 and bfloat16, got dtype code 7"):
        C.conv2d_forward(CPU, 0, 0, 7, 1, case.shape16(), x.ctypes.data, w.ctypes.data,
                         b.ctypes.data, y.ctypes.data)


def test_tiny_passes_leave_the_thread_count_as_they_found_it():
    # Passes under 32768 multiply-adds run on the calling thread alone
    # (conv2d_cpu.cpp's SerialIfTiny) and must restore OpenMP's setting,
    # which torch shares; larger ones use every thread.
    tiny, large = Case(1, 2, 6, 6, 2, 3, 3), Case(2, 16, 20, 20, 16, 3, 3)
    old = torch.get_num_threads()
    try:
        for nt in (3, 2):
            torch.set_num_threads(nt)
            for case in (tiny, large):
                x, w, b, dy = make_data(case, np.float32, np.random.default_rng(0))
                for pass_ in (FWD, BWD_IN, BWD_W):
                    run_pass(pass_, 0, case, np.float32, x, w, b, dy)
                    assert torch.get_num_threads() == nt
            check_case(tiny, np.float64)
    finally:
        torch.set_num_threads(old)
