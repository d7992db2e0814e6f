"""convbench's kernels as PyTorch operators (namespace ``convbench``), one
module per op: conv2d.py, max_pool2d.py, avg_pool2d.py. Each holds its operators' schemas,
checks, fake kernels, vmap rules and autograd formula, its lean eager
Function, its user-facing function and its layer, and adds itself to
registry.OPS; _library.py holds the registration they share, _batching.py
the vmap helpers, autocast.py the autocast rule. Importing this package
registers every operator:

    torch.ops.convbench.conv2d(input, weight, bias, stride, padding, dilation, groups, algo)
    torch.ops.convbench.conv2d_backward_input(grad_output, weight, input_size, ...)
    torch.ops.convbench.conv2d_backward_weight(grad_output, input, weight_size, ...)
    torch.ops.convbench.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    torch.ops.convbench.max_pool2d_backward(grad_output, indices, input_size, kernel_size,
                                            stride, padding, dilation)
    torch.ops.convbench.avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    torch.ops.convbench.avg_pool2d_backward(grad_output, input_size, kernel_size, stride,
                                            padding, ceil_mode, count_include_pad,
                                            divisor_override)

Forward and each backward are operators of their own, so torch.compile keeps
them in the graph and ``torch.library.opcheck`` can test each one.
"""
from . import avg_pool2d, conv2d, max_pool2d  # noqa: F401  (each registers its op)
from .registry import OPS  # noqa: E402
