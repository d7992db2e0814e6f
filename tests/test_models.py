"""Model zoo: parameter counts from the spec, shapes, and agreement between backends."""
import pytest
import torch

import convbench.models as M

# Parameter counts stated in ../shared/homework-spec.md (and the reports).
SPEC_COUNTS = {
    "ee449/mlp_1": 33_130, "ee449/mlp_2": 35_498, "ee449/cnn_3": 11_106, "ee449/cnn_4": 13_522,
    "ee449/cnn_5": 8_346,
    "ee449_color/mlp_1": 98_666, "ee449_color/mlp_2": 101_034, "ee449_color/cnn_3": 11_394,
    "ee449_color/cnn_4": 13_810, "ee449_color/cnn_5": 8_490,
    "ee449_2021/cnn3": 9_741, "ee449_2021/cnn4": 7_253, "ee449_2021/cnn5": 6_061,
    "1rt720/mlp": 42_310, "1rt720/cnn": 21_578,
}


def _has_convbench_nn():
    try:
        import convbench.nn as cbnn
        return hasattr(cbnn, "Conv2d") and hasattr(cbnn, "MaxPool2d")
    except ImportError:
        return False


def _has_reference():
    try:
        from convbench import reference
        return all(hasattr(reference, f) for f in (
            "conv2d", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward_bias",
            "max_pool2d", "max_pool2d_backward"))
    except ImportError:
        return False


needs_convbench = pytest.mark.skipif(not _has_convbench_nn(), reason="convbench.nn not built")
needs_reference = pytest.mark.skipif(not _has_reference(), reason="convbench.reference missing")


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,count", sorted(SPEC_COUNTS.items()))
def test_parameter_counts_match_spec(name, count):
    assert n_params(M.build(name, backend="torch")) == count


def test_colour_edition_is_grayscale_net_with_three_channels():
    for net in ("mlp_1", "mlp_2", "cnn_3", "cnn_4", "cnn_5"):
        a = M.build(f"ee449/{net}", backend="torch", in_channels=3)
        assert n_params(a) == SPEC_COUNTS[f"ee449_color/{net}"]


def test_1rt720_variants_share_the_cnn_parameters_and_deep_nets_add_nine_convs():
    assert n_params(M.build("1rt720/cnn_pool_first", backend="torch")) == 21_578
    deep = M.build("1rt720/deep_residual", backend="torch")
    extra = 9 * (8 * 8 * 9 + 8) / 3 + 9 * (16 * 16 * 9 + 16) / 3 + 9 * (32 * 32 * 9 + 32) / 3
    assert n_params(deep) == 21_578 + extra
    convs = [m for m in deep.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 12
    bns = [m for m in M.build("1rt720/deep_residual_bn", backend="torch").modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 9


def test_spec_metadata():
    names = M.available()
    assert len(names) == len(set(names)) >= 29
    s = M.spec("ee449/cnn_3")
    assert (s.name, s.family, s.input_shape, s.num_classes, s.batch_size) == (
        "ee449/cnn_3", "ee449", (1, 32, 32), 10, 50)
    assert M.spec("ee449_2021/cnn4").num_classes == 5
    assert M.spec("1rt720/cnn").batch_size == 128
    assert M.spec("m124/cnn").input_shape == (3, 32, 32)
    for n in names:
        assert M.spec(n).description


@pytest.mark.parametrize("name", M.available())
def test_forward_shape_torch(name):
    s = M.spec(name)
    y = M.build(name, backend="torch")(torch.randn(3, *s.input_shape))
    assert y.shape == (3, s.num_classes)


@needs_convbench
@pytest.mark.parametrize("name", M.available())
def test_convbench_matches_torch_with_same_weights(name):
    """Same weights on both backends: outputs and gradients agree to float64 rounding."""
    s = M.spec(name)
    torch.manual_seed(0)
    ref = M.build(name, backend="torch").double()
    ours = M.build(name, backend="convbench").double()
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, *s.input_shape, dtype=torch.float64)
    ref.train(), ours.train()
    y_ref, y = ref(x), ours(x)
    assert y.shape == (2, s.num_classes)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9, msg=n)


@needs_convbench
def test_convbench_backend_uses_convbench_layers():
    import convbench.nn as cbnn
    m = M.build("1rt720/cnn", backend="convbench")
    assert any(isinstance(x, cbnn.Conv2d) for x in m.modules())
    assert any(isinstance(x, cbnn.MaxPool2d) for x in m.modules())


@needs_reference
@pytest.mark.parametrize("name", ["1rt720/cnn", "ee449/cnn_3", "ee449_2021/cnn3", "1rt720/deep_residual_bn"])
def test_numpy_backend_matches_torch(name):
    from convbench.models.numpy_layers import NumpyConv2d, NumpyMaxPool2d
    s = M.spec(name)
    torch.manual_seed(1)
    ref = M.build(name, backend="torch").double()
    ours = M.build(name, backend="numpy").double()
    assert any(isinstance(m, NumpyConv2d) for m in ours.modules())
    assert any(isinstance(m, NumpyMaxPool2d) for m in ours.modules())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, *s.input_shape, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y_ref, y = ref(x), ours(x2)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-9, atol=1e-9)
    for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9, msg=n)


def test_activation_replaces_every_activation():
    m = M.build("ee449/cnn_5", backend="torch", activation="sigmoid")
    kinds = {type(x) for x in m.modules()}
    assert torch.nn.Sigmoid in kinds and torch.nn.ReLU not in kinds
    assert sum(isinstance(x, torch.nn.Sigmoid) for x in m.modules()) == 6
    t = M.build("1rt720/cnn_pool_first_tanh", backend="torch")
    assert any(isinstance(x, torch.nn.Tanh) for x in t.modules())


def test_input_size_and_classes_follow_the_data():
    # An EE449 CIFAR CNN on 28x28 MNIST: flatten size derived, not hard-coded.
    m = M.build("ee449/cnn_4", backend="torch", image_size=28, num_classes=5)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    m = M.build("1rt720/cnn", backend="torch", in_channels=3, image_size=32)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="backend"):
        M.build("1rt720/cnn", backend="cudnn")
    with pytest.raises(ValueError, match="activation"):
        M.build("1rt720/cnn", backend="torch", activation="gelu")
    with pytest.raises(KeyError, match="unknown network"):
        M.spec("ee449/cnn_9")
    with pytest.raises(ValueError, match="too small"):
        M.build("ee449/cnn_3", backend="torch", image_size=12)
    with pytest.raises(ValueError, match="num_classes"):
        M.build("ee449/cnn_3", backend="torch", num_classes=0)


def test_first_layer_weight():
    assert tuple(M.build("ee449/cnn_3", backend="torch").first_layer_weight().shape) == (16, 1, 3, 3)
    assert tuple(M.build("ee449/mlp_1", backend="torch").first_layer_weight().shape) == (32, 1024)
