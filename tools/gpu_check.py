"""The Python half of tools/gpu_check.sh (which runs the stages; see there).

    python tools/gpu_check.py preflight OUTDIR --mode gpu|dry
        tools, Python modules, versions, output dir; writes OUTDIR/meta/preflight.json
    python tools/gpu_check.py installed OUTDIR --archs 90 --checkout ROOT
        the installed convbench (run from outside the checkout): CUDA compiled in,
        for exactly the architectures asked; writes OUTDIR/meta/installed.json
    python tools/gpu_check.py cuda-test-files [ROOT]
        the test files holding tests marked `cuda` (run by name, not `-m cuda tests/`)
    python tools/gpu_check.py collect OUTDIR FILE...
        (dry run) collects the CUDA tests of FILE... without the optional extras, as
        on the GPU machine, and checks that they are all the `cuda` tests there are
    python tools/gpu_check.py bench-plan OUTDIR
        (dry run) the benchmark rows of each GPU stage (bench/gpu_stages.py)
    python tools/gpu_check.py summary OUTDIR [--dry-run]
        OUTDIR/SUMMARY.md from whatever the stages left there

The summary functions (parse_junit, sanitizer_result, read_stages, render)
need neither torch nor a GPU; tests/test_gpu_check.py tests them.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")
# What the GPU machine has besides the standard library (issue 10).
GPU_MACHINE_MODULES = ("torch", "pybind11", "scikit_build_core", "pytest", "pytest_benchmark")
# Optional extras some test files import; blocked when the dry run collects.
OPTIONAL_EXTRAS = ("hypothesis", "matplotlib", "mlxtend", "PIL", "scipy", "sklearn", "pandas")
REQUIRED_MODULES = ("torch", "numpy", "pytest", "pybind11", "scikit_build_core")
BENCH_MODULES = ("pytest_benchmark", "cpuinfo")
BUILD_COMMAND = "CONVBENCH_CUDA=ON CUDAARCHS={archs} pip install --no-build-isolation --no-deps ."

# The stages gpu_check.sh runs, in order (bench stages are added by name).
GPU_STAGES = ("preflight", "build", "installed", "cuda-tests", "layer-table") + tuple(
    f"sanitizer-{t}" for t in SANITIZER_TOOLS) + ("tuning-sweep",)
DRY_STAGES = ("preflight", "build", "installed", "collect-cuda-tests", "cuda-tests",
              "layer-table-plan", "sanitizer-cases-plan", "tuning-sweep-plan", "bench-plan")


# ---------------------------------------------------------------- small helpers


def _meta(outdir) -> pathlib.Path:
    p = pathlib.Path(outdir) / "meta"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _write_json(path, data) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _run(cmd, timeout=60, **kw) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({type(exc).__name__})"


def find_tool(name: str):
    """An executable on PATH or in the CUDA toolkit's bin folders."""
    found = shutil.which(name)
    if found:
        return found
    dirs = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    dirs += sorted(str(p) for p in pathlib.Path("/usr/local").glob("cuda-*"))
    for d in dirs:
        for sub in ("bin", "compute-sanitizer"):
            cand = pathlib.Path(d) / sub / name
            if d and cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
    return None


def cuda_test_files(root=ROOT):
    """Test files with tests marked `cuda` (pytest.mark.cuda anywhere in them)."""
    pat = re.compile(r"\bmark\.cuda\b")
    return [str(p.relative_to(root)) for p in sorted(pathlib.Path(root, "tests").glob("test_*.py"))
            if pat.search(p.read_text(errors="replace"))]


# ---------------------------------------------------------------- preflight


def _module_version(name):
    import importlib

    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable"
        return None, f"{type(exc).__name__}: {exc}"
    return str(getattr(mod, "__version__", "present")), None


def preflight(outdir, mode: str) -> int:
    out = {"mode": mode, "tools": {}, "modules": {}, "problems": [], "notes": []}
    tools = {"nvcc": find_tool("nvcc"), "cmake": shutil.which("cmake"),
             "ninja": shutil.which("ninja"), "make": shutil.which("make"),
             "c++": shutil.which(os.environ.get("CXX", "c++")),
             "compute-sanitizer": find_tool("compute-sanitizer"),
             "nvidia-smi": shutil.which("nvidia-smi"), "timeout": shutil.which("timeout"),
             "git": shutil.which("git")}
    out["tools"] = tools
    for name in REQUIRED_MODULES + BENCH_MODULES + ("matplotlib", "hypothesis"):
        version, err = _module_version(name)
        out["modules"][name] = version or f"missing ({err})"
    # Versions.
    v = {"python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    if tools["nvcc"]:
        m = re.search(r"release ([\d.]+), (V[\d.]+)", _run([tools["nvcc"], "--version"]))
        v["nvcc"] = m.group(0) if m else "?"
    if tools["compute-sanitizer"]:
        m = re.search(r"Version ([\w.\-]+)", _run([tools["compute-sanitizer"], "--version"]))
        v["compute_sanitizer"] = m.group(1) if m else "?"
    if tools["cmake"]:
        v["cmake"] = _run([tools["cmake"], "--version"]).splitlines()[0]
    if tools["nvidia-smi"]:
        q = _run([tools["nvidia-smi"], "--query-gpu=name,driver_version,memory.total,"
                  "clocks.max.sm", "--format=csv,noheader"], timeout=30)
        v["nvidia_smi"] = q
        if q and "," in q:
            v["driver"] = q.splitlines()[0].split(",")[1].strip()
    try:
        import torch

        v["torch"] = torch.__version__
        v["torch_cuda"] = torch.version.cuda
        v["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() \
            else None
        v["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            v["gpu"] = props.name
            v["gpu_count"] = torch.cuda.device_count()
            v["gpu_capability"] = f"{props.major}.{props.minor}"
            v["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            v["gpu_sms"] = props.multi_processor_count
            v["gpu_l2_mib"] = round(getattr(props, "L2_cache_size", 0) / 2**20, 1) or None
    except Exception as exc:  # noqa: BLE001
        out["problems"].append(f"torch does not import: {exc}")
    out["versions"] = v
    # Output folder writable.
    probe = pathlib.Path(outdir) / ".write-probe"
    try:
        probe.write_text("x")
        probe.unlink()
        out["outdir_writable"] = True
    except OSError as exc:
        out["outdir_writable"] = False
        out["problems"].append(f"output folder {outdir} not writable: {exc}")
    # What is required.
    for t in ("nvcc", "cmake", "c++", "timeout"):
        if not tools[t]:
            out["problems"].append(f"{t} not found (the build needs it)")
    if not (tools["ninja"] or tools["make"]):
        out["problems"].append("neither ninja nor make found")
    for name in REQUIRED_MODULES:
        if out["modules"][name].startswith("missing"):
            out["problems"].append(f"python module {name}: {out['modules'][name]}")
    for name in BENCH_MODULES:
        if out["modules"][name].startswith("missing"):
            (out["problems"] if mode == "dry" else out["notes"]).append(
                f"python module {name} missing: benchmark stages cannot run")
    if out["modules"]["matplotlib"].startswith("missing"):
        out["notes"].append("matplotlib missing: the benchmark report is written without plots")
    if not tools["compute-sanitizer"]:
        (out["notes"] if mode == "dry" else out["problems"]).append(
            "compute-sanitizer not found: sanitizer stages " +
            ("would be skipped on the GPU machine" if mode == "dry" else "skipped"))
    if not tools["nvidia-smi"]:
        out["notes"].append("nvidia-smi not found" + (" (expected without a GPU)"
                                                      if mode == "dry" else ""))
    if mode == "gpu" and not v.get("cuda_available"):
        out["problems"].append("torch sees no usable CUDA GPU")
    _write_json(_meta(outdir) / "preflight.json", out)
    print(f"versions: {json.dumps(v)}")
    for k, p in tools.items():
        print(f"  tool {k:18s} {p or 'NOT FOUND'}")
    for k, p in out["modules"].items():
        print(f"  python {k:16s} {p}")
    for n in out["notes"]:
        print(f"  note: {n}")
    for p in out["problems"]:
        print(f"  PROBLEM: {p}")
    return 1 if out["problems"] else 0


def installed(outdir, archs: str, checkout) -> int:
    """The installed convbench, imported from outside the checkout."""
    import convbench

    info = {"file": convbench.__file__, "build_info": convbench.build_info(), "problems": []}
    where = pathlib.Path(convbench.__file__).resolve()
    if pathlib.Path(checkout).resolve() / "python" in where.parents:
        info["problems"].append(f"imported the checkout's {where}, not the installed package "
                                "(PYTHONPATH set?)")
    b = info["build_info"]
    if not b.get("cuda_compiled"):
        info["problems"].append("the installed convbench has no CUDA kernels")
    want = sorted(a.strip() for a in archs.replace(",", ";").split(";") if a.strip())
    got = sorted(a.strip() for a in str(b.get("cuda_architectures") or "").replace(",", ";")
                 .split(";") if a.strip())
    if got != want:
        info["problems"].append(f"compiled for CUDA architectures {got}, asked for {want} "
                                "(a stale CMake cache keeps the old list)")
    info["algorithms_cuda"] = list(convbench.algorithms("cuda"))
    _write_json(_meta(outdir) / "installed.json", info)
    print(f"installed {where}")
    print("build_info:", json.dumps(b))
    for p in info["problems"]:
        print(f"  PROBLEM: {p}")
    return 1 if info["problems"] else 0


# ---------------------------------------------------------------- dry-run checks


_NODE = re.compile(r"^((?:tests|bench)/[\w./-]+\.py)::")


def _collect(args, blocked=(), env_extra=None):
    """(returncode, node ids, output) of pytest --collect-only -q ARGS."""
    cmd = [sys.executable]
    if blocked:
        cmd += [str(ROOT / "tools" / "without_modules.py"), ",".join(blocked)]
    cmd += ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"] + list(args)
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    text = p.stdout + p.stderr
    nodes = [ln.strip() for ln in p.stdout.splitlines() if _NODE.match(ln.strip())]
    return p.returncode, nodes, text


def collect(outdir, files) -> int:
    problems = []
    rc, nodes, text = _collect(["-m", "cuda"] + list(files), blocked=OPTIONAL_EXTRAS,
                               env_extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    if rc not in (0,):
        problems.append(f"collecting {' '.join(files)} without {', '.join(OPTIONAL_EXTRAS)} "
                        f"failed (pytest exit {rc}):\n{text[-3000:]}")
    if not nodes:
        problems.append("no CUDA tests collected")
    # Every `cuda` test there is must be in the files gpu_check.sh runs.
    rc_all, all_nodes, text_all = _collect(["-m", "cuda", "tests"])
    outside = sorted({_NODE.match(n).group(1) for n in all_nodes} - set(files))
    if rc_all != 0:
        problems.append(f"collecting -m cuda tests/ here failed (exit {rc_all}):\n"
                        f"{text_all[-2000:]}")
    if outside:
        problems.append(f"`cuda` tests in files gpu_check.sh does not run: {outside}")
    per_file = {f: sum(1 for n in nodes if n.startswith(f + "::")) for f in files}
    out = {"files": list(files), "collected": len(nodes), "per_file": per_file,
           "blocked": list(OPTIONAL_EXTRAS), "all_cuda_tests_here": len(all_nodes),
           "problems": problems}
    _write_json(_meta(outdir) / "collect.json", out)
    print(f"collected {len(nodes)} CUDA tests in {len(files)} files "
          f"({', '.join(f'{k}: {v}' for k, v in per_file.items())}) with "
          f"{', '.join(OPTIONAL_EXTRAS)} unimportable; {len(all_nodes)} `cuda` tests in tests/")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


def bench_plan(outdir) -> int:
    """Rows per GPU stage from one in-process collection of bench/."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_stages
    import pytest

    counts = {name: 0 for name in gpu_stages.NAMES}
    seen = {"items": 0}

    class Plugin:
        def pytest_collection_finish(self, session):
            seen["items"] = len(session.items)
            for item in session.items:
                key = gpu_stages.row_key(item)
                stage = gpu_stages.stage_of(key) if key else None
                if stage:
                    counts[stage] += 1

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        rc = pytest.main(["bench/", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         plugins=[Plugin()])
    finally:
        os.chdir(old)
    problems = []
    if rc != 0:
        problems.append(f"collecting bench/ failed (pytest exit {rc})")
    first = gpu_stages.NAMES[0]
    if not counts[first]:
        problems.append(f"no rows in the first benchmark stage {first}")
    # The options the GPU run passes, through pytest's own command line.
    rc1, nodes, text = _collect(["bench/", "--cb-stage", first, "--cb-roofline", "cuda",
                                 "--cb-gpu-time", "graph", "--cb-budget", "0.05"])
    if rc1 != 0 or len(nodes) != counts[first]:
        problems.append(f"pytest bench/ --cb-stage {first} collected {len(nodes)} rows (exit "
                        f"{rc1}), expected {counts[first]}:\n{text[-2000:]}")
    out = {"stages": counts, "rows_collected": seen["items"], "problems": problems}
    _write_json(_meta(outdir) / "bench_plan.json", out)
    print("benchmark stages (CUDA rows): "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; {seen['items']} rows collected in all")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


# ---------------------------------------------------------------- summary


def parse_junit(path):
    """Test counts from a pytest junit XML: {passed, failed, errors, skipped,
    total, interrupted, failures: [names]}; None when the file is missing or
    unreadable. A run stopped by SIGINT (its time limit) leaves the test it
    was in as an empty <testcase/>: counted as interrupted, not passed."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "interrupted": 0,
              "failures": []}
    for case in root.iter("testcase"):
        if not case.get("name"):
            counts["interrupted"] += 1
            continue
        tags = {child.tag for child in case}
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if "error" in tags:
            counts["errors"] += 1
            counts["failures"].append(name + " (error)")
        elif "failure" in tags:
            counts["failed"] += 1
            counts["failures"].append(name)
        elif "skipped" in tags:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    counts["total"] = counts["passed"] + counts["failed"] + counts["errors"] + counts["skipped"]
    return counts


_ERR = re.compile(r"ERROR SUMMARY:\s*(\d+)\s+errors?")
_RACE = re.compile(r"RACECHECK SUMMARY:\s*(\d+)\s+hazards?\s+displayed\s*\((\d+)\s+errors?,"
                   r"\s*(\d+)\s+warnings?\)")
_CASES = re.compile(r"SANITIZE CASES:\s*(\d+) of (\d+) run, (\d+) wrong")


def sanitizer_result(text: str) -> dict:
    """Errors a compute-sanitizer log reports: {errors, warnings, complete,
    cases_run, cases_total, cases_wrong, stopped_by_budget}. errors is None
    when the log has no summary line (the run was cut short or crashed):
    that is not a clean run."""
    race = _RACE.findall(text)
    errs = _ERR.findall(text)
    out = {"errors": None, "warnings": None, "complete": bool(race or errs)}
    if race:
        out["errors"] = sum(int(e) for _, e, _ in race)
        out["warnings"] = sum(int(w) for _, _, w in race)
    elif errs:
        out["errors"] = sum(int(e) for e in errs)
    m = _CASES.search(text)
    out["cases_run"], out["cases_total"], out["cases_wrong"] = (
        (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (None, None, None))
    out["stopped_by_budget"] = "STOPPED BY BUDGET" in text
    return out


def read_stages(path):
    """stages.tsv (name, status, seconds, limit, detail per line) as dicts, in order;
    a stage listed twice keeps its last line."""
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or not parts[0]:
                    continue
                parts += [""] * (5 - len(parts))
                rows[parts[0]] = {"name": parts[0], "status": parts[1], "seconds": parts[2],
                                  "limit": parts[3], "detail": parts[4]}
    except OSError:
        pass
    return list(rows.values())


_STATUS_TEXT = {"ok": "ok", "failed": "**FAILED**", "timed-out": "**TIMED OUT**",
                "skipped": "skipped"}


def _fmt_count(v):
    return "–" if v is None else str(v)


def gather(outdir, dry_run: bool) -> dict:
    """Everything the summary shows, from the files in outdir."""
    out = pathlib.Path(outdir)
    meta = out / "meta"
    data = {"dry_run": dry_run, "outdir": str(out),
            "stages": read_stages(out / "stages.tsv"),
            "run": _read_json(meta / "run.json") or {},
            "preflight": _read_json(meta / "preflight.json") or {},
            "installed": _read_json(meta / "installed.json") or {},
            "collect": _read_json(meta / "collect.json"),
            "bench_plan": _read_json(meta / "bench_plan.json"),
            "tests": parse_junit(out / "pytest_cuda.xml"),
            "sanitizers": {}, "bench": []}
    for tool in SANITIZER_TOOLS:
        log = out / f"sanitizer_{tool}.log"
        if log.exists():
            data["sanitizers"][tool] = dict(sanitizer_result(log.read_text(errors="replace")),
                                            log=log.name)
    table = out / "layers.md"
    data["layers_md"] = table.read_text() if table.exists() else None
    data["layers"] = _read_json(out / "layers.json")
    tuning = out / "tuning.md"
    data["tuning_md"] = tuning.read_text() if tuning.exists() else None
    for j in sorted((out / "bench").glob("BENCH_*.json")) if (out / "bench").is_dir() else []:
        if j.name == "BENCH_merged.json":
            continue
        d = _read_json(j)  # None: empty (pytest-benchmark creates it up front) or cut
        data["bench"].append({"file": f"bench/{j.name}", "stage": j.stem[len("BENCH_"):],
                              "rows": len(d["benchmarks"]) if d else 0})
    data["bench_report"] = (out / "bench" / "results.md").exists()
    return data


def render(data: dict) -> str:
    """SUMMARY.md."""
    dry = data["dry_run"]
    run = data["run"]
    pre = data["preflight"]
    v = pre.get("versions", {})
    inst = data["installed"].get("build_info", {}) if data["installed"] else {}
    stages = data["stages"]
    by = {s["name"]: s for s in stages}
    planned = list(run.get("planned") or (DRY_STAGES if dry else GPU_STAGES))
    # A benchmark stage cut by the budget is the design (the rows it finished are
    # in its JSON); any other stage cut short, or failed, fails the check.
    bad = [s for s in stages if s["status"] == "failed" or (
        s["status"] == "timed-out" and not s["name"].startswith("bench-"))]
    missing = [n for n in planned if n not in by]
    overall = "ok" if not bad and not missing else "**FAILED**" if bad else "**INCOMPLETE**"
    cut = [s["name"] for s in stages if s["name"].startswith("bench-")
           and s["status"] in ("timed-out", "skipped")]
    if cut and overall == "ok":
        overall += f" (benchmark stages cut by the budget: {', '.join(cut)})"
    title = "dry run (no GPU: builds, collects and checks what the GPU run needs)" if dry \
        else "GPU run"
    lines = [f"# convbench GPU check: {title}", "",
             f"- When: {run.get('started', '?')} (UTC); total {run.get('elapsed', '?')} s of a "
             f"{run.get('budget', '?')} s budget; overall: {overall}",
             f"- Commit: `{run.get('commit', '?')}`" + (" (uncommitted changes)"
                                                         if run.get("dirty") else ""),
             f"- Command: `{run.get('command', 'tools/gpu_check.sh')}`", ""]
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    gpu = v.get("gpu")
    if gpu:
        gpu += (f" (sm {v.get('gpu_capability')}, {v.get('gpu_memory_gib')} GiB, "
                f"{v.get('gpu_sms')} SMs, L2 {v.get('gpu_l2_mib')} MiB)")
        if (v.get("gpu_count") or 1) > 1:
            gpu += f", {v['gpu_count']} devices"
    rows = [("GPU", gpu or "none visible" + (" (dry run)" if dry else "")),
            ("driver", v.get("driver") or inst.get("cuda_driver") or "–"),
            ("CUDA runtime: torch", v.get("torch_cuda") or "–"),
            ("CUDA runtime: convbench build", inst.get("cuda_runtime") or "–"),
            ("nvcc", v.get("nvcc") or "–"),
            ("torch", v.get("torch") or "–"),
            ("cuDNN", v.get("cudnn") or "–"),
            ("compute-sanitizer", v.get("compute_sanitizer") or "not found"),
            ("Python / CPU cores", f"{v.get('python', '?')} / {v.get('cpu_count', '?')}")]
    lines += [f"| {k} | {val} |" for k, val in rows] + [""]
    notes = pre.get("notes", []) + pre.get("problems", [])
    if notes:
        lines += ["Preflight: " + "; ".join(notes), ""]

    lines += ["## Stages", "", "In order of value; a stage cut by its time limit is **TIMED OUT**, "
              "never a pass.", "", "| stage | status | seconds | limit (s) | details |",
              "| --- | --- | --- | --- | --- |"]
    for name in planned + [s["name"] for s in stages if s["name"] not in planned]:
        s = by.get(name)
        if s is None:
            lines.append(f"| {name} | not reached | | | |")
        else:
            lines.append(f"| {name} | {_STATUS_TEXT.get(s['status'], s['status'])} | "
                         f"{s['seconds']} | {s['limit']} | {s['detail']} |")
    lines.append("")

    b = by.get("build")
    archs = run.get("archs", "90")
    lines += ["## Build", "",
              f"`{BUILD_COMMAND.format(archs=archs)}`: "
              + (f"{_STATUS_TEXT.get(b['status'], b['status'])} in {b['seconds']} s" if b
                 else "not reached")
              + (f"; compiled CUDA architectures {inst.get('cuda_architectures')}, CUDA kernels "
                 f"{'in' if inst.get('cuda_compiled') else '**missing**'}, algorithms "
                 f"{', '.join(data['installed'].get('algorithms_cuda', []))}" if inst else ""),
              ""]
    for p in (data["installed"] or {}).get("problems", []):
        lines += [f"- **PROBLEM**: {p}"]

    t = data["tests"]
    lines += ["## CUDA tests", ""]
    files = run.get("cuda_test_files")
    if files:
        lines += [f"Files: {', '.join(f'`{f}`' for f in files)} (`-m cuda`, by name)", ""]
    if data.get("collect"):
        c = data["collect"]
        lines += [f"Collected without {', '.join(c['blocked'])}: **{c['collected']}** CUDA tests "
                  f"({', '.join(f'{k}: {n}' for k, n in c['per_file'].items())}); "
                  f"`cuda` tests in all of tests/: {c['all_cuda_tests_here']}"]
        lines += [f"- **PROBLEM**: {p.splitlines()[0]}" for p in c["problems"]]
        lines.append("")
    if t:
        lines += ["| passed | failed | errors | skipped | total |", "| --- | --- | --- | --- | --- |",
                  f"| {t['passed']} | {t['failed']} | {t['errors']} | {t['skipped']} | "
                  f"{t['total']} |", ""]
        if t["interrupted"]:
            lines += [f"**Interrupted** (time limit) during a test: the counts cover the tests "
                      f"that finished before it.", ""]
        if dry:
            lines += ["(Dry run: every CUDA test skips here, no GPU; this exercises the command "
                      "and the junit XML.)", ""]
        for name in t["failures"][:30]:
            lines.append(f"- failed: `{name}`")
        if len(t["failures"]) > 30:
            lines.append(f"- ... and {len(t['failures']) - 30} more (pytest_cuda.xml)")
        if t["failures"]:
            lines.append("")
    else:
        lines += ["No junit XML (pytest_cuda.xml): the tests did not run or were killed.", ""]

    lines += ["## compute-sanitizer", "",
              "`PYTORCH_NO_CUDA_MEMORY_CACHING=1`, on tools/gpu_sanitize_cases.py (one case per "
              "kernel family, pass and dtype); full logs beside this file.", "",
              "| tool | errors | status | cases run | log |", "| --- | --- | --- | --- | --- |"]
    for tool in SANITIZER_TOOLS:
        r = data["sanitizers"].get(tool)
        s = by.get(f"sanitizer-{tool}")
        status = _STATUS_TEXT.get(s["status"], s["status"]) if s else (
            "not run (dry run)" if dry else "not reached")
        if r is None:
            lines.append(f"| {tool} | – | {status} | | |")
            continue
        errors = _fmt_count(r["errors"]) if r["complete"] else "unknown (no summary line)"
        if r.get("warnings"):
            errors += f" ({r['warnings']} warnings)"
        cases = (f"{r['cases_run']} of {r['cases_total']}"
                 + (f", {r['cases_wrong']} wrong" if r["cases_wrong"] else "")
                 + (" (budget)" if r["stopped_by_budget"] else "")) if r["cases_run"] is not None \
            else "–"
        lines.append(f"| {tool} | {errors} | {status} | {cases} | [{r['log']}]({r['log']}) |")
    plan = by.get("sanitizer-cases-plan")
    if plan:
        lines.append(f"\nCases planned: {plan['detail']}")
    lines.append("")

    lines += ["## Per-layer table: ours vs cuDNN (cuDNN time / ours)", ""]
    if data["layers_md"]:
        body = data["layers_md"].splitlines()
        if body and body[0].startswith("# "):
            body[0] = "###" + body[0][1:]
        lines += body + [""]
    else:
        lp = by.get("layer-table-plan")
        lines += [("Plan: " + lp["detail"]) if lp else "Not written (layer-table stage not "
                  "reached or failed before its first layer).", ""]

    lines += ["## Tuning sweep: every CUDA kernel configuration", ""]
    if data.get("tuning_md"):
        notes = [l for l in data["tuning_md"].splitlines()
                 if l.startswith("- ") or l.startswith("**Stopped")]
        lines += notes + ["", "Every layer and configuration: [tuning.md](tuning.md) "
                          "(and tuning.json).", ""]
    else:
        tp = by.get("tuning-sweep-plan")
        lines += [("Plan: " + tp["detail"]) if tp else "Not written (tuning-sweep stage not "
                  "reached or failed before its first layer).", ""]

    lines += ["## Benchmarks (budgeted selection, one JSON per stage)", ""]
    bp = data.get("bench_plan")
    if bp:
        lines += ["Rows per stage (collected): "
                  + ", ".join(f"{k} {n}" for k, n in bp["stages"].items()), ""]
    if data["bench"]:
        lines += ["| stage | rows | JSON |", "| --- | --- | --- |"]
        for e in data["bench"]:
            lines.append(f"| {e['stage']} | {_fmt_count(e['rows'])} | [{e['file']}]({e['file']}) |")
        lines.append("")
        if data["bench_report"]:
            lines += ["Report of all stages: [bench/results.md](bench/results.md)", ""]
    elif not dry:
        lines += ["No benchmark JSON (no time left, or no stage finished a row).", ""]
    return "\n".join(lines)


def summary(outdir, dry_run: bool) -> int:
    text = render(gather(outdir, dry_run))
    path = pathlib.Path(outdir) / "SUMMARY.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return 0


# ---------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("preflight")
    p.add_argument("outdir")
    p.add_argument("--mode", choices=("gpu", "dry"), required=True)
    p = sub.add_parser("installed")
    p.add_argument("outdir")
    p.add_argument("--archs", required=True)
    p.add_argument("--checkout", default=str(ROOT))
    p = sub.add_parser("cuda-test-files")
    p.add_argument("root", nargs="?", default=str(ROOT))
    p = sub.add_parser("collect")
    p.add_argument("outdir")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("bench-plan")
    p.add_argument("outdir")
    p = sub.add_parser("run-info")
    p.add_argument("outdir")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("summary")
    p.add_argument("outdir")
    p.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "preflight":
        return preflight(a.outdir, a.mode)
    if a.cmd == "installed":
        return installed(a.outdir, a.archs, a.checkout)
    if a.cmd == "cuda-test-files":
        print(" ".join(cuda_test_files(a.root)))
        return 0
    if a.cmd == "collect":
        return collect(a.outdir, a.files)
    if a.cmd == "bench-plan":
        return bench_plan(a.outdir)
    if a.cmd == "run-info":
        return run_info(a.outdir, a.set)
    return summary(a.outdir, a.dry_run)


def run_info(outdir, pairs) -> int:
    """Merge KEY=VALUE pairs (JSON values where they parse) into meta/run.json."""
    path = _meta(outdir) / "run.json"
    info = _read_json(path) or {}
    if "started" not in info:
        info["started"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    for pair in pairs:
        k, _, val = pair.partition("=")
        try:
            info[k] = json.loads(val)
        except ValueError:
            info[k] = val
    _write_json(path, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
