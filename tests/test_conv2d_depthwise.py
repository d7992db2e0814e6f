"""Direct's depthwise engine (csrc/conv2d/cpu/depthwise.cpp) on the shapes
that reach its paths, on every ISA build this machine runs:
 * forward tiles of 1, 2, 4 and 8 vectors per row (outputs up to 8, 16, 32
   and past 64 columns in float32; half that in float64), row blocks that end
   inside a tile, the masked tail of each row;
 * the phase-split input copy of strided layers: its vector steps (stride 2,
   rows of 2L values and more) and its scalar edges (stride 3, odd pads);
 * the strided input gradient's phases merged into dx (two at a time for
   stride 2; phases no tap reaches, which get zeros);
 * the weight gradient's tap blocks (3x3 in one, 5x5 and 7x7 in several);
 * channel multipliers 1-3, dilation, asymmetric and negative padding;
 * for multiplier 1 on short or strided rows, the channel-vectorised layout
   (depthwise_cvec.cpp): full and partial blocks of channels.
Reference and tolerances: test_conv2d_cpu_kernels.check_case (float64
torch, error within rtol of sum |terms|). Values are normal draws and small
integers (ties, exact zeros, exact sums).
"""
import numpy as np
import pytest
import torch

import convbench
import convbench._C as C
from test_conv2d_cpu_kernels import (BWD_IN, BWD_W, CPU, DTYPES, FWD, Case, check_case,
                                     check_wgrad_bits_per_thread_count, make_data, run_pass)

pytestmark = pytest.mark.usefixtures("cpu_isa")

ENGINE = ("direct:depthwise",)
DEPTHWISE_ID = (1, 3)  # (Direct, its depthwise engine)


def dw(N, C_, H, W, mult=1, k=3, stride=(1, 1), pad=None, dil=(1, 1), bias=True):
    p = k // 2 if pad is None else pad
    pad4 = (p, p, p, p) if isinstance(p, int) else p
    return Case(N, C_, H, W, C_ * mult, k, k, stride, pad4, dil, C_, bias)


CASES = [
    dw(2, 3, 6, 5),                               # one vector per row, 6 rows
    dw(2, 4, 14, 14),                             # MobileNet's 14x14: 2 vectors, 7-row tiles
    dw(1, 5, 9, 29, mult=2),                      # 4 vectors with a tail
    dw(2, 2, 11, 70),                             # 8 vectors, a second chunk
    dw(1, 3, 3, 131, bias=False),                 # wide and short: one row block, tails
    dw(2, 6, 28, 28, stride=(2, 2)),              # stride 2: vector steps of the copy
    dw(1, 4, 57, 45, stride=(2, 2), mult=3),      # odd sizes, multiplier 3
    dw(2, 3, 19, 40, stride=(2, 1)),              # stride in one direction only
    dw(2, 3, 40, 19, stride=(1, 2), pad=(0, 1, 2, 1)),
    dw(1, 5, 23, 26, stride=(3, 3)),              # stride 3: scalar phase copy, 9 phases
    dw(2, 4, 16, 36, k=5, stride=(2, 2)),         # 25 taps: three weight-gradient blocks
    dw(1, 3, 12, 31, k=5, stride=(2, 2)),         # the copy's last vector step ends at the
                                                  # data's end, beside a padding column read
    dw(1, 2, 21, 21, k=7, dil=(2, 2), pad=6),     # 7x7 dilated
    dw(2, 3, 12, 34, dil=(1, 3), pad=(1, 0, 3, 2)),
    dw(1, 4, 10, 12, stride=(2, 2), pad=0),       # no padding: input-gradient crop
    dw(2, 3, 9, 9, k=1, stride=(2, 2), pad=0),    # 1x1 stride 2: phases without taps
    dw(1, 2, 8, 8, k=2, stride=(2, 2), pad=0, mult=2),  # taps that miss every other phase
    dw(3, 7, 5, 5, pad=2),                        # padding wider than the data
    # Multiplier 1 on short or strided rows: channels in the vector lanes
    # (depthwise_cvec.cpp), several channel blocks and a partial last one.
    dw(2, 19, 9, 9, stride=(2, 2)),
    dw(3, 20, 6, 7, bias=False),
    dw(1, 9, 13, 13, k=7, dil=(2, 2), pad=6),     # 49 taps: weight-gradient tap blocks
    dw(2, 17, 12, 11, k=5, stride=(2, 3), pad=(1, 2, 0, 2)),
]


@pytest.mark.parametrize("ints", [False, True], ids=["normal", "integers"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_depthwise_engine(case, dtype, ints):
    check_case(case, dtype, algos=ENGINE, ints=ints, seed=len(repr(case)))


# Groups of a few channels: outside auto's use of the engine, but computed
# correctly (it loops over each group's input channels).
GROUPED = [Case(2, 8, 13, 17, 12, 3, 3, (1, 1), (1, 1, 1, 1), groups=4),
           Case(1, 6, 20, 20, 6, 3, 3, (2, 2), (1, 1, 1, 1), groups=2),
           Case(2, 4, 9, 9, 6, 3, 3, (1, 1), (0, 0, 0, 0), groups=1)]


@pytest.mark.parametrize("case", GROUPED, ids=repr)
def test_depthwise_engine_any_grouping(case):
    check_case(case, np.float64, algos=ENGINE)


@pytest.mark.parametrize("pass_", [FWD, BWD_IN, BWD_W])
@pytest.mark.parametrize("case", [dw(8, 32, 112, 112), dw(8, 144, 56, 56, stride=(2, 2)),
                                  dw(1, 960, 7, 7), dw(8, 32, 56, 56, mult=2)], ids=repr)
def test_auto_runs_depthwise_layers_on_it(case, pass_):
    for dt in DTYPES.values():
        assert tuple(C.conv2d_resolve(pass_, dt, 0, 0, case.shape16())) == DEPTHWISE_ID
        assert tuple(C.conv2d_resolve(pass_, dt, 1, 0, case.shape16())) == DEPTHWISE_ID
    assert DEPTHWISE_ID in [tuple(c) for c in C.conv2d_candidates(pass_, 0, case.shape16())]


def test_not_a_candidate_for_layers_with_wider_groups():
    case = Case(2, 16, 8, 8, 16, 3, 3, (1, 1), (1, 1, 1, 1), groups=8)
    for pass_ in (FWD, BWD_IN, BWD_W):
        assert DEPTHWISE_ID not in [tuple(c) for c in C.conv2d_candidates(pass_, 0,
                                                                          case.shape16())]
        assert tuple(C.conv2d_resolve(pass_, 0, 0, 0, case.shape16())) != DEPTHWISE_ID


@pytest.mark.parametrize("N", [1, 6])
def test_weight_grad_same_bits_for_any_thread_count(N):
    check_wgrad_bits_per_thread_count("direct:depthwise", dw(N, 5, 17, 23, mult=2, stride=(2, 2)),
                                      np.float32, seed=N)


def test_empty_batch():
    case = dw(0, 3, 8, 8)
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    assert run_pass(FWD, "direct:depthwise", case, np.float64, x, w, b, dy).size == 0
    dw_ = run_pass(BWD_W, "direct:depthwise", case, np.float64, x, w, b, dy)
    assert np.array_equal(dw_, np.zeros_like(dw_))


@pytest.mark.parametrize("mult,stride,padding_mode", [(1, 1, "zeros"), (2, 2, "reflect"),
                                                      (3, 1, "circular")])
def test_layer_matches_torch(mult, stride, padding_mode):
    """Through convbench.nn (auto: this engine), forward and every gradient."""
    torch.manual_seed(mult)
    ref = torch.nn.Conv2d(6, 6 * mult, 3, stride, 1, groups=6, padding_mode=padding_mode).double()
    ours = convbench.nn.Conv2d(6, 6 * mult, 3, stride, 1, groups=6,
                               padding_mode=padding_mode).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 15, 22, dtype=torch.float64, requires_grad=True)
    y_ref, y = ref(x), ours(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    dy = torch.randn_like(y)
    g_ref = torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), dy)
    g = torch.autograd.grad(y, (x, ours.weight, ours.bias), dy)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
