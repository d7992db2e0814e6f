"""Tolerances, comparisons and conv cases shared by the tests."""
import random

import torch

# Norm-wise relative error bounds. float64 kernels differ from the reference
# only by summation order (~1e-15 per term); float32 by ~1e-7 per term over
# sums of at most a few thousand terms.
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}

# Every skip for want of a usable GPU starts with this tag: the GPU check
# (tools/gpucheck/verdicts.py NO_GPU_TAG) fails a run in which any test skipped
# for it, since on the GPU machine that test checked nothing.
NO_GPU = "[no GPU]"


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
    from convbench._shapes import conv2d_shape  # the launch layer's packer: _C's field order

    return list(conv2d_shape(x.shape, w.shape, (P, Q), (sh, sw), (ph, ph, pw, pw), (dh, dw),
                             groups))


def random_conv_cases(count, seed, groups=(1, 1, 2), per_group=(5, 9), kernel=4, size=12,
                      batch=3):
    """count conv2d cases (N, C, H, W, K, R, S, stride, padding, dilation,
    groups, bias), drawn from seed: C, K up to per_group per group, kernels up
    to kernel, planes up to size (at least the dilated kernel), N up to batch."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        g = rng.choice(groups)
        C, K = g * rng.randint(1, per_group[0]), g * rng.randint(1, per_group[1])
        R, S = rng.randint(1, kernel), rng.randint(1, kernel)
        sh, sw, dh, dw = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 2)
        ph, pw = rng.randint(0, (dh * (R - 1)) // 2), rng.randint(0, (dw * (S - 1)) // 2)
        H, W = rng.randint(dh * (R - 1) + 1, size), rng.randint(dw * (S - 1) + 1, size)
        out.append((rng.randint(1, batch), C, H, W, K, R, S, (sh, sw), (ph, pw), (dh, dw), g,
                    rng.random() < 0.5))
    return out
