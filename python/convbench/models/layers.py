"""Layer factory: one place that decides which conv/pool implementation a network is built from.

All three backends produce modules with identical parameter names and shapes (the convbench and
numpy layers subclass torch.nn.Conv2d / MaxPool2d), so a state_dict moves freely between them.
"""
from __future__ import annotations

import torch
from torch import nn

BACKENDS = ("convbench", "torch", "numpy")
ACTIVATIONS = ("relu", "sigmoid", "tanh")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return backend


def make_activation(name: str) -> nn.Module:
    key = str(name).lower()
    if key == "relu":
        return nn.ReLU()
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")


class GlobalAvgPool(nn.Module):
    """Mean over H and W, keeping N x C (the 2021 edition's GlobalAvgPool before the FC layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class LayerFactory:
    """Builds Conv2d / MaxPool2d / activation modules for one backend."""

    def __init__(self, backend: str = "convbench", activation: str = "relu", algo: str = "auto"):
        self.backend = check_backend(backend)
        make_activation(activation)  # validate early, with a clear message
        self.activation = activation
        self.algo = algo
        if backend == "convbench":
            self._cbnn = _import_convbench_nn()

    def conv(self, cin: int, cout: int, k: int, padding: int = 0, bias: bool = True) -> nn.Conv2d:
        if self.backend == "torch":
            return nn.Conv2d(cin, cout, k, padding=padding, bias=bias)
        if self.backend == "convbench":
            return self._cbnn.Conv2d(cin, cout, k, padding=padding, bias=bias, algo=self.algo)
        from .numpy_layers import NumpyConv2d

        return NumpyConv2d(cin, cout, k, padding=padding, bias=bias)

    def pool(self, k: int = 2, stride: int | None = None) -> nn.MaxPool2d:
        stride = k if stride is None else stride
        if self.backend == "torch":
            return nn.MaxPool2d(k, stride)
        if self.backend == "convbench":
            return self._cbnn.MaxPool2d(k, stride)
        from .numpy_layers import NumpyMaxPool2d

        return NumpyMaxPool2d(k, stride)

    def act(self) -> nn.Module:
        return make_activation(self.activation)


def _import_convbench_nn():
    try:
        import convbench.nn as cbnn

        cbnn.Conv2d, cbnn.MaxPool2d  # noqa: B018 - fail here rather than mid-build
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            "backend='convbench' needs convbench.nn.Conv2d/MaxPool2d, which this build does not "
            f"provide ({exc}); build the extension (tools/dev-build.sh) or use backend='torch'"
        ) from exc
    return cbnn
