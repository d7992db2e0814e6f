"""The report's header: source, machine, the ISAs each library ran, versions,
and the measured ceilings with every roof candidate and the winner. Whatever
a JSON does not record prints as unknown."""
from __future__ import annotations

from typing import List, Optional

from .load import Run

_ROOFS = (("sgemm", "float32"), ("hgemm", "float16"), ("bf16gemm", "bfloat16"))


def _unset(env: dict, name: str) -> str:
    v = env.get(name)
    return f"{name}={v}" if v else f"{name} unset"


def _list(v) -> str:
    if not v:
        return "unknown"
    return ", ".join(v) if isinstance(v, (list, tuple)) else str(v)


def simd_presence(flags: Optional[list]) -> str:
    if not flags:
        return "CPU flags unknown"
    if "avx512f" in flags:
        return "AVX-512 present"
    if "avx2" in flags:
        return "AVX2" + ("/FMA" if "fma" in flags else "") + " present, no AVX-512"
    return "no AVX2"


def cpu_lines(run: Run) -> List[str]:
    # Ours first; else what pytest-benchmark records itself (py-cpuinfo), as
    # in JSONs written before convbench recorded the CPU.
    m, cb = run.machine, run.machine.get("convbench") or {}
    env, pci = cb.get("env") or {}, m.get("cpu") or {}
    model = cb.get("cpu_model") or pci.get("brand_raw") or m.get("processor") or "unknown"
    family = cb.get("cpu_family") or pci.get("family")
    number = cb.get("cpu_model_number") or pci.get("model")
    fam = f" (family {family}, model {number})" if family is not None else ""
    flags = cb.get("cpu_flags") or pci.get("flags")
    omp = cb.get("omp_num_threads")
    return [
        f"- CPU: {model}{fam}, {simd_presence(flags)}; "
        f"{cb.get('cpu_count', '?')} logical cores; threads: torch {cb.get('torch_threads', '?')}, "
        f"convbench OpenMP {(cb.get('convbench_build') or {}).get('openmp_threads', '?')}, "
        f"OMP_NUM_THREADS={omp if omp else 'unset'}",
        f"- convbench ISA: {cb.get('convbench_isa') or 'unknown'} "
        f"(compiled: {_list(cb.get('convbench_isas_compiled'))}; "
        f"this CPU runs: {_list(cb.get('convbench_isas_supported'))}; "
        f"{_unset(env, 'CONVBENCH_CPU_ISA')})",
        f"- PyTorch ISA: {cb.get('torch_cpu_capability') or 'unknown'} "
        f"({_unset(env, 'ONEDNN_MAX_CPU_ISA')}, {_unset(env, 'ATEN_CPU_CAPABILITY')})",
    ]


def roof_lines(run: Run) -> List[str]:
    lines = []
    for dev, vals in run.roofline.items():
        threads = f", {vals['threads']} threads" if vals.get("threads") else ""
        if vals.get("measured", 1) > 1:
            threads += f", each candidate's best of {vals['measured']} (start and end of the run)"
        for prefix, dtype in _ROOFS:
            if f"{prefix}_gflops" not in vals:
                continue
            cands = vals.get(f"{prefix}_candidates") or {}
            # Before candidates were recorded the roof was one square torch.mm.
            size = 2048 if dev == "cpu" else 4096
            source = vals.get(f"{prefix}_source") or (
                f"torch.mm {size}x{size} (the only candidate then)")
            line = (f"- Compute roof ({dev}, {dtype}, same run{threads}): "
                    f"**{vals[f'{prefix}_gflops']:.1f} GFLOP/s**, from {source}")
            if cands:
                line += "; candidates: " + ", ".join(f"{k} {v:.1f}" for k, v in cands.items())
            failed = vals.get(f"{prefix}_failed") or {}
            if failed:
                line += "; could not run: " + ", ".join(f"{k} ({v})" for k, v in failed.items())
            lines.append(line)
        if dev == "cpu" and vals.get("openblas_kernel_unset_coretype"):
            lines.append(f"- OpenBLAS without OPENBLAS_CORETYPE picked its "
                         f"{vals['openblas_kernel_unset_coretype']} kernel; this run's "
                         f"OPENBLAS_CORETYPE: {vals.get('openblas_coretype_env') or 'unset'}")
        other = []
        if "memcpy_gbps" in vals:
            other.append(f"memcpy {vals['memcpy_gbps']:.1f} GB/s")
        if "dgemm_numpy_gflops" in vals:
            other.append(f"NumPy float64 matmul {vals['dgemm_numpy_gflops']:.1f} GFLOP/s")
        if other:
            lines.append(f"- Other ceilings ({dev}, same run): " + ", ".join(other))
    if not run.roofline:
        lines.append("- Measured ceilings: not in this JSON (no roofline lines in the plots)")
    return lines


def header(run: Run, source: str) -> List[str]:
    m, cb = run.machine, run.machine.get("convbench") or {}
    lines = ["# convbench benchmark report", "",
             f"Source: `{source}` ({run.datetime or 'no date'}); "
             f"commit {str(run.commit.get('id', '?'))[:10]}"
             f"{' (dirty)' if run.commit.get('dirty') else ''}. "
             f"Times are each row's **{run.stat}** over its rounds, per call.", ""]
    lines += cpu_lines(run)
    lines.append(f"- Versions: convbench {cb.get('convbench', '?')}, torch {cb.get('torch', '?')}, "
                 f"numpy {cb.get('numpy', '?')}, Python {m.get('python_version', '?')}")
    if cb.get("cuda_device"):
        lines.append(f"- GPU: {cb['cuda_device']} (sm {cb.get('cuda_capability')}), CUDA "
                     f"{cb.get('cuda_runtime')}, cuDNN {cb.get('cudnn')}")
    else:
        lines.append("- GPU: none in this run (CUDA rows skipped)")
    return lines + roof_lines(run) + [""]
