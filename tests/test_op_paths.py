"""The two Python paths to the kernels agree bit for bit: the lean eager
path (convbench.conv2d / max_pool2d / avg_pool2d in plain eager mode: each op's autograd
Function) and the registered operators (torch.ops.convbench.*, what
torch.compile, torch.func and opcheck see) run the same kernels and the same
autograd formula, so outputs and gradients, first and second order, are
identical, not merely close."""
import pytest
import torch

import convbench
from convbench.ops import avg_pool2d as avg_op, conv2d as conv_op, max_pool2d as pool_op

CASES = [  # (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
    (2, 4, 9, 8, 6, 3, 3, 1, 1, 1, 1, True),
    (3, 6, 11, 10, 4, 3, 2, 2, 0, (1, 2), 2, False),
    (1, 8, 7, 7, 8, 1, 1, 1, 0, 1, 4, True),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _count(monkeypatch, cls):
    calls = []
    apply = cls.apply
    monkeypatch.setattr(cls, "apply", lambda *a: calls.append(1) or apply(*a))
    return calls


@pytest.mark.parametrize("algo", ["auto", "direct", "im2col"])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_conv2d_eager_path_equals_the_registered_op(monkeypatch, case, dtype, algo):
    N, C, H, W, K, R, S, stride, padding, dilation, groups, has_bias = case
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, H, W, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(K, C // groups, R, S, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(K, generator=g, dtype=dtype, requires_grad=True) if has_bias else None
    leaves = [t for t in (x, w, b) if t is not None]
    ph, pw = _pair(padding)
    eager_calls = _count(monkeypatch, conv_op.Conv2dFunction)

    def eager():
        return convbench.conv2d(x, w, b, stride, padding, dilation, groups, algo=algo)

    def op():
        return torch.ops.convbench.conv2d(x, w, b, list(_pair(stride)), [ph, ph, pw, pw],
                                          list(_pair(dilation)), groups, algo)

    results = []
    for fn in (eager, op):
        y = fn()
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        grads = torch.autograd.grad(y, leaves, dy, create_graph=True)
        # second order: d/d(x, w) of <(dx, dw), 1> (the bias gradient is
        # constant in x and w)
        v = [torch.ones_like(t) for t in grads[:2]]
        second = torch.autograd.grad(grads[:2], leaves[:2], v, allow_unused=True)
        results.append((y, grads, second))
    assert len(eager_calls) == 1  # the first was the eager path, the second was not
    (y1, g1, s1), (y2, g2, s2) = results
    assert torch.equal(y1, y2)
    assert all(torch.equal(a, c) for a, c in zip(g1, g2))
    assert all((a is None and c is None) or torch.equal(a, c) for a, c in zip(s1, s2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_max_pool2d_eager_path_equals_the_registered_op(monkeypatch, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-3, 4, (2, 3, 9, 8), generator=g).to(dtype).requires_grad_()  # ties
    eager_calls = _count(monkeypatch, pool_op.MaxPool2dFunction)
    y1, i1 = convbench.max_pool2d(x, 3, 2, 1, 1, False, return_indices=True)
    y2, i2 = torch.ops.convbench.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False)
    assert len(eager_calls) == 1
    assert torch.equal(y1, y2) and torch.equal(i1, i2)
    dy = torch.randn(y1.shape, generator=g, dtype=dtype)
    (g1,) = torch.autograd.grad(y1, x, dy, create_graph=True)
    (g2,) = torch.autograd.grad(y2, x, dy, create_graph=True)
    assert torch.equal(g1, g2)
    # the gradient's own gradient (the gather adjoint), with respect to dy
    dy1, dy2 = dy.clone().requires_grad_(), dy.clone().requires_grad_()
    (h1,) = torch.autograd.grad(torch.autograd.grad(y1, x, dy1, create_graph=True)[0].sum(), dy1)
    (h2,) = torch.autograd.grad(torch.autograd.grad(y2, x, dy2, create_graph=True)[0].sum(), dy2)
    assert torch.equal(h1, h2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_avg_pool2d_eager_path_equals_the_registered_op(monkeypatch, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=dtype, requires_grad=True)
    eager_calls = _count(monkeypatch, avg_op.AvgPool2dFunction)
    y1 = convbench.avg_pool2d(x, 3, 2, 1, True, False, None)
    y2 = torch.ops.convbench.avg_pool2d(x, [3, 3], [2, 2], [1, 1], True, False, None)
    assert len(eager_calls) == 1
    assert torch.equal(y1, y2)
    dy1 = torch.randn(y1.shape, generator=g, dtype=dtype).requires_grad_()
    dy2 = dy1.detach().clone().requires_grad_()
    (g1,) = torch.autograd.grad(y1, x, dy1, create_graph=True)
    (g2,) = torch.autograd.grad(y2, x, dy2, create_graph=True)
    assert torch.equal(g1, g2)
    # the gradient's own gradient (avg_pool2d again), with respect to dy
    v = torch.randn(g1.shape, generator=g, dtype=dtype)
    (h1,) = torch.autograd.grad(g1, dy1, v)
    (h2,) = torch.autograd.grad(g2, dy2, v)
    assert torch.equal(h1, h2)


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("path", ["eager", "op", "layer"])
def test_the_bias_gradient_without_the_weights(path, input_grad):
    """Bias-only fine-tuning: a frozen weight (requires_grad False) and a
    trainable bias. The CPU weight-gradient call that sums the bias on the way
    does not run, so the bias gradient must come from its own sum, not from a
    buffer nothing filled."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 24, 3, padding=1).double()
    conv.weight.requires_grad_(False)
    x = torch.randn(3, 6, 9, 9, dtype=torch.float64, requires_grad=input_grad)
    dy = torch.randn(3, 24, 9, 9, dtype=torch.float64)
    want = torch.autograd.grad(conv(x), [conv.bias] + ([x] if input_grad else []), dy)
    for _ in range(3):  # (fresh buffers of the bias's size hold garbage, not zeros)
        junk = torch.full((24,), float("nan"), dtype=torch.float64)
        del junk
        if path == "eager":
            y = convbench.conv2d(x, conv.weight, conv.bias, padding=1)
        elif path == "op":
            y = torch.ops.convbench.conv2d(x, conv.weight, conv.bias, [1, 1], [1, 1, 1, 1],
                                           [1, 1], 1, "auto")
        else:
            y = convbench.nn.convert(conv)(x)
        got = torch.autograd.grad(y, [conv.bias] + ([x] if input_grad else []), dy)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_a_remembered_call_skips_the_checks_but_never_a_refusal():
    """conv2d remembers the geometry of lean-path calls that passed (ops/conv2d.py's
    _PREPARED): the same call again runs on it, with the same result; a call that
    differs in anything the checks read is checked again, and refused if bad
    (True == 1 and hashes alike, so types are part of what is compared)."""
    conv_op._PREPARED.clear()
    x, w, b = torch.randn(2, 4, 9, 9), torch.randn(6, 4, 3, 3), torch.randn(6)
    first = convbench.conv2d(x, w, b, stride=(1, 1), padding=1, groups=1)
    assert len(conv_op._PREPARED) == 1
    again = convbench.conv2d(x, w, b, stride=(1, 1), padding=1, groups=1)
    assert torch.equal(first, again) and len(conv_op._PREPARED) == 1
    torch.testing.assert_close(again, torch.nn.functional.conv2d(x, w, b, 1, 1))
    with pytest.raises(TypeError, match="stride"):
        convbench.conv2d(x, w, b, stride=(True, 1), padding=1, groups=1)
    with pytest.raises((TypeError, ValueError), match="groups"):
        convbench.conv2d(x, w, b, stride=(1, 1), padding=1, groups=True)
    with pytest.raises(TypeError, match="padding"):
        convbench.conv2d(x, w, b, stride=(1, 1), padding=True, groups=1)
    with pytest.raises(RuntimeError, match="type"):
        convbench.conv2d(x, w.double(), b, stride=(1, 1), padding=1, groups=1)
    with pytest.raises(RuntimeError):
        convbench.conv2d(x[:, :3], w, b, stride=(1, 1), padding=1, groups=1)
    # Lists are not remembered (unhashable), unbatched inputs and padding modes neither.
    convbench.conv2d(x, w, b, stride=[1, 1], padding=1, groups=1)
    convbench.conv2d(x[0], w, b, stride=(1, 1), padding=1, groups=1)
    convbench.conv2d(x, w, b, stride=(1, 1), padding=1, groups=1, padding_mode="reflect")
    assert len(conv_op._PREPARED) == 1
    # A remembered geometry still builds the autograd graph when one is needed.
    xg = x.clone().requires_grad_()
    convbench.conv2d(xg, w, b, stride=(1, 1), padding=1, groups=1).sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape
