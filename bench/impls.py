"""What each benchmark row runs: the implementations of one conv/pool pass
on one layer shape, their inputs, and an independent check of their output.

Implementation names (the `impl` of a row, used by convbench.report):
  convbench:<algo>  convbench.conv2d with that algo (grads through autograd)
  convbench:autotuned  convbench:auto inside convbench.backends.flags(autotune=True)
  torch             PyTorch on CPU (oneDNN / its native kernels)
  cudnn             PyTorch on CUDA, cudnn.benchmark on, TF32 off (the fp32 peer)
  cudnn_tf32        the same with TF32 allowed (a faster, less exact peer; its
                    rows are marked math="tf32" and kept off the fp32 roof)
  aten              PyTorch's own CUDA max-pool kernel (ATen's; cuDNN has no
                    part in F.max_pool2d on CUDA), the CUDA pool peer
  numpy             convbench.reference vectorised (NumPy, float64 accumulation)
  numpy_loops       convbench.reference plain loops (tiny shapes only)
Every row's first result is compared with PyTorch in float64 on the same
inputs, so a fast wrong kernel fails its benchmark instead of winning it.

The separate grad passes (conv bwd_input / bwd_weight, pool bwd) of the
convbench and PyTorch rows are timed the way users get them: the forward
runs once per input set outside the timing with only the input (or only the
weight) requiring grad, and the row times torch.autograd.grad of that output
(retain_graph=True), so both sides pay the same autograd-engine cost.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F

import convbench
import rowinfo
from convbench import reference as ref

CONV_PASSES = ("fwd", "bwd_input", "bwd_weight", "fwd_bwd")
POOL_PASSES = ("fwd", "bwd", "fwd_bwd")
DTYPES = {"cpu": ("float32",), "cuda": ("float32", "float16", "bfloat16")}
# conv2d also in bfloat16 on the CPU (what CPU autocast runs): auto and torch only.
CONV_DTYPES = {"cpu": ("float32", "bfloat16"), "cuda": DTYPES["cuda"]}
REFERENCE_IMPL = rowinfo.REFERENCE_IMPL
AUTOTUNED = "convbench:autotuned"

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
    return algo != "winograd" or rowinfo.winograd_eligible(layer)


def _convbench_rows(algos) -> list:
    rows = [f"convbench:{a}" for a in algos]
    return rows[:1] + [AUTOTUNED] + rows[1:]  # auto, autotuned, then each algorithm


def conv_impls(device: str, dtype: str, layer, tiny: bool = False) -> list:
    if device == "cpu" and dtype != "float32":  # (NumPy has no bfloat16)
        return ["convbench:auto", "torch"]
    if device == "cpu":
        algos = [a for a in convbench_algos("cpu") if algo_applies(a, layer)]
        rows = _convbench_rows(algos) + ["torch", "numpy"]
        return rows + (["numpy_loops"] if tiny else [])
    algos = convbench_algos("cuda") if convbench.has_cuda() else ("auto",)
    rows = _convbench_rows(algos) + ["cudnn"]
    return rows + (["cudnn_tf32"] if dtype == "float32" else [])


def algo_of(impl: str) -> str:
    """The convbench algo a convbench:<x> row passes: autotuned runs auto."""
    return "auto" if impl == AUTOTUNED else impl.split(":", 1)[1]


def pool_impls(device: str, tiny: bool = False) -> list:
    if device == "cpu":
        return ["convbench", "torch", "numpy"] + (["numpy_loops"] if tiny else [])
    return ["convbench", rowinfo.POOL_REFERENCE_IMPL["cuda"]]  # ATen's kernel, not cuDNN


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
    """convbench's autotuner on for the autotuned rows (its first call, the
    untimed warm-up, tunes); cuDNN autotuning on for every CUDA row; TF32
    only for cudnn_tf32."""
    if impl == AUTOTUNED:
        import convbench.backends  # the row exists to measure it: no fallback

        with convbench.backends.flags(autotune=True), _cuda_flags(impl, device):
            yield
        return
    with _cuda_flags(impl, device):
        yield


@contextlib.contextmanager
def _cuda_flags(impl: str, device: str):
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


# The cache an input pool has to overflow so that a round does not just reread
# it: the CPU's last-level cache (the 32 MiB L3 of the machines the CPU results
# come from; not measured) and the GPU's L2 as the driver reports it (50 MiB on
# an H100). A pool is sized by bytes to twice that cache, between 2 and
# MAX_SETS sets: the CPU cap of 16 sets keeps the set-up of the slow CPU rows
# bounded, so CPU layers under 4 MiB per set are timed partly from cache; the
# CUDA cap of 256 sets lets every homework layer overflow the L2 (only the
# synthetic tiny shapes stay cache-resident). Each row records which
# (pool_info: pool_bytes, cache_bytes, pool_over_2x_cache).
CPU_LLC_BYTES = 32 * 2**20
CUDA_L2_FALLBACK_BYTES = 50 * 2**20
MAX_SETS = {"cpu": 16, "cuda": 256}


def cache_bytes(device: str) -> int:
    if device != "cuda":
        return CPU_LLC_BYTES
    try:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return int(getattr(props, "L2_cache_size", 0)) or CUDA_L2_FALLBACK_BYTES
    except (RuntimeError, AssertionError):  # no usable GPU: only collection runs here
        return CUDA_L2_FALLBACK_BYTES


def pool_size(bytes_per_set: int, device: str, cache: "int | None" = None) -> int:
    """Input sets to rotate: enough to exceed twice the cache, at least 2, at
    most MAX_SETS[device]."""
    cache = cache_bytes(device) if cache is None else cache
    want = math.ceil(2 * cache / max(bytes_per_set, 1))
    return int(min(MAX_SETS[device], max(2, want)))


def pool_info(bytes_per_set: int, sets: int, device: str, cache: "int | None" = None) -> dict:
    """What a row records about its input pool (bench/README.md)."""
    cache = cache_bytes(device) if cache is None else cache
    total = sets * bytes_per_set
    return {"pool_sets": sets, "pool_bytes": total, "cache_bytes": cache,
            "pool_over_2x_cache": total >= 2 * cache}


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


def _identity(*args):
    return args


def _autograd_grad(y, wrt, dy):
    return torch.autograd.grad(y, (wrt,), dy, retain_graph=True)


def _conv_grad_row(forward, wrt: int):
    """A separate grad pass through autograd: prepare() runs the forward once
    per input set (untimed) with only input (wrt=0) or weight (wrt=1)
    requiring grad; the timed call is the backward alone."""
    def prepare(x, w, b, dy):
        x = x.detach().requires_grad_(wrt == 0)
        w = w.detach().requires_grad_(wrt == 1)
        y = forward(x, w, None if b is None else b.detach())
        return y, (x, w)[wrt], dy

    return prepare, _autograd_grad


def conv_row(layer, pass_: str, impl: str):
    """(prepare, fn) of a row: prepare(x, w, b, dy) runs once per input set,
    untimed, and gives fn's arguments; fn(*args) is timed and returns a tuple
    of results (the oracle's order)."""
    st, pd, dl, g = list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups

    if impl.startswith("convbench:") or impl in ("torch", "cudnn", "cudnn_tf32"):
        if impl.startswith("convbench:"):
            algo = algo_of(impl)

            def forward(x, w, b):
                return convbench.conv2d(x, w, b, st, pd, dl, g, algo=algo)
        else:
            def forward(x, w, b):
                return F.conv2d(x, w, b, st, pd, dl, g)
        if pass_ in ("bwd_input", "bwd_weight"):
            return _conv_grad_row(forward, 0 if pass_ == "bwd_input" else 1)
        if pass_ == "fwd":
            return _identity, lambda x, w, b, dy: (forward(x, w, b),)
        return _identity, lambda x, w, b, dy: _grads(forward(x, w, b), (x, w, b), dy)
    return _identity, _numpy_conv_fn(layer, pass_, impl)


def _numpy_conv_fn(layer, pass_: str, impl: str):
    loops = impl == "numpy_loops"
    fwd = ref.conv2d_loops if loops else ref.conv2d
    bwd_in = ref.conv2d_backward_input_loops if loops else ref.conv2d_backward_input
    bwd_w = ref.conv2d_backward_weight_loops if loops else ref.conv2d_backward_weight
    args = (tuple(layer.stride), tuple(layer.padding), tuple(layer.dilation), layer.groups)

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
    """The float64 answer from ATen's ops called directly (not any row's path)."""
    x, w, b, dy = (None if t is None else torch.as_tensor(t).detach().cpu().double()
                   for t in inputs)
    st, pd, dl, g = list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups
    if pass_ == "fwd":
        return (F.conv2d(x, w, b, st, pd, dl, g),)
    if pass_ in ("bwd_input", "bwd_weight"):
        mask = [pass_ == "bwd_input", pass_ == "bwd_weight", False]
        out = torch.ops.aten.convolution_backward(dy, x, w, None, st, pd, dl, False, [0, 0], g,
                                                  mask)
        return (out[0] if mask[0] else out[1],)
    x, w = x.requires_grad_(), w.requires_grad_()
    b = b.requires_grad_() if b is not None else None
    return tuple(t.detach() for t in _grads(F.conv2d(x, w, b, st, pd, dl, g), (x, w, b), dy))


# ---- max_pool2d ---------------------------------------------------------------


def pool_row(layer, pass_: str, impl: str):
    """(prepare, fn) as for conv_row; prepare(x, dy, idx) runs once per input set."""
    k, s, p, d, c = list(layer.kernel), list(layer.stride), list(layer.padding), \
        list(layer.dilation), layer.ceil_mode
    if impl in ("convbench", "torch", "aten"):
        pool = convbench.max_pool2d if impl == "convbench" else F.max_pool2d

        def forward(x):
            return pool(x, k, s, p, d, c, return_indices=True)

        if pass_ == "bwd":
            def prepare(x, dy, idx):
                x = x.detach().requires_grad_(True)
                return forward(x)[0], x, dy

            return prepare, _autograd_grad
        if pass_ == "fwd":
            return _identity, lambda x, dy, idx: forward(x)

        def fwd_bwd(x, dy, idx):
            y, i = forward(x)
            return (y.detach(),) + torch.autograd.grad(y, (x,), dy)

        return _identity, fwd_bwd
    loops = impl == "numpy_loops"
    fwd = ref.max_pool2d_loops if loops else ref.max_pool2d
    bwd = ref.max_pool2d_backward_loops if loops else ref.max_pool2d_backward
    args = (tuple(k), tuple(s), tuple(p), tuple(d), c)

    def fwd_bwd_np(x, dy, idx):
        y, i = fwd(x, *args, return_indices=True)
        return y, bwd(dy, i, x.shape)

    return _identity, {
        "fwd": lambda x, dy, idx: fwd(x, *args, return_indices=True),
        "bwd": lambda x, dy, idx: (bwd(dy, idx, x.shape),),
        "fwd_bwd": fwd_bwd_np,
    }[pass_]


def pool_oracle(layer, pass_: str, inputs) -> tuple:
    """The float64 answer from ATen's ops called directly."""
    x, dy, idx = (torch.as_tensor(t).detach().cpu() for t in inputs)
    x, dy = x.double(), dy.double()
    k, s, p, d, c = list(layer.kernel), list(layer.stride), list(layer.padding), \
        list(layer.dilation), layer.ceil_mode
    if pass_ == "bwd":
        return (torch.ops.aten.max_pool2d_with_indices_backward(dy, x, k, s, p, d, c, idx),)
    if pass_ == "fwd":
        return F.max_pool2d(x, k, s, p, d, c, return_indices=True)
    x.requires_grad_(True)
    y, _ = F.max_pool2d(x, k, s, p, d, c, return_indices=True)
    return (y.detach(),) + torch.autograd.grad(y, (x,), dy)


@functools.lru_cache(maxsize=None)
def itemsize(dtype: str) -> int:
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()

