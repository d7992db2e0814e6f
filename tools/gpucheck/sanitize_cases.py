"""The representative subset the GPU check runs under compute-sanitizer
(memcheck, racecheck, synccheck, initcheck): one case per kernel family
(each CUDA conv2d algorithm, max-pool and average pooling), pass and dtype, on a shape that
leaves partial tiles everywhere (odd sizes, stride, padding, dilation,
groups), plus float32 cases on a homework-sized shape (many blocks, the
implicit GEMM's split-K weight gradient) and a one-input-channel first layer
(the fused kernel's few-channel paths).

Only convbench's kernels touch the GPU: inputs are made on the CPU and
copied over, outputs come from the registered operators
(torch.ops.convbench.*: exactly one of our kernels per call, no autograd,
no cuDNN) and are checked on the CPU against float64 torch on the same
inputs. Run it with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so every tensor is its
own allocation (with PyTorch's cache, a small overrun lands inside another
cached tensor and memcheck sees nothing).

Cases run on the small shapes first (float32, then float16, bfloat16,
float64: every family and pass), the larger float32 shapes last. No case
starts after --deadline (epoch seconds), so the sanitizer still ends with its
summary, except the first: a run that checks nothing is worth nothing, and
the stage's hard limit stops a first case that cannot finish. The last lines
say how many cases ran and how many of the family x pass x dtype
combinations they covered (the stage's promise); exit 3 if none ran.

usage: python -m gpucheck.sanitize_cases [--deadline EPOCH] [--list]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

DTYPES = ("float32", "float16", "bfloat16", "float64")
CONV_PASSES = ("fwd", "bwd_input", "bwd_weight")
POOL_PASSES = ("fwd", "bwd")
# Relative error against float64 on the same (rounded) inputs.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "float16": 1e-2, "bfloat16": 5e-2}

# (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
EDGE = (3, 6, 19, 11, 9, 3, 3, (2, 1), (2, 3), (2, 3), 3, True)
HOMEWORK = (64, 8, 28, 28, 16, 3, 3, 1, 1, 1, 1, True)
FIRST = (8, 1, 13, 13, 4, 3, 3, 1, 0, 1, 1, True)
# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
POOL_EDGE = (3, 5, 13, 11, 3, 2, 1, 1, True)
POOL_HOMEWORK = (50, 16, 28, 28, 2, 2, 0, 1, False)
# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_EDGE = (3, 5, 13, 11, 3, 2, 1, True, False, None)
AVG_HOMEWORK = (50, 16, 28, 28, 2, 2, 0, False, True, None)
POOL_SHAPES = {"max_pool2d": (POOL_EDGE, POOL_HOMEWORK), "avg_pool2d": (AVG_EDGE, AVG_HOMEWORK)}


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str      # conv | pool
    family: str    # conv algorithm, "max_pool2d" or "avg_pool2d"
    pass_: str
    dtype: str
    shape: tuple
    shape_name: str

    @property
    def combination(self):
        return (self.family, self.pass_, self.dtype)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.family} {self.pass_} {self.dtype} {self.shape_name}"


def cases(algos):
    """Every case, in run order: the small edge shape for every family, pass
    and dtype (float32 first, with the first-layer shape), then the larger
    homework shapes in float32, the slowest under racecheck, last."""
    out = []
    for dtype in DTYPES:
        shapes = [("edge", EDGE)] + ([("first-layer", FIRST)] if dtype == "float32" else [])
        for name, shape in shapes:
            for algo in algos:
                for p in CONV_PASSES:
                    out.append(Case("conv", algo, p, dtype, shape, name))
        for family, (edge, _) in POOL_SHAPES.items():
            for p in POOL_PASSES:
                out.append(Case("pool", family, p, dtype, edge, "edge"))
    for algo in algos:
        for p in CONV_PASSES:
            out.append(Case("conv", algo, p, "float32", HOMEWORK, "homework"))
    for family, (_, homework) in POOL_SHAPES.items():
        for p in POOL_PASSES:
            out.append(Case("pool", family, p, "float32", homework, "homework"))
    return out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def run_case(case, torch, F, device="cuda") -> float:
    """Run one case through our operator on `device`; return its relative
    error against float64 torch on the CPU (the tests run it on the CPU)."""
    ops = torch.ops.convbench
    dt = getattr(torch, case.dtype)
    g = torch.Generator().manual_seed(0)
    if case.kind == "conv":
        N, C, H, W, K, R, S, stride, padding, dilation, groups, bias = case.shape
        st, pd, dl = list(_pair(stride)), list(_pair(padding)), list(_pair(dilation))
        pad4 = [pd[0], pd[0], pd[1], pd[1]]
        x = torch.randn(N, C, H, W, generator=g).to(dt)
        w = (torch.randn(K, C // groups, R, S, generator=g) / (C // groups * R * S) ** .5).to(dt)
        b = torch.randn(K, generator=g).to(dt) if bias else None
        y64 = F.conv2d(x.double(), w.double(), None if b is None else b.double(), st, pd, dl,
                       groups)
        dy = torch.randn(y64.shape, generator=g).to(dt)
        xc, wc, dyc = x.to(device), w.to(device), dy.to(device)
        if case.pass_ == "fwd":
            got = ops.conv2d(xc, wc, None if b is None else b.to(device), st, pad4, dl, groups,
                             case.family)
            want = y64
        else:
            mask = [case.pass_ == "bwd_input", case.pass_ == "bwd_weight", False]
            ref = torch.ops.aten.convolution_backward(dy.double(), x.double(), w.double(), None,
                                                      st, pd, dl, False, [0, 0], groups, mask)
            if mask[0]:
                got = ops.conv2d_backward_input(dyc, wc, list(x.shape), st, pad4, dl, groups,
                                                case.family)
                want = ref[0]
            else:
                got = ops.conv2d_backward_weight(dyc, xc, list(w.shape), st, pad4, dl, groups,
                                                 case.family)
                want = ref[1]
    elif case.family == "avg_pool2d":
        N, C, H, W, k, s, p, ceil, cip, div = case.shape
        x = torch.randn(N, C, H, W, generator=g).to(dt)
        args = (list(_pair(k)), list(_pair(s)), list(_pair(p)), ceil, cip, div)
        if case.pass_ == "fwd":
            got, want = ops.avg_pool2d(x.to(device), *args), F.avg_pool2d(x.double(), *args)
        else:
            x64 = x.double().requires_grad_()
            y64 = F.avg_pool2d(x64, *args)
            dy = torch.randn(y64.shape, generator=g).to(dt)
            (want,) = torch.autograd.grad(y64, x64, dy.double())
            got = ops.avg_pool2d_backward(dy.to(device), list(x.shape), *args)
    else:
        N, C, H, W, k, s, p, d, ceil = case.shape
        x = torch.randn(N, C, H, W, generator=g).to(dt)
        y_ref, idx_ref = F.max_pool2d(x.double(), k, s, p, d, ceil_mode=ceil, return_indices=True)
        kk, ss, pp, dd = (list(_pair(v)) for v in (k, s, p, d))
        if case.pass_ == "fwd":
            y, idx = ops.max_pool2d(x.to(device), kk, ss, pp, dd, ceil)
            if not torch.equal(idx.cpu(), idx_ref):
                return float("inf")
            got, want = y, y_ref
        else:
            dy = torch.randn(y_ref.shape, generator=g).to(dt)
            got = ops.max_pool2d_backward(dy.to(device), idx_ref.to(device), list(x.shape), kk, ss,
                                          pp, dd)
            want = torch.zeros(N, C, H * W, dtype=torch.float64).scatter_add_(
                2, idx_ref.flatten(2), dy.double().flatten(2)).reshape(x.shape)
    got = got.cpu().double()
    if got.shape != want.shape:
        return float("inf")
    return float((got - want).norm() / want.norm().clamp_min(1e-300))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deadline", type=float, default=None,
                    help="epoch seconds after which no new case starts (the first always runs)")
    ap.add_argument("--list", action="store_true", help="print the cases and exit (no GPU)")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import convbench

    algos = [a for a in convbench.algorithms("cuda") if a != "auto"]
    todo = cases(algos)
    if args.list:
        for c in todo:
            print(c.name)
        print(f"SANITIZE COVERAGE planned: {len({c.combination for c in todo})} family x pass "
              "x dtype")
        print(f"{len(todo)} cases: {len(algos)} conv algorithms ({', '.join(algos) or 'none'}) "
              f"x {len(CONV_PASSES)} passes and {', '.join(POOL_SHAPES)} x {len(POOL_PASSES)} "
              "passes, "
              f"x {len(DTYPES)} dtypes")
        return 0 if algos else 1
    if not torch.cuda.is_available() or not convbench.has_cuda():
        print("sanitize_cases: needs a CUDA GPU and convbench built with CUDA")
        return 2
    bad, done, covered = [], 0, set()
    for c in todo:
        if done and args.deadline is not None and time.time() > args.deadline:
            print(f"SANITIZE CASES STOPPED BY DEADLINE after {done} of {len(todo)} cases",
                  flush=True)
            break
        try:
            err = run_case(c, torch, F)
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - report and go on: the sanitizer log has more
            print(f"case {c.name}: raised {type(exc).__name__}: {exc}", flush=True)
            bad.append(c.name)
            done += 1
            continue
        ok = err <= TOLERANCE[c.dtype]
        print(f"case {c.name}: rel. error {err:.2e} {'ok' if ok else 'WRONG'}", flush=True)
        if not ok:
            bad.append(c.name)
        done += 1
        covered.add(c.combination)
    print(f"SANITIZE CASES: {done} of {len(todo)} run, {len(bad)} wrong"
          + (": " + "; ".join(bad) if bad else ""), flush=True)
    every = {c.combination for c in todo}
    print(f"SANITIZE COVERAGE: {len(covered)} of {len(every)} family x pass x dtype", flush=True)
    if not done:
        return 3
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
