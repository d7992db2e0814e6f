"""EE449 part 1 (report 001, optional, NumPy only): activation functions and their derivatives, and
a 2-4-1 MLP trained from scratch on a noisy XOR set with sigmoid, tanh and ReLU hidden units."""
from __future__ import annotations

import numpy as np

from .. import figures as fig
from .base import Experiment, register

ACTS = {
    # name: (f, f') with f' written in terms of the pre-activation z
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
}
HIDDEN, LR, EPOCHS, PER_CORNER, NOISE = 4, 0.5, 4000, 50, 0.15


def noisy_xor(rng, per_corner=PER_CORNER, noise=NOISE):
    """Points scattered around the four corners of the unit square, label = x1 XOR x2."""
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    x = np.repeat(corners, per_corner, axis=0) + rng.normal(0, noise, (4 * per_corner, 2))
    y = np.repeat([0.0, 1.0, 1.0, 0.0], per_corner)
    return x, y


def init(rng, hidden=HIDDEN):
    return {"W1": rng.normal(0, 1, (2, hidden)), "b1": np.zeros(hidden),
            "W2": rng.normal(0, 1, (hidden, 1)), "b2": np.zeros(1)}


def forward_backward(p, x, y, act):
    """Mean binary cross-entropy of the sigmoid output and its gradients (backprop written out)."""
    f, df = ACTS[act]
    z1 = x @ p["W1"] + p["b1"]
    h = f(z1)
    z2 = (h @ p["W2"] + p["b2"])[:, 0]
    out = 1 / (1 + np.exp(-z2))
    eps = 1e-12
    loss = -np.mean(y * np.log(out + eps) + (1 - y) * np.log(1 - out + eps))
    g2 = (out - y)[:, None] / len(y)  # d loss / d z2 for sigmoid + cross-entropy
    g1 = (g2 @ p["W2"].T) * df(z1)
    grads = {"W2": h.T @ g2, "b2": g2.sum(0), "W1": x.T @ g1, "b1": g1.sum(0)}
    return loss, out, grads


def train(act, x, y, rng, lr=LR, epochs=EPOCHS):
    p = init(rng)
    losses = []
    for _ in range(epochs):  # full-batch gradient descent
        loss, _, g = forward_backward(p, x, y, act)
        losses.append(float(loss))
        for k in p:
            p[k] -= lr * g[k]
    return p, losses


def predict(p, x, act):
    return forward_backward(p, x, np.zeros(len(x)), act)[1]


def run(ctx) -> dict:
    rng = np.random.default_rng(ctx.options.seed)
    x, y = noisy_xor(rng)
    epochs = ctx.options.epochs or (500 if ctx.options.quick else EPOCHS)
    out, boundaries = {}, []
    g = np.linspace(-0.6, 1.6, 121)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    for act in ACTS:
        p, losses = train(act, x, y, np.random.default_rng(ctx.options.seed), epochs=epochs)
        acc = 100.0 * float(((predict(p, x, act) > 0.5) == (y > 0.5)).mean())
        out[act] = {"loss_curve": losses[::10], "final_loss": losses[-1], "train_acc": acc}
        boundaries.append((f"{act} hidden units, accuracy {acc:.1f}%",
                           predict(p, grid, act).reshape(gx.shape)))
    z = np.linspace(-5, 5, 201)
    fig.lines([(f"{a}", z, ACTS[a][0](z)) for a in ACTS]
              + [(f"{a}' (derivative)", z, ACTS[a][1](z)) for a in ACTS],
              ctx.out_dir / "activations.png", "activation functions and their derivatives",
              xlabel="z", ylabel="value")
    fig.decision_boundaries(boundaries, gx, gy, x, y, ctx.out_dir / "xor_decision_boundaries.png",
                            f"2-{HIDDEN}-1 MLP (NumPy, from scratch) on noisy XOR, {epochs} epochs")
    fig.lines([(a, list(range(0, 10 * len(out[a]["loss_curve"]), 10)), out[a]["loss_curve"])
               for a in ACTS], ctx.out_dir / "xor_loss.png", "noisy XOR: training loss",
              xlabel="epoch", ylabel="binary cross-entropy")
    return {"n_points": len(y), "epochs": epochs, "lr": LR, "hidden": HIDDEN, **out}


register(Experiment(
    "ee449-part1", "EE449 part 1 (report 001, optional): activations and a NumPy MLP on XOR",
    "Plots sigmoid, tanh and ReLU with their derivatives, then trains a 2-4-1 MLP written from "
    f"scratch in NumPy (sigmoid output, cross-entropy, full-batch gradient descent, lr {LR}, "
    f"{EPOCHS} epochs; --quick 500) on {4 * PER_CORNER} noisy XOR points with each hidden "
    "activation, and draws the decision boundaries. No torch, no convolution.", custom=run))
