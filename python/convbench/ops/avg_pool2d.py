"""avg_pool2d as PyTorch operators, in one place: its marshalling onto the
table kernels (csrc/avgpool2d/), the schemas of its two operators (forward,
and the gradient, differentiable in turn), their checks and fake kernels,
vmap rules, the autograd formula (once: avg_pool2d_grad), the eager
autograd.Function, the user-facing ``convbench.avg_pool2d`` and the layer
``convbench.nn.AvgPool2d``. Semantics are torch.nn.functional.avg_pool2d's.

    torch.ops.convbench.avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    torch.ops.convbench.avg_pool2d_backward(grad_output, input_size, kernel_size, stride,
                                            padding, ceil_mode, count_include_pad,
                                            divisor_override)
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import _args, _eager, _launch, _shapes
from . import _batching, registry
from ._library import LIB, register, register_autograd

_ops = torch.ops.convbench

# ---- marshalling: tensors to the table kernels -------------------------------------

# _avg_shape(x_shape, pq, kernel_size, stride, padding, count_include_pad, divisor_override)
_forward_kernel, _backward_kernel, _avg_shape = _launch.table_kernels(
    "avg_pool2d", "x, pq, k, st, pd, cip, div",
    {**_shapes.POOL_WINDOW_VALUES, "count_include_pad": "int(cip)", "divisor": "div or 0"})
_HALF = (torch.float16, torch.bfloat16)


def _forward(x, pq, kernel_size, stride, padding, count_include_pad, divisor_override):
    if x.dtype in _HALF and x.device.type == "cpu":  # summed in float32, rounded once
        return _forward(x.float(), pq, kernel_size, stride, padding, count_include_pad,
                        divisor_override).to(x.dtype)
    x = x.contiguous()
    y = torch.empty((x.shape[0], x.shape[1], pq[0], pq[1]), dtype=x.dtype, device=x.device)
    _forward_kernel(x, _avg_shape(x.shape, pq, kernel_size, stride, padding, count_include_pad,
                                  divisor_override), x, y)
    return y


def _backward(dy, input_size, kernel_size, stride, padding, count_include_pad,
              divisor_override):
    if dy.dtype in _HALF and dy.device.type == "cpu":
        return _backward(dy.float(), input_size, kernel_size, stride, padding,
                         count_include_pad, divisor_override).to(dy.dtype)
    dy = dy.contiguous()
    dx = torch.empty(tuple(input_size), dtype=dy.dtype, device=dy.device)
    _backward_kernel(dy, _avg_shape(input_size, dy.shape[2:], kernel_size, stride, padding,
                                    count_include_pad, divisor_override), dy, dx)
    return dx


# ---- argument checks ----------------------------------------------------------------


def _geometry(shape, kernel_size, stride, padding, ceil_mode, divisor_override):
    """torch's rules for a 4D input shape (the pools' window rules, dilation 1);
    returns (P, Q)."""
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, int) or
                                         divisor_override == 0):
        raise _args.ArgumentError(
            f"divisor_override must be a non-zero int or None, got {divisor_override!r}")
    return _args.pool2d_geometry(shape, kernel_size, stride, padding, (1, 1), ceil_mode,
                                 op="avg_pool2d")


def _check(input, kernel_size, stride, padding, ceil_mode, divisor_override, cache=False):
    """Validates a batched avg_pool2d call; returns (P, Q)."""
    _args._check_batched_input(input, "avg_pool2d", "avg_pool2d: Expected 3D or 4D (batch "
                               "mode) tensor for input, but got input of size: ")
    _args.check_float_dtype(input, "input", "avg_pool2d")
    key = ("avg_pool2d", input.shape, tuple(kernel_size), tuple(stride), tuple(padding),
           ceil_mode, divisor_override) if cache else None
    return _args._geometry(key, _geometry, input.shape, kernel_size, stride, padding, ceil_mode,
                           divisor_override)


def _check_backward(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                    divisor_override):
    if grad_output.dim() != 4 or len(input_size) != 4:
        raise RuntimeError("convbench.avg_pool2d_backward: expected 4D grad_output and "
                           "input_size")
    _args.check_device_type(grad_output, "avg_pool2d_backward")
    _args.check_float_dtype(grad_output, "grad_output", "avg_pool2d_backward")
    pq = _geometry(tuple(input_size), kernel_size, stride, padding, ceil_mode, divisor_override)
    if tuple(grad_output.shape) != (input_size[0], input_size[1], *pq):
        raise RuntimeError(
            f"convbench.avg_pool2d_backward: grad_output has shape {list(grad_output.shape)}, "
            f"but avg_pool2d of input_size {list(input_size)} gives "
            f"{[input_size[0], input_size[1], *pq]}")


# ---- operators: schemas, kernels, fakes, vmap rules -----------------------------------

LIB.define(
    "avg_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
    "bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor")
LIB.define(
    "avg_pool2d_backward(Tensor grad_output, SymInt[4] input_size, int[2] kernel_size, "
    "int[2] stride, int[2] padding, bool ceil_mode, bool count_include_pad, "
    "int? divisor_override) -> Tensor")


def _avg_pool2d_kernel(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    pq = _check(input, kernel_size, stride, padding, ceil_mode, divisor_override)
    return _forward(input, pq, kernel_size, stride, padding, count_include_pad,
                    divisor_override)


def _avg_pool2d_fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override):
    P, Q = _check(input, kernel_size, stride, padding, ceil_mode, divisor_override)
    return input.new_empty((input.shape[0], input.shape[1], P, Q))


def _avg_pool2d_backward_kernel(grad_output, input_size, kernel_size, stride, padding,
                                ceil_mode, count_include_pad, divisor_override):
    _check_backward(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                    divisor_override)
    return _backward(grad_output, input_size, kernel_size, stride, padding, count_include_pad,
                     divisor_override)


def _avg_pool2d_backward_fake(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override):
    _check_backward(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                    divisor_override)
    return grad_output.new_empty(tuple(input_size))


def _avg_pool2d_vmap(info, in_dims, input, *rest):
    _batching.check_4d(input, in_dims[0], "input", "avg_pool2d")
    x = input.movedim(in_dims[0], 0)
    return _ops.avg_pool2d(x.flatten(0, 1), *rest).unflatten(0, x.shape[:2]), 0


def _avg_pool2d_backward_vmap(info, in_dims, grad_output, input_size, *rest):
    _batching.check_4d(grad_output, in_dims[0], "grad_output", "avg_pool2d_backward")
    B = info.batch_size
    dy = _batching.front(grad_output, in_dims[0], B)
    N, C, H, W = input_size
    dx = _ops.avg_pool2d_backward(dy.flatten(0, 1), [B * N, C, H, W], *rest)
    return dx.unflatten(0, (B, N)), 0


register("avg_pool2d", _avg_pool2d_kernel, _avg_pool2d_fake, _avg_pool2d_vmap)
register("avg_pool2d_backward", _avg_pool2d_backward_kernel, _avg_pool2d_backward_fake,
         _avg_pool2d_backward_vmap)
# (no autocast: avg_pool2d is on none of torch's CPU or CUDA autocast lists)


# ---- the autograd formula --------------------------------------------------------------
# avg_pool2d is linear: its gradient is the adjoint (avg_pool2d_backward), and
# the adjoint's gradient is avg_pool2d again, with the same arguments.


def avg_pool2d_grad(grad, input_size, pool_args, differentiable):
    """d input of avg_pool2d for grad_output `grad` (pool_args: kernel_size,
    stride, padding, ceil_mode, count_include_pad, divisor_override)."""
    if differentiable:
        return _ops.avg_pool2d_backward(grad, input_size, *pool_args)
    kernel_size, stride, padding, _, count_include_pad, divisor_override = pool_args
    return _backward(grad, input_size, kernel_size, stride, padding, count_include_pad,
                     divisor_override)


def _avg_pool2d_setup(ctx, inputs, output):
    ctx.input_size = inputs[0].shape
    ctx.pool_args = tuple(inputs[1:])


def _avg_pool2d_backward(ctx, grad):
    return (avg_pool2d_grad(grad, ctx.input_size, ctx.pool_args, differentiable=True),
            None, None, None, None, None, None)


def _avg_pool2d_jvp(ctx, t_input, *_):
    return _ops.avg_pool2d(t_input, *ctx.pool_args)


def _avg_pool2d_backward_setup(ctx, inputs, output):
    ctx.input_size = tuple(inputs[1])
    ctx.pool_args = tuple(inputs[2:])


def _avg_pool2d_backward_backward(ctx, grad_dx):
    return (_ops.avg_pool2d(grad_dx, *ctx.pool_args),) + (None,) * 7


def _avg_pool2d_backward_jvp(ctx, t_grad, *_):
    return _ops.avg_pool2d_backward(t_grad, ctx.input_size, *ctx.pool_args)


register_autograd("avg_pool2d", _avg_pool2d_setup, _avg_pool2d_backward, _avg_pool2d_jvp)
register_autograd("avg_pool2d_backward", _avg_pool2d_backward_setup,
                  _avg_pool2d_backward_backward, _avg_pool2d_backward_jvp)


# ---- the lean eager path (see _eager.py) ---------------------------------------------


class AvgPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, pq, pool_args):
        kernel_size, stride, padding, _, count_include_pad, divisor_override = pool_args
        ctx.input_size = input.shape
        ctx.pool_args = pool_args
        return _forward(input, pq, kernel_size, stride, padding, count_include_pad,
                        divisor_override)

    @staticmethod
    def backward(ctx, grad):
        gx = avg_pool2d_grad(grad, ctx.input_size, ctx.pool_args,
                             differentiable=torch.is_grad_enabled())
        return gx, None, None


# ---- the user-facing function ----------------------------------------------------------


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: _args.IntOrPair,
    stride: Optional[_args.IntOrPair] = None,
    padding: _args.IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> torch.Tensor:
    """2D average pooling on convbench's kernels, same semantics as
    ``torch.nn.functional.avg_pool2d``: stride defaults to kernel_size; a
    window's sum is divided by divisor_override if given, else by its size
    (counting the zero padding when count_include_pad). input: (N, C, H, W)
    or (C, H, W)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"convbench.avg_pool2d: input must be a tensor, got "
                        f"{type(input).__name__}")
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    kernel2, stride2, padding2 = _args.pool_window(kernel_size, stride, padding)
    for name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    pool_args = (kernel2, stride2, padding2, ceil_mode, count_include_pad, divisor_override)
    if _eager.usable(input):
        pq = _check(input, kernel2, stride2, padding2, ceil_mode, divisor_override, cache=True)
        if _eager.needs_grad(input):
            out = AvgPool2dFunction.apply(input, pq, pool_args)
        else:
            out = _forward(input, pq, kernel2, stride2, padding2, count_include_pad,
                           divisor_override)
    else:
        out = _ops.avg_pool2d(input, list(kernel2), list(stride2), list(padding2), ceil_mode,
                              count_include_pad, divisor_override)
    return out.squeeze(0) if unbatched else out


# ---- the layer ---------------------------------------------------------------------------


class AvgPool2d(torch.nn.AvgPool2d):
    """torch.nn.AvgPool2d on convbench's kernels (same arguments). Input
    (N, C, H, W) or (C, H, W)."""

    __module__ = "convbench.nn"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


registry.add(registry.Op("avg_pool2d", avg_pool2d, AvgPool2d, torch.nn.AvgPool2d,
                         ("avg_pool2d", "avg_pool2d_backward")))
