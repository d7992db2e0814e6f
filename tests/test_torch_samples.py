"""PyTorch's own test inputs through convbench: every OpInfo sample and error
input of F.conv2d and F.max_pool2d (torch.testing._internal.
common_methods_invocations.op_db) and every ModuleInfo input of nn.Conv2d and
nn.MaxPool2d (common_modules.module_db), on every CPU algorithm, in float32
and float64, through the eager path and the registered operators, against
torch: outputs, indices and gradients, and bad input raising.

These modules ship with torch but are internal (they may move) and need the
test-only package expecttest; without either the tests skip and say why.
They load on first use, not at collection: importing them takes seconds."""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import convbench
from _helpers import RTOL, assert_close

ALGOS = convbench.algorithms("cpu")
DTYPES = [torch.float32, torch.float64]
OPS = ("nn.functional.conv2d", "nn.functional.max_pool2d")
MODULES = ("Conv2d", "MaxPool2d")
SEED = 11


@functools.lru_cache(maxsize=None)
def _torch_testing():
    pytest.importorskip("expecttest", reason="torch's OpInfo modules need the test-only "
                        "package expecttest (pip install expecttest)")
    try:
        from torch.testing._internal.common_methods_invocations import op_db
        from torch.testing._internal.common_modules import module_db
    except Exception as e:  # an internal module: may move or change between releases
        pytest.skip(f"torch.testing._internal.common_methods_invocations / common_modules "
                    f"did not import in torch {torch.__version__} ({type(e).__name__}: {e})")
    # common_utils freezes torch.backends flags on import (its own tests must
    # use `with flags(...)`); other test files set them directly.
    torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
    ops = {o.name: o for o in op_db if o.name in OPS and not o.variant_test_name}
    modules = {m.module_cls.__name__: m for m in module_db
               if m.module_cls.__name__ in MODULES
               and m.module_cls.__module__.startswith("torch.nn")}
    missing = set(OPS) - set(ops) or set(MODULES) - set(modules)
    if missing:
        pytest.skip(f"torch {torch.__version__}'s op_db/module_db lack {sorted(missing)}")
    return ops, modules


def _seeded(make):
    """Samples drawn under a fixed seed (the generators use the global RNG),
    the same ones in every run whatever ran before."""
    state = torch.get_rng_state()
    torch.manual_seed(SEED)
    try:
        return list(make())
    finally:
        torch.set_rng_state(state)


@functools.lru_cache(maxsize=None)
def op_samples(name, dtype):
    op = _torch_testing()[0][name]
    return _seeded(lambda: op.sample_inputs("cpu", dtype, requires_grad=True))


@functools.lru_cache(maxsize=None)
def op_errors(name):
    op = _torch_testing()[0][name]
    return _seeded(lambda: op.error_inputs("cpu"))


@functools.lru_cache(maxsize=None)
def module_inputs(name, dtype):
    info = _torch_testing()[1][name]
    return _seeded(lambda: info.module_inputs_func(info, device="cpu", dtype=dtype,
                                                   requires_grad=True, training=True))


@functools.lru_cache(maxsize=None)
def module_errors(name):
    info = _torch_testing()[1][name]
    if info.module_error_inputs_func is None:
        return []
    return _seeded(lambda: info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                                         requires_grad=False, training=True))


class _ThroughOps(TorchFunctionMode):
    """Any function mode turns convbench's lean eager path off, so the
    registered torch.ops.convbench operators (and their autograd) run."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _run(path, fn, *args, **kwargs):
    if path == "ops":
        with _ThroughOps():
            return fn(*args, **kwargs)
    return fn(*args, **kwargs)


def _describe(sample):
    def show(a):
        return list(a.shape) if isinstance(a, torch.Tensor) else a
    return (f"input {show(sample.input)} args {[show(a) for a in sample.args]} "
            f"kwargs { {k: show(v) for k, v in sample.kwargs.items()} }")


def _grads(out, inputs, grad_out):
    wanted = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    return wanted, torch.autograd.grad(out, wanted, grad_out, allow_unused=True)


# ---- conv2d -------------------------------------------------------------------


def _winograd_fits(weight, kwargs):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v) * (2 // len(v))
    return (tuple(weight.shape[2:]) == (3, 3) and pair(kwargs.get("stride", 1)) == (1, 1)
            and pair(kwargs.get("dilation", 1)) == (1, 1))


def _check_conv(call, ref_call, tensors, dtype, what):
    """call/ref_call(*tensors): ours, and torch's in float64 on the same
    values (so the bound is our rounding alone, as in test_conv2d.py)."""
    ours = call(*tensors)
    ref_tensors = [t.detach().double().requires_grad_(t.requires_grad)
                   if isinstance(t, torch.Tensor) else t for t in tensors]
    ref = ref_call(*ref_tensors)
    assert_close(ours, ref, dtype, f"{what}: forward")
    g = torch.randn_like(ours)
    wanted, ours_g = _grads(ours, tensors, g)
    _, ref_g = _grads(ref, ref_tensors, g.double())
    for t, a, r in zip(wanted, ours_g, ref_g):
        if t.dim() == 1:  # a bias: N*P*Q terms that may cancel, bounded by their magnitudes
            mag = g.double().abs().sum([d for d in range(g.dim()) if d != g.dim() - 3]).norm()
            err = (a.double() - r).norm()
            assert err <= RTOL[dtype] * mag, f"{what}: grad of bias {err:.3e} > rtol * {mag:.3e}"
        else:
            assert_close(a, r, dtype, f"{what}: grad of {list(t.shape)}")


@pytest.mark.parametrize("path", ["eager", "ops"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_op_db_samples(algo, dtype, path):
    samples = op_samples("nn.functional.conv2d", dtype)
    assert len(samples) >= 20
    compared = 0
    for s in samples:
        x, (w, *rest) = s.input, s.args
        what = f"{algo} {path} {_describe(s)}"
        if algo == "winograd" and not _winograd_fits(w, s.kwargs):
            with pytest.raises(ValueError, match="winograd"):
                convbench.conv2d(x, w, *rest, **s.kwargs, algo=algo)
            continue
        _check_conv(lambda *t: _run(path, convbench.conv2d, *t, **s.kwargs, algo=algo),
                    lambda *t: F.conv2d(*t, **s.kwargs), [x, w, *rest], dtype, what)
        compared += 1
    assert compared >= (1 if algo == "winograd" else len(samples))


def _check_raises(call, error, what):
    # The exception torch raises, or a subclass of it.
    try:
        call()
    except error:
        return
    except Exception as e:
        pytest.fail(f"{what}: raised {type(e).__name__} ({e}), torch raises {error.__name__}")
    pytest.fail(f"{what}: raised nothing, torch raises {error.__name__}")


@pytest.mark.parametrize("path", ["eager", "ops"])
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_op_db_error_inputs(algo, path):
    errors = op_errors("nn.functional.conv2d")
    assert errors
    for e in errors:
        s = e.sample_input
        _check_raises(lambda: _run(path, convbench.conv2d, s.input, *s.args, **s.kwargs,
                                   algo=algo), e.error_type,
                      f"{algo} {path} {_describe(s)} (torch: {e.error_regex})")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_module_db_inputs(algo, dtype):
    inputs = module_inputs("Conv2d", dtype)
    assert inputs
    for mi in inputs:
        c = mi.constructor_input
        theirs = torch.nn.Conv2d(*c.args, **c.kwargs, dtype=dtype)
        if algo == "winograd" and not _winograd_fits(theirs.weight, c.kwargs):
            continue
        ours = convbench.nn.Conv2d(*c.args, **c.kwargs, dtype=dtype, algo=algo)
        ours.load_state_dict(theirs.state_dict())
        (x,) = mi.forward_input.args
        ref = theirs.double()
        names = ["weight"] + (["bias"] if ours.bias is not None else [])

        def ref_call(x, *params):  # torch's layer on the float64 copies of our parameters
            return torch.func.functional_call(ref, dict(zip(names, params)), (x,))

        _check_conv(lambda x, *p: ours(x), ref_call, [x] + [getattr(ours, n) for n in names],
                    dtype, f"{algo} nn.Conv2d{c.args}{c.kwargs} on {list(x.shape)}")


# ---- max_pool2d ---------------------------------------------------------------


def _check_pool(call, ref_call, x, dtype, what):
    ours, ours_idx = call(x)
    ref, ref_idx = ref_call(x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0, equal_nan=True, msg=what)
    assert torch.equal(ours_idx, ref_idx), f"{what}: indices"
    g = torch.randn_like(ref)
    (ours_g,) = torch.autograd.grad(ours, x, g)
    (ref_g,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(ours_g, ref_g, msg=lambda m: f"{what}: grad\n{m}")


@pytest.mark.parametrize("path", ["eager", "ops"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_max_pool2d_op_db_samples(dtype, path):
    samples = op_samples("nn.functional.max_pool2d", dtype)
    assert len(samples) >= 100
    # Indices are compared always, so samples that differ only in
    # return_indices are one case; the registered ops share the kernels and
    # argument checks with the eager path: every 4th case covers their glue.
    cases = {repr(dict(s.kwargs, return_indices=True)) + repr(s.input.shape): s for s in samples}
    for s in list(cases.values())[::4 if path == "ops" else 1]:
        kwargs = dict(s.kwargs, return_indices=True)
        _check_pool(lambda x: _run(path, convbench.max_pool2d, x, *s.args, **kwargs),
                    lambda x: F.max_pool2d(x, *s.args, **kwargs), s.input, dtype,
                    f"{path} {_describe(s)}")


@pytest.mark.parametrize("path", ["eager", "ops"])
def test_max_pool2d_op_db_error_inputs(path):
    errors = op_errors("nn.functional.max_pool2d")
    assert errors
    for e in errors:
        s = e.sample_input
        _check_raises(lambda: _run(path, convbench.max_pool2d, s.input, *s.args, **s.kwargs),
                      e.error_type, f"{path} {_describe(s)} (torch: {e.error_regex})")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_max_pool2d_module_db_inputs(dtype):
    inputs = module_inputs("MaxPool2d", dtype)
    assert inputs
    for mi in inputs:
        c = mi.constructor_input
        kwargs = dict(c.kwargs, return_indices=True)
        ours = convbench.nn.MaxPool2d(*c.args, **kwargs)
        theirs = torch.nn.MaxPool2d(*c.args, **kwargs)
        (x,) = mi.forward_input.args
        _check_pool(ours, theirs, x, dtype, f"nn.MaxPool2d{c.args}{c.kwargs} on {list(x.shape)}")


def test_max_pool2d_module_db_error_inputs():
    errors = module_errors("MaxPool2d")
    assert errors
    for e in errors:
        mi = e.module_error_input
        c, f = mi.constructor_input, mi.forward_input

        def call():
            return convbench.nn.MaxPool2d(*c.args, **c.kwargs)(*f.args, **f.kwargs)

        _check_raises(call, e.error_type, f"nn.MaxPool2d{c.args}{c.kwargs} ({e.error_regex})")


# ---- what the samples do not reach: issue 11's mismatches, now fixed ------------
# Found with torch's conv and pooling tests.


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("n, groups, bias", [(2, 1, True), (2, 2, False), (0, 1, True)])
def test_conv2d_zero_input_channels(n, groups, bias, algo, dtype):
    x = torch.randn(n, 0, 5, 5, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 0, 3, 3, dtype=dtype, requires_grad=True)
    b = torch.randn(4, dtype=dtype, requires_grad=True) if bias else None
    tensors = [x, w] + ([b] if bias else [])
    _check_conv(lambda *t: convbench.conv2d(*t, groups=groups, algo=algo),
                lambda *t: F.conv2d(*t, groups=groups), tensors, dtype,
                f"{algo} zero channels n={n} groups={groups}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_max_pool2d_index_of_last_nan(dtype):
    nan = float("nan")
    x = torch.tensor([[[[nan, 1.0, nan], [2.0, nan, 0.0], [nan, 3.0, 4.0]]]], dtype=dtype,
                     requires_grad=True)
    _check_pool(lambda x: convbench.max_pool2d(x, 2, 1, return_indices=True),
                lambda x: F.max_pool2d(x, 2, 1, return_indices=True), x, dtype, "two NaN")


@pytest.mark.parametrize("shape", [(1, 0, 50, 32), (0, 50, 32)])
def test_max_pool2d_zero_channels_raises(shape):
    x = torch.randn(*shape)
    with pytest.raises(RuntimeError):
        F.max_pool2d(x, 2)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        convbench.max_pool2d(x, 2)
