"""The CUDA benchmark rows, stage after stage (bench/gpu_stages.py, most
valuable first), one pytest and one JSON each, until the deadline: no row
starts after it (deadline_plugin), so every stage that started writes its
JSON. Then the report of all of them. Writes OUTDIR/bench/stages.json (per
stage: exit status, rows, complete) for the verdict.

    python -m gpucheck.bench_stages OUTDIR --deadline EPOCH [--row-budget S]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_stages  # noqa: E402

from gpucheck.verdicts import parse_junit  # noqa: E402

REPORT_S = 20  # kept for the report at the end


def _rows(path) -> int:
    try:
        return len(json.loads(pathlib.Path(path).read_text())["benchmarks"])
    except (OSError, ValueError, KeyError):
        return 0  # pytest-benchmark creates the file up front: empty until the end


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--deadline", type=float, required=True)
    ap.add_argument("--row-budget", type=float,
                    default=float(os.environ.get("CONVBENCH_BENCH_ROW_BUDGET", 0.05)),
                    help="seconds of timed rounds per row (default 0.05)")
    a = ap.parse_args(argv)
    out = pathlib.Path(a.outdir) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"planned": len(gpu_stages.NAMES), "order": list(gpu_stages.NAMES), "stages": {}}
    rows_deadline = a.deadline - REPORT_S
    roof = "cuda"  # the first stage that runs measures the GPU's ceilings for all
    rc_all = 0
    for name in gpu_stages.NAMES:
        left = rows_deadline - time.time()
        if left < 10:
            break
        js, xml = out / f"BENCH_{name}.json", out / f"junit_{name}.xml"
        cmd = [sys.executable, "-m", "pytest", "bench/", "--benchmark-only", "-q",
               "-p", "no:cacheprovider", "--cb-stage", name, "--cb-budget", str(a.row_budget),
               "--cb-roofline", roof, f"--benchmark-json={js}", f"--junitxml={xml}",
               "-p", "gpucheck.deadline_plugin", "--gc-deadline", f"{rows_deadline:.0f}"]
        print(f"--- benchmark stage {name} ({left:.0f} s left)", flush=True)
        try:
            rc = subprocess.run(cmd, cwd=ROOT, timeout=left + 10).returncode
        except subprocess.TimeoutExpired:
            rc = 124  # a row overran the deadline: this stage's JSON is lost
        t = parse_junit(xml) or {}
        rows = _rows(js)
        meta["stages"][name] = {"rc": rc, "rows": rows, "json": f"bench/{js.name}",
                                "complete": rc in (0, 5) and not t.get("skipped_deadline")
                                and rc != 124,
                                "not_started": t.get("skipped_deadline", 0)}
        if rows:
            roof = "none"
        if rc not in (0, 5):
            rc_all = 1
        (out / "stages.json").write_text(json.dumps(meta, indent=1))
    jsons = [str(out / f"BENCH_{n}.json") for n, s in meta["stages"].items() if s["rows"]]
    if jsons:
        plots = [] if _has("matplotlib") else ["--no-plots"]
        try:
            p = subprocess.run([sys.executable, "-m", "convbench.report", *jsons, "--out",
                                str(out), *plots], cwd=ROOT, timeout=max(5, a.deadline - time.time()),
                               capture_output=True, text=True)
            (out / "report.log").write_text(p.stdout + p.stderr)
            if p.returncode == 0:
                meta["report"] = "bench/results.md"
        except subprocess.TimeoutExpired:
            (out / "report.log").write_text("the report ran past the deadline")
    (out / "stages.json").write_text(json.dumps(meta, indent=1))
    return rc_all


def _has(module) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
