"""torch.vmap rules for the registered operators (torch.library.register_vmap).

Without them vmap falls back to one kernel call per sample (slow, with a
warning). Each rule folds the vmapped dimension B into the ops' own shapes,
as torch's conv batching rule does:

* only the data (input, grad_output, indices) is batched: B joins the batch, N*B;
* a weight (or, for the weight gradient, either operand) is batched: B joins the
  groups, so sample b's channels form groups b*g .. b*g+g-1, an unbatched
  operand is repeated B times along the channels.

Per-sample gradients (vmap(grad(f))) reach the weight-gradient rule with both
operands batched: one grouped kernel call computes all B gradients.
"""
from __future__ import annotations

import torch

_ops = torch.ops.convbench


def _front(t, dim, size):
    """t with its vmapped dimension first, expanded to `size` if it has none."""
    if dim is None:
        return t.unsqueeze(0).expand(size, *t.shape)
    return t.movedim(dim, 0)


def _to_channels(t, dim, size):
    """(N, size*C, ...) from a per-sample (N, C, ...): sample b in channels b*C.."""
    if dim is None:
        return t.repeat(1, size, *([1] * (t.dim() - 2)))
    return t.movedim(dim, 1).flatten(1, 2)


def _check_4d(t, dim, what, op):
    if t.dim() - (dim is not None) != 4:
        raise RuntimeError(f"convbench.{op}: expected a 4D {what} per vmapped sample, got "
                           f"{t.dim() - (dim is not None)}D")


def _conv_args(rest):
    stride, padding, dilation, groups, *algo = rest
    return stride, padding, dilation, groups, (algo[0] if algo else "auto")


def conv2d(info, in_dims, input, weight, bias, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    xd, wd, bd = in_dims[:3]
    B = info.batch_size
    _check_4d(input, xd, "input", "conv2d")
    _check_4d(weight, wd, "weight", "conv2d")
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
    x = _to_channels(input, xd, B)
    if x.shape[1] == 0:  # no input channels: every sample's output is empty
        y = _ops.conv2d(input if xd is None else input.select(xd, 0), weight.select(wd, 0),
                        None, stride, padding, dilation, groups, algo)
        return y.expand(B, *y.shape), 0
    w = weight.movedim(wd, 0).flatten(0, 1)
    b = None if bias is None else _front(bias, bd, B).flatten()
    y = _ops.conv2d(x, w, b, stride, padding, dilation, groups * B, algo)
    return y.unflatten(1, (B, y.shape[1] // B)), 1


def conv2d_backward_input(info, in_dims, grad_output, weight, input_size, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    dd, wd = in_dims[:2]
    B = info.batch_size
    _check_4d(grad_output, dd, "grad_output", "conv2d_backward_input")
    N, C, H, W = input_size
    if wd is None:  # fold B into the batch
        dy = grad_output.movedim(dd, 0).flatten(0, 1)
        dx = _ops.conv2d_backward_input(dy, weight, [B * N, C, H, W], stride, padding, dilation,
                                        groups, algo)
        return dx.unflatten(0, (B, N)), 0
    if C == 0:
        return grad_output.new_empty((B, N, C, H, W)), 0
    dy = _to_channels(grad_output, dd, B)
    w = weight.movedim(wd, 0).flatten(0, 1)
    dx = _ops.conv2d_backward_input(dy, w, [N, B * C, H, W], stride, padding, dilation,
                                    groups * B, algo)
    return dx.unflatten(1, (B, C)), 1


def conv2d_backward_weight(info, in_dims, grad_output, input, weight_size, *rest):
    stride, padding, dilation, groups, algo = _conv_args(rest)
    dd, xd = in_dims[:2]
    B = info.batch_size
    _check_4d(grad_output, dd, "grad_output", "conv2d_backward_weight")
    _check_4d(input, xd, "input", "conv2d_backward_weight")
    K, Cg, R, S = weight_size
    if Cg == 0:
        return grad_output.new_empty((B, K, Cg, R, S)), 0
    # Each sample's weight gradient is its own reduction: samples become groups.
    dy = _to_channels(grad_output, dd, B)
    x = _to_channels(input, xd, B)
    dw = _ops.conv2d_backward_weight(dy, x, [B * K, Cg, R, S], stride, padding, dilation,
                                     groups * B, algo)
    return dw.unflatten(0, (B, K)), 0


def max_pool2d(info, in_dims, input, *rest):
    _check_4d(input, in_dims[0], "input", "max_pool2d")
    x = input.movedim(in_dims[0], 0)
    y, idx = _ops.max_pool2d(x.flatten(0, 1), *rest)
    return (y.unflatten(0, x.shape[:2]), idx.unflatten(0, x.shape[:2])), (0, 0)


def max_pool2d_backward(info, in_dims, grad_output, indices, input_size, *rest):
    B = info.batch_size
    dd, idd = in_dims[:2]
    _check_4d(grad_output, dd, "grad_output", "max_pool2d_backward")
    dy = _front(grad_output, dd, B)
    idx = _front(indices, idd, B)
    N, C, H, W = input_size
    dx = _ops.max_pool2d_backward(dy.flatten(0, 1), idx.flatten(0, 1), [B * N, C, H, W], *rest)
    return dx.unflatten(0, (B, N)), 0


RULES = {
    "conv2d": conv2d,
    "conv2d_backward_input": conv2d_backward_input,
    "conv2d_backward_weight": conv2d_backward_weight,
    "max_pool2d": max_pool2d,
    "max_pool2d_backward": max_pool2d_backward,
}
