"""Networks beyond the homework, from plain torch.nn (torchvision is not a
dependency): ResNet-18, ResNet-50 and MobileNetV2 in torchvision's layouts
and a VGG-11 with BatchNorm, plus the catalogue of their distinct conv layers at the two
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


def _downsample(cin: int, cout: int, stride: int):
    """A residual's 1x1 projection where its shape changes (else None)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """ResNet-18's block: two 3x3 convs (the first strided)."""
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50's block (torchvision's v1.5: the stride on the 3x3): 1x1 to
    width, 3x3, 1x1 to 4x width."""
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, 4 * width, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 conv 3->64, BN, ReLU, 3x3/2 max-pool,
    four stages of blocks (widths 64, 128, 256, 512; stride 2 at the start
    of stages 2-4), global average pool, Linear to the classes. ResNet-18:
    BasicBlocks (2, 2, 2, 2); ResNet-50: Bottlenecks (3, 4, 6, 3)."""

    def __init__(self, block, counts, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), counts), 1):
            mods = []
            for j in range(n):
                mods.append(block(cin, width, 2 if i > 1 and j == 0 else 1))
                cin = width * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*mods))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (unless t = 1), depthwise 3x3
    (stride 1 or 2), linear 1x1 projection; a residual where shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        mods = [] if expand == 1 else [_conv_bn_relu6(cin, hidden, 1)]
        mods += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                 nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*mods)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's mobilenet_v2 (width 1.0): a 3x3/2 stem to 32 channels,
    17 inverted residuals (t, c, n, s below), a 1x1 to 1280, global average
    pool, Linear. No dropout before the Linear (torchvision has p = 0.2), so
    a training step's first output is deterministic for the checks."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        mods, cin = [_conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                mods.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        mods.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Linear(1280, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


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


MODELS = ("resnet18", "vgg11", "resnet50", "mobilenet_v2")


def build(name: str, image_size: int, seed: int = 0) -> nn.Module:
    """A torch.nn model with seeded weights (the same for every row)."""
    torch.manual_seed(seed)
    if name == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2))
    if name == "vgg11":
        return VGG(image_size)
    if name == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3))
    if name == "mobilenet_v2":
        return MobileNetV2()
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
    """The distinct conv layers of the models at config = (batch, size)."""
    return tuple(layers.merge(c for name in MODELS for c in model_convs(name, *config)))


CONFIGS: Dict[str, Tuple[int, int]] = {"fwd": INFER, "fwd_bwd": TRAIN}


def row_info(kind: str, name: str, impl: str) -> dict:
    """The extra_info of a network row (tests/test_report.py builds rows with it too)."""
    batch, size = KINDS[kind]
    return rowinfo.model(kind, full_name(name), "beyond", impl, "cpu",
                         model_convs(name, batch, size), batch, image_size=size,
                         optimizer="sgd" if kind == "train" else None)
