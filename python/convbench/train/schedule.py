"""Learning-rate schedules of EE449 part 5: a report's fixed switch points, or the plateau rule.

The reports fixed their switch points (000: after epochs 10 and 15 of 30; 001: after steps 5000
and 10000 of 30 epochs x 900 steps; 003: after epochs 24 and 27 of 40). A shorter run (--epochs,
--quick, --subset) keeps the points at the same fraction of the run, so a smoke test still sees
every rate; at full scale they are the report's exactly.
"""
from __future__ import annotations

from typing import List, Sequence


def scaled_switches(points: Sequence[int], of: int, total: int) -> List[int]:
    """The switch points for a run of `total` epochs/steps, given points meant for `of`.
    Kept strictly increasing and inside the run, so no rate is skipped."""
    if not points:
        return []
    if not of or total == of:
        return list(points)
    out, prev = [], 0
    for i, p in enumerate(points):
        room = total - (len(points) - i)  # leave at least one unit for each later rate
        q = min(max(round(p * total / of), prev + 1), max(room, prev + 1))
        out.append(q)
        prev = q
    return out


def describe(lrs: Sequence[float], points: Sequence[int], unit: str) -> str:
    """'0.1 until epoch 10, then 0.01 until epoch 15, then 0.001' (or 'plateau rule ...')."""
    if not points:
        return (" -> ".join(f"{lr:g}" for lr in lrs)
                + ", moving on whenever the end-of-epoch validation accuracy stops improving")
    parts = [f"{lr:g} until {unit} {p}" for lr, p in zip(lrs, points)]
    return ", then ".join(parts + [f"{lrs[len(points)]:g}"])
