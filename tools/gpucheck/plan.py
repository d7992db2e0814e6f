"""The stages of the GPU check, in order of value, each with its share of
the budget; and the rule that gives each stage its time limit.

Shares sum to at most 1 of the budget (less the reserve for the last summary
and archive), and a stage may use its share plus whatever earlier stages
left unused, minus the shares of the stages after it: so every stage gets at
least its share whatever came before (the budget fits by construction), and
time saved early flows to the next stage that needs it. Stages that must not
absorb that slack have a max_s. A tool gets a deadline a few seconds before
its hard limit and stops itself there (no new test, case, cell or row after
it); the hard limit (SIGINT, then SIGKILL) is a backstop that fails the stage.

What each stage promises (verdicts.py checks it):
  preflight      tools, modules, versions, writable output (exit status)
  build          README's build command (exit status)
  installed      the installed package has CUDA for the asked architectures
  layout-probe   every mma/ldmatrix/cp.async register matches golden.txt (at most 30 s)
  cuda-tests     CUDA tests ran (> 0), none failed, none skipped for want of a GPU
  memcheck       0 errors on our kernels; every family x pass x dtype ran
  layer-table    every homework layer and pass, ours vs cuDNN, float32; then TF32 and half
  racecheck, synccheck, initcheck   as memcheck
  tuning-sweep   every remaining kernel configuration (the table's cells are reused)
  bench          the first benchmark stage complete; later ones as far as time goes
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Callable, Optional, Sequence, Union


from gpucheck import sanitizer as san
from gpucheck import verdicts as v

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Ctx:
    """What the stage commands need to know about this run."""
    root: pathlib.Path
    outdir: pathlib.Path
    python: str
    archs: str
    mode: str                  # gpu | dry | selftest
    commit: str
    archive: Optional[str] = None
    sanitizer: Optional[str] = None
    sanitizer_help: str = ""
    cuda_test_files: Sequence[str] = ()

    def mod(self, name, *args):
        return [self.python, "-m", f"gpucheck.{name}", *map(str, args)]


Argv = Union[list, str]  # a command, or why it cannot run (the stage then fails)


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    share: float
    argv: Callable[[Ctx, float], Argv]        # given the tool's deadline (epoch s)
    verdict: Callable[[v.Outcome, pathlib.Path], tuple]
    log: str = ""                             # default logs/<name>.log
    needs: tuple = ()                         # stages that must have run (ok or partial)
    env: Callable[[Ctx], dict] = lambda ctx: {}
    cwd: Optional[str] = None                 # default the checkout
    max_s: Optional[float] = None

    def log_path(self, outdir) -> pathlib.Path:
        return pathlib.Path(outdir) / (self.log or f"logs/{self.name}.log")


def _build(ctx, deadline):
    return [ctx.python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", str(ctx.root)]


def _build_env(ctx):
    # README's command; its surroundings pinned: no index (no network), all
    # cores, a build folder of its own (an old CMake cache keeps old archs),
    # and the commit, which the module records (the machine has no .git).
    import os

    return {"CONVBENCH_CUDA": "ON", "CUDAARCHS": ctx.archs, "CONVBENCH_COMMIT": ctx.commit,
            "PIP_NO_INDEX": "1", "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 4),
            "SKBUILD_BUILD_DIR": "build/gpu-check-sm" + "".join(
                c if c.isalnum() else "_" for c in ctx.archs)}


def _pytest_cuda(ctx, deadline):
    if not ctx.cuda_test_files:
        return "no test file holds a `cuda` test"
    return [ctx.python, "-m", "pytest", "-m", "cuda", *ctx.cuda_test_files, "-q",
            "-p", "no:cacheprovider", "-rfEs", f"--junitxml={ctx.outdir / 'pytest_cuda.xml'}",
            "-p", "gpucheck.deadline_plugin", "--gc-deadline", f"{deadline:.0f}"]


def _sanitize(tool):
    def argv(ctx, deadline):
        if not ctx.sanitizer:
            return "compute-sanitizer not found"
        prefix, _ = san.command(ctx.sanitizer, tool, ctx.sanitizer_help)
        return prefix + ctx.mod("sanitize_cases", "--deadline", f"{deadline:.0f}")
    return argv


def _no_cache(ctx):
    # Every tensor its own allocation: an overrun cannot land unseen in a cached neighbour.
    return {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}


def _sanitizer_stage(tool, share):
    return Stage(tool, share, _sanitize(tool), v.sanitizer, log=f"sanitizer_{tool}.log",
                 needs=("installed",), env=_no_cache)


def _table(part):
    return lambda o, out: v.conv_cells(o, out, part)


GPU_STAGES = (
    Stage("preflight", 0.02, lambda c, d: c.mod("checks", "preflight", c.outdir, "--mode", "gpu"),
          v.exit_status, max_s=60),
    Stage("build", 0.27, _build, v.exit_status, env=_build_env),
    Stage("installed", 0.02, lambda c, d: c.mod("checks", "installed", c.outdir, "--archs",
                                                c.archs, "--checkout", c.root),
          v.exit_status, needs=("build",), cwd="/tmp", max_s=60),
    Stage("layout-probe", 0.06, lambda c, d: c.mod("probe_stage", c.outdir, "--archs", c.archs,
                                                   "--deadline", f"{d:.0f}"),
          v.layout_probe, max_s=30),
    Stage("cuda-tests", 0.17, _pytest_cuda, v.cuda_tests, needs=("installed",)),
    _sanitizer_stage("memcheck", 0.08),
    Stage("layer-table", 0.12, lambda c, d: c.mod("conv_cells", "table", c.outdir, "--deadline",
                                                  f"{d:.0f}"),
          _table("table"), needs=("installed",)),
    _sanitizer_stage("racecheck", 0.05),
    _sanitizer_stage("synccheck", 0.03),
    _sanitizer_stage("initcheck", 0.03),
    Stage("tuning-sweep", 0.05, lambda c, d: c.mod("conv_cells", "sweep", c.outdir, "--deadline",
                                                   f"{d:.0f}"),
          _table("sweep"), needs=("installed",)),
    Stage("bench", 0.10, lambda c, d: c.mod("bench_stages", c.outdir, "--deadline", f"{d:.0f}"),
          v.bench, needs=("installed",)),
)

DRY_STAGES = (
    Stage("preflight", 0.02, lambda c, d: c.mod("checks", "preflight", c.outdir, "--mode", "dry"),
          v.exit_status, max_s=120),
    Stage("build", 0.50, _build, v.exit_status, env=_build_env),
    Stage("installed", 0.02, GPU_STAGES[2].argv, v.exit_status, needs=("build",), cwd="/tmp",
          max_s=120),
    Stage("layout-probe", 0.03, lambda c, d: c.mod("probe_stage", c.outdir, "--archs", c.archs,
                                                   "--dry"),
          v.layout_probe_dry, max_s=300),
    Stage("collect-cuda-tests", 0.08, lambda c, d: c.mod("checks", "collect", c.outdir,
                                                         *c.cuda_test_files),
          v.exit_status, needs=("installed",)),
    Stage("cuda-tests", 0.08, _pytest_cuda, v.cuda_tests_dry, needs=("installed",)),
    Stage("sanitizer-plan", 0.04, lambda c, d: c.mod("sanitize_cases", "--list"), v.exit_status,
          needs=("installed",)),
    Stage("conv-cells-plan", 0.04, lambda c, d: c.mod("conv_cells", "plan", c.outdir),
          v.exit_status, needs=("installed",)),
    Stage("bench-plan", 0.08, lambda c, d: c.mod("checks", "bench-plan", c.outdir),
          v.exit_status, needs=("installed",)),
    Stage("archive-selftest", 0.05, lambda c, d: (c.mod("selftest", c.outdir, "--archive",
                                                        c.archive) if c.archive else
                                                  "the dry run needs --archive"),
          v.exit_status, max_s=120),
)

# The kill simulation's own plan (gpucheck/selftest.py runs it and kills it
# mid-stage): a stage that finishes, then one that writes a partial result and hangs.
SELFTEST_STAGES = (
    Stage("quick", 0.1, lambda c, d: [c.python, "-c", "print('quick stage ran')"], v.exit_status),
    Stage("slow", 0.8, lambda c, d: [c.python, "-c", (
        "import pathlib, time\n"
        f"pathlib.Path({str(c.outdir)!r}, 'partial.txt').write_text('written before the kill')\n"
        "print('partial result written', flush=True)\ntime.sleep(600)")], v.exit_status),
    Stage("after", 0.1, lambda c, d: [c.python, "-c", "print('never reached')"], v.exit_status),
)

PLANS = {"gpu": GPU_STAGES, "dry": DRY_STAGES, "selftest": SELFTEST_STAGES}


def check_plan(stages) -> None:
    names = [s.name for s in stages]
    assert len(set(names)) == len(names), f"stage names repeat: {names}"
    total = sum(s.share for s in stages)
    assert total <= 1.0 + 1e-9, f"stage shares sum to {total:.3f} > 1 of the budget"
    for i, s in enumerate(stages):
        assert all(n in names[:i] for n in s.needs), f"{s.name} needs a later stage: {s.needs}"


def limit(stages, i: int, left: float, budget: float) -> float:
    """Stage i's time limit: what is left of the budget less the later stages'
    shares (so each of them still gets its share), at most max_s."""
    later = sum(s.share for s in stages[i + 1:]) * budget
    lim = left - later
    if stages[i].max_s is not None:
        lim = min(lim, stages[i].max_s)
    return lim


for _plan in PLANS.values():
    check_plan(_plan)

if __name__ == "__main__":  # python -m gpucheck.plan: the shares, for a look
    for mode, stages in PLANS.items():
        print(mode, " ".join(f"{s.name}={s.share:.2f}" for s in stages),
              f"sum={sum(s.share for s in stages):.2f}", file=sys.stdout)
