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
from torch._C import _is_fwd_grad_enabled as _fwd_grad_enabled
from torch._functorch.utils import enable_single_level_autograd_function as _single_level_function
from torch.autograd.forward_ad import _set_fwd_grad_enabled

from . import _args, _launch, _op_autocast, _op_vmap

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
    torch.library.register_vmap(f"convbench::{name}", _op_vmap.RULES[name], lib=_lib)


def _register_autograd(name, setup_context, backward, jvp):
    """The op's Autograd kernel: a single-level autograd.Function in the form
    torch.func needs (forward without ctx, setup_context, jvp).

    torch.library.register_autograd cannot serve here: its Function has no
    setup_context, and any autograd.Function applied from inside a kernel
    under torch.func goes to functorch's custom_function_call, which has no
    rule at the Autograd key. Inside this kernel the functorch layer (grad or
    jvp) is already the current one and the tensors are that layer's, so the
    Function is applied at this level only, like an ATen op's autograd kernel
    (vmap layers never get here: the op's vmap rule sits above Autograd)."""
    op = getattr(torch.ops.convbench, name).default
    # The dispatcher drops arguments equal to their defaults; the formulas
    # index the inputs by position, so put them back.
    defaults = tuple(a.default_value for a in op._schema.arguments)
    below_autograd = torch._C._after_autograd_keyset

    def forward(*args):
        # Function.apply turns gradient recording off for the forward; lower
        # functorch levels (grad of grad) must still record, as they would
        # without this level, so the caller's modes come back on.
        *args, (keyset, grad_mode, fwd_grad_mode) = args
        with torch.autograd.grad_mode.set_grad_enabled(grad_mode), \
                _set_fwd_grad_enabled(fwd_grad_mode), torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & below_autograd, *args)

    def setup(ctx, inputs, output):
        setup_context(ctx, inputs[:-1], output)

    def backward_(ctx, *grads):
        return (*backward(ctx, *grads), None)

    function = type(f"{name}_function", (torch.autograd.function._SingleLevelFunction,), {
        "forward": staticmethod(forward), "setup_context": staticmethod(setup),
        "backward": staticmethod(backward_), "jvp": staticmethod(jvp),
    })

    def autograd_kernel(keyset, *args):
        modes = (keyset, torch.is_grad_enabled(), _fwd_grad_enabled())
        args = (*args, *defaults[len(args):], modes)
        if not torch._C._are_functorch_transforms_active():
            return function.apply(*args)
        with _single_level_function():
            return function.apply(*args)

    _lib.impl(name, autograd_kernel, "Autograd", with_keyset=True)


# ---- shape checks shared by the real and the fake implementations ---------


def _check_grad_output(grad_output, expected, what):
    if tuple(grad_output.shape) != tuple(expected):
        raise RuntimeError(
            f"convbench.{what}: grad_output has shape {list(grad_output.shape)}, expected "
            f"{list(expected)}"
        )


def _conv2d_meta(input, weight, bias, stride, padding, dilation, groups):
    pq = _args.check_conv2d(input, weight, bias, stride, padding, dilation, groups)
    k = _args.conv2d_out_channels(input.shape, weight.shape)
    return (input.shape[0], k, pq[0], pq[1]), pq


def _backward_input_meta(grad_output, weight, input_size, stride, padding, dilation, groups):
    op = "conv2d_backward_input"
    _args.check_same_device_dtype(grad_output, "grad_output", weight, "weight", op)
    _args.check_device_type(grad_output, op)
    _args.check_float_dtype(grad_output, "grad_output", op)
    pq = _args.conv2d_geometry(input_size, weight.shape, None, stride, padding, dilation, groups)
    k = _args.conv2d_out_channels(input_size, weight.shape)
    _check_grad_output(grad_output, (input_size[0], k, pq[0], pq[1]), op)
    return pq


def _backward_weight_meta(grad_output, input, weight_size, stride, padding, dilation, groups):
    op = "conv2d_backward_weight"
    _args.check_same_device_dtype(grad_output, "grad_output", input, "input", op)
    _args.check_device_type(grad_output, op)
    _args.check_float_dtype(grad_output, "grad_output", op)
    pq = _args.conv2d_geometry(input.shape, weight_size, None, stride, padding, dilation, groups)
    k = _args.conv2d_out_channels(input.shape, weight_size)
    _check_grad_output(grad_output, (input.shape[0], k, pq[0], pq[1]), op)
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
_op_autocast.register(_lib, "conv2d")  # max-pool and the backward ops: no autocast, as torch


def conv2d_bias_grad(grad: torch.Tensor, out_channels: int) -> torch.Tensor:
    """grad_output summed over (N, P, Q). With no input channels the output
    has none either and the bias no effect: its gradient is zeros (as torch's)."""
    if grad.shape[1] != out_channels:
        return grad.new_zeros(out_channels)
    return grad.sum((0, 2, 3))


def _save_conv_args(ctx, stride, padding, dilation, groups, algo):
    ctx.conv_args = (stride, padding, dilation, groups, algo)


def _conv2d_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, *rest = inputs
    _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
    ctx.has_bias = bias is not None
    ctx.save_for_backward(input, weight)
    ctx.save_for_forward(input, weight)
    ctx.out_shape = output.shape


def _conv2d_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    args = ctx.conv_args
    need = ctx.needs_input_grad
    gi = torch.ops.convbench.conv2d_backward_input(grad, weight, input.shape, *args) if need[0] else None
    gw = torch.ops.convbench.conv2d_backward_weight(grad, input, weight.shape, *args) if need[1] else None
    gb = conv2d_bias_grad(grad, weight.shape[0]) if ctx.has_bias and need[2] else None
    return gi, gw, gb, None, None, None, None, None


def _conv2d_jvp(ctx, t_input, t_weight, t_bias, *_):
    # Bilinear in (input, weight), plus the bias.
    input, weight = ctx.saved_tensors
    args = ctx.conv_args
    out = _sum_tangents(
        None if t_input is None else torch.ops.convbench.conv2d(t_input, weight, None, *args),
        None if t_weight is None else torch.ops.convbench.conv2d(input, t_weight, None, *args))
    if t_bias is None or not ctx.has_bias:
        return out
    if out is None:
        out = t_bias.new_zeros(ctx.out_shape)
    if out.shape[1] == 0:  # no input channels: the bias does not reach the output
        return out
    return out + t_bias[None, :, None, None]


def _sum_tangents(a, b):
    return b if a is None else a if b is None else a + b


def _backward_input_setup(ctx, inputs, output):
    grad_output, weight, input_size, stride, padding, dilation, groups, *rest = inputs
    _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
    ctx.save_for_backward(grad_output, weight)
    ctx.save_for_forward(grad_output, weight)
    ctx.input_size = tuple(inputs[2])


def _backward_input_jvp(ctx, t_dy, t_w, *_):
    grad_output, weight = ctx.saved_tensors
    op, args = torch.ops.convbench.conv2d_backward_input, ctx.conv_args
    return _sum_tangents(None if t_dy is None else op(t_dy, weight, ctx.input_size, *args),
                         None if t_w is None else op(grad_output, t_w, ctx.input_size, *args))


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
    ctx.save_for_forward(grad_output, input)
    ctx.weight_size = tuple(inputs[2])


def _backward_weight_jvp(ctx, t_dy, t_x, *_):
    grad_output, input = ctx.saved_tensors
    op, args = torch.ops.convbench.conv2d_backward_weight, ctx.conv_args
    return _sum_tangents(None if t_dy is None else op(t_dy, input, ctx.weight_size, *args),
                         None if t_x is None else op(grad_output, t_x, ctx.weight_size, *args))


def _backward_weight_backward(ctx, grad_dw):
    grad_output, input = ctx.saved_tensors
    args = ctx.conv_args
    need = ctx.needs_input_grad
    g_dy = torch.ops.convbench.conv2d(input, grad_dw, None, *args) if need[0] else None
    g_x = (torch.ops.convbench.conv2d_backward_input(grad_output, grad_dw, input.shape, *args)
           if need[1] else None)
    return g_dy, g_x, None, None, None, None, None, None


_register_autograd("conv2d", _conv2d_setup, _conv2d_backward, _conv2d_jvp)
_register_autograd("conv2d_backward_input", _backward_input_setup, _backward_input_backward,
                   _backward_input_jvp)
_register_autograd("conv2d_backward_weight", _backward_weight_setup, _backward_weight_backward,
                   _backward_weight_jvp)


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
    _args.check_float_dtype(grad_output, "grad_output", "max_pool2d_backward", pool=True)


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
    ctx.save_for_forward(output[1])


def _max_pool2d_jvp(ctx, t_input, *_):
    # The output is the input gathered at the indices; so is its tangent.
    (indices,) = ctx.saved_tensors
    return _gather(t_input, indices), None


def _gather(x, indices):
    return x.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)


def _max_pool2d_backward(ctx, grad, _grad_indices):
    (indices,) = ctx.saved_tensors
    gx = torch.ops.convbench.max_pool2d_backward(grad, indices, ctx.input_size, *ctx.pool_args)
    return gx, None, None, None, None, None


def _max_pool2d_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.save_for_forward(inputs[1])
    ctx.pool_args = (tuple(inputs[2]), *inputs[3:])


def _max_pool2d_backward_jvp(ctx, t_grad, *_):
    (indices,) = ctx.saved_tensors
    return torch.ops.convbench.max_pool2d_backward(t_grad, indices, *ctx.pool_args)


def _max_pool2d_backward_backward(ctx, grad_dx):
    # The backward scatters grad_output to the argmax positions; its adjoint
    # gathers from them.
    (indices,) = ctx.saved_tensors
    return _gather(grad_dx, indices), None, None, None, None, None, None


_register_autograd("max_pool2d", _max_pool2d_setup, _max_pool2d_backward, _max_pool2d_jvp)
_register_autograd("max_pool2d_backward", _max_pool2d_backward_setup,
                   _max_pool2d_backward_backward, _max_pool2d_backward_jvp)
