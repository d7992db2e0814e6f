"""How every row is timed (shared by all suites).

- Warm-up is outside the timed rounds: the first call (checked against the
  float64 oracle; it also runs cuDNN's and convbench's autotuning where a
  row turns them on) and two more, whose best time is the cost estimate
  that sets the number of rounds; on CUDA two more again.
- Inputs rotate through a pool of input sets sized to overflow the cache
  (see impls.pool_size; each row records whether its pool does).
- CUDA rows are timed **end to end**: the clock (SyncClock) synchronises the
  device before it is read, so a round measures complete kernels; a round
  runs enough back-to-back calls to last >= 1 ms, which keeps the ~10 us of
  a synchronise out of per-call times. The clock also notes when the host
  had enqueued the round's last call: where that is >= 90% of the round
  (HOST_BOUND_FRACTION) the GPU was waiting on Python/dispatch, and the row
  is marked host_bound. After the timed rounds the same calls are captured
  into a CUDA graph and replayed between CUDA events (gpu_only_time): the
  row's gpu_s, its kernels' time without the host's launch cost.
- pytest-benchmark must call our clock at the start and end of every round
  (its `options.timer` in the JSON names it, CUDA_TIMER_NAME); run() checks
  the count, so a pytest-benchmark change cannot silently time launches only.
- The number of rounds follows a per-row time budget (--cb-budget) between
  --cb-min-rounds and 200; the report uses each row's minimum (the machine
  is shared, and noise only ever adds time).
"""
from __future__ import annotations

import itertools
import math
import statistics
import time

import torch

_MIN_ROUND_S = {"cpu": 1e-4, "cuda": 1e-3}
CUDA_TIMER_NAME = "cuda_sync_clock"
# A round whose last call was enqueued after this fraction of its wall time
# was bound by the host: the GPU finished each kernel before the next arrived.
HOST_BOUND_FRACTION = 0.9
# Calls captured into one graph: a round's worth and one per input set (so the
# replays rotate through the whole pool, as the eager rounds do), at most this.
GRAPH_MAX_CALLS = 256
GRAPH_MIN_REPEAT_S = 1e-3


class SyncClock:
    """pytest-benchmark's timer for CUDA rows: synchronises the device, then
    reads perf_counter. Each reading also keeps the moment the host got there
    (before synchronising), i.e. when it had enqueued everything before."""

    def __init__(self, synchronize=None):
        self.__name__ = CUDA_TIMER_NAME  # what pytest-benchmark writes as options.timer
        self._synchronize = synchronize or torch.cuda.synchronize
        self.marks: list = []  # (host reached the clock, device synchronised)

    def __call__(self) -> float:
        host = time.perf_counter()
        self._synchronize()
        now = time.perf_counter()
        self.marks.append((host, now))
        return now


def host_timing(marks, rounds: int, iterations: int) -> dict:
    """Per-round host enqueue time from a SyncClock's readings (start and end
    of each round, in order). Raises AssertionError unless there are exactly
    two readings per round: then pytest-benchmark did not time the rounds
    with our synchronising clock."""
    if len(marks) != 2 * rounds:
        raise AssertionError(
            f"pytest-benchmark read the synchronising clock {len(marks)} times for {rounds} "
            f"rounds (expected {2 * rounds}): CUDA times would not cover the kernels")
    host, wall = [], []
    for k in range(rounds):
        start = marks[2 * k][1]
        end_host, end = marks[2 * k + 1]
        host.append(max(end_host - start, 0.0))
        wall.append(max(end - start, 1e-12))
    fractions = [h / w for h, w in zip(host, wall)]
    fraction = statistics.median(fractions)
    return {"timer": CUDA_TIMER_NAME,
            "host_enqueue_s": min(host) / iterations,
            "host_fraction": fraction,
            "host_bound": fraction >= HOST_BOUND_FRACTION}


def gpu_only_time(fn, make_args, calls: int, repeats: int = 5):
    """GPU time of one fn() call without the host's launch cost: at least
    `calls` calls, one per argument set from make_args() (at most
    GRAPH_MAX_CALLS), are captured into a CUDA graph on a side stream
    (make_args runs there too, so autograd's backward of a forward it makes
    runs on the capturing stream), the graph is replayed between CUDA events,
    best of `repeats`. Returns (seconds, None), or (None, why) where the calls
    cannot be captured (a host synchronisation, a CPU-side optimizer step, ...)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(side):
            args = list(make_args())
            calls = max(1, min(max(calls, len(args)), GRAPH_MAX_CALLS))
            sets = itertools.cycle(args)
            for _ in range(2):  # warm on the capture stream (lazy handles, workspaces)
                fn(*next(sets))
        side.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            for _ in range(calls):
                fn(*next(sets))
    except Exception as exc:  # noqa: BLE001 - any capture failure is a result, not an error
        torch.cuda.synchronize()
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return None, f"not capturable: {type(exc).__name__}: {first}"
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    once = max(start.elapsed_time(end) / 1e3, 1e-7)
    replays = int(min(200, max(1, math.ceil(GRAPH_MIN_REPEAT_S / once))))
    best = math.inf
    for _ in range(repeats):
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / (replays * calls))
    del graph
    return best, None


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def run(benchmark, fn, pool, *, device: str, check, settings, extra_info: dict,
        graph_args=None):
    """Time fn over the rotating input pool; check() the first result.

    CUDA rows also record host_timing() and, unless --cb-gpu-time off,
    gpu_only_time(); graph_args() gives the argument sets for the capture
    (made on the capture stream; default: the pool as it is)."""
    benchmark.extra_info.update(extra_info)
    benchmark.extra_info.setdefault("pool_sets", len(pool))
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
    clock = None
    if device == "cuda":
        clock = SyncClock()
        benchmark._timer = clock  # read by pytest-benchmark's runner at each round
        for _ in range(2):  # a few more warm calls: clocks up, allocator settled
            fn(*next(sets))
    benchmark.extra_info.update(iterations=iterations)
    benchmark.pedantic(lambda: fn(*next(sets)), rounds=rounds, iterations=iterations,
                       warmup_rounds=0)
    if clock is None:
        return
    benchmark.extra_info.update(host_timing(clock.marks, rounds, iterations))
    if getattr(settings, "gpu_time", True):
        gpu_s, why = gpu_only_time(fn, graph_args or (lambda: pool), iterations)
        benchmark.extra_info.update(gpu_s=gpu_s, gpu_method="CUDA graph replay, events")
        if why:
            benchmark.extra_info["gpu_note"] = why
