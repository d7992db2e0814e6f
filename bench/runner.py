"""Runs one conv2d or max-pool row (shared by test_conv_layers, test_pool_layers
and test_beyond): builds the rotating input pool (shared by the rows of one
group: the same seeds give the same sets), the float64 oracle of input set 0,
the row's per-set arguments (impls.conv_row/pool_row prepare, untimed) and
times it with timing.run under the row's backend flags. For CUDA rows the
graph timing gets its own prepared sets, made on its capture stream."""
from __future__ import annotations

import pytest

import impls
import rowinfo
import timing

_POOLS: dict = {}


def _pool(kind, layer, pass_, device, dtype, numpy, bytes_per_set):
    """The input sets of one group, kept while its rows run (one group at a time)."""
    key = (kind, layer.key, pass_, device, dtype, numpy)
    if key not in _POOLS:
        _POOLS.clear()
        make = impls.conv_inputs if kind == "conv" else impls.pool_inputs
        _POOLS[key] = [make(layer, pass_, device, dtype, seed, numpy)
                       for seed in range(impls.pool_size(bytes_per_set, device))]
    return _POOLS[key]


def _time(benchmark, settings, prepare, fn, pool, device, check, info):
    args = [prepare(*s) for s in pool]
    graph_args = (lambda: [prepare(*s) for s in pool]) if device == "cuda" else None
    timing.run(benchmark, fn, args, device=device, check=check, settings=settings,
               extra_info=info, graph_args=graph_args)


def run_conv(benchmark, settings, layer, pass_: str, impl: str, device: str, dtype: str,
             group_prefix: str = "conv", **extra):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    numpy = impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd", impls.itemsize(dtype))
    pool = _pool("conv", layer, pass_, device, dtype, numpy, bytes_per_set)
    want = impls.oracle("conv", layer, pass_, dtype, pool[0])
    tol = impls.tolerance(impl, dtype)

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= tol, (
            f"{impl} {pass_} on {layer.id}: relative errors {errs} > {tol}")

    benchmark.group = f"{group_prefix} {pass_} {device} {dtype} {layer.id}"
    info = rowinfo.conv(layer, pass_, impl, device, dtype, impls.itemsize(dtype), **extra)
    info.update(impls.pool_info(bytes_per_set, len(pool), device))
    with impls.backend_flags(impl, device):
        prepare, fn = impls.conv_row(layer, pass_, impl)
        _time(benchmark, settings, prepare, fn, pool, device, check, info)


def run_pool(benchmark, settings, layer, pass_: str, impl: str, device: str, dtype: str):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    numpy = impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd_bwd", impls.itemsize(dtype))
    pool = _pool("pool", layer, pass_, device, dtype, numpy, bytes_per_set)
    want = impls.oracle("pool", layer, pass_, dtype, pool[0])

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        # Max-pooling is exact: values and indices must match bit for bit
        # (the backward of non-overlapping windows adds nothing up).
        assert len(results) == len(want) and max(errs) == 0.0, (
            f"{impl} {pass_} on {layer.id}: relative errors {errs}")

    benchmark.group = f"pool {pass_} {device} {dtype} {layer.id}"
    info = rowinfo.pool(layer, pass_, impl, device, dtype, impls.itemsize(dtype))
    info.update(impls.pool_info(bytes_per_set, len(pool), device))
    with impls.backend_flags(impl, device):
        prepare, fn = impls.pool_row(layer, pass_, impl)
        _time(benchmark, settings, prepare, fn, pool, device, check, info)
