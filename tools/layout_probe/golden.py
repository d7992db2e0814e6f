"""The layout probe's expected output, computed from the fragment layouts the
PTX ISA documents (not from any code that uses them):

  "Matrix Fragments for mma.m16n8k16 with floating point type"  (f16, bf16)
  "Matrix Fragments for mma.m16n8k8"                             (tf32)
  "Warp-level matrix load instruction: ldmatrix"                 (.m8n8 .x4, .trans)
  "Data Movement and Conversion Instructions: cp.async"          (zero-fill)

The inputs are probe_inputs.h's formulas, restated here; the probe prints its
own inputs, so a drift between the two copies shows as differing a/b/c lines
(a probe bug, not the hardware). Each map below is the ISA's row/column formula
for element i of lane `lane` (groupID g = lane >> 2, threadID_in_group t = lane % 4).

    python tools/layout_probe/golden.py            # print the golden lines
    python tools/layout_probe/golden.py --check    # the committed golden.txt is current
"""
from __future__ import annotations

import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE / "golden.txt"
LANES = 32
VARIANTS = ("full", "rows", "cols")
# probe name -> (shape, A elements per lane, B elements per lane, K)
MMAS = {"mma.m16n8k16.f16": ("k16", 8, 4, 16), "mma.m16n8k16.bf16": ("k16", 8, 4, 16),
        "mma.m16n8k8.tf32": ("k8", 4, 2, 8)}
CP_SIZES = (16, 8, 4)
PITCH = 16
POISON = 0xEE


# ---------------------------------------------------------------- the ISA's maps


def a_coord(shape, lane, i):
    """(row, col) of A element a_i held by `lane`."""
    g, t = lane >> 2, lane % 4
    if shape == "k16":
        row = g if (0 <= i < 2 or 4 <= i < 6) else g + 8
        col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
        return row, col
    row = g if i in (0, 2) else g + 8
    col = t if i in (0, 1) else t + 4
    return row, col


def b_coord(shape, lane, i):
    """(row, col) of B element b_i held by `lane`."""
    g, t = lane >> 2, lane % 4
    if shape == "k16":
        return t * 2 + (i & 1) + (8 if i >= 2 else 0), g
    return (t if i == 0 else t + 4), g


def c_coord(lane, i):
    """(row, col) of accumulator element c_i / d_i held by `lane` (both shapes)."""
    g, t = lane >> 2, lane % 4
    return (g if i < 2 else g + 8), t * 2 + (i & 1)


def ldmatrix_elements(lane, j, trans):
    """(row, col) in matrix j of the two halves (low, high) of register j."""
    r, c = lane // 4, 2 * (lane % 4)
    return [(c, r), (c + 1, r)] if trans else [(r, c), (r, c + 1)]


# ---------------------------------------------------------------- the probe's inputs


def a_value(variant, per_lane, lane, i):
    return 1 if variant == "cols" else per_lane * lane + i


def b_value(variant, per_lane, lane, i):
    return 1 if variant == "rows" else per_lane * lane + i


def c_value(variant, lane, i):
    return 4 * lane + i if variant == "full" else 0


def f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def f16_bits(v):
    return struct.unpack("<H", struct.pack("<e", float(v)))[0]


def bf16_bits(v):
    return f32_bits(v) >> 16  # exact for the probe's integers (< 256)


def matrix_value(j, row, col):
    return 64 * j + 8 * row + col


def source_byte(i):
    return i % 251 + 1


def source_bytes(size, lane):
    return lane % (size + 1)


# ---------------------------------------------------------------- expected lines


def _mma_lines(name, variant):
    shape, a_n, b_n, K = MMAS[name]
    M, N = 16, 8
    A = [[None] * K for _ in range(M)]
    B = [[None] * N for _ in range(K)]
    C = [[None] * N for _ in range(M)]
    for lane in range(LANES):
        for i in range(a_n):
            r, c = a_coord(shape, lane, i)
            A[r][c] = a_value(variant, a_n, lane, i)
        for i in range(b_n):
            r, c = b_coord(shape, lane, i)
            B[r][c] = b_value(variant, b_n, lane, i)
        for i in range(4):
            r, c = c_coord(lane, i)
            C[r][c] = c_value(variant, lane, i)
    D = [[sum(A[m][k] * B[k][n] for k in range(K)) + C[m][n] for n in range(N)]
         for m in range(M)]
    assert max(max(row) for row in D) < 2 ** 24  # exact in float accumulation
    half = bf16_bits if name.endswith("bf16") else f16_bits
    probe = f"{name}/{variant}"
    out = []
    for lane in range(LANES):
        if shape == "k16":
            a = [half(a_value(variant, a_n, lane, 2 * r)) |
                 half(a_value(variant, a_n, lane, 2 * r + 1)) << 16 for r in range(4)]
            b = [half(b_value(variant, b_n, lane, 2 * r)) |
                 half(b_value(variant, b_n, lane, 2 * r + 1)) << 16 for r in range(2)]
        else:
            a = [f32_bits(a_value(variant, a_n, lane, r)) for r in range(4)]
            b = [f32_bits(b_value(variant, b_n, lane, r)) for r in range(2)]
        c = [f32_bits(c_value(variant, lane, r)) for r in range(4)]
        d = [f32_bits(D[r][col]) for r, col in (c_coord(lane, i) for i in range(4))]
        for prefix, words in (("a", a), ("b", b), ("c", c), ("d", d)):
            out += [(probe, lane, f"{prefix}{k}", w) for k, w in enumerate(words)]
    return out


def _ldmatrix_lines(trans):
    name = "ldmatrix.x4.trans" if trans else "ldmatrix.x4"
    out = []
    for lane in range(LANES):
        for j in range(4):
            (r0, c0), (r1, c1) = ldmatrix_elements(lane, j, trans)
            out.append((name, lane, f"r{j}", matrix_value(j, r0, c0) | matrix_value(j, r1, c1) << 16))
    return out


def _cp_async_lines(size):
    out = []
    for lane in range(LANES):
        n = source_bytes(size, lane)
        data = [source_byte(lane * size + p) if p < n else 0 for p in range(size)]
        for k in range(size // 4):
            out.append((f"cp.async.{size}", lane, f"w{k}",
                        int.from_bytes(bytes(data[4 * k:4 * k + 4]), "little")))
    return out


def lines():
    """Every expected (probe, lane, slot, value), in the probe's print order."""
    out = []
    for name in MMAS:
        for variant in VARIANTS:
            out += _mma_lines(name, variant)
    out += _ldmatrix_lines(False) + _ldmatrix_lines(True)
    for size in CP_SIZES:
        out += _cp_async_lines(size)
    return out


def text():
    return "".join(f"{p} {lane} {slot} 0x{v:08x}\n" for p, lane, slot, v in lines())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        if GOLDEN.read_text() != text():
            print(f"{GOLDEN} is stale: run python {pathlib.Path(__file__).name} > golden.txt")
            return 1
        print(f"{GOLDEN.name} is current ({len(lines())} lines)")
        return 0
    if argv:
        print(__doc__)
        return 2
    sys.stdout.write(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
