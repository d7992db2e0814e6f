"""Measurement checks: what must hold if a run's timings and ceilings are
right. A failure is a measurement error (a clock, a timing loop or a roof
measured too low), never a fast kernel, and the report says so.

- The compute roof of each device with FLOP-counted rows is in the JSON.
- No row computes faster than the roof: GFLOP/s (FLOPs of direct
  convolution / time) <= roof x the row's max_flop_saving (1 for direct and
  GEMM kernels, 2.25 where convbench may run Winograd F(2x2,3x3); rows whose
  algorithm is unknown, cuDNN's, cannot be checked and are counted as such).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

from .load import Row, Run

_ROOF_KEY = {"float32": "sgemm_gflops", "float16": "hgemm_gflops",
             "bfloat16": "bf16gemm_gflops"}
_FLOP_KINDS = ("conv", "train", "infer")  # pool "FLOPs" are comparisons, not FMAs


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    details: str


def max_flop_saving(r: Row) -> Optional[float]:
    """The recorded bound; JSONs from before it was recorded: convbench rows
    may be Winograd, cuDNN's algorithm is unknown, the rest do direct work."""
    if "max_flop_saving" in r.extra:
        return r.extra["max_flop_saving"]
    if r.impl.startswith("cudnn"):
        return None
    return 2.25 if r.impl.startswith("convbench") else 1.0


def roof_of(run: Run, r: Row) -> Optional[float]:
    return (run.roofline.get(r.device) or {}).get(_ROOF_KEY.get(r.dtype, ""))


def _flop_rows(run: Run) -> List[Row]:
    return [r for r in run.rows if r.kind in _FLOP_KINDS and r.flops]


def above_roof(run: Run) -> Tuple[List[Tuple[Row, float, float]], int, int, Optional[tuple]]:
    """(rows above their limit as (row, GFLOP/s, limit), rows checked, rows not
    checkable, (row, fraction of its limit) of the highest checked row)."""
    bad, checked, unknown, top = [], 0, 0, None
    for r in _flop_rows(run):
        roof, saving = roof_of(run, r), max_flop_saving(r)
        if saving is None:
            unknown += 1
            continue
        if not roof:
            continue  # reported by the roof-present check
        checked += 1
        limit = roof * saving
        if top is None or r.gflops / limit > top[1]:
            top = (r, r.gflops / limit)
        if r.gflops > limit:
            bad.append((r, r.gflops, limit))
    return sorted(bad, key=lambda b: -b[1] / b[2]), checked, unknown, top


def _name(r: Row) -> str:
    return f"`{r.impl}` {r.kind} {r.pass_} {r.device} {r.dtype} {r.layer}"


def checks(run: Run) -> List[Check]:
    out = []
    for device in sorted({r.device for r in _flop_rows(run)}):
        roofs = {r.dtype: roof_of(run, r) for r in _flop_rows(run) if r.device == device}
        missing = sorted(d for d, v in roofs.items() if not v)
        out.append(Check(f"Compute roof measured in this run ({device})", not missing,
                         "missing for " + ", ".join(missing) + ": rows not checked"
                         if missing else ", ".join(f"{d}: {v:.1f} GFLOP/s"
                                                   for d, v in sorted(roofs.items()))))
    bad, checked, unknown, top = above_roof(run)
    skipped = f"; {unknown} not checkable (cuDNN may run Winograd/FFT)" if unknown else ""
    if bad:
        shown = "; ".join(f"{_name(r)}: {g:.1f} GFLOP/s > limit {lim:.1f}"
                          for r, g, lim in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        details = (f"**measurement error**: {len(bad)} of {checked} rows above the roof: "
                   f"{shown}{more}{skipped}")
    elif top is not None:
        details = (f"{checked} rows checked; the highest, {_name(top[0])}, reaches "
                   f"{top[1]:.0%} of its limit{skipped}")
    else:
        details = f"no row could be checked{skipped}"
    out.append(Check("No conv/network row above the compute roof", not bad, details))
    return out


def check_lines(run: Run) -> List[str]:
    lines = ["## Measurement checks", "",
             "What must hold if the timings and ceilings are right; a failure is a measurement "
             "error (clock, timing loop or a roof measured too low), not a fast kernel. The "
             "limit of a row is the compute roof, x2.25 where convbench may run Winograd "
             "F(2x2,3x3) (that many fewer multiplies than the direct FLOPs counted).", "",
             "| check | result | details |", "| --- | --- | --- |"]
    for c in checks(run):
        lines.append(f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.details} |")
    return lines + [""]
