"""A lean eager path. Going through the torch.library dispatcher costs tens
of microseconds per call in Python, which dominates the homework's tiny
layers. In plain eager mode (no torch.compile, no dispatch/function modes,
no functorch transforms, plain tensors) the functional API calls these
autograd Functions instead, which run the same checks and the same kernels
(_launch) as the registered operators. Anything else goes through
torch.ops.convbench.*, so tracing and opcheck see the operators, and
torch.func transforms, forward-mode AD and autocast get the operators'
autograd, jvp, vmap and autocast rules (these Functions run the kernels on
raw data pointers, which batched or dual tensors lack, and have no jvp)."""
from __future__ import annotations

import torch
import torch.autograd.forward_ad as _forward_ad

from . import _launch
from .ops import conv2d_bias_grad

_PLAIN = (torch.Tensor, torch.nn.Parameter)
_interpreter_stack = getattr(torch._C._functorch, "peek_interpreter_stack", None)
_any_autocast = torch._C._is_any_autocast_enabled


def usable(*tensors) -> bool:
    """True when the fast path computes exactly what the operators would."""
    if torch.compiler.is_compiling():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False
    if _interpreter_stack is not None and _interpreter_stack() is not None:
        return False
    if _forward_ad._current_level >= 0:  # inside forward_ad.dual_level(): tangents to carry
        return False
    if _any_autocast():  # the ops' autocast kernels decide the dtype
        return False
    for t in tensors:
        if t is not None and (type(t) not in _PLAIN or t.device.type == "meta"):
            return False
    return True


def needs_grad(*tensors) -> bool:
    """Whether autograd would record this call (else the kernels run bare)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


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
        args = ctx.conv_args
        need = ctx.needs_input_grad
        gi = gw = gb = None
        if torch.is_grad_enabled():  # create_graph=True: stay differentiable
            if need[0]:
                gi = torch.ops.convbench.conv2d_backward_input(grad, weight, input.shape, *args)
            if need[1]:
                gw = torch.ops.convbench.conv2d_backward_weight(grad, input, weight.shape, *args)
        else:
            if need[0]:
                gi = _launch.conv2d_backward_input(grad, weight, input.shape, *args)
            if need[1]:
                gw = _launch.conv2d_backward_weight(grad, input, weight.shape, *args)
        if ctx.has_bias and need[2]:
            gb = conv2d_bias_grad(grad, weight.shape[0])
        return gi, gw, gb, None


class MaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, geometry):
        pq, kernel_size, stride, padding, dilation = geometry
        out, indices = _launch.max_pool2d_forward(input, pq, kernel_size, stride, padding,
                                                  dilation)
        ctx.pool_args = (kernel_size, stride, padding, dilation)
        ctx.input_size = input.shape
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        return out, indices

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        (indices,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            gx = torch.ops.convbench.max_pool2d_backward(grad, indices, ctx.input_size,
                                                         *ctx.pool_args)
        else:
            gx = _launch.max_pool2d_backward(grad, indices, ctx.input_size, *ctx.pool_args)
        return gx, None
