"""What the benchmark rows run (bench/impls.py): the autotuned row, and the
separate grad passes timed through autograd with the forward built once per
input set, outside the timed call."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import impls  # noqa: E402
import layers  # noqa: E402

L = layers.ConvLayer(2, 3, 9, 9, 4, 3, 3, padding=(1, 1), used_by=("t",))
P = layers.PoolLayer(2, 3, 8, 8)


def test_autotuned_row_follows_auto_on_every_device():
    for device in ("cpu", "cuda"):
        rows = impls.conv_impls(device, "float32", L)
        assert rows[:2] == ["convbench:auto", impls.AUTOTUNED]
    assert impls.algo_of(impls.AUTOTUNED) == "auto"
    assert impls.algo_of("convbench:im2col") == "im2col"


def test_autotuned_row_runs_inside_the_autotune_flag():
    import convbench.backends as backends

    assert backends.autotune is False
    with impls.backend_flags(impls.AUTOTUNED, "cpu"):
        assert backends.autotune is True
    assert backends.autotune is False
    with impls.backend_flags("convbench:auto", "cpu"):
        assert backends.autotune is False


def _graph_leaves(y):
    """The leaf tensors autograd will differentiate y with respect to."""
    return [f.variable for f, _ in y.grad_fn.next_functions if hasattr(f, "variable")]


def _inputs(pass_, n=3):
    return [impls.conv_inputs(L, pass_, "cpu", "float32", seed, False) for seed in range(n)]


@pytest.mark.parametrize("impl", ["convbench:auto", "convbench:direct", "torch"])
@pytest.mark.parametrize("pass_,wrt", [("bwd_input", 0), ("bwd_weight", 1)])
def test_grad_rows_time_autograd_of_a_forward_made_per_input_set(impl, pass_, wrt):
    pool = _inputs(pass_)
    prepare, fn = impls.conv_row(L, pass_, impl)
    args = [prepare(*s) for s in pool]
    for (x, w, b, dy), (y, t, dy2) in zip(pool, args):
        assert y.grad_fn is not None and dy2 is dy
        # Only the tensor whose gradient is timed requires grad, and it is
        # this input set's own tensor (same storage), so the forward is per set.
        assert t.data_ptr() == (x, w)[wrt].data_ptr()
        assert [id(v) for v in _graph_leaves(y)] == [id(t)]
    assert args[0][0] is not args[1][0]
    for s, a in zip(pool, args):
        want = impls.conv_oracle(L, pass_, s)
        for _ in range(2):  # retain_graph: the timed call repeats on the same graph
            (got,) = fn(*a)
            assert impls.rel_error(got, want[0]) < 1e-5


@pytest.mark.parametrize("impl", ["convbench", "torch"])
def test_pool_backward_row_through_autograd(impl):
    pool = [impls.pool_inputs(P, "bwd", "cpu", "float32", seed, False) for seed in range(2)]
    prepare, fn = impls.pool_row(P, "bwd", impl)
    args = [prepare(*s) for s in pool]
    for s, (y, x, dy) in zip(pool, args):
        assert [id(v) for v in _graph_leaves(y)] == [id(x)] and not s[0].requires_grad
        want = impls.pool_oracle(P, "bwd", s)
        for _ in range(2):
            assert impls.rel_error(fn(y, x, dy)[0], want[0]) == 0.0


def test_forward_rows_take_the_input_set_as_it_is():
    pool = _inputs("fwd", 1)
    prepare, fn = impls.conv_row(L, "fwd", "convbench:auto")
    assert prepare(*pool[0]) == pool[0]
    assert impls.rel_error(fn(*pool[0])[0], impls.conv_oracle(L, "fwd", pool[0])[0]) < 1e-5
