"""Markdown for a benchmark run: header (machine, versions, ceilings), the
targets with a plain verdict, and one table per kind/device/dtype/pass."""
from __future__ import annotations

import collections
import dataclasses
from typing import Dict, List, Optional, Tuple

from .load import Row, Run, geomean

PASS_NAMES = {"fwd": "forward", "bwd_input": "grad-input", "bwd_weight": "grad-weight",
              "bwd": "backward", "fwd_bwd": "forward + backward", "step": "training step"}
KIND_NAMES = {"conv": "conv2d", "pool": "max_pool2d", "train": "Training step",
              "overhead": "Per-call overhead"}


@dataclasses.dataclass(frozen=True)
class Target:
    what: str
    kind: str
    device: str
    pass_: str
    impl: str
    peer: str
    bar: float


TARGETS = (
    Target("CPU conv2d fwd+bwd vs PyTorch CPU", "conv", "cpu", "fwd_bwd", "convbench:auto",
           "torch", 1.5),
    Target("CPU conv2d fwd+bwd vs NumPy vectorised", "conv", "cpu", "fwd_bwd", "convbench:auto",
           "numpy", 4.0),
    Target("GPU conv2d fwd+bwd vs cuDNN (TF32 off)", "conv", "cuda", "fwd_bwd", "convbench:auto",
           "cudnn", 1.0),
    Target("GPU conv2d fwd+bwd vs cuDNN, next bar", "conv", "cuda", "fwd_bwd", "convbench:auto",
           "cudnn", 1.3),
    Target("GPU training step vs PyTorch+cuDNN", "train", "cuda", "step", "convbench", "cudnn",
           1.0),
)


def impl_order(impl: str, reference: str) -> tuple:
    if impl in ("convbench:auto", "convbench"):
        return (0, impl)
    if impl.startswith("convbench"):
        return (1, impl)
    if impl == reference:
        return (2, impl)
    return (3, impl)


Key = Tuple[str, str, str, str]  # kind, device, dtype, pass


def sections(run: Run) -> Dict[Key, List[Row]]:
    out: Dict[Key, List[Row]] = collections.OrderedDict()
    order = {"conv": 0, "pool": 1, "train": 2, "overhead": 3}
    passes = list(PASS_NAMES)
    for r in sorted(run.rows, key=lambda r: (order.get(r.kind, 9), r.device != "cpu", r.dtype,
                                             passes.index(r.pass_) if r.pass_ in passes else 9)):
        out.setdefault((r.kind, r.device, r.dtype, r.pass_), []).append(r)
    return out


def ratios(rows: List[Row], impl: str, peer: str) -> Dict[str, float]:
    """Per layer: peer time / impl time (> 1: impl is faster), homework layers only."""
    by = {(r.layer, r.impl): r for r in rows}
    return {layer: by[(layer, peer)].seconds / r.seconds
            for (layer, i), r in by.items()
            if i == impl and (layer, peer) in by and not r.tiny}


def target_results(run: Run):
    secs = sections(run)
    for t in TARGETS:
        rows = secs.get((t.kind, t.device, "float32", t.pass_), [])
        rs = ratios(rows, t.impl, t.peer)
        yield t, geomean(rs.values()), len(rs)


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _fmt_ratio(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}×"


def header(run: Run, source: str) -> List[str]:
    m, cb = run.machine, run.machine.get("convbench") or {}
    cpu = (m.get("cpu") or {}).get("brand_raw") or m.get("processor") or "?"
    lines = [f"# convbench benchmark report", "",
             f"Source: `{source}` ({run.datetime or 'no date'}); "
             f"commit {str(run.commit.get('id', '?'))[:10]}"
             f"{' (dirty)' if run.commit.get('dirty') else ''}. "
             f"Times are each row's **{run.stat}** over its rounds, per call.", "",
             f"- CPU: {cpu}, {cb.get('cpu_count', '?')} logical cores; threads: torch "
             f"{cb.get('torch_threads', '?')}, convbench OpenMP "
             f"{(cb.get('convbench_build') or {}).get('openmp_threads', '?')}, "
             f"OMP_NUM_THREADS={cb.get('omp_num_threads')}",
             f"- Versions: convbench {cb.get('convbench', '?')}, torch {cb.get('torch', '?')}, "
             f"numpy {cb.get('numpy', '?')}, Python {m.get('python_version', '?')}"]
    if cb.get("cuda_device"):
        lines.append(f"- GPU: {cb['cuda_device']} (sm {cb.get('cuda_capability')}), CUDA "
                     f"{cb.get('cuda_runtime')}, cuDNN {cb.get('cudnn')}")
    else:
        lines.append("- GPU: none in this run (CUDA rows skipped)")
    roof = run.roofline
    for dev, vals in roof.items():
        parts = ", ".join(f"{k.replace('_gflops', '').replace('_gbps', '')} "
                          f"{v:.1f} {'GB/s' if k.endswith('gbps') else 'GFLOP/s'}"
                          for k, v in vals.items())
        lines.append(f"- Measured ceilings ({dev}, same run): {parts}")
    if not roof:
        lines.append("- Measured ceilings: not in this JSON (no roofline lines in the plots)")
    return lines + [""]


def targets(run: Run) -> List[str]:
    lines = ["## Targets", "",
             "Ratio = reference time / convbench time (geometric mean over the homework layers; "
             "> 1 means convbench is faster).", "",
             "| target | measured | bar | verdict |", "| --- | --- | --- | --- |"]
    for t, g, n in target_results(run):
        if g is None:
            verdict = "not measured in this run"
        elif g >= t.bar:
            verdict = "met"
        else:
            verdict = f"**falls short** ({g / t.bar:.0%} of the bar)"
        lines.append(f"| {t.what} | {_fmt_ratio(g)}" + (f" over {n}" if n else "")
                     + f" | ≥ {t.bar:.1f}× | {verdict} |")
    return lines + [""]


def _layer_label(r: Row) -> str:
    if r.kind in ("train", "overhead"):
        return r.layer
    first = r.used_by[0] if r.used_by else ""
    more = f" +{len(r.used_by) - 1}" if len(r.used_by) > 1 else ""
    return f"{r.layer} ({first}{more})"


def table(key: Key, rows: List[Row]) -> List[str]:
    kind, device, dtype, pass_ = key
    reference = rows[0].reference
    impls = sorted({r.impl for r in rows}, key=lambda i: impl_order(i, reference))
    by = {(r.layer, r.impl): r for r in rows}
    layers = list(dict.fromkeys(r.layer for r in rows))
    rate = {"pool": "GB/s · ", "train": "images/s · ", "overhead": ""}.get(kind, "GFLOP/s · ")
    title = f"## {KIND_NAMES.get(kind, kind)}"
    if kind not in ("train",):
        title += f" {PASS_NAMES.get(pass_, pass_)}"
    title += f" — {device}, {dtype}"
    lines = [title, "",
             f"Each cell: time · {rate}ratio to `{reference}` (its time / this time).", "",
             "| layer | " + " | ".join(f"`{i}`" for i in impls) + " |",
             "| --- |" + " --- |" * len(impls)]
    for layer in layers:
        ref = by.get((layer, reference))
        cells = []
        for i in impls:
            r = by.get((layer, i))
            if r is None:
                cells.append("–")
                continue
            speed = r.gbps if kind == "pool" else r.gflops
            if kind == "train" and r.extra.get("batch_size"):
                speed_s = f"{r.extra['batch_size'] / r.seconds:.0f} img/s"
            else:
                speed_s = f"{speed:.1f}" if speed is not None else ""
            ratio = _fmt_ratio(ref.seconds / r.seconds) if ref and i != reference else ""
            cells.append(" · ".join(s for s in (_fmt_time(r.seconds), speed_s, ratio) if s))
        lines.append(f"| {_layer_label(by[(layer, next(i for i in impls if (layer, i) in by))])}"
                     f" | " + " | ".join(cells) + " |")
    means = []
    for i in impls:
        rs = ratios(rows, i, reference)
        means.append(_fmt_ratio(geomean(rs.values())) if rs and i != reference else "")
    if any(means):
        lines.append("| **geometric mean ratio** | " + " | ".join(means) + " |")
    if kind == "conv":
        best = _best_algo_mean(rows, reference)
        if best:
            lines += ["", f"Best convbench algorithm per layer (an oracle choice for `auto`): "
                      f"geometric mean ratio {best:.2f}×."]
    return lines + [""]


def _best_algo_mean(rows: List[Row], reference: str) -> Optional[float]:
    best: Dict[str, float] = {}
    for r in rows:
        if r.impl.startswith("convbench:") and not r.tiny:
            best[r.layer] = min(best.get(r.layer, float("inf")), r.seconds)
    refs = {r.layer: r.seconds for r in rows if r.impl == reference}
    return geomean(refs[l] / t for l, t in best.items() if l in refs)


def markdown(run: Run, source: str, plots: List[str] = ()) -> str:
    lines = header(run, source) + targets(run)
    for key, rows in sections(run).items():
        lines += table(key, rows)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
