"""Conv2d / MaxPool2d that compute through the NumPy reference (convbench.reference).

This is the homework's "own implementation": forward and backward run in NumPy, wrapped in
torch.autograd.Function so the rest of the network (Linear, loss, optimiser) stays in PyTorch.
Slow by design; tensors on a GPU are copied to the host and back.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _ref():
    try:
        from convbench import reference
    except ImportError as exc:  # the reference module is part of the package; say what is missing
        raise RuntimeError(f"backend='numpy' needs convbench.reference ({exc})") from exc
    return reference


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def _back(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)


class _NumpyConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        ref = _ref()
        xn, wn = _np(x), _np(w)
        bn = None if b is None else _np(b)
        y = ref.conv2d(xn, wn, bn, stride=stride, padding=padding, dilation=dilation, groups=groups)
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, dilation, groups, b is not None)
        return _back(y, x)

    @staticmethod
    def backward(ctx, gy):
        ref = _ref()
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        g = _np(gy)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _back(
                ref.conv2d_backward_input(g, _np(w), tuple(x.shape), stride, padding, dilation, groups), x
            )
        if ctx.needs_input_grad[1]:
            gw = _back(
                ref.conv2d_backward_weight(g, _np(x), tuple(w.shape), stride, padding, dilation, groups), w
            )
        if has_bias and ctx.needs_input_grad[2]:
            gb = _back(ref.conv2d_backward_bias(g), w)
        return gx, gw, gb, None, None, None, None


class _NumpyMaxPool2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        y, idx = _ref().max_pool2d(
            _np(x), kernel_size, stride=stride, padding=padding, dilation=dilation,
            ceil_mode=ceil_mode, return_indices=True,
        )
        ctx.idx = idx
        ctx.input_shape = tuple(x.shape)
        ctx.like = (x.device, x.dtype)
        return _back(y, x)

    @staticmethod
    def backward(ctx, gy):
        gx = _ref().max_pool2d_backward(_np(gy), ctx.idx, ctx.input_shape)
        return _back(gx, gy), None, None, None, None, None


class NumpyConv2d(nn.Conv2d):
    """torch.nn.Conv2d whose forward/backward run in convbench.reference (NumPy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"NumpyConv2d supports padding_mode='zeros' only, got {self.padding_mode!r}")
        padding = self.padding if not isinstance(self.padding, str) else self._resolve_padding()
        return _NumpyConv2dFn.apply(
            x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
        )

    def _resolve_padding(self):
        # 'valid' is no padding; 'same' (stride 1) pads (k-1)*d//2 on top/left like torch does
        # for odd kernels; even kernels would need asymmetric padding, which we refuse.
        if self.padding == "valid":
            return (0, 0)
        pads = []
        for k, d in zip(self.kernel_size, self.dilation):
            total = d * (k - 1)
            if total % 2:
                raise ValueError("NumpyConv2d: padding='same' with an even effective kernel is not supported")
            pads.append(total // 2)
        return tuple(pads)


class NumpyMaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d whose forward/backward run in convbench.reference (NumPy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.return_indices:
            raise ValueError("NumpyMaxPool2d does not return indices")
        return _NumpyMaxPool2dFn.apply(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
