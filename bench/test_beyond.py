"""Beyond the homework: ResNet-18 and VGG-11 (bench/beyond_models.py), CPU.

Rows per model: a training step (batch 8, 112x112, SGD lr 0.01 momentum 0.9,
cross-entropy; zero_grad, forward, backward, step) and batch-1 inference at
224x224 (eval mode, torch.no_grad), for `convbench` (the torch model through
convbench.nn.convert, algo auto), `convbench:autotuned` (the same inside
convbench.backends.flags(autotune=True)) and `torch`. Every row's model is a
fresh copy of one seeded torch model (checked equal, state_dict entry by
entry, after conversion), and its first output (logits, and the loss) is
checked against a float64 copy of that torch model before timing.

Plus the distinct conv layers of both nets as conv rows: at batch 1 224x224
(`fwd`) and at batch 8 112x112 (`fwd_bwd`), for auto, autotuned and torch
only (every algorithm on every layer would take too long); they are marked
suite "beyond", so the homework geometric means leave them out.
"""
from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

import beyond_models as bm
import convbench
import impls
import runner
import timing

MODEL_IMPLS = ("convbench", impls.AUTOTUNED, "torch")
CONV_IMPLS = ("convbench:auto", impls.AUTOTUNED, "torch")
KINDS = bm.KINDS
# The smoke's one beyond row: batch-1 ResNet-18 inference (~1 s with its checks).
SMOKE_MODEL = ("infer", "resnet18", impls.AUTOTUNED)
_SETS = 4  # input sets to rotate (each is a few MB: caches are flushed anyway)


def _model_cases():
    for kind in KINDS:
        for name in bm.MODELS:
            for impl in MODEL_IMPLS:
                marks = [pytest.mark.bench_smoke] if (kind, name, impl) == SMOKE_MODEL else []
                yield pytest.param(kind, name, impl, marks=marks, id=f"cpu-{kind}-{name}-{impl}")


def _conv_cases():
    for pass_, config in bm.CONFIGS.items():
        for layer in bm.conv_layers(config):
            for impl in CONV_IMPLS:
                yield pytest.param(layer, pass_, impl,
                                   id=f"{pass_}-cpu-float32-{layer.id}-{impl}")


@functools.lru_cache(maxsize=1)  # rows of one model run back to back; VGG is 0.5 GB
def _reference(kind: str, name: str):
    """(seeded torch model, input sets, float64 logits and loss of set 0)."""
    batch, size = KINDS[kind]
    ref = bm.build(name, size).train(kind == "train")
    gen = torch.Generator().manual_seed(1)
    sets = [(torch.randn((batch, 3, size, size), generator=gen),
             torch.randint(0, bm.NUM_CLASSES, (batch,), generator=gen)) for _ in range(_SETS)]
    oracle = copy.deepcopy(ref).double()
    with torch.no_grad():
        logits = oracle(sets[0][0].double())
    return ref, sets, logits, F.cross_entropy(logits, sets[0][1])


def _copy(ref: torch.nn.Module, name: str, size: int, impl: str) -> torch.nn.Module:
    """A fresh model with ref's state_dict, converted to convbench's layers for
    the convbench rows; fails unless it is an exact copy and fully converted."""
    with torch.device("meta"):  # no initialisation: every value comes from ref
        model = bm.build(name, size)
    model = model.to_empty(device="cpu")
    model.load_state_dict(ref.state_dict())
    if impl != "torch":
        model = convbench.nn.convert(model)
        left = [n for n, m in model.named_modules()
                if type(m) in (torch.nn.Conv2d, torch.nn.MaxPool2d)]
        assert not left, f"convert() left torch layers: {left}"
    mine, theirs = model.state_dict(), ref.state_dict()
    assert mine.keys() == theirs.keys()
    differ = [k for k in theirs if not torch.equal(mine[k], theirs[k])]
    assert not differ, f"{name}: the {impl} copy differs from the torch model in {differ}"
    return model.train(ref.training)


@pytest.mark.parametrize("kind,name,impl", list(_model_cases()))
def test_beyond_model(benchmark, settings, kind, name, impl):
    batch, size = KINDS[kind]
    ref, sets, want_logits, want_loss = _reference(kind, name)
    model = _copy(ref, name, size, impl)

    if kind == "train":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def fn(x, y):
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            return logits.detach(), loss.detach()
    else:
        def fn(x, y):
            with torch.no_grad():
                return (model(x),)

    def check(results):
        # Logits, and for a training step its loss, against float64.
        errs = [impls.rel_error(g, w) for g, w in zip(results, (want_logits, want_loss))]
        assert max(errs) <= 1e-4, f"{impl} {name} {kind}: relative errors {errs} vs float64"

    benchmark.group = f"beyond {kind} cpu float32 {bm.full_name(name)}"
    with impls.backend_flags(impl, "cpu"):
        timing.run(benchmark, fn, sets, device="cpu", check=check, settings=settings,
                   extra_info=bm.row_info(kind, name, impl))


@pytest.mark.parametrize("layer,pass_,impl", list(_conv_cases()))
def test_beyond_conv(benchmark, settings, layer, pass_, impl):
    batch, size = bm.CONFIGS[pass_]
    runner.run_conv(benchmark, settings, layer, pass_, impl, "cpu", "float32",
                    group_prefix="beyond conv", config=f"batch {batch}, {size}x{size}")
