"""The compute-sanitizer command line: where the tool is, and the options
that keep its reports to convbench's own kernels. Without a filter, errors
from torch's or the driver's own probing (API errors, their kernels) count
in ERROR SUMMARY and fail a stage that found nothing wrong in ours."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

# Every convbench kernel lives in namespace convbench, so its mangled name
# holds this substring (kns: kernel name substring).
KERNEL_SUBSTRING = "convbench"
TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")


def find_tool(name: str):
    """An executable on PATH or in a CUDA toolkit's bin (or compute-sanitizer) folder."""
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


def help_text(sanitizer) -> str:
    try:
        p = subprocess.run([sanitizer, "--help"], capture_output=True, text=True, timeout=60)
        return p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def filter_options(help_: str):
    """(options, notes): the kernel filter and API-error switch this version
    knows (--kernel-name in newer releases, --kernel-regex before)."""
    opts, notes = [], []
    if "--kernel-name" in help_:
        opts += ["--kernel-name", f"kns={KERNEL_SUBSTRING}"]
    elif "--kernel-regex" in help_:
        opts += ["--kernel-regex", f"kns={KERNEL_SUBSTRING}"]
    else:
        notes.append("this compute-sanitizer has no kernel filter: every kernel is checked")
    if "--report-api-errors" in help_:
        opts += ["--report-api-errors", "no"]
    else:
        notes.append("this compute-sanitizer cannot turn API-error reports off")
    return opts, notes


def command(sanitizer, tool: str, help_: str):
    """The argv prefix that runs a program under `tool`, and notes."""
    opts, notes = filter_options(help_)
    return [sanitizer, "--tool", tool, "--error-exitcode", "17"] + opts, notes
