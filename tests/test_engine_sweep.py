"""tools/cpu_engine_sweep.py judges `auto` against the fastest engine per pass;
the judgement itself is checked here on made-up timings (the sweep needs a
quiet machine and minutes, so it is not run in the tests)."""
import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "tools", "cpu_engine_sweep.py")
_spec = importlib.util.spec_from_file_location("cpu_engine_sweep", _PATH)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def _row(layer, pass_, auto, **times):
    return dict(layer=layer, pass_=pass_, shape=[], auto=auto, times=times)


def test_summary_counts_near_misses_and_fwd_bwd_ratios():
    rows = [
        _row("A", "fwd", "direct:flat", torch=2.0, **{"direct:flat": 1.0, "direct:kvec": 1.2}),
        _row("A", "bwd_input", "direct:kvec", torch=2.0, **{"direct:flat": 1.0, "direct:kvec": 2.0}),
        _row("A", "bwd_weight", "direct:flat", torch=1.0, **{"direct:flat": 0.5}),
        _row("B", "fwd", "winograd:f4x4", torch=1.0, **{"direct:kvec": 0.97, "winograd:f4x4": 1.0}),
    ]
    text = sweep.summary(dict(isa="avx512", torch_isa="AVX512", env={}, rows=rows))
    # A bwd_input: auto at 50% of the fastest; B fwd: at 97% (near enough)
    assert "auto within 95% of the fastest engine: 3 / 4 passes" in text
    assert "A bwd_input: auto direct:kvec at 50% of direct:flat" in text
    # fwd+bwd: A = 5.0 / 3.5 with auto, 5.0 / 2.5 with the fastest; B = 1.0 / 1.0 and 1.0 / 0.97
    ga = (5.0 / 3.5 * 1.0) ** 0.5
    gb = (5.0 / 2.5 * 1.0 / 0.97) ** 0.5
    assert f"auto {ga:.2f}x" in text and f"fastest engine per pass {gb:.2f}x" in text
    assert "min 1.00x" in text


def test_kernel_names_cover_every_candidate():
    pytest.importorskip("convbench._C")
    from convbench import _C
    shape = [2, 16, 9, 9, 32, 3, 3, 7, 7, 1, 1, 0, 0, 1, 1, 1]
    names = {sweep._kernel_name(a, v) for a, v in _C.conv2d_candidates(0, 0, shape)}
    assert names == {"direct:flat", "direct:kvec", "im2col:gemm", "winograd:f2x2",
                     "winograd:f4x4"}
