"""EE449 part 2: the plain-loop NumPy convolution my_conv2d on MNIST digits, checked against torch."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import figures as fig
from .base import Experiment, register

N_SAMPLES, N_KERNELS, K = 5, 8, 4


def run(ctx) -> dict:
    try:
        from convbench.reference import my_conv2d
    except ImportError as exc:
        raise RuntimeError(f"ee449-part2 needs convbench.reference.my_conv2d ({exc})") from exc
    data = ctx.data("mnist")
    # one test digit of each of the first N_SAMPLES classes, as float64 [N, 1, 28, 28] in [0, 1]
    idx = [int(torch.nonzero(data.test.y == c)[0]) for c in range(N_SAMPLES)]
    x = data.test.x[idx].double().numpy()
    # The report's kernel file is not public: eight seeded random 4x4 kernels stand in for it.
    kernel = np.random.default_rng(ctx.options.seed).standard_normal((N_KERNELS, 1, K, K))
    t0 = time.perf_counter()
    out = np.asarray(my_conv2d(x, kernel))
    elapsed = time.perf_counter() - t0
    expect = F.conv2d(torch.from_numpy(x), torch.from_numpy(kernel)).numpy()
    if out.shape != expect.shape:
        raise RuntimeError(f"my_conv2d returned shape {out.shape}, torch gives {expect.shape}")
    diff = float(np.abs(out - expect).max())
    fig.image_grid(out, ctx.out_dir / "conv_output_grid.png",
                   "my_conv2d output: rows = samples, columns = kernels",
                   row_labels=[f"digit {data.test.y[i].item()}" for i in idx],
                   col_labels=[f"kernel {k}" for k in range(N_KERNELS)])
    fig.image_grid(kernel[:, 0][None], ctx.out_dir / "conv_kernels.png", "the eight 4x4 kernels",
                   cmap="viridis")
    return {"input_shape": list(x.shape), "kernel_shape": list(kernel.shape),
            "output_shape": list(out.shape), "max_abs_diff_vs_torch": diff,
            "agrees_with_torch": diff <= 1e-10, "my_conv2d_seconds": elapsed,
            "labels": [int(data.test.y[i]) for i in idx]}


register(Experiment(
    "ee449-part2", "EE449 part 2: NumPy convolution",
    "Applies convbench.reference.my_conv2d (plain loops, stride 1, no padding, no bias) to five "
    "MNIST digits with eight 4x4 kernels (seeded random: the report's kernel file is not public), "
    "checks it against torch.nn.functional.conv2d, and draws the output grid (rows = samples, "
    "columns = kernels).", custom=run))
