"""The table of every network in the homework spec, with its default input and training shape.

Naming: "<family>/<net>" where family is
  ee449        EE449 CIFAR-10 edition, grayscale input 1x32x32 (report 000)
  ee449_color  the same networks on colour input 3x32x32 (report 001)
  ee449_2021   EE449 2021 edition, 1x28x28, 5 classes (report 003)
  1rt720       Deep Learning 1RT720 hand-in 2, MNIST 1x28x28 (report 002)
  m124         M124 coursework 4, CIFAR-10 colour 3x32x32 (report 004)
and net is the report's own name where it has one (mlp_1, cnn3, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

from . import ee449, m124, rt720


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    input_shape: Tuple[int, int, int]  # (C, H, W)
    num_classes: int
    batch_size: int
    description: str
    activation: str = "relu"
    builder: Callable = field(default=None, repr=False, compare=False)


# Each family's networks: net -> (builder, description[, activation]).
_EE449 = {
    "mlp_1": (ee449.mlp_1, "[FC-32, ReLU] + FC"),
    "mlp_2": (ee449.mlp_2, "[FC-32, ReLU, FC-64 (no bias)] + FC"),
    "cnn_3": (ee449.cnn_3, "[C3x3x16, C5x5x8, pool, C7x7x16, pool] + FC"),
    "cnn_4": (ee449.cnn_4, "[C3x3x16, C3x3x8, C5x5x16, pool, C5x5x16, pool] + FC"),
    "cnn_5": (ee449.cnn_5, "[C3x3x8, C3x3x16, C3x3x8, C3x3x16, pool, C3x3x16, C3x3x8, pool] + FC"),
}
_EE449_2021 = {
    "mlp1": (ee449.mlp1_2021, "[FC-64, ReLU] + FC-5"),
    "mlp2": (ee449.mlp2_2021, "[FC-16, ReLU, FC-64 (no bias)] + FC-5"),
    "cnn3": (ee449.cnn3_2021, "[C3x3x16, C7x7x8, pool, C5x5x16, pool, GAP] + FC-5"),
    "cnn4": (ee449.cnn4_2021, "[C3x3x16, C5x5x8, C3x3x8, pool, C5x5x16, pool, GAP] + FC-5"),
    "cnn5": (ee449.cnn5_2021, "[C3x3x16, C3x3x8 x3, pool, C3x3x16 x2, pool, GAP] + FC-5"),
}
_RT720 = {
    "mlp": (rt720.mlp, "Ex 1 MLP 784-50-50-10"),
    "cnn": (rt720.cnn, "Ex 2 CNN [C3x3x8 p1, pool, C3x3x16 p1, pool, C3x3x32 p1] + FC-10"),
    "cnn_pool_first": (rt720.cnn_pool_first, "Ex 3 CNN with max-pool before the activation"),
    "cnn_pool_first_tanh": (rt720.cnn_pool_first, "Ex 3b: Ex 3 with tanh", "tanh"),
    "deep_plain": (rt720.deep_plain, "Ex 5b: Ex 2 CNN + 9 extra 3x3 convs, no residuals"),
    "deep_residual": (rt720.deep_residual, "Ex 5: the 9 extra convs as residual blocks"),
    "deep_residual_bn": (rt720.deep_residual_bn, "Ex 6a: residual blocks with BatchNorm"),
}
_M124 = {
    "mlp": (m124.mlp, "FC 3072-512-512-256-10"),
    "mlp_wide": (m124.mlp_wide, "FC 3072-512-512-512-10"),
    "mlp_narrow": (m124.mlp_narrow, "FC 3072-256-256-256-10"),
    "cnn": (m124.cnn, "LeNet-style [C3x3x16, pool, C3x3x32, pool] -> FC 512-256-10"),
    "cnn_32_64": (m124.cnn_32_64, "LeNet-style, 32/64 channels, FC 512-256-10"),
    "cnn_64_128": (m124.cnn_64_128, "LeNet-style, 64/128 channels, FC 512-256-10"),
    "cnn_64_128_fc512": (m124.cnn_64_128_fc512, "LeNet-style, 64/128 channels, FC 512-512-10"),
}

_FAMILIES = [
    # family, input shape (C, H, W), classes, batch size, description prefix, networks
    ("ee449", (1, 32, 32), 10, 50, "EE449 CIFAR-10 grayscale (report 000): ", _EE449),
    ("ee449_color", (3, 32, 32), 10, 50, "EE449 CIFAR-10 colour (report 001): ", _EE449),
    ("ee449_2021", (1, 28, 28), 5, 50, "EE449 2021 edition (report 003): ", _EE449_2021),
    ("1rt720", (1, 28, 28), 10, 128, "1RT720 (report 002) ", _RT720),
    # Batch 64: the report's code is the PyTorch quickstart, whose batch size is 64.
    ("m124", (3, 32, 32), 10, 64, "M124 (report 004) ", _M124),
]

_SPECS: Dict[str, ModelSpec] = {
    f"{family}/{net}": ModelSpec(f"{family}/{net}", family, shape, classes, batch, about + desc,
                                 *activation, builder=builder)
    for family, shape, classes, batch, about, nets in _FAMILIES
    for net, (builder, desc, *activation) in nets.items()
}


def available():
    return list(_SPECS)


def spec(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown network {name!r}; available: {', '.join(_SPECS)}") from None
