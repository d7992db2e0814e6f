"""Deep Learning 1RT720 hand-in 2 networks (spec section 2, report 002), MNIST 1x28x28."""
from __future__ import annotations

import torch
from torch import nn

from .layers import LayerFactory
from .stack import cnn_net, mlp_net


mlp = mlp_net([50, 50])
# Ex 2: [Conv3x3x8 p1, act, pool, Conv3x3x16 p1, act, pool, Conv3x3x32 p1, act] + FC.
cnn = cnn_net(lambda s: s.conv(8, 3, 1).pool().conv(16, 3, 1).pool().conv(32, 3, 1))
# Ex 3: the same with max-pool before the activation (3b: the same with tanh).
cnn_pool_first = cnn_net(lambda s: s.conv(8, 3, 1, act=False).pool().act()
                         .conv(16, 3, 1, act=False).pool().act().conv(32, 3, 1))


class ResidualBlock(nn.Module):
    """x + conv(act(bn(x))) — the report's pre-activation block (UDL book fig. 11.5b / 11.6),
    `bn` only when batch_norm; with residual=False the same layers without the skip."""

    def __init__(self, f: LayerFactory, channels: int, residual: bool = True, batch_norm: bool = False):
        super().__init__()
        self.residual = residual
        self.norm = nn.BatchNorm2d(channels) if batch_norm else None
        self.act = f.act()
        self.conv = f.conv(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x if self.norm is None else self.norm(x)
        t = self.conv(self.act(t))
        return x + t if self.residual else t


def _deep(residual: bool, batch_norm: bool, blocks: int = 3):
    """Ex 5/6a: conv1 + 3 blocks (8->8) + pool, conv2 + 3 blocks (16->16) + pool, conv3 + 3 blocks
    (32->32), act, FC. The blocks start with the activation, so the convs before them have none."""
    def features(s):
        for i, channels in enumerate((8, 16, 32)):
            if i:
                s.pool()
            s.conv(channels, 3, 1, act=False)
            for _ in range(blocks):
                s.add(ResidualBlock(s.f, channels, residual, batch_norm))
        return s.act()
    return cnn_net(features)


deep_plain = _deep(residual=False, batch_norm=False)
deep_residual = _deep(residual=True, batch_norm=False)
deep_residual_bn = _deep(residual=True, batch_norm=True)
