"""Two networks beyond the homework, from plain torch.nn (torchvision is not
installable here): ResNet-18 in torchvision's layout and a VGG-11 with
BatchNorm, plus the catalogue of their distinct conv layers at the two
configurations the beyond suite times (layers.layers_of's forward hooks).

Importable without pytest (tests/test_bench_beyond.py checks the shapes)."""
from __future__ import annotations

import functools
from typing import Dict, Tuple

import torch
from torch import nn

import layers
import rowinfo

NUM_CLASSES = 1000
# (batch, image size) of the training-step and batch-1 inference rows.
TRAIN = (8, 112)
INFER = (1, 224)
KINDS = {"train": TRAIN, "infer": INFER}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """7x7/2 conv 3->64, BN, ReLU, 3x3/2 max-pool, four stages of two
    BasicBlocks (64, 128, 256, 512; stride 2 and a 1x1/2 downsample conv at
    the start of stages 2-4), global average pool, Linear to the classes."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin = (64, 128, 256, 512), 64
        for i, w in enumerate(widths, 1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, w, stride),
                                                     BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 with BatchNorm: 3x3 pad-1 convs, 2x2 max-pools, then a classifier
    sized for the input (512 x (size/32)^2 -> 4096 -> 4096 -> classes, no
    dropout so the first-output check is deterministic; no adaptive pool)."""

    def __init__(self, image_size: int, num_classes: int = NUM_CLASSES, cfg=VGG11,
                 hidden: int = 4096):
        super().__init__()
        mods, cin = [], 3
        for v in cfg:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*mods)
        side = image_size // 2 ** cfg.count("M")
        self.classifier = nn.Sequential(
            nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


MODELS = ("resnet18", "vgg11")


def build(name: str, image_size: int, seed: int = 0) -> nn.Module:
    """A torch.nn model with seeded weights (the same for every row)."""
    torch.manual_seed(seed)
    if name == "resnet18":
        return ResNet18()
    if name == "vgg11":
        return VGG(image_size)
    raise KeyError(f"unknown beyond model {name!r}; available: {', '.join(MODELS)}")


def full_name(name: str) -> str:
    return f"beyond/{name}"


@functools.lru_cache(maxsize=None)
def model_convs(name: str, batch: int, size: int) -> Tuple[layers.ConvLayer, ...]:
    """Every conv call of one model at (batch, size), in call order."""
    with torch.device("meta"):  # shapes only: no weights allocated
        model = build(name, size)
    found = layers.layers_of(model, (3, size, size), batch, full_name(name), suite="beyond")
    return tuple(e for e in found if isinstance(e, layers.ConvLayer))


@functools.lru_cache(maxsize=None)
def conv_layers(config: Tuple[int, int]) -> Tuple[layers.ConvLayer, ...]:
    """The distinct conv layers of both models at config = (batch, size)."""
    return tuple(layers.merge(c for name in MODELS for c in model_convs(name, *config)))


CONFIGS: Dict[str, Tuple[int, int]] = {"fwd": INFER, "fwd_bwd": TRAIN}


def row_info(kind: str, name: str, impl: str) -> dict:
    """The extra_info of a network row (tests/test_report.py builds rows with it too)."""
    batch, size = KINDS[kind]
    return rowinfo.model(kind, full_name(name), "beyond", impl, "cpu",
                         model_convs(name, batch, size), batch, image_size=size,
                         optimizer="sgd" if kind == "train" else None)
