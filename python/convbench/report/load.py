"""Reads a pytest-benchmark JSON written by `pytest bench/` into flat rows."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Dict, List, Optional

STATS = ("min", "median", "mean")
SUITES = ("homework", "synthetic", "beyond")


@dataclasses.dataclass(frozen=True)
class Row:
    kind: str        # conv | pool | train | infer | overhead
    layer: str       # layer id, model name, or overhead case
    used_by: tuple
    pass_: str       # fwd | bwd_input | bwd_weight | bwd | fwd_bwd | step | infer
    impl: str
    device: str
    dtype: str
    reference: str   # the impl this row's ratio is taken against
    seconds: float   # per call, the chosen statistic
    rounds: int
    flops: Optional[int]
    bytes: Optional[int]
    extra: dict
    # homework (in the means), synthetic (tiny/overhead shapes: shown, not in
    # the means) or beyond (ResNet-18/VGG: their own section); recorded by the bench.
    suite: str = "homework"
    # The clock pytest-benchmark timed the rounds with (its options.timer):
    # CUDA rows must name bench/timing.py's synchronising clock.
    timer: Optional[str] = None

    @property
    def gpu_seconds(self) -> Optional[float]:
        """CUDA rows: GPU time per call from CUDA-graph replay (no host launch
        cost), where the calls could be captured."""
        v = self.extra.get("gpu_s")
        return float(v) if v else None

    @property
    def host_bound(self) -> bool:
        """CUDA rows whose end-to-end time is the host's: its last call of a
        round was enqueued after >= 90% of the round (bench/timing.py)."""
        return bool(self.extra.get("host_bound"))

    @property
    def tf32(self) -> bool:
        """Rows computed with TF32 products (cudnn_tf32): not float32 arithmetic."""
        return self.extra.get("math") == "tf32" or self.impl == "cudnn_tf32"

    @property
    def gflops(self) -> Optional[float]:
        return self.flops / self.seconds / 1e9 if self.flops else None

    @property
    def gbps(self) -> Optional[float]:
        return self.bytes / self.seconds / 1e9 if self.bytes else None

    @property
    def tiny(self) -> bool:
        """Synthetic shapes (not from a homework network): kept out of the means."""
        return self.suite == "synthetic"

    @property
    def beyond(self) -> bool:
        return self.suite == "beyond"


def _suite(info: dict) -> str:
    """The recorded suite; JSONs written before it was recorded: the tiny and
    overhead rows (used_by exactly those tags) are synthetic, the rest homework
    (an empty used_by, as old training rows had, is not a tag)."""
    if "suite" in info:
        if info["suite"] not in SUITES:
            raise ValueError(f"unknown suite {info['suite']!r} in row {info.get('layer')!r}")
        return info["suite"]
    used = set(info.get("used_by") or ())
    if info.get("kind") == "overhead" or (used and used <= {"tiny", "overhead"}):
        return "synthetic"
    return "homework"


@dataclasses.dataclass
class Run:
    rows: List[Row]
    machine: dict
    commit: dict
    datetime: str
    stat: str

    @property
    def roofline(self) -> Dict[str, dict]:
        return (self.machine.get("convbench") or {}).get("roofline") or {}


def load(path: str, stat: str = "min") -> Run:
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or "benchmarks" not in data:
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list); write one "
                         "with `pytest bench/ --benchmark-only --benchmark-json=FILE`")
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info") or {}
        if "kind" not in info or not b.get("stats"):
            continue  # not one of ours
        seconds = float(b["stats"][stat])
        if not math.isfinite(seconds) or seconds <= 0:
            continue
        rows.append(Row(
            kind=info["kind"], layer=info["layer"], used_by=tuple(info.get("used_by", ())),
            pass_=info["pass"], impl=info["impl"], device=info["device"], dtype=info["dtype"],
            reference=info.get("reference", ""), seconds=seconds,
            rounds=int(b["stats"].get("rounds", 0)), flops=info.get("flops"),
            bytes=info.get("bytes"), extra=info, suite=_suite(info),
            timer=(b.get("options") or {}).get("timer")))
    if not rows:
        raise ValueError(f"{path}: no convbench benchmark rows (extra_info['kind']) found")
    return Run(rows, data.get("machine_info", {}), data.get("commit_info", {}),
               data.get("datetime", ""), stat)


def merge(datas: List[dict]) -> dict:
    """One pytest-benchmark JSON from several of one run (a GPU check writes one
    per stage): the benchmarks of all, in order; the machine info of the first
    that measured ceilings (else the first); the first's commit and date."""
    if not datas:
        raise ValueError("nothing to merge")
    for i, d in enumerate(datas):
        if not isinstance(d, dict) or "benchmarks" not in d:
            raise ValueError(f"JSON #{i + 1}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    with_roof = [d for d in datas
                 if ((d.get("machine_info") or {}).get("convbench") or {}).get("roofline")]
    out = dict(datas[0])
    out["machine_info"] = (with_roof or datas)[0].get("machine_info", {})
    out["benchmarks"] = [b for d in datas for b in d["benchmarks"]]
    return out


def merge_files(paths: List[str], out_path: str) -> dict:
    """merge() the JSON files at paths and write the result to out_path."""
    datas = []
    for p in paths:
        with open(p) as f:
            datas.append(json.load(f))
    merged = merge(datas)
    with open(out_path, "w") as f:
        json.dump(merged, f)
    return merged


def geomean(values) -> Optional[float]:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
