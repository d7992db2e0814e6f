"""Runs a plan's stages (plan.py) within one budget, each in its own process
group with a deadline and a hard limit; records each stage (stages.tsv:
running at its start, its verdict at its end), rewrites SUMMARY.md and the
archive around every stage and every few seconds during one, and exits
0 (all ok), 1 (a stage failed) or 3 (incomplete: something not checked).

    python -m gpucheck.runner [OUTDIR] [--dry-run] [--archive FILE] [--commit SHA]
                              [--budget S]   (tools/gpu_check.sh is the front door)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from gpucheck import archive as arc
from gpucheck import checks
from gpucheck import plan as pl
from gpucheck import sanitizer as san
from gpucheck import summary
from gpucheck import verdicts as v

RESERVE = 10.0      # seconds kept for the last summary and archive
MIN_STAGE = 5.0     # a stage with less time than this is skipped
KILL_AFTER = 3.0    # SIGINT this long before the hard limit, SIGKILL at it


class Interrupted(Exception):
    """The check itself got a signal (its caller's time ran out)."""


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _grace(limit: float) -> float:
    """Seconds between a tool's own deadline and its hard limit."""
    return min(15.0, max(KILL_AFTER + 1.0, 0.1 * limit))


def commit_of(root, given):
    """(commit, dirty): as given (--commit / CONVBENCH_COMMIT), else git's,
    else 'unknown' (a copied tree has no .git; the build records it too)."""
    if given:
        return given, None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if rev.returncode == 0:
            st = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=10)
            return rev.stdout.strip(), bool(st.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown", None


class Run:
    def __init__(self, ctx: pl.Ctx, stages, budget: float, archiver: arc.Archiver):
        self.ctx, self.stages, self.budget, self.archiver = ctx, stages, budget, archiver
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget - RESERVE
        self.status = {}
        self.console = open(ctx.outdir / "gpu_check.log", "ab", buffering=0)

    def say(self, text: str) -> None:
        data = (text + "\n").encode()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        self.console.write(data)

    def record(self, name, status, seconds, limit, detail) -> None:
        detail = " ".join(str(detail).split())[:400]
        with open(self.ctx.outdir / "stages.tsv", "a") as f:
            f.write(f"{name}\t{status}\t{seconds:.0f}\t{limit:.0f}\t{detail}\n")
        self.status[name] = status

    def checkpoint(self) -> None:
        try:
            summary.write(self.ctx.outdir)
        except Exception as exc:  # noqa: BLE001 - the archive must still be written
            self.say(f"gpu_check: the SUMMARY writer failed: {type(exc).__name__}: {exc}")
        self.archiver.now()

    def _env(self, stage) -> dict:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # test the installed package, never python/
        env["PYTHONPATH"] = str(self.ctx.root / "tools")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(stage.env(self.ctx))
        return env

    def _tee(self, pipe, log) -> None:
        with open(log, "ab", buffering=0) as f:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                f.write(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                self.console.write(chunk)

    def execute(self, stage, argv, limit: float):
        """(rc, seconds, cut): argv run until it exits or its hard limit."""
        log = stage.log_path(self.ctx.outdir)
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=stage.cwd or str(self.ctx.root), env=self._env(stage),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        reader = threading.Thread(target=self._tee, args=(proc.stdout, log), daemon=True)
        reader.start()
        cut = False
        try:
            try:
                proc.wait(timeout=max(0.0, limit - KILL_AFTER))
            except subprocess.TimeoutExpired:
                cut = True
                self._signal(proc, signal.SIGINT)
                try:
                    proc.wait(timeout=KILL_AFTER)
                except subprocess.TimeoutExpired:
                    self._signal(proc, signal.SIGKILL)
                    proc.wait()
        except Interrupted:
            self._signal(proc, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            reader.join(timeout=5)
        return proc.returncode, time.monotonic() - start, cut

    @staticmethod
    def _signal(proc, sig) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def run_stage(self, i: int) -> None:
        stage = self.stages[i]
        left = self.deadline - time.monotonic()
        lim = pl.limit(self.stages, i, left, self.budget - RESERVE)
        missing = [n for n in stage.needs if self.status.get(n) not in ("ok", "partial")]
        if missing:
            self.record(stage.name, "skipped", 0, max(lim, 0),
                        f"not run: needs {', '.join(missing)}, which did not pass")
            return
        if lim < MIN_STAGE:
            self.record(stage.name, "skipped", 0, max(lim, 0),
                        f"not run: {lim:.0f} s left for it in the {self.budget:.0f} s budget")
            return
        deadline = time.time() + lim - _grace(lim)
        argv = stage.argv(self.ctx, deadline)
        if isinstance(argv, str):
            self.record(stage.name, "failed", 0, lim, f"cannot run: {argv}")
            return
        self.say(f"\n=== {stage.name} (limit {lim:.0f} s, {self.deadline - time.monotonic():.0f} s "
                 f"left; {dt.datetime.now(dt.timezone.utc):%H:%M:%S} UTC)")
        self.record(stage.name, "running", 0, lim, "started; cut while running if the run ends here")
        self.checkpoint()
        try:
            rc, secs, cut = self.execute(stage, argv, lim)
        except Interrupted as exc:
            self.record(stage.name, "failed", time.monotonic() - self.t0, lim,
                        f"the check itself was interrupted ({exc}) during this stage")
            raise
        outcome = v.Outcome(rc, secs, lim, cut, stage.log_path(self.ctx.outdir))
        try:
            status, detail = stage.verdict(outcome, self.ctx.outdir)
        except Exception as exc:  # noqa: BLE001 - a broken verdict is a failed stage
            status, detail = "failed", f"verdict raised {type(exc).__name__}: {exc}"
        self.record(stage.name, status, secs, lim, detail)
        self.say(f"--- {stage.name}: {status} ({secs:.0f} s): {detail}")
        self.checkpoint()

    def run(self) -> int:
        self.archiver.start()
        try:
            for i in range(len(self.stages)):
                self.run_stage(i)
        except Interrupted as exc:
            self.say(f"gpu_check: interrupted ({exc}); writing what there is")
        finally:
            self.archiver.stop()
            checks.run_info(self.ctx.outdir, [f"elapsed={time.monotonic() - self.t0:.0f}"])
            self.checkpoint()
        text = (self.ctx.outdir / "SUMMARY.md").read_text()
        word, code = summary.overall([s.name for s in self.stages],
                                     summary.read_stages(self.ctx.outdir / "stages.tsv"))
        self.say("\n" + text)
        if self.archiver.errors:
            self.say("gpu_check: archive errors: " + "; ".join(self.archiver.errors[-3:]))
            code = code or 1
        where = f"results in {self.ctx.outdir}" + (f", archive {self.ctx.archive}"
                                                    if self.ctx.archive else "")
        self.say(f"gpu_check: {word.strip('*')} ({where})")
        return code


def _default_outdir(root, mode) -> pathlib.Path:
    if mode == "dry":
        return root / "build" / "gpu-check-dry-run"
    out = root / "bench" / "results" / f"gpu-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}"
    return out.with_name(out.name + f"-{dt.datetime.now(dt.timezone.utc):%H%M}") if out.exists() \
        else out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/gpu_check.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default=None)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: build and check the plan")
    ap.add_argument("--archive", default=None, help="one .tar.gz of everything, rewritten "
                    "after every stage and every 15 s (default OUTDIR.tar.gz)")
    ap.add_argument("--archive-every", type=float, default=15.0, help=argparse.SUPPRESS)
    ap.add_argument("--commit", default=os.environ.get("CONVBENCH_COMMIT"),
                    help="the commit being checked (the GPU machine's tree has no .git)")
    ap.add_argument("--budget", type=float, default=None, help="seconds in all (default "
                    "CONVBENCH_GPU_BUDGET, else 480; dry run 3600)")
    ap.add_argument("--plan", choices=sorted(pl.PLANS), default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    mode = a.plan or ("dry" if a.dry_run else "gpu")
    root = pl.ROOT
    outdir = pathlib.Path(a.outdir) if a.outdir else _default_outdir(root, mode)
    if mode == "dry" and not a.outdir and outdir.exists():
        import shutil

        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    outdir = outdir.resolve()
    budget = a.budget or float(os.environ.get("CONVBENCH_GPU_BUDGET")
                               or (3600 if mode == "dry" else 480))
    # Default: beside the results folder (the GPU run passes a path under $OUT).
    archive = str(pathlib.Path(a.archive or f"{outdir}.tar.gz").resolve())
    commit, dirty = commit_of(root, a.commit)
    stages = pl.PLANS[mode]
    archs = os.environ.get("CUDAARCHS", "90")
    sanitizer_path = san.find_tool("compute-sanitizer")
    ctx = pl.Ctx(root=root, outdir=outdir, python=sys.executable, archs=archs, mode=mode,
                 commit=commit, archive=archive, sanitizer=sanitizer_path,
                 sanitizer_help=san.help_text(sanitizer_path) if sanitizer_path else "",
                 cuda_test_files=checks.cuda_test_files(root) if mode != "selftest" else ())
    checks.run_info(outdir, [f"budget={budget:.0f}", f"archs={archs}", f"commit={commit}",
                             f"dirty={json.dumps(dirty)}", f"mode={mode}",
                             "command=tools/gpu_check.sh " + " ".join(argv or sys.argv[1:]),
                             f"cuda_test_files={json.dumps(list(ctx.cuda_test_files))}",
                             f"planned={json.dumps([s.name for s in stages])}",
                             f"archive={archive or ''}"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    run = Run(ctx, stages, budget, arc.Archiver(outdir, archive, a.archive_every))
    run.say(f"convbench GPU check ({mode}): budget {budget:.0f} s, CUDAARCHS={archs}, commit "
            f"{commit}, results in {outdir}" + (f", archive {archive}" if archive else ""))
    return run.run()


if __name__ == "__main__":
    sys.exit(main())
