"""The benchmark layer catalogue (bench/layers.py) is derived from the model
zoo: check it against shapes worked out by hand from the homework spec."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import layers  # noqa: E402


def _find(entries, **fields):
    return [e for e in entries if all(getattr(e, k) == v for k, v in fields.items())]


def test_catalogue_has_the_ee449_cnn_3_first_layer_at_batch_50():
    convs = layers.conv_layers()
    # EE449 cnn_3 (grayscale): Conv-3x3x16 on 1x32x32, stride 1, no padding.
    hit = _find(convs, N=50, C=1, H=32, W=32, K=16, R=3, S=3, padding=(0, 0), stride=(1, 1))
    assert len(hit) == 1
    assert "ee449/cnn_3.features.0" in hit[0].used_by
    assert hit[0].out_hw == (30, 30)
    assert hit[0].flops("fwd") == 2 * 50 * 16 * 30 * 30 * 1 * 9


def test_catalogue_follows_the_spec_through_the_network():
    convs, pools = layers.catalogue()
    # cnn_3: 30x30 -> Conv-5x5x8 -> 26x26 -> pool -> 13x13 -> Conv-7x7x16 -> 7x7 -> pool.
    assert _find(convs, N=50, C=16, H=30, W=30, K=8, R=5)
    assert _find(pools, N=50, C=8, H=26, W=26, kernel=(2, 2), stride=(2, 2))
    assert _find(convs, N=50, C=8, H=13, W=13, K=16, R=7)
    # 1RT720 CNN at batch 128, padding 1: 1x28x28 -> 8, pool, 16 at 14x14, pool, 32 at 7x7.
    assert _find(convs, N=128, C=1, H=28, K=8, padding=(1, 1))
    assert _find(convs, N=128, C=16, H=7, K=32, padding=(1, 1))


def test_catalogue_is_deduplicated_and_records_every_use():
    convs, pools = layers.catalogue()
    assert convs and pools
    for entries in (convs, pools):
        keys = [e.key for e in entries]
        assert len(keys) == len(set(keys))
    # The 1-channel 28x28 first conv is shared by the three 2021-edition CNNs.
    (first,) = _find(convs, N=50, C=1, H=28, W=28, K=16, R=3)
    assert {"ee449_2021/cnn3.features.0", "ee449_2021/cnn4.features.0",
            "ee449_2021/cnn5.features.0"} <= set(first.used_by)


@pytest.mark.parametrize("layer", [layers.TINY_CONV, layers.OVERHEAD_CONV])
def test_conv_layer_sizes(layer):
    P, Q = layer.out_hw
    e = layer.elements()
    assert e["y"] == layer.N * layer.K * P * Q
    assert layer.min_bytes("fwd_bwd", 4) == 3 * layer.min_bytes("fwd", 4)


def test_training_suite_times_the_seven_nets_of_issue_9():
    import train_nets
    from convbench import models

    assert set(train_nets.MODELS) == {"ee449/cnn_3", "ee449/cnn_4", "ee449/cnn_5",
                                      "ee449_2021/cnn4", "1rt720/cnn", "m124/cnn",
                                      "m124/cnn_64_128"}
    assert set(train_nets.MODELS) <= set(models.available())
    info = train_nets.row_info("m124/cnn_64_128", "convbench", "cpu")
    # A homework row that names its model: in the means, under the CPU training target.
    assert (info["suite"], info["used_by"], info["pass"]) == ("homework", ["m124/cnn_64_128"],
                                                             "step")
    assert info["flops"] > 0 and info["batch_size"] == 64
