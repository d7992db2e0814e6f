"""Opt-in download (--download) of MNIST and CIFAR-10, verified by MD5 before use.

Never called unless the user asks: the package works offline on the embedded digits.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence, Union

# Mirrors tried in order (torchvision's list): the original site often refuses scripted downloads.
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {  # the checksums torchvision uses for the original files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"


def md5sum(path) -> str:
    h = hashlib.md5()  # noqa: S324 - matching the published checksums, not security
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(urls: Union[str, Sequence[str]], dest, md5: str) -> Path:
    """Download to dest (atomically) unless a file with the right checksum is already there; with
    several urls (mirrors) the next is tried when one fails. A file whose MD5 differs is never
    kept. Raises OSError naming every url tried and the file to place by hand."""
    dest = Path(dest)
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in ([urls] if isinstance(urls, str) else list(urls)):
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
            got = md5sum(tmp)
            if got != md5:
                errors.append(f"{url}: checksum mismatch (md5 {got}, expected {md5})")
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"could not download {dest.name}: " + "; ".join(errors)
                  + f". Place the file (md5 {md5}) at {dest} by hand and rerun.")


def download_mnist(data_dir) -> Path:
    raw = Path(data_dir) / "MNIST" / "raw"
    for name, md5 in MNIST_MD5.items():
        print(f"downloading {name} -> {raw}", flush=True)
        fetch([base + name for base in MNIST_URLS], raw / name, md5)
    return raw


def download_cifar10(data_dir) -> Path:
    root = Path(data_dir)
    print(f"downloading {CIFAR_URL} -> {root}", flush=True)
    archive = fetch(CIFAR_URL, root / "cifar-10-python.tar.gz", CIFAR_MD5)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("cifar-10-batches-py/")
                   and ".." not in Path(m.name).parts and (m.isfile() or m.isdir())]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(root, members=members, **safe)
    return root / "cifar-10-batches-py"
