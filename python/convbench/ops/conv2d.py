"""conv2d as PyTorch operators, in one place: the schemas of its three
operators (forward and each gradient, differentiable in turn, which gives
double backward), their argument checks and fake kernels, the autograd
formula (once: the registered operators and the lean eager path both use
conv2d_grads), forward-mode rules, the eager autograd.Function, and the
user-facing ``convbench.conv2d``.

    torch.ops.convbench.conv2d(input, weight, bias, stride, padding, dilation, groups, algo)
    torch.ops.convbench.conv2d_backward_input(grad_output, weight, input_size, ...)
    torch.ops.convbench.conv2d_backward_weight(grad_output, input, weight_size, ...)

``padding`` of the operators is explicit (top, bottom, left, right); the
friendly argument forms are ``conv2d``'s below.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import _args, _eager, _launch
from .._algos import check_algo_name
from . import _batching, autocast, registry
from ._library import LIB, register, register_autograd, sum_tangents

_ops = torch.ops.convbench

_CONV_ARGS = "int[2] stride, int[4] padding, int[2] dilation, int groups, str algo=\"auto\""
LIB.define(f"conv2d(Tensor input, Tensor weight, Tensor? bias, {_CONV_ARGS}) -> Tensor")
LIB.define(
    f"conv2d_backward_input(Tensor grad_output, Tensor weight, SymInt[4] input_size, {_CONV_ARGS})"
    " -> Tensor"
)
LIB.define(
    f"conv2d_backward_weight(Tensor grad_output, Tensor input, SymInt[4] weight_size, {_CONV_ARGS})"
    " -> Tensor"
)


# ---- checks shared by the real and the fake kernels --------------------------


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


# ---- kernels -------------------------------------------------------------------


def _conv2d_kernel(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
    _, pq = _conv2d_meta(input, weight, bias, stride, padding, dilation, groups)
    return _launch.conv2d_forward(input, weight, bias, pq, stride, padding, dilation, groups, algo)


def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
    out, _ = _conv2d_meta(input, weight, bias, stride, padding, dilation, groups)
    return input.new_empty(out)


# The two gradient operators, op(grad_output, other, size, *conv_args), and
# what `other` is: the weight (size: the input's) or the input (size: the
# weight's). Each is the other's transpose in `other`.
_GRADIENT_OPS = {"conv2d_backward_input": "weight", "conv2d_backward_weight": "input"}


def _gradient_op_kernels(name, other_name):
    """The kernel and fake kernel of a gradient operator (see _GRADIENT_OPS):
    one check for both, with other.shape and size in swapped roles."""
    launch = getattr(_launch, name)
    other_is_weight = other_name == "weight"

    def check(grad_output, other, size, stride, padding, dilation, groups):
        _args.check_same_device_dtype(grad_output, "grad_output", other, other_name, name)
        _args.check_device_type(grad_output, name)
        _args.check_float_dtype(grad_output, "grad_output", name)
        x_shape, w_shape = (size, other.shape) if other_is_weight else (other.shape, size)
        pq = _args.conv2d_geometry(x_shape, w_shape, None, stride, padding, dilation, groups)
        k = _args.conv2d_out_channels(x_shape, w_shape)
        _check_grad_output(grad_output, (x_shape[0], k, pq[0], pq[1]), name)

    def kernel(grad_output, other, size, stride, padding, dilation, groups, algo="auto"):
        check(grad_output, other, size, stride, padding, dilation, groups)
        return launch(grad_output, other, size, stride, padding, dilation, groups, algo)

    def fake(grad_output, other, size, stride, padding, dilation, groups, algo="auto"):
        check(grad_output, other, size, stride, padding, dilation, groups)
        return grad_output.new_empty(tuple(size))

    return kernel, fake


# ---- vmap rules (see _batching.py) --------------------------------------------------


def _conv_args(rest):
    stride, padding, dilation, groups, *algo = rest
    return stride, padding, dilation, groups, (algo[0] if algo else "auto")


def _conv2d_vmap(info, in_dims, input, weight, bias, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    xd, wd, bd = in_dims[:3]
    B = info.batch_size
    _batching.check_4d(input, xd, "input", "conv2d")
    _batching.check_4d(weight, wd, "weight", "conv2d")
    if wd is None and bd is None:  # fold B into the batch
        x = input.movedim(xd, 0)
        y = _ops.conv2d(x.flatten(0, 1), weight, bias, stride, padding, dilation, groups, algo)
        return y.unflatten(0, (B, x.shape[1])), 0
    if wd is None:  # only the bias (and maybe the input): add the bias after the conv
        if xd is None:
            y = _ops.conv2d(input, weight, None, stride, padding, dilation, groups, algo)[None]
        else:
            x = input.movedim(xd, 0)
            y = _ops.conv2d(x.flatten(0, 1), weight, None, stride, padding, dilation, groups,
                            algo).unflatten(0, x.shape[:2])
        if y.shape[2] == 0:  # no input channels: no output channels for the bias to reach
            return y.expand(B, *y.shape[1:]), 0
        return y + bias.movedim(bd, 0)[:, None, :, None, None], 0
    # The weight is batched: samples become groups.
    x = _batching.to_channels(input, xd, B)
    if x.shape[1] == 0:  # no input channels: every sample's output is empty
        y = _ops.conv2d(input if xd is None else input.select(xd, 0), weight.select(wd, 0),
                        None, stride, padding, dilation, groups, algo)
        return y.expand(B, *y.shape), 0
    w = weight.movedim(wd, 0).flatten(0, 1)
    b = None if bias is None else _batching.front(bias, bd, B).flatten()
    y = _ops.conv2d(x, w, b, stride, padding, dilation, groups * B, algo)
    return y.unflatten(1, (B, y.shape[1] // B)), 1


def _conv2d_backward_input_vmap(info, in_dims, grad_output, weight, input_size, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    dd, wd = in_dims[:2]
    B = info.batch_size
    _batching.check_4d(grad_output, dd, "grad_output", "conv2d_backward_input")
    N, C, H, W = input_size
    if wd is None:  # fold B into the batch
        dy = grad_output.movedim(dd, 0).flatten(0, 1)
        dx = _ops.conv2d_backward_input(dy, weight, [B * N, C, H, W], stride, padding, dilation,
                                        groups, algo)
        return dx.unflatten(0, (B, N)), 0
    if C == 0:
        return grad_output.new_empty((B, N, C, H, W)), 0
    dy = _batching.to_channels(grad_output, dd, B)
    w = weight.movedim(wd, 0).flatten(0, 1)
    dx = _ops.conv2d_backward_input(dy, w, [N, B * C, H, W], stride, padding, dilation,
                                    groups * B, algo)
    return dx.unflatten(1, (B, C)), 1


def _conv2d_backward_weight_vmap(info, in_dims, grad_output, input, weight_size, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    dd, xd = in_dims[:2]
    B = info.batch_size
    _batching.check_4d(grad_output, dd, "grad_output", "conv2d_backward_weight")
    _batching.check_4d(input, xd, "input", "conv2d_backward_weight")
    K, Cg, R, S = weight_size
    if Cg == 0:
        return grad_output.new_empty((B, K, Cg, R, S)), 0
    # Each sample's weight gradient is its own reduction: samples become groups.
    dy = _batching.to_channels(grad_output, dd, B)
    x = _batching.to_channels(input, xd, B)
    dw = _ops.conv2d_backward_weight(dy, x, [B * K, Cg, R, S], stride, padding, dilation,
                                     groups * B, algo)
    return dw.unflatten(0, (B, K)), 0


_VMAP = {"conv2d_backward_input": _conv2d_backward_input_vmap,
         "conv2d_backward_weight": _conv2d_backward_weight_vmap}


register("conv2d", _conv2d_kernel, _conv2d_fake, _conv2d_vmap)
for _name, _other in _GRADIENT_OPS.items():
    register(_name, *_gradient_op_kernels(_name, _other), _VMAP[_name])
autocast.register(LIB, "conv2d")  # the gradient ops: no autocast, as torch's


# ---- the autograd formula --------------------------------------------------------


def conv2d_bias_grad(grad: torch.Tensor, out_channels: int) -> torch.Tensor:
    """grad_output summed over (N, P, Q). With no input channels the output
    has none either and the bias no effect: its gradient is zeros (as torch's).
    Each plane first, then the batch: contiguous inner sums, 1.4-2.2x faster
    than one sum over (0, 2, 3) on the homework's gradients (half types keep
    the one sum: no rounding of the per-plane sums to 8 or 11 bits)."""
    if grad.shape[1] != out_channels:
        return grad.new_zeros(out_channels)
    if grad.dtype in (torch.float16, torch.bfloat16):
        return grad.sum((0, 2, 3))
    return grad.sum((2, 3)).sum(0)


def conv2d_grads(grad, input, weight, conv_args, need, has_bias, differentiable):
    """(d input, d weight, d bias) of conv2d(input, weight, bias, *conv_args)
    for grad_output `grad`, those `need` asks for: the registered operator's
    backward and the eager Function's. differentiable: through the gradient
    operators (so the result can be differentiated again), else straight to
    the kernels."""
    want_bias = has_bias and need[2]
    # The CPU weight-gradient kernel call sums the bias gradient on the way.
    fused_bias = want_bias and need[1] and not differentiable and grad.device.type == "cpu"
    gb = grad.new_empty(weight.shape[0]) if fused_bias else None
    if differentiable:
        gi = _ops.conv2d_backward_input(grad, weight, input.shape, *conv_args) if need[0] else None
        gw = _ops.conv2d_backward_weight(grad, input, weight.shape, *conv_args) if need[1] else None
    else:
        gi = (_launch.conv2d_backward_input(grad, weight, input.shape, *conv_args)
              if need[0] else None)
        gw = (_launch.conv2d_backward_weight(grad, input, weight.shape, *conv_args, bias_out=gb)
              if need[1] else None)
    if want_bias and not fused_bias:
        gb = conv2d_bias_grad(grad, weight.shape[0])
    return gi, gw, gb


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
    grads = conv2d_grads(grad, input, weight, ctx.conv_args, ctx.needs_input_grad, ctx.has_bias,
                         differentiable=True)
    return (*grads, None, None, None, None, None)


def _conv2d_jvp(ctx, t_input, t_weight, t_bias, *_):
    # Bilinear in (input, weight), plus the bias.
    input, weight = ctx.saved_tensors
    args = ctx.conv_args
    out = sum_tangents(
        None if t_input is None else _ops.conv2d(t_input, weight, None, *args),
        None if t_weight is None else _ops.conv2d(input, t_weight, None, *args))
    if t_bias is None or not ctx.has_bias:
        return out
    if out is None:
        out = t_bias.new_zeros(ctx.out_shape)
    if out.shape[1] == 0:  # no input channels: the bias does not reach the output
        return out
    return out + t_bias[None, :, None, None]


def _gradient_op_rules(name, other_name):
    """setup_context, backward and jvp of a gradient operator (see
    _GRADIENT_OPS): linear in each of grad_output and other."""
    other_is_weight = other_name == "weight"
    transpose = next(op for op in _GRADIENT_OPS if op != name)

    def setup(ctx, inputs, output):
        grad_output, other, size, stride, padding, dilation, groups, *rest = inputs
        _save_conv_args(ctx, stride, padding, dilation, groups, rest[0] if rest else "auto")
        ctx.save_for_backward(grad_output, other)
        ctx.save_for_forward(grad_output, other)
        ctx.size = tuple(size)

    def backward(ctx, grad_result):
        # d/d(grad_output): the forward conv with grad_result in place of the
        # operand this op makes; d/d(other): the transpose operator with
        # grad_result in the role of other.
        grad_output, other = ctx.saved_tensors
        args, need = ctx.conv_args, ctx.needs_input_grad
        x, w = (grad_result, other) if other_is_weight else (other, grad_result)
        g_dy = _ops.conv2d(x, w, None, *args) if need[0] else None
        g_other = (getattr(_ops, transpose)(grad_output, grad_result, other.shape, *args)
                   if need[1] else None)
        return g_dy, g_other, None, None, None, None, None, None

    def jvp(ctx, t_dy, t_other, *_):
        grad_output, other = ctx.saved_tensors
        op, args = getattr(_ops, name), ctx.conv_args
        return sum_tangents(None if t_dy is None else op(t_dy, other, ctx.size, *args),
                            None if t_other is None else op(grad_output, t_other, ctx.size, *args))

    return setup, backward, jvp


register_autograd("conv2d", _conv2d_setup, _conv2d_backward, _conv2d_jvp)
for _name, _other in _GRADIENT_OPS.items():
    register_autograd(_name, *_gradient_op_rules(_name, _other))


# ---- the lean eager path (see _eager.py) ------------------------------------------


# The geometry travels as one tuple: Function.apply inspects every argument,
# and a dozen of them cost microseconds per call.
class Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias, geometry):
        pq, stride, padding, dilation, groups, algo = geometry
        ctx.conv_args = (stride, padding, dilation, groups, algo)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(input, weight)
        return _launch.conv2d_forward(input, weight, bias, pq, stride, padding, dilation, groups,
                                      algo)

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        # With grad mode on (create_graph=True) through the operators: the
        # gradient can be differentiated again.
        grads = conv2d_grads(grad, input, weight, ctx.conv_args, ctx.needs_input_grad,
                             ctx.has_bias, differentiable=torch.is_grad_enabled())
        return (*grads, None)


# ---- the user-facing function -------------------------------------------------------

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Lean-path calls that passed every check, by everything the checks read
# (shapes, dtypes, devices, the arguments as given): their geometry. A model
# calls each layer the same way every step; normalising and checking the
# arguments was half of a tiny call's time (16 of 29 us on Zen 3). Only
# plain ints, strings and tuples of ints are remembered (True == 1 and
# lists are not hashable keys); bad calls are never stored, so they are
# refused every time.
_PREPARED: dict = {}
_PREPARED_SIZE = 4096


def _plain(v) -> bool:
    t = type(v)
    return t is int or t is str or (t is tuple and all(type(e) is int for e in v))


def _prepared_key(input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    """The cache key of a call, or None if it may not be remembered."""
    if type(input) is not torch.Tensor or not isinstance(weight, torch.Tensor):
        return None
    if not (_plain(stride) and _plain(padding) and _plain(dilation) and type(groups) is int):
        return None
    if bias is None:
        b = None
    elif isinstance(bias, torch.Tensor):
        b = (bias.shape, bias.dtype, bias.device)
    else:
        return None
    return (input.shape, input.dtype, input.device, weight.shape, weight.dtype, weight.device, b,
            stride, padding, dilation, groups, padding_mode, algo)


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
    key = _prepared_key(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                        algo)
    geometry = _PREPARED.get(key) if key is not None else None
    if geometry is not None and _eager.usable(input, weight, bias):
        if _eager.needs_grad(input, weight, bias):
            return Conv2dFunction.apply(input, weight, bias, geometry)
        return _launch.conv2d_forward(input, weight, bias, *geometry)
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
        if key is not None and not unbatched and padding_mode == "zeros":
            if len(_PREPARED) >= _PREPARED_SIZE:
                _PREPARED.clear()
            _PREPARED[key] = geometry
        if _eager.needs_grad(input, weight, bias):
            out = Conv2dFunction.apply(input, weight, bias, geometry)
        else:  # inference: no autograd node to build
            out = _launch.conv2d_forward(input, weight, bias, *geometry)
    else:
        out = _ops.conv2d(
            input, weight, bias, list(stride2), list(padding4), list(dilation2), groups, algo
        )
    return out.squeeze(0) if unbatched else out


# ---- the layer ----------------------------------------------------------------------


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d on convbench's kernels, plus ``algo`` ('auto',
    'direct', 'im2col', ...): same constructor arguments, parameter names,
    shapes and initialisation, so state_dicts load either way. Input
    (N, C_in, H, W) or (C_in, H, W)."""

    __module__ = "convbench.nn"

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algo = check_algo_name(algo)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups, padding_mode=self.padding_mode, algo=self.algo)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algo={self.algo!r}"


registry.add(registry.Op("conv2d", conv2d, Conv2d, torch.nn.Conv2d,
                         ("conv2d",) + tuple(_GRADIENT_OPS), takes_algo=True))
