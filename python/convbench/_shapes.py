"""The shape numbers a kernel call passes to convbench._C, in the order the
module names them (CONV2D_SHAPE_FIELDS, and each table kernel's
shape_fields: generated from the one field list of each shape in
csrc/common/shapes.h or the op's own header).

This module says what each field is, by name; the order comes from _C. Each
packer is compiled once at import into a plain function returning the tuple
in _C's order, so a call costs what a hand-written tuple does. A module that
names a field this layer does not know (a build from another version) is
refused at import.
"""
from __future__ import annotations

from . import _C

# conv2d_shape(x_shape, w_shape, pq, stride, padding4, dilation, groups):
# padding4 is (top, bottom, left, right); the kernels take top and left (the
# bottom and right are implied by P and Q).
_CONV_PARAMS = "x, w, pq, st, pd, dl, g"
_CONV_VALUES = {"N": "x[0]", "C": "x[1]", "H": "x[2]", "W": "x[3]", "K": "w[0]", "R": "w[2]",
                "S": "w[3]", "P": "pq[0]", "Q": "pq[1]", "stride_h": "st[0]", "stride_w": "st[1]",
                "pad_h": "pd[0]", "pad_w": "pd[2]", "dil_h": "dl[0]", "dil_w": "dl[1]",
                "groups": "g"}

# The fields every pooling shape has; each pool adds its own (ops/<op>.py).
# Parameters: x (input shape), pq, k (kernel), st (stride), pd (padding).
POOL_WINDOW_VALUES = {"N": "x[0]", "C": "x[1]", "H": "x[2]", "W": "x[3]", "P": "pq[0]",
                      "Q": "pq[1]", "kernel_h": "k[0]", "kernel_w": "k[1]", "stride_h": "st[0]",
                      "stride_w": "st[1]", "pad_h": "pd[0]", "pad_w": "pd[1]"}


def packer(name: str, params: str, values: dict, fields):
    """def name(params): return (values[f] for f in fields), as one tuple."""
    unknown = [f for f in fields if f not in values]
    if unknown or len(set(fields)) != len(values):
        raise ImportError(f"convbench._C takes {name} fields {tuple(fields)}; this Python layer "
                          f"knows {tuple(values)}: reinstall convbench so both come from one "
                          "version")
    body = ", ".join(values[f] for f in fields)
    namespace: dict = {}
    exec(f"def {name}({params}):\n    return ({body},)\n", namespace)  # noqa: S102 - our text
    return namespace[name]


conv2d_shape = packer("conv2d_shape", _CONV_PARAMS, _CONV_VALUES, _C.CONV2D_SHAPE_FIELDS)
