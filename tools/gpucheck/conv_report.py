"""layers.md (ours against cuDNN) and tuning.md (auto against the fastest of
our configurations) from conv_cells.py's cell records. Ratios follow the
benchmark report: peer time / our time (> 1: convbench is faster)."""
from __future__ import annotations

import math
import os
import pathlib

PASSES = ("fwd", "bwd_input", "bwd_weight")


def geomean(values):
    values = [x for x in values if x and x > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def ratio(peer, ours):
    return peer / ours if peer and ours else None


def _groups(store, math_):
    """{(layer, pass): {label: record}} of one math, in first-timed order."""
    out = {}
    for r in store.values():
        if r["math"] == math_:
            out.setdefault((r["layer"], r["pass"]), {})[r["label"]] = r
    return out


def _cell(r):
    if r is None:
        return "–"
    if not r["ok"]:
        return "WRONG"
    return f"{r['us']:.1f}" + ("" if r["graphed"] else "*")


def _t(r):
    return r["us"] if r is not None and r["ok"] else None


def _used(rows):
    used = next(iter(rows.values()))["used_by"]
    return (used[0] + (f" +{len(used) - 1}" if len(used) > 1 else "")) if used else ""


def layer_table(store, device) -> str:
    f32 = _groups(store, "float32")
    algos = []
    for rows in f32.values():
        for label, r in rows.items():
            if r["engine"] == 0 and r["impl"] not in ("auto", "cudnn") and label not in algos:
                algos.append(label)
    lines = [f"# convbench CUDA conv2d vs cuDNN, {device}", "",
             "GPU microseconds per call (a CUDA graph of up to 20 calls replayed between CUDA "
             "events, best of 5; cudnn.benchmark on); ratio = cuDNN time / ours (> 1: convbench "
             "faster). '*': eager loop, launch cost included. Every output checked against "
             "float64 of the same inputs; WRONG: it was not within tolerance. Layers: "
             "bench/layers.py's homework catalogue.", "",
             "## float32 (TF32 off)", "",
             "| layer | used by | pass | " + " | ".join(algos)
             + " | auto (its choice) | cuDNN | cuDNN / auto | cuDNN / best ours |",
             "|---|---|---|" + "---|" * len(algos) + "---|---|---|---|"]
    per_pass = {p: {"auto": [], "best": []} for p in PASSES}
    wrong = [f"{r['layer']} {r['pass']} {r['math']} {r['label']}" for r in store.values()
             if not r["ok"]]
    for (layer, p), rows in f32.items():
        auto, peer = rows.get("auto"), rows.get("cudnn")
        ok = {a: _t(rows.get(a)) for a in algos if _t(rows.get(a))}
        best = min(ok, key=ok.get) if ok else None
        ra, rb = ratio(_t(peer), _t(auto)), ratio(_t(peer), ok.get(best))
        per_pass[p]["auto"].append(ra)
        per_pass[p]["best"].append(rb)
        lines.append(f"| {layer} | {_used(rows)} | {p} | "
                     + " | ".join(_cell(rows.get(a)) for a in algos)
                     + f" | {_cell(auto)} ({(auto or {}).get('auto_is') or '?'}) | {_cell(peer)} | "
                     + (f"{ra:.2f}×" if ra else "–") + " | "
                     + (f"{rb:.2f}× ({best})" if rb else "–") + " |")
    lines.append("")
    for p in PASSES:
        for key, what in (("auto", "auto"), ("best", "best of ours")):
            g = geomean(per_pass[p][key])
            n = sum(1 for x in per_pass[p][key] if x)
            if g:
                lines.append(f"- {p}: geometric mean cuDNN / {what} = **{g:.2f}×** over {n} "
                             "layers")
    lines.append(f"- outputs checked: {len(store)}; wrong: " + (", ".join(wrong) or "none"))
    tf32 = _groups(store, "tf32")
    if tf32:
        lines += ["", "## cuDNN with TF32 against our float32", "",
                  "| layer | pass | ours auto (float32) | cuDNN TF32 | cuDNN TF32 / ours |",
                  "|---|---|---|---|---|"]
        vals = []
        for (layer, p), rows in tf32.items():
            ours = f32.get((layer, p), {}).get("auto")
            r = ratio(_t(rows.get("cudnn")), _t(ours))
            vals.append(r)
            lines.append(f"| {layer} | {p} | {_cell(ours)} | {_cell(rows.get('cudnn'))} | "
                         + (f"{r:.2f}×" if r else "–") + " |")
        g = geomean(vals)
        if g:
            lines += ["", f"- geometric mean cuDNN TF32 / ours float32 = **{g:.2f}×** over "
                          f"{sum(1 for x in vals if x)} layer passes"]
    for dt in ("float16", "bfloat16"):
        half = _groups(store, dt)
        if not half:
            continue
        lines += ["", f"## {dt}", "", "| layer | pass | ours auto | cuDNN | cuDNN / ours |",
                  "|---|---|---|---|---|"]
        vals = []
        for (layer, p), rows in half.items():
            r = ratio(_t(rows.get("cudnn")), _t(rows.get("auto")))
            vals.append(r)
            lines.append(f"| {layer} | {p} | {_cell(rows.get('auto'))} | "
                         f"{_cell(rows.get('cudnn'))} | " + (f"{r:.2f}×" if r else "–") + " |")
        g = geomean(vals)
        if g:
            lines += ["", f"- geometric mean cuDNN / ours, {dt} = **{g:.2f}×** over "
                          f"{sum(1 for x in vals if x)} layer passes"]
    return "\n".join(lines) + "\n"


def tuning_table(store, device) -> str:
    lines = [f"# convbench CUDA tuning sweep, float32, {device}", "",
             "GPU microseconds per call of every configuration of ours (as layers.md); auto / "
             "fastest: how far the shape rule is from the fastest configuration (1.00: it "
             "picked the fastest).", "",
             "| layer | pass | auto | fastest | auto / fastest | all (us) |",
             "|---|---|---|---|---|---|"]
    qs = []
    for (layer, p), rows in _groups(store, "float32").items():
        ours = {k: _t(r) for k, r in rows.items() if k not in ("auto", "cudnn") and _t(r)}
        if len(ours) < 2:
            continue  # the table's algorithms alone are not a sweep
        best = min(ours, key=ours.get)
        auto = _t(rows.get("auto"))
        q = auto / ours[best] if auto else None
        if q:
            qs.append(q)
        wrong = [k for k, r in rows.items() if not r["ok"]]
        allc = ", ".join(f"{k} {t:.1f}" for k, t in sorted(ours.items(), key=lambda kv: kv[1]))
        lines.append(f"| {layer} | {p} | {_cell(rows.get('auto'))} | {best} {ours[best]:.1f} | "
                     + (f"{q:.2f}" if q else "–") + f" | {allc}"
                     + (f"; WRONG: {', '.join(wrong)}" if wrong else "") + " |")
    if qs:
        lines += ["", f"- geometric mean auto / fastest: **{geomean(qs):.2f}** over {len(qs)} "
                      f"layer passes; within 5% of the fastest: {sum(q <= 1.05 for q in qs)}/"
                      f"{len(qs)}"]
    return "\n".join(lines) + "\n"


def write(outdir, store, device) -> dict:
    texts = {"table": layer_table(store, device), "sweep": tuning_table(store, device)}
    for part, name in (("table", "layers.md"), ("sweep", "tuning.md")):
        path = pathlib.Path(outdir) / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(texts[part])
        os.replace(tmp, path)
    return texts
