"""EE449 Homework 1 networks (spec section 1).

CIFAR-10 edition (reports 000/001): mlp_1, mlp_2, cnn_3, cnn_4, cnn_5 on 32x32 input, grayscale or
colour. 2021 edition (report 003): mlp1, mlp2, cnn3, cnn4, cnn5 on 28x28, 5 classes, the CNNs
ending in global average pooling.
"""
from __future__ import annotations

from .stack import cnn_net, mlp_net


def _mlp_2(hidden: int, wide: int):
    """[FC-hidden, act, FC-wide] + FC, FC-wide without bias or activation (spec table)."""
    return mlp_net([hidden, wide], bias=[True, False, True], act=[True, False, False])


# ---- CIFAR-10 edition ----------------------------------------------------------------------

mlp_1 = mlp_net([32])
mlp_2 = _mlp_2(32, 64)
cnn_3 = cnn_net(lambda s: s.conv(16, 3).conv(8, 5).pool().conv(16, 7, act=False).pool())
cnn_4 = cnn_net(lambda s: s.conv(16, 3).conv(8, 3).conv(16, 5).pool().conv(16, 5).pool())
# The table (conv6 included, flatten 8x4x4), not report 000's buggy code.
cnn_5 = cnn_net(lambda s: s.conv(8, 3).conv(16, 3).conv(8, 3).conv(16, 3).pool()
                .conv(16, 3).conv(8, 3).pool())

# ---- 2021 edition --------------------------------------------------------------------------

mlp1_2021 = mlp_net([64])
mlp2_2021 = _mlp_2(16, 64)
cnn3_2021 = cnn_net(lambda s: s.conv(16, 3).conv(8, 7).pool().conv(16, 5, act=False).pool().gap())
cnn4_2021 = cnn_net(lambda s: s.conv(16, 3).conv(8, 5).conv(8, 3).pool().conv(16, 5).pool().gap())
cnn5_2021 = cnn_net(lambda s: s.conv(16, 3).conv(8, 3).conv(8, 3).conv(8, 3).pool()
                    .conv(16, 3).conv(16, 3).pool().gap())
