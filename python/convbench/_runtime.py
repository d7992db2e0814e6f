"""What the compiled module contains and what this machine offers."""
from __future__ import annotations

import functools
import platform

from . import _C
from ._algos import algo_names


def has_cuda() -> bool:
    """True when convbench's CUDA kernels were compiled into this build."""
    return bool(_C.cuda_compiled())


@functools.lru_cache(maxsize=None)
def _cuda_device_count() -> int:
    return int(_C.cuda_device_count())


def cuda_available() -> bool:
    """True when the CUDA kernels are compiled in and a GPU is usable here."""
    if not has_cuda():
        return False
    import torch

    return torch.cuda.is_available() and _cuda_device_count() > 0


def build_info() -> dict:
    """Build and machine facts, for bug reports and benchmark records."""
    import torch

    return {
        "cuda_compiled": has_cuda(),
        "cuda_available": cuda_available(),
        "cuda_runtime": _C.cuda_runtime_version() or None,
        "cuda_driver": _C.cuda_driver_version() or None,
        "cuda_architectures": _C.cuda_architectures() or None,
        "commit": _C.build_commit(),
        "cpu_isa": _C.cpu_isa(),
        "cpu_isas_compiled": list(_C.cpu_isas_compiled()),
        "cpu_isas_supported": list(_C.cpu_isas_supported()),
        "openmp_threads": _C.openmp_max_threads(),
        "conv2d_cpu_half": _C.conv2d_cpu_half_method(),
        "conv2d_algos_cpu": list(algo_names(_C.DEVICE_CPU)),
        "conv2d_algos_cuda": list(algo_names(_C.DEVICE_CUDA)) if has_cuda() else [],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
