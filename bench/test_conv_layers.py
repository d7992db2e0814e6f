"""conv2d per layer and pass: every convbench algorithm beside PyTorch (CPU
and cuDNN) and the NumPy reference. One pytest-benchmark group per shape,
pass, device and dtype."""
from __future__ import annotations

import pytest

import impls
import layers
import runner


def _cases():
    convs = layers.conv_layers()
    padded = next((c for c in convs if c.padding != (0, 0)), convs[-1])
    smoke = {layers.TINY_CONV.key, convs[0].key, padded.key}
    return list(runner.layer_cases(layers.TINY_CONV, convs, smoke, impls.CONV_PASSES,
                                   impls.conv_impls, impls.CONV_DTYPES))


@pytest.mark.parametrize("case", _cases())
def test_conv(benchmark, settings, case):
    runner.run_conv(benchmark, settings, case.layer, case.pass_, case.impl, case.device,
                    case.dtype)
