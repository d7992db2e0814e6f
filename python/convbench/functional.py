"""The user-facing functions, mirroring torch.nn.functional.conv2d and
max_pool2d (plus nn.Conv2d's padding_mode and an ``algo`` choice). Each is
defined beside its operators, in convbench/ops/<op>.py."""
from .ops.conv2d import conv2d
from .ops.max_pool2d import max_pool2d

__all__ = ["conv2d", "max_pool2d"]
