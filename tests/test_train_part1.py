"""EE449 part 1 (optional): the from-scratch NumPy 2-4-1 MLP, checked against torch autograd."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")  # convbench.train draws figures; not on the GPU machine
from convbench.train import cli  # noqa: E402
from convbench.train.experiments import ee449_part1 as P1  # noqa: E402


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_backprop_matches_torch_autograd(act):
    rng = np.random.default_rng(3)
    x, y = P1.noisy_xor(rng, per_corner=5)
    p = P1.init(rng)
    loss, out, grads = P1.forward_backward(p, x, y, act)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[act]
    logits = (f(torch.tensor(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"])[:, 0]
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(y))
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-9)  # float64; the 1e-12 log guard is far below
    np.testing.assert_allclose(out, torch.sigmoid(logits).detach().numpy(), rtol=1e-12)
    for k in p:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_derivatives_match_finite_differences():
    z = np.linspace(-4, 4, 41) + 0.013  # off the ReLU kink
    for name, (f, df) in P1.ACTS.items():
        num = (f(z + 1e-6) - f(z - 1e-6)) / 2e-6
        np.testing.assert_allclose(df(z), num, rtol=1e-6, atol=1e-8, err_msg=name)


def test_cli_learns_xor_and_draws_the_figures(tmp_path):  # the cross-entropy variant
    assert cli.main(["ee449-part1-bce", "--epochs", "1500", "--out", str(tmp_path), "--no-progress"]) == 0
    d = tmp_path / "ee449-part1-bce"
    res = json.loads((d / "results.json").read_text())["results"]
    for act in ("sigmoid", "tanh"):  # smooth units solve noisy XOR reliably with this seed
        assert res[act]["train_acc"] > 90 and res[act]["loss_curve"][-1] < res[act]["loss_curve"][0]
    assert res["relu"]["loss_curve"][-1] < res["relu"]["loss_curve"][0]
    for name in ("activations.png", "xor_decision_boundaries.png", "xor_loss.png"):
        assert (d / name).read_bytes()[:4] == b"\x89PNG"


# ---- report 001's set-up (ee449-part1) -----------------------------------------------------

@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_squared_error_backprop_matches_torch_autograd(act):
    rng = np.random.default_rng(4)
    x, y = P1.xor_dataset(rng, 12)
    p = P1.init(rng)
    loss, out, grads = P1.mse_forward_backward(p, x, y, act)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[act]
    o = f((f(torch.tensor(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"])[:, 0])  # activation on the output
    err = ((o - torch.tensor(y)) ** 2)
    err.sum().backward()  # the report's update has no 1/N
    assert loss == pytest.approx(float(err.detach().mean()), rel=1e-12)
    for k in p:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_xor_set_is_the_reports():
    x, y = P1.xor_dataset(np.random.default_rng(0), 1000)
    assert x.shape == (1000, 2) and set(np.unique(y)) == {0.0, 1.0}
    near = np.abs(np.abs(x) - 1).max(axis=1) < 1.6  # noise 0.4 around (+-1, +-1)
    assert near.mean() > 0.99
    clean = np.abs(x).min(axis=1) > 0.8  # far from the axes the label is "signs differ"
    assert np.all(y[clean] == (np.sign(x[clean, 0]) != np.sign(x[clean, 1])))


def test_cli_runs_the_reports_setup(tmp_path):
    assert cli.main(["ee449-part1", "--epochs", "2000", "--out", str(tmp_path), "--no-progress"]) == 0
    d = tmp_path / "ee449-part1"
    full = json.loads((d / "results.json").read_text())
    res = full["results"]
    assert (res["n_train"], res["n_test"], res["noise"], res["lr"]) == (1000, 100, 0.4, 0.001)
    assert res["sigmoid"]["epochs"] == res["tanh"]["epochs"] == 2000
    assert res["relu"]["epochs"] == 20 and res["relu"]["update"] == "per-sample SGD"
    for act in ("sigmoid", "tanh"):
        assert res[act]["test_acc"] > 90 and res[act]["loss_curve"][-1] < res[act]["loss_curve"][0]
        assert len(res[act]["test_acc_curve"]) == len(res[act]["train_acc_curve"]) == 100
    assert "1000 training / 100 held-out" in full["data"][0]
    for name in ("activations.png", "xor_decision_boundaries.png", "xor_loss_accuracy.png"):
        assert (d / name).read_bytes()[:4] == b"\x89PNG"
