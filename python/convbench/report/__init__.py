"""Benchmark report: a pytest-benchmark JSON from `pytest bench/` -> markdown
tables (time, GFLOP/s, ratio to the reference per layer, geometric means,
targets) and PNG plots (speedup per layer, roofline).

    python -m convbench.report BENCH.json [--out DIR]
"""
from __future__ import annotations

import os

from .load import Run, load
from .document import markdown

__all__ = ["Run", "load", "markdown", "write_report"]


def write_report(json_path: str, out_dir: str, stat: str = "min", plots: bool = True) -> str:
    """Write out_dir/results.md (+ PNGs); return the markdown."""
    run = load(json_path, stat)
    os.makedirs(out_dir, exist_ok=True)
    names = []
    if plots:
        from .plots import write_plots

        names = write_plots(run, out_dir)
    text = markdown(run, os.path.basename(json_path), names)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    return text
