"""The layout probe's golden output (tools/layout_probe/golden.py) against
the PTX ISA's fragment tables, the comparison's diagnosis of a permuted
layout, and (where nvcc is installed) the probe's build, inputs and PTX."""
import json
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "layout_probe"))
sys.path.insert(0, str(ROOT / "tools"))
import compare  # noqa: E402
import golden  # noqa: E402


def test_the_committed_golden_file_is_current():
    assert golden.main(["--check"]) == 0


@pytest.mark.parametrize("shape, a_n, b_n, K", [("k16", 8, 4, 16), ("k8", 4, 2, 8)])
def test_every_fragment_map_covers_its_matrix_once(shape, a_n, b_n, K):
    lanes = range(golden.LANES)
    a = [golden.a_coord(shape, ln, i) for ln in lanes for i in range(a_n)]
    b = [golden.b_coord(shape, ln, i) for ln in lanes for i in range(b_n)]
    c = [golden.c_coord(ln, i) for ln in lanes for i in range(4)]
    assert sorted(a) == [(r, k) for r in range(16) for k in range(K)]
    assert sorted(b) == [(k, n) for k in range(K) for n in range(8)]
    assert sorted(c) == [(r, n) for r in range(16) for n in range(8)]


# Rows of the PTX ISA's figures, written out by hand (lane: elements' (row, col)).
ISA_K16_A = {0: [(0, 0), (0, 1), (8, 0), (8, 1), (0, 8), (0, 9), (8, 8), (8, 9)],
             5: [(1, 2), (1, 3), (9, 2), (9, 3), (1, 10), (1, 11), (9, 10), (9, 11)],
             31: [(7, 6), (7, 7), (15, 6), (15, 7), (7, 14), (7, 15), (15, 14), (15, 15)]}
ISA_K16_B = {0: [(0, 0), (1, 0), (8, 0), (9, 0)], 6: [(4, 1), (5, 1), (12, 1), (13, 1)]}
ISA_K8_A = {0: [(0, 0), (8, 0), (0, 4), (8, 4)], 7: [(1, 3), (9, 3), (1, 7), (9, 7)]}
ISA_K8_B = {0: [(0, 0), (4, 0)], 13: [(1, 3), (5, 3)]}
ISA_C = {0: [(0, 0), (0, 1), (8, 0), (8, 1)], 30: [(7, 4), (7, 5), (15, 4), (15, 5)]}


def test_the_maps_agree_with_the_isas_figures():
    for lane, want in ISA_K16_A.items():
        assert [golden.a_coord("k16", lane, i) for i in range(8)] == want
    for lane, want in ISA_K16_B.items():
        assert [golden.b_coord("k16", lane, i) for i in range(4)] == want
    for lane, want in ISA_K8_A.items():
        assert [golden.a_coord("k8", lane, i) for i in range(4)] == want
    for lane, want in ISA_K8_B.items():
        assert [golden.b_coord("k8", lane, i) for i in range(2)] == want
    for lane, want in ISA_C.items():
        assert [golden.c_coord(lane, i) for i in range(4)] == want
    # ldmatrix: lane 9 holds row 2, columns 2-3 of each 8x8 matrix (.trans: column 2, rows 2-3).
    assert golden.ldmatrix_elements(9, 0, False) == [(2, 2), (2, 3)]
    assert golden.ldmatrix_elements(9, 0, True) == [(2, 2), (3, 2)]


def test_golden_d_is_a_times_b_plus_c_recomputed_with_numpy():
    import numpy as np

    gold = compare.parse(golden.text())
    name, (shape, a_n, b_n, K) = "mma.m16n8k8.tf32", golden.MMAS["mma.m16n8k8.tf32"]
    A, B, C = np.zeros((16, K)), np.zeros((K, 8)), np.zeros((16, 8))
    for ln in range(32):
        for i in range(a_n):
            A[golden.a_coord(shape, ln, i)] = golden.a_value("full", a_n, ln, i)
        for i in range(b_n):
            B[golden.b_coord(shape, ln, i)] = golden.b_value("full", b_n, ln, i)
        for i in range(4):
            C[golden.c_coord(ln, i)] = golden.c_value("full", ln, i)
    D = A @ B + C
    for ln in range(32):
        for i in range(4):
            got = compare._as_float(gold[(f"{name}/full", ln, f"d{i}")])
            assert got == D[golden.c_coord(ln, i)]
    # cp.async zero-fill: lane 3 of the 16-byte copy takes 3 bytes, the rest are zero.
    w0 = gold[("cp.async.16", 3, "w0")].to_bytes(4, "little")
    assert w0[3] == 0 and all(w0[:3]) and gold[("cp.async.16", 3, "w1")] == 0


def test_compare_names_a_permuted_register_and_where_its_value_belongs(tmp_path):
    gold = compare.parse(golden.text())
    got = dict(gold)
    k0, k2 = ("mma.m16n8k16.f16/full", 0, "d0"), ("mma.m16n8k16.f16/full", 0, "d2")
    got[k0], got[k2] = gold[k2], gold[k0]
    del got[("ldmatrix.x4", 4, "r1")]
    result, extra, ok = compare.compare(gold, got)
    assert not ok and extra == []
    bad = result["mma.m16n8k16.f16/full"]["mismatches"]
    assert [(m["lane"], m["slot"]) for m in bad] == [(0, "d0"), (0, "d2")]
    assert "lane 0's d2" in bad[0]["got_is_golden_of"]
    assert result["ldmatrix.x4"]["mismatches"][0]["got"] == "missing"
    assert result["cp.async.4"]["matched"] == result["cp.async.4"]["lines"]
    dump = tmp_path / "dump.txt"
    dump.write_text("".join(f"{p} {ln} {s} 0x{v:08x}\n" for (p, ln, s), v in got.items()))
    assert compare.main([str(dump), "--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "compare.json").read_text())["ok"] is False
    assert "A, B or C/D fragment map" in (tmp_path / "compare.md").read_text()
    dump.write_text(golden.text())
    assert compare.main([str(dump)]) == 0
    dump.write_text("not a probe line\n")
    assert compare.main([str(dump)]) == 2


@pytest.mark.skipif(shutil.which("nvcc") is None and not pathlib.Path("/usr/local/cuda/bin/nvcc")
                    .exists(), reason="needs nvcc (the probe's build; no GPU needed)")
def test_the_probe_builds_prints_golden_inputs_and_holds_every_instruction(tmp_path):
    from gpucheck import probe_stage

    assert probe_stage.dry(tmp_path, "sm_90") == 0
    res = json.loads((tmp_path / "layout_probe" / "dry.json").read_text())
    assert res["problems"] == [] and len(res["checked"]) == 4
