"""pytest-benchmark settings for bench/ (see bench/README.md).

    pytest bench/ --benchmark-only --benchmark-json=BENCH.json   # the full run
    pytest bench/ --benchmark-disable -q                          # CI smoke

With --benchmark-disable only the rows marked `bench_smoke` (a tiny shape
and two real layers per suite, one training net, one beyond row) run, each
body once and still checked against the oracle; everything else is
collected and deselected, so the smoke also proves every row still collects.

--cb-stage NAME keeps one stage of the CUDA rows (gpu_stages.py; the GPU
check runs them one pytest and one JSON each); --cb-roofline chooses which
ceilings are measured (all, at start and end; cuda: the GPU's, once; none);
--cb-gpu-time off skips the CUDA-graph GPU-only time of CUDA rows.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import gpu_stages
import machine
import roofline


@dataclasses.dataclass(frozen=True)
class Settings:
    budget: float
    min_rounds: int
    gpu_time: bool = True


def pytest_addoption(parser):
    group = parser.getgroup("convbench")
    group.addoption("--cb-budget", type=float, default=0.1,
                    help="seconds of timed rounds per benchmark row (default 0.1)")
    group.addoption("--cb-min-rounds", type=int, default=3,
                    help="rounds per row at least, however slow (default 3)")
    group.addoption("--cb-all", action="store_true",
                    help="with --benchmark-disable, run every row once, not the smoke subset")
    group.addoption("--cb-stage", choices=gpu_stages.NAMES, default=None,
                    help="keep only this stage of the CUDA rows (bench/gpu_stages.py)")
    group.addoption("--cb-roofline", choices=("all", "cuda", "none"), default="all",
                    help="ceilings to measure: all (CPU and CUDA, at start and end; default), "
                         "cuda (the GPU's only, at start), none")
    group.addoption("--cb-gpu-time", choices=("graph", "off"), default="graph",
                    help="GPU-only time of CUDA rows by CUDA-graph replay (default) or off")


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_smoke: row run by the --benchmark-disable smoke")


def _disabled(config) -> bool:
    return bool(config.getoption("benchmark_disable", False)) and not config.getoption(
        "benchmark_enable", False)


def pytest_collection_modifyitems(config, items):
    stage = config.getoption("--cb-stage")
    if stage:
        keep, drop = gpu_stages.select(items, stage)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    if not _disabled(config) or config.getoption("--cb-all"):
        return
    keep = [i for i in items if i.get_closest_marker("bench_smoke")]
    drop = [i for i in items if not i.get_closest_marker("bench_smoke")]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def settings(pytestconfig) -> Settings:
    opt = pytestconfig.getoption
    return Settings(opt("--cb-budget"), opt("--cb-min-rounds"), opt("--cb-gpu-time") == "graph")


@pytest.fixture(scope="session", autouse=True)
def _roofline(pytestconfig):
    """Measure the machine's ceilings before the first row and again after the
    last (not in the smoke); the JSON keeps each one's best (roofline.best_of).
    --cb-roofline cuda: only the GPU's, once (a GPU check's stages share one
    measurement); none: not measured."""
    mode = pytestconfig.getoption("--cb-roofline")
    if _disabled(pytestconfig) or mode == "none" or (
            mode == "cuda" and not torch.cuda.is_available()):
        yield
        return
    cuda = torch.cuda.is_available()
    start = roofline.measure(cuda, cpu=mode == "all")
    pytestconfig.stash[_ROOFLINE] = start
    yield
    if mode == "all":
        pytestconfig.stash[_ROOFLINE] = roofline.best_of(start, roofline.measure(cuda))


_ROOFLINE = pytest.StashKey[dict]()


def pytest_benchmark_update_machine_info(config, machine_info):
    # Versions, threads, CPU model/flags and the ISAs convbench and PyTorch run.
    machine_info["convbench"] = dict(
        machine.environment(), roofline=config.stash.get(_ROOFLINE, None))
