"""Autotuning, the counterpart of ``torch.backends.cudnn.benchmark``.

When ``convbench.backends.autotune`` is on, the first ``algo="auto"`` call
of each (pass, dtype, shape, CPU ISA build and thread count, or GPU model)
runs every candidate kernel (algorithm and engine on the CPU, algorithm and
forced tiling on CUDA; see ``_C.conv2d_candidates``) on the call's own
tensors, times them, and remembers the fastest; later calls with that key
run it directly. CUDA candidates are timed between device synchronisations,
several calls per sample for short kernels. Off by default: the heuristic's
choice does not depend on timing noise, so seeded runs stay bit-identical.

With a cache file (``convbench.backends.autotune_cache``) the choices also
persist across processes: it is read once, and rewritten atomically after
each new choice; a file that cannot be read or parsed is ignored and
replaced. Entries are scoped by CPU model and convbench version, so a file
copied from another machine or an older build is not trusted.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from . import _C

Key = Tuple
Choice = Tuple[int, int]  # (algo id, engine engine)

# Timing: one warm-up call per candidate, then rounds over all candidates
# until each has had about _BUDGET_S (at least _MIN_REPEATS rounds, at most
# 20); the minimum counts, since noise only adds time. Another candidate
# replaces the heuristic's only when faster by more than _KEEP_HEURISTIC.
_BUDGET_S = 0.02
_MIN_REPEATS = 3
_KEEP_HEURISTIC = 1.03
_FORMAT = 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_cache_path() -> str:
    """$XDG_CACHE_HOME/convbench/autotune.json (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convbench", "autotune.json")


class Tuner:
    def __init__(self) -> None:
        self.enabled = False
        self._path: Optional[str] = None
        self._choices: Dict[Key, Choice] = {}
        self._loaded_path: Optional[str] = None
        self._lock = threading.Lock()
        self._scope = None

    # ---- settings ------------------------------------------------------
    @property
    def cache_path(self) -> Optional[str]:
        return self._path

    @cache_path.setter
    def cache_path(self, path: Optional[str]) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"autotune_cache must be a path or None, got {type(path).__name__}")
        self._path = os.fspath(path) if path is not None else None
        self._loaded_path = None  # read the new file on next use

    def clear(self) -> None:
        """Forget the in-memory choices (the cache file is kept)."""
        with self._lock:
            self._choices.clear()
            self._loaded_path = None

    def choices(self) -> Dict[Key, Choice]:
        """A copy of what has been tuned so far (key -> (algo id, engine))."""
        with self._lock:
            return dict(self._choices)

    # ---- the tuning itself ----------------------------------------------
    def choose(self, pass_: int, dtype: int, shape: tuple, run: Callable[[int, int], None],
               device: int = 0, device_index: int = 0) -> Choice:
        """The fastest (algo, engine) for this call; run(algo, engine) executes one.
        device: 0 CPU, 1 CUDA (device_index: which GPU)."""
        if device == _C.DEVICE_CPU:
            key = (pass_, dtype, tuple(shape), _C.cpu_isa(), _C.openmp_max_threads())
        else:
            key = (pass_, dtype, tuple(shape), "cuda:" + _gpu_model(device_index), 0)
        with self._lock:
            self._load()
            hit = self._choices.get(key)
        if hit is not None:
            return hit
        if device == _C.DEVICE_CPU:
            heuristic, sync = tuple(_C.conv2d_resolve(pass_, dtype, 0, 0, shape)), None
        else:  # CUDA's engine 0 is the shape rule's own tiling
            heuristic = (_C.conv2d_choose_algo(device, pass_, dtype, shape), 0)
            sync = _cuda_sync(device_index)
        best = _fastest(_C.conv2d_candidates(pass_, dtype, shape, device), heuristic, run, sync)
        with self._lock:
            self._choices[key] = best
            self._save()
        return best

    # ---- the cache file -------------------------------------------------
    def _scope_key(self) -> str:
        if self._scope is None:
            from ._version import __version__

            self._scope = f"{_cpu_model()} | convbench {__version__}"
        return self._scope

    def _read_raw(self) -> Optional[dict]:
        """The file's contents if it is a cache file of this format, else None."""
        try:
            with open(self._path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        ok = isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(
            data.get("entries"), dict)
        return data if ok else None

    def _entries(self, data: Optional[dict]) -> Dict[Key, Choice]:
        """This machine's and version's entries; {} where any is malformed."""
        try:
            out = {}
            for k, v in (data or {"entries": {}})["entries"].get(self._scope_key(), {}).items():
                p, d, shape, isa, threads = json.loads(k)
                out[(int(p), int(d), tuple(int(s) for s in shape), str(isa), int(threads))] = (
                    int(v[0]), int(v[1]))
            return out
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            return {}

    def _load(self) -> None:
        if self._path is None or self._loaded_path == self._path:
            return
        for k, v in self._entries(self._read_raw()).items():
            self._choices.setdefault(k, v)
        self._loaded_path = self._path

    def _save(self) -> None:
        if self._path is None:
            return
        data = self._read_raw() or {"format": _FORMAT, "entries": {}}  # corrupt: start afresh
        merged = self._entries(data)  # another process may have added entries
        merged.update(self._choices)
        data["entries"][self._scope_key()] = {
            json.dumps([k[0], k[1], list(k[2]), k[3], k[4]]): list(v) for k, v in merged.items()}
        tmp = f"{self._path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self._path)  # atomic: readers see the old or the new file
        except OSError:
            try:
                os.remove(tmp)
            except OSError:
                pass


def _gpu_model(index: int) -> str:
    import torch

    return torch.cuda.get_device_name(index)


def _cuda_sync(index: int) -> Callable[[], None]:
    import torch

    return lambda: torch.cuda.synchronize(index)


def _fastest(candidates, heuristic: Choice, run: Callable[[int, int], None],
             sync: Optional[Callable[[], None]] = None) -> Choice:
    """The candidate with the least time; round-robin rounds (each candidate
    once per round, the minimum per candidate kept), so a slow spell of a
    shared machine hits all of them alike. The heuristic's own choice stays
    unless another is clearly faster: a near-tie is noise, and the heuristic
    was fitted on many runs. sync: the device's synchronisation, for
    asynchronous (CUDA) kernels."""
    cands = [tuple(c) for c in candidates]
    if heuristic not in cands:
        cands.insert(0, heuristic)
    if sync is None:
        sample = {c: _timed_call(lambda c=c: run(*c)) for c in cands}
    else:
        sample = {c: _timed_batch(lambda c=c: run(*c), sync) for c in cands}
    best = {c: sample[c](warm=True) for c in cands}
    spent, rounds = sum(best.values()), 1
    while rounds < _MIN_REPEATS or (spent < _BUDGET_S * len(cands) and rounds < 20):
        for c in cands:
            t = sample[c]()
            best[c] = min(best[c], t)
            spent += t
        rounds += 1
    winner = min(cands, key=best.get)
    return heuristic if best[heuristic] <= _KEEP_HEURISTIC * best[winner] else winner


def _timed_call(fn: Callable[[], None]) -> Callable[..., float]:
    """sample(warm=False) -> seconds of one call (after an untimed one if warm)."""
    def sample(warm: bool = False) -> float:
        if warm:
            fn()  # first-touch of workspaces, caches
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return sample


# A CUDA sample is enough back-to-back calls to last about this long, so the
# host's launch latency and the synchronisations are a small part of it.
_CUDA_SAMPLE_S = 1e-3


def _timed_batch(fn: Callable[[], None], sync: Callable[[], None]) -> Callable[..., float]:
    """sample(warm=False) -> seconds per call of a batch of calls between two
    synchronisations. The batch size is fixed on the warm call (from one
    synchronised call), so every sample of a candidate does the same work."""
    calls = [1]

    def sample(warm: bool = False) -> float:
        if warm:
            sync()
            fn()  # first touch: workspace, module load
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            one = time.perf_counter() - t0
            calls[0] = max(1, min(50, int(_CUDA_SAMPLE_S / max(one, 1e-7))))
        sync()
        t0 = time.perf_counter()
        for _ in range(calls[0]):
            fn()
        sync()
        return (time.perf_counter() - t0) / calls[0]

    return sample


TUNER = Tuner()
