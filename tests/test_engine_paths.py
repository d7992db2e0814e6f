"""Every CPU engine and blocking path on drawn shapes, at the kernel level:
Direct's flat and channel-vectorised (kvec) engines, im2col, Winograd F(2x2)
and F(4x4), and auto, each pass, against torch in float64 (the helpers of
test_conv2d_cpu_kernels.py). The shapes of the other property tests are
small (few channels, small batches) and never reach kvec's channel blocks,
im2col's weight-panel slices past C*R*S = 128, Winograd through auto, a
batch cut into several chunks or a weight gradient whose batch splits
unevenly into parts; each regime below reaches one of those by
construction. Marked slow (seconds per ISA build on an idle machine)."""
import numpy as np
import pytest

pytest.importorskip("hypothesis")  # an optional extra (the GPU machine lacks it)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convbench._C as C  # noqa: E402
from test_conv2d_cpu_kernels import ALGOS, CPU, DTYPES, FWD, Case, check_case  # noqa: E402

pytestmark = [pytest.mark.usefixtures("cpu_isa"), pytest.mark.slow]

ENGINES = ("direct:flat", "direct:kvec", "im2col", "auto")
WINOGRAD = ("winograd", "winograd:f4x4")
# tiles.h / problem.h: kKC (im2col's CRS slice) and kChunkBytes (padded input
# planes per batch chunk); 16 float32 lanes is the widest vector (AVX-512).
KC, CHUNK_BYTES, MAX_LANES = 128, 1 << 20, 16


def _geometry(draw, k_max=5):
    R, S = draw(st.integers(1, k_max)), draw(st.integers(1, k_max))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    return R, S, stride, pad, dil


def _extent(draw, k, dil, pad, lo, hi):
    """An input extent in [lo, hi] (or the least one) with a non-empty output."""
    need = max(1, dil * (k - 1) + 1 - pad)
    return draw(st.integers(max(lo, need), max(hi, need)))


def wgrad_parts(N, positions):
    """csrc/conv2d/cpu/wgrad_batch.h's split of a batch (small weights)."""
    return max(1, min(N, 8, N * positions // 256))


@st.composite
def engine_problems(draw):
    regime = draw(st.sampled_from(["wide_channels", "deep_crs", "multi_chunk",
                                   "uneven_wgrad", "winograd_auto"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    groups = draw(st.sampled_from([1, 1, 2]))
    bias, ints = draw(st.booleans()), draw(st.booleans())
    R, S, stride, pad, dil = _geometry(draw)
    if regime == "wide_channels":  # kvec: two or more vectors of output channels
        cg, kg = draw(st.integers(1, 24)), draw(st.integers(2 * MAX_LANES, 3 * MAX_LANES + 5))
        N, lo, hi = draw(st.integers(1, 3)), 1, 10
    elif regime == "deep_crs":  # im2col: several KC slices of C*R*S
        R, S = draw(st.integers(2, 5)), draw(st.integers(2, 5))
        cg = draw(st.integers(KC // (R * S) + 1, 3 * KC // (R * S) + 1))
        kg, N, lo, hi = draw(st.integers(1, 12)), draw(st.integers(1, 3)), 1, 9
    elif regime == "winograd_auto":  # 3x3/1/1 with channels and tiles enough for auto
        R = S = 3
        stride, dil, pad = (1, 1), (1, 1), (1, 1, 1, 1)
        groups, cg, kg = 1, draw(st.integers(16, 24)), draw(st.integers(16, 24))
        N, lo, hi = draw(st.integers(4, 10)), 14, 22  # (F(4x4) from 20x20 at N >= 7)
    elif regime == "multi_chunk":  # large planes; N set below for two or more chunks
        R, S = min(R, 3), min(S, 3)
        cg, kg, N, lo, hi = draw(st.integers(32, 48)), draw(st.integers(1, 8)), 1, 26, 34
    else:  # uneven_wgrad: the batch splits into parts of unequal sizes
        stride, dil = (1, 1), (1, 1)
        cg, kg, N, lo, hi = draw(st.integers(1, 8)), draw(st.integers(1, 12)), 1, 12, 20
    H = _extent(draw, R, dil[0], pad[0] + pad[1], lo, hi)
    W = _extent(draw, S, dil[1], pad[2] + pad[3], lo, hi)
    if regime == "winograd_auto":
        W = H  # (square images: auto's F(4x4) rule wants whole tiles on both axes)
    case = Case(N, cg * groups, H, W, kg * groups, R, S, stride, pad, dil, groups, bias)
    if regime == "multi_chunk":
        plane = (H + pad[0] + pad[1]) * (W + pad[2] + pad[3]) * np.dtype(dtype).itemsize
        N = 2 * CHUNK_BYTES // (case.C * plane) + 1
    elif regime == "uneven_wgrad":
        M = case.P * case.Q
        N = draw(st.sampled_from([n for n in range(3, 14) if n % wgrad_parts(n, M)] or [7]))
    case = Case(N, case.C, H, W, case.K, R, S, stride, pad, dil, groups, bias)
    return regime, case, dtype, ints


def _auto_picks_winograd(case, dtype):
    return C.conv2d_choose_algo(CPU, FWD, DTYPES[dtype], case.shape16()) == ALGOS["winograd"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=engine_problems(), seed=st.integers(0, 2**16))
def test_every_engine_on_wide_shapes(p, seed):
    regime, case, dtype, ints = p
    if regime == "winograd_auto":
        # The regime exists to reach Winograd through auto: if a heuristic
        # change stops that, widen the regime instead of losing the path.
        assert _auto_picks_winograd(case, dtype), f"auto no longer picks Winograd for {case}"
    check_case(case, dtype, algos=ENGINES, seed=seed, ints=ints)
    if case.R == case.S == 3 and case.stride == case.dil == (1, 1):
        check_case(case, dtype, algos=WINOGRAD, seed=seed, ints=ints, passes=(0, 1))
