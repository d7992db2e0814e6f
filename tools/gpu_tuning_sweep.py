"""Every CUDA kernel configuration on every homework conv layer and pass, timed.

The data for setting the CUDA thresholds (csrc/conv2d/cuda/conv2d_cuda.cu's
`auto` rule, the implicit GEMM's tile heights and split-K plan, the fused
kernel's channel chunks) from measurements, without another GPU session.
For each homework layer (bench/layers.py's catalogue) and pass it runs every
candidate the CUDA autotuner would time (_C.conv2d_candidates: direct; the
implicit GEMM with BM = 128/64/32 output pixels per tile or split-K into
1/4/16/64 slices; the fused kernel with 1-32 channels per thread) and `auto`
(the shape rule's own choice), checks each output against float64 (relative
error <= 1e-4, else WRONG and exit 1) and times it as tools/gpu_layer_table.py
does (GPU time per call from a replayed CUDA graph, best of several).

Writes OUTDIR/tuning.json and tuning.md after every layer (a cut run keeps
what finished); --budget S starts no layer after S seconds.

usage: python tools/gpu_tuning_sweep.py [OUTDIR] [--budget S] [--limit N]
       python tools/gpu_tuning_sweep.py --list    (the plan; needs no GPU, only a CUDA build)

Uses convbench's private launch layer (it names tilings, which the public
API does not).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import gpu_layer_table as table  # noqa: E402 - the layers, the GPU clock, the checks

PASSES = table.PASSES


def shape16(layer):
    """The layer as the numbers _C's conv calls take (the launch layer's order)."""
    from convbench import _launch

    ph, pw = layer.padding
    return _launch._conv_shape((layer.N, layer.C, layer.H, layer.W),
                               (layer.K, layer.C // layer.groups, layer.R, layer.S),
                               layer.out_hw, layer.stride, (ph, ph, pw, pw), layer.dilation,
                               layer.groups)


def candidates(layer, pass_index):
    """[(name, algo name, variant)] the CUDA autotuner times for this layer and pass."""
    from convbench import _C, _launch

    names = {i: n for n, i in _launch.ALGO_IDS.items()}
    out = []
    for a, v in _C.conv2d_candidates(pass_index, _C.DTYPE_IDS["float32"], shape16(layer),
                                     _C.DEVICE_CUDA):
        tiling = _C.conv2d_variant_name(a, v, _C.DEVICE_CUDA, pass_index)
        out.append((names[a] + (f":{tiling}" if tiling else ""), names[a], v))
    return out


def best_of(row):
    ok = {k: t for k, t in row["us"].items() if k != "auto" and k not in row["wrong"]}
    return min(ok, key=ok.get) if ok else None


def markdown(rows, meta) -> str:
    lines = [f"# convbench CUDA tuning sweep, float32, {meta.get('device', '?')}", "",
             "GPU microseconds per call of every kernel configuration (CUDA graph replayed "
             "between events, best of several, as tools/gpu_layer_table.py); `auto`: the shape "
             "rule's choice; auto / best: how far the rule is from the fastest configuration "
             "(1.00 = it picked the fastest). Outputs checked against float64.", ""]
    if meta.get("stopped_by_budget"):
        lines += [f"**Stopped by the time budget** after {meta['layers_done']} of "
                  f"{meta['layers_total']} layers.", ""]
    lines += ["| layer | pass | auto | fastest | auto / fastest | all (us) |", "|---|---|---|---|---|---|"]
    slow = []
    for r in rows:
        best = best_of(r)
        auto = r["us"].get("auto")
        q = auto / r["us"][best] if best and auto else None
        if q:
            slow.append(q)
        allc = ", ".join(f"{k} {t:.1f}" for k, t in sorted(r["us"].items(), key=lambda kv: kv[1])
                         if k != "auto")
        lines.append(f"| {r['layer']} | {r['pass']} | {auto or float('nan'):.1f} | "
                     f"{best} {r['us'].get(best, float('nan')):.1f} | "
                     + (f"{q:.2f}" if q else "–") + f" | {allc}"
                     + (f"; WRONG: {', '.join(r['wrong'])}" if r["wrong"] else "") + " |")
    if slow:
        g = math.exp(sum(map(math.log, slow)) / len(slow))
        lines += ["", f"- geometric mean auto / fastest: **{g:.2f}** over {len(slow)} layer passes; "
                      f"within 5% of the fastest: {sum(q <= 1.05 for q in slow)}/{len(slow)}"]
    return "\n".join(lines) + "\n"


def write(outdir, rows, meta):
    os.makedirs(outdir, exist_ok=True)
    text = markdown(rows, meta)
    for name, content in (("tuning.md", text), ("tuning.json", json.dumps(dict(meta, rows=rows),
                                                                           indent=1))):
        tmp = os.path.join(outdir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, os.path.join(outdir, name))
    return text


def _runner(layer, torch, device="cuda"):
    """run(pass, algo, variant) -> output tensor, and the float64 answers."""
    from convbench import _launch

    import torch.nn.functional as F

    x, w, b, dy = table.inputs(layer, torch, device)
    _, _, exact = table._calls(layer, torch, F, device, (x, w, b, dy))
    P, Q = layer.out_hw
    st, pd, dl, gr = list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups
    pad4 = (pd[0], pd[0], pd[1], pd[1])

    def run(p, algo, v):
        if p == "fwd":
            return lambda: _launch.conv2d_forward(x, w, b, (P, Q), st, pad4, dl, gr, algo, v)
        if p == "bwd_input":
            return lambda: _launch.conv2d_backward_input(dy, w, x.shape, st, pad4, dl, gr, algo, v)
        return lambda: _launch.conv2d_backward_weight(dy, x, w.shape, st, pad4, dl, gr, algo, v)

    return run, exact


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default="bench/results/gpu-tuning")
    ap.add_argument("--budget", type=float, default=None, help="seconds; no layer started after")
    ap.add_argument("--limit", type=int, default=None, help="only the first N layers")
    ap.add_argument("--list", action="store_true", help="print the plan and exit; no GPU")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    import torch

    import convbench

    if not convbench.has_cuda():
        print("gpu_tuning_sweep: convbench was built without CUDA")
        return 1 if args.list else 2
    layer_list = table.homework_layers()[: args.limit]
    if args.list:
        n = sum(len(candidates(L, i)) for L in layer_list for i in range(len(PASSES)))
        print(f"gpu_tuning_sweep plan: {len(layer_list)} homework conv layers x {len(PASSES)} "
              f"passes, {n} kernel configurations (+ auto each)")
        for L in layer_list[:3]:
            for i, p in enumerate(PASSES):
                print(f"  {L.id:32s} {p:10s} " + " ".join(c[0] for c in candidates(L, i)))
        return 0
    if not torch.cuda.is_available():
        print("gpu_tuning_sweep: needs a CUDA GPU")
        return 2
    convbench.backends.autotune = False  # `auto` is the shape rule, not a timed choice
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "layers_total": len(layer_list), "layers_done": 0, "stopped_by_budget": False}
    rows, failed = [], False
    for li, layer in enumerate(layer_list):
        if args.budget is not None and time.monotonic() - t_start > args.budget:
            meta["stopped_by_budget"] = True
            print(f"gpu_tuning_sweep: budget spent after {li} of {len(layer_list)} layers")
            break
        run, exact = _runner(layer, torch)
        for pi, p in enumerate(PASSES):
            row = {"layer": layer.id, "pass": p, "us": {}, "wrong": [], "graphed": {}}
            for name, algo, v in candidates(layer, pi) + [("auto", "auto", 0)]:
                fn = run(p, algo, v)
                try:
                    err = table._rel_err(fn(), exact[p])
                except Exception as exc:  # noqa: BLE001 - a failing kernel is a result
                    print(f"  {layer.id} {p} {name}: raised {type(exc).__name__}: {exc}")
                    row["wrong"].append(name)
                    failed = True
                    continue
                if not math.isfinite(err) or err > table.TOLERANCE:
                    row["wrong"].append(name)
                    failed = True
                row["us"][name], row["graphed"][name] = table.time_us(fn, torch)
            rows.append(row)
            best = best_of(row)
            print(f"{layer.id:32s} {p:10s} auto {row['us'].get('auto', float('nan')):8.1f} us  "
                  f"fastest {best} {row['us'].get(best, float('nan')):.1f} us"
                  + (f"  WRONG: {row['wrong']}" if row["wrong"] else ""), flush=True)
        meta["layers_done"] = li + 1
        meta["seconds"] = round(time.monotonic() - t_start, 1)
        write(args.outdir, rows, meta)
    print(write(args.outdir, rows, meta))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
