"""EE449 part 2: the plain-loop NumPy convolution my_conv2d on MNIST digits, checked against torch.

Inputs as the reports had them when the user has the assignment's files (kernel.npy and
samples_<digit>.npy under --data-dir); otherwise five test images of digit 7 (report 001's digit)
and seeded random kernels, and the results and figures say so.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import figures as fig
from .base import Experiment, register

N_SAMPLES, N_KERNELS, K, DIGIT = 5, 8, 4, 7
FILE_DIRS = ("", "ee449", "data")  # under --data-dir


def find_assignment_files(data_dir):
    """(kernel.npy, samples_<d>.npy) under data_dir, samples_7 first (report 001; report 000
    used samples_1), or None."""
    if data_dir is None:
        return None
    for sub in FILE_DIRS:
        d = Path(data_dir).expanduser() / sub
        samples = sorted(d.glob("samples_*.npy"), key=lambda p: (p.stem != f"samples_{DIGIT}", p.name))
        if (d / "kernel.npy").is_file() and samples:
            return d / "kernel.npy", samples[0]
    return None


def _as_nchw(a, what):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:  # [N, H, W] -> one channel
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"{what}: expected a 4-d array [N, C, H, W], got shape {a.shape}")
    return a


def _inputs(ctx):
    """(x, kernel, labels, provenance dict)."""
    data_dir = getattr(ctx.data, "kw", {}).get("data_dir")
    files = find_assignment_files(data_dir)
    if files is not None:
        kernel_path, samples_path = files
        x = _as_nchw(np.load(samples_path), samples_path.name)
        kernel = _as_nchw(np.load(kernel_path), kernel_path.name)
        digit = samples_path.stem.split("_", 1)[1]
        return x, kernel, [digit] * len(x), {
            "samples_source": f"the assignment's {samples_path}",
            "kernel_source": f"the assignment's {kernel_path}", "kernels_random": False}
    data = ctx.data("mnist")
    # five test images of one digit, as the reports' samples_<digit>.npy held
    idx = [int(i) for i in torch.nonzero(data.test.y == DIGIT).flatten()[:N_SAMPLES]]
    x = data.test.x[idx].double().numpy()
    kernel = np.random.default_rng(ctx.options.seed).standard_normal((N_KERNELS, 1, K, K))
    where = f" under {data_dir}" if data_dir else " (no --data-dir)"
    return x, kernel, [str(DIGIT)] * len(idx), {
        "samples_source": f"{len(idx)} test images of digit {DIGIT} from {data.describe()} "
                          f"(the assignment's samples_{DIGIT}.npy not found{where})",
        "kernel_source": f"RANDOM: {N_KERNELS} seeded N(0, 1) {K}x{K} kernels (seed "
                         f"{ctx.options.seed}); the assignment's kernel.npy was not found{where}",
        "kernels_random": True}


def run(ctx) -> dict:
    try:
        from convbench.reference import my_conv2d
    except ImportError as exc:
        raise RuntimeError(f"ee449-part2 needs convbench.reference.my_conv2d ({exc})") from exc
    x, kernel, labels, source = _inputs(ctx)
    if x.shape[1] != kernel.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} channels, kernels expect {kernel.shape[1]}")
    t0 = time.perf_counter()
    out = np.asarray(my_conv2d(x, kernel))
    elapsed = time.perf_counter() - t0
    expect = F.conv2d(torch.from_numpy(x), torch.from_numpy(kernel)).numpy()
    if out.shape != expect.shape:
        raise RuntimeError(f"my_conv2d returned shape {out.shape}, torch gives {expect.shape}")
    diff = float(np.abs(out - expect).max())
    kind = "random kernels" if source["kernels_random"] else "the assignment's kernels"
    with fig.footnote(f"DATA: samples: {source['samples_source']}\nkernels: {source['kernel_source']}"):
        fig.image_grid(out, ctx.out_dir / "conv_output_grid.png",
                       f"my_conv2d output ({kind}): rows = samples, columns = kernels",
                       row_labels=[f"digit {d}" for d in labels],
                       col_labels=[f"kernel {k}" for k in range(len(kernel))])
        fig.image_grid(kernel[:, 0][None], ctx.out_dir / "conv_kernels.png",
                       f"the {len(kernel)} {kernel.shape[2]}x{kernel.shape[3]} kernels ({kind})",
                       cmap="viridis")
    return {"input_shape": list(x.shape), "kernel_shape": list(kernel.shape),
            "output_shape": list(out.shape), "max_abs_diff_vs_torch": diff,
            "agrees_with_torch": diff <= 1e-10, "my_conv2d_seconds": elapsed,
            "labels": labels, **source,
            "data": [f"samples: {source['samples_source']}", f"kernels: {source['kernel_source']}"]}


register(Experiment(
    "ee449-part2", "EE449 part 2: NumPy convolution",
    "Applies convbench.reference.my_conv2d (plain loops, stride 1, no padding, no bias) to the "
    "assignment's samples_<digit>.npy with its kernel.npy when --data-dir holds them (report 000 "
    f"used samples_1, report 001 samples_7); otherwise to {N_SAMPLES} test images of digit "
    f"{DIGIT} (report 001's digit) with {N_KERNELS} seeded random {K}x{K} kernels, said in the "
    "results and on the figures. Checks it against torch.nn.functional.conv2d and draws the "
    "output grid (rows = samples, columns = kernels).", custom=run))
