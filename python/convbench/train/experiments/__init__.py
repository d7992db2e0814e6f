"""Named experiments; importing this package registers all of them in REGISTRY (in --help order)."""
from . import quick, ee449_part1, ee449_part2, ee449, rt720, m124  # noqa: F401  (registration side effects)
from .base import REGISTRY, Context, Experiment, Options

__all__ = ["REGISTRY", "Context", "Experiment", "Options"]
