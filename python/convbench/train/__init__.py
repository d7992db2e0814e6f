"""`python -m convbench.train`: the homework experiments (see `python -m convbench.train --help`).

Files: cli (arguments), experiments/ (the registry: what each experiment runs and records),
runner (plan -> runs -> summary, --resume), loop (one training run), numpy_mlp (1RT720's NumPy
MLP), results (atomic JSON), figures (PNG).
"""
from .cli import main
from .runner import run_experiment

__all__ = ["main", "run_experiment"]
