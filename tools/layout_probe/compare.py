"""Compare a layout-probe dump (probe.cu's output on a GPU) with golden.txt.

    python tools/layout_probe/compare.py DUMP [--golden FILE] [--out DIR]

Prints, and with --out writes compare.md and compare.json: per probe how many
registers match, and for each one that differs the lane, slot, expected and
got value, where golden puts the value that was got (a permuted layout shows
as "got lane 5's d2"), and what the difference points at. Exit status 0 when
every line matches, 1 when any differs or is missing, 2 when the dump cannot
be read.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent

# What a difference in each kind of probe line points at.
HINTS = {
    "input": "the probe's inputs differ from golden.py's formulas: a probe bug, not the hardware",
    "full": "A, B or C/D fragment map (or the mma itself)",
    "rows": "A's row map or D's row map (B = 1, C = 0: D holds A's row sums)",
    "cols": "B's column map or D's column map (A = 1, C = 0: D holds B's column sums)",
    "ldmatrix.x4": "ldmatrix's lane-to-row/column map",
    "ldmatrix.x4.trans": "ldmatrix .trans's map",
    "cp.async": "cp.async's copy size or zero-fill",
}


def parse(text):
    """{(probe, lane, slot): value} of the probe's line format; ValueError on a bad line."""
    out = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"line {n}: expected '<probe> <lane> <slot> 0x<hex>', got {raw!r}")
        probe, lane, slot, value = parts
        out[(probe, int(lane), slot)] = int(value, 16)
    return out


def _as_float(v):
    return struct.unpack("<f", struct.pack("<I", v))[0]


def _hint(probe, slot):
    if probe.startswith("mma") and slot[0] in "abc":
        return HINTS["input"]
    if probe.startswith("mma"):
        return HINTS[probe.split("/")[1]]
    if probe.startswith("cp.async"):
        return HINTS["cp.async"]
    return HINTS.get(probe, "")


def _show(probe, slot, v):
    if v is None:
        return "missing"
    if probe.startswith("mma") and slot[0] in "cd":
        return f"0x{v:08x} ({_as_float(v):g})"
    return f"0x{v:08x}"


def compare(golden, got):
    """{probe: {"lines", "matched", "mismatches": [...]}} and whether all match."""
    where = {}  # value -> golden places, per probe: finds permutations
    for (probe, lane, slot), v in golden.items():
        where.setdefault((probe, v), []).append(f"lane {lane}'s {slot}")
    result = {}
    for key in golden:  # (the probe's print order)
        probe, lane, slot = key
        r = result.setdefault(probe, {"lines": 0, "matched": 0, "mismatches": []})
        r["lines"] += 1
        want, have = golden[key], got.get(key)
        if have == want:
            r["matched"] += 1
            continue
        elsewhere = where.get((probe, have), []) if have is not None else []
        r["mismatches"].append({
            "lane": lane, "slot": slot, "expected": _show(probe, slot, want),
            "got": _show(probe, slot, have),
            "got_is_golden_of": elsewhere[:3], "points_at": _hint(probe, slot)})
    extra = sorted(set(got) - set(golden))
    ok = all(not r["mismatches"] for r in result.values()) and not extra
    return result, extra, ok


def markdown(result, extra, ok) -> str:
    lines = ["# Layout probe against golden.txt (the PTX ISA's documented layouts)", "",
             "**all registers match**" if ok else "**DIFFERENCES** (below)", "",
             "| probe | registers | match |", "| --- | --- | --- |"]
    for probe, r in result.items():
        lines.append(f"| {probe} | {r['lines']} | {r['matched']} |")
    for probe, r in result.items():
        if not r["mismatches"]:
            continue
        lines += ["", f"## {probe}: {len(r['mismatches'])} differ ({r['mismatches'][0]['points_at']})",
                  "", "| lane | slot | expected | got | got is golden's |", "| --- | --- | --- | --- | --- |"]
        for m in r["mismatches"][:64]:
            lines.append(f"| {m['lane']} | {m['slot']} | {m['expected']} | {m['got']} | "
                         f"{', '.join(m['got_is_golden_of']) or '–'} |")
        if len(r["mismatches"]) > 64:
            lines.append(f"| ... | {len(r['mismatches']) - 64} more (compare.json) | | | |")
    if extra:
        lines += ["", f"Lines in the dump that golden.txt lacks: {len(extra)} (first: {extra[0]})"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--golden", default=str(HERE / "golden.txt"))
    ap.add_argument("--out", default=None, help="folder for compare.md and compare.json")
    a = ap.parse_args(argv)
    try:
        golden = parse(pathlib.Path(a.golden).read_text())
        got = parse(pathlib.Path(a.dump).read_text())
    except (OSError, ValueError) as exc:
        print(f"layout probe compare: {exc}")
        return 2
    result, extra, ok = compare(golden, got)
    text = markdown(result, extra, ok)
    if a.out:
        out = pathlib.Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(text)
        (out / "compare.json").write_text(json.dumps(
            {"ok": ok, "probes": result, "extra": [list(e) for e in extra]}, indent=1))
    print(text, end="")
    total = sum(r["lines"] for r in result.values())
    matched = sum(r["matched"] for r in result.values())
    print(f"LAYOUT PROBE: {matched} of {total} registers match golden"
          + ("" if ok else f"; {total - matched} differ or are missing"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
