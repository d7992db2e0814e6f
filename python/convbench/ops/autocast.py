"""torch.autocast for the registered operators, following torch's policy.

torch puts conv2d on its lower-precision lists (CUDA and CPU): floating
tensors of the autocast device, float64 excepted, are cast to the autocast
dtype (torch.get_autocast_dtype, so a user's dtype=torch.bfloat16 counts;
torch.library.register_autocast would fix one dtype). Max-pool and the
backward ops are on no list: they run in their inputs' dtype, as torch's do.

Our kernels take float16/bfloat16 on both devices (float32 sums, each output
rounded once, as oneDNN's and cuDNN's half convolutions), so the op runs on
the cast tensors, and its backward in the autocast dtype too; the casts are
ordinary autograd ops, so gradients reach float32 leaves as through torch's.
"""
from __future__ import annotations

import torch

def _eligible(t, device_type):
    return (isinstance(t, torch.Tensor) and t.is_floating_point()
            and t.dtype != torch.float64 and t.device.type == device_type)


def conv2d_kernel(op, device_type):
    key = getattr(torch._C.DispatchKey, "Autocast" + device_type.upper())
    exclude = torch._C.DispatchKeySet(key)

    def kernel(input, weight, bias, *rest):
        dtype = torch.get_autocast_dtype(device_type)
        x, w, b = (t.to(dtype) if _eligible(t, device_type) else t for t in (input, weight, bias))
        with torch._C._ExcludeDispatchKeyGuard(exclude):
            return op(x, w, b, *rest)

    return key, kernel


def register(lib, name):
    """Autocast kernels for op `name` on the CPU and CUDA, for the C++
    dispatcher and the Python one (which torch.compile traces with)."""
    op = getattr(torch.ops.convbench, name).default
    for device_type in ("cpu", "cuda"):
        key, kernel = conv2d_kernel(op, device_type)
        op.py_impl(key)(kernel)
        lib.impl(name, kernel, key.name)
