"""Run-time switches of convbench's kernels, in the manner of torch.backends.

    convbench.backends.cpu_isa                 # 'avx512': the CPU variant in use
    convbench.backends.cpu_isa = "avx2"        # force one (ValueError if this CPU lacks it)
    convbench.backends.cpu_isas()              # ('generic', 'avx2', 'avx512'): runnable here
    with convbench.backends.flags(cpu_isa="generic"):
        ...

The environment variable CONVBENCH_CPU_ISA=generic|avx2|avx512 sets the
variant at import (an unknown or unsupported name fails the import with the
reason, rather than running something else than asked).
"""
from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Optional, Tuple

from . import _C

_ISA_ENV = "CONVBENCH_CPU_ISA"


def cpu_isas() -> Tuple[str, ...]:
    """The compiled CPU variants this CPU can run, slowest first."""
    return tuple(_C.cpu_isas_supported())


def set_cpu_isa(name: str) -> None:
    """Run the CPU kernels of variant ``name`` from now on (all threads)."""
    if not isinstance(name, str):
        raise TypeError(f"cpu_isa must be a string, got {type(name).__name__}")
    compiled, runnable = tuple(_C.cpu_isas_compiled()), cpu_isas()
    if name not in ("generic", "avx2", "avx512"):
        raise ValueError(f"unknown CPU ISA {name!r}; choose one of {', '.join(runnable)}")
    if name not in compiled:
        raise ValueError(f"CPU ISA {name!r} was not compiled into this build of convbench "
                         f"(compiled: {', '.join(compiled)})")
    if name not in runnable:
        raise ValueError(f"this CPU cannot run convbench's {name!r} kernels "
                         f"(it runs: {', '.join(runnable)})")
    _C.set_cpu_isa(name)


@contextlib.contextmanager
def flags(cpu_isa: Optional[str] = None):
    """Set the given switches for the duration of a with-block, then restore them."""
    old_isa = _C.cpu_isa()
    try:
        if cpu_isa is not None:
            set_cpu_isa(cpu_isa)
        yield
    finally:
        _C.set_cpu_isa(old_isa)


class _BackendsModule(types.ModuleType):
    """Gives the module settable attributes (convbench.backends.cpu_isa = ...)."""

    @property
    def cpu_isa(self) -> str:
        return _C.cpu_isa()

    @cpu_isa.setter
    def cpu_isa(self, name: str) -> None:
        set_cpu_isa(name)


def _apply_environment() -> None:
    name = os.environ.get(_ISA_ENV, "").strip().lower()
    if not name:
        return
    try:
        set_cpu_isa(name)
    except ValueError as e:
        raise ValueError(f"{_ISA_ENV}={name}: {e}") from None


sys.modules[__name__].__class__ = _BackendsModule
_apply_environment()
