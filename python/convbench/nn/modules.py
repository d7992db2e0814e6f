"""Drop-in layers: subclasses of torch.nn.Conv2d / MaxPool2d whose forward
runs convbench's kernels. Same constructor arguments, parameter names,
shapes and default initialisation, so state_dicts load either way."""
from __future__ import annotations

import torch

from .. import functional as CF
from .._launch import check_algo_name


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d on convbench's kernels, plus ``algo`` ('auto',
    'direct', 'im2col', ...). Input (N, C_in, H, W) or (C_in, H, W)."""

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algo = check_algo_name(algo)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            padding_mode=self.padding_mode, algo=self.algo,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algo={self.algo!r}"


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d on convbench's kernels. Input (N, C, H, W) or (C, H, W)."""

    def forward(self, input: torch.Tensor):
        return CF.max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation,
            ceil_mode=self.ceil_mode, return_indices=self.return_indices,
        )
