"""NumPy reference implementations of every convbench op (the test oracle).

This module is deliberately independent of PyTorch and of the C++/CUDA kernels: it
imports only NumPy, so tests can check both the compiled kernels and
``torch.nn.functional`` against it.  It has two layers:

* ``*_loops`` functions (and the homework's ``my_conv2d``) are plain Python loops
  that follow the textbook definitions one scalar at a time.  They are slow and
  meant to be obviously right; use them on small shapes.
* The vectorised functions (``conv2d``, ``conv2d_backward_input``, ...) compute the
  same thing with strided slices and matrix products over the R*S kernel taps,
  fast enough to serve as the float64 oracle on realistic shapes.

Semantics follow ``torch.nn.functional`` (NCHW layout):

* ``conv2d(x, w, b, stride, padding, dilation, groups, padding_mode)``: padding is
  an int, a pair, ``"valid"`` or ``"same"`` ("same" splits an odd total padding
  like torch: left = total // 2, right = total - left; it is refused for
  stride > 1).  ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or
  ``"circular"`` (``torch.nn.Conv2d``'s modes; NumPy's reflect/edge/wrap).
* Backward functions return d(loss)/d(input) and d(loss)/d(weight) given
  d(loss)/d(output).  For a non-zero ``padding_mode`` the padded input is a
  function of the input in which every padded pixel is a copy of some source
  pixel, so the gradient of each padded pixel is accumulated back onto the pixel
  it was copied from (exactly what autograd through ``F.pad`` does).
* ``max_pool2d``: padding reads as -inf, ``ceil_mode`` uses torch's rule (the last
  window must start inside the input or the left padding), indices are flat
  ``h * W + w`` offsets inside each (n, c) plane, the first maximum wins, and NaN
  propagates like torch's kernels (a NaN always replaces the running maximum, so
  the *last* NaN in a window gives the index).
* ``max_pool2d_backward`` scatter-adds ``grad_output`` at ``indices`` (overlapping
  windows accumulate).
* ``avg_pool2d``: torch's windows (the output size is max-pool's with dilation
  1); a window's sum is divided by ``divisor_override`` if given, else by its
  size clipped to the padded input (``count_include_pad``) or to the input.
  ``avg_pool2d_backward`` spreads each ``grad_output / divisor`` over its window.

Dtypes: any real floating input is accepted.  Convolutions accumulate in float64
and return the result type of the operands (float32 in -> float32 out, float64
in -> float64 out); max-pooling is exact and keeps the input dtype; average
pooling sums in float64 and keeps the input dtype.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "conv2d_output_size",
    "max_pool2d_output_size",
    "my_conv2d",
    "conv2d_loops",
    "conv2d_backward_input_loops",
    "conv2d_backward_weight_loops",
    "max_pool2d_loops",
    "max_pool2d_backward_loops",
    "conv2d",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# ----------------------------------------------------------------------------
# Argument handling (shared by the loop and the vectorised versions)
# ----------------------------------------------------------------------------

def _pair(value, name):
    """int or 2-sequence of ints -> (int, int)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
    ):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(items[0]), int(items[1])


def _positive_pair(value, name):
    pair = _pair(value, name)
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


def _conv_padding(padding, kernel_hw, stride, dilation):
    """Resolve conv padding to ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' is not supported for strided convolutions (stride={stride})"
                )
            pads = []
            for k, d in zip(kernel_hw, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))  # torch's split
            return pads[0], pads[1]
        raise ValueError(f"padding string must be 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def _out_len(in_len, pad_lo, pad_hi, k, stride, dilation):
    return (in_len + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def conv2d_output_size(input_hw, kernel_hw, stride=1, padding=0, dilation=1):
    """(P, Q) of a conv2d; ``padding`` is an int, a pair, 'valid' or 'same'.

    P = floor((H + pad_top + pad_bottom - dilation*(R-1) - 1) / stride) + 1.
    Raises ValueError if the dilated kernel is larger than the padded input.
    """
    H, W = _pair(input_hw, "input_hw")
    R, S = _positive_pair(kernel_hw, "kernel size")
    stride = _positive_pair(stride, "stride")
    dilation = _positive_pair(dilation, "dilation")
    pads = _conv_padding(padding, (R, S), stride, dilation)
    return _conv_out_hw((H, W), (R, S), stride, pads, dilation)


def _conv_out_hw(in_hw, kernel_hw, stride, pads, dilation):
    """Output (P, Q) for resolved ((top, bottom), (left, right)) padding."""
    out = []
    for axis, n, k, (lo, hi), s, d in zip(("height", "width"), in_hw, kernel_hw, pads,
                                          stride, dilation):
        eff = d * (k - 1) + 1
        if n + lo + hi < eff:
            raise ValueError(
                f"kernel {axis} {k} (effective {eff} with dilation {d}) is larger than the "
                f"padded input {axis} {n + lo + hi}"
            )
        out.append(_out_len(n, lo, hi, k, s, d))
    return out[0], out[1]


def _pool_stride(stride, kernel):
    """torch: stride None or () means stride = kernel_size."""
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return _positive_pair(stride, "stride")


def max_pool2d_output_size(input_hw, kernel_size, stride=None, padding=0, dilation=1,
                           ceil_mode=False):
    """(P, Q) of a max_pool2d, torch's rule.

    P = floor_or_ceil((H + 2*pad - dilation*(k-1) - 1) / stride) + 1, and with
    ceil_mode the last window is dropped if it would start at or beyond H + pad
    (i.e. entirely in the right padding).
    """
    H, W = _pair(input_hw, "input_hw")
    k = _positive_pair(kernel_size, "kernel_size")
    s = _pool_stride(stride, k)
    p = _pair(padding, "padding")
    d = _positive_pair(dilation, "dilation")
    if min(p) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"pad should be at most half of kernel size, got padding={p}, kernel_size={k}"
        )
    out = []
    for n, kk, ss, pp, dd in zip((H, W), k, s, p, d):
        span = n + 2 * pp - dd * (kk - 1) - 1
        o = (span + (ss - 1 if ceil_mode else 0)) // ss + 1
        if ceil_mode and (o - 1) * ss >= n + pp:
            o -= 1
        if o < 1:
            raise ValueError(
                f"max_pool2d output size is too small: input {(H, W)}, kernel_size={k}, "
                f"stride={s}, padding={p}, dilation={d} give a non-positive output"
            )
        out.append(o)
    return out[0], out[1]


def _check_array(a, name, ndim=4):
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    return a


def _shape4(shape, name):
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"{name} must be a 4-tuple (N, C, H, W), got {shape!r}") from None
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{name} must be 4 positive ints, got {shape!r}")
    return shape


class _ConvArgs:
    """Validated conv2d geometry shared by all conv functions."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups, padding_mode):
        N, C, H, W = x_shape
        K, Cg, R, S = w_shape
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}")
        groups = int(groups)
        if C % groups:
            raise ValueError(f"input channels {C} not divisible by groups {groups}")
        if K % groups:
            raise ValueError(f"output channels {K} not divisible by groups {groups}")
        if Cg * groups != C:
            raise ValueError(
                f"weight expects {Cg * groups} input channels ({Cg} per group x {groups} groups) "
                f"but input has {C}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.stride = _positive_pair(stride, "stride")
        self.dilation = _positive_pair(dilation, "dilation")
        if R < 1 or S < 1:
            raise ValueError(f"kernel size must be positive, got {(R, S)}")
        self.pads = _conv_padding(padding, (R, S), self.stride, self.dilation)
        self.P, self.Q = _conv_out_hw((H, W), (R, S), self.stride, self.pads, self.dilation)
        for (lo, hi), n, axis in zip(self.pads, (H, W), ("height", "width")):
            if padding_mode == "reflect" and max(lo, hi) >= n:
                raise ValueError(
                    f"reflect padding {max(lo, hi)} must be smaller than the input {axis} {n}"
                )
            if padding_mode == "circular" and max(lo, hi) > n:
                raise ValueError(
                    f"circular padding {max(lo, hi)} must not exceed the input {axis} {n}"
                )
        self.N, self.C, self.H, self.W = N, C, H, W
        self.K, self.Cg, self.R, self.S = K, Cg, R, S
        self.groups, self.Kg = groups, K // groups
        self.mode = padding_mode
        self.Hp = H + sum(self.pads[0])
        self.Wp = W + sum(self.pads[1])

    @property
    def out_shape(self):
        return (self.N, self.K, self.P, self.Q)


def _forward_args(input, weight, bias, stride, padding, dilation, groups, padding_mode):
    """(x, w, bias, geometry) of a conv2d call, checked: both forward versions'."""
    x = _check_array(input, "input")
    w = _check_array(weight, "weight")
    a = _ConvArgs(x.shape, w.shape, stride, padding, dilation, groups, padding_mode)
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (a.K,):
            raise ValueError(f"bias must have shape ({a.K},), got {bias.shape}")
    return x, w, bias, a


def _source_index(i, n, lo, mode):
    """Input coordinate that padded coordinate ``i`` copies (None: a zero pad).

    Written out per mode so the loop versions do not depend on np.pad.
    """
    j = i - lo
    if 0 <= j < n:
        return j
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if j < 0 else n - 1
    if mode == "circular":
        return j % n
    # reflect (without repeating the edge pixel); validated: pad < n
    return -j if j < 0 else 2 * (n - 1) - j


def _out_dtype(*arrays):
    return np.result_type(*arrays)


# ----------------------------------------------------------------------------
# Plain loops (obviously right, slow)
# ----------------------------------------------------------------------------

def my_conv2d(input, kernel):
    """The homework's convolution: input[N, Cin, H, W] * kernel[Cout, Cin, kh, kw].

    Stride 1, no padding, no bias (cross-correlation, like torch).  Returns
    output[N, Cout, H - kh + 1, W - kw + 1].
    """
    input = _check_array(input, "input")
    kernel = _check_array(kernel, "kernel")
    N, Cin, H, W = input.shape
    Cout, Cin_k, kh, kw = kernel.shape
    if Cin_k != Cin:
        raise ValueError(f"kernel has {Cin_k} input channels but input has {Cin}")
    if kh > H or kw > W:
        raise ValueError(f"kernel {(kh, kw)} is larger than the input {(H, W)}")
    out = np.zeros((N, Cout, H - kh + 1, W - kw + 1), dtype=np.float64)
    for n in range(N):
        for k in range(Cout):
            for i in range(H - kh + 1):
                for j in range(W - kw + 1):
                    window = input[n, :, i:i + kh, j:j + kw].astype(np.float64)
                    out[n, k, i, j] = np.sum(window * kernel[k])
    return out.astype(_out_dtype(input, kernel))


def _padded_reader(x, a):
    """Function (n, c, i, j) -> value of the padded input at padded coords (i, j)."""
    (pt, _), (pl, _) = a.pads

    def read(n, c, i, j):
        si = _source_index(i, a.H, pt, a.mode)
        sj = _source_index(j, a.W, pl, a.mode)
        if si is None or sj is None:
            return 0.0
        return float(x[n, c, si, sj])

    return read


def _conv_terms(a):
    """Every product in conv2d's sums, in loop order (n, k, p, q, c, r, s): as
    (n, k, p, q, c, input channel, r, s, i, j), the weight w[k, c, r, s] times
    the padded input at (n, input channel, i, j), added into y[n, k, p, q]. The
    three loop passes are this one sum, each solving for another factor."""
    (sh, sw), (dh, dw) = a.stride, a.dilation
    for n in range(a.N):
        for k in range(a.K):
            g = k // a.Kg
            for p in range(a.P):
                for q in range(a.Q):
                    for c in range(a.Cg):
                        for r in range(a.R):
                            for s in range(a.S):
                                yield (n, k, p, q, c, g * a.Cg + c, r, s,
                                       p * sh + r * dh, q * sw + s * dw)


def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """conv2d by seven nested loops (see module docstring for semantics)."""
    x, w, bias, a = _forward_args(input, weight, bias, stride, padding, dilation, groups,
                                  padding_mode)
    read = _padded_reader(x, a)
    y = np.zeros(a.out_shape, dtype=np.float64)
    if bias is not None:
        y += bias.astype(np.float64)[None, :, None, None]
    for n, k, p, q, c, ci, r, s, i, j in _conv_terms(a):
        y[n, k, p, q] += float(w[k, c, r, s]) * read(n, ci, i, j)
    dts = [x, w] + ([bias] if bias is not None else [])
    return y.astype(_out_dtype(*dts))


def conv2d_backward_input_loops(grad_output, weight, input_shape, stride=1, padding=0,
                                dilation=1, groups=1, padding_mode="zeros"):
    """d(loss)/d(input) by loops: scatter into the padded input, then fold the pads back."""
    dy = _check_array(grad_output, "grad_output")
    w = _check_array(weight, "weight")
    a = _ConvArgs(_shape4(input_shape, "input_shape"), w.shape, stride, padding, dilation,
                  groups, padding_mode)
    _check_grad_shape(dy, a)
    dxp = np.zeros((a.N, a.C, a.Hp, a.Wp), dtype=np.float64)
    for n, k, p, q, c, ci, r, s, i, j in _conv_terms(a):
        dxp[n, ci, i, j] += float(w[k, c, r, s]) * float(dy[n, k, p, q])
    (pt, _), (pl, _) = a.pads
    dx = np.zeros((a.N, a.C, a.H, a.W), dtype=np.float64)
    for i in range(a.Hp):
        si = _source_index(i, a.H, pt, a.mode)
        for j in range(a.Wp):
            sj = _source_index(j, a.W, pl, a.mode)
            if si is not None and sj is not None:
                dx[:, :, si, sj] += dxp[:, :, i, j]
    return dx.astype(_out_dtype(dy, w))


def conv2d_backward_weight_loops(grad_output, input, weight_shape, stride=1, padding=0,
                                 dilation=1, groups=1, padding_mode="zeros"):
    """d(loss)/d(weight) by loops: dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[...]."""
    dy = _check_array(grad_output, "grad_output")
    x = _check_array(input, "input")
    a = _ConvArgs(x.shape, _shape4(weight_shape, "weight_shape"), stride, padding, dilation,
                  groups, padding_mode)
    _check_grad_shape(dy, a)
    read = _padded_reader(x, a)
    dwt = np.zeros((a.K, a.Cg, a.R, a.S), dtype=np.float64)
    for n, k, p, q, c, ci, r, s, i, j in _conv_terms(a):
        dwt[k, c, r, s] += float(dy[n, k, p, q]) * read(n, ci, i, j)
    return dwt.astype(_out_dtype(dy, x))


def _check_grad_shape(dy, a):
    if dy.shape != a.out_shape:
        raise ValueError(f"grad_output must have shape {a.out_shape}, got {dy.shape}")


class _PoolArgs:
    def __init__(self, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
        N, C, H, W = x_shape
        self.k = _positive_pair(kernel_size, "kernel_size")
        self.s = _pool_stride(stride, self.k)
        self.p = _pair(padding, "padding")
        self.d = _positive_pair(dilation, "dilation")
        self.P, self.Q = max_pool2d_output_size((H, W), self.k, self.s, self.p, self.d,
                                                ceil_mode)
        self.N, self.C, self.H, self.W = N, C, H, W


def max_pool2d_loops(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                     return_indices=False):
    """max_pool2d by loops, following torch's CPU kernel step by step."""
    x = _check_array(input, "input")
    a = _PoolArgs(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty((a.N, a.C, a.P, a.Q), dtype=x.dtype)
    idx = np.empty((a.N, a.C, a.P, a.Q), dtype=np.int64)
    for n in range(a.N):
        for c in range(a.C):
            for p in range(a.P):
                for q in range(a.Q):
                    h0 = p * a.s[0] - a.p[0]
                    w0 = q * a.s[1] - a.p[1]
                    # torch starts from the first in-bounds tap (even if beyond H/W)
                    hs, ws = h0, w0
                    while hs < 0:
                        hs += a.d[0]
                    while ws < 0:
                        ws += a.d[1]
                    best, best_i = -np.inf, hs * a.W + ws
                    for r in range(a.k[0]):
                        for s in range(a.k[1]):
                            h, w = h0 + r * a.d[0], w0 + s * a.d[1]
                            if not (0 <= h < a.H and 0 <= w < a.W):
                                continue  # padding reads as -inf: never wins
                            v = x[n, c, h, w]
                            if v > best or np.isnan(v):
                                best, best_i = v, h * a.W + w
                    y[n, c, p, q] = best
                    idx[n, c, p, q] = best_i
    return (y, idx) if return_indices else y


def max_pool2d_backward_loops(grad_output, indices, input_shape):
    """d(loss)/d(input) of max_pool2d: add each grad_output value at its index."""
    dy = _check_array(grad_output, "grad_output")
    idx = _check_indices(indices, dy, input_shape)
    N, C, H, W = _shape4(input_shape, "input_shape")
    dx = np.zeros((N, C, H * W), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for p in range(dy.shape[2]):
                for q in range(dy.shape[3]):
                    dx[n, c, idx[n, c, p, q]] += float(dy[n, c, p, q])
    return dx.reshape(N, C, H, W).astype(dy.dtype)


def _check_indices(indices, dy, input_shape):
    N, C, H, W = _shape4(input_shape, "input_shape")
    idx = np.asarray(indices)
    if idx.shape != dy.shape:
        raise ValueError(f"indices shape {idx.shape} != grad_output shape {dy.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    if dy.shape[:2] != (N, C):
        raise ValueError(f"grad_output shape {dy.shape} does not match input_shape {(N, C, H, W)}")
    if idx.size and (idx.min() < 0 or idx.max() >= H * W):
        # torch emits such indices only for windows lying wholly in the padding
        raise ValueError(f"indices must lie in [0, {H * W}), got [{idx.min()}, {idx.max()}]")
    return idx


# ----------------------------------------------------------------------------
# Vectorised (the float64 oracle)
# ----------------------------------------------------------------------------
# All three conv passes loop over the R*S kernel taps; for tap (r, s) the input
# pixels it touches form a strided slice of the padded input, so each tap is one
# batched GEMM per group over M = N*P*Q columns.

def _pad_input(x, a):
    pads = ((0, 0), (0, 0)) + a.pads
    if a.mode == "zeros":
        return np.pad(x, pads)
    return np.pad(x, pads, mode=_NP_PAD_MODE[a.mode])


def _fold_padding(dxp, a):
    """Sum the gradient of the padded input back onto the input pixels."""
    if a.mode == "zeros":
        (pt, _), (pl, _) = a.pads
        return dxp[:, :, pt:pt + a.H, pl:pl + a.W]
    # Row i of the padded input copies source row src_h[i]; np.pad of an arange gives
    # exactly that map.  One-hot fold matrices then sum every copy onto its source.
    src_h = np.pad(np.arange(a.H), a.pads[0], mode=_NP_PAD_MODE[a.mode])
    src_w = np.pad(np.arange(a.W), a.pads[1], mode=_NP_PAD_MODE[a.mode])
    fold_h = (np.arange(a.H)[:, None] == src_h[None, :]).astype(np.float64)  # (H, Hp)
    fold_w = (np.arange(a.W)[:, None] == src_w[None, :]).astype(np.float64)  # (W, Wp)
    return fold_h @ dxp @ fold_w.T


def _tap_slices(a, r, s):
    (sh, sw), (dh, dw) = a.stride, a.dilation
    return (slice(r * dh, r * dh + sh * (a.P - 1) + 1, sh),
            slice(s * dw, s * dw + sw * (a.Q - 1) + 1, sw))


def _grouped_input(xp, a):
    """(N, C, Hp, Wp) -> (G, Cg, N, Hp, Wp) view."""
    return xp.reshape(a.N, a.groups, a.Cg, a.Hp, a.Wp).transpose(1, 2, 0, 3, 4)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    """torch.nn.functional.conv2d (+ nn.Conv2d's padding_mode), vectorised."""
    x, w, bias, a = _forward_args(input, weight, bias, stride, padding, dilation, groups,
                                  padding_mode)
    xg = _grouped_input(_pad_input(x.astype(np.float64), a), a)
    wg = w.astype(np.float64).reshape(a.groups, a.Kg, a.Cg, a.R, a.S)
    M = a.N * a.P * a.Q
    y = np.zeros((a.groups, a.Kg, M))
    for r in range(a.R):
        for s in range(a.S):
            hs, ws = _tap_slices(a, r, s)
            cols = xg[:, :, :, hs, ws].reshape(a.groups, a.Cg, M)
            y += wg[:, :, :, r, s] @ cols
    y = y.reshape(a.K, a.N, a.P, a.Q).transpose(1, 0, 2, 3)
    if bias is not None:
        y = y + bias.astype(np.float64)[None, :, None, None]
    dts = [x, w] + ([bias] if bias is not None else [])
    return np.ascontiguousarray(y, dtype=_out_dtype(*dts))


def conv2d_backward_input(grad_output, weight, input_shape, stride=1, padding=0, dilation=1,
                          groups=1, padding_mode="zeros"):
    """d(loss)/d(input) of conv2d: per tap, W_rs^T @ dY scatter-added into the padded input."""
    dy = _check_array(grad_output, "grad_output")
    w = _check_array(weight, "weight")
    a = _ConvArgs(_shape4(input_shape, "input_shape"), w.shape, stride, padding, dilation,
                  groups, padding_mode)
    _check_grad_shape(dy, a)
    M = a.N * a.P * a.Q
    dyg = dy.astype(np.float64).transpose(1, 0, 2, 3).reshape(a.groups, a.Kg, M)
    wg = w.astype(np.float64).reshape(a.groups, a.Kg, a.Cg, a.R, a.S)
    dxg = np.zeros((a.groups, a.Cg, a.N, a.Hp, a.Wp))
    for r in range(a.R):
        for s in range(a.S):
            hs, ws = _tap_slices(a, r, s)
            contrib = wg[:, :, :, r, s].transpose(0, 2, 1) @ dyg  # (G, Cg, M)
            dxg[:, :, :, hs, ws] += contrib.reshape(a.groups, a.Cg, a.N, a.P, a.Q)
    dxp = dxg.transpose(2, 0, 1, 3, 4).reshape(a.N, a.C, a.Hp, a.Wp)
    dx = _fold_padding(dxp, a)
    return np.ascontiguousarray(dx, dtype=_out_dtype(dy, w))


def conv2d_backward_weight(grad_output, input, weight_shape, stride=1, padding=0, dilation=1,
                           groups=1, padding_mode="zeros"):
    """d(loss)/d(weight) of conv2d: per tap, dY @ X_rs^T summed over N*P*Q."""
    dy = _check_array(grad_output, "grad_output")
    x = _check_array(input, "input")
    a = _ConvArgs(x.shape, _shape4(weight_shape, "weight_shape"), stride, padding, dilation,
                  groups, padding_mode)
    _check_grad_shape(dy, a)
    M = a.N * a.P * a.Q
    dyg = dy.astype(np.float64).transpose(1, 0, 2, 3).reshape(a.groups, a.Kg, M)
    xg = _grouped_input(_pad_input(x.astype(np.float64), a), a)
    dw = np.zeros((a.groups, a.Kg, a.Cg, a.R, a.S))
    for r in range(a.R):
        for s in range(a.S):
            hs, ws = _tap_slices(a, r, s)
            cols = xg[:, :, :, hs, ws].reshape(a.groups, a.Cg, M)
            dw[:, :, :, r, s] = dyg @ cols.transpose(0, 2, 1)
    return np.ascontiguousarray(dw.reshape(a.K, a.Cg, a.R, a.S), dtype=_out_dtype(dy, x))


def conv2d_backward_bias(grad_output):
    """d(loss)/d(bias) of conv2d: grad_output summed over N, P, Q."""
    dy = _check_array(grad_output, "grad_output")
    return dy.astype(np.float64).sum(axis=(0, 2, 3)).astype(dy.dtype)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool2d, vectorised over the kernel taps."""
    x = _check_array(input, "input")
    a = _PoolArgs(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a.k, a.s, a.p, a.d
    # Rows/cols each window tap reads; out-of-range ones are padding (-inf).
    hs = np.arange(a.P)[:, None] * sh - ph + np.arange(kh)[None, :] * dh  # (P, kh)
    ws = np.arange(a.Q)[:, None] * sw - pw + np.arange(kw)[None, :] * dw  # (Q, kw)
    vh, vw = (hs >= 0) & (hs < a.H), (ws >= 0) & (ws < a.W)
    vals = x[:, :, np.clip(hs, 0, a.H - 1)[:, None, :, None],
             np.clip(ws, 0, a.W - 1)[None, :, None, :]]  # (N, C, P, Q, kh, kw)
    valid = vh[:, None, :, None] & vw[None, :, None, :]  # (P, Q, kh, kw)
    vals = np.where(valid, vals, -np.inf).reshape(a.N, a.C, a.P, a.Q, kh * kw)
    valid = np.broadcast_to(valid.reshape(a.P, a.Q, kh * kw), vals.shape)

    nan = np.isnan(vals)
    best = np.max(vals, axis=-1)  # NaN if any NaN
    # first tap equal to the maximum among valid taps (covers all--inf windows)
    first = np.argmax((vals == best[..., None]) & valid, axis=-1)
    last_nan = kh * kw - 1 - np.argmax(nan[..., ::-1], axis=-1)
    tap = np.where(nan.any(-1), last_nan, first)

    h_at = np.broadcast_to(hs[:, None, :, None], (a.P, a.Q, kh, kw)).reshape(a.P, a.Q, -1)
    w_at = np.broadcast_to(ws[None, :, None, :], (a.P, a.Q, kh, kw)).reshape(a.P, a.Q, -1)
    flat = h_at * a.W + w_at  # (P, Q, kh*kw)
    pq = (np.arange(a.P)[:, None], np.arange(a.Q)[None, :])
    idx = flat[pq[0], pq[1], tap]
    # windows wholly in the padding: torch reports the first tap at h, w >= 0
    h0 = hs[:, 0] + ((-hs[:, 0]).clip(0) + dh - 1) // dh * dh
    w0 = ws[:, 0] + ((-ws[:, 0]).clip(0) + dw - 1) // dw * dw
    empty = ~valid.any(-1)
    idx = np.where(empty, (h0[:, None] * a.W + w0[None, :]), idx).astype(np.int64)
    y = best.astype(x.dtype)
    return (y, idx) if return_indices else y


def max_pool2d_backward(grad_output, indices, input_shape):
    """d(loss)/d(input) of max_pool2d: scatter-add grad_output at indices."""
    dy = _check_array(grad_output, "grad_output")
    idx = _check_indices(indices, dy, input_shape)
    N, C, H, W = _shape4(input_shape, "input_shape")
    planes = np.arange(N * C).reshape(N, C, 1, 1) * (H * W)
    dx = np.bincount((planes + idx).ravel(), weights=dy.astype(np.float64).ravel(),
                     minlength=N * C * H * W)
    return dx.reshape(N, C, H, W).astype(dy.dtype)


class _AvgPoolArgs:
    """avg_pool2d's arguments and, per output position, its window: the
    input slice it reads and what its sum is divided by (torch's rule)."""

    def __init__(self, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override):
        N, C, H, W = x_shape
        k = _positive_pair(kernel_size, "kernel_size")
        s = _pool_stride(stride, k)
        p = _pair(padding, "padding")
        if divisor_override is not None and (isinstance(divisor_override, bool) or
                                             int(divisor_override) == 0):
            raise ValueError(f"divisor_override must be a non-zero int, got {divisor_override!r}")
        self.P, self.Q = max_pool2d_output_size((H, W), k, s, p, 1, ceil_mode)
        self.N, self.C, self.H, self.W = N, C, H, W
        self.rows = [self._span(o, H, s[0], p[0], k[0]) for o in range(self.P)]
        self.cols = [self._span(o, W, s[1], p[1], k[1]) for o in range(self.Q)]
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    @staticmethod
    def _span(o, size, stride, pad, kernel):
        """(begin, end, padded): the window reads [begin, end); padded counts
        its positions inside the padded input."""
        start = o * stride - pad
        stop = min(start + kernel, size + pad)
        return max(start, 0), min(stop, size), stop - start

    def windows(self):
        """(p, q, rows slice, cols slice, divisor) of every output position."""
        for p, (h0, h1, hp) in enumerate(self.rows):
            for q, (w0, w1, wp) in enumerate(self.cols):
                if self.divisor_override is not None:
                    div = int(self.divisor_override)
                elif self.count_include_pad:
                    div = hp * wp
                else:
                    div = (h1 - h0) * (w1 - w0)
                yield p, q, slice(h0, h1), slice(w0, w1), div


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """torch.nn.functional.avg_pool2d: each window's float64 sum over its divisor."""
    x = _check_array(input, "input")
    a = _AvgPoolArgs(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)
    y = np.zeros((a.N, a.C, a.P, a.Q), dtype=np.float64)
    for p, q, rows, cols, div in a.windows():
        window = x[:, :, rows, cols].astype(np.float64)
        if window.size:  # an empty window (none with valid arguments) gives 0, as torch's
            y[:, :, p, q] = window.sum(axis=(2, 3)) / div
    return y.astype(x.dtype)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """d(loss)/d(input) of avg_pool2d: each grad_output / divisor added to its window."""
    dy = _check_array(grad_output, "grad_output")
    shape = _shape4(input_shape, "input_shape")
    a = _AvgPoolArgs(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)
    if dy.shape != (a.N, a.C, a.P, a.Q):
        raise ValueError(f"grad_output must have shape {(a.N, a.C, a.P, a.Q)}, got {dy.shape}")
    dx = np.zeros(shape, dtype=np.float64)
    for p, q, rows, cols, div in a.windows():
        dx[:, :, rows, cols] += dy[:, :, p, q, None, None].astype(np.float64) / div
    return dx.astype(dy.dtype)
