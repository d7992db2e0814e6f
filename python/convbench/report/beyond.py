"""The "Beyond the homework" section: ResNet-18 and VGG-11 training-step and
inference ratios against their 0.9x-PyTorch target, then the tables of the
networks and of their distinct conv layers (kept out of the homework means)."""
from __future__ import annotations

from typing import List

from .load import Run
from .tables import BEYOND_BAR, BEYOND_TARGETS, sections, table, target_lines


def beyond_section(run: Run) -> List[str]:
    secs = sections(run, beyond=True)
    if not secs:
        return []
    lines = ["## Beyond the homework: ResNet-18 and VGG-11", "",
             "Networks outside the homework spec (plain torch.nn, converted with "
             "`convbench.nn.convert`), and their distinct conv layers; none of these rows are "
             f"in the homework targets or means. Target: at least {BEYOND_BAR}× PyTorch's speed "
             "(ratio = PyTorch time / convbench time, per network).", ""]
    lines += target_lines(run, BEYOND_TARGETS, over=False) + [""]
    for key, rows in secs.items():
        kind, _, _, pass_ = key
        config = rows[0].extra.get("config")
        prefix = f"Beyond: distinct layers of both nets ({config}), " if kind == "conv" else \
            "Beyond: "
        lines += table(key, rows, level="###", prefix=prefix)
    return lines
