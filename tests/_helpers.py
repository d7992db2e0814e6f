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
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    if P is None:
        P = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
        Q = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    fields = dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=P, Q=Q, stride_h=sh, stride_w=sw,
                  pad_h=ph, pad_w=pw, dil_h=dh, dil_w=dw, groups=groups)
    from convbench import _C  # the order is the compiled module's (its ABI)

    return [fields[f] for f in _C.CONV2D_SHAPE_FIELDS]
