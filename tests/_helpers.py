"""Tolerances and comparisons shared by the tests."""
import torch

# Norm-wise relative error bounds. float64 kernels differ from the reference
# only by summation order (~1e-15 per term); float32 by ~1e-7 per term over
# sums of at most a few thousand terms.
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    denom = expected.norm().item()
    diff = (actual - expected).norm().item()
    return diff / denom if denom > 0 else diff


def assert_close(actual, expected, dtype, what=""):
    err = rel_err(actual, expected)
    assert err <= RTOL[dtype], f"{what}: relative error {err:.3e} > {RTOL[dtype]:.0e}"


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_shape16(x, w, stride, padding, dilation, groups, P=None, Q=None):
    """The 16 Conv2dShape fields the raw _C.conv2d_* calls take (symmetric
    padding unless P, Q say otherwise)."""
    H, W = x.shape[2:]
    R, S = w.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    if P is None:
        P = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
        Q = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    from convbench import _launch  # the launch layer's builder: _C's field order

    return list(_launch._conv_shape(x.shape, w.shape, (P, Q), (sh, sw), (ph, ph, pw, pw),
                                    (dh, dw), groups))
