"""convbench: conv2d and max-pool kernels (CPU and CUDA) as PyTorch operators,
drop-in layers, a NumPy reference, and benchmarks against cuDNN/oneDNN.

    import convbench
    y = convbench.conv2d(x, w, b, stride=1, padding="same", algo="auto")
    model = convbench.nn.convert(model)      # every Conv2d/MaxPool2d on our kernels
"""
from . import _C
from . import backends
from ._launch import supported_algos as algorithms
from ._runtime import build_info, cuda_available, has_cuda
from .functional import conv2d, max_pool2d
from . import nn, ops, reference  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "algorithms",
    "backends",
    "build_info",
    "conv2d",
    "cuda_available",
    "has_cuda",
    "max_pool2d",
    "nn",
    "ops",
    "reference",
]
