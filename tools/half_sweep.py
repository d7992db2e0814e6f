"""conv2d forward+backward per homework layer in bfloat16 (what CPU autocast
runs) and float32, ours and torch's, interleaved: the four rows of a layer run
in blocks of back-to-back calls, round-robin for several rounds, the minimum
kept. So the ratios of one layer come from one stretch of time on a noisy
machine (the pytest-benchmark rows run each dtype's rows at another time).

    PYTHONPATH=python python tools/half_sweep.py OUT.json [--rounds 5] [--dtype bfloat16]
    PYTHONPATH=python python tools/half_sweep.py --summary OUT.json
    PYTHONPATH=python python tools/half_sweep.py --models OUT.json   # ResNet-18, autocast

Public API only (convbench.conv2d, torch.nn.functional.conv2d).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def _layers():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import layers  # the homework catalogue of bench/

    return layers.conv_layers()


def _step(conv, L, dtype):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(L.N, L.C, L.H, L.W, generator=g).to(dtype).requires_grad_()
    w = (torch.randn(L.K, L.C // L.groups, L.R, L.S, generator=g) * 0.1).to(dtype)
    w.requires_grad_()
    b = torch.randn(L.K, generator=g).to(dtype).requires_grad_() if L.bias else None
    dy = torch.randn(L.N, L.K, *L.out_hw, generator=g).to(dtype)
    leaves = [t for t in (x, w, b) if t is not None]

    def run():
        y = conv(x, w, b, L.stride, L.padding, L.dilation, L.groups)
        torch.autograd.grad(y, leaves, dy)

    return run


def _time_block(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return t / n


def sweep(rounds: int, dtype_name: str, seconds: float) -> dict:
    import torch
    import torch.nn.functional as F

    import convbench

    half = getattr(torch, dtype_name)
    impls = {"convbench": convbench.conv2d, "torch": F.conv2d}
    rows = []
    for L in _layers():
        fns = {f"{impl}:{dt}": _step(conv, L, d) for impl, conv in impls.items()
               for dt, d in (("float32", torch.float32), (dtype_name, half))}
        best = {k: math.inf for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                best[k] = min(best[k], _time_block(fn, seconds))
        rows.append({"layer": L.id, "C": L.C, "K": L.K, "times": best})
        print(L.id, " ".join(f"{k} {v * 1e6:.0f}us" for k, v in best.items()), flush=True)
    return {"dtype": dtype_name, "rounds": rounds, "build": convbench.build_info(),
            "env": {k: os.environ.get(k) for k in ("CONVBENCH_CPU_ISA", "ONEDNN_MAX_CPU_ISA",
                                                   "ATEN_CPU_CAPABILITY")},
            "rows": rows}


def models(rounds: int, dtype_name: str, seconds: float) -> dict:
    """ResNet-18's training step (batch 8, 112x112, SGD) and batch-1 inference
    (224x224) under torch.autocast("cpu", dtype), converted against torch's."""
    import copy

    import torch
    import torch.nn.functional as F

    import convbench

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import beyond_models as bm

    half = getattr(torch, dtype_name)
    rows = []
    for kind, (batch, size) in bm.KINDS.items():
        ref = bm.build("resnet18", size).train(kind == "train")
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, bm.NUM_CLASSES, (batch,))
        fns = {}
        for impl in ("convbench", "torch"):
            model = copy.deepcopy(ref)
            model = convbench.nn.convert(model) if impl == "convbench" else model
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def step(model=model, opt=opt):
                if kind == "train":
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=half):
                        loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                else:
                    with torch.no_grad(), torch.autocast("cpu", dtype=half):
                        model(x)

            fns[impl] = step
        best = {k: math.inf for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                best[k] = min(best[k], _time_block(fn, seconds))
        rows.append({"model": f"resnet18 {kind} batch {batch} {size}x{size}", "times": best})
        print(rows[-1]["model"], " ".join(f"{k} {v * 1e3:.1f}ms" for k, v in best.items()),
              f"torch / ours {best['torch'] / best['convbench']:.2f}x", flush=True)
    return {"dtype": dtype_name, "rounds": rounds, "build": convbench.build_info(),
            "models": rows}


def summary(data: dict) -> str:
    dt = data["dtype"]
    g = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))  # noqa: E731
    ratios = {
        f"torch {dt} / ours {dt}": [r["times"][f"torch:{dt}"] / r["times"][f"convbench:{dt}"]
                                    for r in data["rows"]],
        f"ours float32 / ours {dt}": [r["times"]["convbench:float32"]
                                      / r["times"][f"convbench:{dt}"] for r in data["rows"]],
        f"ours float32 / ours {dt}, C >= 16": [
            r["times"]["convbench:float32"] / r["times"][f"convbench:{dt}"]
            for r in data["rows"] if r["C"] >= 16],
        "torch float32 / ours float32": [r["times"]["torch:float32"]
                                         / r["times"]["convbench:float32"] for r in data["rows"]],
    }
    lines = [f"{data['build']['cpu_isa']} build; {data['build']['conv2d_cpu_half']}"]
    for name, xs in ratios.items():
        lines.append(f"{name}: geo-mean {g(xs):.3f} (range {min(xs):.2f}-{max(xs):.2f}, "
                     f"{len(xs)} layers)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16"))
    ap.add_argument("--block", type=float, default=0.03, help="seconds per timed block")
    ap.add_argument("--summary", action="store_true", help="re-read OUT and summarise")
    ap.add_argument("--models", action="store_true",
                    help="ResNet-18 training step and inference under autocast instead")
    a = ap.parse_args()
    if a.models:
        with open(a.out, "w") as f:
            json.dump(models(a.rounds, a.dtype, max(a.block, 1.0)), f, indent=1)
        return
    if a.summary:
        with open(a.out) as f:
            print(summary(json.load(f)))
        return
    data = sweep(a.rounds, a.dtype, a.block)
    with open(a.out, "w") as f:
        json.dump(data, f, indent=1)
    print(summary(data))


if __name__ == "__main__":
    main()
