"""max_pool2d per layer and pass (forward with indices, backward, both):
convbench beside PyTorch (CPU, CUDA) and the NumPy reference. Reported as
bandwidth: pooling does next to no arithmetic."""
from __future__ import annotations

import dataclasses

import pytest

import impls
import layers
import timing


@dataclasses.dataclass(frozen=True)
class Case:
    layer: layers.PoolLayer
    pass_: str
    impl: str
    device: str
    dtype: str

    @property
    def group(self) -> str:
        return f"pool {self.pass_} {self.device} {self.dtype} {self.layer.id}"


def _cases():
    pools = layers.pool_layers()
    smoke = {layers.TINY_POOL.key, pools[0].key}
    for device, dtypes in impls.DTYPES.items():
        for dtype in dtypes:
            for layer in (layers.TINY_POOL,) + pools:
                tiny = layer is layers.TINY_POOL
                for pass_ in impls.POOL_PASSES:
                    for impl in impls.pool_impls(device, tiny):
                        case = Case(layer, pass_, impl, device, dtype)
                        marks = [pytest.mark.bench_smoke] if layer.key in smoke else []
                        yield pytest.param(case, marks=marks,
                                           id=f"{pass_}-{device}-{dtype}-{layer.id}-{impl}")


@pytest.mark.parametrize("case", list(_cases()))
def test_pool(benchmark, settings, case):
    reason = impls.skip_reason(case.device, case.impl)
    if reason:
        pytest.skip(reason)
    layer, numpy = case.layer, case.impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd_bwd", impls.itemsize(case.dtype))
    pool = [impls.pool_inputs(layer, case.pass_, case.device, case.dtype, seed, numpy)
            for seed in range(impls.pool_size(bytes_per_set, case.device))]
    want = impls.oracle("pool", layer, case.pass_, case.dtype, pool[0])

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        # Max-pooling is exact: values and indices must match bit for bit
        # (the backward of non-overlapping windows adds nothing up).
        assert len(results) == len(want) and max(errs) == 0.0, (
            f"{case.impl} {case.pass_} on {layer.id}: relative errors {errs}")

    benchmark.group = case.group
    info = {"kind": "pool", "layer": layer.id, "used_by": list(layer.used_by),
            "pass": case.pass_, "impl": case.impl, "device": case.device, "dtype": case.dtype,
            "flops": layer.flops(case.pass_),
            "bytes": layer.min_bytes(case.pass_, impls.itemsize(case.dtype)),
            "reference": impls.REFERENCE_IMPL[case.device]}
    with impls.backend_flags(case.impl, case.device):
        timing.run(benchmark, impls.pool_fn(layer, case.pass_, case.impl), pool,
                   device=case.device, check=check, settings=settings, extra_info=info)
