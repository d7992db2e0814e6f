"""Whole training steps (zero_grad, forward, cross-entropy, backward,
optimizer step) of the homework CNNs with each backend's conv/pool layers;
everything else (Linear, ReLU, loss, optimizer) is PyTorch in every row.
Every backend starts from the same weights (one state_dict), and its first
loss is checked against PyTorch's before timing.

Rows: convbench (auto), convbench:autotuned (the same inside
convbench.backends.flags(autotune=True); its untimed first step tunes),
torch / cudnn, and numpy (the NumPy reference layers) on the CPU."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import impls
import timing
from train_nets import MODELS, optimizer, row_info

BACKENDS = {"cpu": ("convbench", impls.AUTOTUNED, "torch", "numpy"),
            "cuda": ("convbench", impls.AUTOTUNED, "cudnn")}
SMOKE = "ee449/cnn_3"


def _cases():
    for device, backends in BACKENDS.items():
        for model in MODELS:
            for backend in backends:
                marks = [pytest.mark.bench_smoke] if model == SMOKE else []
                yield pytest.param(model, backend, device, marks=marks,
                                   id=f"{device}-{model}-{backend}")


def _batches(spec, device, n):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn((spec.batch_size, *spec.input_shape), generator=gen)
        y = torch.randint(0, spec.num_classes, (spec.batch_size,), generator=gen)
        out.append((x.to(device), y.to(device)))
    return out


def model_backend(impl: str) -> str:
    """The convbench.models backend a row's network is built with."""
    return {"cudnn": "torch", impls.AUTOTUNED: "convbench"}.get(impl, impl)


@pytest.mark.parametrize("name,impl,device", list(_cases()))
def test_training_step(benchmark, settings, name, impl, device):
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    from convbench import models

    spec = models.spec(name)
    torch.manual_seed(0)
    peer = models.build(name, backend="torch").to(device)
    model = models.build(name, backend=model_backend(impl)).to(device)
    model.load_state_dict(peer.state_dict())
    model.train(), peer.train()
    opt = optimizer(name, model.parameters())
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
        assert err <= 1e-4, f"{impl} {name}: first loss {float(results[0])} vs torch {want}"

    benchmark.group = f"train {device} float32 {name}"
    with impls.backend_flags(impl, device):
        timing.run(benchmark, step, batches, device=device, check=check, settings=settings,
                   extra_info=row_info(name, impl, device))
