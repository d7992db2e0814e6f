"""Time every CPU conv engine on every homework layer and pass, and judge `auto`.

The data `auto`'s rules (csrc/conv2d/cpu/choose.cpp) are fitted to, and the
check that they still hold: for each layer and pass, every candidate kernel
the autotuner would try (_C.conv2d_candidates: an algorithm and its engine)
and PyTorch are timed in blocks of back-to-back calls, the blocks
round-robin for several rounds (the minimum per kernel kept); then `auto`'s
pick (_C.conv2d_resolve) is compared with the fastest.

    PYTHONPATH=python python tools/cpu_engine_sweep.py OUT.json [--rounds 4]
    CONVBENCH_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 \\
        PYTHONPATH=python python tools/cpu_engine_sweep.py OUT-avx2.json
    PYTHONPATH=python python tools/cpu_engine_sweep.py --summary OUT.json   # re-read

Uses convbench's private launch layer (it names engines, which the public
API does not); run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

PASSES = ("fwd", "bwd_input", "bwd_weight")


def _layers():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import layers  # the homework catalogue of bench/

    return layers.conv_layers()


def _algo_name(algo: int) -> str:
    from convbench import _C

    return next(n for n, i in _C.CONV2D_ALGO_IDS.items() if i == algo)


def _kernel_name(algo: int, engine: int) -> str:
    from convbench import _C

    return f"{_algo_name(algo)}:{_C.conv2d_engine_name(algo, engine)}"


def sweep(rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    import convbench
    from convbench import _C, _launch
    from convbench._shapes import conv2d_shape

    torch.manual_seed(0)
    aten_bwd = torch.ops.aten.convolution_backward
    rows = []
    for L in _layers():
        x = torch.randn(L.N, L.C, L.H, L.W)
        w = torch.randn(L.K, L.C // L.groups, L.R, L.S) / math.sqrt(L.C * L.R * L.S)
        b = torch.randn(L.K)
        P, Q = L.out_hw
        dy = torch.randn(L.N, L.K, P, Q)
        st, pd, dl, g = list(L.stride), list(L.padding), list(L.dilation), L.groups
        pad4 = (pd[0], pd[0], pd[1], pd[1])
        shape = conv2d_shape(x.shape, w.shape, (P, Q), st, pad4, dl, g)
        for pi, pname in enumerate(PASSES):
            if pname == "fwd":
                peer = lambda: F.conv2d(x, w, b, st, pd, dl, g)
                run = lambda a, v: _launch.conv2d_forward(x, w, b, (P, Q), st, pad4, dl, g, a, v)
            elif pname == "bwd_input":
                peer = lambda: aten_bwd(dy, x, w, None, st, pd, dl, False, [0, 0], g,
                                        [True, False, False])
                run = lambda a, v: _launch.conv2d_backward_input(dy, w, x.shape, st, pad4, dl, g,
                                                                 a, v)
            else:
                peer = lambda: aten_bwd(dy, x, w, None, st, pd, dl, False, [0, 0], g,
                                        [False, True, False])
                run = lambda a, v: _launch.conv2d_backward_weight(dy, x, w.shape, st, pad4, dl, g,
                                                                  a, v)
            fns = {"torch": peer}
            for a, v in _C.conv2d_candidates(pi, 0, shape):
                fns[_kernel_name(a, v)] = (lambda a=a, v=v: run(_algo_name(a), v))
            best = {k: math.inf for k in fns}
            for f in fns.values():
                f()
            for _ in range(rounds):  # blocks of calls, round-robin
                for k, f in fns.items():
                    f()
                    for _ in range(3):
                        t0 = time.perf_counter()
                        f()
                        best[k] = min(best[k], time.perf_counter() - t0)
            auto = _kernel_name(*_C.conv2d_resolve(pi, 0, 0, 0, shape))
            rows.append(dict(layer=L.id, pass_=pname, shape=shape, times=best, auto=auto))
            print(f"{L.id:32s} {pname:10s} auto {auto:16s} " + " ".join(
                f"{k} {best['torch'] / t:4.2f}" for k, t in best.items() if k != "torch"),
                flush=True)
    return dict(isa=convbench.backends.cpu_isa, torch_isa=torch.backends.cpu.get_cpu_capability(),
                env={k: os.environ.get(k) for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                    "CONVBENCH_CPU_ISA")},
                rounds=rounds, rows=rows)


def summary(data: dict) -> str:
    """auto against the fastest kernel: per pass, and fwd+bwd per layer vs torch."""
    gm = lambda v: math.exp(sum(map(math.log, v)) / len(v)) if v else math.nan
    near, total, misses = 0, 0, []
    fb_auto, fb_best = {}, {}
    for r in data["rows"]:
        t = r["times"]
        kernels = {k: v for k, v in t.items() if k != "torch"}
        fastest = min(kernels, key=kernels.get)
        share = kernels[fastest] / kernels[r["auto"]]
        total += 1
        near += share >= 0.95
        if share < 0.95:
            misses.append(f"  {r['layer']} {r['pass_']}: auto {r['auto']} at {share:.0%} of "
                          f"{fastest}")
        a = fb_auto.setdefault(r["layer"], [0.0, 0.0])
        a[0] += t["torch"]
        a[1] += kernels[r["auto"]]
        fb_best.setdefault(r["layer"], [0.0, 0.0])
        fb_best[r["layer"]][0] += t["torch"]
        fb_best[r["layer"]][1] += kernels[fastest]
    ra = [v[0] / v[1] for v in fb_auto.values()]
    rb = [v[0] / v[1] for v in fb_best.values()]
    lines = [f"convbench ISA {data['isa']}, torch ISA {data['torch_isa']}, {data.get('env')}",
             f"auto within 95% of the fastest engine: {near} / {total} passes",
             f"fwd+bwd vs torch, geometric mean over {len(ra)} layers: auto {gm(ra):.2f}x "
             f"(min {min(ra):.2f}x), fastest engine per pass {gm(rb):.2f}x"]
    return "\n".join(lines + misses)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="JSON file to write (or read, with --summary)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--summary", action="store_true", help="only summarise an existing file")
    args = p.parse_args(argv)
    if args.summary:
        with open(args.out) as f:
            data = json.load(f)
    else:
        data = sweep(args.rounds)
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)
    print(summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
