"""`python -m convbench.train`: the homework experiments (see `python -m convbench.train --help`).

Files: cli (arguments), experiments/ (the registry: what each experiment runs and records),
runner (plan -> runs -> summary, --resume), loop (one training run), numpy_mlp (1RT720's NumPy
MLP), results (atomic JSON), figures (PNG), distributed (torchrun: runs dealt out to the
processes, or each run data-parallel under DistributedDataParallel).
"""
from .cli import main
from .runner import run_experiment

__all__ = ["main", "run_experiment"]
