"""The user-facing functions, mirroring torch.nn.functional (conv2d with
nn.Conv2d's padding_mode and an ``algo`` choice, max_pool2d): one per op in
the registry, each defined beside its operators in convbench/ops/<op>.py."""
from .ops import OPS

globals().update({op.name: op.function for op in OPS.values()})
__all__ = sorted(OPS)
