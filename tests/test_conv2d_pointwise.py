"""Im2colGemm's pointwise engine (csrc/conv2d/cpu/pointwise.cpp): 1x1
layers as one GEMM over the channels with the batch's columns side by side,
every pass, on every ISA build this machine runs. Shapes
reach: strips of columns that cross from one image into the next (planes
of 1, 16 and 49 positions), the last strip's zero-filled tail, row panels
with a partial last panel (output channels not a multiple of the tile),
row panels split across tasks (few strips), groups, the strided/padded
gather and scatter, and the weight gradient's reduction slices. Reference and tolerances: test_conv2d_cpu_kernels.
"""
import numpy as np
import pytest

import convbench._C as C
from test_conv2d_cpu_kernels import (BWD_IN, BWD_W, CPU, DTYPES, FWD, Case, check_case,
                                     check_wgrad_bits_per_thread_count, make_data, run_pass)

pytestmark = pytest.mark.usefixtures("cpu_isa")

POINTWISE_ID = (2, 2)  # (Im2colGemm, its pointwise engine)


def pw(N, C_, H, W, K, stride=(1, 1), pad=(0, 0, 0, 0), groups=1, bias=True):
    return Case(N, C_, H, W, K, 1, 1, stride, pad, (1, 1), groups, bias)


CASES = [
    pw(3, 16, 4, 4, 40),                     # 16-position planes: strips cross images
    pw(2, 24, 7, 7, 13),                     # 49 positions, 13 rows: partial last panel
    pw(1, 33, 30, 30, 17, bias=False),       # one image, many strips, a tail strip
    pw(5, 7, 1, 1, 9),                       # one position per image
    pw(1, 64, 3, 5, 96),                     # one strip: row panels split across tasks
    pw(2, 8, 6, 6, 12, groups=4),            # groups
    pw(2, 12, 7, 9, 13, stride=(2, 2)),      # strided: gather / scatter
    pw(2, 12, 7, 9, 13, stride=(2, 1), pad=(1, 0, 2, 1)),  # padded outputs read zeros
    pw(1, 6, 5, 5, 4, stride=(3, 3), pad=(1, 1, 1, 1)),
]


@pytest.mark.parametrize("ints", [False, True], ids=["normal", "integers"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_pointwise_engine(case, dtype, ints):
    check_case(case, dtype, algos=("im2col:pointwise",), passes=(FWD, BWD_IN), ints=ints,
               seed=len(repr(case)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES + [pw(2, 40, 20, 20, 30)], ids=repr)  # 800 columns: slices
def test_pointwise_weight_gradient(case, dtype):
    check_case(case, dtype, algos=("im2col:pointwise",), passes=(BWD_W,), ints=dtype == np.float32)


@pytest.mark.parametrize("N", [1, 3])
def test_weight_grad_same_bits_for_any_thread_count(N):
    check_wgrad_bits_per_thread_count("im2col:pointwise", pw(N, 50, 9, 9, 20, stride=(2, 2)),
                                      np.float32, seed=N)


def test_rejects_kernels_other_than_1x1():
    case = Case(1, 4, 6, 6, 4, 3, 3)
    x, w, b, dy = make_data(case, np.float64, np.random.default_rng(0))
    for pass_ in (FWD, BWD_IN, BWD_W):
        with pytest.raises(ValueError, match="'pointwise'.*1x1 kernel.*3x3"):
            run_pass(pass_, "im2col:pointwise", case, np.float64, x, w, b, dy)


# MobileNetV2's and ResNet-50's 1x1 layers at batch 8 (expansion,
# projection, strided downsample): auto runs both forward problems on it.
@pytest.mark.parametrize("case", [pw(8, 160, 4, 4, 960), pw(8, 960, 4, 4, 160),
                                  pw(8, 256, 28, 28, 512, stride=(2, 2))], ids=repr)
def test_auto_runs_wide_1x1_layers_on_it(case):
    for pass_ in (FWD, BWD_IN):
        for dt in DTYPES.values():
            assert tuple(C.conv2d_resolve(pass_, dt, 0, 0, case.shape16())) == POINTWISE_ID
    assert POINTWISE_ID in [tuple(c) for c in C.conv2d_candidates(FWD, 0, case.shape16())]
    assert POINTWISE_ID in [tuple(c) for c in C.conv2d_candidates(BWD_W, 0, case.shape16())]


def test_auto_leaves_short_reductions_and_tiny_batches_to_direct():
    for case, pass_ in ((pw(8, 16, 56, 56, 96), FWD),   # 16 input channels to reduce over
                        (pw(1, 32, 112, 112, 16), BWD_IN),  # 16 output channels
                        (pw(1, 960, 7, 7, 160), FWD)):  # 49 columns: kvec's channel vectors
        assert tuple(C.conv2d_resolve(pass_, 0, 0, 0, case.shape16())) != POINTWISE_ID
