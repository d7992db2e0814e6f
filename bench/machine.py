"""What ran: versions, threads, devices and the instruction sets in use, for
the JSON's machine_info["convbench"] (the report's header). An ISA that a
library could not report is stored as None and shown as unknown."""
from __future__ import annotations

import os
import platform

import numpy as np
import torch

# Environment variables that change which kernels run (or how many threads);
# an autotune cache file makes the autotuned rows reuse earlier choices.
ISA_ENV = ("CONVBENCH_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS",
           "OPENBLAS_CORETYPE", "CONVBENCH_AUTOTUNE_CACHE")


def cpu_identity(path: str = "/proc/cpuinfo") -> dict:
    """Model name, vendor, family/model numbers and flags of the first CPU."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = fields.get("flags", "").split()
    return {"cpu_model": fields.get("model name") or platform.processor() or None,
            "cpu_vendor": fields.get("vendor_id"),
            "cpu_family": fields.get("cpu family"),
            "cpu_model_number": fields.get("model"),
            "cpu_flags": flags or None}


def _plain(v):
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def isa_info() -> dict:
    """convbench's and PyTorch's CPU ISA choices, and the variables behind them."""
    import convbench

    build = convbench.build_info()
    try:
        torch_isa = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        torch_isa = None
    return {"convbench_isa": build.get("cpu_isa"),
            "convbench_isas_compiled": build.get("cpu_isas_compiled"),
            "convbench_isas_supported": build.get("cpu_isas_supported"),
            "torch_cpu_capability": torch_isa,
            "env": {k: os.environ.get(k) for k in ISA_ENV}}


def environment() -> dict:
    """Versions, threads, devices and ISAs, for the report's header."""
    import convbench

    info = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "convbench": getattr(convbench, "__version__", "?"),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        **cpu_identity(),
        **isa_info(),
        "convbench_build": {k: _plain(v) for k, v in convbench.build_info().items()},
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda_device"] = props.name
        info["cuda_capability"] = f"{props.major}.{props.minor}"
        info["cuda_runtime"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info
