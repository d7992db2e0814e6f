"""The whole markdown report, in reading order."""
from __future__ import annotations

from typing import List

from .beyond import beyond_section
from .checks import check_lines
from .gpu import gpu_timing_lines
from .header import header
from .load import Run
from .tables import sections, table, targets


def markdown(run: Run, source: str, plots: List[str] = ()) -> str:
    lines = header(run, source) + targets(run) + check_lines(run) + gpu_timing_lines(run)
    for key, rows in sections(run).items():
        lines += table(key, rows)
    lines += beyond_section(run)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
