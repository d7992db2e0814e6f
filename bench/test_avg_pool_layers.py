"""avg_pool2d per layer and pass (forward, backward, both): convbench beside
PyTorch (CPU; ATen's kernel on CUDA) and the NumPy reference on the tiny
layer. The homework networks have no average pooling, so the layers are
those of models beyond it (suite "beyond"): DenseNet-121's transition
(2x2/2) and Inception-v3's pool branch (3x3/1, padding 1). Reported as
bandwidth, like max-pool."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import convbench
import impls
import rowinfo
import timing
from convbench import reference as ref

PASSES = ("fwd", "bwd", "fwd_bwd")


@dataclasses.dataclass(frozen=True)
class AvgLayer:
    id: str
    used_by: tuple
    suite: str
    shape: tuple  # N, C, H, W
    args: tuple   # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override

    def out_shape(self):
        return tuple(F.avg_pool2d(torch.empty(1, 1, *self.shape[2:], device="meta"),
                                  *self.args).shape[2:])

    def bytes(self, pass_: str, itemsize: int) -> int:
        n, c, h, w = self.shape
        p, q = self.out_shape()
        once = (n * c * (h * w + p * q)) * itemsize
        return 2 * once if pass_ == "fwd_bwd" else once

    def flops(self) -> int:  # one add per window element
        n, c = self.shape[:2]
        p, q = self.out_shape()
        k = self.args[0]
        return n * c * p * q * (k * k if isinstance(k, int) else k[0] * k[1])


TINY = AvgLayer("tiny_2x2", ("synthetic",), "synthetic", (2, 4, 8, 8), (2, 2, 0, False, True,
                                                                        None))
LAYERS = (
    AvgLayer("densenet121_transition1", ("densenet121.features.transition1.pool",), "beyond",
             (8, 128, 56, 56), (2, 2, 0, False, True, None)),
    AvgLayer("inception_v3_branch_pool", ("inception_v3.Mixed_5b.branch_pool",), "beyond",
             (8, 192, 35, 35), (3, 1, 1, False, True, None)),
)


def _impls(device, tiny):
    if device == "cpu":
        return ["convbench", "torch"] + (["numpy"] if tiny else [])
    return ["convbench", rowinfo.POOL_REFERENCE_IMPL["cuda"]]


def _cases():
    for device in ("cpu", "cuda"):
        for layer in (TINY,) + LAYERS:
            for pass_ in PASSES:
                for impl in _impls(device, layer is TINY):
                    marks = [pytest.mark.bench_smoke] if layer is TINY else []
                    yield pytest.param(layer, pass_, impl, device, marks=marks,
                                       id=f"{pass_}-{device}-float32-{layer.id}-{impl}")


def _inputs(layer, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*layer.shape, generator=g)
    dy = torch.randn(*layer.shape[:2], *layer.out_shape(), generator=g)
    return x.to(device), dy.to(device)


def _row(layer, pass_, impl):
    """fn(x, dy) -> the pass's results (outputs and/or the input gradient)."""
    if impl == "numpy":
        def fwd(x, dy):
            return (ref.avg_pool2d(x.numpy(), *layer.args),)

        def bwd(x, dy):
            return (ref.avg_pool2d_backward(dy.numpy(), x.shape, *layer.args),)

        return {"fwd": fwd, "bwd": bwd, "fwd_bwd": lambda x, dy: fwd(x, dy) + bwd(x, dy)}[pass_]
    pool = convbench.avg_pool2d if impl == "convbench" else F.avg_pool2d
    if pass_ == "fwd":
        return lambda x, dy: (pool(x, *layer.args),)
    if pass_ == "bwd":  # the gradient operators alone, each through the dispatcher
        k, s, p, c, cip, div = layer.args
        args = ([k, k], [s, s], [p, p], c, cip, div)
        if impl == "convbench":
            return lambda x, dy: (torch.ops.convbench.avg_pool2d_backward(dy, list(x.shape),
                                                                          *args),)
        return lambda x, dy: (torch.ops.aten.avg_pool2d_backward(dy, x, *args),)

    def grad(x, dy):
        x = x.detach().requires_grad_(True)
        y = pool(x, *layer.args)
        out = torch.autograd.grad(y, (x,), dy)
        return (y.detach(),) + out

    return grad


def _oracle(layer, pass_, x, dy):
    x = x.detach().cpu().double().requires_grad_(True)
    y = F.avg_pool2d(x, *layer.args)
    if pass_ == "fwd":
        return (y,)
    (dx,) = torch.autograd.grad(y, (x,), dy.cpu().double())
    return (y.detach(), dx) if pass_ == "fwd_bwd" else (dx,)


@pytest.mark.parametrize("layer,pass_,impl,device", _cases())
def test_avg_pool(benchmark, settings, layer, pass_, impl, device):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    itemsize = 4
    per_set = layer.bytes("fwd_bwd", itemsize)
    sets = [_inputs(layer, device, seed) for seed in range(impls.pool_size(per_set, device))]
    want = _oracle(layer, pass_, *sets[0])

    def check(results):
        errs = [impls.rel_error(torch.as_tensor(g), w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= 1e-5, (impl, pass_, layer.id, errs)

    benchmark.group = f"avg_pool {pass_} {device} float32 {layer.id}"
    info = rowinfo._common("avg_pool", layer.id, layer.used_by, layer.suite, pass_, impl, device,
                           "float32", layer.flops(), layer.bytes(pass_, itemsize))
    info["reference"] = rowinfo.POOL_REFERENCE_IMPL[device]
    info.update(impls.pool_info(per_set, len(sets), device))
    timing.run(benchmark, _row(layer, pass_, impl), sets, device=device, check=check,
               settings=settings, extra_info=info)
