"""bfloat16 and float16 conv2d on the CPU: every engine, pass and ISA build.

The kernels widen each operand to float32 exactly, multiply and sum in
float32 and round each output once. A product of two half values is exact
in float32 (8x8 or 11x11 significand bits fit in 24), so against ref, the
float64 result on the same half values, with mag the same computation on
absolute values (sum of |terms|):

    |ours - ref| <= u * |ref| + (1 + u) * rtol32 * mag   (+ 2^-25 for float16)

u the half type's unit roundoff (2^-8 bfloat16, 2^-11 float16: the output's
one rounding), rtol32 the float32 kernels' own bound for the engine
(test_conv2d_cpu_kernels.py: 1e-5, Winograd F(2x2) 5e-5, F(4x4) 2e-4), and
2^-25 half the spacing of float16's subnormals. Integer-valued inputs make
every float32 sum exact, so there the result must be the float64 result
rounded to nearest, ties to even, bit for bit (torch's rounding).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench import _C, _launch

HALF = (torch.bfloat16, torch.float16)
U = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
FLOOR = {torch.bfloat16: 0.0, torch.float16: 2.0 ** -25}
RTOL32 = {"winograd:1": 5e-5, "winograd:2": 2e-4}
# (algorithm, engine): every CPU engine, and the heuristic's pick.
ENGINES = [("direct", 1), ("direct", 2), ("direct", 3), ("im2col", 1), ("im2col", 2),
           ("winograd", 1), ("winograd", 2), ("auto", 0)]


@pytest.fixture(params=["generic", "avx2", "avx512"])
def every_isa(request):
    """Each ISA build compiled here; skipped, with the reason, where this
    CPU cannot run it."""
    if request.param not in _C.cpu_isas_compiled():
        pytest.skip(f"the {request.param} build was not compiled (not an x86-64 build)")
    if request.param not in convbench.backends.cpu_isas():
        pytest.skip(f"this CPU cannot run the {request.param} build")
    with convbench.backends.flags(cpu_isa=request.param):
        yield request.param


# (N, C, H, W, K, R, S, stride, padding (top, bottom, left, right), dilation, groups)
SHAPES = [
    (2, 16, 10, 9, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # every engine, Winograd too
    (1, 3, 17, 13, 5, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),  # odd sizes: partial tiles
    (3, 8, 11, 12, 16, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 2),  # strided, asymmetric, groups
    (2, 6, 12, 12, 6, 3, 2, (1, 2), (2, 2, 1, 1), (2, 1), 3),  # dilated, non-square
    (2, 32, 7, 7, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1x1
    (1, 4, 9, 9, 4, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 4),  # depthwise 5x5
    (2, 8, 21, 19, 16, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 8),  # depthwise x2, stride 2
]


def _applies(algo, engine, shape):
    """Winograd: 3x3, stride 1, dilation 1; im2col's pointwise engine: 1x1."""
    _, _, _, _, _, R, S, stride, _, dil, _ = shape
    if (algo, engine) == ("im2col", 2):
        return (R, S) == (1, 1)
    return algo != "winograd" or (R, S, stride, dil) == (3, 3, (1, 1), (1, 1))


def _operands(shape, dtype, integers=False, seed=0):
    N, C, H, W, K, R, S, stride, pad, dil, groups = shape
    g = torch.Generator().manual_seed(seed)
    if integers:  # small integers, a quarter exact zeros: exact float32 sums
        draw = lambda *s: torch.randint(-3, 4, s, generator=g).float()
    else:
        draw = lambda *s: torch.randn(*s, generator=g)
    x, w, b = draw(N, C, H, W), draw(K, C // groups, R, S), draw(K)
    P = (H + pad[0] + pad[1] - dil[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + pad[2] + pad[3] - dil[1] * (S - 1) - 1) // stride[1] + 1
    dy = draw(N, K, P, Q)
    return [t.to(dtype) for t in (x, w, b, dy)], (P, Q)


def _passes(shape, algo, engine, x, w, b, dy, pq):
    """Our three passes (the weight gradient with the bias gradient fused)."""
    _, _, _, _, _, _, _, stride, pad, dil, groups = shape
    geo = (stride, pad, dil, groups)
    y = _launch.conv2d_forward(x, w, b, pq, *geo, algo, engine)
    dx = _launch.conv2d_backward_input(dy, w, x.shape, *geo, algo, engine)
    db = torch.empty_like(b)
    wgrad_algo = "auto" if algo == "winograd" else algo  # Winograd has no weight pass
    dw = _launch.conv2d_backward_weight(dy, x, w.shape, *geo, wgrad_algo,
                                        0 if algo == "winograd" else engine, bias_out=db)
    return y, dx, dw, db


def _references(shape, x, w, b, dy):
    """float64 results on the same values, and on their absolute values (mag)."""
    _, _, _, _, _, _, _, stride, pad, dil, groups = shape

    def run(x, w, b, dy):
        x, w, b, dy = (t.double().requires_grad_() for t in (x, w, b, dy))
        xp = F.pad(x, (pad[2], pad[3], pad[0], pad[1]))
        y = F.conv2d(xp, w, b, stride, 0, dil, groups)
        dx, dw, db = torch.autograd.grad(y, (x, w, b), dy)
        return [t.detach() for t in (y, dx, dw, db)]

    return run(x, w, b, dy), run(x.abs(), w.abs(), b.abs(), dy.abs())


@pytest.mark.usefixtures("every_isa")
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("algo,engine", ENGINES, ids=lambda v: str(v))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:7])))
def test_every_pass_within_one_rounding(shape, algo, engine, dtype):
    if not _applies(algo, engine, shape):
        pytest.skip("Winograd covers 3x3, stride 1, dilation 1 only; pointwise 1x1 only")
    (x, w, b, dy), pq = _operands(shape, dtype)
    ours = _passes(shape, algo, engine, x, w, b, dy, pq)
    refs, mags = _references(shape, x, w, b, dy)
    rtol32 = RTOL32.get(f"{algo}:{engine}", 1e-5)
    u = U[dtype]
    for name, got, ref, mag in zip(("y", "dx", "dw", "db"), ours, refs, mags):
        assert got.dtype == dtype and got.shape == ref.shape, name
        # (the weight gradient of a Winograd request runs auto's engine)
        tol = rtol32 if name in ("y", "dx") else 1e-5
        bound = u * ref.abs() + (1 + u) * tol * mag + FLOOR[dtype]
        excess = ((got.double() - ref).abs() - bound).max().item()
        assert excess <= 0, f"{name}: error exceeds the bound by {excess:.3g}"


@pytest.mark.usefixtures("every_isa")
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("algo,engine", ENGINES, ids=lambda v: str(v))
def test_exact_sums_round_to_nearest_even(algo, engine, dtype):
    if (algo, engine) == ("winograd", 2):
        pytest.skip("F(4x4)'s transforms (1/6, 1/24) are inexact in binary: its sums are "
                    "not exact, its error bound is test_every_pass_within_one_rounding's")
    # Integer sums up to a few hundred: above 256 (bfloat16) and 2048
    # (float16, with the large layer) ties between two neighbours occur.
    for shape in (SHAPES[0], (2, 64, 6, 6, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                  (2, 96, 5, 6, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)):
        if not _applies(algo, engine, shape):
            continue
        (x, w, b, dy), pq = _operands(shape, dtype, integers=True, seed=5)
        x, w, dy = x * 4, w * 4, dy * 4  # larger sums: more ties, still exact in float32
        ours = _passes(shape, algo, engine, x, w, b, dy, pq)
        refs, _ = _references(shape, x, w, b, dy)
        for name, got, ref in zip(("y", "dx", "dw", "db"), ours, refs):
            want = ref.float().to(dtype)  # exact in float32, then torch's one rounding
            assert torch.equal(got, want), f"{name}: {(got != want).sum().item()} values differ"


def _sum_of_two(a, b, dtype):
    """Ours and torch's a + b, as a 1x1 convolution of two channels with
    weights 1: a, b half values (rows of the same length); the float32 sum is
    exact for the magnitudes used, so the result is its one rounding."""
    x = torch.stack([a, b]).to(dtype).reshape(1, 2, 1, -1)
    w = torch.ones(1, 2, 1, 1, dtype=dtype)
    return convbench.conv2d(x, w), F.conv2d(x.float(), w.float()).to(dtype)


@pytest.mark.usefixtures("every_isa")
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_every_value_widens_and_rounds_as_torch(dtype):
    # Every finite half bit pattern as a, with b either a random small
    # fraction of it (in between two neighbours), exactly half a unit in the
    # last place (a tie: to even), or 0 (a itself: widening and narrowing
    # are exact inverses); float16's subnormals and overflow included.
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    a = bits.view(dtype).float()
    a = a[a.isfinite()]
    g = torch.Generator().manual_seed(1)
    mant, ex = torch.frexp(a)  # |a| = |mant| 2^ex, mant in [0.5, 1)
    half_ulp = torch.sign(a) * torch.ldexp(torch.ones_like(a), ex - (9 if dtype == torch.bfloat16 else 12))
    b = a * torch.randint(-512, 513, a.shape, generator=g).float() * 2.0 ** -17
    b[::3] = half_ulp[::3]
    b[1::3] = 0
    ours, want = _sum_of_two(a, b, dtype)
    assert torch.equal(ours, want), f"{(ours != want).sum().item()} of {a.numel()} differ"
    # NaN stays NaN; infinities stay; float16 overflows to inf as torch's.
    big = 65504.0 if dtype == torch.float16 else 3.3e38
    a = torch.tensor([float("nan"), float("inf"), -float("inf"), big, -big, 1.0])
    b = torch.tensor([1.0, 1.0, 1.0, big / 512, -big / 512, float("nan")])
    ours, want = _sum_of_two(a, b, dtype)
    assert torch.equal(ours.isnan(), want.isnan())
    assert torch.equal(ours.nan_to_num(0.0), want.nan_to_num(0.0))


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_layers_match_torchs_half_convolution(dtype, padding_mode):
    # Against torch's own half convolution. Its forward sums in float32 and
    # rounds once, as ours; its input and weight gradients round partial
    # results too (on this layer up to 2.4 units of the half type, relative to
    # the largest value, from the float64 truth, where ours stays within one:
    # test_every_pass_within_one_rounding). So: within 4 units of the largest.
    torch.manual_seed(2)
    args = dict(stride=(1, 2), padding=1, padding_mode=padding_mode)
    ref = torch.nn.Conv2d(8, 12, 3, **args).to(dtype)
    ours = convbench.nn.Conv2d(8, 12, 3, **args).to(dtype)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 8, 11, 10).to(dtype).requires_grad_()
    y, r = ours(x), ref(x)
    dy = torch.randn(y.shape).to(dtype)
    got = (y, *torch.autograd.grad(y, (x, ours.weight, ours.bias), dy))
    want = (r, *torch.autograd.grad(r, (x, ref.weight, ref.bias), dy))
    for name, a, b in zip(("y", "dx", "dw", "db"), got, want):
        assert a.dtype == dtype, name
        err = (a.double() - b.double()).abs().max() / b.double().abs().max()
        assert err <= 4 * U[dtype], f"{name}: {err:.3g}"


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_a_converted_half_model_trains(dtype):
    # model.to(dtype) then convert(), or convert() then .to(dtype): both run
    # our kernels in the half type, gradients in it too.
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 3, groups=2))
    a = convbench.nn.convert(copy.deepcopy(net).to(dtype))
    b = convbench.nn.convert(copy.deepcopy(net)).to(dtype)
    x = torch.randn(2, 3, 12, 12).to(dtype)
    for model in (a, b):
        model.zero_grad()
        model(x).float().square().sum().backward()
    assert torch.equal(a(x), b(x))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert pa.grad.dtype == dtype and torch.equal(pa.grad, pb.grad)
