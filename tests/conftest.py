import os

import pytest
import torch

import convbench
from _helpers import NO_GPU


def pytest_collection_modifyitems(config, items):
    if convbench.cuda_available():
        return
    why = ("no usable CUDA GPU" if convbench.has_cuda()
           else "convbench was built without CUDA support")
    skip = pytest.mark.skip(reason=f"{NO_GPU} {why}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One torch thread for the test (training tests: tiny batches, where
    OpenMP spin-waiting on a shared 2-core CI machine costs more than it gives)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _test_isas():
    """Every ISA build this machine runs, or those named in CONVBENCH_TEST_ISAS
    (comma-separated; tools/sanitize_cpu.sh runs the best one only)."""
    isas = convbench.backends.cpu_isas()
    wanted = os.environ.get("CONVBENCH_TEST_ISAS")
    return [i for i in isas if i in wanted.split(",")] if wanted else isas


@pytest.fixture(params=_test_isas())
def cpu_isa(request):
    """Runs a test once per CPU ISA build this machine can run (generic,
    avx2, avx512): each ISA build is its own compiled code."""
    with convbench.backends.flags(cpu_isa=request.param):
        yield request.param
