"""Loaders on tiny files written here in the real formats, preprocessing and splits."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from convbench.data import batches, load, load_cifar10, load_embedded_mnist, load_mnist, read_idx
from convbench.data import preprocess as P


def write_idx(path, arr, gz):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    arr = np.asarray(arr)
    head = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_mnist(root, n_train=40, n_test=20, gz=True, layout="MNIST/raw"):
    rng = np.random.default_rng(0)
    d = root / layout
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(d / (name + (".gz" if gz else "")), a, gz)
    return arrays


def make_cifar(root, per_batch=20):
    rng = np.random.default_rng(1)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    data = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(i % 10) for i in range(per_batch)]
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": x, b"labels": y, b"batch_label": name.encode()}, fh)
        data[name] = (x, y)
    return data


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["MNIST/raw", ""])
def test_mnist_idx_roundtrip(tmp_path, gz, layout):
    arrays = make_mnist(tmp_path, gz=gz, layout=layout)
    tx, ty, sx, sy = load_mnist(tmp_path)
    np.testing.assert_array_equal(tx, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ty, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(sx, arrays["t10k-images-idx3-ubyte"])
    assert sy.dtype == np.int64 and len(sy) == 20


def test_read_idx_big_endian_int32_and_bad_files(tmp_path):
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "a.idx", a, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", a, gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="data bytes"):
        read_idx(tmp_path / "short")


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load("cifar10_gray", data_dir=tmp_path)


def test_cifar_python_batches(tmp_path):
    data = make_cifar(tmp_path)
    tx, ty, sx, sy = load_cifar10(tmp_path)
    assert tx.shape == (100, 3, 32, 32) and sx.shape == (20, 3, 32, 32)
    # row layout: 1024 red, 1024 green, 1024 blue, each row-major 32x32
    x0 = data["data_batch_1"][0][0]
    np.testing.assert_array_equal(tx[0, 1].ravel(), x0[1024:2048])
    assert list(ty[:10]) == list(range(10))


def test_ee449_cifar_preprocessing(tmp_path):
    make_cifar(tmp_path, per_batch=100)
    raw = load_cifar10(tmp_path)[0]
    colour = load("cifar10_color", data_dir=tmp_path)
    gray = load("cifar10_gray", data_dir=tmp_path)
    assert colour.note is None and colour.input_shape == (3, 32, 32) and gray.input_shape == (1, 32, 32)
    # 10% validation, equal count per class (500 images, 50 per class -> 5 per class held out)
    assert len(colour.val) == 50 and len(colour.train) == 450
    assert torch.bincount(colour.val.y, minlength=10).tolist() == [5] * 10
    # independent recomputation of normalise-then-grayscale for one held-in image
    keep, _ = P.stratified_split(np.concatenate([load_cifar10(tmp_path)[1]]), 0.1, seed=0)
    img = raw[keep[0]].astype(np.float64) / 255
    mean, std = np.array(P.CIFAR_MEAN)[:, None, None], np.array(P.CIFAR_STD)[:, None, None]
    norm = (img - mean) / std
    np.testing.assert_allclose(colour.train.x[0].numpy(), norm, rtol=1e-5, atol=1e-5)
    g = 0.299 * norm[0] + 0.587 * norm[1] + 0.114 * norm[2]
    np.testing.assert_allclose(gray.train.x[0, 0].numpy(), g, rtol=1e-5, atol=1e-5)


def test_mnist5_restricts_and_scales(tmp_path):
    make_mnist(tmp_path, n_train=200, n_test=50)
    b = load("mnist5", data_dir=tmp_path)
    assert b.num_classes == 5 and int(b.train.y.max()) == 4 and int(b.test.y.max()) == 4
    assert len(b.train) + len(b.val) == 100 and len(b.val) == 10
    assert float(b.train.x.min()) >= -1.0 and float(b.train.x.max()) <= 1.0
    assert float(b.train.x.min()) < -0.99  # random bytes include 0 -> -1


def test_stratified_split_deterministic_and_disjoint():
    y = np.repeat(np.arange(10), 30)
    a, b = P.stratified_split(y, 0.1, seed=3)
    a2, b2 = P.stratified_split(y, 0.1, seed=3)
    np.testing.assert_array_equal(b, b2)
    assert not set(a) & set(b) and len(a) + len(b) == 300
    assert np.bincount(y[b]).tolist() == [3] * 10


def test_embedded_mnist_is_real_digits():
    x, y = load_embedded_mnist()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10
    # real digits: dark border, bright strokes in the middle
    assert x[:, :2, :].mean() < 1.0 and x[:, 10:18, 10:18].mean() > 60


def test_embedded_stand_in_for_cifar_says_so():
    b = load("cifar10", limit=40)  # [0,1], no per-channel normalisation
    assert b.note and "stand in for CIFAR-10" in b.note
    assert b.input_shape == (3, 32, 32)
    assert len(b.train) == 40 and torch.equal(b.train.x[:, 0], b.train.x[:, 1])
    assert float(b.train.x[:, :, :2].abs().max()) == 0.0  # the 2-pixel zero padding
    assert load("cifar10_gray", limit=40).input_shape == (1, 32, 32)


def test_batches_cover_everything_and_repeat_with_seed():
    b = load("mnist", limit=30)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ys1 = torch.cat([y for _, y in batches(b.train, 8, True, g1)])
    ys2 = torch.cat([y for _, y in batches(b.train, 8, True, g2)])
    assert torch.equal(ys1, ys2) and sorted(ys1.tolist()) == sorted(b.train.y.tolist())


# ---- --download: checksums verified, mirrors, clear errors (file:// URLs, no network) ----------

def _md5(path):
    import hashlib
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_verifies_checksum_and_falls_back_to_the_next_mirror(tmp_path):
    from convbench.data import download as DL
    src = tmp_path / "src" / "f.bin"
    src.parent.mkdir()
    src.write_bytes(b"real bytes" * 100)
    good = _md5(src)
    dest = tmp_path / "out" / "f.bin"
    # a wrong checksum is refused and nothing (not even a .part file) is left behind
    with pytest.raises(OSError, match="checksum mismatch") as e:
        DL.fetch(src.as_uri(), dest, "0" * 32)
    assert str(dest) in str(e.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    # first mirror missing, second serves the file
    missing = (tmp_path / "nowhere" / "f.bin").as_uri()
    assert DL.fetch([missing, src.as_uri()], dest, good) == dest
    assert dest.read_bytes() == src.read_bytes()
    # already there with the right checksum: not fetched again (the url is unreachable)
    assert DL.fetch(missing, dest, good) == dest
    # there but corrupt: replaced
    dest.write_bytes(b"corrupt")
    DL.fetch(src.as_uri(), dest, good)
    assert _md5(dest) == good


def test_download_mnist_and_cifar_from_a_mirror(tmp_path, monkeypatch):
    import tarfile
    from convbench.data import download as DL
    from convbench.data import datasets
    mirror = tmp_path / "mirror"
    arrays = make_mnist(mirror, n_train=30, n_test=10, gz=True, layout="")
    monkeypatch.setattr(DL, "MNIST_URLS", ((tmp_path / "down").as_uri() + "/", mirror.as_uri() + "/"))
    monkeypatch.setattr(DL, "MNIST_MD5", {p.name: _md5(p) for p in mirror.glob("*.gz")})
    make_cifar(mirror / "c", per_batch=10)
    archive = mirror / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(mirror / "c" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(DL, "CIFAR_URL", archive.as_uri())
    monkeypatch.setattr(DL, "CIFAR_MD5", _md5(archive))
    datasets._files.cache_clear()
    data = tmp_path / "data"
    b = load("mnist", data_dir=data, download=True)
    assert (data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    np.testing.assert_array_equal(b.train.y.numpy(), arrays["train-labels-idx1-ubyte"])
    c = load("cifar10", data_dir=data, download=True)
    assert len(c.train) == 50 and len(c.test) == 10 and c.note is None
    datasets._files.cache_clear()


def test_cli_download_failure_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from convbench.data import download as DL
    from convbench.data import datasets
    from convbench.train import cli
    monkeypatch.setattr(DL, "MNIST_URLS", ((tmp_path / "offline").as_uri() + "/",))
    datasets._files.cache_clear()
    rc = cli.main(["1rt720-ex2", "--download", "--data-dir", str(tmp_path / "d"), "--out",
                   str(tmp_path / "o"), "--no-progress", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "could not download train-images-idx3-ubyte.gz" in err and "by hand" in err
