"""One compressed archive of the results folder, rewritten atomically (a
temporary file renamed over the old one), so a run killed at any moment,
even while it archives, leaves the last complete snapshot. The GPU machine's
checkout is thrown away: this file is all that comes back."""
from __future__ import annotations

import io
import os
import pathlib
import tarfile
import threading

# A file bigger than this goes in as its head and tail (a sanitizer log
# full of reports must not push the archive past what comes back).
MAX_FILE_BYTES = 2 * 2**20
TRUNCATED = b"\n\n[... %d bytes left out of the archive by gpucheck/archive.py ...]\n\n"


def _member_bytes(path: pathlib.Path, limit: int) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= limit:
            return f.read()
        head = f.read(limit // 2)
        f.seek(size - limit // 2)
        tail = f.read()
    return head + TRUNCATED % (size - len(head) - len(tail)) + tail


def snapshot(outdir, archive, limit: int = MAX_FILE_BYTES) -> int:
    """Write every file under outdir into `archive` (.tar.gz) as
    <outdir name>/<relative path>; returns the number of files. Files that
    vanish or cannot be read meanwhile are skipped (a stage may be writing)."""
    outdir, archive = pathlib.Path(outdir), pathlib.Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    count = 0
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for path in sorted(p for p in outdir.rglob("*") if p.is_file()):
            if path.resolve() in (archive.resolve(), tmp.resolve()) or path.name.endswith(".tmp"):
                continue
            try:
                data = _member_bytes(path, limit)
                mtime = path.stat().st_mtime
            except OSError:
                continue
            info = tarfile.TarInfo(f"{outdir.name}/{path.relative_to(outdir).as_posix()}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
            count += 1
    os.replace(tmp, archive)
    return count


def members(archive) -> dict:
    """{relative path: bytes} of an archive snapshot wrote (the folder prefix dropped)."""
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile():
                out[m.name.split("/", 1)[1] if "/" in m.name else m.name] = \
                    tar.extractfile(m).read()
    return out


class Archiver:
    """snapshot() on demand and every `every` seconds in a background thread
    while started (None: no archive asked for; every call is then a no-op)."""

    def __init__(self, outdir, archive, every: float = 15.0):
        self.outdir, self.archive, self.every = outdir, archive, every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.errors = []

    def now(self) -> None:
        if self.archive is None:
            return
        with self._lock:
            try:
                snapshot(self.outdir, self.archive)
            except Exception as exc:  # noqa: BLE001 - keep the run going; say so at the end
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        if self.archive is None or self._thread is not None:
            return

        def loop():
            while not self._stop.wait(self.every):
                self.now()

        self._thread = threading.Thread(target=loop, name="archiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
