"""PNG plots of a run: per-layer speedup of each convbench algorithm over the
reference, and achieved GFLOP/s of the homework layers against this
machine's measured roofline (the best float32 GEMM and memcpy bandwidth from
the same run; TF32 rows are left off the float32 roofline)."""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .load import Run
from .tables import TARGETS, impl_order, ratios, sections

_PEAK_KEY = {"float32": "sgemm_gflops", "float16": "hgemm_gflops", "bfloat16": "bf16gemm_gflops"}


def _subplots_function():
    """pyplot.subplots on a bare matplotlib Figure (no pyplot: no display
    needed, the user's backend and open figures left alone, nothing to close).
    ImportError without matplotlib: then no plots."""
    from matplotlib.figure import Figure

    def subplots(nrows=1, ncols=1, figsize=None, **kw):
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kw)

    return subplots


def _ceilings(run: Run, device: str, dtype: str) -> Tuple[Optional[float], Optional[float]]:
    roof = run.roofline.get(device) or {}
    return roof.get(_PEAK_KEY.get(dtype, "sgemm_gflops")), roof.get("memcpy_gbps")


def _speedup(run: Run, subplots, kind, device, dtype, passes, path) -> bool:
    secs = sections(run)
    keys = [(kind, device, dtype, p) for p in passes]
    found = [(k[3], secs[k]) for k in keys if k in secs]
    if not found:
        return False
    fig, axes = subplots(len(found), 1, figsize=(12, 3.2 * len(found)), squeeze=False)
    for ax, (pass_, rows) in zip(axes[:, 0], found):
        reference = rows[0].reference
        impls = sorted({r.impl for r in rows if r.impl.startswith("convbench")},
                       key=lambda i: impl_order(i, reference))
        layers = list(dict.fromkeys(r.layer for r in rows if not r.tiny))
        width = 0.8 / max(len(impls), 1)
        for k, impl in enumerate(impls):
            rs = ratios(rows, impl, reference)
            xs = [j + k * width for j, l in enumerate(layers) if l in rs]
            ax.bar(xs, [rs[l] for l in layers if l in rs], width, label=impl)
        ax.axhline(1.0, color="k", lw=0.8)
        for t in TARGETS:
            if (t.kind, t.device, t.pass_, t.peer, t.metric) == (kind, device, pass_, reference,
                                                                 "wall"):
                ax.axhline(t.bar, color="r", ls="--", lw=0.8, label=f"target {t.bar}×")
        ax.set_yscale("log")
        ax.set_ylabel(f"× {reference} speed")
        ax.set_title(f"{kind} {pass_} ({device}, {dtype})", fontsize=10)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))])
        ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=6)
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def roofline_rows(run: Run, device: str, dtype: str) -> list:
    """The points of a roofline plot: homework conv rows with FLOPs and bytes.
    TF32 rows (cudnn_tf32) run TF32 products, not float32 FMAs: they are not
    points under the float32 roof."""
    return [r for r in run.rows if r.kind == "conv" and r.device == device and r.dtype == dtype
            and r.suite == "homework" and r.flops and r.bytes and not r.tf32]


def _roofline(run: Run, subplots, device, dtype, path) -> bool:
    rows = roofline_rows(run, device, dtype)
    if not rows:
        return False
    peak, bw = _ceilings(run, device, dtype)
    reference = rows[0].reference
    impls = sorted({r.impl for r in rows}, key=lambda i: impl_order(i, reference))
    fig, (ax1, ax2) = subplots(1, 2, figsize=(13, 5))
    for impl in impls:
        mine = [r for r in rows if r.impl == impl]
        ax1.scatter([r.flops / r.bytes for r in mine], [r.gflops for r in mine], s=12, label=impl)
        ax2.scatter([r.flops for r in mine], [r.seconds for r in mine], s=12, label=impl)
    ai = [r.flops / r.bytes for r in rows]
    fl = [r.flops for r in rows]
    lo, hi = min(ai) / 2, max(ai) * 2
    xs = [lo * (hi / lo) ** (k / 100) for k in range(101)]
    if peak and bw:
        ax1.plot(xs, [min(peak, x * bw) for x in xs], "k-", lw=1,
                 label=f"roofline: {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    flo, fhi = min(fl) / 2, max(fl) * 2
    if peak:
        ax2.plot([flo, fhi], [flo / peak / 1e9, fhi / peak / 1e9], "k-", lw=1,
                 label=f"compute bound at {peak:.0f} GFLOP/s")
    ax1.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP / minimal byte)",
            ylabel="GFLOP/s", title=f"conv2d, all passes ({device}, {dtype})")
    ax2.set(xscale="log", yscale="log", xlabel="FLOPs per call", ylabel="seconds per call",
            title="time vs work")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
        ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_plots(run: Run, out_dir: str) -> List[str]:
    """Write the PNGs into out_dir; return their file names."""
    subplots = _subplots_function()
    names = []
    combos = sorted({(r.device, r.dtype) for r in run.rows if r.kind in ("conv", "pool")})
    for device, dtype in combos:
        name = f"speedup_conv_{device}_{dtype}.png"
        if _speedup(run, subplots, "conv", device, dtype, ("fwd", "bwd_input", "bwd_weight",
                                                      "fwd_bwd"), os.path.join(out_dir, name)):
            names.append(name)
        name = f"speedup_pool_{device}_{dtype}.png"
        if _speedup(run, subplots, "pool", device, dtype, ("fwd", "bwd", "fwd_bwd"),
                    os.path.join(out_dir, name)):
            names.append(name)
        name = f"roofline_{device}_{dtype}.png"
        if _roofline(run, subplots, device, dtype, os.path.join(out_dir, name)):
            names.append(name)
    return names
