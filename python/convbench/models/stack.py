"""A tiny builder that appends layers and tracks the (C, H, W) shape, so flatten sizes follow the
input size instead of being hard-coded (the spec's 16x3x3 etc. come out for the spec's inputs);
mlp_net and cnn_net make a network's builder, (factory, (C, H, W), classes) -> Net."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .layers import GlobalAvgPool, LayerFactory


class Stack:
    def __init__(self, factory: LayerFactory, input_shape: Sequence[int]):
        self.f = factory
        self.c, self.h, self.w = (int(v) for v in input_shape)
        self.layers: List[nn.Module] = []

    def _check(self, what: str) -> None:
        if self.h < 1 or self.w < 1:
            raise ValueError(
                f"input too small: after {what} the feature map would be {self.h}x{self.w}"
            )

    def conv(self, cout: int, k: int, padding: int = 0, act: bool = True) -> "Stack":
        self.layers.append(self.f.conv(self.c, cout, k, padding=padding))
        self.c = cout
        self.h = self.h + 2 * padding - k + 1
        self.w = self.w + 2 * padding - k + 1
        self._check(f"a {k}x{k} conv")
        if act:
            self.act()
        return self

    def act(self) -> "Stack":
        self.layers.append(self.f.act())
        return self

    def pool(self) -> "Stack":
        self.layers.append(self.f.pool(2, 2))
        self.h //= 2
        self.w //= 2
        self._check("a 2x2 max-pool")
        return self

    def gap(self) -> "Stack":
        self.layers.append(GlobalAvgPool())
        self.h = self.w = 1
        return self

    def add(self, module: nn.Module) -> "Stack":
        """A shape-preserving module (residual blocks)."""
        self.layers.append(module)
        return self

    @property
    def flat(self) -> int:
        return self.c * self.h * self.w


def mlp_head(widths: Sequence[int], factory: LayerFactory, bias: Sequence[bool] | None = None,
             act: Sequence[bool] | None = None) -> nn.Sequential:
    """Linear layers widths[0] -> widths[1] -> ...; activation after each except where act[i] is False
    (the last layer never gets one)."""
    n = len(widths) - 1
    bias = [True] * n if bias is None else list(bias)
    act = [True] * (n - 1) + [False] if act is None else list(act)
    layers: List[nn.Module] = []
    for i in range(n):
        layers.append(nn.Linear(widths[i], widths[i + 1], bias=bias[i]))
        if act[i] and i < n - 1:
            layers.append(factory.act())
    return nn.Sequential(*layers)


class Net(nn.Module):
    """features (conv part, may be empty) -> flatten -> classifier. Parameter names are
    features.<i>.* and classifier.<i>.*, identical across backends."""

    def __init__(self, features: Sequence[nn.Module], classifier: nn.Sequential):
        super().__init__()
        self.features = nn.Sequential(*features)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))

    def first_layer_weight(self) -> torch.Tensor:
        """The first layer's weight (first conv, or first Linear for an MLP): recorded by the
        experiments (gradient norms, weight grids)."""
        for m in list(self.features) + list(self.classifier):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                return m.weight
        raise ValueError("network has no conv or linear layer")


def mlp_net(hidden: Sequence[int], bias: Sequence[bool] | None = None,
            act: Sequence[bool] | None = None):
    """The builder of an MLP: flatten, then Linear layers through `hidden` to the classes
    (bias, act: per layer, as mlp_head's)."""
    def build(f: LayerFactory, shape, classes: int) -> Net:
        c, h, w = shape
        return Net([], mlp_head([c * h * w, *hidden, classes], f, bias=bias, act=act))
    return build


def cnn_net(features, fc: Sequence[int] = ()):
    """The builder of a CNN: the layers features(Stack) appends, flatten, then Linear layers
    through `fc` to the classes."""
    def build(f: LayerFactory, shape, classes: int) -> Net:
        s = features(Stack(f, shape))
        return Net(s.layers, mlp_head([s.flat, *fc, classes], f))
    return build
