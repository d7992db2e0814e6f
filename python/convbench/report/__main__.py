"""python -m convbench.report BENCH.json [MORE.json ...] [--out DIR] [--stat min|median|mean]

Turns a `pytest bench/ --benchmark-only --benchmark-json=BENCH.json` run into
DIR/results.md (also printed) and PNG plots in DIR (default: the JSON's
folder). Several JSONs of one run (the GPU check writes one per stage) are
merged first, into DIR/BENCH_merged.json."""
from __future__ import annotations

import argparse
import os
import sys

from . import write_report
from .load import STATS, merge_files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convbench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", nargs="+",
                   help="pytest-benchmark JSON(s) written by `pytest bench/` (several: merged)")
    p.add_argument("--out", help="output folder (default: the JSON's folder)")
    p.add_argument("--stat", choices=STATS, default="min",
                   help="per-row statistic (default min: noise only adds time)")
    p.add_argument("--no-plots", action="store_true", help="markdown only")
    args = p.parse_args(argv)
    out = args.out or os.path.dirname(os.path.abspath(args.json[0]))
    try:
        src = args.json[0]
        if len(args.json) > 1:
            os.makedirs(out, exist_ok=True)
            src = os.path.join(out, "BENCH_merged.json")
            merge_files(args.json, src)
        text = write_report(src, out, stat=args.stat, plots=not args.no_plots)
    except (OSError, ValueError) as exc:
        print(f"convbench.report: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
