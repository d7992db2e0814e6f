"""The torch.library registration: opcheck on every op (schema, fake
kernel, autograd, dispatch) and torch.compile(fullgraph=True) of a CNN
built from our layers."""
import pytest
import torch

import convbench
from _helpers import assert_close

ops = torch.ops.convbench


def _conv_samples():
    g = torch.Generator().manual_seed(0)

    def t(*shape, grad=True):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=grad)

    geometry = [([1, 1], [0, 0, 0, 0], [1, 1], 1), ([2, 1], [1, 2, 0, 1], [1, 2], 2)]
    for stride, padding, dilation, groups in geometry:
        x, w = t(2, 4, 9, 8), t(6, 4 // groups, 3, 2)
        y = ops.conv2d(x.detach(), w.detach(), None, stride, padding, dilation, groups)
        common = (stride, padding, dilation, groups)
        yield "conv2d", (x, w, t(6), *common)
        yield "conv2d", (x, w, None, *common)
        yield "conv2d_backward_input", (t(*y.shape), w, list(x.shape), *common)
        yield "conv2d_backward_weight", (t(*y.shape), x, list(w.shape), *common)
    x = t(2, 3, 9, 7)
    pool_args = ([3, 2], [2, 1], [1, 1], [1, 2], True)
    yield "max_pool2d", (x, *pool_args)
    y, idx = ops.max_pool2d(x.detach(), *pool_args)
    yield "max_pool2d_backward", (t(*y.shape), idx, list(x.shape), *pool_args[:4])


@pytest.mark.parametrize("case", list(enumerate(_conv_samples())),
                         ids=lambda c: f"{c[1][0]}-{c[0]}")
def test_opcheck(case):
    name, args = case[1]
    torch.library.opcheck(getattr(ops, name).default, args)


def test_every_op_is_covered():
    names = {name for name, _ in _conv_samples()}
    assert names == {"conv2d", "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d",
                     "max_pool2d_backward"}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        C = convbench.nn
        self.body = torch.nn.Sequential(
            C.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), C.MaxPool2d(2),
            C.Conv2d(8, 16, 3, stride=2, algo="im2col"), torch.nn.ReLU(),
            C.MaxPool2d(2, ceil_mode=True))
        self.fc = torch.nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(4, 1, 16, 16)
    compiled = torch.compile(model, fullgraph=True)  # fails if our ops break the graph

    def run(m):
        model.zero_grad()
        out = m(x)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    ref_out, ref_grads = run(model)
    out, grads = run(compiled)
    assert_close(out, ref_out, torch.float32, "compiled forward")
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, torch.float32, "compiled backward")
    # Our ops, not a decomposition into aten's conv, ran in both graphs.
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    seen = {"forward": set(), "backward": set()}

    def recorder(kind):
        def compiler(gm, inputs):
            seen[kind].update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
            return make_boxed_func(gm.forward)
        return compiler

    torch._dynamo.reset()
    backend = aot_autograd(fw_compiler=recorder("forward"), bw_compiler=recorder("backward"))
    torch.compile(model, backend=backend, fullgraph=True)(x.requires_grad_()).sum().backward()
    assert {"convbench.conv2d.default", "convbench.max_pool2d.default"} <= seen["forward"]
    assert {"convbench.conv2d_backward_input.default", "convbench.conv2d_backward_weight.default",
            "convbench.max_pool2d_backward.default"} <= seen["backward"]
    assert not any("convolution" in op for op in seen["forward"] | seen["backward"])
