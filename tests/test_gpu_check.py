"""What of the GPU check can be checked without a GPU: the SUMMARY writer
(junit counts, sanitizer logs, stage states), the CUDA test-file discovery,
the optional-extras blocker, the benchmark stages, the CUDA timing records
(synchronising clock, host-bound flag, input pools), the per-layer table's
plan and ratio convention, the sanitizer cases, and the report's GPU rows."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402
import gpu_stages  # noqa: E402
import layers  # noqa: E402
import rowinfo  # noqa: E402

# ---------------------------------------------------------------- SUMMARY parts

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="tests.test_cuda_ops" name="test_a[direct]" time="0.1" />
<testcase classname="tests.test_cuda_ops" name="test_a[fused]" time="0.1">
  <failure message="assert 0.1 &lt;= 1e-05">trace</failure></testcase>
<testcase classname="tests.test_cuda_ops" name="test_b" time="0.1">
  <error message="fixture failed">trace</error></testcase>
<testcase classname="tests.test_cuda_ops" name="test_c" time="0.0">
  <skipped type="pytest.skip" message="needs a second GPU">skip</skipped></testcase>
<testcase classname="tests.test_runtime" name="test_d" time="0.0">
  <skipped type="pytest.skip" message="a GPU is usable here">skip</skipped></testcase>
<testcase classname="tests.test_runtime" name="test_e" time="0.2" />
<testcase time="0.000" />
</testsuite></testsuites>
"""

MEMCHECK_LOG = """========= COMPUTE-SANITIZER
case conv direct fwd float32 edge: rel. error 5.1e-08 ok
========= Invalid __global__ read of size 4 bytes
=========     at convbench::cuda_conv::direct_fwd+0x1f0 in direct.cu:40
=========     by thread (3,0,0) in block (7,0,0)
========= Invalid __global__ read of size 4 bytes
========= Invalid __global__ write of size 4 bytes
SANITIZE CASES: 64 of 64 run, 1 wrong: conv direct fwd float16 edge
========= ERROR SUMMARY: 3 errors
"""
RACECHECK_LOG = """========= COMPUTE-SANITIZER
SANITIZE CASES: 40 of 64 run, 0 wrong
SANITIZE CASES STOPPED BY BUDGET after 40 of 64 cases
========= RACECHECK SUMMARY: 2 hazards displayed (0 errors, 2 warnings)
"""
CUT_LOG = """========= COMPUTE-SANITIZER
case conv direct fwd float32 edge: rel. error 5.1e-08 ok
"""


def test_parse_junit_counts_every_outcome_and_an_interrupted_test(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    c = gpu_check.parse_junit(path)
    assert {k: c[k] for k in ("passed", "failed", "errors", "skipped", "interrupted", "total")} \
        == {"passed": 2, "failed": 1, "errors": 1, "skipped": 2, "interrupted": 1, "total": 6}
    assert c["failures"] == ["tests.test_cuda_ops::test_a[fused]",
                             "tests.test_cuda_ops::test_b (error)"]
    assert gpu_check.parse_junit(tmp_path / "missing.xml") is None
    (tmp_path / "cut.xml").write_text("<testsuites><testsuite>")  # killed while writing
    assert gpu_check.parse_junit(tmp_path / "cut.xml") is None


def test_sanitizer_results_count_errors_and_never_call_a_cut_log_clean():
    m = gpu_check.sanitizer_result(MEMCHECK_LOG)
    assert (m["errors"], m["complete"]) == (3, True)
    assert (m["cases_run"], m["cases_total"], m["cases_wrong"]) == (64, 64, 1)
    r = gpu_check.sanitizer_result(RACECHECK_LOG)
    assert (r["errors"], r["warnings"], r["stopped_by_budget"]) == (0, 2, True)
    one = gpu_check.sanitizer_result("RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)")
    assert one["errors"] == 1
    cut = gpu_check.sanitizer_result(CUT_LOG)
    assert cut["errors"] is None and not cut["complete"]
    assert gpu_check.sanitizer_result("========= ERROR SUMMARY: 0 errors")["errors"] == 0


def _outdir(tmp_path, dry=False):
    out = tmp_path / "gpu-2026-12-01"
    (out / "meta").mkdir(parents=True)
    (out / "bench").mkdir()
    (out / "stages.tsv").write_text(
        "preflight\tok\t4\t60\texit 0\n"
        "build\tok\t95\t288\texit 0\n"
        "installed\tok\t3\t60\texit 0\n"
        "cuda-tests\ttimed-out\t120\t120\texit 124; 150 passed\n"
        "sanitizer-memcheck\tfailed\t40\t57\texit 17; ERROR SUMMARY: 3 errors\n"
        "sanitizer-racecheck\tok\t50\t57\texit 0\n"
        "sanitizer-synccheck\ttimed-out\t38\t38\texit 124\n")
    (out / "meta" / "run.json").write_text(json.dumps({
        "started": "2026-12-01 10:00", "budget": 480, "elapsed": 470, "archs": "90",
        "commit": "abc123", "dirty": False, "cuda_test_files": ["tests/test_cuda_ops.py"],
        "planned": list(gpu_check.GPU_STAGES)}))
    (out / "meta" / "preflight.json").write_text(json.dumps({
        "versions": {"gpu": "NVIDIA H200", "gpu_capability": "9.0", "gpu_memory_gib": 139.8,
                     "gpu_sms": 132, "gpu_l2_mib": 60.0, "driver": "570.86.15",
                     "torch": "2.13.0+cu130", "torch_cuda": "13.0", "cudnn": 91100,
                     "nvcc": "release 13.0, V13.0.48", "compute_sanitizer": "2025.3.0",
                     "python": "3.11.7", "cpu_count": 16},
        "notes": [], "problems": []}))
    (out / "meta" / "installed.json").write_text(json.dumps({
        "build_info": {"cuda_compiled": True, "cuda_architectures": "90",
                       "cuda_runtime": "13000"}, "algorithms_cuda": ["auto", "direct"],
        "problems": []}))
    (out / "pytest_cuda.xml").write_text(JUNIT)
    (out / "sanitizer_memcheck.log").write_text(MEMCHECK_LOG)
    (out / "sanitizer_racecheck.log").write_text(RACECHECK_LOG)
    (out / "sanitizer_synccheck.log").write_text(CUT_LOG)
    (out / "layers.md").write_text("# convbench CUDA conv2d vs cuDNN, float32, NVIDIA H200\n\n"
                                   "| layer | pass |\n|---|---|\n| N50-C1 | fwd |\n")
    (out / "bench" / "BENCH_conv-f32-fwd_bwd.json").write_text(json.dumps(
        {"benchmarks": [{}, {}, {}]}))
    return out


def test_summary_has_machine_counts_sanitizers_stages_and_table(tmp_path):
    out = _outdir(tmp_path)
    assert gpu_check.main(["summary", str(out)]) == 0
    text = (out / "SUMMARY.md").read_text()
    assert "| GPU | NVIDIA H200 (sm 9.0, 139.8 GiB, 132 SMs, L2 60.0 MiB) |" in text
    for row in ("| driver | 570.86.15 |", "| CUDA runtime: torch | 13.0 |",
                "| CUDA runtime: convbench build | 13000 |", "| torch | 2.13.0+cu130 |",
                "| cuDNN | 91100 |"):
        assert row in text
    assert "overall: **FAILED**" in text
    assert "| build | ok | 95 | 288 | exit 0 |" in text
    # Cut by its limit: recorded as such, never as a pass; what never ran says so.
    assert "| cuda-tests | **TIMED OUT** | 120 |" in text
    assert "| layer-table | not reached | | | |" in text
    assert "| sanitizer-initcheck | not reached |" in text
    assert "| 2 | 1 | 1 | 2 | 6 |" in text and "**Interrupted**" in text
    assert "- failed: `tests.test_cuda_ops::test_a[fused]`" in text
    assert "| memcheck | 3 | **FAILED** | 64 of 64, 1 wrong |" in text
    assert "| racecheck | 0 (2 warnings) | ok | 40 of 64 (budget) |" in text
    assert "| synccheck | unknown (no summary line) | **TIMED OUT** |" in text
    assert "| initcheck | – | not reached |" in text
    assert "### convbench CUDA conv2d vs cuDNN, float32, NVIDIA H200" in text
    assert "| N50-C1 | fwd |" in text
    assert "| conv-f32-fwd_bwd | 3 | [bench/BENCH_conv-f32-fwd_bwd.json]" in text
    assert "`CONVBENCH_CUDA=ON CUDAARCHS=90 pip install --no-build-isolation --no-deps .`: ok " \
           "in 95 s" in text


def test_summary_of_a_clean_run_is_ok_and_a_dry_run_says_what_it_is(tmp_path):
    out = _outdir(tmp_path)
    (out / "stages.tsv").write_text("".join(f"{s}\tok\t1\t10\texit 0\n"
                                            for s in gpu_check.GPU_STAGES))
    text = gpu_check.render(gpu_check.gather(out, dry_run=False))
    assert "overall: ok" in text
    (out / "stages.tsv").write_text("preflight\tok\t1\t10\texit 0\n")
    run = json.loads((out / "meta" / "run.json").read_text())
    run["planned"] = list(gpu_check.DRY_STAGES)
    (out / "meta" / "run.json").write_text(json.dumps(run))
    dry = gpu_check.render(gpu_check.gather(out, dry_run=True))
    assert "dry run (no GPU" in dry and "overall: **INCOMPLETE**" in dry
    assert "| collect-cuda-tests | not reached |" in dry


def test_read_stages_keeps_the_last_line_of_a_stage(tmp_path):
    p = tmp_path / "stages.tsv"
    p.write_text("build\tfailed\t3\t10\texit 1\nbuild\tok\t9\t10\texit 0\nbad line\n")
    assert [(s["name"], s["status"]) for s in gpu_check.read_stages(p)] == [("build", "ok")]


# ---------------------------------------------------------------- the script's inputs


def test_cuda_test_files_are_the_files_with_cuda_marks(tmp_path):
    files = gpu_check.cuda_test_files()
    assert {"tests/test_cuda_ops.py", "tests/test_runtime.py"} <= set(files)
    assert "tests/test_conv2d.py" not in files
    (tmp_path / "tests").mkdir()
    mark = "@pytest.mark." + "cuda"  # not spelt out: this file holds no `cuda` test
    (tmp_path / "tests" / "test_x.py").write_text(f"import pytest\n{mark}\ndef t(): pass\n")
    (tmp_path / "tests" / "test_y.py").write_text("def test_cuda_free(): pass  # cuda\n")
    assert gpu_check.cuda_test_files(tmp_path) == ["tests/test_x.py"]


def test_without_modules_makes_a_package_unimportable(tmp_path):
    (tmp_path / "probe.py").write_text(
        "try:\n    import hypothesis.strategies\n    print('imported')\n"
        "except ModuleNotFoundError as e:\n    print('blocked', e.name)\nimport json\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "without_modules.py"), "hypothesis",
                          "-m", "probe"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "blocked hypothesis"  # the parent package, first


def test_script_syntax_help_and_bad_option():
    script = str(ROOT / "tools" / "gpu_check.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    help_ = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--dry-run" in help_.stdout
    assert "pip install --no-build-isolation --no-deps ." in help_.stdout
    assert subprocess.run(["bash", script, "--bogus"], capture_output=True).returncode == 2


# ---------------------------------------------------------------- benchmark stages


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


# ---------------------------------------------------------------- per-layer table


def _table():
    import gpu_layer_table

    return gpu_layer_table


def test_layer_table_uses_the_benchmark_catalogue():
    from convbench import models

    t = _table()
    homework = t.homework_layers()
    assert homework == [c for c in layers.conv_layers() if c.suite == "homework"]
    assert any(c.C == 3 for c in homework)  # the colour networks' first layers
    for c in homework:  # every layer at its own network's batch size
        net = c.used_by[0].split(".")[0]
        assert c.N == models.spec(net).batch_size
    items = t.plan(["direct", "implicit_gemm"], homework[:2])
    assert [(lay.id, p) for lay, p, _ in items][:3] == [(homework[0].id, p) for p in t.PASSES]
    assert items[0][2] == ["direct", "implicit_gemm", "auto", "cudnn"]


def test_layer_table_ratio_is_peer_time_over_ours_and_wrong_outputs_show():
    t = _table()
    algos = ["direct", "fused"]
    rows = [t.finish_row({"layer": "L1", "pass": "fwd", "used_by": ["n.a", "n.b"], "wrong": [],
                          "checked": 4, "direct": 10.0, "fused": 4.0, "auto": 5.0,
                          "cudnn": 10.0, "auto_is": "fused"}, algos),
            t.finish_row({"layer": "L2", "pass": "fwd", "used_by": ["n.c"], "wrong": ["fused"],
                          "checked": 4, "direct": 20.0, "fused": 1.0, "fused_error": 0.5,
                          "auto": 40.0, "cudnn": 10.0, "auto_is": "direct"}, algos)]
    assert rows[0]["ratio_auto"] == pytest.approx(2.0)   # cuDNN 10 us / ours 5 us
    assert rows[0]["best_ours"] == "fused" and rows[0]["ratio_best"] == pytest.approx(2.5)
    assert rows[1]["best_ours"] == "direct"  # a wrong kernel is never the best
    text = t.markdown(rows, algos, {"device": "Test GPU", "stopped_by_budget": True,
                                    "layers_done": 2, "layers_total": 35})
    assert "| L1 | n.a +1 | fwd | 10.0 | 4.0 | 5.0 (fused) | 10.0 | 2.00× | 2.50× (fused) |" \
        in text
    assert "| L2 | n.c | fwd | 20.0 | WRONG | 40.0 (direct) | 10.0 | 0.25× |" in text
    assert "cuDNN time / ours" in text and "Stopped by the time budget** after 2 of 35" in text
    assert "- fwd: geometric mean cuDNN / auto = **0.71×** over 2 layers" in text
    assert "wrong: L2 fwd fused" in text


def test_layer_table_writes_all_three_files(tmp_path):
    t = _table()
    row = t.finish_row({"layer": "L1", "pass": "fwd", "used_by": [], "wrong": [], "checked": 1,
                        "direct": 2.0, "auto": 2.0, "cudnn": 3.0, "auto_is": "direct"},
                       ["direct"])
    t.write_outputs(str(tmp_path), [row], ["direct"], {"device": "G"})
    assert (tmp_path / "layers.csv").read_text().splitlines()[1].startswith("L1,fwd,,2.000")
    assert json.loads((tmp_path / "layers.json").read_text())["rows"][0]["ratio_auto"] == 1.5
    assert "1.50×" in (tmp_path / "layers.md").read_text()


# ---------------------------------------------------------------- sanitizer cases


def test_sanitizer_cases_cover_every_family_pass_and_dtype():
    import gpu_sanitize_cases as g

    algos = ["direct", "implicit_gemm", "fused"]
    cases = g.cases(algos)
    covered = {(c.family, c.pass_, c.dtype) for c in cases}
    want = {(a, p, d) for a in algos for p in g.CONV_PASSES for d in g.DTYPES}
    want |= {("max_pool2d", p, d) for p in g.POOL_PASSES for d in g.DTYPES}
    assert covered == want
    # Every family, pass and dtype before the first large (slow under racecheck) shape.
    first_large = next(i for i, c in enumerate(cases) if c.shape_name == "homework")
    assert {(c.family, c.pass_, c.dtype) for c in cases[:first_large]} == want
    assert all(c.shape_name == "homework" for c in cases[first_large:])


@pytest.mark.parametrize("pass_", ["fwd", "bwd_input", "bwd_weight"])
def test_sanitizer_case_checks_its_operator_against_float64(pass_):
    import torch
    import torch.nn.functional as F

    import gpu_sanitize_cases as g

    case = g.Case("conv", "direct", pass_, "float32", g.EDGE, "edge")
    assert g.run_case(case, torch, F, device="cpu") <= g.TOLERANCE["float32"]
    pool = g.Case("pool", "max_pool2d", "bwd" if pass_ != "fwd" else "fwd", "float32",
                  g.POOL_EDGE, "edge")
    assert g.run_case(pool, torch, F, device="cpu") <= g.TOLERANCE["float32"]


# ---------------------------------------------------------------- report: GPU rows


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


def test_a_benchmark_stage_cut_by_the_budget_does_not_fail_the_check(tmp_path):
    out = _outdir(tmp_path)
    lines = [f"{s}\tok\t1\t10\texit 0\n" for s in gpu_check.GPU_STAGES]
    lines += ["bench-conv-f32-fwd_bwd\ttimed-out\t60\t60\texit 124\n",
              "bench-train\tskipped\t0\t5\tno time left in the 480 s budget\n"]
    (out / "stages.tsv").write_text("".join(lines))
    text = gpu_check.render(gpu_check.gather(out, dry_run=False))
    assert "overall: ok (benchmark stages cut by the budget: bench-conv-f32-fwd_bwd, " \
           "bench-train)" in text
    assert "| bench-conv-f32-fwd_bwd | **TIMED OUT** | 60 |" in text
    (out / "stages.tsv").write_text("".join(lines[:-2]) + "layer-table\ttimed-out\t9\t9\texit 124\n")
    assert "overall: **FAILED**" in gpu_check.render(gpu_check.gather(out, dry_run=False))


def test_layer_table_calls_compute_each_pass_of_a_catalogue_layer():
    """The table's calls of ours and of the peer, on the CPU: the same
    arguments the GPU run passes, checked against its float64 answers."""
    import torch
    import torch.nn.functional as F

    t = _table()
    layer = next(c for c in t.homework_layers() if c.padding != (0, 0))
    layer = layers.ConvLayer(2, layer.C, layer.H, layer.W, layer.K, layer.R, layer.S,
                             layer.stride, layer.padding, layer.dilation, layer.groups,
                             layer.bias)  # the same geometry at batch 2
    ours, aten, exact = t._calls(layer, torch, F, device="cpu")
    for p in t.PASSES:
        assert exact[p].dtype == torch.float64
        assert t._rel_err(ours(p, "direct")(), exact[p]) <= t.TOLERANCE
        assert t._rel_err(aten(p)(), exact[p]) <= t.TOLERANCE


# ---------------------------------------------------------------- tuning sweep


def test_tuning_sweep_judges_auto_against_the_fastest_correct_configuration():
    import gpu_tuning_sweep as sw

    row = {"layer": "L1", "pass": "fwd", "wrong": ["fused:ch8"], "graphed": {},
           "us": {"direct": 10.0, "implicit_gemm:bm128": 4.0, "fused:ch8": 3.0, "auto": 5.0}}
    assert sw.best_of(row) == "implicit_gemm:bm128"  # a wrong output is never the fastest
    text = sw.markdown([row], {"device": "G"})
    assert "| L1 | fwd | 5.0 | implicit_gemm:bm128 4.0 | 1.25 |" in text
    assert "WRONG: fused:ch8" in text and "within 5% of the fastest: 0/1" in text


def test_tuning_sweep_runs_each_pass_of_a_catalogue_layer_against_float64():
    import torch

    import gpu_tuning_sweep as sw

    t = _table()
    layer = next(c for c in t.homework_layers() if c.padding != (0, 0))
    layer = layers.ConvLayer(2, layer.C, layer.H, layer.W, layer.K, layer.R, layer.S,
                             layer.stride, layer.padding, layer.dilation, layer.groups,
                             layer.bias)
    run, exact = sw._runner(layer, torch, device="cpu")
    for p in t.PASSES:  # (the CPU's engines: the call path, not the CUDA tilings)
        assert t._rel_err(run(p, "direct", 0)(), exact[p]) <= t.TOLERANCE


def test_tuning_sweep_candidates_are_the_cuda_builds():
    import convbench

    if not convbench.has_cuda():
        pytest.skip("convbench built without CUDA (the candidates are its host code; no GPU needed)")
    import gpu_tuning_sweep as sw

    layer = _table().homework_layers()[0]
    names = [[c[0] for c in sw.candidates(layer, i)] for i in range(3)]
    assert names[0][0] == "direct" and {"implicit_gemm:bm128", "implicit_gemm:bm32"} <= set(names[0])
    assert any(n.startswith("fused:ch") for n in names[1])
    assert "implicit_gemm:split1" in names[2] and not any(n.startswith("fused") for n in names[2])
