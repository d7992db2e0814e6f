"""conv2d per layer and pass: every convbench algorithm beside PyTorch (CPU
and cuDNN) and the NumPy reference. One pytest-benchmark group per shape,
pass, device and dtype."""
from __future__ import annotations

import dataclasses

import pytest

import impls
import layers
import timing


@dataclasses.dataclass(frozen=True)
class Case:
    layer: layers.ConvLayer
    pass_: str
    impl: str
    device: str
    dtype: str

    @property
    def group(self) -> str:
        return f"conv {self.pass_} {self.device} {self.dtype} {self.layer.id}"


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
    reason = impls.skip_reason(case.device, case.impl)
    if reason:
        pytest.skip(reason)
    layer, numpy = case.layer, case.impl.startswith("numpy")
    bytes_per_set = layer.min_bytes("fwd", impls.itemsize(case.dtype))
    pool = [impls.conv_inputs(layer, case.pass_, case.device, case.dtype, seed, numpy)
            for seed in range(impls.pool_size(bytes_per_set, case.device))]
    want = impls.oracle("conv", layer, case.pass_, case.dtype, pool[0])
    tol = impls.tolerance(case.impl, case.dtype)

    def check(results):
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= tol, (
            f"{case.impl} {case.pass_} on {layer.id}: relative errors {errs} > {tol}")

    benchmark.group = case.group
    info = {"kind": "conv", "layer": layer.id, "used_by": list(layer.used_by),
            "pass": case.pass_, "impl": case.impl, "device": case.device, "dtype": case.dtype,
            "flops": layer.flops(case.pass_),
            "bytes": layer.min_bytes(case.pass_, impls.itemsize(case.dtype)),
            "reference": impls.REFERENCE_IMPL[case.device]}
    with impls.backend_flags(case.impl, case.device):
        timing.run(benchmark, impls.conv_fn(layer, case.pass_, case.impl), pool,
                   device=case.device, check=check, settings=settings, extra_info=info)
