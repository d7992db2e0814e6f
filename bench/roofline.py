"""The machine's ceilings, measured in the same run as the benchmarks (stored
in the JSON's machine_info["convbench"]["roofline"]) so the report's roofline
is this machine's, not a datasheet's.

The compute roof is the fastest float32 rate any library on the machine
reaches, warm, at the run's thread count (torch.get_num_threads(); the
conv rows run with those threads): the best of
  - torch.mm (MKL on x86 CPUs, cuBLAS with TF32 off on CUDA) at a few sizes
    and a conv-like shape;
  - oneDNN's matmul (torch's mkldnn_linear), the library PyTorch's CPU convs
    run on;
  - oneDNN's own 3x3 convolution (F.conv2d on the CPU) on two large layers:
    its register-blocked conv kernels beat its GEMM on this machine (236 vs
    222 GFLOP/s on a 2-core Zen 4), so a GEMM-only roof sits under PyTorch's
    conv rows. Counted as direct-convolution FLOPs: x64 oneDNN has no
    Winograd since v3.2, so these are FLOPs really done;
  - NumPy/OpenBLAS float32 in a subprocess without OPENBLAS_CORETYPE (set on
    some machines to force an old kernel, e.g. Haswell's AVX2 on an AVX-512
    CPU), so OpenBLAS picks the kernel for this CPU.
A roof below what a conv row reaches is a measurement error, which the
report flags; every candidate and the winner are stored. The ceilings are
measured at the start and again at the end of the run and each candidate
keeps its best (best_of): on a shared machine a busy moment only lowers a
measurement, and one busy minute must not put the roof under the rows.
Also: the bfloat16 roof (CPU: the best of torch.mm in bfloat16 and the float32
candidates; CUDA: bf16 GEMM), hgemm (CUDA), NumPy float64 matmul in this process (the
engine of the vectorised reference) and memcpy bandwidth (a 256 MiB copy,
bytes read + written).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import machine

# (M, K, N): square sizes, and a conv-like GEMM (K=512 outputs of a 3x3x512
# layer over 56x56 pixels: the shape of a large im2col convolution).
CPU_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (512, 4608, 3136))
CUDA_SHAPES = ((4096, 4096, 4096), (8192, 8192, 8192), (512, 4608, 3136))
_MIN_SAMPLE_S = 0.1


def _seconds(fn, device):
    """Seconds of one fn() call, the device's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _best(fn, device, repeats=3):
    """Best seconds of fn() over repeats, after one warm call."""
    fn()
    return min(_seconds(fn, device) for _ in range(repeats))


def _rate(call, flops, device):
    """GFLOP/s of call(), repeated within a sample so each lasts >= 0.1 s."""
    call()  # warm: threads up, memory touched
    reps = max(1, int(_MIN_SAMPLE_S / max(_seconds(call, device), 1e-9)))

    def work():
        for _ in range(reps):
            call()

    return flops * reps / _best(work, device) / 1e9


def _torch_mm(device, dtype, m, k, n):
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    return _rate(lambda: torch.mm(a, b), 2 * m * k * n, device)


# (N, C=K, H=W) of the 3x3 pad-1 conv candidates: VGG/ResNet layer shapes.
CPU_CONVS = ((8, 512, 14), (1, 256, 56))


def _torch_conv3x3(n, c, hw):
    x, w = torch.randn(n, c, hw, hw), torch.randn(c, c, 3, 3)
    return _rate(lambda: F.conv2d(x, w, padding=1), 2 * n * c * c * 9 * hw * hw, "cpu")


def _onednn_mm(m, k, n):
    # y = x @ w.T on oneDNN tensors: a plain GEMM through oneDNN's own kernels.
    x = torch.randn(m, k).to_mkldnn()
    w = torch.randn(n, k).to_mkldnn()
    return _rate(lambda: torch._C._nn.mkldnn_linear(x, w, None), 2 * m * k * n, "cpu")


_NUMPY_CHILD = r"""
import json, os, sys, time
import numpy as np
sizes = json.loads(sys.argv[1])
out = {}
for n in sizes:
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
    out[str(n)] = 2 * n ** 3 / best / 1e9
arch = None
try:
    import threadpoolctl
    arch = next((i.get("architecture") for i in threadpoolctl.threadpool_info()
                 if i.get("internal_api") == "openblas"), None)
except Exception:
    pass
print(json.dumps({"gflops": out, "architecture": arch,
                  "coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
                  "threads_env": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def numpy_sgemm_subprocess(threads: int, sizes=(2048, 4096), timeout=300) -> dict:
    """NumPy float32 matmul in a fresh interpreter without OPENBLAS_CORETYPE,
    with the run's thread count: {"gflops": {size: GFLOP/s}, "architecture": ...}."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", _NUMPY_CHILD, json.dumps(list(sizes))],
                          env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                           else f"exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_sgemm_candidates(threads: int):
    """({candidate: GFLOP/s}, {candidate: why it could not run}, OpenBLAS kernel)."""
    cands, failed = {}, {}
    for m, k, n in CPU_SHAPES:
        cands[f"torch.mm {m}x{k}x{n}"] = _torch_mm("cpu", torch.float32, m, k, n)
    for m, k, n in CPU_SHAPES[1:]:
        name = f"oneDNN matmul {m}x{k}x{n}"
        try:
            cands[name] = _onednn_mm(m, k, n)
        except (RuntimeError, AttributeError) as e:  # a torch built without oneDNN
            failed[name] = str(e).splitlines()[0]
    for n, c, hw in CPU_CONVS:
        cands[f"PyTorch conv 3x3 {c}->{c} {hw}x{hw} batch {n}"] = _torch_conv3x3(n, c, hw)
    arch = None
    try:
        res = numpy_sgemm_subprocess(threads)
        arch = res.get("architecture")
        for size, g in res["gflops"].items():
            cands[f"NumPy/OpenBLAS float32 {size}^2 (OPENBLAS_CORETYPE unset)"] = g
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        failed["NumPy/OpenBLAS float32 (subprocess)"] = str(e)
    return cands, failed, arch


def cpu_bf16_candidates(sgemm: dict) -> dict:
    """The bfloat16 roof's candidates: the float32 ones (bfloat16 computed in
    float32 reaches at most those: ours, on every CPU so far), and where the
    CPU has bf16 dot products (AVX512_BF16) torch.mm in bfloat16, oneDNN's
    vdpbf16ps kernels. (Without them torch.mm runs a slow path: ~1 GFLOP/s on
    a Zen 3, not worth the run's time.)"""
    cands = {f"float32: {k}": g for k, g in sgemm.items()}
    if "avx512_bf16" in (machine.cpu_identity().get("cpu_flags") or ()):
        for m, k, n in CPU_SHAPES[:2]:
            cands[f"torch.mm bfloat16 {m}x{k}x{n}"] = _torch_mm("cpu", torch.bfloat16, m, k, n)
    return cands


def _roof(cands: dict, failed: dict, prefix: str = "sgemm") -> dict:
    best = max(cands, key=cands.get)
    out = {f"{prefix}_gflops": cands[best], f"{prefix}_source": best,
           f"{prefix}_candidates": cands}
    if failed:
        out[f"{prefix}_failed"] = failed
    return out


def _copy_gbps(device, nbytes=256 * 2**20):
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / _best(lambda: dst.copy_(src), device, repeats=5) / 1e9


def _numpy_dgemm_gflops(n=1024):
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    return 2 * n**3 / _best(lambda: a @ b, "cpu", repeats=5) / 1e9


def measure(with_cuda: bool, cpu: bool = True) -> dict:
    out = {}
    if cpu:
        threads = torch.get_num_threads()
        cands, failed, arch = cpu_sgemm_candidates(threads)
        out["cpu"] = {
            **_roof(cands, failed),
            "threads": threads,
            "openblas_kernel_unset_coretype": arch,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "memcpy_gbps": _copy_gbps("cpu"),
            "dgemm_numpy_gflops": _numpy_dgemm_gflops(),
        }
        out["cpu"].update(_roof(cpu_bf16_candidates(cands), {}, "bf16gemm"))
    if with_cuda:
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            cuda = {}
            for prefix, dtype in (("sgemm", torch.float32), ("hgemm", torch.float16),
                                  ("bf16gemm", torch.bfloat16)):
                cuda.update(_roof({f"torch.mm {m}x{k}x{n}": _torch_mm("cuda", dtype, m, k, n)
                                   for m, k, n in CUDA_SHAPES}, {}, prefix))
            cuda["memcpy_gbps"] = _copy_gbps("cuda", 1024 * 2**20)
            out["cuda"] = cuda
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    return out


_PREFIXES = ("sgemm", "hgemm", "bf16gemm")


def best_of(*measurements: dict) -> dict:
    """Merge measure() results: each candidate and each ceiling at its best,
    the roof re-chosen among the merged candidates; 'measured' counts them."""
    ms = [m for m in measurements if m]
    if not ms:
        return {}
    out = {}
    for dev in dict.fromkeys(d for m in ms for d in m):
        vals = [m[dev] for m in ms if dev in m]
        merged = dict(vals[-1])
        for prefix in _PREFIXES:
            cands, failed = {}, {}
            for v in vals:
                for k, g in (v.get(f"{prefix}_candidates") or {}).items():
                    cands[k] = max(g, cands.get(k, 0.0))
                failed.update(v.get(f"{prefix}_failed") or {})
            if cands:
                merged.update(_roof(cands, {k: e for k, e in failed.items() if k not in cands},
                                    prefix))
        for key in ("memcpy_gbps", "dgemm_numpy_gflops"):
            if any(key in v for v in vals):
                merged[key] = max(v[key] for v in vals if key in v)
        merged["measured"] = len(vals)
        out[dev] = merged
    return out
