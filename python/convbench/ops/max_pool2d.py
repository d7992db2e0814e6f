"""max_pool2d as PyTorch operators, in one place: the schemas of its two
operators (forward with argmax indices, and the gradient, differentiable in
turn), their checks and fake kernels, the autograd formula (once:
max_pool2d_grad, used by the registered operator and the lean eager path),
forward-mode rules, the eager autograd.Function, and the user-facing
``convbench.max_pool2d``.

    torch.ops.convbench.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    torch.ops.convbench.max_pool2d_backward(grad_output, indices, input_size, kernel_size,
                                            stride, padding, dilation)
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import _args, _eager, _launch, _shapes
from . import _batching, registry
from ._library import LIB, register, register_autograd

_ops = torch.ops.convbench

LIB.define(
    "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
    "int[2] dilation, bool ceil_mode) -> (Tensor, Tensor)"
)
LIB.define(
    "max_pool2d_backward(Tensor grad_output, Tensor indices, SymInt[4] input_size, "
    "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation) -> Tensor"
)


# ---- marshalling: tensors to the table kernels (csrc/maxpool2d/) ---------------------

# _pool_shape(x_shape, pq, kernel_size, stride, padding, dilation)
_forward_kernel, _backward_kernel, _pool_shape = _launch.table_kernels(
    "max_pool2d", "x, pq, k, st, pd, dl",
    {**_shapes.POOL_WINDOW_VALUES, "dil_h": "dl[0]", "dil_w": "dl[1]"})
_HALF = (torch.float16, torch.bfloat16)


def _forward(x, pq, kernel_size, stride, padding, dilation):
    if x.dtype in _HALF and x.device.type == "cpu":
        # The CPU kernels are float32/float64; widening is exact and a max
        # only selects, so values and indices are the half type's own.
        y, idx = _forward(x.float(), pq, kernel_size, stride, padding, dilation)
        return y.to(x.dtype), idx
    x = x.contiguous()
    N, C = x.shape[:2]
    y = torch.empty((N, C, pq[0], pq[1]), dtype=x.dtype, device=x.device)
    idx = torch.empty((N, C, pq[0], pq[1]), dtype=torch.int64, device=x.device)
    _forward_kernel(x, _pool_shape(x.shape, pq, kernel_size, stride, padding, dilation), x, y,
                    idx)
    return y, idx


def _backward(dy, indices, input_size, kernel_size, stride, padding, dilation):
    if dy.dtype in _HALF and dy.device.type == "cpu":  # summed in float32, rounded once
        return _backward(dy.float(), indices, input_size, kernel_size, stride, padding,
                         dilation).to(dy.dtype)
    dy, indices = dy.contiguous(), indices.contiguous()
    dx = torch.empty(tuple(input_size), dtype=dy.dtype, device=dy.device)
    shape = _pool_shape(input_size, dy.shape[2:], kernel_size, stride, padding, dilation)
    _backward_kernel(dy, shape, dy, indices, dx)
    return dx


# ---- kernels, fakes and their checks -----------------------------------------------


def _max_pool2d_kernel(input, kernel_size, stride, padding, dilation, ceil_mode):
    pq = _args.check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    return _forward(input, pq, kernel_size, stride, padding, dilation)


def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
    P, Q = _args.check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    shape = (input.shape[0], input.shape[1], P, Q)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


def _pool_backward_check(grad_output, indices, input_size, kernel_size, stride, padding,
                         dilation, cache=False):
    if grad_output.dim() != 4 or len(input_size) != 4:
        raise RuntimeError("convbench.max_pool2d_backward: expected 4D grad_output and input_size")
    if tuple(indices.shape) != tuple(grad_output.shape) or indices.dtype != torch.int64:
        raise RuntimeError(
            "convbench.max_pool2d_backward: indices must be int64 with grad_output's shape "
            f"{list(grad_output.shape)}, got {indices.dtype} {list(indices.shape)}"
        )
    if tuple(grad_output.shape[:2]) != tuple(input_size[:2]):
        raise RuntimeError(
            f"convbench.max_pool2d_backward: grad_output {list(grad_output.shape)} does not match "
            f"input_size {list(input_size)}"
        )
    if indices.device != grad_output.device:
        raise RuntimeError("convbench.max_pool2d_backward: indices and grad_output must be on "
                           "the same device")
    _args.check_float_dtype(grad_output, "grad_output", "max_pool2d_backward")
    _args.check_max_pool2d_backward_size(tuple(grad_output.shape[2:]), tuple(input_size),
                                         kernel_size, stride, padding, dilation, cache=cache)


def _max_pool2d_backward_kernel(grad_output, indices, input_size, kernel_size, stride, padding,
                                dilation):
    _pool_backward_check(grad_output, indices, input_size, kernel_size, stride, padding, dilation,
                         cache=True)
    return _backward(grad_output, indices, input_size, kernel_size, stride,
                                       padding, dilation)


def _max_pool2d_backward_fake(grad_output, indices, input_size, kernel_size, stride, padding,
                              dilation):
    _pool_backward_check(grad_output, indices, input_size, kernel_size, stride, padding, dilation)
    return grad_output.new_empty(tuple(input_size))


# ---- vmap rules (see _batching.py) --------------------------------------------------


def _max_pool2d_vmap(info, in_dims, input, *rest):
    _batching.check_4d(input, in_dims[0], "input", "max_pool2d")
    x = input.movedim(in_dims[0], 0)
    y, idx = _ops.max_pool2d(x.flatten(0, 1), *rest)
    return (y.unflatten(0, x.shape[:2]), idx.unflatten(0, x.shape[:2])), (0, 0)


def _max_pool2d_backward_vmap(info, in_dims, grad_output, indices, input_size, *rest):
    B = info.batch_size
    dd, idd = in_dims[:2]
    _batching.check_4d(grad_output, dd, "grad_output", "max_pool2d_backward")
    dy = _batching.front(grad_output, dd, B)
    idx = _batching.front(indices, idd, B)
    N, C, H, W = input_size
    dx = _ops.max_pool2d_backward(dy.flatten(0, 1), idx.flatten(0, 1), [B * N, C, H, W], *rest)
    return dx.unflatten(0, (B, N)), 0


register("max_pool2d", _max_pool2d_kernel, _max_pool2d_fake, _max_pool2d_vmap)
register("max_pool2d_backward", _max_pool2d_backward_kernel, _max_pool2d_backward_fake,
         _max_pool2d_backward_vmap)
# (no autocast: max-pool is on none of torch's autocast lists)


# ---- the autograd formula --------------------------------------------------------


def max_pool2d_grad(grad, indices, input_size, pool_args, differentiable):
    """d input of max_pool2d for grad_output `grad` (pool_args: kernel_size,
    stride, padding, dilation): the registered operator's backward and the
    eager Function's. differentiable: through the gradient operator, else
    straight to the kernel."""
    backward = _ops.max_pool2d_backward if differentiable else _backward
    return backward(grad, indices, input_size, *pool_args)


def _max_pool2d_setup(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, _ = inputs
    ctx.pool_args = (kernel_size, stride, padding, dilation)
    ctx.input_size = input.shape
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])
    ctx.save_for_forward(output[1])


def _max_pool2d_jvp(ctx, t_input, *_):
    # The output is the input gathered at the indices; so is its tangent.
    (indices,) = ctx.saved_tensors
    return _gather(t_input, indices), None


def _gather(x, indices):
    return x.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)


def _max_pool2d_backward(ctx, grad, _grad_indices):
    (indices,) = ctx.saved_tensors
    gx = max_pool2d_grad(grad, indices, ctx.input_size, ctx.pool_args, differentiable=True)
    return gx, None, None, None, None, None


def _max_pool2d_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.save_for_forward(inputs[1])
    ctx.pool_args = (tuple(inputs[2]), *inputs[3:])


def _max_pool2d_backward_jvp(ctx, t_grad, *_):
    (indices,) = ctx.saved_tensors
    return _ops.max_pool2d_backward(t_grad, indices, *ctx.pool_args)


def _max_pool2d_backward_backward(ctx, grad_dx):
    # The backward scatters grad_output to the argmax positions; its adjoint
    # gathers from them.
    (indices,) = ctx.saved_tensors
    return _gather(grad_dx, indices), None, None, None, None, None, None


register_autograd("max_pool2d", _max_pool2d_setup, _max_pool2d_backward, _max_pool2d_jvp)
register_autograd("max_pool2d_backward", _max_pool2d_backward_setup,
                  _max_pool2d_backward_backward, _max_pool2d_backward_jvp)


# ---- the lean eager path (see _eager.py) ------------------------------------------


class MaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, geometry):
        pq, kernel_size, stride, padding, dilation = geometry
        out, indices = _forward(input, pq, kernel_size, stride, padding,
                                                  dilation)
        ctx.pool_args = (kernel_size, stride, padding, dilation)
        ctx.input_size = input.shape
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        return out, indices

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        (indices,) = ctx.saved_tensors
        gx = max_pool2d_grad(grad, indices, ctx.input_size, ctx.pool_args,
                             differentiable=torch.is_grad_enabled())
        return gx, None


# ---- the user-facing function -------------------------------------------------------


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
    kernel2, stride2, padding2 = _args.pool_window(kernel_size, stride, padding)
    dilation2 = _args.positive_pair(dilation, "dilation")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    if _eager.usable(input):
        pq = _args.check_max_pool2d(input, kernel2, stride2, padding2, dilation2, ceil_mode,
                                    cache=True)
        geometry = (pq, kernel2, stride2, padding2, dilation2)
        if _eager.needs_grad(input):
            out, indices = MaxPool2dFunction.apply(input, geometry)
        else:
            out, indices = _forward(input, *geometry)
    else:
        out, indices = _ops.max_pool2d(
            input, list(kernel2), list(stride2), list(padding2), list(dilation2), ceil_mode
        )
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


# ---- the layer ----------------------------------------------------------------------


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d on convbench's kernels (same arguments). Input
    (N, C, H, W) or (C, H, W)."""

    __module__ = "convbench.nn"

    def forward(self, input: torch.Tensor):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


registry.add(registry.Op("max_pool2d", max_pool2d, MaxPool2d, torch.nn.MaxPool2d,
                         ("max_pool2d", "max_pool2d_backward")))
