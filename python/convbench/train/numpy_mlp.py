"""1RT720 Ex 1's point of comparison: the MLP 784-50-50-10 trained from scratch in NumPy
(forward, backward and SGD written out), timed per epoch against the PyTorch run."""
from __future__ import annotations

import time

import numpy as np

from ..data import DataBundle


def _softmax_xent(logits, y):
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y] + 1e-300).mean()
    return loss, p


# The RunConfig backend that trains this NumPy MLP instead of a torch model
# (1RT720 ex1): it trains alone (never interleaved) and on one process.
BACKEND = "numpy_scratch"


def trains_with_numpy(cfg) -> bool:
    return cfg.backend == BACKEND


def train_numpy_mlp(data: DataBundle, widths=(50, 50), epochs=1, lr=0.01, batch_size=128,
                    seed=0, progress=None, key=BACKEND) -> dict:
    rng = np.random.default_rng(seed)
    X = data.train.x.reshape(len(data.train), -1).numpy().astype(np.float64)
    Y = data.train.y.numpy()
    Xt = data.test.x.reshape(len(data.test), -1).numpy().astype(np.float64)
    Yt = data.test.y.numpy()
    sizes = [X.shape[1], *widths, data.num_classes]
    # PyTorch's nn.Linear default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in))) for a fair comparison
    Ws = [rng.uniform(-1, 1, (a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.uniform(-1, 1, b) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(x):
        acts = [x]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        return acts

    def evaluate(x, y):
        logits = forward(x)[-1]
        loss, _ = _softmax_xent(logits, y)
        return loss, 100.0 * float((logits.argmax(1) == y).mean())

    ep = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    epoch_times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(X))
        e_loss = e_corr = 0.0
        for s in range(0, len(X), batch_size):
            i = order[s:s + batch_size]
            acts = forward(X[i])
            loss, p = _softmax_xent(acts[-1], Y[i])
            e_loss += loss * len(i)
            e_corr += float((acts[-1].argmax(1) == Y[i]).sum())
            g = p
            g[np.arange(len(i)), Y[i]] -= 1
            g /= len(i)
            for layer in range(len(Ws) - 1, -1, -1):
                gW, gb = acts[layer].T @ g, g.sum(0)
                if layer:
                    g = (g @ Ws[layer].T) * (acts[layer] > 0)
                Ws[layer] -= lr * gW
                bs[layer] -= lr * gb
            if progress is not None:
                progress(1)
        epoch_times.append(time.perf_counter() - t0)
        ep["train_loss"].append(e_loss / len(X))
        ep["train_acc"].append(100.0 * e_corr / len(X))
        tl, ta = evaluate(Xt, Yt)
        ep["test_loss"].append(float(tl))
        ep["test_acc"].append(ta)
    tl, ta = evaluate(Xt, Yt)
    return {"key": key, "model": "1rt720/mlp (NumPy from scratch)", "backend": BACKEND,
            "tags": {"impl": "numpy"}, "test_acc": ta, "test_loss": float(tl),
            "epoch_times": epoch_times, "epoch_wall": epoch_times,
            "time_per_epoch": min(epoch_times) if epoch_times else None,
            "total_time": sum(epoch_times), "epochs": ep,
            "n_params": int(sum(W.size + b.size for W, b in zip(Ws, bs))),
            "weights": Ws[0].T.tolist(), "weights_shape": list(Ws[0].T.shape)}
