"""The GPU check's small checks, each a subcommand (stages in plan.py):

    python -m gpucheck.checks preflight OUTDIR --mode gpu|dry
        tools, Python modules, versions, output dir; writes OUTDIR/meta/preflight.json
    python -m gpucheck.checks installed OUTDIR --archs 90 --checkout ROOT
        the installed convbench (run from outside the checkout): CUDA compiled in,
        for exactly the architectures asked; writes OUTDIR/meta/installed.json
    python -m gpucheck.checks cuda-test-files [ROOT]
        the test files holding tests marked `cuda` (run by name, not `-m cuda tests/`)
    python -m gpucheck.checks collect OUTDIR FILE...
        (dry run) collects the CUDA tests of FILE... without the optional extras, as
        on the GPU machine, and checks that they are all the `cuda` tests there are
    python -m gpucheck.checks bench-plan OUTDIR
        (dry run) the benchmark rows of each GPU stage (bench/gpu_stages.py)
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

from gpucheck.sanitizer import filter_options, find_tool, help_text

ROOT = pathlib.Path(__file__).resolve().parents[2]
# What the GPU machine has besides the standard library (issue 10).
GPU_MACHINE_MODULES = ("torch", "pybind11", "scikit_build_core", "pytest", "pytest_benchmark")
# Optional extras some test files import; blocked when the dry run collects.
OPTIONAL_EXTRAS = ("hypothesis", "matplotlib", "mlxtend", "PIL", "scipy", "sklearn", "pandas")
REQUIRED_MODULES = ("torch", "numpy", "pytest", "pybind11", "scikit_build_core")
BENCH_MODULES = ("pytest_benchmark", "cpuinfo")


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
            "compute-sanitizer not found: the sanitizer stages " +
            ("would fail on the GPU machine (they would check nothing)" if mode == "dry"
             else "fail (they check nothing)"))
    else:
        opts, notes = filter_options(help_text(tools["compute-sanitizer"]))
        v["sanitizer_options"] = " ".join(opts)
        out["notes"] += notes
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
    return bench_plan(a.outdir)


if __name__ == "__main__":
    sys.exit(main())
