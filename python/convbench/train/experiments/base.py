"""The experiment registry and the helpers plans use to honour the command-line overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from ..config import RunConfig


@dataclass
class Options:
    """Command-line overrides; None means "the spec's value"."""
    epochs: Optional[int] = None
    runs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    backends: Sequence[str] = ("convbench",)
    device: str = "cpu"
    seed: int = 0
    quick: bool = False
    algo: str = "auto"
    autotune: bool = False  # recorded in results; set on convbench.backends by the CLI
    network: Optional[str] = None  # EE449 part 5: another network than the report's
    schedule: str = "report"       # EE449 part 5: "report" (fixed switch points) | "plateau"

    QUICK_EPOCHS = 2

    def n_epochs(self, spec_epochs: int) -> int:
        if self.epochs is not None:
            return self.epochs
        return min(spec_epochs, self.QUICK_EPOCHS) if self.quick else spec_epochs

    def n_runs(self, spec_runs: int) -> int:
        if self.runs is not None:
            return self.runs
        return 1 if self.quick else spec_runs

    def batch(self, spec_batch: int) -> int:
        return self.batch_size or spec_batch

    def learning_rate(self, spec_lr: float) -> float:
        """For runs whose lr is not the variable under study (sweeps keep their own values)."""
        return self.lr if self.lr is not None else spec_lr


@dataclass
class Experiment:
    name: str
    title: str
    help: str
    plan: Optional[Callable[[Options], List[RunConfig]]] = None
    summarize: Optional[Callable[[list, Options], dict]] = None  # records of one backend -> spec keys
    figures: Optional[Callable[[dict, "Context"], list]] = None   # all records by backend -> PNGs
    custom: Optional[Callable[["Context"], dict]] = None          # experiments that do not train
    sweeps_lr: bool = False  # --lr is ignored: the learning rate is what the experiment varies
    uses_network: bool = False  # honours --network / --schedule (EE449 part 5)


@dataclass
class Context:
    out_dir: object
    options: Options
    data: Callable[[str], object]  # recipe -> DataBundle (cached, honours --data-dir etc.)
    notes: List[str] = field(default_factory=list)
    # name -> RunConfig.to_dict() of every run planned (set before the figures are drawn)
    configs: Dict[str, dict] = field(default_factory=dict)


REGISTRY: Dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    if exp.name in REGISTRY:
        raise ValueError(f"experiment {exp.name!r} registered twice")
    REGISTRY[exp.name] = exp
    return exp


def per_backend(opts: Options, cfg: RunConfig) -> List[RunConfig]:
    """The same run once per requested backend; seeds identical, so only the kernels differ."""
    return [cfg.with_(key=f"{cfg.key}/{b}", backend=b, device=opts.device, algo=opts.algo,
                      tags={**cfg.tags, "base": cfg.key})
            for b in opts.backends]


def mean_curves(curves: List[List[float]]) -> List[float]:
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [sum(c[i] for c in curves) / len(curves) for i in range(n)]
