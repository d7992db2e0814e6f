"""Run-time switches of convbench's kernels, in the manner of torch.backends.

    convbench.backends.cpu_isa                 # 'avx512': the ISA build in use
    convbench.backends.cpu_isa = "avx2"        # force one (ValueError if this CPU lacks it)
    convbench.backends.cpu_isas()              # ('generic', 'avx2', 'avx512'): runnable here
    convbench.backends.autotune = True         # time the candidates on first use (CPU)
    convbench.backends.autotune_cache = path   # ... and keep the choices in a file (None: memory)
    with convbench.backends.flags(cpu_isa="generic", autotune=True):
        ...

Autotuning is the CPU counterpart of torch.backends.cudnn.benchmark: with it
on, the first algo="auto" call of each (pass, dtype, shape, ISA build,
thread count) times every candidate kernel on its own inputs and keeps the
fastest for later calls (see convbench._autotune). Off by default, so seeded
runs stay bit-identical. CUDA tensors keep the heuristic's choice.

Environment, read at import: CONVBENCH_CPU_ISA=generic|avx2|avx512 (an
unknown or unsupported name fails the import with the reason, rather than
running something other than asked); CONVBENCH_AUTOTUNE=1 turns autotuning
on; CONVBENCH_AUTOTUNE_CACHE=PATH (or 1 for default_autotune_cache()) sets
the cache file.
"""
from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Optional, Tuple

from . import _C
from ._autotune import TUNER, default_cache_path

_ISA_ENV = "CONVBENCH_CPU_ISA"
_AUTOTUNE_ENV = "CONVBENCH_AUTOTUNE"
_CACHE_ENV = "CONVBENCH_AUTOTUNE_CACHE"
_UNSET = object()


def default_autotune_cache() -> str:
    """The conventional cache file: $XDG_CACHE_HOME/convbench/autotune.json."""
    return default_cache_path()


def autotune_choices() -> dict:
    """What autotuning has chosen so far: (pass, dtype id, shape, ISA, threads)
    -> (algo id, engine engine); names via convbench._C."""
    return TUNER.choices()


def clear_autotune() -> None:
    """Forget the choices made in this process (a cache file is left as it is)."""
    TUNER.clear()


def cpu_isas() -> Tuple[str, ...]:
    """The compiled CPU engines this CPU can run, slowest first."""
    return tuple(_C.cpu_isas_supported())


def set_cpu_isa(name: str) -> None:
    """Run the CPU kernels of engine ``name`` from now on (all threads)."""
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


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


@contextlib.contextmanager
def flags(cpu_isa: Optional[str] = None, autotune: Optional[bool] = None,
          autotune_cache=_UNSET):
    """Set the given switches for the duration of a with-block, then restore them."""
    old = (_C.cpu_isa(), TUNER.enabled, TUNER.cache_path)
    try:
        if cpu_isa is not None:
            set_cpu_isa(cpu_isa)
        if autotune is not None:
            TUNER.enabled = _check_bool(autotune, "autotune")
        if autotune_cache is not _UNSET:
            TUNER.cache_path = autotune_cache
        yield
    finally:
        _C.set_cpu_isa(old[0])
        TUNER.enabled = old[1]
        if TUNER.cache_path != old[2]:
            TUNER.cache_path = old[2]


class _BackendsModule(types.ModuleType):
    """Gives the module settable attributes (convbench.backends.cpu_isa = ...)."""

    @property
    def cpu_isa(self) -> str:
        return _C.cpu_isa()

    @cpu_isa.setter
    def cpu_isa(self, name: str) -> None:
        set_cpu_isa(name)

    @property
    def autotune(self) -> bool:
        return TUNER.enabled

    @autotune.setter
    def autotune(self, on: bool) -> None:
        TUNER.enabled = _check_bool(on, "autotune")

    @property
    def autotune_cache(self) -> Optional[str]:
        return TUNER.cache_path

    @autotune_cache.setter
    def autotune_cache(self, path) -> None:
        TUNER.cache_path = path


def _apply_environment() -> None:
    name = os.environ.get(_ISA_ENV, "").strip().lower()
    if name:
        try:
            set_cpu_isa(name)
        except ValueError as e:
            raise ValueError(f"{_ISA_ENV}={name}: {e}") from None
    on = os.environ.get(_AUTOTUNE_ENV, "").strip().lower()
    if on:
        if on not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
            raise ValueError(f"{_AUTOTUNE_ENV}={on}: expected 1 or 0")
        TUNER.enabled = on in ("1", "true", "on", "yes")
    cache = os.environ.get(_CACHE_ENV, "").strip()
    if cache:
        TUNER.cache_path = default_cache_path() if cache in ("1", "default") else cache


sys.modules[__name__].__class__ = _BackendsModule
_apply_environment()
