"""Per-layer GPU times of convbench's CUDA conv2d and cuDNN's on the homework
layers: the layer table and the tuning sweep as one pass over one store.

A cell is one (layer, pass, math, implementation, tiling): ours through the
registered operators (an algorithm at its default tiling, or `auto`), ours at
a forced tiling through the launch layer, or cuDNN through ATen (cudnn.benchmark
on). Each output is checked against float64 on the same (rounded) inputs first;
a cell that misses TOLERANCE is WRONG. Its time is GPU time per call: n calls
captured into a CUDA graph and replayed between CUDA events, best of REPEATS,
with n chosen from one timed call so that a cell costs about TARGET_S: a cell
is capped by calls (at most 2 + (REPEATS + 1) * MAX_CALLS of them), not by hope.

    python -m gpucheck.conv_cells table OUTDIR --deadline EPOCH
        float32: every algorithm, auto and cuDNN; then cuDNN with TF32 against our
        float32; then float16 and bfloat16, auto and cuDNN
    python -m gpucheck.conv_cells sweep OUTDIR --deadline EPOCH
        float32: every tiling the CUDA autotuner would time (_C.conv2d_candidates),
        reusing every cell the table already timed
    python -m gpucheck.conv_cells plan OUTDIR      (no GPU) the cells of both parts

Cells go to OUTDIR/cells.jsonl as they finish (a cut run keeps them); the
reports (layers.md, tuning.md: conv_report.py) and conv_cells_<part>.json
(planned, done, wrong: the stage's verdict) are rewritten after every layer.
The layers are bench/layers.py's catalogue of the homework networks; the
ratio is the report's convention, cuDNN time / ours (> 1: convbench faster).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

PASSES = ("fwd", "bwd_input", "bwd_weight")
PEER = "cudnn"
# Relative Frobenius error against float64 of the same inputs, by math.
TOLERANCE = {"float32": 1e-4, "tf32": 5e-3, "float16": 1e-2, "bfloat16": 5e-2}
HALF = ("float16", "bfloat16")
TARGET_S = 0.03
REPEATS = 5
MAX_CALLS = 20


@dataclasses.dataclass(frozen=True)
class Cell:
    part: str          # table | sweep
    math: str          # float32 | tf32 | float16 | bfloat16
    layer: object      # bench/layers.py ConvLayer
    pass_: str
    impl: str          # an algorithm name, "auto" or "cudnn"
    engine: int = 0   # a forced tiling (0: the algorithm's own choice)
    tiling: str = ""

    @property
    def dtype(self) -> str:
        return "float32" if self.math == "tf32" else self.math

    @property
    def label(self) -> str:
        return self.impl + (f":{self.tiling}" if self.tiling else "")

    @property
    def key(self) -> str:
        """The store's identity of the calls: the same calls are never timed twice."""
        return f"{self.layer.id}|{self.pass_}|{self.math}|{self.impl}|{self.engine}"


# ---------------------------------------------------------------- the plan


def homework_layers():
    import layers

    return [c for c in layers.conv_layers() if c.suite == "homework"]


def table_cells(layer_list, algos):
    """In order of value: float32 (every algorithm, auto, cuDNN), then cuDNN
    with TF32, then the half types (auto and cuDNN)."""
    out = [Cell("table", "float32", L, p, impl) for L in layer_list for p in PASSES
           for impl in list(algos) + ["auto", PEER]]
    out += [Cell("table", "tf32", L, p, PEER) for L in layer_list for p in PASSES]
    out += [Cell("table", dt, L, p, impl) for dt in HALF for L in layer_list for p in PASSES
            for impl in ("auto", PEER)]
    return out


def sweep_cells(layer_list, algos, candidates):
    """Every float32 configuration of ours: the algorithms at their own tiling
    and auto (shared with the table), then each forced tiling."""
    out = []
    for L in layer_list:
        for pi, p in enumerate(PASSES):
            out += [Cell("sweep", "float32", L, p, impl) for impl in list(algos) + ["auto"]]
            out += [Cell("sweep", "float32", L, p, a, var, tiling)
                    for a, var, tiling in candidates(L, pi) if var != 0]
    return out


def cuda_candidates(layer, pass_index):
    """[(algo name, engine, tiling name)] the CUDA autotuner times (host code:
    needs a CUDA build, not a GPU)."""
    from convbench import _C, _algos
    from convbench._shapes import conv2d_shape

    names = {i: n for n, i in _algos.ALGO_IDS.items()}
    ph, pw = layer.padding
    shape = conv2d_shape((layer.N, layer.C, layer.H, layer.W),
                         (layer.K, layer.C // layer.groups, layer.R, layer.S), layer.out_hw,
                         layer.stride, (ph, ph, pw, pw), layer.dilation, layer.groups)
    return [(names[a], var, _C.conv2d_engine_name(a, var, _C.DEVICE_CUDA, pass_index))
            for a, var in _C.conv2d_candidates(pass_index, _C.DTYPE_IDS["float32"], shape,
                                               _C.DEVICE_CUDA)]


def cuda_algos():
    import convbench

    return [a for a in convbench.algorithms("cuda") if a != "auto"]


# ---------------------------------------------------------------- the calls


def inputs(layer, torch, dtype="float32", device="cuda"):
    """(x, w, b, dy) of one layer: seeded, weights scaled by fan-in, rounded to dtype."""
    g = torch.Generator(device="cpu").manual_seed(0)
    P, Q = layer.out_hw
    fan_in = layer.C // layer.groups * layer.R * layer.S
    x = torch.randn(layer.N, layer.C, layer.H, layer.W, generator=g)
    w = torch.randn(layer.K, layer.C // layer.groups, layer.R, layer.S, generator=g) / fan_in ** .5
    b = torch.randn(layer.K, generator=g) if layer.bias else None
    dy = torch.randn(layer.N, layer.K, P, Q, generator=g)
    dt = getattr(torch, dtype)
    return tuple(t.to(device=device, dtype=dt) if t is not None else None for t in (x, w, b, dy))


class LayerCalls:
    """The callables of one layer's cells on `device`, and their float64 answers."""

    def __init__(self, layer, torch, dtype="float32", device="cuda", tensors=None):
        import torch.nn.functional as F

        import convbench  # noqa: F401 - registers torch.ops.convbench

        self.torch, self.F, self.layer = torch, F, layer
        self.x, self.w, self.b, self.dy = tensors or inputs(layer, torch, dtype, device)
        self.st, self.pd = list(layer.stride), list(layer.padding)
        self.dl, self.gr = list(layer.dilation), layer.groups
        self.pad4 = [self.pd[0], self.pd[0], self.pd[1], self.pd[1]]
        self.exact = {p: self.aten(p, torch.float64)() for p in PASSES}

    def ours(self, pass_, algo, engine=0):
        ops, x, w, b, dy = self.torch.ops.convbench, self.x, self.w, self.b, self.dy
        st, pad4, dl, gr = self.st, self.pad4, self.dl, self.gr
        if engine:
            from convbench import _launch

            if pass_ == "fwd":
                PQ = self.layer.out_hw
                return lambda: _launch.conv2d_forward(x, w, b, PQ, st, pad4, dl, gr, algo, engine)
            if pass_ == "bwd_input":
                return lambda: _launch.conv2d_backward_input(dy, w, x.shape, st, pad4, dl, gr,
                                                             algo, engine)
            return lambda: _launch.conv2d_backward_weight(dy, x, w.shape, st, pad4, dl, gr, algo,
                                                          engine)
        if pass_ == "fwd":
            return lambda: ops.conv2d(x, w, b, st, pad4, dl, gr, algo)
        if pass_ == "bwd_input":
            return lambda: ops.conv2d_backward_input(dy, w, list(x.shape), st, pad4, dl, gr, algo)
        return lambda: ops.conv2d_backward_weight(dy, x, list(w.shape), st, pad4, dl, gr, algo)

    def aten(self, pass_, dtype=None):
        ts = tuple((t.to(dtype) if t is not None else None) if dtype else t
                   for t in (self.x, self.w, self.b, self.dy))
        x, w, b, dy = ts
        st, pd, dl, gr = self.st, self.pd, self.dl, self.gr
        if pass_ == "fwd":
            return lambda: self.F.conv2d(x, w, b, st, pd, dl, gr)
        mask = [pass_ == "bwd_input", pass_ == "bwd_weight", False]
        i = 0 if mask[0] else 1
        bwd = self.torch.ops.aten.convolution_backward
        return lambda: bwd(dy, x, w, None, st, pd, dl, False, [0, 0], gr, mask)[i]

    def call(self, cell):
        return self.aten(cell.pass_) if cell.impl == PEER else self.ours(cell.pass_, cell.impl,
                                                                         cell.engine)

    def error(self, got, pass_) -> float:
        want = self.exact[pass_]
        return float((got.double() - want).norm() / want.norm().clamp_min(1e-30))


def time_us(fn, torch):
    """(GPU us per call, graph-timed, calls made) of fn, already called once."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end) / 1000.0, 1e-6)
    n = max(1, min(MAX_CALLS, int(TARGET_S / REPEATS / one)))
    calls = 2
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
            for _ in range(n):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph.replay()
        calls += n
        run, graphed = graph.replay, True
    except Exception:  # noqa: BLE001 - capture unsupported: an eager loop, launch cost in
        torch.cuda.synchronize()

        def run():
            for _ in range(n):
                fn()
        graphed = False
    best = float("inf")
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start.record()
        run()
        end.record()
        end.synchronize()
        calls += n
        best = min(best, start.elapsed_time(end) * 1000.0 / n)
    return best, graphed, calls


def auto_choice(layer, pass_index, dtype, torch):
    try:
        from convbench import _algos

        pd = list(layer.padding)
        return _algos.chosen_algo(pass_index, (layer.N, layer.C, layer.H, layer.W),
                                   (layer.K, layer.C // layer.groups, layer.R, layer.S),
                                   layer.out_hw, list(layer.stride), [pd[0], pd[0], pd[1], pd[1]],
                                   list(layer.dilation), layer.groups, getattr(torch, dtype),
                                   "cuda")
    except Exception:  # noqa: BLE001 - an internal helper: the table does without it
        return "?"


# ---------------------------------------------------------------- the store


def load(outdir) -> dict:
    """{cell key: record} of OUTDIR/cells.jsonl (a torn last line is dropped)."""
    out = {}
    try:
        with open(pathlib.Path(outdir) / "cells.jsonl") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                out[r["key"]] = r
    except OSError:
        pass
    return out


def append(outdir, record) -> None:
    with open(pathlib.Path(outdir) / "cells.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def record_of(cell, us, graphed, err, calls, auto_is=None) -> dict:
    ok = err is not None and math.isfinite(err) and err <= TOLERANCE[cell.math]
    return {"key": cell.key, "part": cell.part, "layer": cell.layer.id,
            "used_by": list(cell.layer.used_by), "pass": cell.pass_, "math": cell.math,
            "impl": cell.impl, "engine": cell.engine, "label": cell.label, "us": us,
            "graphed": graphed, "error": err, "ok": ok, "calls": calls, "auto_is": auto_is}


def write_meta(outdir, part, cells, store, notes, stopped) -> dict:
    mine = [store[c.key] for c in cells if c.key in store]
    meta = {"part": part, "planned": len(cells), "done": len(mine),
            "wrong": [f"{r['layer']} {r['pass']} {r['math']} {r['label']}" for r in mine
                      if not r["ok"]],
            "checked": len(mine), "stopped_by_deadline": stopped, "notes": notes}
    path = pathlib.Path(outdir) / f"conv_cells_{part}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, path)
    return meta


# ---------------------------------------------------------------- the run


def run(part, outdir, deadline, layer_list=None) -> int:
    import torch

    import convbench

    from gpucheck import conv_report

    if not torch.cuda.is_available() or not convbench.has_cuda():
        print("conv_cells: needs a CUDA GPU and convbench built with CUDA")
        return 2
    convbench.backends.autotune = False  # `auto` is the shape rule, not a timed choice
    torch.backends.cudnn.benchmark = True
    layer_list = homework_layers() if layer_list is None else layer_list
    algos = cuda_algos()
    cells = table_cells(layer_list, algos) if part == "table" else \
        sweep_cells(layer_list, algos, cuda_candidates)
    store = load(outdir)
    device = torch.cuda.get_device_name()
    reused = sum(c.key in store for c in cells)
    notes = [f"{reused} reused from earlier cells"] if reused else []
    stopped, last = False, {}
    calls_cache = {}
    for i, cell in enumerate(cells):
        if cell.key in store:
            continue
        estimate = max(0.05, 12 * last.get(cell.layer.id, 0.0))
        if time.time() + estimate > deadline:
            stopped = True
            notes.append(f"stopped by the deadline before cell {i + 1} of {len(cells)}")
            print(f"conv_cells {part}: deadline; stopping before cell {i + 1} of {len(cells)}",
                  flush=True)
            break
        ck = (cell.layer.id, cell.dtype)
        if ck not in calls_cache:
            calls_cache.clear()  # one layer's tensors at a time
            calls_cache[ck] = LayerCalls(cell.layer, torch, cell.dtype)
        lc = calls_cache[ck]
        torch.backends.cudnn.allow_tf32 = cell.math == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = cell.math == "tf32"
        fn = lc.call(cell)
        auto_is = auto_choice(cell.layer, PASSES.index(cell.pass_), cell.dtype, torch) \
            if cell.impl == "auto" else None
        try:
            t0 = time.perf_counter()
            err = lc.error(fn(), cell.pass_)
            torch.cuda.synchronize()
            us, graphed, calls = time_us(fn, torch)
            last[cell.layer.id] = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a failing kernel is a result
            print(f"  {cell.key}: raised {type(exc).__name__}: {exc}", flush=True)
            us, graphed, err, calls = None, False, None, 1
        rec = record_of(cell, us, graphed, err, calls, auto_is)
        store[cell.key] = rec
        append(outdir, rec)
        print(f"{cell.layer.id:32s} {cell.pass_:10s} {cell.math:8s} {cell.label:22s} "
              + (f"{us:9.1f} us" if us is not None else "    –    ")
              + ("" if rec["ok"] else f"  WRONG (error {err})"), flush=True)
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or nxt.layer.id != cell.layer.id or nxt.math != cell.math:
            write_meta(outdir, part, cells, store, notes, stopped)
            conv_report.write(outdir, store, device)
    meta = write_meta(outdir, part, cells, store, notes, stopped)
    print(conv_report.write(outdir, store, device)[part], flush=True)
    return 1 if meta["wrong"] else 0


def plan(outdir) -> int:
    """The cells of both parts (no GPU: the CUDA candidates are host code)."""
    import convbench

    if not convbench.has_cuda():
        print("conv_cells plan: convbench has no CUDA algorithms (built without CUDA)")
        return 1
    layer_list = homework_layers()
    algos = cuda_algos()
    table = table_cells(layer_list, algos)
    sweep = sweep_cells(layer_list, algos, cuda_candidates)
    shared = len({c.key for c in table} & {c.key for c in sweep})
    by_math = {m: sum(c.math == m for c in table) for m in TOLERANCE}
    info = {"layers": len(layer_list), "algos": algos, "table": len(table), "sweep": len(sweep),
            "shared": shared, "table_by_math": by_math}
    meta = pathlib.Path(outdir) / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "conv_cells_plan.json").write_text(json.dumps(info, indent=1))
    print(f"conv_cells plan: {len(layer_list)} homework layers x {len(PASSES)} passes; table "
          f"{len(table)} cells ({', '.join(f'{m} {n}' for m, n in by_math.items())}), sweep "
          f"{len(sweep)} cells of which {shared} the table times (timed once)")
    if not shared or not sweep:
        print("conv_cells plan: PROBLEM: the sweep shares no cell with the table")
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=("table", "sweep", "plan"))
    ap.add_argument("outdir")
    ap.add_argument("--deadline", type=float, default=float("inf"),
                    help="epoch seconds after which no cell starts")
    ap.add_argument("--limit", type=int, default=None, help="only the first N layers")
    a = ap.parse_args(argv)
    os.makedirs(a.outdir, exist_ok=True)
    if a.part == "plan":
        return plan(a.outdir)
    return run(a.part, a.outdir, a.deadline, homework_layers()[: a.limit])


if __name__ == "__main__":
    sys.exit(main())
