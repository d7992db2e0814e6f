"""Swap convbench's layers into an existing model."""
from __future__ import annotations

import torch

from .._algos import check_algo_name
from ..ops import OPS

# Only exact torch types are swapped: a user subclass may override forward,
# and replacing it would silently change what the model computes.
_SWAPS = {op.replaces: op.layer for op in OPS.values()}
_WITH_ALGO = tuple(op.layer for op in OPS.values() if op.takes_algo)


def _swap(module: torch.nn.Module, algo: str) -> torch.nn.Module:
    target = _SWAPS.get(type(module))
    if target is None:
        return module
    new = target.__new__(target)
    # Same parameters, buffers and hooks (not copies): weights, device, dtype
    # and any optimizer already holding the parameters stay valid.
    new.__dict__.update(module.__dict__)
    if target in _WITH_ALGO:
        new.algo = algo
    return new


def convert(model: torch.nn.Module, algo: str = "auto") -> torch.nn.Module:
    """Replaces every torch.nn layer an op of convbench's replaces
    (torch.nn.Conv2d, torch.nn.MaxPool2d) in ``model``
    (nested modules, Sequential, ModuleList, ModuleDict, custom classes) by
    convbench's, in place, sharing the same Parameter objects. Returns the
    model (or the new layer, if ``model`` itself is one). Layers already
    converted get ``algo`` updated."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"convert expects a torch.nn.Module, got {type(model).__name__}")
    check_algo_name(algo)
    if isinstance(model, _WITH_ALGO):
        model.algo = algo
    root = _swap(model, algo)
    for parent in root.modules():
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if isinstance(child, _WITH_ALGO):
                child.algo = algo
            new = _swap(child, algo)
            if new is not child:
                parent._modules[name] = new
    return root
