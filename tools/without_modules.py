"""Run a Python module as if some packages were not installed:

    python tools/without_modules.py hypothesis,matplotlib -m pytest ...

Imports of the named top-level packages (and their submodules) raise
ModuleNotFoundError, as on a machine without them. tools/gpu_check.sh
--dry-run collects the CUDA tests this way, because the GPU machine has only
torch, pybind11, scikit-build-core, pytest and pytest-benchmark: an optional
extra imported unguarded at module level would fail the collection there.
(Run pytest with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 too: a blocked package's
own pytest plugin, e.g. hypothesis', would otherwise fail to load.)
"""
from __future__ import annotations

import importlib.abc
import runpy
import sys


class Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by "
                                      f"tools/without_modules.py)", name=fullname)
        return None


def block(names) -> Blocker:
    """Make the named packages unimportable in this process."""
    names = [n for n in names if n]
    for n in list(sys.modules):
        if n.split(".")[0] in names:
            del sys.modules[n]
    finder = Blocker(names)
    sys.meta_path.insert(0, finder)
    return finder


def main(argv) -> None:
    if len(argv) < 3 or argv[1] != "-m":
        raise SystemExit("usage: python tools/without_modules.py PKG[,PKG...] -m MODULE [ARGS...]")
    block(argv[0].split(","))
    sys.argv = [argv[2]] + argv[3:]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
