"""EE449 part 1 (report 001, optional, NumPy only): activation functions and their derivatives, and
a 2-4-1 MLP trained from scratch on a noisy XOR set with sigmoid, tanh and ReLU units.

ee449-part1 runs it as report 001 did: 1,000 training and 100 held-out points (noise 0.4), the
same activation on the hidden and output units, squared error, gradient steps on the batch's
summed error with lr 0.001 for 10,000 full-batch epochs (ReLU: per-sample SGD for 100 epochs).
ee449-part1-bce keeps the earlier set-up (sigmoid output, cross-entropy) as a variant."""
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


# ---- report 001's set-up ---------------------------------------------------------------------

R_TRAIN, R_VAL, R_NOISE, R_LR, R_EPOCHS, R_RELU_EPOCHS = 1000, 100, 0.4, 0.001, 10_000, 100


def xor_dataset(rng, n, noise=R_NOISE):
    """n points around the corners (+-1, +-1), label 1 where the corner's coordinates differ in
    sign (report 001: "1 when the inputs have opposite signs"); labels follow the corner."""
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64)
    which = rng.integers(0, 4, n)
    x = corners[which] + rng.normal(0, noise, (n, 2))
    y = (corners[which, 0] != corners[which, 1]).astype(np.float64)
    return x, y


def mse_forward_backward(p, x, y, act):
    """Squared error with the activation on the output unit too, as report 001's MLP; gradients
    of the error summed over the batch (its update: W += lr * X^T delta, no 1/N)."""
    f, df = ACTS[act]
    z1 = x @ p["W1"] + p["b1"]
    h = f(z1)
    z2 = (h @ p["W2"] + p["b2"])[:, 0]
    out = f(z2)
    g2 = (2 * (out - y) * df(z2))[:, None]
    g1 = (g2 @ p["W2"].T) * df(z1)
    grads = {"W2": h.T @ g2, "b2": g2.sum(0), "W1": x.T @ g1, "b1": g1.sum(0)}
    return float(np.mean((out - y) ** 2)), out, grads


def _accuracy(p, x, y, act):
    return 100.0 * float(np.mean((mse_forward_backward(p, x, y, act)[1] >= 0.5) == (y > 0.5)))


def train_report(act, x, y, xv, yv, rng, epochs, record_every):
    """Full-batch steps (sigmoid, tanh) or one step per sample (ReLU), as the report; records
    training loss and training/held-out accuracy every record_every epochs."""
    p = init(rng)
    curves = {"epoch": [], "loss": [], "train_acc": [], "test_acc": []}
    for e in range(epochs):
        if act == "relu":
            for i in range(len(y)):
                g = mse_forward_backward(p, x[i:i + 1], y[i:i + 1], act)[2]
                for k in p:
                    p[k] -= R_LR * g[k]
        else:
            g = mse_forward_backward(p, x, y, act)[2]
            for k in p:
                p[k] -= R_LR * g[k]
        if (e + 1) % record_every == 0 or e + 1 == epochs:
            curves["epoch"].append(e + 1)
            curves["loss"].append(mse_forward_backward(p, x, y, act)[0])
            curves["train_acc"].append(_accuracy(p, x, y, act))
            curves["test_acc"].append(_accuracy(p, xv, yv, act))
    return p, curves


def run(ctx) -> dict:
    o = ctx.options
    x, y = xor_dataset(np.random.default_rng(o.seed), R_TRAIN)
    xv, yv = xor_dataset(np.random.default_rng(o.seed + 1), R_VAL)
    full = o.epochs or (R_EPOCHS // 10 if o.quick else R_EPOCHS)
    out, boundaries, curves = {}, [], []
    g = np.linspace(-2.2, 2.2, 121)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    data = (f"synthetic noisy XOR: {R_TRAIN} training / {R_VAL} held-out points around (+-1, +-1), "
            f"noise std {R_NOISE}")
    with fig.footnote(f"DATA: {data}"):
        for act in ACTS:
            # ReLU as the report: per-sample SGD, 100 epochs for the full-batch runs' 10,000
            epochs = max(1, full * R_RELU_EPOCHS // R_EPOCHS) if act == "relu" else full
            p, c = train_report(act, x, y, xv, yv, np.random.default_rng(o.seed), epochs,
                                record_every=1 if act == "relu" else max(1, epochs // 100))
            out[act] = {"epochs": epochs, "update": "per-sample SGD" if act == "relu" else "full batch",
                        "loss_curve": c["loss"], "train_acc_curve": c["train_acc"],
                        "test_acc_curve": c["test_acc"], "curve_epochs": c["epoch"],
                        "final_loss": c["loss"][-1], "train_acc": c["train_acc"][-1],
                        "test_acc": c["test_acc"][-1]}
            curves.append((act, c))
            boundaries.append((f"{act}, held-out accuracy {c['test_acc'][-1]:.1f}%",
                               mse_forward_backward(p, grid, np.zeros(len(grid)), act)[1].reshape(gx.shape)))
        _activations_figure(ctx.out_dir)
        fig.decision_boundaries(boundaries, gx, gy, xv, yv, ctx.out_dir / "xor_decision_boundaries.png",
                                "2-4-1 MLP (NumPy, squared error) on noisy XOR: held-out points")
        fig.panels([(f"{a}: loss", [("training MSE", c["epoch"], c["loss"])]) for a, c in curves]
                   + [(f"{a}: accuracy", [("training", c["epoch"], c["train_acc"]),
                                          ("held-out", c["epoch"], c["test_acc"])]) for a, c in curves],
                   ctx.out_dir / "xor_loss_accuracy.png", "noisy XOR: loss and accuracy per activation",
                   xlabel="epoch", ylabels=["MSE"] * 3 + ["accuracy (%)"] * 3, ncols=3)
    return {"n_train": R_TRAIN, "n_test": R_VAL, "noise": R_NOISE, "lr": R_LR, "hidden": HIDDEN,
            "loss": "squared error, activation on the output too (report 001)", **out,
            "data": [data]}


def _activations_figure(out_dir):
    """Sigmoid, tanh and ReLU with their derivatives (both part 1 set-ups draw it)."""
    z = np.linspace(-5, 5, 201)
    fig.lines([(f"{a}", z, ACTS[a][0](z)) for a in ACTS]
              + [(f"{a}' (derivative)", z, ACTS[a][1](z)) for a in ACTS],
              out_dir / "activations.png", "activation functions and their derivatives",
              xlabel="z", ylabel="value")


register(Experiment(
    "ee449-part1", "EE449 part 1 (report 001, optional): activations and a NumPy MLP on XOR",
    "As report 001: plots sigmoid, tanh and ReLU with their derivatives, then trains a 2-4-1 "
    "MLP written from scratch in NumPy with each activation on hidden and output units, squared "
    f"error, on {R_TRAIN} noisy XOR points (noise {R_NOISE}): lr {R_LR} on the summed gradient, "
    f"{R_EPOCHS:,} full-batch epochs (ReLU: per-sample SGD, {R_RELU_EPOCHS} epochs; --epochs N "
    "sets the full-batch count and ReLU gets N/100; --quick a tenth); loss and accuracy curves, "
    f"accuracy on {R_VAL} held-out points, decision boundaries. No torch, no convolution.",
    custom=run))


def run_bce(ctx) -> dict:
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
    _activations_figure(ctx.out_dir)
    fig.decision_boundaries(boundaries, gx, gy, x, y, ctx.out_dir / "xor_decision_boundaries.png",
                            f"2-{HIDDEN}-1 MLP (NumPy, from scratch) on noisy XOR, {epochs} epochs")
    fig.lines([(a, list(range(0, 10 * len(out[a]["loss_curve"]), 10)), out[a]["loss_curve"])
               for a in ACTS], ctx.out_dir / "xor_loss.png", "noisy XOR: training loss",
              xlabel="epoch", ylabel="binary cross-entropy")
    return {"n_points": len(y), "epochs": epochs, "lr": LR, "hidden": HIDDEN, **out}


register(Experiment(
    "ee449-part1-bce", "EE449 part 1, variant: sigmoid output and cross-entropy on XOR",
    "Not report 001's set-up (see ee449-part1): the same 2-4-1 NumPy MLP with a sigmoid output "
    f"and binary cross-entropy, full-batch gradient descent, lr {LR}, {EPOCHS} epochs (--quick "
    f"500), on {4 * PER_CORNER} XOR points around the unit square's corners; kept because with "
    "this loss ReLU hidden units train as reliably as sigmoid and tanh, which the report's MSE "
    "with a ReLU output does not. No torch, no convolution.", custom=run_bce))
