"""How every row is timed (shared by all suites).

- Warm-up is outside the timed rounds: the first call (checked against the
  float64 oracle; it also runs cuDNN's and convbench's autotuning where a
  row turns them on) and two more, whose best time is the cost estimate
  that sets the number of rounds; on CUDA two more again.
- Inputs rotate through a pool of several input sets (see impls.pool_size),
  so small layers are not timed re-reading warm caches only.
- CUDA rows: the clock synchronises the device before it is read, so a round
  measures complete kernels; a round runs enough back-to-back calls to last
  >= 1 ms, which keeps the ~10 us of a synchronise out of per-call times.
- The number of rounds follows a per-row time budget (--cb-budget) between
  --cb-min-rounds and 200; the report uses each row's minimum (the machine
  is shared, and noise only ever adds time).
"""
from __future__ import annotations

import itertools
import math
import time

import torch

_MIN_ROUND_S = {"cpu": 1e-4, "cuda": 1e-3}


def _cuda_clock():
    torch.cuda.synchronize()
    return time.perf_counter()


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def run(benchmark, fn, pool, *, device: str, check, settings, extra_info: dict):
    """Time fn over the rotating input pool; check() the first result."""
    benchmark.extra_info.update(extra_info, pool_sets=len(pool))
    if benchmark.disabled:  # CI smoke: one call, still checked
        check(benchmark.pedantic(fn, args=pool[0]))
        return
    t0 = time.perf_counter()
    first = fn(*pool[0])
    sync(device)
    est = time.perf_counter() - t0
    check(first)
    sets = itertools.cycle(pool[1:] + pool[:1])
    # The first call may have autotuned (cuDNN, convbench's autotuned rows)
    # or first-touched workspaces: estimate from the best of a few more, so a
    # slow first call does not cut a row to --cb-min-rounds noisy rounds.
    for _ in range(2):
        t0 = time.perf_counter()
        fn(*next(sets))
        sync(device)
        est = min(est, time.perf_counter() - t0)
    est = max(est, 1e-7)

    iterations = max(1, math.ceil(_MIN_ROUND_S[device] / est))
    rounds = int(min(200, max(settings.min_rounds, settings.budget / (est * iterations))))
    if device == "cuda":
        benchmark._timer = _cuda_clock  # read by pytest-benchmark's runner at each round
        for _ in range(2):  # a few more warm calls: clocks up, allocator settled
            fn(*next(sets))
    benchmark.extra_info.update(iterations=iterations)
    benchmark.pedantic(lambda: fn(*next(sets)), rounds=rounds, iterations=iterations,
                       warmup_rounds=0)
