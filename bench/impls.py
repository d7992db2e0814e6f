"""What each benchmark row runs: the implementations of one conv/pool pass
on one layer shape, their inputs, and an independent check of their output.

Implementation names (the `impl` of a row, used by convbench.report):
  convbench:<algo>  convbench.conv2d / torch.ops.convbench.* with that algo
  torch             PyTorch on CPU (oneDNN / its native kernels)
  cudnn             PyTorch on CUDA, cudnn.benchmark on, TF32 off (the fp32 peer)
  cudnn_tf32        the same with TF32 allowed (a faster, less exact peer)
  numpy             convbench.reference vectorised (NumPy, float64 accumulation)
  numpy_loops       convbench.reference plain loops (tiny shapes only)
Every row's first result is compared with PyTorch in float64 on the same
inputs, so a fast wrong kernel fails its benchmark instead of winning it.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F

import convbench
from convbench import reference as ref

CONV_PASSES = ("fwd", "bwd_input", "bwd_weight", "fwd_bwd")
POOL_PASSES = ("fwd", "bwd", "fwd_bwd")
DTYPES = {"cpu": ("float32",), "cuda": ("float32", "float16", "bfloat16")}
REFERENCE_IMPL = {"cpu": "torch", "cuda": "cudnn"}

# Relative error (Frobenius norm) allowed against the float64 oracle. fp32
# sums of up to ~1e5 products stay near 1e-6; TF32 and fp16 keep 10-11
# mantissa bits, bf16 only 8.
_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2, "tf32": 5e-3}


def cuda_usable() -> bool:
    return torch.cuda.is_available()


def convbench_algos(device: str) -> tuple:
    """Algorithm names convbench offers on a device type, 'auto' first."""
    algos = tuple(convbench.algorithms(device)) if hasattr(convbench, "algorithms") else ()
    return ("auto",) + tuple(a for a in algos if a != "auto")


def algo_applies(algo: str, layer) -> bool:
    """Winograd F(2x2,3x3) takes only 3x3, stride 1, dilation 1 layers."""
    if algo != "winograd":
        return True
    return (layer.R, layer.S) == (3, 3) and layer.stride == (1, 1) and layer.dilation == (1, 1)


def conv_impls(device: str, dtype: str, layer, tiny: bool = False) -> list:
    if device == "cpu":
        algos = [a for a in convbench_algos("cpu") if algo_applies(a, layer)]
        rows = [f"convbench:{a}" for a in algos] + ["torch", "numpy"]
        return rows + (["numpy_loops"] if tiny else [])
    algos = convbench_algos("cuda") if convbench.has_cuda() else ("auto",)
    rows = [f"convbench:{a}" for a in algos] + ["cudnn"]
    return rows + (["cudnn_tf32"] if dtype == "float32" else [])


def pool_impls(device: str, tiny: bool = False) -> list:
    if device == "cpu":
        return ["convbench", "torch", "numpy"] + (["numpy_loops"] if tiny else [])
    return ["convbench", "cudnn"]


def skip_reason(device: str, impl: str):
    """Why a row cannot run on this machine, or None."""
    if device != "cuda":
        return None
    if not cuda_usable():
        return "no usable CUDA device"
    if impl.startswith("convbench") and not convbench.cuda_available():
        return "convbench built without CUDA kernels"
    return None


@contextlib.contextmanager
def backend_flags(impl: str, device: str):
    """cuDNN autotuning on for every CUDA row; TF32 only for cudnn_tf32."""
    if device != "cuda":
        yield
        return
    tf32 = impl == "cudnn_tf32"
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                        allow_tf32=tf32):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul


def tolerance(impl: str, dtype: str) -> float:
    return _TOLERANCE["tf32"] if impl == "cudnn_tf32" else _TOLERANCE[dtype]


def rel_error(got, want: torch.Tensor) -> float:
    got = torch.as_tensor(got).detach().to("cpu", torch.float64)
    want = want.to(torch.float64)
    if tuple(got.shape) != tuple(want.shape):
        return math.inf
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


# ---- inputs -------------------------------------------------------------------


def pool_size(bytes_per_set: int, device: str) -> int:
    """Input sets to rotate so a round does not just reread the caches: enough
    sets to exceed twice the last-level cache (32 MiB L3 here, 50 MiB L2 on an
    H100), at least 2, at most 16."""
    target = (64 if device == "cpu" else 128) * 2**20
    return int(min(16, max(2, math.ceil(target / max(bytes_per_set, 1)))))


def _randn(shape, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def conv_inputs(layer, pass_: str, device: str, dtype: str, seed: int, numpy: bool):
    """One input set (x, w, b, dy) for a layer; grads enabled for fwd_bwd."""
    gen = torch.Generator().manual_seed(seed)
    P, Q = layer.out_hw
    x = _randn((layer.N, layer.C, layer.H, layer.W), gen)
    # Kaiming-like scale keeps outputs O(1) in every dtype.
    fan_in = layer.C // layer.groups * layer.R * layer.S
    w = _randn((layer.K, layer.C // layer.groups, layer.R, layer.S), gen) / math.sqrt(fan_in)
    b = _randn((layer.K,), gen) if layer.bias else None
    dy = _randn((layer.N, layer.K, P, Q), gen)
    ts = (x, w, b, dy)
    if numpy:
        return tuple(None if t is None else t.numpy() for t in ts)
    ts = tuple(None if t is None else t.to(device, getattr(torch, dtype)) for t in ts)
    if pass_ == "fwd_bwd":
        for t in ts[:3]:
            if t is not None:
                t.requires_grad_(True)
    return ts


def pool_inputs(layer, pass_: str, device: str, dtype: str, seed: int, numpy: bool):
    """(x, dy, idx): idx are the forward's argmax indices (for the bwd pass)."""
    gen = torch.Generator().manual_seed(seed)
    P, Q = layer.out_hw
    x = _randn((layer.N, layer.C, layer.H, layer.W), gen)
    dy = _randn((layer.N, layer.C, P, Q), gen)
    _, idx = F.max_pool2d(x, layer.kernel, layer.stride, layer.padding, layer.dilation,
                          layer.ceil_mode, return_indices=True)
    if numpy:
        return x.numpy(), dy.numpy(), idx.numpy()
    x, dy = (t.to(device, getattr(torch, dtype)) for t in (x, dy))
    if pass_ == "fwd_bwd":
        x.requires_grad_(True)
    return x, dy, idx.to(device)


# ---- conv2d -------------------------------------------------------------------


def _grads(y, inputs, dy):
    xs = tuple(t for t in inputs if t is not None)
    return (y.detach(),) + torch.autograd.grad(y, xs, dy)


def conv_fn(layer, pass_: str, impl: str):
    """The callable a row times: fn(x, w, b, dy) -> tuple of results."""
    st, pd, dl, g = list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups
    pad4 = [pd[0], pd[0], pd[1], pd[1]]

    if impl.startswith("convbench:"):
        algo = impl.split(":", 1)[1]
        cb = torch.ops.convbench
        return {
            "fwd": lambda x, w, b, dy: (convbench.conv2d(x, w, b, st, pd, dl, g, algo=algo),),
            "bwd_input": lambda x, w, b, dy: (
                cb.conv2d_backward_input(dy, w, list(x.shape), st, pad4, dl, g, algo),),
            "bwd_weight": lambda x, w, b, dy: (
                cb.conv2d_backward_weight(dy, x, list(w.shape), st, pad4, dl, g, algo),),
            "fwd_bwd": lambda x, w, b, dy: _grads(
                convbench.conv2d(x, w, b, st, pd, dl, g, algo=algo), (x, w, b), dy),
        }[pass_]
    if impl in ("torch", "cudnn", "cudnn_tf32"):
        aten_bwd = torch.ops.aten.convolution_backward
        return {
            "fwd": lambda x, w, b, dy: (F.conv2d(x, w, b, st, pd, dl, g),),
            "bwd_input": lambda x, w, b, dy: (aten_bwd(
                dy, x, w, None, st, pd, dl, False, [0, 0], g, [True, False, False])[0],),
            "bwd_weight": lambda x, w, b, dy: (aten_bwd(
                dy, x, w, None, st, pd, dl, False, [0, 0], g, [False, True, False])[1],),
            "fwd_bwd": lambda x, w, b, dy: _grads(F.conv2d(x, w, b, st, pd, dl, g), (x, w, b), dy),
        }[pass_]
    loops = impl == "numpy_loops"
    fwd = ref.conv2d_loops if loops else ref.conv2d
    bwd_in = ref.conv2d_backward_input_loops if loops else ref.conv2d_backward_input
    bwd_w = ref.conv2d_backward_weight_loops if loops else ref.conv2d_backward_weight
    args = (tuple(st), tuple(pd), tuple(dl), g)

    def fwd_bwd(x, w, b, dy):
        out = (fwd(x, w, b, *args), bwd_in(dy, w, x.shape, *args), bwd_w(dy, x, w.shape, *args))
        return out + ((ref.conv2d_backward_bias(dy),) if b is not None else ())

    return {
        "fwd": lambda x, w, b, dy: (fwd(x, w, b, *args),),
        "bwd_input": lambda x, w, b, dy: (bwd_in(dy, w, x.shape, *args),),
        "bwd_weight": lambda x, w, b, dy: (bwd_w(dy, x, w.shape, *args),),
        "fwd_bwd": fwd_bwd,
    }[pass_]


_ORACLES: dict = {}


def oracle(kind: str, layer, pass_: str, dtype: str, inputs) -> tuple:
    """PyTorch CPU float64 results for input set 0 (the same values in every
    row of a group, so computed once per group)."""
    key = (kind, layer.key, pass_, dtype)
    if key not in _ORACLES:
        if len(_ORACLES) > 64:
            _ORACLES.clear()
        compute = conv_oracle if kind == "conv" else pool_oracle
        _ORACLES[key] = compute(layer, pass_, inputs)
    return _ORACLES[key]


def conv_oracle(layer, pass_: str, inputs) -> tuple:
    x, w, b, dy = (None if t is None else torch.as_tensor(t).detach().cpu().double()
                   for t in inputs)
    if pass_ == "fwd_bwd":
        x, w = x.requires_grad_(), w.requires_grad_()
        b = b.requires_grad_() if b is not None else None
    return tuple(t.detach() for t in conv_fn(layer, pass_, "torch")(x, w, b, dy))


# ---- max_pool2d ---------------------------------------------------------------


def pool_fn(layer, pass_: str, impl: str):
    """fn(x, dy, idx) -> tuple of results."""
    k, s, p, d, c = list(layer.kernel), list(layer.stride), list(layer.padding), \
        list(layer.dilation), layer.ceil_mode
    if impl == "convbench":
        cb = torch.ops.convbench

        def fwd_bwd(x, dy, idx):
            y, i = convbench.max_pool2d(x, k, s, p, d, c, return_indices=True)
            return (y.detach(),) + torch.autograd.grad(y, (x,), dy)

        return {
            "fwd": lambda x, dy, idx: convbench.max_pool2d(x, k, s, p, d, c, return_indices=True),
            "bwd": lambda x, dy, idx: (cb.max_pool2d_backward(dy, idx, list(x.shape), k, s, p, d),),
            "fwd_bwd": fwd_bwd,
        }[pass_]
    if impl in ("torch", "cudnn"):
        def fwd_bwd(x, dy, idx):
            y, i = F.max_pool2d(x, k, s, p, d, c, return_indices=True)
            return (y.detach(),) + torch.autograd.grad(y, (x,), dy)

        return {
            "fwd": lambda x, dy, idx: F.max_pool2d(x, k, s, p, d, c, return_indices=True),
            "bwd": lambda x, dy, idx: (torch.ops.aten.max_pool2d_with_indices_backward(
                dy, x, k, s, p, d, c, idx),),
            "fwd_bwd": fwd_bwd,
        }[pass_]
    loops = impl == "numpy_loops"
    fwd = ref.max_pool2d_loops if loops else ref.max_pool2d
    bwd = ref.max_pool2d_backward_loops if loops else ref.max_pool2d_backward
    args = (tuple(k), tuple(s), tuple(p), tuple(d), c)

    def fwd_bwd_np(x, dy, idx):
        y, i = fwd(x, *args, return_indices=True)
        return y, bwd(dy, i, x.shape)

    return {
        "fwd": lambda x, dy, idx: fwd(x, *args, return_indices=True),
        "bwd": lambda x, dy, idx: (bwd(dy, idx, x.shape),),
        "fwd_bwd": fwd_bwd_np,
    }[pass_]


def pool_oracle(layer, pass_: str, inputs) -> tuple:
    x, dy, idx = (torch.as_tensor(t).detach().cpu() for t in inputs)
    x, dy = x.double(), dy.double()
    if pass_ == "fwd_bwd":
        x.requires_grad_(True)
    return tuple(t.detach() for t in pool_fn(layer, pass_, "torch")(x, dy, idx))


@functools.lru_cache(maxsize=None)
def itemsize(dtype: str) -> int:
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()

