"""The layout-probe stage: build tools/layout_probe/probe.cu for the GPU,
run it, and compare every lane's registers with golden.txt (the PTX ISA's
documented layouts). Independent of the package build, so it runs even when
that failed; a few seconds of nvcc and well under a second on the GPU.

    python -m gpucheck.probe_stage OUTDIR --archs 90 [--deadline EPOCH]
    python -m gpucheck.probe_stage OUTDIR --archs 90 --dry
        no GPU: compiles the probe, checks its PTX has every instruction it is
        meant to test, that its host-computed inputs equal golden.py's, that
        golden.txt is current, and that the comparison finds a planted swap
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBE_DIR = ROOT / "tools" / "layout_probe"
sys.path.insert(0, str(PROBE_DIR))

import compare  # noqa: E402
import golden  # noqa: E402

from gpucheck.sanitizer import find_tool  # noqa: E402

# Every instruction the probe exists to test, as it must appear in its PTX.
PTX_INSTRUCTIONS = (
    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
    "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
    "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
    "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
    "cp.async.cg.shared.global", "cp.async.ca.shared.global",
    "cp.async.commit_group", "cp.async.wait_group",
)


def sm_of(archs: str) -> str:
    """The newest architecture of a CUDAARCHS list ('80-real;90' -> 'sm_90')."""
    found = re.findall(r"(\d+)([a-z]?)", archs)
    if not found:
        raise ValueError(f"no CUDA architecture in {archs!r}")
    num, suffix = max(found, key=lambda m: int(m[0]))
    return f"sm_{num}{suffix}"


def nvcc_cmd(nvcc, sm, out, ptx=False):
    return [nvcc, "-std=c++17", "-O2", f"-arch={sm}", "-I", str(ROOT / "csrc"),
            *(["-ptx"] if ptx else []), str(PROBE_DIR / "probe.cu"), "-o", str(out)]


def _run(cmd, timeout=120):
    print("+ " + " ".join(map(str, cmd)), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.stdout or p.stderr:
        print((p.stdout + p.stderr).rstrip(), flush=True)
    return p


def gpu(outdir, sm, deadline) -> int:
    work = pathlib.Path(outdir) / "layout_probe"
    work.mkdir(parents=True, exist_ok=True)
    nvcc = find_tool("nvcc")
    if not nvcc:
        print("layout probe: nvcc not found")
        return 2
    if _run(nvcc_cmd(nvcc, sm, work / "probe")).returncode != 0:
        print("layout probe: the probe did not compile")
        return 2
    dump = work / "dump.txt"
    p = _run([str(work / "probe"), "-o", str(dump)], timeout=60)
    (work / "probe").unlink(missing_ok=True)  # the binary is no result
    if p.returncode != 0:
        print(f"layout probe: the probe failed (exit {p.returncode})")
        return 2
    return compare.main([str(dump), "--out", str(work)])


def _planted_swap(text: str) -> str:
    """golden.txt with lane 0's d0 and d2 of one probe swapped (a layout bug)."""
    out = []
    for line in text.splitlines():
        probe, lane, slot, value = line.split()
        if probe == "mma.m16n8k16.bf16/full" and lane == "0" and slot in ("d0", "d2"):
            slot = "d2" if slot == "d0" else "d0"
        out.append(f"{probe} {lane} {slot} {value}")
    return "\n".join(out) + "\n"


def dry(outdir, sm) -> int:
    work = pathlib.Path(outdir) / "layout_probe"
    work.mkdir(parents=True, exist_ok=True)
    checked, problems = [], []
    if golden.main(["--check"]) == 0:
        checked.append("golden.txt is current")
    else:
        problems.append("golden.txt is stale")
    nvcc = find_tool("nvcc")
    if not nvcc:
        problems.append("nvcc not found: the probe cannot be built")
    else:
        if _run(nvcc_cmd(nvcc, sm, work / "probe")).returncode != 0:
            problems.append(f"the probe does not compile for {sm}")
        else:
            p = _run([str(work / "probe"), "--inputs", "-o", str(work / "inputs.txt")])
            want = {k: v for k, v in compare.parse(golden.text()).items() if k[2][0] in "abc"}
            got = compare.parse((work / "inputs.txt").read_text()) if p.returncode == 0 else {}
            if got == want:
                checked.append(f"the probe's {len(got)} input registers equal golden.py's")
            else:
                problems.append(f"the probe's inputs differ from golden.py's in "
                                f"{sum(got.get(k) != v for k, v in want.items())} registers")
            (work / "probe").unlink(missing_ok=True)
        if _run(nvcc_cmd(nvcc, sm, work / "probe.ptx", ptx=True)).returncode == 0:
            ptx = (work / "probe.ptx").read_text()
            missing = [i for i in PTX_INSTRUCTIONS if i not in ptx]
            if missing:
                problems.append("the probe's PTX lacks " + ", ".join(missing))
            else:
                checked.append(f"its {sm} PTX has all {len(PTX_INSTRUCTIONS)} instructions")
        else:
            problems.append("the probe's PTX does not build")
    gold = compare.parse(golden.text())
    if compare.compare(gold, gold)[2] and not compare.compare(gold, compare.parse(
            _planted_swap(golden.text())))[2]:
        checked.append("the comparison passes golden and catches a planted swap")
    else:
        problems.append("the comparison does not tell golden from a planted swap")
    (work / "dry.json").write_text(json.dumps({"checked": checked, "problems": problems},
                                              indent=1))
    for c in checked:
        print(f"  checked: {c}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--archs", default="90")
    ap.add_argument("--deadline", type=float, default=None)
    ap.add_argument("--dry", action="store_true")
    a = ap.parse_args(argv)
    sm = sm_of(a.archs)
    return dry(a.outdir, sm) if a.dry else gpu(a.outdir, sm, a.deadline)


if __name__ == "__main__":
    sys.exit(main())
