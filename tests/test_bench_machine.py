"""What a benchmark run records about its machine (bench/machine.py) and how
the compute roof's NumPy candidate runs (bench/roofline.py)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import machine  # noqa: E402
import roofline  # noqa: E402

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC 9B45
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw

processor\t: 1
model name\t: second CPU, not read
"""


def test_cpu_identity_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    got = machine.cpu_identity(str(path))
    assert got == {"cpu_model": "AMD EPYC 9B45", "cpu_vendor": "AuthenticAMD",
                   "cpu_family": "26", "cpu_model_number": "2",
                   "cpu_flags": ["fpu", "sse2", "avx2", "fma", "avx512f", "avx512bw"]}


def test_isa_info_records_both_libraries_and_the_variables(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    import convbench
    import torch

    got = machine.isa_info()
    assert got["convbench_isa"] == convbench.build_info()["cpu_isa"]
    assert got["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert got["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert got["env"]["ATEN_CPU_CAPABILITY"] is None
    assert set(machine.ISA_ENV) <= set(got["env"])


def test_numpy_candidate_runs_without_openblas_coretype(monkeypatch):
    # A machine may force an old OpenBLAS kernel; the roof must not inherit it.
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    got = roofline.numpy_sgemm_subprocess(1, sizes=(64,))
    assert got["coretype_env"] is None and got["threads_env"] == "1"
    assert got["gflops"]["64"] > 0


def test_roof_is_the_best_candidate_and_keeps_them_all():
    got = roofline._roof({"a": 1.0, "b": 3.0, "c": 2.0}, {"d": "no oneDNN"})
    assert got == {"sgemm_gflops": 3.0, "sgemm_source": "b",
                   "sgemm_candidates": {"a": 1.0, "b": 3.0, "c": 2.0},
                   "sgemm_failed": {"d": "no oneDNN"}}


def test_best_of_keeps_each_candidates_best_and_rechooses_the_roof():
    start = {"cpu": {**roofline._roof({"mm": 100.0, "onednn": 90.0}, {"numpy": "timeout"}),
                     "memcpy_gbps": 20.0, "threads": 2}}
    end = {"cpu": {**roofline._roof({"mm": 80.0, "onednn": 120.0, "numpy": 110.0}, {}),
                   "memcpy_gbps": 25.0, "threads": 2}}
    got = roofline.best_of(start, end)["cpu"]
    assert got["sgemm_candidates"] == {"mm": 100.0, "onednn": 120.0, "numpy": 110.0}
    assert (got["sgemm_gflops"], got["sgemm_source"]) == (120.0, "onednn")
    assert "sgemm_failed" not in got  # numpy ran at the end
    assert got["memcpy_gbps"] == 25.0 and got["measured"] == 2
    assert roofline.best_of(start, None)["cpu"]["sgemm_gflops"] == 100.0


def test_the_cpu_bfloat16_roof_times_bf16_dot_products_only_where_the_cpu_has_them(monkeypatch):
    calls = []
    monkeypatch.setattr(roofline, "_torch_mm", lambda *a: calls.append(a) or 500.0)
    monkeypatch.setattr(machine, "cpu_identity", lambda: {"cpu_flags": ["avx2", "avx512f"]})
    assert roofline.cpu_bf16_candidates({"torch.mm": 100.0}) == {"float32: torch.mm": 100.0}
    assert not calls
    monkeypatch.setattr(machine, "cpu_identity", lambda: {"cpu_flags": ["avx512_bf16"]})
    got = roofline.cpu_bf16_candidates({"torch.mm": 100.0})
    assert got["float32: torch.mm"] == 100.0 and len(got) == 3
    assert all(a[1] == roofline.torch.bfloat16 for a in calls)
