"""convbench: conv2d and max-pool kernels (CPU and CUDA) as PyTorch operators,
drop-in layers, a NumPy reference, and benchmarks against cuDNN/oneDNN.

    import convbench
    y = convbench.conv2d(x, w, b, stride=1, padding="same", algo="auto")
    model = convbench.nn.convert(model)      # every Conv2d/MaxPool2d on our kernels
"""
from . import _C
from . import backends
from ._algos import supported_algos as algorithms
from ._runtime import build_info, cuda_available, has_cuda
from ._version import __version__
from . import functional, nn, ops, reference  # noqa: E402

# One function per op in the registry (convbench.conv2d, convbench.max_pool2d, ...).
globals().update({op.name: op.function for op in ops.OPS.values()})

__all__ = sorted(["algorithms", "backends", "build_info", "cuda_available", "functional",
                  "has_cuda", "nn", "ops", "reference", *ops.OPS])
