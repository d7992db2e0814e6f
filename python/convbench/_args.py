"""Argument normalisation and validation shared by the functional API, the
operators and the layers. Messages name the argument and what was expected,
in the style of torch's own errors."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

IntOrPair = Union[int, Sequence[int]]

# Every op takes the four on both devices; the CPU kernels compute the half
# types in float32 (csrc/conv2d/cpu/half_precision.cpp, the pools' own files).
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class ArgumentError(RuntimeError, ValueError):
    """A bad argument value (a negative stride, groups 0, ...): a RuntimeError,
    as torch raises for these, and a ValueError, as Python code expects."""


def pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    """An int or a 1/2-sequence of ints as a pair, rejecting anything else."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of 2 ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of 2 ints, got {value!r}") from None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a tuple of 2 ints, got {value!r}")
    return (int(items[0]), int(items[1]))


def positive_pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    p = pair(value, name)
    if p[0] <= 0 or p[1] <= 0:
        raise ArgumentError(f"{name} must be positive, got {value!r}")
    return p


def non_negative_pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    p = pair(value, name)
    if p[0] < 0 or p[1] < 0:
        raise ArgumentError(f"{name} must be non-negative, got {value!r}")
    return p


def pool_window(kernel_size: IntOrPair, stride: Optional[IntOrPair],
                padding: IntOrPair) -> Tuple[Tuple[int, int], ...]:
    """A pool's kernel_size, stride (None or empty: kernel_size, as torch) and
    padding, as pairs."""
    kernel = positive_pair(kernel_size, "kernel_size")
    default = stride is None or stride == [] or stride == ()
    return (kernel, kernel if default else positive_pair(stride, "stride"),
            non_negative_pair(padding, "padding"))


def conv_padding(
    padding: Union[str, IntOrPair],
    kernel_size: Tuple[int, int],
    stride: Tuple[int, int],
    dilation: Tuple[int, int],
) -> Tuple[int, int, int, int]:
    """torch's padding argument as explicit (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ArgumentError("padding='same' is not supported for strided convolutions")
            out = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return (out[0], out[1], out[2], out[3])
        raise ArgumentError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    ph, pw = non_negative_pair(padding, "padding")
    return (ph, ph, pw, pw)


def conv_output_size(
    hw: Tuple[int, int],
    kernel_size: Tuple[int, int],
    stride: Tuple[int, int],
    padding4: Sequence[int],
    dilation: Tuple[int, int],
) -> Tuple[int, int]:
    H, W = hw
    padded = (H + padding4[0] + padding4[1], W + padding4[2] + padding4[3])
    eff = (dilation[0] * (kernel_size[0] - 1) + 1, dilation[1] * (kernel_size[1] - 1) + 1)
    if padded[0] < eff[0] or padded[1] < eff[1]:
        raise RuntimeError(
            f"conv2d: calculated padded input size per channel: ({padded[0]} x {padded[1]}). "
            f"Kernel size: ({eff[0]} x {eff[1]}) (dilated). "
            "Kernel size can't be greater than actual input size"
        )
    return ((padded[0] - eff[0]) // stride[0] + 1, (padded[1] - eff[1]) // stride[1] + 1)


def check_float_dtype(t: torch.Tensor, name: str, op: str) -> None:
    if t.dtype not in _FLOAT_DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in _FLOAT_DTYPES)
        raise TypeError(
            f"convbench.{op}: {name} has dtype {t.dtype}, but on {t.device.type} only {names} "
            "are supported"
        )


def check_device_type(t: torch.Tensor, op: str) -> None:
    if t.device.type not in ("cpu", "cuda", "meta"):
        raise RuntimeError(
            f"convbench.{op}: tensors on {t.device.type} are not supported (cpu or cuda only)"
        )


# Shape checks are pure functions of the shapes and arguments, and a model
# calls each layer with the same ones every step: the eager path remembers
# the geometries that passed (concrete shapes only; symbolic ones are not
# hashable). Only successes are stored, so bad input is always re-checked.
_GEOMETRY_CACHE: dict = {}
_GEOMETRY_CACHE_SIZE = 4096


def _geometry(key, compute, *args):
    """compute(*args), a geometry check; with a key (cache=True), a success
    is remembered under it. None: checked every time (symbolic shapes)."""
    if key is None:
        return compute(*args)
    hit = _GEOMETRY_CACHE.get(key)
    if hit is None:
        hit = compute(*args)
        if len(_GEOMETRY_CACHE) >= _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = hit
    return hit


def _check_batched_input(input: torch.Tensor, op: str, rank_error: str) -> None:
    """A 4D input on a device the kernels serve; rank_error: torch's message
    for another rank, which the shape completes."""
    if input.dim() != 4:
        raise RuntimeError(f"{rank_error}{list(input.shape)}")
    check_device_type(input, op)


def check_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride: Sequence[int],
    padding4: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    cache: bool = False,
) -> Tuple[int, int]:
    """Validates a batched conv2d call; returns the output size (P, Q).
    cache=True (concrete shapes only) reuses the geometry check of an
    earlier call with the same shapes and arguments."""
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError("convbench.conv2d: input and weight must be tensors")
    _check_batched_input(input, "conv2d", "Expected 3D (unbatched) or 4D (batched) input to "
                         "conv2d, but got input of size: ")
    tensors = [("weight", weight)] + ([("bias", bias)] if bias is not None else [])
    for name, t in tensors:
        check_same_device_dtype(input, "input", t, name, "conv2d")
    check_float_dtype(input, "input", "conv2d")
    bias_shape = None if bias is None else bias.shape
    # type(groups): True equals 1 as a key, but is refused as groups.
    key = ("conv2d", input.shape, weight.shape, bias_shape, tuple(stride), tuple(padding4),
           tuple(dilation), groups, type(groups)) if cache else None
    return _geometry(key, conv2d_geometry, input.shape, weight.shape, bias_shape, stride,
                     padding4, dilation, groups)


def check_same_device_dtype(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str,
                            op: str) -> None:
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"convbench.{op}: {b_name} must be a tensor")
    if b.device != a.device:
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found {a_name} on {a.device} "
            f"and {b_name} on {b.device}"
        )
    if b.dtype != a.dtype:
        raise RuntimeError(
            f"convbench.{op}: {a_name} type ({a.dtype}) and {b_name} type ({b.dtype}) "
            "should be the same"
        )


def conv2d_geometry(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    bias_shape: Optional[Sequence[int]],
    stride: Sequence[int],
    padding4: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> Tuple[int, int]:
    """Checks that the shapes and arguments fit together; returns (P, Q)."""
    if len(x_shape) != 4:
        raise RuntimeError(f"conv2d: expected a 4D input size, got {list(x_shape)}")
    if len(w_shape) != 4:
        raise RuntimeError(
            "weight must have shape (out_channels, in_channels/groups, kH, kW), got "
            f"{list(w_shape)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ArgumentError(f"groups must be a positive integer, got {groups!r}")
    if len(stride) != 2 or min(stride) <= 0:
        raise ArgumentError(f"stride must be positive, got {tuple(stride)}")
    if len(dilation) != 2 or min(dilation) <= 0:
        raise ArgumentError(f"dilation must be positive, got {tuple(dilation)}")
    if len(padding4) != 4 or min(padding4) < 0:
        raise ArgumentError(f"padding must be 4 non-negative ints (top, bottom, left, right), "
                         f"got {tuple(padding4)}")
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    # Zero input channels (Cg == 0) are allowed, as in torch; see conv2d_out_channels.
    if K == 0:
        raise RuntimeError(f"expected weight to be at least 1 at dimension 0, but got weight of "
                           f"size {list(w_shape)} instead")
    if R == 0 or S == 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size "
                           f"{list(w_shape)}")
    if K % groups != 0:
        raise RuntimeError(f"out_channels ({K}) must be divisible by groups ({groups})")
    if C != Cg * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(w_shape)}, expected input"
            f"{list(x_shape)} to have {Cg * groups} channels, but got {C} channels instead"
        )
    if bias_shape is not None and (len(bias_shape) != 1 or bias_shape[0] != K):
        raise RuntimeError(
            f"bias must have shape ({K},) to match out_channels, got {list(bias_shape)}"
        )
    return conv_output_size((H, W), (R, S), tuple(stride), padding4, tuple(dilation))


def conv2d_out_channels(x_shape: Sequence[int], w_shape: Sequence[int]) -> int:
    """The output's channel count: K, except 0 when the input has no channels
    (torch returns an empty (N, 0, P, Q) there, bias or not)."""
    return 0 if x_shape[1] == 0 else w_shape[0]


def pool_output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's max_pool2d output size, including ceil_mode's rule that the last
    window must start inside the input or the left padding."""
    numerator = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (math.ceil if ceil_mode else math.floor)(numerator / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return int(out)


def check_max_pool2d(
    input: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    cache: bool = False,
) -> Tuple[int, int]:
    """Validates a batched max_pool2d call; returns the output size (P, Q)
    (cache: as for check_conv2d)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError("convbench.max_pool2d: input must be a tensor")
    _check_batched_input(input, "max_pool2d", "max_pool2d: Expected 3D or 4D (batch mode) "
                         "tensor for input, but got input of size: ")
    check_float_dtype(input, "input", "max_pool2d")
    key = ("max_pool2d", input.shape, tuple(kernel_size), tuple(stride), tuple(padding),
           tuple(dilation), ceil_mode) if cache else None
    return _geometry(key, pool2d_geometry, input.shape, kernel_size, stride, padding,
                     dilation, ceil_mode)


def check_max_pool2d_backward_size(out_hw, input_size, kernel_size, stride, padding, dilation,
                                   cache: bool = False) -> None:
    """The gradient's checks: the forward's geometry rules, and grad_output the
    size that forward gives input_size (with or without ceil_mode). The CPU
    kernel relies on both (csrc/maxpool2d/cpu/maxpool2d_kernel.cpp)."""
    key = ("max_pool2d_backward", out_hw, input_size, tuple(kernel_size), tuple(stride),
           tuple(padding), tuple(dilation)) if cache else None
    _geometry(key, _max_pool2d_backward_size, out_hw, input_size, kernel_size, stride, padding,
              dilation)


def _max_pool2d_backward_size(out_hw, input_size, kernel_size, stride, padding, dilation):
    # (a list, not a set: symbolic sizes compare but do not hash)
    sizes = [pool2d_geometry(input_size, kernel_size, stride, padding, dilation, ceil)
             for ceil in (False, True)]
    if tuple(out_hw) not in sizes:
        shown = [sizes[0]] + ([sizes[1]] if sizes[1] != sizes[0] else [])
        raise ArgumentError(
            f"max_pool2d_backward: grad_output's size {list(out_hw)} is not max_pool2d's "
            f"output size ({' or '.join(str(list(x)) for x in shown)}) for input_size "
            f"{list(input_size)}, kernel_size {list(kernel_size)}, stride {list(stride)}, "
            f"padding {list(padding)}, dilation {list(dilation)}")
    return True


def check_pool_input_sizes(shape, op: str = "max_pool2d") -> None:
    """torch's rule: only the batch dimension of a 4D (or none of a 3D) input may be 0."""
    if any(n == 0 for n in shape[-3:]):
        raise RuntimeError(
            f"{op}: Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size "
            f"for input, but got: {list(shape)} (only the batch dimension may be empty)"
        )


def pool2d_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode,
                    op: str = "max_pool2d"):
    """Checks a pool's window arguments against a 4D input shape (torch's
    rules, max-pool's and avg-pool's alike: avg-pool's dilation is 1);
    returns (P, Q). op names the pool in the messages."""
    if min(kernel_size) <= 0:
        raise ArgumentError(f"kernel_size must be positive, got {tuple(kernel_size)}")
    if min(stride) <= 0:
        raise ArgumentError(f"stride must be positive, got {tuple(stride)}")
    if min(dilation) <= 0:
        raise ArgumentError(f"dilation must be positive, got {tuple(dilation)}")
    # torch's rule (2.x): the padding may be at most half the (undilated) kernel.
    for p, k in zip(padding, kernel_size):
        if p < 0 or p > k // 2:
            raise ArgumentError(
                "pad should be at most half of kernel size, but got "
                f"pad={tuple(padding)} and kernel_size={tuple(kernel_size)}"
            )
    check_pool_input_sizes(shape, op)
    H, W = shape[-2:]
    P = pool_output_size(H, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    Q = pool_output_size(W, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    if P <= 0 or Q <= 0:
        raise RuntimeError(
            f"{op}: given input size {list(shape)}, the calculated output size "
            f"({P} x {Q}) is too small"
        )
    return P, Q
