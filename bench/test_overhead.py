"""Per-call overhead: a layer so small (1x1x4x4 input, one 3x3 filter) that
the time is argument handling, dispatch and allocation. Rows: `convbench`
(the public function), `convbench_op` (the registered torch.ops operator
called directly) and `torch` (F.conv2d / F.max_pool2d); the same with
autograd (forward + backward through the graph)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convbench
import impls
import layers
import rowinfo
import timing

L, PL = layers.OVERHEAD_CONV, layers.OVERHEAD_POOL


def _conv_rows():
    cb = torch.ops.convbench
    pad4 = [0, 0, 0, 0]
    return {
        "convbench": lambda x, w, b: convbench.conv2d(x, w, b),
        "convbench_op": lambda x, w, b: cb.conv2d(x, w, b, [1, 1], pad4, [1, 1], 1),
        "torch": lambda x, w, b: F.conv2d(x, w, b),
    }


def _pool_rows():
    return {
        "convbench": lambda x: convbench.max_pool2d(x, 2, return_indices=True),
        "convbench_op": lambda x: torch.ops.convbench.max_pool2d(
            x, [2, 2], [2, 2], [0, 0], [1, 1], False),
        "torch": lambda x: F.max_pool2d(x, 2, return_indices=True),
    }


def _autograd(fn):
    def run(*args):
        out = fn(*args)
        y = out[0] if isinstance(out, tuple) else out
        return torch.autograd.grad(y, [a for a in args if a.requires_grad], torch.ones_like(y))
    return run


def _cases():
    for device in ("cpu", "cuda"):
        for op, rows in (("conv2d", _conv_rows()), ("max_pool2d", _pool_rows())):
            for mode in ("fwd", "fwd_bwd"):
                for row in rows:
                    if mode == "fwd_bwd" and row == "convbench_op":
                        continue  # the same autograd path as the public function
                    marks = [pytest.mark.bench_smoke] if device == "cpu" else []
                    yield pytest.param(device, op, mode, row, marks=marks,
                                       id=f"{device}-{op}-{mode}-{row}")


@pytest.mark.parametrize("device,op,mode,row", list(_cases()))
def test_overhead(benchmark, settings, device, op, mode, row):
    impl = "cudnn" if row == "torch" else "convbench"
    reason = impls.skip_reason(device, impl)
    if reason:
        pytest.skip(reason)
    grad = mode == "fwd_bwd"
    gen = torch.Generator().manual_seed(0)
    if op == "conv2d":
        args = [torch.randn(s, generator=gen) for s in
                ((L.N, L.C, L.H, L.W), (L.K, L.C, L.R, L.S), (L.K,))]
        fn = _conv_rows()[row]
    else:
        args = [torch.randn((PL.N, PL.C, PL.H, PL.W), generator=gen)]
        fn = _pool_rows()[row]
    args = [a.to(device).requires_grad_(grad) for a in args]
    fn = _autograd(fn) if grad else fn
    peer = (_conv_rows() if op == "conv2d" else _pool_rows())["torch"]

    def check(results):
        results = results if isinstance(results, tuple) else (results,)
        errs = [impls.rel_error(g, w) for g, w in zip(results, want)]
        assert len(results) == len(want) and max(errs) <= 1e-5, f"{row}: errors {errs}"

    benchmark.group = f"overhead {op} {mode} {device}"
    info = rowinfo.overhead(op, L.id if op == "conv2d" else PL.id, mode, row, device)
    with impls.backend_flags("cudnn", device):
        # The expected result inside the same backend flags as the timed call
        # (TF32 off), and from torch's op in float64 on the CPU: no backend
        # setting of the timed device can move it.
        args64 = [a.detach().to("cpu", torch.float64).requires_grad_(grad) for a in args]
        want = _autograd(peer)(*args64) if grad else peer(*args64)
        want = tuple(t.detach() for t in (want if isinstance(want, tuple) else (want,)))
        timing.run(benchmark, fn, [tuple(args)], device=device, check=check,
                   settings=settings, extra_info=info)
