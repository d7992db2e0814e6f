"""max_pool2d per layer and pass (forward with indices, backward, both):
convbench beside PyTorch (CPU, CUDA) and the NumPy reference. Reported as
bandwidth: pooling does next to no arithmetic."""
from __future__ import annotations

import pytest

import impls
import layers
import runner


def _cases():
    pools = layers.pool_layers()
    smoke = {layers.TINY_POOL.key, pools[0].key}
    return list(runner.layer_cases(layers.TINY_POOL, pools, smoke, impls.POOL_PASSES,
                                   lambda device, dtype, layer, tiny:
                                   impls.pool_impls(device, tiny)))


@pytest.mark.parametrize("case", _cases())
def test_pool(benchmark, settings, case):
    runner.run_pool(benchmark, settings, case.layer, case.pass_, case.impl, case.device,
                    case.dtype)
