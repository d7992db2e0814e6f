"""The user-facing functions, mirroring torch.nn.functional.conv2d and
max_pool2d (plus nn.Conv2d's padding_mode and an ``algo`` choice)."""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from . import _args, _eager, _launch
from . import ops as _ops  # noqa: F401  (registers torch.ops.convbench.*)

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: _args.IntOrPair = 1,
    padding: Union[str, _args.IntOrPair] = 0,
    dilation: _args.IntOrPair = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    algo: str = "auto",
) -> torch.Tensor:
    """2D convolution on convbench's kernels, same semantics as
    ``torch.nn.functional.conv2d``.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (K, C/groups, kH, kW);
    bias: (K,) or None. ``padding`` is an int, a pair, 'valid' or 'same';
    ``padding_mode`` is 'zeros', 'reflect', 'replicate' or 'circular' (as in
    torch.nn.Conv2d); ``algo`` picks the kernel ('auto', or one of
    convbench.algorithms(device)). Returns (N, K, P, Q), or (K, P, Q).
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"convbench.conv2d: input must be a tensor, got {type(input).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"convbench.conv2d: weight must be a tensor, got {type(weight).__name__}")
    if weight.dim() != 4:
        raise RuntimeError(
            "weight must have shape (out_channels, in_channels/groups, kH, kW), got "
            f"{list(weight.shape)}"
        )
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    stride2 = _args.positive_pair(stride, "stride")
    dilation2 = _args.positive_pair(dilation, "dilation")
    padding4 = _args.conv_padding(padding, tuple(weight.shape[2:]), stride2, dilation2)
    if padding_mode != "zeros":
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}"
            )
        if input.dim() == 4 and any(padding4):
            # F.pad takes (left, right, top, bottom); its backward folds the
            # gradient back onto the source pixels.
            top, bottom, left, right = padding4
            input = F.pad(input, (left, right, top, bottom), mode=padding_mode)
        padding4 = (0, 0, 0, 0)
    if _eager.usable(input, weight, bias):
        pq = _args.check_conv2d(input, weight, bias, stride2, padding4, dilation2, groups,
                                cache=True)
        geometry = (pq, stride2, padding4, dilation2, groups, algo)
        if _eager.needs_grad(input, weight, bias):
            out = _eager.Conv2dFunction.apply(input, weight, bias, geometry)
        else:  # inference: no autograd node to build
            out = _launch.conv2d_forward(input, weight, bias, *geometry)
    else:
        out = torch.ops.convbench.conv2d(
            input, weight, bias, list(stride2), list(padding4), list(dilation2), groups, algo
        )
    return out.squeeze(0) if unbatched else out


def max_pool2d(
    input: torch.Tensor,
    kernel_size: _args.IntOrPair,
    stride: Optional[_args.IntOrPair] = None,
    padding: _args.IntOrPair = 0,
    dilation: _args.IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """2D max pooling on convbench's kernels, same semantics as
    ``torch.nn.functional.max_pool2d``: stride defaults to kernel_size,
    padding reads as -inf, indices are flat offsets h * W + w per plane.
    input: (N, C, H, W) or (C, H, W)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"convbench.max_pool2d: input must be a tensor, got {type(input).__name__}")
    unbatched = input.dim() == 3
    if unbatched:  # checked before unsqueeze so the message shows the caller's shape
        _args.check_pool_input_sizes(input.shape)
    if unbatched:
        input = input.unsqueeze(0)
    kernel2 = _args.positive_pair(kernel_size, "kernel_size")
    stride2 = kernel2 if stride is None or stride == [] or stride == () else _args.positive_pair(
        stride, "stride")
    padding2 = _args.non_negative_pair(padding, "padding")
    dilation2 = _args.positive_pair(dilation, "dilation")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    if _eager.usable(input):
        pq = _args.check_max_pool2d(input, kernel2, stride2, padding2, dilation2, ceil_mode,
                                    cache=True)
        geometry = (pq, kernel2, stride2, padding2, dilation2)
        if _eager.needs_grad(input):
            out, indices = _eager.MaxPool2dFunction.apply(input, geometry)
        else:
            out, indices = _launch.max_pool2d_forward(input, *geometry)
    else:
        out, indices = torch.ops.convbench.max_pool2d(
            input, list(kernel2), list(stride2), list(padding2), list(dilation2), ceil_mode
        )
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out
