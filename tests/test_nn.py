"""convbench.nn layers and convert(): same parameters and state_dict as
torch.nn's, the same outputs and gradients, and training that follows
torch's step for step."""
import copy

import pytest
import torch
import torch.nn.functional as F

import convbench
from _helpers import assert_close


class SmallCNN(torch.nn.Module):
    def __init__(self, conv=torch.nn.Conv2d, pool=torch.nn.MaxPool2d):
        super().__init__()
        self.features = torch.nn.Sequential(
            conv(1, 8, 3, padding=1), torch.nn.ReLU(), pool(2),
            conv(8, 16, 3, padding="same", bias=False), torch.nn.Tanh(), pool(2, ceil_mode=True),
        )
        self.head = torch.nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class Block(torch.nn.Module):
    """A custom class holding layers in attributes, a ModuleList and a ModuleDict."""

    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1, groups=2, padding_mode="reflect")
        self.branches = torch.nn.ModuleList(
            [torch.nn.Conv2d(c, c, 1), torch.nn.Conv2d(c, c, (3, 1), padding=(1, 0), dilation=1)])
        self.pools = torch.nn.ModuleDict({"down": torch.nn.MaxPool2d(3, 2, 1)})

    def forward(self, x):
        y = torch.relu(self.conv(x)) + x
        y = sum(b(y) for b in self.branches)
        return self.pools["down"](y)


class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 5, stride=2, padding=2)
        self.blocks = torch.nn.Sequential(Block(4), torch.nn.Sequential(Block(4)))
        self.fc = torch.nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).flatten(1))


def _count(model, cls):
    return sum(type(m) is cls for m in model.modules())


def _outputs_and_grads(model, x):
    x = x.clone().requires_grad_()
    out = model(x)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
    return out, x.grad, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("make, shape", [(SmallCNN, (5, 1, 16, 16)), (Nested, (3, 3, 16, 16))])
def test_convert_matches_original(make, shape):
    torch.manual_seed(1)
    original = make().double()
    converted = convbench.nn.convert(copy.deepcopy(original))
    assert _count(converted, torch.nn.Conv2d) == 0 and _count(converted, torch.nn.MaxPool2d) == 0
    assert _count(converted, convbench.nn.Conv2d) == _count(original, torch.nn.Conv2d)
    assert _count(converted, convbench.nn.MaxPool2d) == _count(original, torch.nn.MaxPool2d)
    x = torch.randn(*shape, dtype=torch.float64)
    ref_out, ref_gx, ref_gp = _outputs_and_grads(original, x)
    out, gx, gp = _outputs_and_grads(converted, x)
    assert_close(out, ref_out, torch.float64, "output")
    assert_close(gx, ref_gx, torch.float64, "input grad")
    assert gp.keys() == ref_gp.keys()
    for name in gp:
        assert_close(gp[name], ref_gp[name], torch.float64, name)


def test_convert_keeps_the_same_parameters_dtype_and_algo():
    model = SmallCNN().to(torch.float64)
    params = [id(p) for p in model.parameters()]
    converted = convbench.nn.convert(model, algo="direct")
    assert converted is model
    assert [id(p) for p in converted.parameters()] == params
    assert all(p.dtype == torch.float64 for p in converted.parameters())
    convs = [m for m in converted.modules() if isinstance(m, convbench.nn.Conv2d)]
    assert convs and all(c.algo == "direct" for c in convs)
    # Converting again only updates the algorithm.
    convbench.nn.convert(converted, algo="im2col")
    assert all(c.algo == "im2col" for c in convs)


def test_converting_a_converted_layer_again_takes_the_new_algorithm():
    layer = convbench.nn.convert(torch.nn.Conv2d(2, 3, 3), algo="direct")
    assert convbench.nn.convert(layer, algo="im2col") is layer and layer.algo == "im2col"
    model = torch.nn.Sequential(layer, torch.nn.Sequential(convbench.nn.Conv2d(3, 3, 1)))
    convbench.nn.convert(model, algo="winograd")
    assert [m.algo for m in model.modules() if isinstance(m, convbench.nn.Conv2d)] \
        == ["winograd", "winograd"]
    with pytest.raises(ValueError, match="algo"):
        convbench.nn.convert(layer, algo="fastest")
    assert layer.algo == "winograd"  # a bad name changes nothing


def test_convert_a_bare_layer_and_leaves_subclasses_alone():
    layer = convbench.nn.convert(torch.nn.Conv2d(2, 3, 3))
    assert type(layer) is convbench.nn.Conv2d

    class MyConv(torch.nn.Conv2d):  # may override forward: not ours to replace
        pass

    model = torch.nn.Sequential(MyConv(2, 3, 3))
    assert type(convbench.nn.convert(model)[0]) is MyConv


def test_state_dict_round_trips_both_ways():
    torch.manual_seed(2)
    theirs = SmallCNN()
    ours = SmallCNN(convbench.nn.Conv2d, convbench.nn.MaxPool2d)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for k, v in ours.state_dict().items():
        assert v.shape == theirs.state_dict()[k].shape, k
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 1, 16, 16)
    assert_close(ours(x), theirs(x), torch.float32, "torch -> ours")
    back = SmallCNN()
    back.load_state_dict(ours.state_dict())
    assert_close(back(x), theirs(x), torch.float32, "ours -> torch")


def test_layer_arguments_and_init_match_torch():
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1),
                  padding=(1, 0), dilation=(1, 2), groups=2, bias=True, padding_mode="circular")
    torch.manual_seed(3)
    theirs = torch.nn.Conv2d(**kwargs)
    torch.manual_seed(3)
    ours = convbench.nn.Conv2d(**kwargs, algo="im2col")
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    assert isinstance(ours, torch.nn.Conv2d) and "algo='im2col'" in repr(ours)
    x = torch.randn(2, 4, 9, 10)
    assert_close(ours(x), theirs(x), torch.float32, "layer")
    pool_kwargs = dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True,
                       return_indices=True)
    ours_p, theirs_p = convbench.nn.MaxPool2d(**pool_kwargs), torch.nn.MaxPool2d(**pool_kwargs)
    for a, b in zip(ours_p(x), theirs_p(x)):
        assert torch.equal(a, b)


def test_converted_cnn_trains_like_torch():
    """The issue's definition of done: a converted CNN trains on CPU with our
    kernels giving torch's results (float64, so differences stay ~1e-12)."""
    torch.manual_seed(4)
    theirs = SmallCNN().double()
    ours = convbench.nn.convert(copy.deepcopy(theirs))
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    opt_o = torch.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(5)
    for step in range(8):
        x = torch.randn(16, 1, 16, 16, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (16,), generator=g)
        losses = []
        for model, opt in ((theirs, opt_t), (ours, opt_o)):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        assert_close(losses[1], losses[0], torch.float64, f"loss at step {step}")
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_float32_training_step_matches_torch():
    torch.manual_seed(6)
    theirs = SmallCNN()
    ours = convbench.nn.convert(copy.deepcopy(theirs))
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
    for model in (theirs, ours):
        F.cross_entropy(model(x), y).backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(a.grad, b.grad, torch.float32, name)
