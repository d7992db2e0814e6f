"""The ``convbench`` operator library and the registration every op goes
through: kernels for CPU and CUDA, a fake (meta) kernel for tracing, a vmap
rule, and an autograd kernel in the form torch.func needs. Each op's module
(conv2d.py, max_pool2d.py) defines its schemas and formulas and calls these."""
from __future__ import annotations

import torch
from torch._C import _is_fwd_grad_enabled as _fwd_grad_enabled
from torch._functorch.utils import enable_single_level_autograd_function as _single_level_function
from torch.autograd.forward_ad import _set_fwd_grad_enabled

LIB = torch.library.Library("convbench", "DEF")
DEFINED: list = []  # every operator register() registered, in order (the tests read it)


def register(name, kernel, fake, vmap_rule):
    """The op's CPU and CUDA kernel, fake kernel and vmap rule."""
    DEFINED.append(name)
    for key in ("CPU", "CUDA"):
        LIB.impl(name, kernel, key)
    torch.library.register_fake(f"convbench::{name}", fake, lib=LIB)
    torch.library.register_vmap(f"convbench::{name}", vmap_rule, lib=LIB)


def register_autograd(name, setup_context, backward, jvp):
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

    LIB.impl(name, autograd_kernel, "Autograd", with_keyset=True)


def sum_tangents(a, b):
    """a + b where either may be None (no tangent)."""
    return b if a is None else a if b is None else a + b
