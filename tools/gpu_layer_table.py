"""Per-layer GPU time of convbench's CUDA conv2d against cuDNN on the homework layers.

The layers are the benchmark catalogue's (bench/layers.py: every distinct conv
layer of the homework networks, at each network's batch size, with its
stride, padding, dilation, groups and bias), and the ratio is the report's
convention: **cuDNN time / ours** (> 1: convbench is faster).

For every layer and pass (fwd, bwd_input, bwd_weight) it runs each of our
CUDA algorithms and `auto` through the registered operators
(torch.ops.convbench.conv2d / conv2d_backward_input / conv2d_backward_weight)
and cuDNN through ATen (F.conv2d / aten.convolution_backward, cudnn.benchmark
on, TF32 off), on the same float32 inputs. Each output is first checked
against the float64 result of the same inputs (ATen on the GPU, float64):
relative Frobenius error <= 1e-4, else the cell is marked WRONG and the tool
exits 1. Times are GPU time per call: CALLS_PER_GRAPH calls are captured into
a CUDA graph (host launch cost out of the number, for both sides alike), the
graph is replayed between CUDA events, the best of REPEATS is kept. Where
capture fails it times an eager loop instead (marked '*': launch cost in).

Results are written after every layer (layers.csv, layers.md, layers.json),
so a run cut short keeps what finished; --budget S stops starting new layers
after S seconds (the table says so).

usage: python tools/gpu_layer_table.py [OUTDIR] [--budget S] [--limit N]
       python tools/gpu_layer_table.py --list     (the plan; needs no GPU)
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

PASSES = ("fwd", "bwd_input", "bwd_weight")
PEER = "cudnn"
CALLS_PER_GRAPH = 20
REPEATS = 5
REPLAYS = 10
TOLERANCE = 1e-4  # float32 against float64, as the benchmark rows' check


# ---------------------------------------------------------------- pure parts


def homework_layers():
    """The catalogue's conv layers of the homework networks, in first-use order."""
    import layers

    return [c for c in layers.conv_layers() if c.suite == "homework"]


def plan(algos, layer_list=None):
    """[(layer, pass, [impls])]: what a run times, in order."""
    layer_list = homework_layers() if layer_list is None else layer_list
    impls = list(algos) + ["auto", PEER]
    return [(layer, p, impls) for layer in layer_list for p in PASSES]


def ratio(peer_us, ours_us):
    """The report's convention: peer time / our time (> 1: ours is faster)."""
    if not peer_us or not ours_us:
        return None
    return peer_us / ours_us


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def markdown(rows, algos, meta) -> str:
    """The table (rows: dicts as main() makes them) and per-pass geometric means."""
    lines = [f"# convbench CUDA conv2d vs cuDNN, float32, {meta.get('device', '?')}", "",
             "GPU microseconds per call (CUDA graph of "
             f"{CALLS_PER_GRAPH} calls replayed between CUDA events, best of {REPEATS}; "
             "cudnn.benchmark on, TF32 off); ratio = cuDNN time / ours (> 1: convbench faster). "
             "'*': eager loop, launch cost included. Layers: bench/layers.py's catalogue of the "
             "homework networks. Every output checked against float64 (rel. error <= "
             f"{TOLERANCE:g}); WRONG: it was not.", ""]
    if meta.get("stopped_by_budget"):
        lines += [f"**Stopped by the time budget** after {meta['layers_done']} of "
                  f"{meta['layers_total']} layers.", ""]
    lines += ["| layer | used by | pass | " + " | ".join(algos)
              + " | auto (its choice) | cuDNN | cuDNN / auto | cuDNN / best ours |",
              "|---|---|---|" + "---|" * len(algos) + "---|---|---|---|"]

    def cell(r, impl):
        if r.get(f"{impl}_error") is not None and r[f"{impl}_error"] > TOLERANCE:
            return "WRONG"
        t = r.get(impl)
        if t is None:
            return "–"
        return f"{t:.1f}" + ("" if r.get(f"{impl}_graphed", True) else "*")

    for r in rows:
        used = r.get("used_by", [])
        used_s = (used[0] + (f" +{len(used) - 1}" if len(used) > 1 else "")) if used else ""
        auto_ratio, best_ratio = r.get("ratio_auto"), r.get("ratio_best")
        lines.append(
            f"| {r['layer']} | {used_s} | {r['pass']} | "
            + " | ".join(cell(r, a) for a in algos)
            + f" | {cell(r, 'auto')} ({r.get('auto_is', '?')}) | {cell(r, PEER)} | "
            + (f"{auto_ratio:.2f}×" if auto_ratio else "–") + " | "
            + (f"{best_ratio:.2f}× ({r.get('best_ours')})" if best_ratio else "–") + " |")
    lines.append("")
    for p in PASSES:
        for key, what in (("ratio_auto", "auto"), ("ratio_best", "best of ours")):
            vals = [r[key] for r in rows if r["pass"] == p and r.get(key)]
            g = geomean(vals)
            if g:
                lines.append(f"- {p}: geometric mean cuDNN / {what} = **{g:.2f}×** over "
                             f"{len(vals)} layers")
    wrong = [f"{r['layer']} {r['pass']} {i}" for r in rows for i in r.get("wrong", [])]
    lines.append(f"- outputs checked: {sum(r.get('checked', 0) for r in rows)}; wrong: "
                 + (", ".join(wrong) if wrong else "none"))
    return "\n".join(lines) + "\n"


def finish_row(row, algos):
    """Add the ratios and the best of our algorithms to a timed row."""
    ok = [a for a in algos if row.get(a) and a not in row.get("wrong", [])]
    row["best_ours"] = min(ok, key=lambda a: row[a]) if ok else None
    auto_ok = "auto" not in row.get("wrong", [])
    row["ratio_auto"] = ratio(row.get(PEER), row.get("auto")) if auto_ok else None
    row["ratio_best"] = ratio(row.get(PEER), row[row["best_ours"]]) if ok else None
    return row


def write_outputs(outdir, rows, algos, meta):
    os.makedirs(outdir, exist_ok=True)
    fields = ["layer", "pass", "used_by"] + algos + ["auto", "auto_is", PEER, "ratio_auto",
                                                      "best_ours", "ratio_best", "wrong"]
    tmp = os.path.join(outdir, "layers.csv.tmp")
    with open(tmp, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.3f}" if isinstance(v, float) else
                             " ".join(v) if isinstance(v, list) else v) for k, v in r.items()})
    os.replace(tmp, os.path.join(outdir, "layers.csv"))
    text = markdown(rows, algos, meta)
    for name, content in (("layers.md", text),
                          ("layers.json", json.dumps(dict(meta, rows=rows), indent=1))):
        tmp = os.path.join(outdir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, os.path.join(outdir, name))
    return text


# ---------------------------------------------------------------- GPU parts


def time_us(fn, torch):
    """GPU time of one fn() call in microseconds, and whether it is graph-timed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(CALLS_PER_GRAPH):
                fn()
        graph.replay()
        run, loops, calls, graphed = graph.replay, REPLAYS, CALLS_PER_GRAPH * REPLAYS, True
    except Exception:  # noqa: BLE001 - capture unsupported: eager loop, launch cost in
        torch.cuda.synchronize()
        run, loops, calls, graphed = fn, REPLAYS * CALLS_PER_GRAPH, REPLAYS * CALLS_PER_GRAPH, False
    best = float("inf")
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start.record()
        for _ in range(loops):
            run()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) * 1000.0 / calls)
    return best, graphed


def inputs(layer, torch, device="cuda"):
    """(x, w, b, dy) of one layer on `device`: seeded, weights scaled by fan-in."""
    g = torch.Generator(device="cpu").manual_seed(0)
    P, Q = layer.out_hw
    fan_in = layer.C // layer.groups * layer.R * layer.S
    x = torch.randn(layer.N, layer.C, layer.H, layer.W, generator=g)
    w = torch.randn(layer.K, layer.C // layer.groups, layer.R, layer.S, generator=g) / fan_in ** .5
    b = torch.randn(layer.K, generator=g) if layer.bias else None
    dy = torch.randn(layer.N, layer.K, P, Q, generator=g)
    return tuple(t.to(device) if t is not None else None for t in (x, w, b, dy))


def _calls(layer, torch, F, device="cuda", tensors=None):
    """(ours(pass, algo), aten(pass), exact): callables of one layer's calls on
    `device` and the float64 answers (the tests run them on the CPU), on
    `tensors` (x, w, b, dy) or inputs(layer)."""
    import convbench  # noqa: F401 - registers torch.ops.convbench

    x, w, b, dy = tensors if tensors is not None else inputs(layer, torch, device)
    st, pd, dl, gr = list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups
    pad4 = [pd[0], pd[0], pd[1], pd[1]]
    ops = torch.ops.convbench
    conv_bwd = torch.ops.aten.convolution_backward

    def ours(pass_, algo):
        if pass_ == "fwd":
            return lambda: ops.conv2d(x, w, b, st, pad4, dl, gr, algo)
        if pass_ == "bwd_input":
            return lambda: ops.conv2d_backward_input(dy, w, list(x.shape), st, pad4, dl, gr, algo)
        return lambda: ops.conv2d_backward_weight(dy, x, list(w.shape), st, pad4, dl, gr, algo)

    def aten(pass_, dtype=None):
        xx, ww, bb, dd = ((t.to(dtype) if t is not None else None) for t in (x, w, b, dy)) \
            if dtype else (x, w, b, dy)
        if pass_ == "fwd":
            return lambda: F.conv2d(xx, ww, bb, st, pd, dl, gr)
        mask = [pass_ == "bwd_input", pass_ == "bwd_weight", False]
        i = 0 if mask[0] else 1
        return lambda: conv_bwd(dd, xx, ww, None, st, pd, dl, False, [0, 0], gr, mask)[i]

    exact = {p: aten(p, torch.float64)() for p in PASSES}
    return ours, aten, exact


def _rel_err(got, want):
    got = got.double()
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def _auto_choice(layer, p_index, torch):
    try:
        from convbench import _launch

        pd = list(layer.padding)
        return _launch.chosen_algo(p_index, (layer.N, layer.C, layer.H, layer.W),
                                   (layer.K, layer.C // layer.groups, layer.R, layer.S),
                                   layer.out_hw, list(layer.stride), [pd[0], pd[0], pd[1], pd[1]],
                                   list(layer.dilation), layer.groups, torch.float32, "cuda")
    except Exception:  # noqa: BLE001 - an internal helper: the table does without it
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default="bench/results/gpu-layers")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds; no new layer is started after this (default: no limit)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N layers")
    ap.add_argument("--list", action="store_true",
                    help="print the plan (layers, passes, implementations) and exit; no GPU")
    args = ap.parse_args(argv)
    t_start = time.monotonic()

    import torch
    import torch.nn.functional as F

    if args.list:
        try:
            import convbench

            algos = [a for a in convbench.algorithms("cuda") if a != "auto"]
        except Exception as exc:  # noqa: BLE001
            print(f"gpu_layer_table: convbench not importable: {exc}")
            return 1
        items = plan(algos)[: None if args.limit is None else 3 * args.limit]
        layer_ids = list(dict.fromkeys(layer.id for layer, _, _ in items))
        print(f"gpu_layer_table plan: {len(layer_ids)} homework conv layers x "
              f"{len(PASSES)} passes = {len(items)} rows; implementations: "
              f"{', '.join(items[0][2]) if items else '-'}")
        for layer, p, _ in items[::len(PASSES)]:
            print(f"  {layer.id:36s} used by {', '.join(layer.used_by)}")
        if not algos:
            print("gpu_layer_table: convbench has no CUDA algorithms (built without CUDA)")
            return 1
        return 0

    import convbench

    if not torch.cuda.is_available() or not convbench.has_cuda():
        print("gpu_layer_table: needs a CUDA GPU and convbench built with CUDA")
        return 2
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    algos = [a for a in convbench.algorithms("cuda") if a != "auto"]
    layer_list = homework_layers()[: args.limit]
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "algos": algos,
            "layers_total": len(layer_list), "layers_done": 0, "stopped_by_budget": False}
    rows = []
    failed = False
    for li, layer in enumerate(layer_list):
        if args.budget is not None and time.monotonic() - t_start > args.budget:
            meta["stopped_by_budget"] = True
            print(f"gpu_layer_table: budget of {args.budget:.0f} s spent; stopping after "
                  f"{li} of {len(layer_list)} layers", flush=True)
            break
        ours, aten, exact = _calls(layer, torch, F)
        for p_i, p in enumerate(PASSES):
            row = {"layer": layer.id, "used_by": list(layer.used_by), "pass": p, "wrong": [],
                   "checked": 0, "auto_is": _auto_choice(layer, p_i, torch)}
            for impl in algos + ["auto", PEER]:
                fn = aten(p) if impl == PEER else ours(p, impl)
                try:
                    err = _rel_err(fn(), exact[p])
                except Exception as exc:  # noqa: BLE001 - a failing kernel is a result
                    print(f"  {layer.id} {p} {impl}: raised {type(exc).__name__}: {exc}")
                    row["wrong"].append(impl)
                    failed = True
                    continue
                row["checked"] += 1
                row[f"{impl}_error"] = err
                if not math.isfinite(err) or err > TOLERANCE:
                    row["wrong"].append(impl)
                    failed = True
                row[impl], row[f"{impl}_graphed"] = time_us(fn, torch)
            rows.append(finish_row(row, algos))
            r = rows[-1]
            print(f"{layer.id:34s} {p:10s} auto({r['auto_is']}) "
                  f"{r.get('auto', float('nan')):8.1f} us  cudnn {r.get(PEER, float('nan')):8.1f}"
                  f" us  cudnn/auto {r['ratio_auto'] or float('nan'):5.2f}  "
                  + " ".join(f"{a}={r[a]:.1f}" for a in algos if r.get(a))
                  + (f"  WRONG: {r['wrong']}" if r["wrong"] else ""), flush=True)
        meta["layers_done"] = li + 1
        meta["seconds"] = round(time.monotonic() - t_start, 1)
        write_outputs(args.outdir, rows, algos, meta)  # after every layer: a cut run keeps it
    print(write_outputs(args.outdir, rows, algos, meta))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
