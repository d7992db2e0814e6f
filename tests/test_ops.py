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
    for avg_args in (([3, 2], [2, 1], [1, 1], True, False, None), ([2, 2], [2, 2], [0, 1], False,
                                                                  True, 3)):
        yield "avg_pool2d", (x, *avg_args)
        y = ops.avg_pool2d(x.detach(), *avg_args)
        yield "avg_pool2d_backward", (t(*y.shape), list(x.shape), *avg_args)


@pytest.mark.parametrize("case", list(enumerate(_conv_samples())),
                         ids=lambda c: f"{c[1][0]}-{c[0]}")
def test_opcheck(case):
    name, args = case[1]
    torch.library.opcheck(getattr(ops, name).default, args)


def test_every_op_is_covered():
    # Every operator an op registers has a sample here, and the registry names
    # every operator the library defines.
    from convbench.ops import _library, registry

    names = {name for name, _ in _conv_samples()}
    assert names == set(registry.operator_names()) == set(_library.DEFINED)
    assert sorted(registry.OPS) == convbench.functional.__all__
    for op in registry.OPS.values():
        assert getattr(convbench, op.name) is op.function
        assert getattr(convbench.nn, op.layer.__name__) is op.layer
        assert issubclass(op.layer, op.replaces)


# gradcheck of the registered operators themselves (opcheck checks that an
# autograd formula is registered, not that it is right; the layers' tests go
# through the eager path's own autograd.Function).
GEOMETRY = {"winograd": ([1, 1], [1, 0, 2, 1], [1, 1]), "other": ([2, 1], [1, 2, 0, 1], [1, 2])}


@pytest.mark.parametrize("algo", convbench.algorithms("cpu"))
def test_gradcheck_registered_conv_ops(algo):
    g = torch.Generator().manual_seed(1)

    def t(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    stride, padding, dilation = GEOMETRY["winograd" if algo == "winograd" else "other"]
    common = (stride, padding, dilation, 2, algo)
    x, w, b = t(2, 4, 6, 5), t(4, 2, 3, 3), t(4)
    y = ops.conv2d(x.detach(), w.detach(), None, *common)
    dy = t(*y.shape)
    cases = [
        (lambda x, w, b: ops.conv2d(x, w, b, *common), (x, w, b)),
        (lambda dy, w: ops.conv2d_backward_input(dy, w, list(x.shape), *common), (dy, w)),
        (lambda dy, x: ops.conv2d_backward_weight(dy, x, list(w.shape), *common), (dy, x)),
    ]
    for f, inputs in cases:  # (fast mode: random projections, a few calls each)
        assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
        assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)


def test_gradcheck_registered_pool_ops():
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    args = ([3, 2], [2, 1], [1, 1], [1, 2])  # overlapping windows
    _, idx = ops.max_pool2d(x.detach(), *args, True)
    dy = torch.randn(idx.shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ops.max_pool2d(x, *args, True)[0], (x,))
    assert torch.autograd.gradgradcheck(lambda x: ops.max_pool2d(x, *args, True)[0], (x,))
    back = lambda dy: ops.max_pool2d_backward(dy, idx, list(x.shape), *args)  # noqa: E731
    assert torch.autograd.gradcheck(back, (dy,))
    assert torch.autograd.gradgradcheck(back, (dy,))


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


@pytest.fixture
def fresh_inductor():
    """No Inductor cache (on disk or in memory): a warm cache from an earlier
    run of other code compiled nothing new, and once let a wrong backward pass."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    with inductor_config.patch(force_disable_caches=True):
        yield
    torch._dynamo.reset()


def test_compile_fullgraph_matches_eager(fresh_inductor):
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
