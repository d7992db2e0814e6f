"""max_pool2d per layer and pass (forward with indices, backward, both):
convbench beside PyTorch (CPU, CUDA) and the NumPy reference. Reported as
bandwidth: pooling does next to no arithmetic."""
from __future__ import annotations

import dataclasses

import pytest

import impls
import layers
import runner


@dataclasses.dataclass(frozen=True)
class Case:
    layer: layers.PoolLayer
    pass_: str
    impl: str
    device: str
    dtype: str


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
    runner.run_pool(benchmark, settings, case.layer, case.pass_, case.impl, case.device,
                    case.dtype)
