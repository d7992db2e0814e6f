"""Drop-in torch.nn layers on convbench's kernels, and a converter."""
from .convert import convert
from .modules import Conv2d, MaxPool2d

__all__ = ["Conv2d", "MaxPool2d", "convert"]
