"""The CUDA benchmark rows split into stages, in the order a short GPU session
runs them (tools/gpu_check.sh): the full CUDA suite is ~2,600 rows and does
not fit a 15-minute device budget, and a killed pytest writes no JSON, so
each stage is its own pytest run with its own JSON, most valuable first:

  conv-f32-fwd_bwd   conv2d forward + backward, float32 (the GPU target)
  train              whole training steps (the other GPU target)
  pool-f32           max-pool, float32, every pass
  overhead           per-call overhead on CUDA
  conv-f32-passes    conv2d fwd, bwd_input, bwd_weight alone, float32
  conv-half-fwd_bwd  conv2d forward + backward, float16 and bfloat16
  rest               every other CUDA row (half-precision separate passes and pools)

`pytest bench/ --cb-stage NAME` keeps that stage's rows (CPU rows are in no
stage). Every CUDA row is in exactly one stage: the first whose rule takes it.

Importable without pytest or torch; `python bench/gpu_stages.py` prints the
stage names in order.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class RowKey:
    """What a stage rule looks at: one benchmark row's kind, device, dtype, pass and impl."""
    kind: str
    device: str
    dtype: str
    pass_: str
    impl: str


def _conv(dtypes, passes):
    return lambda k: k.kind == "conv" and k.dtype in dtypes and k.pass_ in passes


STAGES: Tuple[Tuple[str, Callable[[RowKey], bool]], ...] = (
    ("conv-f32-fwd_bwd", _conv(("float32",), ("fwd_bwd",))),
    ("train", lambda k: k.kind == "train"),
    ("pool-f32", lambda k: k.kind == "pool" and k.dtype == "float32"),
    ("overhead", lambda k: k.kind == "overhead"),
    ("conv-f32-passes", _conv(("float32",), ("fwd", "bwd_input", "bwd_weight"))),
    ("conv-half-fwd_bwd", _conv(("float16", "bfloat16"), ("fwd_bwd",))),
    ("rest", lambda k: True),
)
NAMES = tuple(name for name, _ in STAGES)


def stage_of(key: RowKey) -> Optional[str]:
    """The stage a row runs in, or None for rows not on CUDA."""
    if key.device != "cuda":
        return None
    return next(name for name, rule in STAGES if rule(key))


def row_key(item) -> Optional[RowKey]:
    """The RowKey of a collected bench item (from its parameters), or None
    for a test this module does not know."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    if name in ("test_conv", "test_pool") and "case" in params:
        c = params["case"]
        return RowKey(name[len("test_"):], c.device, c.dtype, c.pass_, c.impl)
    if name == "test_training_step":
        return RowKey("train", params["device"], "float32", "step", params["impl"])
    if name == "test_overhead":
        return RowKey("overhead", params["device"], "float32", params["mode"], params["row"])
    if name.startswith("test_beyond"):
        return RowKey("beyond", "cpu", "float32", params.get("pass_", params.get("kind", "")),
                      params.get("impl", ""))
    return None


def select(items, stage: str):
    """(kept, dropped) items of one stage."""
    if stage not in NAMES:
        raise ValueError(f"unknown --cb-stage {stage!r}; stages: {', '.join(NAMES)}")
    kept, dropped = [], []
    for item in items:
        key = row_key(item)
        (kept if key is not None and stage_of(key) == stage else dropped).append(item)
    return kept, dropped


if __name__ == "__main__":
    print("\n".join(NAMES))
