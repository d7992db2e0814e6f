"""Markdown for a benchmark run: header (machine, ISAs, versions, ceilings),
the targets with a plain verdict, the measurement checks, one table per
kind/device/dtype/pass of the homework rows, and the beyond-the-homework
section (ResNet-18/VGG)."""
from __future__ import annotations

import collections
import dataclasses
from typing import Dict, List, Optional, Tuple

from .load import Row, Run, geomean

PASS_NAMES = {"fwd": "forward", "bwd_input": "grad-input", "bwd_weight": "grad-weight",
              "bwd": "backward", "fwd_bwd": "forward + backward", "step": "training step",
              "infer": "inference"}
KIND_NAMES = {"conv": "conv2d", "pool": "max_pool2d", "avg_pool": "avg_pool2d",
              "train": "Training step", "infer": "Inference", "overhead": "Per-call overhead"}
AUTO = {"conv": "convbench:auto", "train": "convbench", "infer": "convbench"}
AUTOTUNED = "convbench:autotuned"


@dataclasses.dataclass(frozen=True)
class Target:
    what: str
    kind: str
    device: str
    pass_: str
    peer: str
    bar: float
    suite: str = "homework"
    layer: Optional[str] = None  # one model's ratio instead of a mean over layers
    # wall: the rows' own times, end to end (host included); gpu: their GPU-only
    # times (CUDA-graph replay, bench/timing.py), kernels without launch cost.
    metric: str = "wall"

    @property
    def impls(self) -> Tuple[str, str]:
        """Each target is shown for auto and for the autotuned row."""
        return AUTO[self.kind], AUTOTUNED


TARGETS = (
    Target("CPU conv2d fwd+bwd vs PyTorch CPU", "conv", "cpu", "fwd_bwd", "torch", 1.5),
    Target("CPU conv2d fwd+bwd vs NumPy vectorised", "conv", "cpu", "fwd_bwd", "numpy", 4.0),
    Target("CPU training step vs PyTorch CPU", "train", "cpu", "step", "torch", 1.15),
    Target("GPU conv2d fwd+bwd vs cuDNN (TF32 off)", "conv", "cuda", "fwd_bwd", "cudnn", 1.0),
    Target("GPU conv2d fwd+bwd vs cuDNN, next bar", "conv", "cuda", "fwd_bwd", "cudnn", 1.3),
    Target("GPU conv2d fwd+bwd vs cuDNN (TF32 off), kernels only", "conv", "cuda", "fwd_bwd",
           "cudnn", 1.0, metric="gpu"),
    Target("GPU training step vs PyTorch+cuDNN", "train", "cuda", "step", "cudnn", 1.0),
    Target("GPU training step vs PyTorch+cuDNN, kernels only", "train", "cuda", "step", "cudnn",
           1.0, metric="gpu"),
)
TIMED = {"wall": "end to end", "gpu": "GPU only (CUDA graph)"}
BEYOND_BAR = 0.9
BEYOND_TARGETS = tuple(
    Target(f"{label} {what} vs PyTorch CPU", kind, "cpu", pass_, "torch", BEYOND_BAR,
           "beyond", f"beyond/{name}")
    for name, label in (("resnet18", "ResNet-18"), ("vgg11", "VGG-11"))
    for kind, pass_, what in (("train", "step", "training step (batch 8, 112²)"),
                              ("infer", "infer", "inference (batch 1, 224²)")))


def impl_order(impl: str, reference: str) -> tuple:
    if impl in ("convbench:auto", "convbench"):
        return (0, impl)
    if impl == AUTOTUNED:
        return (1, impl)
    if impl.startswith("convbench"):
        return (2, impl)
    if impl == reference:
        return (3, impl)
    return (4, impl)


Key = Tuple[str, str, str, str]  # kind, device, dtype, pass


def sections(run: Run, beyond: bool = False) -> Dict[Key, List[Row]]:
    """Rows by (kind, device, dtype, pass): the homework and synthetic rows, or
    (beyond=True) only the beyond-the-homework rows."""
    out: Dict[Key, List[Row]] = collections.OrderedDict()
    order = {"conv": 0, "pool": 1, "train": 2, "infer": 3, "overhead": 4}
    passes = list(PASS_NAMES)
    rows = [r for r in run.rows if r.beyond == beyond]
    for r in sorted(rows, key=lambda r: (order.get(r.kind, 9), r.device != "cpu", r.dtype,
                                         passes.index(r.pass_) if r.pass_ in passes else 9)):
        out.setdefault((r.kind, r.device, r.dtype, r.pass_), []).append(r)
    return out


def row_time(r: Row, metric: str = "wall") -> Optional[float]:
    """A row's time per call: its own (end to end) or its GPU-only time."""
    return r.seconds if metric == "wall" else r.gpu_seconds


def ratios(rows: List[Row], impl: str, peer: str, metric: str = "wall") -> Dict[str, float]:
    """Per layer: peer time / impl time (> 1: impl is faster), homework layers
    only; metric 'gpu': GPU-only times, layers where both rows have one."""
    by = {(r.layer, r.impl): r for r in rows}
    out = {}
    for (layer, i), r in by.items():
        if i != impl or (layer, peer) not in by or r.tiny:
            continue
        mine, theirs = row_time(r, metric), row_time(by[(layer, peer)], metric)
        if mine and theirs:
            out[layer] = theirs / mine
    return out


def target_results(run: Run, targets=TARGETS):
    """(target, impl, geometric mean ratio or None, layers in the mean) for
    each target and each of its impls (auto, autotuned)."""
    secs = {False: sections(run), True: sections(run, beyond=True)}
    for t in targets:
        rows = secs[t.suite == "beyond"].get((t.kind, t.device, "float32", t.pass_), [])
        if t.layer is not None:
            rows = [r for r in rows if r.layer == t.layer]
        for impl in t.impls:
            rs = ratios(rows, impl, t.peer, t.metric)
            yield t, impl, geomean(rs.values()), len(rs)


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def fmt_bar(bar: float) -> str:
    """1.5 -> 1.5, 1.15 -> 1.15, 4 -> 4.0."""
    s = f"{bar:.2f}"
    return s[:-1] if s.endswith("0") else s


def _fmt_ratio(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}×"


def verdict(g: Optional[float], bar: float) -> str:
    if g is None:
        return "not measured in this run"
    if g >= bar:
        return "met"
    return f"**falls short** ({g / bar:.0%} of the bar)"


def target_lines(run: Run, targets_=TARGETS, over: bool = True) -> List[str]:
    """One line per target and convbench row (auto, then autotuned); `timed`
    says which times: end to end (as a user's call takes) or GPU only."""
    lines = ["| target | convbench row | timed | measured | bar | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t, impl, g, n in target_results(run, targets_):
        lines.append(f"| {t.what} | `{impl}` | {TIMED[t.metric]} | {_fmt_ratio(g)}"
                     + (f" over {n}" if n and over else "")
                     + f" | ≥ {fmt_bar(t.bar)}× | {verdict(g, t.bar)} |")
    return lines


def targets(run: Run) -> List[str]:
    return ["## Targets", "",
            "Ratio = reference time / convbench time (geometric mean over the homework layers "
            "or networks; > 1 means convbench is faster). Each target is shown for `auto` and "
            "for the `autotuned` row (the same calls inside "
            "`convbench.backends.flags(autotune=True)`). *End to end*: the rows' own times, "
            "host (Python, dispatch, launches) included; *GPU only*: the same calls replayed "
            "from a CUDA graph, the kernels alone.", ""] + target_lines(run) + [""]


def _layer_label(r: Row) -> str:
    if r.kind in ("train", "infer", "overhead"):
        return r.layer
    first = r.used_by[0] if r.used_by else ""
    more = f" +{len(r.used_by) - 1}" if len(r.used_by) > 1 else ""
    return f"{r.layer} ({first}{more})"


def table(key: Key, rows: List[Row], level: str = "##", prefix: str = "") -> List[str]:
    kind, device, dtype, pass_ = key
    reference = rows[0].reference
    impls = sorted({r.impl for r in rows}, key=lambda i: impl_order(i, reference))
    by = {(r.layer, r.impl): r for r in rows}
    layers = list(dict.fromkeys(r.layer for r in rows))
    rate = {"pool": "GB/s · ", "train": "images/s · ", "infer": "images/s · ",
            "overhead": ""}.get(kind, "GFLOP/s · ")
    title = f"{level} {prefix}{KIND_NAMES.get(kind, kind)}"
    if kind not in ("train", "infer"):
        title += f" {PASS_NAMES.get(pass_, pass_)}"
    title += f" — {device}, {dtype}"
    gpu_rows = any(r.gpu_seconds or r.host_bound for r in rows)
    cell = f"Each cell: time · {rate}ratio to `{reference}` (its time / this time)"
    if gpu_rows:
        cell += ("; end to end, then `GPU` time (CUDA-graph replay, kernels only) and its ratio; "
                 "**host-bound**: the host's enqueueing took >= 90% of the row's rounds, so its "
                 "end-to-end time is the Python/dispatch path, not the kernels")
    lines = [title, "", cell + ".", "",
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
            if kind in ("train", "infer") and r.extra.get("batch_size"):
                speed_s = f"{r.extra['batch_size'] / r.seconds:.0f} img/s"
            else:
                speed_s = f"{speed:.1f}" if speed is not None else ""
            ratio = _fmt_ratio(ref.seconds / r.seconds) if ref and i != reference else ""
            parts = [_fmt_time(r.seconds), speed_s, ratio]
            if r.gpu_seconds:
                gpu_ratio = (f" {_fmt_ratio(ref.gpu_seconds / r.gpu_seconds)}"
                             if ref and ref.gpu_seconds and i != reference else "")
                parts.append(f"GPU {_fmt_time(r.gpu_seconds)}{gpu_ratio}")
            if r.host_bound:
                parts.append("**host-bound**")
            cells.append(" · ".join(s for s in parts if s))
        lines.append(f"| {_layer_label(by[(layer, next(i for i in impls if (layer, i) in by))])}"
                     f" | " + " | ".join(cells) + " |")
    means = []
    for i in impls:
        rs = ratios(rows, i, reference)
        means.append(_fmt_ratio(geomean(rs.values())) if rs and i != reference else "")
    if any(means):
        lines.append("| **geometric mean ratio** | " + " | ".join(means) + " |")
    if gpu_rows:
        gmeans = []
        for i in impls:
            rs = ratios(rows, i, reference, "gpu")
            gmeans.append(_fmt_ratio(geomean(rs.values())) if rs and i != reference else "")
        if any(gmeans):
            lines.append("| **geometric mean ratio, GPU only** | " + " | ".join(gmeans) + " |")
    if kind == "conv":
        best = _best_algo_mean(rows, reference)
        if best:
            lines += ["", f"Best convbench algorithm per layer (an oracle choice for `auto`): "
                      f"geometric mean ratio {best:.2f}×."]
    return lines + [""]


def _best_algo_mean(rows: List[Row], reference: str) -> Optional[float]:
    """Per layer the fastest convbench algorithm row (auto included; the
    autotuned row is not an algorithm of its own, so it is left out)."""
    best: Dict[str, float] = {}
    algos = {r.impl for r in rows if r.impl.startswith("convbench:") and r.impl != AUTOTUNED}
    if len(algos) < 2:
        return None  # only auto was timed: no choice to make
    for r in rows:
        if r.impl in algos and not r.tiny:
            best[r.layer] = min(best.get(r.layer, float("inf")), r.seconds)
    refs = {r.layer: r.seconds for r in rows if r.impl == reference}
    return geomean(refs[l] / t for l, t in best.items() if l in refs)
