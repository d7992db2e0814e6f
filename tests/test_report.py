"""convbench.report on a synthetic run in pytest-benchmark's JSON format (the
layout `pytest bench/ --benchmark-json` writes), with times chosen so every
ratio, mean and verdict is known in advance."""
import json
import math

import pytest

from convbench.report import load, write_report
from convbench.report.__main__ import main

MS = 1e-3


def _stats(t, rounds=5):
    # The fields pytest-benchmark 4/5 writes per benchmark; the median is set
    # 10% above the min so the --stat choice is visible.
    return {"min": t, "max": t * 1.3, "mean": t * 1.12, "stddev": t * 0.05, "rounds": rounds,
            "median": t * 1.1, "iqr": t * 0.1, "q1": t * 1.05, "q3": t * 1.15,
            "iqr_outliers": 0, "stddev_outliers": 1, "outliers": "1;0", "ld15iqr": t,
            "hd15iqr": t * 1.3, "ops": 1 / (t * 1.12), "total": t * 1.12 * rounds,
            "iterations": 1}


def _bench(kind, layer, pass_, impl, t, flops=10**9, used_by=("net/a.features.0",),
           device="cpu", reference="torch", **extra):
    info = {**extra, "kind": kind, "layer": layer, "used_by": list(used_by), "pass": pass_,
            "impl": impl,
            "device": device, "dtype": "float32", "flops": flops, "bytes": flops // 10,
            "reference": reference, "pool_sets": 4, "iterations": 1}
    name = f"test_{kind}[{pass_}-{device}-float32-{layer}-{impl}]"
    return {"group": f"{kind} {pass_} {device} float32 {layer}", "name": name,
            "fullname": f"bench/test_x.py::{name}", "params": {"case": "UNSERIALIZABLE[...]"},
            "param": name, "extra_info": info,
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5,
                        "max_time": 1.0, "min_time": 5e-06, "warmup": False},
            "stats": _stats(t)}


def _run_json(path, cb_times=(2 * MS, 3 * MS)):
    benches = []
    for layer, t_torch, t_cb, t_np in (("L1", 4 * MS, cb_times[0], 8 * MS),
                                       ("L2", 9 * MS, cb_times[1], 12 * MS)):
        benches += [_bench("conv", layer, "fwd_bwd", "convbench:auto", t_cb),
                    _bench("conv", layer, "fwd_bwd", "convbench:direct", t_cb * 2),
                    _bench("conv", layer, "fwd_bwd", "torch", t_torch),
                    _bench("conv", layer, "fwd_bwd", "numpy", t_np)]
    # A tiny shape where convbench is 100x slower: shown, but kept out of the means.
    benches += [_bench("conv", "TINY", "fwd_bwd", "convbench:auto", 100 * MS, used_by=("tiny",)),
                _bench("conv", "TINY", "fwd_bwd", "torch", 1 * MS, used_by=("tiny",)),
                _bench("pool", "P1", "fwd", "convbench", 1 * MS, flops=10**6),
                _bench("pool", "P1", "fwd", "torch", 2 * MS, flops=10**6),
                _bench("train", "ee449/cnn_3", "step", "convbench", 20 * MS, batch_size=50),
                _bench("train", "ee449/cnn_3", "step", "torch", 10 * MS, batch_size=50)]
    data = {"machine_info": {"node": "n", "machine": "x86_64", "python_version": "3.11.7",
                             "cpu": {"brand_raw": "Test CPU 9000", "count": 2},
                             "convbench": {"torch": "2.13.0", "numpy": "2.0", "convbench": "0.1.0",
                                           "torch_threads": 2, "cpu_count": 2,
                                           "omp_num_threads": None,
                                           "roofline": {"cpu": {"sgemm_gflops": 170.0,
                                                                "memcpy_gbps": 12.0,
                                                                "dgemm_numpy_gflops": 60.0}}}},
            "commit_info": {"id": "0123456789abcdef", "dirty": False, "branch": "bench"},
            "benchmarks": benches, "datetime": "2026-11-23T10:00:00+00:00", "version": "5.2.3"}
    path.write_text(json.dumps(data))
    return path


def test_ratios_means_and_verdicts(tmp_path):
    src = _run_json(tmp_path / "BENCH.json")
    text = write_report(str(src), str(tmp_path / "out"))
    assert (tmp_path / "out" / "results.md").read_text().strip() == text.strip()
    # Per layer: torch time / convbench time, 4/2 = 2.00 and 9/3 = 3.00; mean sqrt(6).
    assert "2.00 ms · 500.0 · 2.00×" in text
    assert "3.00 ms · 333.3 · 3.00×" in text
    assert f"{math.sqrt(6):.2f}×" in text
    # vs NumPy: 8/2 = 4 and 12/3 = 4: exactly the 4x bar, so met.
    lines = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| CPU")}
    assert "2.45× over 2" in lines["CPU conv2d fwd+bwd vs PyTorch CPU"]
    assert "| met |" in lines["CPU conv2d fwd+bwd vs PyTorch CPU"]
    assert "4.00× over 2" in lines["CPU conv2d fwd+bwd vs NumPy vectorised"]
    assert "| met |" in lines["CPU conv2d fwd+bwd vs NumPy vectorised"]
    assert "not measured in this run" in text  # no GPU rows
    assert "Test CPU 9000" in text and "sgemm 170.0 GFLOP/s" in text
    # The tiny shape is listed (0.01x) but left out of the geometric mean.
    assert "0.01×" in text
    # Training: convbench 2x slower than torch -> 0.50x; 50 images / 20 ms.
    assert "20.00 ms · 2500 img/s · 0.50×" in text


def test_shortfall_is_stated(tmp_path):
    src = _run_json(tmp_path / "BENCH.json", cb_times=(4 * MS, 9 * MS))  # equal to torch
    text = write_report(str(src), str(tmp_path), plots=False)
    line = next(ln for ln in text.splitlines() if ln.startswith("| CPU conv2d fwd+bwd vs PyTorch"))
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
