"""The GPU check's per-layer table and tuning sweep (tools/gpucheck/conv_cells.py,
conv_report.py) and its sanitizer cases, without a GPU: the plan (one pass,
no cell timed twice), the calls each cell makes (run on the CPU against
float64), the reports' ratio convention, and the cases' coverage."""
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
from gpucheck import conv_cells as cc  # noqa: E402
from gpucheck import conv_report as cr  # noqa: E402
from gpucheck import sanitize_cases as sc  # noqa: E402

import layers  # noqa: E402

ALGOS = ["direct", "implicit_gemm"]


def _fake_candidates(layer, pass_index):
    return [("direct", 0, ""), ("implicit_gemm", 0, ""), ("implicit_gemm", 1, "bm32"),
            ("implicit_gemm", 2, "bm128")]


def test_the_table_is_the_homework_catalogue_in_order_of_value():
    from convbench import models

    homework = cc.homework_layers()
    assert homework == [c for c in layers.conv_layers() if c.suite == "homework"]
    assert any(c.C == 3 for c in homework)  # the colour networks' first layers
    for c in homework:  # every layer at its own network's batch size
        assert c.N == models.spec(c.used_by[0].split(".")[0]).batch_size
    cells = cc.table_cells(homework[:2], ALGOS)
    maths = [c.math for c in cells]
    # float32 first (every algorithm, auto, cuDNN), then TF32, then the half types.
    assert maths == sorted(maths, key=["float32", "tf32", "float16", "bfloat16"].index)
    first = [(c.layer.id, c.pass_, c.impl) for c in cells[:len(ALGOS) + 2]]
    assert first == [(homework[0].id, "fwd", i) for i in ALGOS + ["auto", "cudnn"]]
    assert {c.impl for c in cells if c.math == "tf32"} == {"cudnn"}
    assert {c.impl for c in cells if c.math in cc.HALF} == {"auto", "cudnn"}
    assert len({c.key for c in cells}) == len(cells)


def test_the_sweep_reuses_the_tables_cells_and_adds_each_forced_tiling():
    homework = cc.homework_layers()[:2]
    table = cc.table_cells(homework, ALGOS)
    sweep = cc.sweep_cells(homework, ALGOS, _fake_candidates)
    shared = {c.key for c in table} & {c.key for c in sweep}
    # The algorithms at their own tiling and auto: timed once, by the table.
    assert len(shared) == len(homework) * len(cc.PASSES) * (len(ALGOS) + 1)
    forced = [c for c in sweep if c.engine]
    assert len(forced) == len(homework) * len(cc.PASSES) * 2
    assert {c.label for c in forced} == {"implicit_gemm:bm32", "implicit_gemm:bm128"}


class _FakeCuda:
    """torch.cuda as time_us sees it: events that report `ms` per call made
    between them, and graph capture unsupported (the eager loop)."""

    def __init__(self, ms):
        self.ms, self.calls = ms, 0
        cuda = self

        class Event:
            def __init__(self, **kw):
                self.at = 0

            def record(self):
                self.at = cuda.calls

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return (end.at - self.at) * cuda.ms

        self.Event = Event
        self.synchronize = lambda: None
        self.Stream = lambda: type("S", (), {"wait_stream": lambda s, o: None})()
        self.current_stream = self.Stream

    def CUDAGraph(self):
        raise RuntimeError("capture unsupported here")


@pytest.mark.parametrize("ms", [1e-3, 0.5, 50.0])
def test_a_cell_is_capped_by_calls_whatever_a_call_costs(ms):
    import types

    cuda = _FakeCuda(ms)
    fake_torch = types.SimpleNamespace(cuda=cuda)

    def fn():
        cuda.calls += 1

    us, graphed, calls = cc.time_us(fn, fake_torch)
    assert not graphed and us == pytest.approx(ms * 1000)
    assert cuda.calls <= 1 + cc.REPEATS * cc.MAX_CALLS
    assert cuda.calls * ms / 1000 <= max(2 * cc.TARGET_S, (1 + cc.REPEATS) * ms / 1000)


def _layer():
    lay = next(c for c in cc.homework_layers() if c.padding != (0, 0))
    return layers.ConvLayer(2, lay.C, lay.H, lay.W, lay.K, lay.R, lay.S, lay.stride,
                            lay.padding, lay.dilation, lay.groups, lay.bias)  # batch 2


@pytest.mark.parametrize("pass_", cc.PASSES)
def test_each_cells_calls_compute_their_pass_against_float64(pass_):
    """The calls a GPU cell makes, run on the CPU: ours (the registered
    operator) and the peer (ATen), each within tolerance of float64."""
    import torch

    lc = cc.LayerCalls(_layer(), torch, "float32", device="cpu")
    assert lc.exact[pass_].dtype == torch.float64
    for impl in ("direct", "cudnn"):
        cell = cc.Cell("table", "float32", lc.layer, pass_, impl)
        assert lc.error(lc.call(cell)(), pass_) <= cc.TOLERANCE["float32"]
    # An answer 0.1% off is WRONG.
    assert lc.error(lc.exact[pass_].float() * 1.001, pass_) > cc.TOLERANCE["float32"]


def test_forced_tilings_go_through_the_launch_layer(monkeypatch):
    import torch

    from convbench import _launch

    seen = []
    monkeypatch.setattr(_launch, "conv2d_forward", lambda *a: seen.append(a[-2:]))
    lc = cc.LayerCalls(_layer(), torch, "float32", device="cpu")
    lc.call(cc.Cell("sweep", "float32", lc.layer, "fwd", "implicit_gemm", 3, "bm32"))()
    assert seen == [("implicit_gemm", 3)]


def _rec(layer, pass_, impl, us, math="float32", ok=True, engine=0, auto_is=None,
         used_by=("n.a", "n.b")):
    cell = cc.Cell("table", math, layers.ConvLayer(1, 1, 4, 4, 1, 3, 3), pass_, impl, engine,
                   "t" if engine else "")
    rec = cc.record_of(cell, us, True, 0.0 if ok else 1.0, 7, auto_is)
    rec.update(layer=layer, key=f"{layer}|{pass_}|{math}|{impl}|{engine}", used_by=list(used_by))
    return rec


def _store(*recs):
    return {r["key"]: r for r in recs}


def test_the_layer_table_ratio_is_cudnn_time_over_ours_and_a_wrong_kernel_never_wins():
    store = _store(_rec("L1", "fwd", "direct", 10.0), _rec("L1", "fwd", "implicit_gemm", 4.0),
                   _rec("L1", "fwd", "auto", 5.0, auto_is="implicit_gemm"),
                   _rec("L1", "fwd", "cudnn", 10.0),
                   _rec("L2", "fwd", "direct", 20.0), _rec("L2", "fwd", "implicit_gemm", 1.0,
                                                           ok=False),
                   _rec("L2", "fwd", "auto", 40.0, auto_is="direct"),
                   _rec("L2", "fwd", "cudnn", 10.0, used_by=("n.c",)),
                   _rec("L1", "fwd", "cudnn", 2.5, math="tf32"),
                   _rec("L1", "fwd", "auto", 8.0, math="float16"),
                   _rec("L1", "fwd", "cudnn", 4.0, math="float16"))
    text = cr.layer_table(store, "Test GPU")
    assert "| L1 | n.a +1 | fwd | 10.0 | 4.0 | 5.0 (implicit_gemm) | 10.0 | 2.00× | " \
           "2.50× (implicit_gemm) |" in text
    assert "| L2 | n.a +1 | fwd | 20.0 | WRONG | 40.0 (direct) | 10.0 | 0.25× | 0.50× (direct) |" \
        in text
    assert "- fwd: geometric mean cuDNN / auto = **0.71×** over 2 layers" in text
    assert "wrong: L2 fwd float32 implicit_gemm" in text
    assert "| L1 | fwd | 5.0 | 2.5 | 0.50× |" in text        # TF32 cuDNN against our float32
    assert "## float16" in text and "| L1 | fwd | 8.0 | 4.0 | 0.50× |" in text
    assert "## bfloat16" not in text                       # not timed: not shown


def test_the_tuning_table_judges_auto_against_the_fastest_correct_configuration():
    store = _store(_rec("L1", "fwd", "direct", 10.0), _rec("L1", "fwd", "implicit_gemm", 4.0),
                   _rec("L1", "fwd", "implicit_gemm:t", 3.0, engine=1),
                   _rec("L1", "fwd", "implicit_gemm:w", 1.0, engine=2, ok=False),
                   _rec("L1", "fwd", "auto", 5.0), _rec("L1", "fwd", "cudnn", 1.0))
    for r in store.values():
        r["label"] = r["impl"]
    text = cr.tuning_table(store, "G")
    assert "| L1 | fwd | 5.0 | implicit_gemm:t 3.0 | 1.67 |" in text
    assert "WRONG: implicit_gemm:w" in text and "within 5% of the fastest: 0/1" in text


def test_the_store_survives_a_torn_last_line_and_the_meta_counts_this_parts_cells(tmp_path):
    homework = cc.homework_layers()[:1]
    cells = cc.table_cells(homework, ALGOS)
    for c in cells[:3]:
        cc.append(tmp_path, cc.record_of(c, 1.0, True, 0.0, 5))
    with open(tmp_path / "cells.jsonl", "a") as f:
        f.write('{"key": "torn')  # killed mid-write
    store = cc.load(tmp_path)
    assert list(store) == [c.key for c in cells[:3]]
    meta = cc.write_meta(tmp_path, "table", cells, store, [], False)
    assert (meta["planned"], meta["done"], meta["wrong"]) == (len(cells), 3, [])
    assert json.loads((tmp_path / "conv_cells_table.json").read_text()) == meta


def test_the_sweep_candidates_are_the_cuda_builds():
    import convbench

    if not convbench.has_cuda():
        pytest.skip("convbench built without CUDA (the candidates are its host code; no GPU needed)")
    layer = cc.homework_layers()[0]
    names = [[f"{a}:{t}" if v else a for a, v, t in cc.cuda_candidates(layer, i)]
             for i in range(3)]
    assert names[0][0] == "direct" and {"implicit_gemm:bm128", "implicit_gemm:bm32"} <= set(names[0])
    assert any(n.startswith("fused:ch") for n in names[1])
    assert "implicit_gemm:split1" in names[2] and not any(n.startswith("fused") for n in names[2])


# ---------------------------------------------------------------- sanitizer cases


def test_sanitizer_cases_cover_every_family_pass_and_dtype_small_shapes_first():
    algos = ["direct", "implicit_gemm", "fused"]
    cases = sc.cases(algos)
    want = {(a, p, d) for a in algos for p in sc.CONV_PASSES for d in sc.DTYPES}
    want |= {(f, p, d) for f in ("max_pool2d", "avg_pool2d") for p in sc.POOL_PASSES
             for d in sc.DTYPES}
    assert {c.combination for c in cases} == want
    first_large = next(i for i, c in enumerate(cases) if c.shape_name == "homework")
    assert {c.combination for c in cases[:first_large]} == want
    assert all(c.shape_name == "homework" for c in cases[first_large:])


@pytest.mark.parametrize("pass_", ["fwd", "bwd_input", "bwd_weight"])
def test_a_sanitizer_case_checks_its_operator_against_float64(pass_):
    import torch
    import torch.nn.functional as F

    case = sc.Case("conv", "direct", pass_, "float32", sc.EDGE, "edge")
    assert sc.run_case(case, torch, F, device="cpu") <= sc.TOLERANCE["float32"]
    for family, (edge, _) in sc.POOL_SHAPES.items():
        pool = sc.Case("pool", family, "bwd" if pass_ != "fwd" else "fwd", "float32", edge, "edge")
        assert sc.run_case(pool, torch, F, device="cpu") <= sc.TOLERANCE["float32"]


def test_the_sanitizer_cases_without_a_gpu_check_nothing_and_say_so(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is usable here")
    assert sc.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
