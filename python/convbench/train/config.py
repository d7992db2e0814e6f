"""RunConfig: everything that determines one training run (and so identifies it for --resume)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Optional, Tuple


@dataclass(frozen=True)
class RunConfig:
    key: str                       # unique within an experiment, e.g. "cnn_4/relu/run0/torch"
    model: str                     # convbench.models name
    data: str                      # convbench.data recipe
    backend: str = "convbench"
    activation: Optional[str] = None
    optimizer: str = "sgd"         # "sgd" | "adam"
    lr: float = 0.01
    momentum: float = 0.0
    betas: Tuple[float, float] = (0.9, 0.999)
    epochs: int = 1
    batch_size: int = 50
    seed: int = 0
    record: str = "steps"          # "steps": every 10 steps (EE449); "epochs": per epoch (1RT720, M124)
    record_every: int = 10
    grad_norm: bool = False        # Frobenius norm of d loss / d first-layer weight at each record
    record_val: bool = True        # validation accuracy at each record (part 4 records none: costly)
    lr_schedule: Tuple[float, ...] = ()  # the rates in order (EE449 part 5); see schedule.py
    lr_switch: Tuple[int, ...] = ()      # fixed switch points (a report's); empty: plateau rule
    lr_switch_unit: str = "epoch"        # lr_switch counts "epoch"s or "step"s
    lr_switch_of: int = 0                # the run length the points refer to (scaled if shorter)
    keep_initial_weights: bool = False   # record first-layer weights before training (report 000)
    confusion: bool = False        # keep the test confusion matrix and misclassified examples
    device: str = "cpu"
    algo: str = "auto"
    tags: dict = field(default_factory=dict, compare=False, hash=False)  # labels for summaries

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """The fields that change the result (tags are labels only)."""
        d = self.to_dict()
        d.pop("tags")
        return d

    def with_(self, **kw) -> "RunConfig":
        return replace(self, **kw)
