"""What of the GPU check (tools/gpucheck) can be checked without a GPU: the
verdicts (a stage that checked nothing fails), the SUMMARY writer, the plan's
budget arithmetic, the sanitizer's filter options, the archive (atomic,
truncating, and surviving a SIGKILL mid-stage), the deadline plugin, and the
script's front door."""
import json
import pathlib
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from gpucheck import archive, plan, sanitizer, selftest, summary, verdicts  # noqa: E402
from gpucheck.verdicts import Outcome  # noqa: E402

# ---------------------------------------------------------------- junit and CUDA tests

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="3" tests="7">
<testcase classname="tests.test_cuda_ops" name="test_a[direct]" time="0.1" />
<testcase classname="tests.test_cuda_ops" name="test_a[fused]" time="0.1">
  <failure message="assert 0.1 &lt;= 1e-05">trace</failure></testcase>
<testcase classname="tests.test_cuda_ops" name="test_b" time="0.1">
  <error message="fixture failed">trace</error></testcase>
<testcase classname="tests.test_cuda_ops" name="test_c" time="0.0">
  <skipped type="pytest.skip" message="needs a second GPU">skip</skipped></testcase>
<testcase classname="tests.test_cuda_ops" name="test_f" time="0.0">
  <skipped type="pytest.skip" message="[no GPU] convbench has no usable GPU">s</skipped></testcase>
<testcase classname="tests.test_runtime" name="test_d" time="0.0">
  <skipped type="pytest.skip" message="[gpu-check deadline] not started">skip</skipped>
</testcase>
<testcase classname="tests.test_runtime" name="test_e" time="0.2" />
<testcase time="0.000" />
</testsuite></testsuites>
"""


def _case(name, skip=None, fail=False):
    body = f'<skipped message="{skip}">s</skipped>' if skip else "<failure>x</failure>" \
        if fail else ""
    return f'<testcase classname="tests.test_cuda_ops" name="{name}">{body}</testcase>'


def _junit(path, *cases):
    path.write_text("<testsuites><testsuite>" + "".join(cases) + "</testsuite></testsuites>")


def _o(tmp_path, rc=0, cut=False, log="x.log"):
    return Outcome(rc, 1.0, 60.0, cut, tmp_path / log)


def test_parse_junit_counts_every_outcome_and_why_tests_skipped(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    c = verdicts.parse_junit(path)
    assert {k: c[k] for k in ("passed", "failed", "errors", "skipped", "skipped_no_gpu",
                              "skipped_deadline", "interrupted", "total", "executed")} \
        == {"passed": 2, "failed": 1, "errors": 1, "skipped": 3, "skipped_no_gpu": 1,
            "skipped_deadline": 1, "interrupted": 1, "total": 7, "executed": 4}
    assert c["failures"] == ["tests.test_cuda_ops::test_a[fused]",
                             "tests.test_cuda_ops::test_b (error)"]
    assert verdicts.parse_junit(tmp_path / "missing.xml") is None
    (tmp_path / "cut.xml").write_text("<testsuites><testsuite>")  # killed while writing
    assert verdicts.parse_junit(tmp_path / "cut.xml") is None


def test_the_no_gpu_tag_is_the_one_the_tests_skip_with():
    sys.path.insert(0, str(ROOT / "tests"))
    import _helpers

    assert _helpers.NO_GPU == verdicts.NO_GPU_TAG
    from gpucheck import deadline_plugin

    assert deadline_plugin.DEADLINE_TAG == verdicts.DEADLINE_TAG


def test_cuda_tests_are_ok_only_when_tests_ran_and_none_lacked_a_gpu(tmp_path):
    xml = tmp_path / "pytest_cuda.xml"
    _junit(xml, _case("a"), _case("b"))
    assert verdicts.cuda_tests(_o(tmp_path), tmp_path)[0] == "ok"
    # Everything skipped because the module saw no GPU: nothing was checked.
    _junit(xml, _case("a", skip="[no GPU] convbench has no usable GPU"), _case("b", skip="[no GPU]"))
    status, detail = verdicts.cuda_tests(_o(tmp_path), tmp_path)
    assert status == "failed" and "no CUDA test ran" in detail
    # One skipped for want of a GPU among passes fails too (a device went missing).
    _junit(xml, _case("a"), _case("b", skip="[no GPU] cuda device lost"))
    assert verdicts.cuda_tests(_o(tmp_path), tmp_path) == \
        ("failed", "1 skipped for lack of a GPU (1 passed, 0 failed, 0 errors, 1 skipped)")
    # Other skips are fine; the deadline's make it partial.
    _junit(xml, _case("a"), _case("b", skip="needs two GPUs"))
    assert verdicts.cuda_tests(_o(tmp_path), tmp_path)[0] == "ok"
    _junit(xml, _case("a"), _case("b", skip="[gpu-check deadline] not started"))
    assert verdicts.cuda_tests(_o(tmp_path), tmp_path)[0] == "partial"
    _junit(xml, _case("a"), _case("b", fail=True))
    assert verdicts.cuda_tests(_o(tmp_path, rc=1), tmp_path)[0] == "failed"
    _junit(xml, _case("a"))
    assert verdicts.cuda_tests(_o(tmp_path, rc=-9, cut=True), tmp_path)[0] == "failed"
    xml.unlink()
    assert verdicts.cuda_tests(_o(tmp_path), tmp_path)[0] == "failed"


def test_the_dry_run_proves_the_gpu_verdict_fails_an_all_skipped_run(tmp_path):
    xml = tmp_path / "pytest_cuda.xml"
    _junit(xml, _case("a", skip="[no GPU] x"), _case("b", skip="[no GPU] y"))
    status, detail = verdicts.cuda_tests_dry(_o(tmp_path), tmp_path)
    assert status == "ok" and "on a GPU this would fail" in detail
    _junit(xml, _case("a", skip="[no GPU] x"), _case("b", skip="needs a second GPU"))
    assert verdicts.cuda_tests_dry(_o(tmp_path), tmp_path)[0] == "failed"


# ---------------------------------------------------------------- sanitizers

MEMCHECK_LOG = """========= COMPUTE-SANITIZER
case conv direct fwd float32 edge: rel. error 5.1e-08 ok
========= Invalid __global__ read of size 4 bytes
=========     at convbench::cuda_conv::direct_fwd+0x1f0 in direct.cu:40
========= Invalid __global__ read of size 4 bytes
========= Invalid __global__ write of size 4 bytes
SANITIZE CASES: 64 of 64 run, 1 wrong: conv direct fwd float16 edge
SANITIZE COVERAGE: 44 of 44 family x pass x dtype
========= ERROR SUMMARY: 3 errors
"""
RACECHECK_LOG = """========= COMPUTE-SANITIZER
SANITIZE CASES STOPPED BY DEADLINE after 40 of 64 cases
SANITIZE CASES: 40 of 64 run, 0 wrong
SANITIZE COVERAGE: 30 of 44 family x pass x dtype
========= RACECHECK SUMMARY: 2 hazards displayed (0 errors, 2 warnings)
"""
CUT_LOG = """========= COMPUTE-SANITIZER
case conv direct fwd float32 edge: rel. error 5.1e-08 ok
"""
CLEAN_LOG = """SANITIZE CASES STOPPED BY DEADLINE after 50 of 64 cases
SANITIZE CASES: 50 of 64 run, 0 wrong
SANITIZE COVERAGE: 44 of 44 family x pass x dtype
========= ERROR SUMMARY: 0 errors
"""
NOTHING_LOG = """SANITIZE CASES: 0 of 64 run, 0 wrong
SANITIZE COVERAGE: 0 of 44 family x pass x dtype
========= ERROR SUMMARY: 0 errors
"""


def test_sanitizer_logs_count_errors_cases_and_coverage_and_a_cut_log_is_never_clean():
    m = verdicts.sanitizer_result(MEMCHECK_LOG)
    assert (m["errors"], m["complete"]) == (3, True)
    assert (m["cases_run"], m["cases_total"], m["cases_wrong"]) == (64, 64, 1)
    assert (m["covered"], m["coverable"]) == (44, 44)
    r = verdicts.sanitizer_result(RACECHECK_LOG)
    assert (r["errors"], r["warnings"], r["stopped_by_deadline"]) == (0, 2, True)
    one = verdicts.sanitizer_result("RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)")
    assert one["errors"] == 1
    cut = verdicts.sanitizer_result(CUT_LOG)
    assert cut["errors"] is None and not cut["complete"]


@pytest.mark.parametrize("log, rc, cut, want", [
    (CLEAN_LOG, 0, False, "ok"),           # larger shapes cut, every combination ran
    (RACECHECK_LOG, 0, False, "partial"),  # 30 of 44 combinations
    (MEMCHECK_LOG, 17, False, "failed"),   # errors
    (NOTHING_LOG, 0, False, "failed"),     # 0 cases: nothing was checked
    (CUT_LOG, 0, False, "failed"),         # no summary line
    (CLEAN_LOG, -9, True, "failed"),       # killed at its hard limit
    (CLEAN_LOG, 1, False, "failed"),       # a nonzero exit with a clean log
])
def test_sanitizer_verdict(tmp_path, log, rc, cut, want):
    (tmp_path / "x.log").write_text(log)
    assert verdicts.sanitizer(_o(tmp_path, rc=rc, cut=cut), tmp_path)[0] == want


NEW_HELP = """  --kernel-name arg   Filter the kernels ... kns=<substring>
  --report-api-errors arg (=explicit)  Print errors if any API call fails."""
OLD_HELP = """  --kernel-regex arg   Kernel filter ... kns=<substring>"""


def test_sanitizer_reports_are_filtered_to_our_kernels_with_api_errors_off():
    opts, notes = sanitizer.filter_options(NEW_HELP)
    assert opts == ["--kernel-name", "kns=convbench", "--report-api-errors", "no"] and not notes
    opts, notes = sanitizer.filter_options(OLD_HELP)
    assert opts == ["--kernel-regex", "kns=convbench"] and "API-error" in notes[0]
    assert sanitizer.filter_options("")[0] == [] and len(sanitizer.filter_options("")[1]) == 2
    argv, _ = sanitizer.command("/cs", "racecheck", NEW_HELP)
    assert argv[:5] == ["/cs", "--tool", "racecheck", "--error-exitcode", "17"]
    assert "kns=convbench" in argv
    # The sanitizer stage's command: the filtered tool, then the cases with their deadline.
    ctx = plan.Ctx(ROOT, pathlib.Path("/o"), "py", "90", "gpu", "abc", sanitizer="/cs",
                   sanitizer_help=NEW_HELP)
    stage = next(s for s in plan.GPU_STAGES if s.name == "memcheck")
    argv = stage.argv(ctx, 1234.0)
    assert argv[:3] == ["/cs", "--tool", "memcheck"] and argv[-2:] == ["--deadline", "1234"]
    assert stage.env(ctx) == {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}
    ctx.sanitizer = None
    assert stage.argv(ctx, 1.0) == "compute-sanitizer not found"  # the stage then fails


# ---------------------------------------------------------------- other verdicts


def test_a_stage_that_timed_nothing_or_got_a_wrong_answer_fails(tmp_path):
    def meta(**kw):
        (tmp_path / "conv_cells_table.json").write_text(json.dumps(
            dict({"planned": 10, "done": 10, "wrong": [], "notes": []}, **kw)))
        return verdicts.conv_cells(_o(tmp_path), tmp_path, "table")[0]

    assert meta() == "ok"
    assert meta(done=4) == "partial"
    assert meta(done=0) == "failed"
    assert meta(wrong=["L1 fwd float32 direct"]) == "failed"
    assert verdicts.conv_cells(_o(tmp_path, cut=True), tmp_path, "table")[0] == "failed"
    assert verdicts.conv_cells(_o(tmp_path), tmp_path, "sweep")[0] == "failed"  # no file


def test_bench_verdict_needs_the_first_stage_and_probe_verdict_every_register(tmp_path):
    (tmp_path / "bench").mkdir()

    def bench(stages):
        (tmp_path / "bench" / "stages.json").write_text(json.dumps(
            {"planned": 3, "order": ["a", "b", "c"], "stages": stages}))
        return verdicts.bench(_o(tmp_path), tmp_path)[0]

    s = {"rows": 5, "complete": True, "rc": 0, "json": "a.json"}
    assert bench({"a": s}) == "ok"
    assert bench({"a": dict(s, complete=False)}) == "partial"
    assert bench({"a": dict(s, rc=1)}) == "failed"
    assert bench({"a": dict(s, rows=0)}) == "failed"
    (tmp_path / "layout_probe").mkdir()
    res = {"ok": True, "probes": {"mma/full": {"lines": 96, "matched": 96, "mismatches": []}}}
    (tmp_path / "layout_probe" / "compare.json").write_text(json.dumps(res))
    assert verdicts.layout_probe(_o(tmp_path), tmp_path)[0] == "ok"
    res = {"ok": False, "probes": {"mma/full": {"lines": 96, "matched": 95, "mismatches": [1]}}}
    (tmp_path / "layout_probe" / "compare.json").write_text(json.dumps(res))
    assert verdicts.layout_probe(_o(tmp_path), tmp_path) == \
        ("failed", "1 of 96 registers differ: mma/full (1 differ)")


# ---------------------------------------------------------------- the plan


@pytest.mark.parametrize("mode", sorted(plan.PLANS))
def test_shares_fit_the_budget_and_every_stage_gets_its_share(mode):
    stages = plan.PLANS[mode]
    assert sum(s.share for s in stages) <= 1.0 + 1e-9
    budget = 480.0
    # Whatever earlier stages used (none of their slack, or all of it), each
    # stage's limit is at least its share and the sum never passes the budget.
    for used_fraction in (0.0, 0.5, 1.0):
        left = budget
        for i, s in enumerate(stages):
            lim = plan.limit(stages, i, left, budget)
            want = s.share * budget if s.max_s is None else min(s.share * budget, s.max_s)
            assert lim >= want - 1e-6, (s.name, lim, want)
            left -= lim * used_fraction
            assert left >= -1e-6


def test_the_gpu_stages_run_in_order_of_value():
    names = [s.name for s in plan.GPU_STAGES]
    assert names == ["preflight", "build", "installed", "layout-probe", "cuda-tests", "memcheck",
                     "layer-table", "racecheck", "synccheck", "initcheck", "tuning-sweep", "bench"]
    probe = plan.GPU_STAGES[names.index("layout-probe")]
    assert probe.max_s <= 30  # the cap
    with pytest.raises(AssertionError, match="sum to"):
        plan.check_plan(plan.GPU_STAGES + (plan.Stage("extra", 0.5, None, None),))


def test_the_build_records_the_commit_and_needs_no_network():
    ctx = plan.Ctx(ROOT, pathlib.Path("/o"), "py", "90;100", "gpu", "1234abcd")
    env = plan.GPU_STAGES[1].env(ctx)
    assert env["CONVBENCH_COMMIT"] == "1234abcd" and env["PIP_NO_INDEX"] == "1"
    assert env["CUDAARCHS"] == "90;100" and env["SKBUILD_BUILD_DIR"] == "build/gpu-check-sm90_100"
    assert plan.GPU_STAGES[1].argv(ctx, 0)[-4:] == ["install", "--no-build-isolation",
                                                    "--no-deps", str(ROOT)]


# ---------------------------------------------------------------- SUMMARY


def _outdir(tmp_path, tsv, mode="gpu"):
    out = tmp_path / "gpu-2026-12-01"
    (out / "meta").mkdir(parents=True)
    (out / "stages.tsv").write_text(tsv)
    (out / "meta" / "run.json").write_text(json.dumps({
        "started": "2026-12-01 10:00", "budget": 480, "elapsed": 470, "archs": "90",
        "commit": "abc123", "dirty": False, "mode": mode,
        "planned": [s.name for s in plan.PLANS[mode]]}))
    (out / "meta" / "preflight.json").write_text(json.dumps({
        "versions": {"gpu": "NVIDIA H200", "gpu_capability": "9.0", "gpu_memory_gib": 139.8,
                     "gpu_sms": 132, "gpu_l2_mib": 60.0, "driver": "570.86.15",
                     "torch": "2.13.0+cu130", "torch_cuda": "13.0", "cudnn": 91100},
        "notes": [], "problems": []}))
    (out / "meta" / "installed.json").write_text(json.dumps({
        "build_info": {"cuda_compiled": True, "cuda_architectures": "90",
                       "cuda_runtime": "13000", "commit": "abc123"}, "problems": []}))
    (out / "pytest_cuda.xml").write_text(JUNIT)
    (out / "sanitizer_memcheck.log").write_text(MEMCHECK_LOG)
    (out / "sanitizer_racecheck.log").write_text(RACECHECK_LOG)
    (out / "sanitizer_synccheck.log").write_text(CUT_LOG)
    (out / "layers.md").write_text("# convbench CUDA conv2d vs cuDNN, NVIDIA H200\n\n"
                                   "| layer | pass |\n|---|---|\n| N50-C1 | fwd |\n")
    return out


def _ok(names):
    return "".join(f"{s}\tok\t1\t10\texit 0\n" for s in names)


def test_summary_has_machine_counts_sanitizers_stages_and_table(tmp_path):
    out = _outdir(tmp_path, _ok(["preflight", "build", "installed"])
                  + "cuda-tests\tfailed\t120\t120\t150 passed, 1 failed\n"
                  "memcheck\tfailed\t40\t57\t3 errors\n"
                  "racecheck\tpartial\t50\t57\t30 of 44\n"
                  "synccheck\trunning\t0\t38\tstarted\n")
    text = summary.write(out)
    assert text.strip() == (out / "SUMMARY.md").read_text().strip()
    assert "| GPU | NVIDIA H200 (sm 9.0, 139.8 GiB, 132 SMs, L2 60.0 MiB) |" in text
    for row in ("| driver | 570.86.15 |", "| CUDA runtime: torch | 13.0 |",
                "| CUDA runtime: convbench build | 13000 |", "| cuDNN | 91100 |"):
        assert row in text
    assert "overall: **FAILED**" in text
    assert "the build recorded `abc123`" in text
    assert "| build | ok | 1 | 10 | exit 0 |" in text
    assert "| synccheck | **running** (cut while running) | 0 | 38 |" in text
    assert "| layer-table | not reached | | | |" in text
    assert "| 2 | 1 | 1 | 3 (1 / 1) | 7 |" in text and "**Interrupted**" in text
    assert "- failed: `tests.test_cuda_ops::test_a[fused]`" in text
    assert "| memcheck | 3 | **FAILED** | 64 of 64, 1 wrong | 44 of 44 |" in text
    assert "| racecheck | 0 (2 warnings) | **partial** | 40 of 64 (deadline) | 30 of 44 |" in text
    assert "| synccheck | unknown (no summary line) | **running**" in text
    assert "| initcheck | – | not reached |" in text
    assert "### convbench CUDA conv2d vs cuDNN, NVIDIA H200" in text


@pytest.mark.parametrize("tail, word, code", [
    ("", "ok", 0),
    ("bench\tpartial\t1\t1\tx\n", "INCOMPLETE", 3),
    ("bench\tskipped\t0\t1\tno time\n", "INCOMPLETE", 3),
    ("bench\trunning\t0\t1\tx\n", "INCOMPLETE", 3),
    (None, "INCOMPLETE", 3),                       # never reached
    ("bench\tfailed\t1\t1\tx\n", "FAILED", 1),
])
def test_overall_is_ok_only_when_every_planned_stage_is(tail, word, code):
    names = [s.name for s in plan.GPU_STAGES]
    tsv = _ok(names[:-1]) + (_ok(names[-1:]) if tail == "" else tail or "")
    rows = [dict(zip(("name", "status"), ln.split("\t")[:2])) for ln in tsv.splitlines()]
    got_word, got_code = summary.overall(names, rows)
    assert word in got_word and got_code == code


def test_read_stages_keeps_the_last_line_of_a_stage(tmp_path):
    p = tmp_path / "stages.tsv"
    p.write_text("build\trunning\t0\t10\tstarted\nbuild\tok\t9\t10\texit 0\nbad\n")
    assert [(s["name"], s["status"]) for s in summary.read_stages(p)] == [("build", "ok")]


def test_a_dry_run_summary_says_what_it_is(tmp_path):
    out = _outdir(tmp_path, _ok(["preflight"]), mode="dry")
    text = summary.render(summary.gather(out))
    assert "dry run (no GPU" in text and "overall: **INCOMPLETE**" in text
    assert "| collect-cuda-tests | not reached |" in text


# ---------------------------------------------------------------- archive


def test_the_archive_holds_every_file_and_truncates_huge_ones(tmp_path):
    out = tmp_path / "res"
    (out / "logs").mkdir(parents=True)
    (out / "SUMMARY.md").write_text("s")
    (out / "logs" / "big.log").write_bytes(b"H" * 3000 + b"M" * 4000 + b"T" * 3000)
    (out / "x.tmp").write_text("a temporary file is never archived")
    dest = tmp_path / "a.tar.gz"
    assert archive.snapshot(out, dest, limit=6000) == 2
    got = archive.members(dest)
    assert set(got) == {"SUMMARY.md", "logs/big.log"}
    big = got["logs/big.log"]
    assert big.startswith(b"H" * 3000) and big.endswith(b"T" * 3000)
    assert b"[... 4000 bytes left out" in big
    with tarfile.open(dest) as tar:  # one folder, named as the results folder
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"res"}
    assert not (tmp_path / "a.tar.gz.tmp").exists()


def test_an_archive_inside_the_results_folder_does_not_archive_itself(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    dest = tmp_path / "self.tar.gz"
    archive.snapshot(tmp_path, dest)
    archive.snapshot(tmp_path, dest)
    assert set(archive.members(dest)) == {"f.txt"}


def test_a_failing_snapshot_keeps_the_last_good_archive(tmp_path, monkeypatch):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.txt").write_text("first")
    dest = tmp_path / "a.tar.gz"
    arch = archive.Archiver(tmp_path / "r", dest)
    arch.now()
    monkeypatch.setattr(archive.tarfile.TarFile, "addfile",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    (tmp_path / "r" / "a.txt").write_text("second")
    arch.now()
    assert arch.errors == ["OSError: disk full"]
    assert archive.members(dest) == {"a.txt": b"first"}
    assert archive.Archiver(tmp_path, None).now() is None  # no archive asked for: a no-op


def test_a_run_killed_mid_stage_leaves_an_archive_with_what_it_did():
    problems = []
    line = selftest.kill_simulation(problems)
    assert problems == [] and "survived a SIGKILL mid-stage" in line


def test_the_selftest_sees_a_missing_stage_log(tmp_path):
    out = tmp_path / "o"
    (out / "meta").mkdir(parents=True)
    (out / "logs").mkdir()
    for name in ("SUMMARY.md", "gpu_check.log", "meta/run.json", "logs/preflight.log"):
        (out / name).write_text("x")
    (out / "stages.tsv").write_text(_ok(["preflight", "build"]))
    dest = tmp_path / "o.tar.gz"
    archive.snapshot(out, dest)
    problems = []
    selftest.check_archive(dest, out, problems)
    assert problems == ["the archive lacks logs/build.log (stage build)"]


# ---------------------------------------------------------------- the runner and the script


def test_a_stage_that_overruns_is_cut_and_fails_and_the_rest_still_run(tmp_path, monkeypatch):
    from gpucheck import runner

    quick = plan.Stage("quick", 0.2, lambda c, d: [sys.executable, "-c", "print(1)"],
                       verdicts.exit_status)
    hang = plan.Stage("hang", 0.2, lambda c, d: [sys.executable, "-c",
                                                 "import time; time.sleep(60)"],
                      verdicts.exit_status, max_s=5)
    needs = plan.Stage("needs-hang", 0.2, lambda c, d: [sys.executable, "-c", "print(2)"],
                       verdicts.exit_status, needs=("hang",))
    last = plan.Stage("last", 0.2, lambda c, d: [sys.executable, "-c", "print(3)"],
                      verdicts.exit_status)
    stages = (quick, hang, needs, last)
    monkeypatch.setattr(runner, "KILL_AFTER", 1.0)
    monkeypatch.setitem(plan.PLANS, "test", stages)
    ctx = plan.Ctx(ROOT, tmp_path, sys.executable, "90", "test", "c0ffee",
                   archive=str(tmp_path / "a.tar.gz"))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "run.json").write_text(json.dumps(
        {"mode": "test", "planned": [s.name for s in stages]}))
    run = runner.Run(ctx, stages, 60.0, archive.Archiver(tmp_path, ctx.archive))
    assert run.run() == 1
    rows = {r["name"]: r for r in summary.read_stages(tmp_path / "stages.tsv")}
    assert rows["quick"]["status"] == "ok" and rows["last"]["status"] == "ok"
    assert rows["hang"]["status"] == "failed" and "did not stop itself" in rows["hang"]["detail"]
    assert float(rows["hang"]["seconds"]) < 10
    assert rows["needs-hang"]["status"] == "skipped"
    got = archive.members(tmp_path / "a.tar.gz")
    assert {"logs/quick.log", "logs/hang.log", "stages.tsv", "SUMMARY.md"} <= set(got)


def test_the_commit_comes_from_the_caller_before_git():
    from gpucheck import runner

    assert runner.commit_of(ROOT, "feedbeef") == ("feedbeef", None)
    assert runner.commit_of(pathlib.Path("/"), None) == ("unknown", None)


def test_script_syntax_help_and_bad_option():
    script = str(ROOT / "tools" / "gpu_check.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    help_ = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--dry-run" in help_.stdout and "--archive" in help_.stdout
    assert "pip install --no-build-isolation --no-deps ." in help_.stdout
    assert subprocess.run(["bash", script, "--bogus"], capture_output=True).returncode == 2


def test_the_deadline_plugin_skips_what_it_did_not_start(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    xml = tmp_path / "j.xml"
    env_args = [sys.executable, "-m", "pytest", str(tmp_path / "test_x.py"), "-q",
                "-p", "no:cacheprovider", "-p", "gpucheck.deadline_plugin",
                f"--junitxml={xml}"]
    env = {"PYTHONPATH": str(ROOT / "tools"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(env_args + ["--gc-deadline", "1"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    c = verdicts.parse_junit(xml)
    assert (c["skipped"], c["skipped_deadline"], c["executed"]) == (2, 2, 0)
    subprocess.run(env_args + ["--gc-deadline", "9999999999"], env=env, timeout=120, check=True,
                   capture_output=True)
    assert verdicts.parse_junit(xml)["passed"] == 2


def test_cuda_test_files_are_the_files_with_cuda_marks(tmp_path):
    from gpucheck import checks

    files = checks.cuda_test_files()
    assert {"tests/test_cuda_ops.py", "tests/test_runtime.py"} <= set(files)
    assert "tests/test_conv2d.py" not in files
    (tmp_path / "tests").mkdir()
    mark = "@pytest.mark." + "cuda"  # not spelt out: this file holds no `cuda` test
    (tmp_path / "tests" / "test_x.py").write_text(f"import pytest\n{mark}\ndef t(): pass\n")
    (tmp_path / "tests" / "test_y.py").write_text("def test_cuda_free(): pass  # cuda\n")
    assert checks.cuda_test_files(tmp_path) == ["tests/test_x.py"]


def test_without_modules_makes_a_package_unimportable(tmp_path):
    (tmp_path / "probe.py").write_text(
        "try:\n    import hypothesis.strategies\n    print('imported')\n"
        "except ModuleNotFoundError as e:\n    print('blocked', e.name)\nimport json\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "without_modules.py"), "hypothesis",
                          "-m", "probe"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "blocked hypothesis"  # the parent package, first
