"""Client of the emulator worker (worker.cpp): one long-lived process, requests
over pipes, restarted after a crash (a sanitizer report aborts it).

    w = Worker(build.build())
    res = w.request("conv", buffers=[x, w, None, out, None], pass_=0, algo=3, dtype=0,
                    shape=s16)
    res.buffers[3]     # the output bytes; res.launches: what was launched

Raises EmuError for an error the emulator found in a kernel (barrier
divergence, shared memory past its limit), KernelError for an error the host
code raised (CB_CHECK, a CUDA error it checked), and EmuCrash, with the
sanitizer's report, when the worker died.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from typing import List, Optional, Sequence

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1:"
                    "detect_stack_use_after_return=0:symbolize=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


class KernelError(RuntimeError):
    """The host code refused or reported an error (what Python would see)."""


class EmuError(RuntimeError):
    """The emulator found a kernel error a GPU would hang on or hide."""


class EmuCrash(RuntimeError):
    """The worker died: a sanitizer report (AddressSanitizer, UBSan) or a crash."""


@dataclasses.dataclass
class Launch:
    name: str
    grid: tuple
    block: tuple
    dyn_smem: int
    static_smem: int
    kernel_offset: int

    @property
    def blocks(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def threads(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]


@dataclasses.dataclass
class Result:
    value: int
    launches: List[Launch]
    buffers: List[Optional[bytes]]
    text: str = ""  # engine_name's and describe's answer


class Worker:
    def __init__(self, exe: str):
        self.exe = exe
        self.proc = None
        self.log = None
        self._described: dict = {}  # describe()'s answers by kernel name

    def _start(self):
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, **SANITIZER_ENV)
        self.proc = subprocess.Popen([self.exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None

    def _died(self) -> EmuCrash:
        self.proc.wait(timeout=30)
        self.log.seek(0)
        report = self.log.read().decode(errors="replace")
        code = self.proc.returncode
        self.proc = None
        return EmuCrash(f"emulator worker died (exit {code}):\n{report[-6000:]}")

    def _read(self, n: int) -> bytes:
        data = self.proc.stdout.read(n)
        if len(data) != n:
            raise self._died()
        return data

    def request(self, op: str, buffers: Sequence[Optional[bytes]] = (), **fields) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        sizes = [-1 if b is None else len(b) for b in buffers]
        head = [f"op={op}", "bufs=" + ",".join(map(str, sizes))]
        for k, v in fields.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):
                v = ",".join(str(int(x)) for x in v)
            elif isinstance(v, bool):
                v = int(v)
            head.append(f"{k.rstrip('_')}={v}")
        try:
            self.proc.stdin.write((" ".join(head) + "\n").encode())
            for b in buffers:
                if b is not None:
                    self.proc.stdin.write(b)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        line = b""
        while not line.endswith(b"\n"):
            c = self.proc.stdout.read(1)
            if not c:
                raise self._died()
            line += c
        status, errlen, nlaunch, value = (int(t) for t in line.split())
        err = self._read(errlen).decode(errors="replace")
        launches = []
        for _ in range(nlaunch):
            l = b""
            while not l.endswith(b"\n"):
                c = self._read(1)
                l += c
            name, grid, block, dyn, stat, off = l.decode().rstrip("\n").split("|")
            launches.append(Launch(name, tuple(map(int, grid.split())),
                                   tuple(map(int, block.split())), int(dyn), int(stat), int(off)))
        out = [None if n < 0 else self._read(n) for n in sizes]
        if status == 2:
            raise EmuError(err)
        if status == 1:
            raise KernelError(err)
        return Result(value, launches, out, err)

    def describe(self, name: str):
        """(shape_fields, buffers) of table kernel `name` (csrc/common/kernel_table.h),
        asked once per name: the executable's table does not change."""
        if name not in self._described:
            fields, buffers = self.request("describe", name=name).text.split(" ")
            self._described[name] = (tuple(fields.split(",")), tuple(buffers.split(",")))
        return self._described[name]

    def kernel(self, name: str, dtype: int, shape: dict,
               buffers: Sequence[Optional[bytes]], **opts) -> Result:
        """Table kernel `name`'s CUDA entry: shape by field name, buffers in
        the entry's order."""
        fields, _ = self.describe(name)
        return self.request("kernel", buffers, name=name, dtype=dtype,
                            shape=[shape[f] for f in fields], **opts)
