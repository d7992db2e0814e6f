"""CIFAR-10 in its "python version" batches (cifar-10-batches-py/data_batch_1..5, test_batch)."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")


def read_cifar_batch(path):
    """One pickled batch -> (uint8 [N, 3, 32, 32], int64 [N])."""
    with open(path, "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a CIFAR-10 python batch (no dict inside)")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: CIFAR-10 batch without 'data'/'labels'")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape}, {len(labels)}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def find_cifar10(data_dir) -> Optional[Path]:
    root = Path(data_dir)
    for d in (root / CIFAR_DIR, root / "CIFAR10" / CIFAR_DIR, root / "cifar10" / CIFAR_DIR, root):
        if all((d / n).is_file() for n in CIFAR_TRAIN + (CIFAR_TEST,)):
            return d
    return None


def load_cifar10(data_dir):
    """Returns (train_x uint8 [50000,3,32,32], train_y, test_x, test_y) or raises FileNotFoundError."""
    d = find_cifar10(data_dir)
    if d is None:
        raise FileNotFoundError(
            f"CIFAR-10 not found under {data_dir}: expected {CIFAR_DIR}/ with "
            + ", ".join(CIFAR_TRAIN + (CIFAR_TEST,)) + " (the python version; or pass --download)")
    parts = [read_cifar_batch(d / n) for n in CIFAR_TRAIN]
    tx, ty = read_cifar_batch(d / CIFAR_TEST)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), tx, ty)
