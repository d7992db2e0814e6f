"""pytest-benchmark settings for bench/ (see bench/README.md).

    pytest bench/ --benchmark-only --benchmark-json=BENCH.json   # the full run
    pytest bench/ --benchmark-disable -q                          # CI smoke

With --benchmark-disable only the rows marked `bench_smoke` (a tiny shape
and two real layers per suite, one training net, one beyond row) run, each
body once and still checked against the oracle; everything else is
collected and deselected, so the smoke also proves every row still collects.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import machine
import roofline


@dataclasses.dataclass(frozen=True)
class Settings:
    budget: float
    min_rounds: int


def pytest_addoption(parser):
    group = parser.getgroup("convbench")
    group.addoption("--cb-budget", type=float, default=0.1,
                    help="seconds of timed rounds per benchmark row (default 0.1)")
    group.addoption("--cb-min-rounds", type=int, default=3,
                    help="rounds per row at least, however slow (default 3)")
    group.addoption("--cb-all", action="store_true",
                    help="with --benchmark-disable, run every row once, not the smoke subset")


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_smoke: row run by the --benchmark-disable smoke")


def _disabled(config) -> bool:
    return bool(config.getoption("benchmark_disable", False)) and not config.getoption(
        "benchmark_enable", False)


def pytest_collection_modifyitems(config, items):
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
    return Settings(opt("--cb-budget"), opt("--cb-min-rounds"))


@pytest.fixture(scope="session", autouse=True)
def _roofline(pytestconfig):
    """Measure the machine's ceilings before the first row and again after the
    last (not in the smoke); the JSON keeps each one's best (roofline.best_of)."""
    if _disabled(pytestconfig):
        yield
        return
    start = roofline.measure(torch.cuda.is_available())
    pytestconfig.stash[_ROOFLINE] = start
    yield
    pytestconfig.stash[_ROOFLINE] = roofline.best_of(
        start, roofline.measure(torch.cuda.is_available()))


_ROOFLINE = pytest.StashKey[dict]()


def pytest_benchmark_update_machine_info(config, machine_info):
    # Versions, threads, CPU model/flags and the ISAs convbench and PyTorch run.
    machine_info["convbench"] = dict(
        machine.environment(), roofline=config.stash.get(_ROOFLINE, None))
