"""The dry run's check of the archive (no GPU needed):

1. this run's archive, as written before this stage, holds SUMMARY.md,
   stages.tsv with a line for every stage that ran, meta/run.json and every
   finished stage's log;
2. a simulated kill: a second runner on a plan of its own (plan.SELFTEST_STAGES:
   one stage that finishes, one that writes a partial result and hangs) is
   killed with SIGKILL, runner and stage alike, in the middle of its second
   stage; its archive must still open and hold the first stage's result, the
   partial result and a SUMMARY.md that names the stage that was running.

    python -m gpucheck.selftest OUTDIR --archive FILE
"""
from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from gpucheck import archive as arc
from gpucheck import plan as pl
from gpucheck import summary


def check_archive(path, outdir, problems) -> list:
    """The archive's members against the stages outdir's stages.tsv lists."""
    try:
        got = arc.members(path)
    except Exception as exc:  # noqa: BLE001 - unreadable is the failure reported
        problems.append(f"the archive {path} does not open: {exc}")
        return []
    for need in ("SUMMARY.md", "stages.tsv", "meta/run.json", "gpu_check.log"):
        if need not in got:
            problems.append(f"the archive lacks {need}")
    rows = summary.read_stages(pathlib.Path(outdir) / "stages.tsv")
    stages = {s.name: s for s in pl.DRY_STAGES}
    archived = {line.split("\t")[0] for line in got.get("stages.tsv", b"").decode().splitlines()}
    for r in rows:
        if r["status"] == "running":
            continue  # (this stage)
        if r["name"] not in archived:
            problems.append(f"the archive's stages.tsv lacks stage {r['name']}")
        st = stages.get(r["name"])
        if st and r["status"] != "skipped":
            rel = st.log_path(outdir).relative_to(outdir).as_posix()
            if rel not in got:
                problems.append(f"the archive lacks {rel} (stage {r['name']})")
    return sorted(got)


def kill_simulation(problems) -> str:
    with tempfile.TemporaryDirectory(prefix="gpucheck-kill-") as tmp:
        out, archive = pathlib.Path(tmp) / "results", pathlib.Path(tmp) / "results.tar.gz"
        env = dict(os.environ, PYTHONPATH=str(pl.ROOT / "tools"))
        cmd = [sys.executable, "-m", "gpucheck.runner", str(out), "--plan", "selftest",
               "--budget", "120", "--archive", str(archive), "--archive-every", "0.5"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            seen, t0 = False, time.monotonic()
            while time.monotonic() - t0 < 60 and proc.poll() is None:
                time.sleep(0.2)
                try:
                    if "partial.txt" in arc.members(archive):
                        seen = True
                        break
                except Exception:  # noqa: BLE001 - not written yet, or being replaced
                    continue
            if not seen:
                problems.append("the simulated run never archived its partial result")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # runner, archiver and stage: no goodbye
            proc.wait()
        try:
            got = arc.members(archive)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"after the kill the archive does not open: {exc}")
            return "kill simulation: FAILED"
        tsv = got.get("stages.tsv", b"").decode()
        text = got.get("SUMMARY.md", b"").decode()
        for ok, what in (("quick\tok" in tsv, "the finished stage's ok line"),
                         ("slow\trunning" in tsv, "the running stage's line"),
                         (b"written before the kill" in got.get("partial.txt", b""),
                          "the cut stage's partial result"),
                         ("logs/quick.log" in got, "the finished stage's log"),
                         ("| slow | **running**" in text, "a SUMMARY naming the running stage"),
                         ("| after | not reached |" in text, "a SUMMARY naming what never ran")):
            if not ok:
                problems.append(f"after the kill the archive lacks {what}")
        return f"kill simulation: the archive survived a SIGKILL mid-stage ({len(got)} files)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--archive", required=True)
    a = ap.parse_args(argv)
    problems = []
    names = check_archive(a.archive, a.outdir, problems)
    print(f"this run's archive: {len(names)} files: {', '.join(names[:40])}"
          + (" ..." if len(names) > 40 else ""))
    print(kill_simulation(problems))
    for p in problems:
        print(f"  PROBLEM: {p}")
    print("archive selftest: " + ("ok" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
