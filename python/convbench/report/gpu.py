"""The "GPU timing" section: what the CUDA rows' times mean. End-to-end rows
whose host bounds them (bench/timing.py: the last call of a round enqueued
after >= 90% of it), which rows have a GPU-only time (CUDA-graph replay) and
why the others have none, and whether the input pools overflowed the L2."""
from __future__ import annotations

import collections
from typing import List

from .load import Run


def _by_impl(rows) -> str:
    counts = collections.Counter(r.impl for r in rows)
    return ", ".join(f"`{i}` {n}" for i, n in sorted(counts.items()))


def gpu_timing_lines(run: Run) -> List[str]:
    cuda = [r for r in run.rows if r.device == "cuda"]
    if not cuda:
        return []
    n = len(cuda)
    host = [r for r in cuda if r.host_bound]
    gpu = [r for r in cuda if r.gpu_seconds]
    notes = collections.Counter(r.extra.get("gpu_note") or "not recorded"
                                for r in cuda if not r.gpu_seconds)
    pools = [r for r in cuda if "pool_over_2x_cache" in r.extra and not r.tiny]
    small = [r for r in pools if not r.extra["pool_over_2x_cache"]]
    lines = ["## GPU timing", "",
             "CUDA rows are timed end to end (a synchronising clock around >= 1 ms of "
             "back-to-back calls), and their calls are replayed from a CUDA graph for the "
             "GPU-only time.", "",
             f"- Host-bound rows (end-to-end time is the host's Python/dispatch path): "
             f"**{len(host)} of {n}**" + (f" ({_by_impl(host)})" if host else ""),
             f"- GPU-only time measured: {len(gpu)} of {n} rows"]
    for note, k in notes.most_common(8):
        lines.append(f"  - none for {k} rows: {note}")
    if pools:
        lines.append(f"- Input pools of at least twice the L2: {len(pools) - len(small)} of "
                     f"{len(pools)} non-synthetic rows"
                     + (f"; smaller: {', '.join(sorted({r.layer for r in small})[:8])}"
                        if small else ""))
    return lines + [""]
