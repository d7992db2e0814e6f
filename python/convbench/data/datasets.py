"""Data recipes: which files, which preprocessing, which splits, for each homework.

    load("mnist" | "mnist5" | "cifar10_gray" | "cifar10_color" | "cifar10", data_dir=None,
         download=False, seed=0, limit=None) -> DataBundle

Sources, in order: the files under data_dir (an explicit data_dir that lacks them is an error
naming the expected files, unless download=True fetches them); without data_dir, the embedded
5,000 real MNIST digits, which also stand in (padded to 32x32, channels replicated, with a printed
note) for CIFAR-10 when no CIFAR files are given.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from . import preprocess as P
from .cifar import CIFAR_CLASSES, find_cifar10, load_cifar10
from .download import download_cifar10, download_mnist
from .embedded import EMBEDDED_NAME, load_embedded_mnist
from .mnist import FASHION_CLASSES, FASHION_SUBDIRS, find_mnist, load_mnist

RECIPES = {
    # name: (base data set, description)
    "mnist": ("mnist", "MNIST 1x28x28 in [0,1], train/test (1RT720)"),
    "mnist5": ("mnist", "5 classes 1x28x28 in [-1,1], 10% stratified validation (EE449 2021): "
                        "Fashion-MNIST classes 0-4 (clothing, as the report) when --data-dir has "
                        "them, else MNIST digits 0-4"),
    "cifar10_gray": ("cifar10", "CIFAR-10 normalised then grayscale 1x32x32, 10% stratified validation (EE449, report 000)"),
    "cifar10_color": ("cifar10", "CIFAR-10 normalised 3x32x32, 10% stratified validation (EE449, report 001)"),
    # EE449 part 4 of reports 000 and 001 trained on all 50,000 training images (no validation)
    "cifar10_gray_full": ("cifar10", "as cifar10_gray, all training images, no validation split (EE449 part 4, report 000)"),
    "cifar10_color_full": ("cifar10", "as cifar10_color, all training images, no validation split (EE449 part 4, report 001)"),
    "cifar10": ("cifar10", "CIFAR-10 3x32x32 in [0,1], train/test (M124)"),
}
VAL_FRACTION = 0.1
WITH_VAL = ("mnist5", "cifar10_gray", "cifar10_color")  # recipes that hold out a validation split
EMBEDDED_TEST_FRACTION = 0.2  # 4,000 train / 1,000 test, 100 test digits per class


@dataclass
class Split:
    x: torch.Tensor  # float32 [N, C, H, W]
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    recipe: str
    source: str
    train: Split
    val: Optional[Split]
    test: Split
    num_classes: int
    class_names: List[str]
    note: Optional[str] = None  # set when a stand-in replaces the real data set

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    def describe(self) -> str:
        val = f"/{len(self.val)} val" if self.val is not None else ""
        return (f"{self.recipe}: {self.source}, {len(self.train)} train{val}/{len(self.test)} test, "
                f"input {'x'.join(map(str, self.input_shape))}, {self.num_classes} classes")


@functools.lru_cache(maxsize=4)
def _embedded():
    x, y = load_embedded_mnist()
    keep, test = P.stratified_split(y, EMBEDDED_TEST_FRACTION, seed=0)
    return x[keep], y[keep], x[test], y[test]


@functools.lru_cache(maxsize=4)
def _files(base: str, data_dir: str, download: bool):
    if base == "fashion":  # never downloaded: used only when the user has it
        return load_mnist(data_dir, FASHION_SUBDIRS, "Fashion-MNIST")
    if base == "mnist":
        if download and find_mnist(data_dir) is None:
            download_mnist(data_dir)
        return load_mnist(data_dir)
    if download and find_cifar10(data_dir) is None:
        download_cifar10(data_dir)
    return load_cifar10(data_dir)


def _raw(base: str, data_dir, download: bool):
    """(train_x, train_y, test_x, test_y, source, stand_in) as uint8 arrays."""
    if data_dir is None and download:
        data_dir = "data"
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser())
        tx, ty, vx, vy = _files(base, data_dir, download)
        name = {"fashion": "Fashion-MNIST"}.get(base, base.upper())
        return tx, ty, vx, vy, f"{name} files under {data_dir}", False
    tx, ty, vx, vy = _embedded()
    return (tx, ty, vx, vy, f"embedded {EMBEDDED_NAME}: 5,000 of MNIST's 70,000 digits",
            base == "cifar10")


def _base(recipe: str, data_dir) -> str:
    """The 2021 edition's 5 clothing classes are not public: Fashion-MNIST is the closer stand-in
    when the user has it, digits otherwise."""
    base = RECIPES[recipe][0]
    if recipe == "mnist5" and data_dir is not None and find_mnist(
            Path(data_dir).expanduser(), FASHION_SUBDIRS) is not None:
        return "fashion"
    return base


def load(recipe: str, data_dir=None, download: bool = False, seed: int = 0,
         limit: Optional[int] = None) -> DataBundle:
    if recipe not in RECIPES:
        raise ValueError(f"unknown data recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    base = _base(recipe, data_dir)
    tx, ty, sx, sy, source, stand_in = _raw(base, data_dir, download)
    classes = ([str(i) for i in range(10)] if base == "mnist" or stand_in else
               list(FASHION_CLASSES) if base == "fashion" else list(CIFAR_CLASSES))
    note = None

    if recipe == "mnist5":  # the report's 5 classes are not public: 5 of MNIST or Fashion-MNIST
        tx, ty = P.restrict_classes(tx, ty, range(5))
        sx, sy = P.restrict_classes(sx, sy, range(5))
        classes = classes[:5]
        which = "digits 0-4" if base == "mnist" else f"classes 0-4 ({', '.join(classes)})"
        source += f", {which} standing in for the report's 5 classes"

    def prep(images):
        x = P.to_float(images)
        if stand_in:  # MNIST digits shaped like CIFAR-10: 32x32, 3 channels
            x = P.to_channels(P.pad_to(x, 32), 3)
        if recipe.startswith(("cifar10_gray", "cifar10_color")):
            x = P.normalize(x, P.CIFAR_MEAN, P.CIFAR_STD)
            if recipe.startswith("cifar10_gray"):
                x = P.grayscale(x)
        elif recipe == "mnist5":
            x = P.scale_pm1(x)
        return x

    if stand_in:
        note = ("NOTE: no CIFAR-10 files given (--data-dir); the embedded MNIST digits, padded to "
                "32x32 with 3 channels, stand in for CIFAR-10. Accuracies are not CIFAR-10 results.")
        source += " standing in for CIFAR-10"

    val = None
    if recipe in WITH_VAL:
        keep, held = P.stratified_split(ty, VAL_FRACTION, seed)
        vx_, vy_ = tx[held], ty[held]
        tx, ty = tx[keep], ty[keep]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        small = max(limit // 4, len(classes))
        i = P.stratified_subset(ty, limit, seed)
        tx, ty = tx[i], ty[i]
        j = P.stratified_subset(sy, small, seed)
        sx, sy = sx[j], sy[j]
        if recipe in WITH_VAL:
            k = P.stratified_subset(vy_, small, seed)
            vx_, vy_ = vx_[k], vy_[k]
    if recipe in WITH_VAL:
        val = Split(torch.from_numpy(prep(vx_)), torch.from_numpy(vy_))

    return DataBundle(recipe, source, Split(torch.from_numpy(prep(tx)), torch.from_numpy(ty)), val,
                      Split(torch.from_numpy(prep(sx)), torch.from_numpy(sy)), len(classes), classes, note)


def batches(split: Split, batch_size: int, shuffle: bool = False,
            generator: Optional[torch.Generator] = None):
    """Yield (x, y) mini-batches; shuffled with `generator` (seeded runs repeat exactly)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for s in range(0, n, batch_size):
        i = order[s:s + batch_size]
        yield split.x[i], split.y[i]
