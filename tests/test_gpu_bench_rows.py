"""The GPU check's benchmark rows, without a GPU: which stage each CUDA row
runs in (bench/gpu_stages.py, most valuable first), the CUDA timing records
(synchronising clock, host-bound flag, input pools), and the report's GPU rows."""
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_stages  # noqa: E402
import layers  # noqa: E402
import rowinfo  # noqa: E402


def _keys():
    for kind, dtypes, passes, impls in (
            ("conv", ("float32", "float16", "bfloat16"), ("fwd", "bwd_input", "bwd_weight",
                                                           "fwd_bwd"),
             ("convbench:auto", "convbench:direct", "cudnn", "cudnn_tf32")),
            ("pool", ("float32", "float16", "bfloat16"), ("fwd", "bwd", "fwd_bwd"),
             ("convbench", "aten")),
            ("train", ("float32",), ("step",), ("convbench", "cudnn")),
            ("overhead", ("float32",), ("fwd", "fwd_bwd"), ("convbench", "torch"))):
        for device in ("cpu", "cuda"):
            for dtype in dtypes:
                for p in passes:
                    for impl in impls:
                        yield gpu_stages.RowKey(kind, device, dtype, p, impl)


def test_every_cuda_row_is_in_one_stage_most_valuable_first():
    keys = list(_keys())
    stage = {k: gpu_stages.stage_of(k) for k in keys}
    assert all(s is None for k, s in stage.items() if k.device == "cpu")
    assert all(s in gpu_stages.NAMES for k, s in stage.items() if k.device == "cuda")
    assert gpu_stages.NAMES[:2] == ("conv-f32-fwd_bwd", "train")
    first = {k for k, s in stage.items() if s == "conv-f32-fwd_bwd"}
    assert first == {k for k in keys if k.device == "cuda" and k.kind == "conv"
                     and k.dtype == "float32" and k.pass_ == "fwd_bwd"}
    assert {k.kind for k, s in stage.items() if s == "train"} == {"train"}
    assert gpu_stages.stage_of(gpu_stages.RowKey("pool", "cuda", "float16", "bwd", "aten")) \
        == "rest"
    with pytest.raises(ValueError, match="unknown --cb-stage"):
        gpu_stages.select([], "everything")


def test_stage_selection_reads_the_collected_rows_parameters():
    class Item:
        def __init__(self, name, params):
            self.name, self.originalname = f"{name}[x]", name
            self.callspec = type("C", (), {"params": params})()

    case = type("Case", (), dict(device="cuda", dtype="float32", pass_="fwd_bwd",
                                 impl="cudnn", layer=None))()
    cpu_case = type("Case", (), dict(device="cpu", dtype="float32", pass_="fwd_bwd",
                                     impl="torch", layer=None))()
    items = [Item("test_conv", {"case": case}), Item("test_conv", {"case": cpu_case}),
             Item("test_training_step", {"name": "m", "impl": "cudnn", "device": "cuda"}),
             Item("test_other", {})]
    kept, dropped = gpu_stages.select(items, "conv-f32-fwd_bwd")
    assert kept == items[:1] and dropped == items[1:]
    assert gpu_stages.select(items, "train")[0] == [items[2]]


# ---------------------------------------------------------------- CUDA timing records


def test_sync_clock_is_the_timer_pytest_benchmark_names_and_notes_the_host():
    from pytest_benchmark.utils import funcname

    import timing

    calls = []
    clock = timing.SyncClock(synchronize=lambda: calls.append(1))
    assert funcname(clock) == timing.CUDA_TIMER_NAME == "cuda_sync_clock"
    t1, t2 = clock(), clock()
    assert t2 >= t1 and len(calls) == 2 and len(clock.marks) == 2
    host, synced = clock.marks[0]
    assert host <= synced


def test_host_timing_flags_rounds_the_host_bounds():
    import timing

    # Two rounds of 10 calls: the host enqueued the last call after 95% / 10% of each.
    bound = [(0.0, 0.0), (0.95, 1.0), (1.0, 1.0), (1.95, 2.0)]
    fast = [(0.0, 0.0), (0.10, 1.0), (1.0, 1.0), (1.10, 2.0)]
    b = timing.host_timing(bound, rounds=2, iterations=10)
    assert b["host_bound"] and b["host_fraction"] == pytest.approx(0.95)
    assert b["host_enqueue_s"] == pytest.approx(0.095) and b["timer"] == "cuda_sync_clock"
    assert not timing.host_timing(fast, rounds=2, iterations=10)["host_bound"]
    # Fewer readings than rounds x 2: pytest-benchmark did not use our clock.
    with pytest.raises(AssertionError, match="synchronising clock"):
        timing.host_timing(bound[:2], rounds=2, iterations=10)


def test_input_pools_are_sized_by_bytes_to_overflow_the_cache():
    import impls

    l2 = 50 * 2**20
    assert impls.pool_size(2**20, "cuda", cache=l2) == 100     # 1 MiB sets: 100 MiB
    assert impls.pool_size(60 * 2**20, "cuda", cache=l2) == 2  # at least 2
    assert impls.pool_size(1000, "cuda", cache=l2) == impls.MAX_SETS["cuda"]
    assert impls.pool_size(2**20, "cpu", cache=32 * 2**20) == 16  # the CPU cap
    info = impls.pool_info(2**20, 100, "cuda", cache=l2)
    assert info["pool_bytes"] == 100 * 2**20 and info["pool_over_2x_cache"]
    assert not impls.pool_info(1000, 256, "cuda", cache=l2)["pool_over_2x_cache"]


def test_cuda_max_pool_peer_is_named_aten_and_tf32_rows_are_marked():
    import impls

    assert impls.pool_impls("cuda") == ["convbench", "aten"]
    info = rowinfo.pool(layers.TINY_POOL, "fwd", "aten", "cuda", "float32", 4)
    assert info["reference"] == "aten"
    assert rowinfo.pool(layers.TINY_POOL, "fwd", "torch", "cpu", "float32", 4)["reference"] \
        == "torch"
    assert rowinfo.conv(layers.TINY_CONV, "fwd", "cudnn_tf32", "cuda", "float32", 4)["math"] \
        == "tf32"
    assert "math" not in rowinfo.conv(layers.TINY_CONV, "fwd", "cudnn", "cuda", "float32", 4)


def _cuda_bench(layer, impl, t, gpu=None, host_bound=False, timer="cuda_sync_clock", **kw):
    info = rowinfo.conv(layer, "fwd_bwd", impl, "cuda", "float32", 4)
    info.update(gpu_s=gpu, host_bound=host_bound, **kw)
    return {"group": "g", "name": f"{layer.id}-{impl}", "extra_info": info,
            "options": {"timer": timer},
            "stats": {"min": t, "median": t, "mean": t, "rounds": 3}}


L1 = layers.ConvLayer(50, 1, 32, 32, 16, 3, 3, used_by=("ee449/cnn_3.features.0",))
L2 = layers.ConvLayer(50, 16, 30, 30, 8, 5, 5, used_by=("ee449/cnn_3.features.2",))


def _write(path, benches, roof=True):
    machine = {"convbench": {"roofline": {"cuda": {"sgemm_gflops": 1e6}} if roof else None}}
    path.write_text(json.dumps({"machine_info": machine, "commit_info": {},
                                "benchmarks": benches, "datetime": ""}))
    return path


def test_report_gives_end_to_end_and_gpu_only_targets_and_flags_host_bound_rows(tmp_path):
    from convbench.report import write_report

    us = 1e-6
    benches = [_cuda_bench(L1, "convbench:auto", 40 * us, gpu=5 * us, host_bound=True),
               _cuda_bench(L1, "cudnn", 20 * us, gpu=10 * us),
               _cuda_bench(L2, "convbench:auto", 30 * us, gpu=10 * us),
               _cuda_bench(L2, "cudnn", 30 * us, gpu=20 * us),
               _cuda_bench(L2, "cudnn_tf32", 30 * us, gpu=15 * us)]
    text = write_report(str(_write(tmp_path / "B.json", benches)), str(tmp_path), plots=False)
    lines = {ln.split("|")[1].strip(): ln for ln in text.splitlines()
             if "`convbench:auto`" in ln and ln.startswith("| GPU conv2d")}
    wall = lines["GPU conv2d fwd+bwd vs cuDNN (TF32 off)"]
    assert "| end to end |" in wall and "0.71× over 2" in wall   # sqrt(0.5 x 1)
    gpu = lines["GPU conv2d fwd+bwd vs cuDNN (TF32 off), kernels only"]
    assert "| GPU only (CUDA graph) |" in gpu and "2.00× over 2" in gpu  # 10/5 and 20/10
    assert "40.0 us" in text and "GPU 5.0 us 2.00×" in text and "**host-bound**" in text
    assert "| **geometric mean ratio, GPU only** | 2.00× |" in text
    assert "Host-bound rows (end-to-end time is the host's Python/dispatch path): **1 of 5**" \
        in text
    assert "| CUDA rows timed with the synchronising clock | ok |" in text


def test_report_flags_cuda_rows_not_timed_by_the_synchronising_clock(tmp_path):
    from convbench.report import load
    from convbench.report.checks import above_roof, checks

    from convbench.report.plots import roofline_rows

    # A TF32 row (even one with a known FLOP saving) is not held to the float32
    # roof, nor drawn under it: counted as not checkable.
    benches = [_cuda_bench(L1, "convbench:auto", 1e-5, timer="perf_counter"),
               _cuda_bench(L1, "cudnn_tf32", 1e-9, max_flop_saving=1.0)]
    run = load(str(_write(tmp_path / "B.json", benches)))
    clock = [c for c in checks(run) if c.name == "CUDA rows timed with the synchronising clock"]
    assert len(clock) == 1 and not clock[0].ok and "perf_counter" in clock[0].details
    bad, checked, unknown, _ = above_roof(run)
    assert (bad, checked, unknown) == ([], 1, 1)
    assert [r.impl for r in roofline_rows(run, "cuda", "float32")] == ["convbench:auto"]


def test_report_merges_the_stage_jsons_of_one_run(tmp_path):
    from convbench.report.__main__ import main

    a = _write(tmp_path / "BENCH_a.json", [_cuda_bench(L1, "convbench:auto", 1e-5),
                                           _cuda_bench(L1, "cudnn", 2e-5)])
    b = _write(tmp_path / "BENCH_b.json", [_cuda_bench(L2, "convbench:auto", 1e-5),
                                           _cuda_bench(L2, "cudnn", 1e-5)], roof=False)
    assert main([str(b), str(a), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    merged = json.loads((tmp_path / "o" / "BENCH_merged.json").read_text())
    assert len(merged["benchmarks"]) == 4
    assert merged["machine_info"]["convbench"]["roofline"]  # from the stage that measured it
    assert "1.41× over 2" in (tmp_path / "o" / "results.md").read_text()  # sqrt(2 x 1)


def test_cuda_rounds_go_through_pytest_benchmark_with_the_sync_clock(benchmark, monkeypatch):
    """timing.run on a 'cuda' row (device calls stubbed): pytest-benchmark must
    read our synchronising clock at the start and end of every round, the row
    records the clock's name, its host timing and its GPU-only time."""
    import types

    import torch
    from pytest_benchmark.utils import funcname

    import timing

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(timing, "gpu_only_time", lambda fn, make_args, calls: (2e-6, None))
    settings = types.SimpleNamespace(budget=0.005, min_rounds=3, gpu_time=True)
    checked = []
    timing.run(benchmark, lambda x: x + 1, [(1,), (2,)], device="cuda", check=checked.append,
               settings=settings, extra_info={"kind": "test"})
    assert checked == [2]
    info = benchmark.extra_info
    assert info["timer"] == "cuda_sync_clock" and info["gpu_s"] == 2e-6
    assert 0.0 <= info["host_fraction"] <= 1.0 and info["pool_sets"] == 2
    assert funcname(benchmark.stats.options["timer"]) == "cuda_sync_clock"
