"""The beyond-the-homework networks (bench/beyond_models.py): the standard
layouts (checked by parameter count against torchvision's models) and the
conv-layer catalogue the beyond suite times."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import beyond_models as bm  # noqa: E402
import layers  # noqa: E402


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet18_and_vgg11_bn_have_torchvisions_parameter_counts():
    with torch.device("meta"):
        # torchvision.models.resnet18() / vgg11_bn() at 224x224: 11,689,512 / 132,868,840.
        assert _params(bm.build("resnet18", 224)) == 11_689_512
        assert _params(bm.build("vgg11", 224)) == 132_868_840


def test_resnet50_and_mobilenet_v2_have_torchvisions_parameter_counts():
    with torch.device("meta"):
        # torchvision.models.resnet50() / mobilenet_v2(): 25,557,032 / 3,504,872.
        assert _params(bm.build("resnet50", 224)) == 25_557_032
        assert _params(bm.build("mobilenet_v2", 224)) == 3_504_872


def test_mobilenet_v2_layers():
    convs = bm.model_convs("mobilenet_v2", 1, 224)
    # 52 convs: the stem, 17 blocks (the first without expansion), the last 1x1.
    assert len(convs) == 52
    depthwise = [c for c in convs if c.groups > 1]
    assert len(depthwise) == 17 and all(c.groups == c.C == c.K and c.R == 3 for c in depthwise)
    assert sorted({c.stride for c in depthwise}) == [(1, 1), (2, 2)]
    assert sum(c.macs() for c in convs) / 1e6 == pytest.approx(300, rel=0.03)  # ~300 MMAC


def test_resnet18_stem_pool_is_3x3_stride_2_pad_1():
    with torch.device("meta"):
        found = layers.layers_of(bm.build("resnet18", 224), (3, 224, 224), 1, "r")
    pools = [e for e in found if isinstance(e, layers.PoolLayer)]
    assert [(p.C, p.H, p.kernel, p.stride, p.padding) for p in pools] == [
        (64, 112, (3, 3), (2, 2), (1, 1))]


def test_beyond_catalogue():
    fwd, train = bm.conv_layers(bm.INFER), bm.conv_layers(bm.TRAIN)
    # ResNet-18: 7x7 stem, one 3x3 64->64 shape, and per later stage a strided
    # 3x3, a 1x1/2 downsample and one repeated 3x3: 11 shapes; VGG-11: 7;
    # ResNet-50 and MobileNetV2 48 more (ResNet-50 shares the stem).
    assert len(fwd) == len(train) == 66
    stem = [c for c in fwd if (c.R, c.stride) == (7, (2, 2))]
    assert [(c.N, c.C, c.H, c.K, c.padding, c.bias) for c in stem] == [
        (1, 3, 224, 64, (3, 3), False)]
    (last,) = [c for c in train if (c.C, c.H, c.K, c.R) == (512, 4, 512, 3)]  # ResNet-18's layer4
    assert last.N == 8 and len(last.used_by) == 3 + 2  # (+ ResNet-50's layer4 3x3s)
    for c in fwd + train:
        assert c.suite == "beyond" and c.used_by[0].startswith("beyond/")
    # The homework catalogue does not contain them.
    homework = {c.key for c in layers.conv_layers()}
    assert not homework & {c.key for c in fwd + train}
    # A model's FLOPs count every call of a shared shape: ResNet-18 is 1.8 GMAC at 224,
    # ResNet-50 4.1.
    macs = sum(c.macs() for c in bm.model_convs("resnet18", *bm.INFER))
    assert 1.80e9 < macs < 1.83e9
    assert 4.05e9 < sum(c.macs() for c in bm.model_convs("resnet50", *bm.INFER)) < 4.15e9
