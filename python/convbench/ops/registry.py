"""The ops convbench offers, each registered once by its module (ops/<op>.py):
the user-facing function, the drop-in layer, the torch.nn layer convert()
replaces with it, and the torch.ops.convbench operators it defines.
convbench.functional, convbench's and convbench.nn's exports, convert()'s
swaps and the operator tests are built from this registry, not from lists
written by hand."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple


@dataclasses.dataclass(frozen=True)
class Op:
    name: str                    # convbench.<name> and convbench.functional.<name>
    function: Callable
    layer: type                  # convbench.nn.<layer.__name__>
    replaces: type               # the exact torch.nn class convert() swaps for layer
    operators: Tuple[str, ...]   # torch.ops.convbench.<operator>
    takes_algo: bool = False     # the layer has an `algo` (convert(algo=...) sets it)


OPS: Dict[str, Op] = {}


def add(op: Op) -> Op:
    if OPS.setdefault(op.name, op) is not op:
        raise RuntimeError(f"convbench op {op.name!r} registered twice")
    return op


def operator_names() -> Tuple[str, ...]:
    return tuple(n for op in OPS.values() for n in op.operators)
