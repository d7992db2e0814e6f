"""Measurement checks: what must hold if a run's timings and ceilings are
right. A failure is a measurement error (a clock, a timing loop or a roof
measured too low), never a fast kernel, and the report says so.

- The compute roof of each device with FLOP-counted rows is in the JSON.
- No row computes faster than the roof: GFLOP/s (FLOPs of direct
  convolution / time; on CUDA the GPU-only time where the row has one, the
  stricter) <= roof x the row's max_flop_saving (1 for direct and GEMM
  kernels, 2.25 where convbench may run Winograd F(2x2,3x3); rows whose
  algorithm is unknown, cuDNN's, and TF32 rows, whose products are not
  float32 ones, cannot be checked and are counted as such).
- CUDA rows were timed with bench/timing.py's synchronising clock
  (pytest-benchmark's options.timer): another clock would time launches only.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

from .load import Row, Run

_ROOF_KEY = {"float32": "sgemm_gflops", "float16": "hgemm_gflops",
             "bfloat16": "bf16gemm_gflops"}
_FLOP_KINDS = ("conv", "train", "infer")  # pool "FLOPs" are comparisons, not FMAs
CUDA_TIMER_NAME = "cuda_sync_clock"  # bench/timing.py's SyncClock


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
        if saving is None or r.tf32:
            unknown += 1
            continue
        if not roof:
            continue  # reported by the roof-present check
        checked += 1
        limit = roof * saving
        seconds = min(r.seconds, r.gpu_seconds or r.seconds)
        gflops = r.flops / seconds / 1e9
        if top is None or gflops / limit > top[1]:
            top = (r, gflops / limit)
        if gflops > limit:
            bad.append((r, gflops, limit))
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
    skipped = (f"; {unknown} not checkable (cuDNN may run Winograd/FFT; TF32 is not float32)"
               if unknown else "")
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
    cuda = [r for r in run.rows if r.device == "cuda"]
    if cuda:
        wrong = [r for r in cuda if r.timer != CUDA_TIMER_NAME]
        names = sorted({str(r.timer) for r in wrong})
        out.append(Check(
            "CUDA rows timed with the synchronising clock", not wrong,
            f"all {len(cuda)} by `{CUDA_TIMER_NAME}`" if not wrong else
            f"**measurement error**: {len(wrong)} of {len(cuda)} CUDA rows timed by "
            f"{', '.join(names)} (launch time only, not the kernels)"))
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
