"""Results on disk: atomic JSON writes, one file per finished run, and --resume.

Layout under --out:  <experiment>/runs/<run key>.json   (written the moment a run finishes)
                     <experiment>/results.json          (the spec-keyed summary, rewritten atomically)
                     <experiment>/*.png                 (figures)
A run file holds its configuration; --resume reuses it only when the configuration is identical.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Optional


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None (strict JSON), tuples -> lists, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path, obj) -> Path:
    """Write to a temporary file in the same directory, fsync, then rename over `path`: a reader
    (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(_clean(obj), fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


class RunStore:
    """Finished runs of one experiment directory."""

    def __init__(self, exp_dir):
        self.dir = Path(exp_dir)
        self.runs_dir = self.dir / "runs"

    def path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
        return self.runs_dir / f"{safe}.json"

    def load(self, key: str, config: dict) -> Optional[dict]:
        """The stored result for `key` if it exists and was produced by the same configuration."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            rec = read_json(p)
        except (OSError, ValueError):
            return None  # unreadable: redo the run
        return rec if rec.get("config") == _clean(config) else None

    def save(self, key: str, record: dict) -> Path:
        return write_json_atomic(self.path(key), record)

    def clear(self) -> None:
        if self.runs_dir.is_dir():
            for p in self.runs_dir.glob("*.json"):
                p.unlink()
