"""tools/half_sweep.py's summary on made-up timings, and one real round of
its timing loop on a tiny layer (the full sweep needs a quiet machine)."""
import importlib.util
import os
import types

_PATH = os.path.join(os.path.dirname(__file__), "..", "tools", "half_sweep.py")
_spec = importlib.util.spec_from_file_location("half_sweep", _PATH)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def _row(C, ours32, ours16, torch32, torch16):
    return dict(layer=f"C{C}", C=C, K=8, times={
        "convbench:float32": ours32, "convbench:bfloat16": ours16,
        "torch:float32": torch32, "torch:bfloat16": torch16})


def test_summary_ratios_are_theirs_over_ours():
    rows = [_row(1, 1.0, 2.0, 2.0, 8.0), _row(16, 2.0, 1.0, 2.0, 4.0)]
    build = dict(cpu_isa="avx2", conv2d_cpu_half="widened")
    text = sweep.summary(dict(dtype="bfloat16", build=build, rows=rows))
    assert "torch bfloat16 / ours bfloat16: geo-mean 4.000 (range 4.00-4.00, 2 layers)" in text
    assert "ours float32 / ours bfloat16: geo-mean 1.000 (range 0.50-2.00, 2 layers)" in text
    assert "ours float32 / ours bfloat16, C >= 16: geo-mean 2.000" in text
    assert "torch float32 / ours float32: geo-mean 1.414" in text


def test_one_round_on_a_tiny_layer(monkeypatch):
    L = types.SimpleNamespace(id="tiny", N=2, C=3, H=6, W=6, K=4, R=3, S=3, stride=(1, 1),
                              padding=(1, 1), dilation=(1, 1), groups=1, bias=True,
                              out_hw=(6, 6))
    monkeypatch.setattr(sweep, "_layers", lambda: [L])
    data = sweep.sweep(rounds=1, dtype_name="float16", seconds=0.001)
    (row,) = data["rows"]
    assert set(row["times"]) == {"convbench:float32", "convbench:float16", "torch:float32",
                                 "torch:float16"}
    assert all(t > 0 for t in row["times"].values())
    assert data["build"]["conv2d_cpu_half"]
