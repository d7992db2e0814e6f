"""Runs one conv2d or max-pool row (shared by test_conv_layers, test_pool_layers
and test_beyond): builds the rotating input pool, the float64 oracle of input
set 0, the row's per-set arguments (impls.conv_row/pool_row prepare, untimed)
and times it with timing.run under the row's backend flags."""
from __future__ import annotations

import pytest

import impls
import rowinfo
import timing


def run_conv(benchmark, settings, layer, pass_: str, impl: str, device: str, dtype: str,
             group_prefix: str = "conv", **extra):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    numpy = impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd", impls.itemsize(dtype))
    pool = [impls.conv_inputs(layer, pass_, device, dtype, seed, numpy)
            for seed in range(impls.pool_size(bytes_per_set, device))]
    want = impls.oracle("conv", layer, pass_, dtype, pool[0])
    tol = impls.tolerance(impl, dtype)

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= tol, (
            f"{impl} {pass_} on {layer.id}: relative errors {errs} > {tol}")

    benchmark.group = f"{group_prefix} {pass_} {device} {dtype} {layer.id}"
    info = rowinfo.conv(layer, pass_, impl, device, dtype, impls.itemsize(dtype), **extra)
    with impls.backend_flags(impl, device):
        prepare, fn = impls.conv_row(layer, pass_, impl)
        args = [prepare(*s) for s in pool]
        timing.run(benchmark, fn, args, device=device, check=check, settings=settings,
                   extra_info=info)


def run_pool(benchmark, settings, layer, pass_: str, impl: str, device: str, dtype: str):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    numpy = impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd_bwd", impls.itemsize(dtype))
    pool = [impls.pool_inputs(layer, pass_, device, dtype, seed, numpy)
            for seed in range(impls.pool_size(bytes_per_set, device))]
    want = impls.oracle("pool", layer, pass_, dtype, pool[0])

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        # Max-pooling is exact: values and indices must match bit for bit
        # (the backward of non-overlapping windows adds nothing up).
        assert len(results) == len(want) and max(errs) == 0.0, (
            f"{impl} {pass_} on {layer.id}: relative errors {errs}")

    benchmark.group = f"pool {pass_} {device} {dtype} {layer.id}"
    info = rowinfo.pool(layer, pass_, impl, device, dtype, impls.itemsize(dtype))
    with impls.backend_flags(impl, device):
        prepare, fn = impls.pool_row(layer, pass_, impl)
        args = [prepare(*s) for s in pool]
        timing.run(benchmark, fn, args, device=device, check=check, settings=settings,
                   extra_info=info)
