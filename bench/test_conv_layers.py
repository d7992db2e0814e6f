"""conv2d per layer and pass: every convbench algorithm beside PyTorch (CPU
and cuDNN) and the NumPy reference. One pytest-benchmark group per shape,
pass, device and dtype."""
from __future__ import annotations

import dataclasses

import pytest

import impls
import layers
import runner


@dataclasses.dataclass(frozen=True)
class Case:
    layer: layers.ConvLayer
    pass_: str
    impl: str
    device: str
    dtype: str


def _cases():
    convs = layers.conv_layers()
    padded = next((c for c in convs if c.padding != (0, 0)), convs[-1])
    smoke = {layers.TINY_CONV.key, convs[0].key, padded.key}
    for device, dtypes in impls.DTYPES.items():
        for dtype in dtypes:
            for layer in (layers.TINY_CONV,) + convs:
                tiny = layer is layers.TINY_CONV
                for pass_ in impls.CONV_PASSES:
                    for impl in impls.conv_impls(device, dtype, layer, tiny):
                        case = Case(layer, pass_, impl, device, dtype)
                        marks = [pytest.mark.bench_smoke] if layer.key in smoke else []
                        yield pytest.param(case, marks=marks,
                                           id=f"{pass_}-{device}-{dtype}-{layer.id}-{impl}")


@pytest.mark.parametrize("case", list(_cases()))
def test_conv(benchmark, settings, case):
    runner.run_conv(benchmark, settings, case.layer, case.pass_, case.impl, case.device,
                    case.dtype)
