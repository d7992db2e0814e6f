"""The conv2d algorithm names: their ids in the compiled module, which a
device implements, and the checks that turn a user's name into an id. The
names come from C++ (conv2d_algo_name in csrc/common/shapes.h, exported as
_C.CONV2D_ALGO_IDS); only "auto" means something here (the backend picks)."""
from __future__ import annotations

from typing import Tuple

import torch

from . import _C
from ._shapes import conv2d_shape

ALGO_IDS = dict(_C.CONV2D_ALGO_IDS)
_DTYPE_IDS = {getattr(torch, name): i for name, i in _C.DTYPE_IDS.items()}
_DEVICE_CUDA = _C.DEVICE_IDS["cuda"]
_NAMES: dict = {}


def algo_names(code: int) -> Tuple[str, ...]:
    """Names of the algorithms a device code implements (besides auto)."""
    if code not in _NAMES:
        ids = set(_C.conv2d_algos(code))
        _NAMES[code] = tuple(n for n, i in ALGO_IDS.items() if i in ids)
    return _NAMES[code]


def supported_algos(device_type: str) -> Tuple[str, ...]:
    """Algorithm names usable on a device type ('auto' always is)."""
    code = _C.DEVICE_IDS.get(device_type, _DEVICE_CUDA)
    if code == _DEVICE_CUDA and not _C.cuda_compiled():
        return ("auto",)
    return ("auto",) + algo_names(code)


def check_algo_name(algo) -> str:
    """Early check for layers, which may move between devices: the name must
    exist on some device (algo_id checks the tensor's device at call time)."""
    if not isinstance(algo, str) or algo not in ALGO_IDS:
        raise ValueError(f"convbench: unknown conv2d algo {algo!r}; choose one of "
                         f"{', '.join(ALGO_IDS)}")
    return algo


def algo_id(algo: str, device_type: str) -> int:
    if algo == "auto":
        return 0
    allowed = supported_algos(device_type)
    if algo not in allowed:
        raise ValueError(
            f"convbench: unknown conv2d algo {algo!r} for {device_type} tensors; "
            f"choose one of {', '.join(allowed)}"
        )
    return ALGO_IDS[algo]


def chosen_algo(pass_: int, x_shape, w_shape, pq, stride, padding4, dilation, groups,
                dtype: torch.dtype, device_type: str) -> str:
    """The algorithm 'auto' resolves to (for reports and benchmarks)."""
    code = _C.DEVICE_IDS.get(device_type, _DEVICE_CUDA)
    shape = conv2d_shape(x_shape, w_shape, pq, stride, padding4, dilation, groups)
    i = _C.conv2d_choose_algo(code, pass_, _DTYPE_IDS[dtype], shape)
    return next(n for n, j in ALGO_IDS.items() if j == i)
