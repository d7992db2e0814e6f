"""MNIST in its IDX files (gzipped or not), found in the layouts torchvision uses."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Where torchvision and common scripts put them, relative to --data-dir.
MNIST_SUBDIRS = ("", "MNIST/raw", "mnist/raw", "MNIST", "mnist")
# Fashion-MNIST ships the same four file names; torchvision's layout and the usual others.
FASHION_SUBDIRS = ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist", "FashionMNIST", "fashion")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Parse one IDX file (magic 0x0000 <dtype> <ndim>, big-endian dims, data); .gz is decompressed."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims)) if dims else 1
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: IDX header says {dims} but the file holds "
                         f"{len(data) - header} data bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_mnist(data_dir, subdirs=MNIST_SUBDIRS) -> Optional[dict]:
    """Paths of the four MNIST files under data_dir (any torchvision layout, .gz or not), or None.
    subdirs=FASHION_SUBDIRS finds Fashion-MNIST."""
    root = Path(data_dir)
    for sub in subdirs:
        found = {}
        for key, base in MNIST_FILES.items():
            for name in (base, base + ".gz"):
                if (root / sub / name).is_file():
                    found[key] = root / sub / name
                    break
        if len(found) == len(MNIST_FILES):
            return found
    return None


def load_mnist(data_dir, subdirs=MNIST_SUBDIRS, what="MNIST"):
    """Returns (train_x uint8 [N,28,28], train_y int64, test_x, test_y) or raises FileNotFoundError."""
    paths = find_mnist(data_dir, subdirs)
    if paths is None:
        names = ", ".join(f"{b}[.gz]" for b in MNIST_FILES.values())
        raise FileNotFoundError(
            f"{what} not found under {data_dir}: expected {names} in one of "
            + ", ".join(repr(str(Path(data_dir) / s)) for s in subdirs)
            + " (or pass --download)")
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{what} {split}: images {x.shape} and labels {y.shape} do not match")
    return (arrays["train_images"].astype(np.uint8), arrays["train_labels"].astype(np.int64),
            arrays["test_images"].astype(np.uint8), arrays["test_labels"].astype(np.int64))
