"""When the lean eager path may run. Going through the torch.library
dispatcher costs tens of microseconds per call in Python, which dominates
the homework's tiny layers. In plain eager mode (no torch.compile, no
dispatch/function modes, no functorch transforms, plain tensors) the
functional API calls each op's eager autograd Function instead
(Conv2dFunction, MaxPool2dFunction in ops/<op>.py), which runs the same
checks, kernels (_launch) and autograd formula as the registered
operators. Anything else goes through torch.ops.convbench.*, so tracing and opcheck see the operators, and
torch.func transforms, forward-mode AD and autocast get the operators'
autograd, jvp, vmap and autocast rules (these Functions run the kernels on
raw data pointers, which batched or dual tensors lack, and have no jvp)."""
from __future__ import annotations

import torch
import torch.autograd.forward_ad as _forward_ad

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
        if t is not None and (type(t) not in _PLAIN or t.is_meta):
            return False
    return True


def needs_grad(*tensors) -> bool:
    """Whether autograd would record this call (else the kernels run bare)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
