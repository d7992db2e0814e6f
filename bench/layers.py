"""The layer-shape catalogue: every distinct conv2d and max-pool layer of the
homework networks (../shared/homework-spec.md) at the network's batch size.

The shapes are derived, not typed in: each CNN of ``convbench.models`` is
built with the torch backend and run once on a batch of zeros with forward
hooks on its Conv2d / MaxPool2d modules; a layer's key is its full shape and
arguments, so a shape shared by several networks is benchmarked once and
lists every place it occurs in ``used_by``.

Importable without pytest (tests/test_bench_catalogue.py checks it).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Dict, List, Tuple

import torch

Pair = Tuple[int, int]


def _out_hw(hw, kernel, stride, padding, dilation, ceil_mode=False) -> Pair:
    """Output (height, width) of a sliding window (conv or pool), torch's rule:
    ceil_mode rounds up, but the last window must start inside the input or
    the left padding."""
    def out(n, k, s, p, d):
        span = n + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        return o
    return tuple(out(*a) for a in zip(hw, kernel, stride, padding, dilation))


@dataclasses.dataclass(frozen=True)
class _Layer:
    """A layer's input batch: N maps of C channels, H x W."""
    N: int
    C: int
    H: int
    W: int

    @property
    def key(self) -> tuple:
        """What makes two layers one benchmark: every field but used_by and suite."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)


@dataclasses.dataclass(frozen=True)
class ConvLayer(_Layer):
    K: int
    R: int
    S: int
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    used_by: Tuple[str, ...] = dataclasses.field(default=(), compare=False)
    # homework | synthetic | beyond (see rowinfo.py): decides which means a row is in.
    suite: str = dataclasses.field(default="homework", compare=False)

    @property
    def out_hw(self) -> Pair:
        return _out_hw((self.H, self.W), (self.R, self.S), self.stride, self.padding,
                       self.dilation)

    @property
    def id(self) -> str:
        s = f"N{self.N}-C{self.C}-{self.H}x{self.W}-K{self.K}-{self.R}x{self.S}"
        for tag, v, default in (("s", self.stride, (1, 1)), ("p", self.padding, (0, 0)),
                                ("d", self.dilation, (1, 1))):
            if v != default:
                s += f"-{tag}{v[0]}" if v[0] == v[1] else f"-{tag}{v[0]}x{v[1]}"
        if self.groups != 1:
            s += f"-g{self.groups}"
        if not self.bias:
            s += "-nobias"
        return s

    def macs(self) -> int:
        """Multiply-adds of one pass (forward, grad-input and grad-weight are equal)."""
        P, Q = self.out_hw
        return self.N * self.K * P * Q * (self.C // self.groups) * self.R * self.S

    def flops(self, pass_: str) -> int:
        return 2 * self.macs() * (3 if pass_ == "fwd_bwd" else 1)

    def elements(self) -> Dict[str, int]:
        P, Q = self.out_hw
        return {"x": self.N * self.C * self.H * self.W,
                "w": self.K * (self.C // self.groups) * self.R * self.S,
                "y": self.N * self.K * P * Q}

    def min_bytes(self, pass_: str, itemsize: int) -> int:
        """Bytes a pass must at least read and write once (the roofline's traffic)."""
        e = self.elements()
        one = (e["x"] + e["w"] + e["y"]) * itemsize
        return one * (3 if pass_ == "fwd_bwd" else 1)


@dataclasses.dataclass(frozen=True)
class PoolLayer(_Layer):
    kernel: Pair = (2, 2)
    stride: Pair = (2, 2)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    used_by: Tuple[str, ...] = dataclasses.field(default=(), compare=False)
    suite: str = dataclasses.field(default="homework", compare=False)

    @property
    def out_hw(self) -> Pair:
        return _out_hw((self.H, self.W), self.kernel, self.stride, self.padding, self.dilation,
                       self.ceil_mode)

    @property
    def id(self) -> str:
        s = f"N{self.N}-C{self.C}-{self.H}x{self.W}-k{self.kernel[0]}x{self.kernel[1]}"
        s += f"-s{self.stride[0]}x{self.stride[1]}"
        if self.padding != (0, 0):
            s += f"-p{self.padding[0]}x{self.padding[1]}"
        if self.dilation != (1, 1):
            s += f"-d{self.dilation[0]}x{self.dilation[1]}"
        if self.ceil_mode:
            s += "-ceil"
        return s

    def min_bytes(self, pass_: str, itemsize: int) -> int:
        """Input and output read/written once, plus the int64 indices."""
        P, Q = self.out_hw
        x, y = self.N * self.C * self.H * self.W, self.N * self.C * P * Q
        fwd = (x + y) * itemsize + y * 8
        bwd = (x + y) * itemsize + y * 8
        return {"fwd": fwd, "bwd": bwd, "fwd_bwd": fwd + bwd}[pass_]

    def flops(self, pass_: str) -> int:
        """Comparisons (forward) / additions (backward); reported as bandwidth instead."""
        P, Q = self.out_hw
        n = self.N * self.C * P * Q
        return {"fwd": n * self.kernel[0] * self.kernel[1], "bwd": n}.get(
            pass_, n * (self.kernel[0] * self.kernel[1] + 1))


def _pair(v) -> Pair:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _record(module: torch.nn.Module, x: torch.Tensor, N: int, where: str):
    """The catalogue entry of one hooked layer call, at batch size N."""
    _, C, H, W = x.shape
    if isinstance(module, torch.nn.Conv2d):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise ValueError(f"{where}: padding {module.padding!r}/{module.padding_mode} is not "
                             "catalogued (the homework nets use explicit zero padding)")
        K, _, R, S = module.weight.shape
        return ConvLayer(N, C, H, W, K, R, S, _pair(module.stride), _pair(module.padding),
                         _pair(module.dilation), module.groups, module.bias is not None,
                         used_by=(where,))
    k = _pair(module.kernel_size)
    s = _pair(module.stride if module.stride is not None else module.kernel_size)
    return PoolLayer(N, C, H, W, k, s, _pair(module.padding), _pair(module.dilation),
                     bool(module.ceil_mode), used_by=(where,))


def layers_of_model(name: str) -> List[object]:
    """Conv/pool layers of one homework network, in call order."""
    model, input_shape, batch_size = _build(name)
    return layers_of(model, input_shape, batch_size, name)


def layers_of(model: torch.nn.Module, input_shape, batch_size: int, name: str,
              suite: str = "homework") -> List[object]:
    """Conv/pool layers of any torch model (torch.nn layers), in call order, at
    batch_size; found by running one image of zeros through forward hooks (on
    the model's device: a model built on the meta device costs no memory)."""
    found: List[object] = []
    hooks = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            where = f"{name}.{mod_name}"
            hooks.append(mod.register_forward_pre_hook(
                lambda m, args, where=where: found.append(dataclasses.replace(
                    _record(m, args[0], batch_size, where), suite=suite))))
    was_training = model.training
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found


def _build(name: str):
    """(torch-backend model, input shape (C, H, W), batch size) of a network."""
    from convbench import models

    spec = models.spec(name)
    return models.build(name, backend="torch"), tuple(spec.input_shape), spec.batch_size


def merge(entries) -> list:
    """One entry per distinct shape, its used_by listing every place it occurs."""
    merged: Dict[tuple, object] = {}
    for e in entries:
        if e.key in merged:
            old = merged[e.key]
            merged[e.key] = dataclasses.replace(old, used_by=old.used_by + e.used_by)
        else:
            merged[e.key] = e
    return list(merged.values())


@functools.lru_cache(maxsize=None)
def catalogue() -> Tuple[Tuple[ConvLayer, ...], Tuple[PoolLayer, ...]]:
    """(conv layers, pool layers) of every network, deduplicated, in first-use order."""
    from convbench import models

    entries = [e for name in models.available() for e in layers_of_model(name)]
    convs = merge(e for e in entries if isinstance(e, ConvLayer))
    pools = merge(e for e in entries if isinstance(e, PoolLayer))
    return tuple(convs), tuple(pools)


def conv_layers() -> Tuple[ConvLayer, ...]:
    return catalogue()[0]


def pool_layers() -> Tuple[PoolLayer, ...]:
    return catalogue()[1]


# A tiny shape on which even the plain-loop NumPy reference runs in well
# under a second; also the shape of the per-call overhead benchmarks.
TINY_CONV = ConvLayer(2, 2, 8, 8, 3, 3, 3, used_by=("tiny",), suite="synthetic")
TINY_POOL = PoolLayer(2, 3, 8, 8, used_by=("tiny",), suite="synthetic")
OVERHEAD_CONV = ConvLayer(1, 1, 4, 4, 1, 3, 3, used_by=("overhead",), suite="synthetic")
OVERHEAD_POOL = PoolLayer(1, 1, 4, 4, used_by=("overhead",), suite="synthetic")
