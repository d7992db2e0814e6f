"""torch.func transforms (grad, vmap, jacrev, jacfwd, jvp, vjp, hessian,
functional_call, per-sample gradients) over convbench's functions, registered
operators and layers, against the same transforms over torch.nn.functional.

float64 throughout: the two sides differ only by summation order, so values
agree to ~1e-15 relative (RTOL 1e-12, as the other float64 tests). vmap's
fallback (one call per sample) is switched off, so a missing or broken vmap
rule fails instead of passing slowly."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vjp, vmap

import convbench
from _helpers import assert_close

D = torch.float64
CONV_ARGS = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)


@pytest.fixture(autouse=True)
def _no_vmap_fallback():
    torch._C._functorch._set_vmap_fallback_enabled(False)
    yield
    torch._C._functorch._set_vmap_fallback_enabled(True)


def conv_ops(x, w, b):
    """The registered operator, called as convbench.conv2d would call it."""
    return torch.ops.convbench.conv2d(x, w, b, [2, 1], [1, 1, 2, 2], [1, 2], 2, "auto")


CONVS = {
    "functional": lambda x, w, b: convbench.conv2d(x, w, b, **CONV_ARGS),
    "op": conv_ops,
    "im2col": lambda x, w, b: convbench.conv2d(x, w, b, algo="im2col", **CONV_ARGS),
}


def torch_conv(x, w, b):
    return F.conv2d(x, w, b, **CONV_ARGS)


def pool(x):
    return convbench.max_pool2d(x, 3, stride=2, padding=1, dilation=(1, 2))


def torch_pool(x):
    return F.max_pool2d(x, 3, stride=2, padding=1, dilation=(1, 2))


def close_tree(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            close_tree(u, v)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            close_tree(a[k], b[k])
    else:
        assert a.shape == b.shape, (a.shape, b.shape)
        assert_close(a, b, D)


def data(n=3):
    x = torch.randn(n, 4, 7, 6, dtype=D)
    w = torch.randn(6, 2, 3, 2, dtype=D)
    b = torch.randn(6, dtype=D)
    return x, w, b


@pytest.mark.parametrize("name", CONVS)
def test_grad_of_conv(name):
    conv = CONVS[name]
    x, w, b = data()

    def loss(f):
        return lambda x, w, b: (f(x, w, b) ** 2).sum()

    ours = grad(loss(conv), argnums=(0, 1, 2))(x, w, b)
    ref = grad(loss(torch_conv), argnums=(0, 1, 2))(x, w, b)
    close_tree(ours, ref)
    # Second order: grad of grad (the backward ops' own formulas).
    ours2 = grad(lambda w: grad(loss(conv), argnums=0)(x, w, b).sum())(w)
    ref2 = grad(lambda w: grad(loss(torch_conv), argnums=0)(x, w, b).sum())(w)
    close_tree(ours2, ref2)


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("in_dims", [(0, None, None), (None, 0, None), (None, None, 0),
                                     (0, 0, 0), (1, 0, None), (None, 0, 0)],
                         ids=lambda d: "".join("-" if i is None else str(i) for i in d))
def test_vmap_of_conv(name, in_dims):
    conv = CONVS[name]
    B = 3
    x, w, b = data(2)
    x, w, b = (t if d is None else torch.stack([torch.randn_like(t) for _ in range(B)], d)
               for t, d in zip((x, w, b), in_dims))
    close_tree(vmap(conv, in_dims)(x, w, b), vmap(torch_conv, in_dims)(x, w, b))


@pytest.mark.parametrize("name", CONVS)
def test_jacobians_and_jvp_of_conv(name):
    conv = CONVS[name]
    x, w, b = data(1)
    x = x[:, :, :5, :4]
    for transform in (jacrev, jacfwd):
        close_tree(transform(conv, argnums=(0, 1, 2))(x, w, b),
                   transform(torch_conv, argnums=(0, 1, 2))(x, w, b))
    tangents = tuple(torch.randn_like(t) for t in (x, w, b))
    close_tree(jvp(conv, (x, w, b), tangents), jvp(torch_conv, (x, w, b), tangents))
    # a tangent for the bias alone (the other inputs carry none)
    close_tree(jvp(lambda b: conv(x, w, b), (b,), tangents[2:]),
               jvp(lambda b: torch_conv(x, w, b), (b,), tangents[2:]))
    out, fn = vjp(conv, x, w, b)
    ref_out, ref_fn = vjp(torch_conv, x, w, b)
    g = torch.randn_like(ref_out)
    close_tree((out, fn(g)), (ref_out, ref_fn(g)))


def test_hessian_of_conv():
    x, w, b = data(1)
    x = x[:, :, :4, :4]

    def loss(f):
        return lambda w: torch.tanh(f(x, w, b)).sum()

    close_tree(hessian(loss(CONVS["functional"]))(w), hessian(loss(torch_conv))(w))


def test_transforms_of_max_pool():
    x = torch.randn(2, 3, 9, 8, dtype=D)
    close_tree(grad(lambda x: (pool(x) ** 2).sum())(x), grad(lambda x: (torch_pool(x) ** 2).sum())(x))
    close_tree(vmap(pool)(x), vmap(torch_pool)(x))
    close_tree(vmap(pool, in_dims=1)(x), vmap(torch_pool, in_dims=1)(x))
    close_tree(jacrev(pool)(x[:1]), jacrev(torch_pool)(x[:1]))
    close_tree(jacfwd(pool)(x[:1]), jacfwd(torch_pool)(x[:1]))
    t = torch.randn_like(x)
    close_tree(jvp(pool, (x,), (t,)), jvp(torch_pool, (x,), (t,)))
    # indices come back too, batched like the values
    ours = vmap(lambda x: convbench.max_pool2d(x, 2, return_indices=True))(x)
    ref = vmap(lambda x: F.max_pool2d(x, 2, return_indices=True))(x)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    # second order through the backward op
    close_tree(grad(lambda x: grad(lambda x: (pool(x) ** 3).sum())(x).sum())(x),
               grad(lambda x: grad(lambda x: (torch_pool(x) ** 3).sum())(x).sum())(x))


def _net(conv, pool_layer):
    torch.manual_seed(1)
    return torch.nn.Sequential(conv(3, 4, 3, padding=1), torch.nn.Tanh(), pool_layer(2),
                               conv(4, 2, 3, groups=2), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 2 * 2, 3)).double()


def test_functional_call_and_per_sample_gradients_of_layers():
    ours = _net(convbench.nn.Conv2d, convbench.nn.MaxPool2d)
    ref = _net(torch.nn.Conv2d, torch.nn.MaxPool2d)
    params = {k: v.detach() for k, v in ref.named_parameters()}
    x = torch.randn(5, 3, 8, 8, dtype=D)
    y = torch.randint(0, 3, (5,))

    def loss(model):
        def f(params, x, y):
            out = functional_call(model, params, (x[None],))
            return F.cross_entropy(out, y[None])
        return f

    close_tree(functional_call(ours, params, (x,)), functional_call(ref, params, (x,)))
    close_tree(grad(loss(ours))(params, x[0], y[0]), grad(loss(ref))(params, x[0], y[0]))
    # Per-sample gradients, as Opacus-style private training computes them.
    per_sample = vmap(grad(loss(ours)), in_dims=(None, 0, 0))(params, x, y)
    close_tree(per_sample, vmap(grad(loss(ref)), in_dims=(None, 0, 0))(params, x, y))
    for k, g in per_sample.items():
        assert g.shape == (5, *params[k].shape)


def test_per_sample_gradients_of_conv_with_unbatched_samples():
    # vmap over (C, H, W) samples: convbench.conv2d sees unbatched input.
    x, w, b = data(4)

    def loss(w, b, xi):
        return convbench.conv2d(xi, w, b, **CONV_ARGS).square().sum()

    def ref_loss(w, b, xi):
        return torch_conv(xi, w, b).square().sum()

    close_tree(vmap(grad(loss, argnums=(0, 1)), in_dims=(None, None, 0))(w, b, x),
               vmap(grad(ref_loss, argnums=(0, 1)), in_dims=(None, None, 0))(w, b, x))


def test_transforms_with_zero_input_channels():
    x, w, b = torch.randn(3, 2, 0, 5, 5, dtype=D), torch.randn(4, 0, 3, 3, dtype=D), torch.randn(4, dtype=D)
    ours = vmap(grad(lambda w, b, x: convbench.conv2d(x, w, b).sum(), argnums=(0, 1)),
                in_dims=(None, None, 0))(w, b, x)
    # torch's own conv fails here (its bias gradient comes back with 0
    # elements under vmap), so the oracle is torch's gradient per sample.
    ref = [grad(lambda w, b: F.conv2d(xi, w, b).sum(), argnums=(0, 1))(w, b) for xi in x]
    close_tree(ours, tuple(torch.stack(r) for r in zip(*ref)))
    ws = torch.randn(3, 4, 0, 3, 3, dtype=D)
    close_tree(vmap(convbench.conv2d, (None, 0))(x[0], ws), vmap(F.conv2d, (None, 0))(x[0], ws))


def test_plain_autograd_still_records_through_the_op():
    # Outside torch.func the op's autograd kernel behaves as before.
    x, w, b = (t.requires_grad_() for t in data())
    out = conv_ops(x, w, b)
    ref = torch_conv(x, w, b)
    g = torch.randn_like(ref)
    close_tree(torch.autograd.grad(out, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g))



def test_forward_mode_ad_of_every_op():
    # torch.autograd.forward_ad (what jvp/jacfwd build on) uses the ops' jvp
    # formulas, the backward ops' included.
    def leaf(*shape):
        return torch.randn(*shape, dtype=D, requires_grad=True)

    x, w, b = leaf(1, 4, 5, 4), leaf(6, 2, 3, 2), leaf(6)
    dy = leaf(1, 6, 3, 6)
    ops = torch.ops.convbench
    args = ([2, 1], [1, 1, 2, 2], [1, 2], 2, "auto")
    checks = [
        (conv_ops, (x, w, b)),
        (CONVS["functional"], (x, w, b)),  # not the eager path: it has no jvp
        (lambda dy, w: ops.conv2d_backward_input(dy, w, [1, 4, 5, 4], *args), (dy, w)),
        (lambda dy, x: ops.conv2d_backward_weight(dy, x, [6, 2, 3, 2], *args), (dy, x)),
        (pool, (leaf(2, 3, 9, 8),)),
    ]
    _, idx = ops.max_pool2d(x.detach(), [2, 2], [2, 2], [0, 0], [1, 1], False)
    checks.append((lambda g: ops.max_pool2d_backward(g, idx, [1, 4, 5, 4], [2, 2], [2, 2],
                                                     [0, 0], [1, 1]), (leaf(*idx.shape),)))
    for f, inputs in checks:
        assert torch.autograd.gradcheck(f, inputs, check_forward_ad=True)


def test_transforms_never_take_the_eager_path(monkeypatch):
    # The eager Functions run kernels on raw pointers and have no jvp: under
    # torch.func or forward AD the functional API must use the operators.
    from convbench import _eager
    from convbench.ops import conv2d as conv_op, max_pool2d as pool_op

    def refuse(*args):
        raise AssertionError("eager path taken under a transform")

    monkeypatch.setattr(conv_op.Conv2dFunction, "apply", refuse)
    monkeypatch.setattr(pool_op.MaxPool2dFunction, "apply", refuse)
    # ... nor the inference shortcut to the kernels: the gate itself must say no.
    usable = _eager.usable

    def gate(*tensors):
        if usable(*tensors):
            refuse()
        return False

    monkeypatch.setattr(_eager, "usable", gate)
    x, w, b = data(1)
    grad(lambda w: pool(CONVS["functional"](x, w, b)).sum())(w)
    jvp(lambda x: pool(CONVS["functional"](x, w, b)), (x,), (x,))
    vmap(lambda x: pool(CONVS["functional"](x, w, b)))(x[None])
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x, torch.ones_like(x))
        pool(CONVS["functional"](dual, w, b))


@pytest.mark.cuda
@pytest.mark.parametrize("algo", ["direct", "implicit_gemm", "auto"])
def test_per_sample_gradients_on_cuda(algo):
    x, w, b = (t.cuda() for t in data(4))

    def loss(conv):
        return lambda w, b, xi: conv(xi[None], w, b).square().sum()

    ours = vmap(grad(loss(lambda x, w, b: convbench.conv2d(x, w, b, algo=algo, **CONV_ARGS)),
                     argnums=(0, 1)), in_dims=(None, None, 0))(w, b, x)
    close_tree(ours, vmap(grad(loss(torch_conv), argnums=(0, 1)), in_dims=(None, None, 0))(w, b, x))
    close_tree(vmap(pool)(x), vmap(torch_pool)(x))
