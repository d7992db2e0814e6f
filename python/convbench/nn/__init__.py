"""Drop-in layers (subclasses of the torch.nn layers whose forward runs
convbench's kernels: same arguments, parameters and state_dict), one per op
in the registry, and convert(), which swaps them into a model."""
from ..ops import OPS
from .convert import convert

globals().update({op.layer.__name__: op.layer for op in OPS.values()})
__all__ = ["convert"] + sorted(op.layer.__name__ for op in OPS.values())
