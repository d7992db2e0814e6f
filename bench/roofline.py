"""The machine's ceilings, measured in the same run as the benchmarks (stored
in the JSON's machine_info["convbench"]["roofline"]) so the report's roofline
is this machine's, not a datasheet's:
  - sgemm: torch.mm of float32 2048x2048 (TF32 off on CUDA) -> GFLOP/s;
  - hgemm (CUDA): the same in float16 and bfloat16;
  - dgemm_numpy: NumPy float64 matmul, the engine of the vectorised reference;
  - memcpy: a 256 MiB tensor copy, counting bytes read + written -> GB/s.
Each is the best of several repeats after a warm-up.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch


def _best(fn, device, repeats=5):
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _gemm_gflops(device, dtype, n=2048):
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    reps = 4 if device == "cpu" else 20

    def work():
        for _ in range(reps):
            torch.mm(a, b)

    return 2 * n**3 * reps / _best(work, device) / 1e9


def _copy_gbps(device, nbytes=256 * 2**20):
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / _best(lambda: dst.copy_(src), device) / 1e9


def _numpy_dgemm_gflops(n=1024):
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    return 2 * n**3 / _best(lambda: a @ b, "cpu") / 1e9


def measure(with_cuda: bool) -> dict:
    out = {"cpu": {
        "sgemm_gflops": _gemm_gflops("cpu", torch.float32),
        "memcpy_gbps": _copy_gbps("cpu"),
        "dgemm_numpy_gflops": _numpy_dgemm_gflops(),
    }}
    if with_cuda:
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            out["cuda"] = {
                "sgemm_gflops": _gemm_gflops("cuda", torch.float32, 4096),
                "hgemm_gflops": _gemm_gflops("cuda", torch.float16, 4096),
                "bf16gemm_gflops": _gemm_gflops("cuda", torch.bfloat16, 4096),
                "memcpy_gbps": _copy_gbps("cuda", 1024 * 2**20),
            }
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    return out


def environment() -> dict:
    """Versions, threads and devices, for the report's header."""
    import convbench

    info = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "convbench": getattr(convbench, "__version__", "?"),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
    }
    if hasattr(convbench, "build_info"):
        info["convbench_build"] = {k: v if isinstance(v, (int, float, str, bool, type(None)))
                                   else str(v) for k, v in convbench.build_info().items()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda_device"] = props.name
        info["cuda_capability"] = f"{props.major}.{props.minor}"
        info["cuda_runtime"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info
