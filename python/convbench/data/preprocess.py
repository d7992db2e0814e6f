"""Array-level preprocessing shared by the data recipes (pure NumPy, uint8 in, float32 out)."""
from __future__ import annotations

import numpy as np

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # EE449 spec
CIFAR_STD = (0.247, 0.243, 0.261)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # torchvision Grayscale (ITU-R 601-2 luma)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W] or [N,C,H,W] -> float32 [N,C,H,W] in [0, 1] (ToTensor)."""
    x = images.astype(np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad [N,C,H,W] symmetrically to size x size (MNIST 28 -> 32 like LeNet)."""
    n, c, h, w = x.shape
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((n, c, size, size), dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=1)
    if channels == 1 and c == 3:
        return grayscale(x)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    if m.shape[1] != x.shape[1]:
        raise ValueError(f"normalize: {m.shape[1]} means for {x.shape[1]} channels")
    return ((x - m) / s).astype(np.float32)


def grayscale(x: np.ndarray) -> np.ndarray:
    """[N,3,H,W] -> [N,1,H,W] with torchvision's weights (applied after normalising, as the reports do)."""
    w = np.asarray(GRAY_WEIGHTS, dtype=np.float32).reshape(1, 3, 1, 1)
    return (x * w).sum(axis=1, keepdims=True).astype(np.float32)


def scale_pm1(x: np.ndarray) -> np.ndarray:
    """[0,1] -> [-1,1] (EE449 2021 edition)."""
    return (x * 2.0 - 1.0).astype(np.float32)


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """Indices (keep, held_out) with round(fraction * count) of every class held out: the EE449
    'equal count per class' validation split. Deterministic for a seed."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` indices with the classes as balanced as possible (for smoke runs)."""
    if limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    order = [idx[i] for i in range(max(len(p) for p in per_class)) for idx in per_class if i < len(idx)]
    return np.sort(np.asarray(order[:limit], dtype=np.int64))


def restrict_classes(x: np.ndarray, y: np.ndarray, classes):
    """Keep only the given labels, relabelled 0..len(classes)-1 in that order."""
    classes = list(classes)
    mask = np.isin(y, classes)
    remap = np.full(int(max(y.max(), max(classes))) + 1, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    return x[mask], remap[y[mask]]
