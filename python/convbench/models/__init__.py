"""Every network of the homework spec, built from convbench, torch or NumPy-reference layers.

    convbench.models.available()          -> list of names ("ee449/cnn_3", "1rt720/cnn", ...)
    convbench.models.spec(name)           -> ModelSpec (input_shape, num_classes, batch_size, ...)
    convbench.models.build(name, backend="convbench" | "torch" | "numpy", ...) -> torch.nn.Module

The three backends give identical parameter names, so `load_state_dict` moves weights between them.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from .layers import ACTIVATIONS, BACKENDS, LayerFactory
from .registry import ModelSpec, available, spec

__all__ = ["ACTIVATIONS", "BACKENDS", "ModelSpec", "available", "build", "spec"]


def build(name: str, *, backend: str = "convbench", activation: Optional[str] = None,
          in_channels: Optional[int] = None, num_classes: Optional[int] = None,
          image_size: Optional[int] = None, algo: str = "auto") -> nn.Module:
    """Build network `name`. activation replaces every activation (relu/sigmoid/tanh; default: the
    spec's); in_channels / num_classes / image_size (square HxW) follow the data set (default: the
    spec's). Flatten sizes are derived from the input size, so e.g. an EE449 CNN takes 28x28 too."""
    s = spec(name)
    c, h, w = s.input_shape
    if in_channels is not None:
        c = _positive("in_channels", in_channels)
    if image_size is not None:
        h = w = _positive("image_size", image_size)
    classes = s.num_classes if num_classes is None else _positive("num_classes", num_classes)
    factory = LayerFactory(backend, activation or s.activation, algo)
    return s.builder(factory, (c, h, w), classes)


def _positive(what: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return v
