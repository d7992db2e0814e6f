"""SUMMARY.md of a GPU check's results folder, from whatever its stages left
there (rewritten at the start and end of every stage, so a run cut at any
point still says what ran, what passed, and what it did not check)."""
from __future__ import annotations

import json
import os
import pathlib

from gpucheck import plan as _plan
from gpucheck import verdicts as v

BUILD_COMMAND = "CONVBENCH_CUDA=ON CUDAARCHS={archs} pip install --no-build-isolation --no-deps ."
STATUS_TEXT = {"ok": "ok", "partial": "**partial**", "failed": "**FAILED**",
               "skipped": "**skipped**", "running": "**running** (cut while running)"}


def _json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_stages(path):
    """stages.tsv (name, status, seconds, limit, detail per line) as dicts in
    order; a stage listed twice (running, then its result) keeps its last line."""
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or not parts[0]:
                    continue
                parts += [""] * (5 - len(parts))
                rows[parts[0]] = dict(zip(("name", "status", "seconds", "limit", "detail"), parts))
    except OSError:
        pass
    return list(rows.values())


def overall(planned, stages):
    """(word, exit status): FAILED (1) if a stage failed; INCOMPLETE (3) if one
    was skipped, partial, cut while running or never reached; else ok (0)."""
    by = {s["name"]: s for s in stages}
    if any(s["status"] == "failed" for s in stages):
        return "**FAILED**", 1
    short = [n for n in planned if n not in by or by[n]["status"] != "ok"]
    if short:
        return "**INCOMPLETE** (not all checked: " + ", ".join(short) + ")", 3
    return "ok", 0


def gather(outdir) -> dict:
    out = pathlib.Path(outdir)
    meta = out / "meta"
    data = {"outdir": str(out), "stages": read_stages(out / "stages.tsv"),
            "run": _json(meta / "run.json") or {}, "preflight": _json(meta / "preflight.json") or {},
            "installed": _json(meta / "installed.json") or {},
            "collect": _json(meta / "collect.json"), "bench_plan": _json(meta / "bench_plan.json"),
            "tests": v.parse_junit(out / "pytest_cuda.xml"), "sanitizers": {},
            "probe": _json(out / "layout_probe" / "compare.json"),
            "probe_dry": _json(out / "layout_probe" / "dry.json"),
            "bench": _json(out / "bench" / "stages.json")}
    for tool in ("memcheck", "racecheck", "synccheck", "initcheck"):
        log = out / f"sanitizer_{tool}.log"
        if log.exists():
            data["sanitizers"][tool] = dict(v.sanitizer_result(log.read_text(errors="replace")),
                                            log=log.name)
    for name in ("layers.md", "tuning.md"):
        p = out / name
        data[name] = p.read_text() if p.exists() else None
    return data


def _machine(data):
    v_ = data["preflight"].get("versions", {})
    inst = (data["installed"] or {}).get("build_info", {})
    gpu = v_.get("gpu")
    if gpu:
        gpu += (f" (sm {v_.get('gpu_capability')}, {v_.get('gpu_memory_gib')} GiB, "
                f"{v_.get('gpu_sms')} SMs, L2 {v_.get('gpu_l2_mib')} MiB)")
        if (v_.get("gpu_count") or 1) > 1:
            gpu += f", {v_['gpu_count']} devices"
    dry = data["run"].get("mode") == "dry"
    rows = [("GPU", gpu or "none visible" + (" (dry run)" if dry else "")),
            ("driver", v_.get("driver") or inst.get("cuda_driver") or "–"),
            ("CUDA runtime: torch", v_.get("torch_cuda") or "–"),
            ("CUDA runtime: convbench build", inst.get("cuda_runtime") or "–"),
            ("nvcc", v_.get("nvcc") or "–"), ("torch", v_.get("torch") or "–"),
            ("cuDNN", v_.get("cudnn") or "–"),
            ("compute-sanitizer", v_.get("compute_sanitizer") or "not found"),
            ("Python / CPU cores", f"{v_.get('python', '?')} / {v_.get('cpu_count', '?')}")]
    lines = ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {val} |" for k, val in rows] + [""]
    notes = data["preflight"].get("notes", []) + data["preflight"].get("problems", [])
    return lines + (["Preflight: " + "; ".join(notes), ""] if notes else [])


def _stages(planned, stages):
    by = {s["name"]: s for s in stages}
    lines = ["## Stages", "", "In order of value. ok: it checked all it promises (tools/gpucheck/"
             "plan.py); partial: it stopped at its deadline with what it had; a stage cut by its "
             "hard limit, or that checked nothing, failed.", "",
             "| stage | status | seconds | limit (s) | details |", "| --- | --- | --- | --- | --- |"]
    for name in list(planned) + [s["name"] for s in stages if s["name"] not in planned]:
        s = by.get(name)
        if s is None:
            lines.append(f"| {name} | not reached | | | |")
        else:
            lines.append(f"| {name} | {STATUS_TEXT.get(s['status'], s['status'])} | "
                         f"{s['seconds']} | {s['limit']} | {s['detail']} |")
    return lines + [""]


def _tests(data):
    t, run = data["tests"], data["run"]
    lines = ["## CUDA tests", ""]
    files = run.get("cuda_test_files")
    if files:
        lines += [f"Files: {', '.join(f'`{f}`' for f in files)} (`-m cuda`, by name)", ""]
    c = data.get("collect")
    if c:
        lines += [f"Collected without {', '.join(c['blocked'])}: **{c['collected']}** CUDA tests "
                  f"({', '.join(f'{k}: {n}' for k, n in c['per_file'].items())}); `cuda` tests "
                  f"in all of tests/: {c['all_cuda_tests_here']}"]
        lines += [f"- **PROBLEM**: {p.splitlines()[0]}" for p in c["problems"]] + [""]
    if not t:
        return lines + ["No junit XML (pytest_cuda.xml): the tests did not run or were killed.", ""]
    lines += ["| passed | failed | errors | skipped (no GPU / deadline) | total |",
              "| --- | --- | --- | --- | --- |",
              f"| {t['passed']} | {t['failed']} | {t['errors']} | {t['skipped']} "
              f"({t['skipped_no_gpu']} / {t['skipped_deadline']}) | {t['total']} |", ""]
    if t["interrupted"]:
        lines += ["**Interrupted** during a test: the counts cover the tests that finished.", ""]
    lines += [f"- failed: `{n}`" for n in t["failures"][:30]]
    if len(t["failures"]) > 30:
        lines.append(f"- ... and {len(t['failures']) - 30} more (pytest_cuda.xml)")
    return lines + ([""] if t["failures"] else [])


def _sanitizers(data, by):
    lines = ["## compute-sanitizer", "", "Our kernels only (`--kernel-name kns=convbench`, API "
             "errors off), `PYTORCH_NO_CUDA_MEMORY_CACHING=1`, on gpucheck/sanitize_cases.py (one "
             "case per kernel family, pass and dtype, then larger shapes); full logs beside "
             "this file.", "", "| tool | errors | status | cases run | coverage | log |",
             "| --- | --- | --- | --- | --- | --- |"]
    for tool in ("memcheck", "racecheck", "synccheck", "initcheck"):
        r, s = data["sanitizers"].get(tool), by.get(tool)
        status = STATUS_TEXT.get(s["status"], s["status"]) if s else "not reached"
        if r is None:
            lines.append(f"| {tool} | – | {status} | | | |")
            continue
        errors = str(r["errors"]) if r["complete"] else "unknown (no summary line)"
        if r.get("warnings"):
            errors += f" ({r['warnings']} warnings)"
        cases = (f"{r['cases_run']} of {r['cases_total']}" + (f", {r['cases_wrong']} wrong"
                 if r["cases_wrong"] else "") + (" (deadline)" if r["stopped_by_deadline"] else "")
                 ) if r["cases_run"] is not None else "–"
        cover = f"{r['covered']} of {r['coverable']}" if r["covered"] is not None else "–"
        lines.append(f"| {tool} | {errors} | {status} | {cases} | {cover} | "
                     f"[{r['log']}]({r['log']}) |")
    return lines + [""]


def _probe(data):
    p = data["probe"]
    lines = ["## Layout probe (mma, ldmatrix, cp.async against the PTX ISA's layouts)", ""]
    if not p and data.get("probe_dry"):
        d = data["probe_dry"]
        return lines + ["Dry run (no GPU to run it on): " + "; ".join(d["checked"])
                        + "".join(f"; **PROBLEM**: {x}" for x in d["problems"]), ""]
    if not p:
        return lines + ["Not run, or it did not reach the comparison (logs/layout-probe.log).", ""]
    lines += ["| probe | registers | match |", "| --- | --- | --- |"]
    lines += [f"| {name} | {r['lines']} | {r['matched']} |" for name, r in p["probes"].items()]
    if not p["ok"]:
        lines += ["", "**Differences**: layout_probe/compare.md lists every register."]
    return lines + [""]


def _tables(data):
    lines = ["## Per-layer table: ours vs cuDNN (cuDNN time / ours)", ""]
    if data["layers.md"]:
        body = data["layers.md"].splitlines()
        if body and body[0].startswith("# "):
            body[0] = "###" + body[0][1:]
        lines += body + [""]
    else:
        lines += ["Not written (layer-table stage not reached, or no cell finished).", ""]
    lines += ["## Tuning sweep: every CUDA kernel configuration", ""]
    if data["tuning.md"]:
        notes = [ln for ln in data["tuning.md"].splitlines()
                 if ln.startswith("- ") or ln.startswith("**Stopped")]
        lines += notes + ["", "Every layer and configuration: [tuning.md](tuning.md) (data: "
                          "cells.jsonl).", ""]
    else:
        lines += ["Not written (tuning-sweep stage not reached, or no cell finished).", ""]
    return lines


def _bench(data):
    lines = ["## Benchmarks (one JSON per stage, most valuable first)", ""]
    bp, b = data.get("bench_plan"), data.get("bench")
    if bp:
        lines += ["Rows per stage (collected): "
                  + ", ".join(f"{k} {n}" for k, n in bp["stages"].items()), ""]
    if b and b.get("stages"):
        lines += ["| stage | rows | complete | JSON |", "| --- | --- | --- | --- |"]
        for name, s in b["stages"].items():
            lines.append(f"| {name} | {s['rows']} | {'yes' if s['complete'] else 'no'} | "
                         f"[{s['json']}]({s['json']}) |")
        lines.append("")
        if b.get("report"):
            lines += [f"Report of all stages: [{b['report']}]({b['report']})", ""]
    else:
        lines += ["No benchmark stage ran (bench stage not reached, or it timed nothing).", ""]
    return lines


def render(data: dict) -> str:
    run = data["run"]
    mode = run.get("mode", "gpu")
    planned = run.get("planned") or [s.name for s in _plan.PLANS.get(mode, ())]
    by = {s["name"]: s for s in data["stages"]}
    word, _ = overall(planned, data["stages"])
    title = {"dry": "dry run (no GPU: builds, collects and checks what the GPU run needs)",
             "gpu": "GPU run"}.get(mode, mode)
    lines = [f"# convbench GPU check: {title}", "",
             f"- When: {run.get('started', '?')} (UTC); {run.get('elapsed', '?')} s of a "
             f"{run.get('budget', '?')} s budget; overall: {word}",
             f"- Commit: `{run.get('commit', '?')}`" + (" (uncommitted changes)"
                                                         if run.get("dirty") else "")
             + (f"; the build recorded `{data['installed']['build_info'].get('commit')}`"
                if (data["installed"] or {}).get("build_info") else ""),
             f"- Command: `{run.get('command', 'tools/gpu_check.sh')}`", ""]
    lines += _machine(data) + _stages(planned, data["stages"])
    b = by.get("build")
    archs = run.get("archs", "90")
    inst = (data["installed"] or {}).get("build_info", {})
    lines += ["## Build", "", f"`{BUILD_COMMAND.format(archs=archs)}`: "
              + (f"{STATUS_TEXT.get(b['status'], b['status'])} in {b['seconds']} s" if b
                 else "not reached")
              + (f"; compiled CUDA architectures {inst.get('cuda_architectures')}, CUDA kernels "
                 f"{'in' if inst.get('cuda_compiled') else '**missing**'}" if inst else ""), ""]
    lines += [f"- **PROBLEM**: {p}" for p in (data["installed"] or {}).get("problems", [])]
    lines += _probe(data) + _tests(data) + _sanitizers(data, by) + _tables(data) + _bench(data)
    return "\n".join(lines)


def write(outdir) -> str:
    text = render(gather(outdir))
    path = pathlib.Path(outdir) / "SUMMARY.md"
    tmp = path.with_name("SUMMARY.md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return text
