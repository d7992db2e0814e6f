"""convbench's kernels as PyTorch operators (namespace ``convbench``).

Forward and each backward are operators of their own, so torch.compile keeps
them in the graph and ``torch.library.opcheck`` can test each one. Every op
has a fake (meta) implementation for tracing and an autograd formula; the
backward ops are differentiable too (they are linear in each argument, so
their gradients are the other conv passes), which gives double backward.

    torch.ops.convbench.conv2d(input, weight, bias, stride, padding, dilation, groups, algo)
    torch.ops.convbench.conv2d_backward_input(grad_output, weight, input_size, ...)
    torch.ops.convbench.conv2d_backward_weight(grad_output, input, weight_size, ...)
    torch.ops.convbench.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    torch.ops.convbench.max_pool2d_backward(grad_output, indices, input_size, kernel_size,
                                            stride, padding, dilation)

``padding`` of the conv ops is explicit (top, bottom, left, right); the
friendly argument forms live in convbench.functional.
"""
from __future__ import annotations

import torch

from . import _args, _launch

_lib = torch.library.Library("convbench", "DEF")

_CONV_ARGS = "int[2] stride, int[4] padding, int[2] dilation, int groups, str algo=\"auto\""
_lib.define(f"conv2d(Tensor input, Tensor weight, Tensor? bias, {_CONV_ARGS}) -> Tensor")
_lib.define(
    f"conv2d_backward_input(Tensor grad_output, Tensor weight, SymInt[4] input_size, {_CONV_ARGS})"
    " -> Tensor"
)
_lib.define(
    f"conv2d_backward_weight(Tensor grad_output, Tensor input, SymInt[4] weight_size, {_CONV_ARGS})"
    " -> Tensor"
)
_lib.define(
    "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
    "int[2] dilation, bool ceil_mode) -> (Tensor, Tensor)"
)
_lib.define(
    "max_pool2d_backward(Tensor grad_output, Tensor indices, SymInt[4] input_size, "
    "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation) -> Tensor"
)


def _register(name, kernel, fake):
    for key in ("CPU", "CUDA"):
        _lib.impl(name, kernel, key)
    torch.library.register_fake(f"convbench::{name}", fake, lib=_lib)


# ---- shape checks shared by the real and the fake implementations ---------


def _check_grad_output(grad_output, expected, what):
    if tuple(grad_output.shape) != tuple(expected):
        raise RuntimeError(
            f"convbench.{what}: grad_output has shape {list(grad_output.shape)}, expected "
            f"{list(expected)}"
        )


def _conv2d_meta(input, weight, bias, stride, padding, dilation, groups):
    pq = _args.check_conv2d(input, weight, bias, stride, padding, dilation, groups)
    return (input.shape[0], weight.shape[0], pq[0], pq[1]), pq


def _backward_input_meta(grad_output, weight, input_size, stride, padding, dilation, groups):
    op = "conv2d_backward_input"
    _args.check_same_device_dtype(grad_output, "grad_output", weight, "weight", op)
    _args.check_device_type(grad_output, op)
    _args.check_float_dtype(grad_output, "grad_output", op)
    pq = _args.conv2d_geometry(input_size, weight.shape, None, stride, padding, dilation, groups)
    _check_grad_output(grad_output, (input_size[0], weight.shape[0], pq[0], pq[1]), op)
    return pq


def _backward_weight_meta(grad_output, input, weight_size, stride, padding, dilation, groups):
    op = "conv2d_backward_weight"
    _args.check_same_device_dtype(grad_output, "grad_output", input, "input", op)
    _args.check_device_type(grad_output, op)
    _args.check_float_dtype(grad_output, "grad_output", op)
    pq = _args.conv2d_geometry(input.shape, weight_size, None, stride, padding, dilation, groups)
    _check_grad_output(grad_output, (input.shape[0], weight_size[0], pq[0], pq[1]), op)
    return pq


# ---- conv2d -----------------------------------------------------------------


def _conv2d_kernel(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
    _, pq = _conv2d_meta(input, weight, bias, stride, padding, dilation, groups)
    return _launch.conv2d_forward(input, weight, bias, pq, stride, padding, dilation, groups, algo)


def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
    out, _ = _conv2d_meta(input, weight, bias, stride, padding, dilation, groups)
    return input.new_empty(out)


def _backward_input_kernel(grad_output, weight, input_size, stride, padding, dilation, groups,
                           algo="auto"):
    _backward_input_meta(grad_output, weight, input_size, stride, padding, dilation, groups)
    return _launch.conv2d_backward_input(grad_output, weight, input_size, stride, padding,
                                         dilation, groups, algo)


def _backward_input_fake(grad_output, weight, input_size, stride, padding, dilation, groups,
                         algo="auto"):
    _backward_input_meta(grad_output, weight, input_size, stride, padding, dilation, groups)
    return grad_output.new_empty(tuple(input_size))


def _backward_weight_kernel(grad_output, input, weight_size, stride, padding, dilation, groups,
                            algo="auto"):
    _backward_weight_meta(grad_output, input, weight_size, stride, padding, dilation, groups)
    return _launch.conv2d_backward_weight(grad_output, input, weight_size, stride, padding,
                                          dilation, groups, algo)


def _backward_weight_fake(grad_output, input, weight_size, stride, padding, dilation, groups,
                          algo="auto"):
    _backward_weight_meta(grad_output, input, weight_size, stride, padding, dilation, groups)
    return grad_output.new_empty(tuple(weight_size))


_register("conv2d", _conv2d_kernel, _conv2d_fake)
_register("conv2d_backward_input", _backward_input_kernel, _backward_input_fake)
_register("conv2d_backward_weight", _backward_weight_kernel, _backward_weight_fake)


def _save_conv_args(ctx, stride, padding, dilation, groups, algo):
    ctx.conv_args = (stride, padding, dilation, groups, algo)


def _conv2d_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, *rest = inputs
    _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
    ctx.has_bias = bias is not None
    ctx.save_for_backward(input, weight)


def _conv2d_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    args = ctx.conv_args
    need = ctx.needs_input_grad
    gi = torch.ops.convbench.conv2d_backward_input(grad, weight, input.shape, *args) if need[0] else None
    gw = torch.ops.convbench.conv2d_backward_weight(grad, input, weight.shape, *args) if need[1] else None
    gb = grad.sum((0, 2, 3)) if ctx.has_bias and need[2] else None
    return gi, gw, gb, None, None, None, None, None


def _backward_input_setup(ctx, inputs, output):
    grad_output, weight, input_size, stride, padding, dilation, groups, *rest = inputs
    _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
    ctx.save_for_backward(grad_output, weight)


def _backward_input_backward(ctx, grad_dx):
    # dx = A^T(dy, w): d/d(dy) is the forward conv of grad_dx, d/dw is the
    # weight gradient with dy in the role of grad_output.
    grad_output, weight = ctx.saved_tensors
    args = ctx.conv_args
    need = ctx.needs_input_grad
    g_dy = torch.ops.convbench.conv2d(grad_dx, weight, None, *args) if need[0] else None
    g_w = (torch.ops.convbench.conv2d_backward_weight(grad_output, grad_dx, weight.shape, *args)
           if need[1] else None)
    return g_dy, g_w, None, None, None, None, None, None


def _backward_weight_setup(ctx, inputs, output):
    grad_output, input, weight_size, stride, padding, dilation, groups, *rest = inputs
    _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
    ctx.save_for_backward(grad_output, input)


def _backward_weight_backward(ctx, grad_dw):
    grad_output, input = ctx.saved_tensors
    args = ctx.conv_args
    need = ctx.needs_input_grad
    g_dy = torch.ops.convbench.conv2d(input, grad_dw, None, *args) if need[0] else None
    g_x = (torch.ops.convbench.conv2d_backward_input(grad_output, grad_dw, input.shape, *args)
           if need[1] else None)
    return g_dy, g_x, None, None, None, None, None, None


torch.library.register_autograd("convbench::conv2d", _conv2d_backward,
                                setup_context=_conv2d_setup, lib=_lib)
torch.library.register_autograd("convbench::conv2d_backward_input", _backward_input_backward,
                                setup_context=_backward_input_setup, lib=_lib)
torch.library.register_autograd("convbench::conv2d_backward_weight", _backward_weight_backward,
                                setup_context=_backward_weight_setup, lib=_lib)


# ---- max_pool2d ---------------------------------------------------------------


def _max_pool2d_kernel(input, kernel_size, stride, padding, dilation, ceil_mode):
    pq = _args.check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    return _launch.max_pool2d_forward(input, pq, kernel_size, stride, padding, dilation)


def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
    P, Q = _args.check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    shape = (input.shape[0], input.shape[1], P, Q)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


def _pool_backward_check(grad_output, indices, input_size):
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


def _max_pool2d_backward_kernel(grad_output, indices, input_size, kernel_size, stride, padding,
                                dilation):
    _pool_backward_check(grad_output, indices, input_size)
    return _launch.max_pool2d_backward(grad_output, indices, input_size, kernel_size, stride,
                                       padding, dilation)


def _max_pool2d_backward_fake(grad_output, indices, input_size, kernel_size, stride, padding,
                              dilation):
    _pool_backward_check(grad_output, indices, input_size)
    return grad_output.new_empty(tuple(input_size))


_register("max_pool2d", _max_pool2d_kernel, _max_pool2d_fake)
_register("max_pool2d_backward", _max_pool2d_backward_kernel, _max_pool2d_backward_fake)


def _max_pool2d_setup(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, _ = inputs
    ctx.pool_args = (kernel_size, stride, padding, dilation)
    ctx.input_size = input.shape
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _max_pool2d_backward(ctx, grad, _grad_indices):
    (indices,) = ctx.saved_tensors
    gx = torch.ops.convbench.max_pool2d_backward(grad, indices, ctx.input_size, *ctx.pool_args)
    return gx, None, None, None, None, None


def _max_pool2d_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _max_pool2d_backward_backward(ctx, grad_dx):
    # The backward scatters grad_output to the argmax positions; its adjoint
    # gathers from them.
    (indices,) = ctx.saved_tensors
    g = grad_dx.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)
    return g, None, None, None, None, None, None


torch.library.register_autograd("convbench::max_pool2d", _max_pool2d_backward,
                                setup_context=_max_pool2d_setup, lib=_lib)
torch.library.register_autograd("convbench::max_pool2d_backward", _max_pool2d_backward_backward,
                                setup_context=_max_pool2d_backward_setup, lib=_lib)
