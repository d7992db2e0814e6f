"""The report's measurement checks (convbench.report.checks): a row faster
than the measured compute roof is flagged as a measurement error; Winograd
rows get their 2.25x FLOP saving; a missing roof is a failed check."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import layers  # noqa: E402
import rowinfo  # noqa: E402

from convbench.report import load, write_report  # noqa: E402
from convbench.report.checks import above_roof, checks  # noqa: E402

ROOF = 100.0  # GFLOP/s
L3 = layers.ConvLayer(50, 16, 30, 30, 8, 3, 3, used_by=("ee449/cnn_4.features.2",))  # Winograd ok
L5 = layers.ConvLayer(50, 16, 30, 30, 8, 5, 5, used_by=("ee449/cnn_3.features.2",))


def _row(layer, impl, gflops, device="cpu", dtype="float32"):
    info = rowinfo.conv(layer, "fwd", impl, device, dtype, 4)
    info["flops"] = 10**9
    t = 1.0 / gflops  # 1 GFLOP in 1/gflops s
    return {"group": "g", "name": f"{layer.id}-{impl}", "extra_info": info,
            "stats": {"min": t, "median": t, "mean": t, "rounds": 3}}


def _run(tmp_path, rows, roofline=True):
    roof = {"cpu": {"sgemm_gflops": ROOF, "sgemm_source": "torch.mm 4096x4096x4096"}}
    data = {"machine_info": {"convbench": {"roofline": roof if roofline else None}},
            "commit_info": {}, "benchmarks": rows, "datetime": ""}
    path = tmp_path / "BENCH.json"
    path.write_text(json.dumps(data))
    return load(str(path))


def test_rows_under_the_roof_pass(tmp_path):
    run = _run(tmp_path, [_row(L5, "torch", 0.9 * ROOF), _row(L5, "convbench:direct", 60.0)])
    result = checks(run)
    assert [c.ok for c in result] == [True, True]
    assert "2 rows checked; the highest, `torch` conv fwd cpu float32" in result[1].details
    assert "90% of its limit" in result[1].details


def test_a_row_above_the_roof_is_a_measurement_error(tmp_path):
    run = _run(tmp_path, [_row(L5, "torch", 1.1 * ROOF), _row(L5, "convbench:direct", 60.0)])
    bad, checked, unknown, _ = above_roof(run)
    assert [(r.impl, round(g), round(lim)) for r, g, lim in bad] == [("torch", 110, 100)]
    assert (checked, unknown) == (2, 0)
    roof_check = checks(run)[1]
    assert not roof_check.ok and "**measurement error**: 1 of 2 rows" in roof_check.details


def test_winograd_rows_may_exceed_the_roof_by_their_flop_saving_only(tmp_path):
    ok = [_row(L3, "convbench:winograd", 2.0 * ROOF), _row(L3, "convbench:auto", 2.0 * ROOF)]
    assert not above_roof(_run(tmp_path, ok))[0]
    # Not beyond 2.25x, and not at all where Winograd does not apply (5x5) or for torch.
    bad = [_row(L3, "convbench:winograd", 2.5 * ROOF), _row(L5, "convbench:auto", 1.2 * ROOF),
           _row(L3, "torch", 1.2 * ROOF)]
    flagged = {(r.layer, r.impl) for r, _, _ in above_roof(_run(tmp_path, bad))[0]}
    assert flagged == {(L3.id, "convbench:winograd"), (L5.id, "convbench:auto"), (L3.id, "torch")}


def test_cudnn_rows_are_counted_as_not_checkable(tmp_path):
    rows = [_row(L3, "cudnn", 10 * ROOF, device="cuda"), _row(L5, "torch", 50.0)]
    bad, checked, unknown, _ = above_roof(_run(tmp_path, rows))
    assert (bad, checked, unknown) == ([], 1, 1)


def test_missing_roof_fails_its_check_and_the_section_says_so(tmp_path):
    run = _run(tmp_path, [_row(L5, "torch", 50.0)], roofline=False)
    assert not checks(run)[0].ok
    path = tmp_path / "BENCH.json"
    text = write_report(str(path), str(tmp_path / "out"), plots=False)
    section = text.split("## Measurement checks")[1].split("\n## ")[0]
    assert "| Compute roof measured in this run (cpu) | **FAILED** | missing for float32" in section
    assert "no row could be checked" in section
