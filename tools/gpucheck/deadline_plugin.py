"""pytest plugin: no test starts after --gc-deadline (epoch seconds); the
rest are skipped with verdicts.DEADLINE_TAG in their reason, so pytest still
ends normally and writes its junit XML and benchmark JSON (a killed pytest
writes neither), and the verdict can tell "not reached" from "passed".

    pytest -p gpucheck.deadline_plugin --gc-deadline 1733500000 ...
"""
from __future__ import annotations

import time

import pytest

from gpucheck.verdicts import DEADLINE_TAG


def pytest_addoption(parser):
    parser.addoption("--gc-deadline", type=float, default=None,
                     help="epoch seconds after which no test starts (the GPU check's deadline)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    deadline = item.config.getoption("--gc-deadline")
    if deadline is not None and time.time() > deadline:
        pytest.skip(f"{DEADLINE_TAG} not started: the stage's time was spent")
