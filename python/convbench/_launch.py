"""Runs the compiled kernels on tensors: allocates outputs, passes data
pointers, sizes and the current CUDA stream to convbench._C. Argument values
are checked before this layer (_args.py); here only the algorithm name is,
against the tensor's device. Inputs are made contiguous NCHW because the
kernels take dense NCHW data. conv2d's marshalling is here; the other ops
marshal in their own module (ops/<op>.py) through table_kernel."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from . import _C
from ._algos import algo_id
from ._autotune import TUNER
from ._runtime import has_cuda
from ._shapes import conv2d_shape, packer

_DTYPE_IDS = {getattr(torch, name): i for name, i in _C.DTYPE_IDS.items()}
_PASS = _C.CONV2D_PASS_IDS
_FORWARD, _BACKWARD_INPUT, _BACKWARD_WEIGHT = (
    _PASS["forward"], _PASS["backward_input"], _PASS["backward_weight"])
_DEVICE_CPU, _DEVICE_CUDA = _C.DEVICE_IDS["cpu"], _C.DEVICE_IDS["cuda"]

try:  # a few microseconds cheaper than torch.cuda.current_stream(device).cuda_stream
    _raw_stream = torch._C._cuda_getCurrentRawStream
except AttributeError:  # pragma: no cover - CPU-only torch builds
    _raw_stream = None


def _device_args(t: torch.Tensor) -> Tuple[int, int, int]:
    if t.device.type == "cpu":
        return (_DEVICE_CPU, 0, 0)
    if not has_cuda():
        raise RuntimeError(
            "convbench was built without CUDA support; reinstall it on a machine with nvcc to "
            "run on CUDA tensors"
        )
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    stream = _raw_stream(index) if _raw_stream else torch.cuda.current_stream(index).cuda_stream
    return (_DEVICE_CUDA, index, stream)


def _run_conv(run, pass_: int, algo: str, engine: int, dev: int, index: int, dtype: int,
              shape: tuple, device_type: str) -> None:
    """run(algo id, engine) with the algorithm asked for, or the autotuned one
    (algo 'auto' with convbench.backends.autotune on, CPU or CUDA)."""
    if algo == "auto" and TUNER.enabled:
        run(*TUNER.choose(pass_, dtype, shape, run, device=dev, device_index=index))
    else:
        run(algo_id(algo, device_type), engine)


def conv2d_forward(x, w, b: Optional[torch.Tensor], pq, stride, padding4, dilation, groups,
                   algo: str, engine: int = 0) -> torch.Tensor:
    if x.shape[1] == 0:  # no input channels: torch's empty (N, 0, P, Q), no kernel to run
        algo_id(algo, x.device.type)
        return x.new_empty((x.shape[0], 0, pq[0], pq[1]))
    x, w = x.contiguous(), w.contiguous()
    b = b.contiguous() if b is not None else None
    y = torch.empty((x.shape[0], w.shape[0], pq[0], pq[1]), dtype=x.dtype, device=x.device)
    dev, index, stream = _device_args(x)
    shape = conv2d_shape(x.shape, w.shape, pq, stride, padding4, dilation, groups)
    dt = _DTYPE_IDS[x.dtype]
    ptrs = (x.data_ptr(), w.data_ptr(), b.data_ptr() if b is not None else 0, y.data_ptr())

    def run(a, v):
        _C.conv2d_forward(dev, index, stream, dt, a, shape, *ptrs, v)

    _run_conv(run, _FORWARD, algo, engine, dev, index, dt, shape, x.device.type)
    return y


def _conv2d_gradient(pass_: int):
    """conv2d_backward_input(dy, w, input_size, ...) or
    conv2d_backward_weight(dy, x, weight_size, ...) in one body: op(dy, other,
    size, ...) returns the gradient of the operand other is not, of `size`.
    A closure, so a call costs what a plain function's does."""
    to_input = pass_ == _BACKWARD_INPUT

    def gradient(dy, other, size, stride, padding4, dilation, groups, algo: str,
                 engine: int = 0, bias_out: Optional[torch.Tensor] = None) -> torch.Tensor:
        if to_input:
            x_shape, w_shape = size, other.shape
        else:
            x_shape, w_shape = other.shape, size
        if x_shape[1] == 0:  # no input channels: the gradient has no elements
            algo_id(algo, dy.device.type)
            if bias_out is not None:  # nor has the output: the bias has no effect
                bias_out.zero_()
            return dy.new_empty(tuple(size))
        dy, other = dy.contiguous(), other.contiguous()
        out = torch.empty(tuple(size), dtype=dy.dtype, device=dy.device)
        dev, index, stream = _device_args(dy)
        shape = conv2d_shape(x_shape, w_shape, dy.shape[2:], stride, padding4, dilation, groups)
        dt = _DTYPE_IDS[dy.dtype]
        ptrs = (dy.data_ptr(), other.data_ptr(), out.data_ptr())
        # bias_out (weight gradient, CPU): [K], filled with the bias gradient by
        # the same kernel call.
        dbp = bias_out.data_ptr() if bias_out is not None else 0

        if to_input:
            def run(a, v):
                _C.conv2d_backward_input(dev, index, stream, dt, a, shape, *ptrs, v)
        else:
            device = out.device  # run reads this, not dy: captured names are slower

            def run(a, v):
                # CUDA split-K partial sums: scratch from PyTorch's caching allocator
                # on this stream (counted by torch.cuda.memory_*, reused by later
                # calls); freed here, it is reused only by work queued after this kernel.
                n = (_C.conv2d_workspace_size(_BACKWARD_WEIGHT, dt, a, v, shape)
                     if dev == _DEVICE_CUDA else 0)
                ws = torch.empty(n, dtype=torch.uint8, device=device) if n else None
                _C.conv2d_backward_weight(dev, index, stream, dt, a, shape, *ptrs, v,
                                          ws.data_ptr() if n else 0, n, dbp)

        _run_conv(run, pass_, algo, engine, dev, index, dt, shape, dy.device.type)
        return out

    gradient.__name__ = gradient.__qualname__ = (
        "conv2d_backward_input" if to_input else "conv2d_backward_weight")
    return gradient


conv2d_backward_input = _conv2d_gradient(_BACKWARD_INPUT)
conv2d_backward_weight = _conv2d_gradient(_BACKWARD_WEIGHT)


def table_kernel(name: str):
    """run(like, shape, *buffers) for kernel `name` of _C's table: on like's
    device and dtype, shape packed in the kernel's shape_fields order (see
    _shapes.packer), buffers as tensors in its buffers order. Every op but
    conv2d reaches its kernels this way (ops/<op>.py)."""
    kernel = _C.kernel(name)

    def run(like: torch.Tensor, shape: tuple, *buffers: torch.Tensor) -> None:
        dev, index, stream = _device_args(like)
        kernel(dev, index, stream, _DTYPE_IDS[like.dtype], shape,
               [b.data_ptr() for b in buffers])

    run.__name__ = run.__qualname__ = name
    run.kernel = kernel
    return run


def table_kernels(op: str, params: str, values: dict):
    """(forward, backward, pack_shape): op's table kernels <op>_forward and
    <op>_backward, and pack_shape(params) -> the shape numbers in their order
    (values: each field's expression in params; see _shapes.packer)."""
    forward = table_kernel(f"{op}_forward")
    pack = packer(f"{op}_shape", params, values, forward.kernel.shape_fields)
    return forward, table_kernel(f"{op}_backward"), pack
