import pytest
import torch

import convbench


def pytest_collection_modifyitems(config, items):
    if convbench.cuda_available():
        return
    why = ("no usable CUDA GPU" if convbench.has_cuda()
           else "convbench was built without CUDA support")
    skip = pytest.mark.skip(reason=why)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=convbench.backends.cpu_isas())
def cpu_isa(request):
    """Runs a test once per CPU kernel variant this machine can run (generic,
    avx2, avx512): each variant is its own compiled code."""
    with convbench.backends.flags(cpu_isa=request.param):
        yield request.param
