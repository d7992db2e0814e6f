"""What every benchmark row records in pytest-benchmark's extra_info: the one
schema that convbench.report reads (tests/test_report*.py build their rows
with these same functions, so the report is tested on what the bench writes).

Fields: kind (conv | pool | train | infer | overhead), layer (layer id or
model name), used_by (where the shape occurs: network.module names, or the
model itself), suite (homework: a shape or net of the homework spec, in the
geometric means; synthetic: the tiny/overhead shapes, shown but kept out of
the means; beyond: ResNet-18/VGG, reported in their own section), pass, impl,
device, dtype, flops, bytes, reference (the impl ratios are taken against)
and max_flop_saving (how much fewer multiplies than direct convolution the
row may do: Winograd F(2x2,3x3) does 2.25x fewer; the report's roofline
check allows that much above the sgemm roof; None: unbounded, not checked,
for cuDNN, whose benchmark mode may pick Winograd or FFT algorithms).

Importable without pytest or torch.
"""
from __future__ import annotations

SUITES = ("homework", "synthetic", "beyond")
REFERENCE_IMPL = {"cpu": "torch", "cuda": "cudnn"}
# F.max_pool2d on CUDA runs ATen's own kernel (cuDNN is not involved): its row is "aten".
POOL_REFERENCE_IMPL = {"cpu": "torch", "cuda": "aten"}
TF32_IMPLS = ("cudnn_tf32",)

# Multiplies of direct 3x3 convolution / those of Winograd F(2x2,3x3).
WINOGRAD_SAVING = 2.25


def winograd_eligible(layer) -> bool:
    """Winograd F(2x2,3x3) takes only 3x3, stride 1, dilation 1 layers."""
    return ((layer.R, layer.S) == (3, 3) and tuple(layer.stride) == (1, 1)
            and tuple(layer.dilation) == (1, 1))


def may_use_winograd(impl: str) -> bool:
    """Rows whose kernel is or may be convbench's Winograd (auto's choice is not recorded)."""
    return impl.startswith("convbench") and impl.split(":", 1)[-1] in (
        "winograd", "auto", "autotuned", "convbench")


def _common(kind, layer, used_by, suite, pass_, impl, device, dtype, flops, bytes_,
            max_flop_saving=1.0, **extra) -> dict:
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    info = {**extra, "kind": kind, "layer": layer, "used_by": list(used_by), "suite": suite,
            "pass": pass_, "impl": impl, "device": device, "dtype": dtype, "flops": flops,
            "bytes": bytes_, "reference": REFERENCE_IMPL[device],
            "max_flop_saving": max_flop_saving}
    if impl in TF32_IMPLS:
        info["math"] = "tf32"
    return info


def _saving(impl: str, layers) -> "float | None":
    if impl.startswith("cudnn"):
        return None
    if may_use_winograd(impl) and any(winograd_eligible(c) for c in layers):
        return WINOGRAD_SAVING
    return 1.0


def conv(layer, pass_: str, impl: str, device: str, dtype: str, itemsize: int, **extra) -> dict:
    saving = _saving(impl, (layer,))
    return _common("conv", layer.id, layer.used_by, layer.suite, pass_, impl, device, dtype,
                   layer.flops(pass_), layer.min_bytes(pass_, itemsize), saving, **extra)


def pool(layer, pass_: str, impl: str, device: str, dtype: str, itemsize: int) -> dict:
    info = _common("pool", layer.id, layer.used_by, layer.suite, pass_, impl, device, dtype,
                   layer.flops(pass_), layer.min_bytes(pass_, itemsize))
    info["reference"] = POOL_REFERENCE_IMPL[device]
    return info


def model(kind: str, name: str, suite: str, impl: str, device: str, conv_layers,
          batch_size: int, **extra) -> dict:
    """A whole-network row: kind 'train' (pass 'step') or 'infer' (pass 'infer');
    flops: those of its convolutions only (the rest is the same PyTorch code in
    every row), so its GFLOP/s is a lower bound of the work done."""
    pass_ = {"train": "step", "infer": "infer"}[kind]
    conv_pass = "fwd_bwd" if kind == "train" else "fwd"
    flops = sum(c.flops(conv_pass) for c in conv_layers)
    return _common(kind, name, (name,), suite, pass_, impl, device, "float32", flops, None,
                   _saving(impl, conv_layers), model=name, batch_size=batch_size, **extra)


def overhead(op: str, layer_id: str, mode: str, impl: str, device: str) -> dict:
    info = _common("overhead", f"{op} {layer_id}", ("overhead",), "synthetic", mode, impl,
                   device, "float32", None, None)
    info["reference"] = "torch"
    return info
