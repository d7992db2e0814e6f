"""Runs one conv2d or max-pool row (shared by test_conv_layers, test_pool_layers
and test_beyond; layer_cases lists the per-layer suites' rows): builds the rotating input pool (shared by the rows of one
group: the same seeds give the same sets), the float64 oracle of input set 0,
the row's per-set arguments (impls.conv_row/pool_row prepare, untimed) and
times it with timing.run under the row's backend flags. For CUDA rows the
graph timing gets its own prepared sets, made on its capture stream."""
from __future__ import annotations

import dataclasses

import pytest

import impls
import rowinfo
import timing

_POOLS: dict = {}


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of a per-layer suite."""
    layer: object
    pass_: str
    impl: str
    device: str
    dtype: str


def layer_cases(tiny, layers, smoke, passes, impls_of, dtypes_of=None):
    """A per-layer suite's rows as pytest params: per device and dtype
    (dtypes_of, default impls.DTYPES), the tiny layer and then `layers`, each
    pass, each impls_of(device, dtype, layer, tiny) implementation; rows of
    layers whose key is in smoke are bench_smoke."""
    for device, dtypes in (dtypes_of or impls.DTYPES).items():
        for dtype in dtypes:
            for layer in (tiny,) + tuple(layers):
                for pass_ in passes:
                    for impl in impls_of(device, dtype, layer, layer is tiny):
                        marks = [pytest.mark.bench_smoke] if layer.key in smoke else []
                        yield pytest.param(Case(layer, pass_, impl, device, dtype), marks=marks,
                                           id=f"{pass_}-{device}-{dtype}-{layer.id}-{impl}")


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
    _run(benchmark, settings, "conv", layer, pass_, impl, device, dtype,
         tol=impls.tolerance(impl, dtype), group_prefix=group_prefix, extra=extra)


def run_pool(benchmark, settings, layer, pass_: str, impl: str, device: str, dtype: str):
    # Max-pooling is exact: values and indices must match bit for bit (the
    # backward of non-overlapping windows adds nothing up): tolerance 0.
    _run(benchmark, settings, "pool", layer, pass_, impl, device, dtype, tol=0.0,
         group_prefix="pool", extra={})


def _run(benchmark, settings, kind: str, layer, pass_: str, impl: str, device: str, dtype: str,
         tol: float, group_prefix: str, extra: dict):
    """One row: inputs (a pool of sets), the oracle's answer, the check, the row
    info, and the timing of impl on layer."""
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    numpy = impl.startswith("numpy")
    itemsize = impls.itemsize(dtype)
    bytes_per_set = layer.min_bytes("fwd" if kind == "conv" else "fwd_bwd", itemsize)
    pool = _pool(kind, layer, pass_, device, dtype, numpy, bytes_per_set)
    want = impls.oracle(kind, layer, pass_, dtype, pool[0])

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= tol, (
            f"{impl} {pass_} on {layer.id}: relative errors {errs} > {tol}")

    benchmark.group = f"{group_prefix} {pass_} {device} {dtype} {layer.id}"
    row_info = rowinfo.conv if kind == "conv" else rowinfo.pool
    info = row_info(layer, pass_, impl, device, dtype, itemsize, **extra)
    info.update(impls.pool_info(bytes_per_set, len(pool), device))
    with impls.backend_flags(impl, device):
        prepare, fn = (impls.conv_row if kind == "conv" else impls.pool_row)(layer, pass_, impl)
        _time(benchmark, settings, prepare, fn, pool, device, check, info)
