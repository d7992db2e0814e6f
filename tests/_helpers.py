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
