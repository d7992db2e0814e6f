"""EE449 Homework 1 networks (spec section 1).

CIFAR-10 edition (reports 000/001): mlp_1, mlp_2, cnn_3, cnn_4, cnn_5 on 32x32 input, grayscale or
colour. 2021 edition (report 003): mlp1, mlp2, cnn3, cnn4, cnn5 on 28x28, 5 classes, the CNNs
ending in global average pooling.
"""
from __future__ import annotations

from .layers import LayerFactory
from .stack import Net, Stack, mlp_head


def _in_flat(shape):
    c, h, w = shape
    return c * h * w


# ---- CIFAR-10 edition ----------------------------------------------------------------------

def mlp_1(f: LayerFactory, shape, classes: int) -> Net:
    return Net([], mlp_head([_in_flat(shape), 32, classes], f))


def mlp_2(f: LayerFactory, shape, classes: int) -> Net:
    # FC-64 has no bias and no activation (spec table).
    return Net([], mlp_head([_in_flat(shape), 32, 64, classes], f, bias=[True, False, True],
                            act=[True, False, False]))


def cnn_3(f: LayerFactory, shape, classes: int) -> Net:
    s = Stack(f, shape).conv(16, 3).conv(8, 5).pool().conv(16, 7, act=False).pool()
    return Net(s.layers, mlp_head([s.flat, classes], f))


def cnn_4(f: LayerFactory, shape, classes: int) -> Net:
    s = Stack(f, shape).conv(16, 3).conv(8, 3).conv(16, 5).pool().conv(16, 5).pool()
    return Net(s.layers, mlp_head([s.flat, classes], f))


def cnn_5(f: LayerFactory, shape, classes: int) -> Net:
    # The table (conv6 included, flatten 8x4x4), not report 000's buggy code.
    s = Stack(f, shape).conv(8, 3).conv(16, 3).conv(8, 3).conv(16, 3).pool().conv(16, 3).conv(8, 3).pool()
    return Net(s.layers, mlp_head([s.flat, classes], f))


# ---- 2021 edition --------------------------------------------------------------------------

def mlp1_2021(f: LayerFactory, shape, classes: int) -> Net:
    return Net([], mlp_head([_in_flat(shape), 64, classes], f))


def mlp2_2021(f: LayerFactory, shape, classes: int) -> Net:
    return Net([], mlp_head([_in_flat(shape), 16, 64, classes], f, bias=[True, False, True],
                            act=[True, False, False]))


def cnn3_2021(f: LayerFactory, shape, classes: int) -> Net:
    s = Stack(f, shape).conv(16, 3).conv(8, 7).pool().conv(16, 5, act=False).pool().gap()
    return Net(s.layers, mlp_head([s.flat, classes], f))


def cnn4_2021(f: LayerFactory, shape, classes: int) -> Net:
    s = Stack(f, shape).conv(16, 3).conv(8, 5).conv(8, 3).pool().conv(16, 5).pool().gap()
    return Net(s.layers, mlp_head([s.flat, classes], f))


def cnn5_2021(f: LayerFactory, shape, classes: int) -> Net:
    s = (Stack(f, shape).conv(16, 3).conv(8, 3).conv(8, 3).conv(8, 3).pool()
         .conv(16, 3).conv(16, 3).pool().gap())
    return Net(s.layers, mlp_head([s.flat, classes], f))
