"""Whole training steps (zero_grad, forward, cross-entropy, backward,
optimizer step) of the homework CNNs with each backend's conv/pool layers;
everything else (Linear, ReLU, loss, optimizer) is PyTorch in every row.
Every backend starts from the same weights (one state_dict), and its first
loss is checked against PyTorch's before timing."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import impls
import layers
import timing

# The spec's networks and their own optimizers: EE449 Part 3 trains with
# Adam (defaults), 1RT720 Ex 2 and M124 with plain SGD at lr 0.01.
MODELS = {
    "ee449/cnn_3": "adam",
    "ee449/cnn_4": "adam",
    "ee449/cnn_5": "adam",
    "1rt720/cnn": "sgd",
    "m124/cnn": "sgd",
}
BACKENDS = {"cpu": ("convbench", "torch", "numpy"), "cuda": ("convbench", "cudnn")}
SMOKE = "ee449/cnn_3"


def _cases():
    for device, backends in BACKENDS.items():
        for model in MODELS:
            for backend in backends:
                marks = [pytest.mark.bench_smoke] if model == SMOKE else []
                yield pytest.param(model, backend, device, marks=marks,
                                   id=f"{device}-{model}-{backend}")


def _optimizer(kind, params):
    if kind == "adam":
        return torch.optim.Adam(params)
    return torch.optim.SGD(params, lr=0.01)


def _batches(spec, device, n):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn((spec.batch_size, *spec.input_shape), generator=gen)
        y = torch.randint(0, spec.num_classes, (spec.batch_size,), generator=gen)
        out.append((x.to(device), y.to(device)))
    return out


@pytest.mark.parametrize("name,backend,device", list(_cases()))
def test_training_step(benchmark, settings, name, backend, device):
    impl = "cudnn" if backend == "cudnn" else backend
    reason = impls.skip_reason(device, "convbench" if backend == "convbench" else impl)
    if reason:
        pytest.skip(reason)
    from convbench import models

    spec = models.spec(name)
    torch.manual_seed(0)
    peer = models.build(name, backend="torch").to(device)
    model = models.build(name, backend="torch" if backend == "cudnn" else backend).to(device)
    model.load_state_dict(peer.state_dict())
    model.train(), peer.train()
    opt = _optimizer(MODELS[name], model.parameters())
    batches = _batches(spec, device, 4)

    x0, y0 = batches[0]
    with impls.backend_flags("cudnn", device), torch.no_grad():
        want = F.cross_entropy(peer(x0), y0).double().cpu()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return (loss.detach(),)

    def check(results):
        err = impls.rel_error(results[0], want)
        assert err <= 1e-4, f"{backend} {name}: first loss {float(results[0])} vs torch {want}"

    conv_flops = sum(e.flops("fwd_bwd") for e in layers.layers_of_model(name)
                     if isinstance(e, layers.ConvLayer))
    benchmark.group = f"train {device} float32 {name}"
    info = {"kind": "train", "model": name, "layer": name, "pass": "step", "impl": impl,
            "device": device, "dtype": "float32", "batch_size": spec.batch_size,
            "optimizer": MODELS[name], "flops": conv_flops,
            "reference": impls.REFERENCE_IMPL[device]}
    with impls.backend_flags(impl, device):
        timing.run(benchmark, step, batches, device=device, check=check, settings=settings,
                   extra_info=info)
