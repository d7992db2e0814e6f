"""convbench.report on a synthetic run in pytest-benchmark's JSON format (the
layout `pytest bench/ --benchmark-json` writes), with times chosen so every
ratio, mean and verdict is known in advance. Every row's extra_info is built
by the bench's own functions (bench/rowinfo.py, train_nets.row_info and
beyond_models.row_info), so the report is tested on rows shaped exactly as the
bench writes them; only FLOP counts are overridden to round numbers."""
import json
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import beyond_models  # noqa: E402
import layers  # noqa: E402
import rowinfo  # noqa: E402
import train_nets  # noqa: E402

from convbench.report import load, write_report  # noqa: E402
from convbench.report.__main__ import main  # noqa: E402

MS = 1e-3
L1 = layers.ConvLayer(50, 1, 32, 32, 16, 3, 3, used_by=("ee449/cnn_3.features.0",))
L2 = layers.ConvLayer(50, 16, 30, 30, 8, 5, 5, used_by=("ee449/cnn_3.features.2",))
BEYOND = layers.ConvLayer(8, 64, 28, 28, 64, 3, 3, padding=(1, 1), bias=False,
                          used_by=("beyond/resnet18.layer1.0.conv1",), suite="beyond")


def _stats(t, rounds=5):
    # The fields pytest-benchmark 4/5 writes per benchmark; the median is set
    # 10% above the min so the --stat choice is visible.
    return {"min": t, "max": t * 1.3, "mean": t * 1.12, "stddev": t * 0.05, "rounds": rounds,
            "median": t * 1.1, "iqr": t * 0.1, "q1": t * 1.05, "q3": t * 1.15,
            "iqr_outliers": 0, "stddev_outliers": 1, "outliers": "1;0", "ld15iqr": t,
            "hd15iqr": t * 1.3, "ops": 1 / (t * 1.12), "total": t * 1.12 * rounds,
            "iterations": 1}


def _bench(info, t, flops="keep"):
    info = dict(info, pool_sets=4, iterations=1)
    if flops != "keep":
        info["flops"], info["bytes"] = flops, flops // 10
    name = f"test_{info['kind']}[{info['pass']}-{info['device']}-{info['layer']}-{info['impl']}]"
    return {"group": f"{info['kind']} {info['pass']} {info['device']} {info['layer']}",
            "name": name, "fullname": f"bench/test_x.py::{name}",
            "params": {"case": "UNSERIALIZABLE[...]"}, "param": name, "extra_info": info,
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5,
                        "max_time": 1.0, "min_time": 5e-06, "warmup": False},
            "stats": _stats(t)}


def conv(layer, impl, t, pass_="fwd_bwd", flops=10**9, **extra):
    return _bench(rowinfo.conv(layer, pass_, impl, "cpu", "float32", 4, **extra), t, flops)


def train(impl, t, name="ee449/cnn_3"):
    return _bench(train_nets.row_info(name, impl, "cpu"), t)


MACHINE = {"node": "n", "machine": "x86_64", "python_version": "3.11.7",
           "cpu": {"brand_raw": "Test CPU 9000", "count": 2},
           "convbench": {"torch": "2.13.0", "numpy": "2.0", "convbench": "0.1.0",
                         "torch_threads": 2, "cpu_count": 2, "omp_num_threads": None,
                         "cpu_model": "Test CPU 9000", "cpu_family": "25",
                         "cpu_model_number": "17", "cpu_flags": ["fma", "avx2", "avx512f"],
                         "convbench_isa": "avx512",
                         "convbench_isas_compiled": ["generic", "avx2", "avx512"],
                         "torch_cpu_capability": "AVX512",
                         "env": {"CONVBENCH_CPU_ISA": None, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                         "roofline": {"cpu": {
                             "sgemm_gflops": 1700.0, "sgemm_source": "oneDNN matmul 4096^3",
                             "sgemm_candidates": {"torch.mm 2048^3": 1500.0,
                                                  "oneDNN matmul 4096^3": 1700.0},
                             "threads": 2, "memcpy_gbps": 12.0, "dgemm_numpy_gflops": 60.0}}}}


def _run_json(path, cb_times=(2 * MS, 3 * MS), machine=MACHINE, extra=()):
    benches = []
    for layer, t_torch, t_cb, t_np in ((L1, 4 * MS, cb_times[0], 8 * MS),
                                       (L2, 9 * MS, cb_times[1], 12 * MS)):
        benches += [conv(layer, "convbench:auto", t_cb),
                    conv(layer, "convbench:autotuned", t_cb / 2),
                    conv(layer, "convbench:direct", t_cb * 2),
                    conv(layer, "torch", t_torch),
                    conv(layer, "numpy", t_np)]
    # A tiny shape where convbench is 100x slower: shown, but kept out of the means.
    benches += [conv(layers.TINY_CONV, "convbench:auto", 100 * MS),
                conv(layers.TINY_CONV, "torch", 1 * MS),
                _bench(rowinfo.pool(layers.TINY_POOL, "fwd", "convbench", "cpu", "float32", 4),
                       1 * MS, 10**6),
                _bench(rowinfo.pool(layers.TINY_POOL, "fwd", "torch", "cpu", "float32", 4),
                       2 * MS, 10**6),
                train("convbench", 20 * MS), train("convbench:autotuned", 8 * MS),
                train("torch", 10 * MS)]
    path.write_text(json.dumps({
        "machine_info": machine,
        "commit_info": {"id": "0123456789abcdef", "dirty": False, "branch": "bench"},
        "benchmarks": benches + list(extra), "datetime": "2026-11-23T10:00:00+00:00",
        "version": "5.2.3"}))
    return path


def _target_lines(text):
    """{(target, convbench row): line} of the targets tables."""
    out = {}
    for ln in text.splitlines():
        cells = [c.strip() for c in ln.split("|")]
        if len(cells) > 3 and cells[2].startswith("`convbench"):
            out[(cells[1], cells[2].strip("`"))] = ln
    return out


def test_ratios_means_and_verdicts(tmp_path):
    src = _run_json(tmp_path / "BENCH.json")
    text = write_report(str(src), str(tmp_path / "out"))
    assert (tmp_path / "out" / "results.md").read_text().strip() == text.strip()
    # Per layer: torch time / convbench time, 4/2 = 2.00 and 9/3 = 3.00; mean sqrt(6).
    assert "2.00 ms · 500.0 · 2.00×" in text
    assert "3.00 ms · 333.3 · 3.00×" in text
    assert f"{math.sqrt(6):.2f}×" in text
    lines = _target_lines(text)
    auto = lines[("CPU conv2d fwd+bwd vs PyTorch CPU", "convbench:auto")]
    assert "2.45× over 2" in auto and "| met |" in auto
    # The autotuned row (twice as fast) has its own line: 2 x sqrt(6).
    tuned = lines[("CPU conv2d fwd+bwd vs PyTorch CPU", "convbench:autotuned")]
    assert f"{2 * math.sqrt(6):.2f}× over 2" in tuned
    # vs NumPy: 8/2 = 4 and 12/3 = 4: exactly the 4x bar, so met.
    numpy_line = lines[("CPU conv2d fwd+bwd vs NumPy vectorised", "convbench:auto")]
    assert "4.00× over 2" in numpy_line and "| met |" in numpy_line
    assert "not measured in this run" in lines[("GPU conv2d fwd+bwd vs cuDNN (TF32 off)",
                                                "convbench:autotuned")]
    # The tiny shape is listed (0.01x) but left out of the geometric mean.
    assert "0.01×" in text
    # Best algorithm per layer: auto/direct only (autotuned is not an algorithm): sqrt(6).
    assert f"oracle choice for `auto`): geometric mean ratio {math.sqrt(6):.2f}×" in text


def test_training_rows_as_the_bench_writes_them_are_in_a_mean_and_a_target(tmp_path):
    # Regression: training rows once carried no used_by, counted as synthetic,
    # and their table had no geometric mean and no target line.
    text = write_report(str(_run_json(tmp_path / "BENCH.json")), str(tmp_path), plots=False)
    section = text.split("## Training step — cpu, float32")[1].split("\n## ")[0]
    # convbench 2x slower than torch -> 0.50x; 50 images / 20 ms; autotuned 10/8 = 1.25x.
    assert "20.00 ms · 2500 img/s · 0.50×" in section
    assert "| **geometric mean ratio** | 0.50× | 1.25× |" in section
    lines = _target_lines(text)
    auto = lines[("CPU training step vs PyTorch CPU", "convbench")]
    assert "0.50× over 1" in auto and "≥ 1.15× | **falls short** (43% of the bar)" in auto
    tuned = lines[("CPU training step vs PyTorch CPU", "convbench:autotuned")]
    assert "1.25× over 1" in tuned and "| met |" in tuned
    assert ("GPU training step vs PyTorch+cuDNN", "convbench:autotuned") in lines


def test_beyond_rows_have_their_section_and_stay_out_of_the_homework_means(tmp_path):
    extra = [conv(BEYOND, "convbench:auto", 100 * MS, config="batch 8, 112x112"),
             conv(BEYOND, "torch", 1 * MS, config="batch 8, 112x112")]
    for impl, t in (("convbench", 50 * MS), ("convbench:autotuned", 40 * MS), ("torch", 40 * MS)):
        extra.append(_bench(beyond_models.row_info("train", "resnet18", impl), t))
    text = write_report(str(_run_json(tmp_path / "BENCH.json", extra=extra)), str(tmp_path),
                        plots=False)
    homework, beyond = text.split("## Beyond the homework")
    # The 0.01x beyond layer changes no homework mean and is not in the homework tables.
    assert "2.45× over 2" in _target_lines(homework)[("CPU conv2d fwd+bwd vs PyTorch CPU",
                                                      "convbench:auto")]
    assert BEYOND.id not in homework
    assert BEYOND.id in beyond and "0.01×" in beyond and "(batch 8, 112x112)" in beyond
    lines = _target_lines(beyond)
    resnet = "ResNet-18 training step (batch 8, 112²) vs PyTorch CPU"
    assert "0.80×" in lines[(resnet, "convbench")] and "falls short" in lines[(resnet, "convbench")]
    assert "1.00×" in lines[(resnet, "convbench:autotuned")]
    assert "| met |" in lines[(resnet, "convbench:autotuned")]
    assert "not measured" in lines[("VGG-11 inference (batch 1, 224²) vs PyTorch CPU",
                                    "convbench")]


def test_header_names_the_isas_and_the_roof_candidates(tmp_path):
    text = write_report(str(_run_json(tmp_path / "BENCH.json")), str(tmp_path), plots=False)
    assert "- CPU: Test CPU 9000 (family 25, model 17), AVX-512 present;" in text
    assert ("- convbench ISA: avx512 (compiled: generic, avx2, avx512; this CPU runs: unknown; "
            "CONVBENCH_CPU_ISA unset)") in text
    assert "- PyTorch ISA: AVX512 (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY unset)" in text
    assert ("**1700.0 GFLOP/s**, from oneDNN matmul 4096^3; candidates: torch.mm 2048^3 1500.0, "
            "oneDNN matmul 4096^3 1700.0") in text
    assert "memcpy 12.0 GB/s" in text


def test_old_json_without_suite_or_isa_still_reads(tmp_path):
    # JSONs written before suites were recorded: tiny/overhead by their tags,
    # training rows (empty used_by) are homework rows.
    src = _run_json(tmp_path / "BENCH.json")
    data = json.loads(src.read_text())
    for b in data["benchmarks"]:
        b["extra_info"].pop("suite")
        if b["extra_info"]["kind"] == "train":
            b["extra_info"]["used_by"] = []
    data["machine_info"]["convbench"] = {"roofline": {"cpu": {"sgemm_gflops": 170.0}}}
    src.write_text(json.dumps(data))
    run = load(str(src))
    suites = {(r.kind, r.layer): r.suite for r in run.rows}
    assert suites[("conv", layers.TINY_CONV.id)] == "synthetic"
    assert suites[("train", "ee449/cnn_3")] == "homework"
    text = write_report(str(src), str(tmp_path), plots=False)
    assert "| **geometric mean ratio** | 0.50× | 1.25× |" in text
    assert "convbench ISA: unknown" in text and "PyTorch ISA: unknown" in text


def test_shortfall_is_stated(tmp_path):
    src = _run_json(tmp_path / "BENCH.json", cb_times=(4 * MS, 9 * MS))  # equal to torch
    text = write_report(str(src), str(tmp_path), plots=False)
    line = _target_lines(text)[("CPU conv2d fwd+bwd vs PyTorch CPU", "convbench:auto")]
    assert "1.00×" in line and "**falls short** (67% of the bar)" in line


def test_statistic_choice(tmp_path):
    src = _run_json(tmp_path / "BENCH.json")
    rows = load(str(src), "median").rows
    assert rows[0].seconds == pytest.approx(2 * MS * 1.1)
    with pytest.raises(ValueError, match="stat must be one of"):
        load(str(src), "max")


def test_plots_are_pngs(tmp_path):
    src = _run_json(tmp_path / "BENCH.json")
    text = write_report(str(src), str(tmp_path / "out"))
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["roofline_cpu_float32.png", "speedup_conv_cpu_float32.png",
                    "speedup_pool_cpu_float32.png"]
    for name in pngs:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text


def test_cli(tmp_path, capsys):
    src = _run_json(tmp_path / "BENCH.json")
    assert main([str(src), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "## conv2d forward + backward — cpu, float32" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert main([str(bad)]) == 2
    assert "not a pytest-benchmark JSON" in capsys.readouterr().err


def test_header_falls_back_to_pytest_benchmarks_cpu_info(tmp_path):
    machine = {"cpu": {"brand_raw": "AMD EPYC", "family": 25, "model": 1,
                       "flags": ["avx", "avx2", "fma"]},
               "convbench": {"roofline": None}}
    text = write_report(str(_run_json(tmp_path / "B.json", machine=machine)), str(tmp_path),
                        plots=False)
    assert "- CPU: AMD EPYC (family 25, model 1), AVX2/FMA present, no AVX-512;" in text
