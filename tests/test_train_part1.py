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


def test_cli_learns_xor_and_draws_the_figures(tmp_path):
    assert cli.main(["ee449-part1", "--epochs", "1500", "--out", str(tmp_path), "--no-progress"]) == 0
    d = tmp_path / "ee449-part1"
    res = json.loads((d / "results.json").read_text())["results"]
    for act in ("sigmoid", "tanh"):  # smooth units solve noisy XOR reliably with this seed
        assert res[act]["train_acc"] > 90 and res[act]["loss_curve"][-1] < res[act]["loss_curve"][0]
    assert res["relu"]["loss_curve"][-1] < res["relu"]["loss_curve"][0]
    for name in ("activations.png", "xor_decision_boundaries.png", "xor_loss.png"):
        assert (d / name).read_bytes()[:4] == b"\x89PNG"
