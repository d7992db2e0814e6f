"""CPU autotuning (convbench.backends.autotune): the choice is a real candidate
and the fastest one measured, results stay right, choices are keyed by
shape, pass, ISA build and threads, and the optional cache file persists
them and survives corruption."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench import _C, _autotune, backends
from _helpers import assert_close


@pytest.fixture(autouse=True)
def _fresh_tuner():
    backends.clear_autotune()
    with backends.flags(autotune=True, autotune_cache=None):
        yield
    backends.clear_autotune()


def _layer(dtype=torch.float64):
    x = torch.randn(3, 8, 11, 11, dtype=dtype, requires_grad=True)
    w = torch.randn(16, 8, 3, 3, dtype=dtype, requires_grad=True)
    b = torch.randn(16, dtype=dtype, requires_grad=True)
    return x, w, b


def test_tuned_calls_give_torchs_results_in_every_pass():
    x, w, b = _layer()
    for _ in range(2):  # the tuning call and a call from the cache
        y = convbench.conv2d(x, w, b, padding=1)
        ref = F.conv2d(x, w, b, padding=1)
        assert_close(y, ref, torch.float64, "forward")
        g = torch.randn_like(ref)
        for a, r in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
            assert_close(a, r, torch.float64, "gradient")
    passes = sorted(k[0] for k in backends.autotune_choices())
    assert passes == [0, 1, 2]  # forward, grad-input, grad-weight: one entry each


def test_each_choice_is_one_of_the_candidates():
    x, w, b = _layer(torch.float32)
    convbench.conv2d(x, w, b, padding=1).sum().backward()
    for (pass_, dtype, shape, isa, threads), choice in backends.autotune_choices().items():
        assert isa == backends.cpu_isa and threads == _C.openmp_max_threads()
        assert tuple(choice) in [tuple(c) for c in _C.conv2d_candidates(pass_, dtype, list(shape))]


def test_the_fastest_candidate_wins():
    # A run callback whose cost we control: the tuner must pick the cheapest.
    cands = [tuple(c) for c in _C.conv2d_candidates(0, 0, [1, 1, 8, 8, 1, 3, 3, 6, 6, 1, 1, 0, 0,
                                                           1, 1, 1])]
    slow = {c: 0.002 * (i + 1) for i, c in enumerate(cands)}
    fastest = cands[len(cands) // 2]
    slow[fastest] = 0.0

    def run(algo, engine):
        time.sleep(slow[(algo, engine)])

    shape = (1, 1, 8, 8, 1, 3, 3, 6, 6, 1, 1, 0, 0, 1, 1, 1)
    assert _autotune.TUNER.choose(0, 0, shape, run) == fastest
    # ... and asks nothing again for the same key.
    assert _autotune.TUNER.choose(0, 0, shape, lambda a, v: pytest.fail("re-tuned")) == fastest


class _FakeClock:
    """The tuner's clock, advanced only by the simulated kernels: timing tests
    that a loaded machine cannot disturb."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_a_near_tie_keeps_the_heuristics_choice(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(_autotune, "time", clock)
    shape = (1, 1, 8, 8, 1, 3, 3, 6, 6, 1, 1, 0, 0, 1, 1, 1)
    heuristic = tuple(_C.conv2d_resolve(0, 0, 0, 0, list(shape)))
    others = [tuple(c) for c in _C.conv2d_candidates(0, 0, list(shape)) if tuple(c) != heuristic]
    cost = {c: 0.0100 for c in others}
    cost[heuristic] = 0.0101  # 1% slower: within noise, the heuristic stays

    def run(algo, engine):
        clock.now += cost[(algo, engine)]

    assert _autotune.TUNER.choose(0, 0, shape, run) == heuristic
    cost[heuristic] = 0.0110  # 10% slower: another candidate wins
    _autotune.TUNER.clear()
    assert _autotune.TUNER.choose(0, 0, shape, run) != heuristic


def test_keys_separate_isa_variants_and_shapes():
    x, w, b = _layer()
    for isa in backends.cpu_isas():
        with backends.flags(cpu_isa=isa):
            convbench.conv2d(x, w, b)
    convbench.conv2d(x[:, :, :9, :9], w, b)
    keys = backends.autotune_choices()
    assert {k[3] for k in keys} == set(backends.cpu_isas())
    assert len(keys) == len(backends.cpu_isas()) + 1


def test_off_by_default_and_bit_identical_to_the_heuristic():
    # (the fixture turned it on; the default shows in a fresh process)
    code = "import convbench; print(convbench.backends.autotune)"
    env = {k: v for k, v in os.environ.items() if k != "CONVBENCH_AUTOTUNE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    x, w, b = _layer(torch.float32)
    with backends.flags(autotune=False):
        a = convbench.conv2d(x, w, b, padding=1)
        again = convbench.conv2d(x, w, b, padding=1)
    assert torch.equal(a, again) and not backends.autotune_choices()


def test_explicit_algorithms_are_not_tuned():
    x, w, b = _layer()
    convbench.conv2d(x, w, b, algo="im2col")
    assert not backends.autotune_choices()


def test_cache_file_persists_choices(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "tune.json"
    x, w, b = _layer()
    with backends.flags(autotune_cache=str(path)):
        convbench.conv2d(x, w, b)
        first = backends.autotune_choices()
    data = json.loads(path.read_text())
    assert data["format"] == 1 and len(next(iter(data["entries"].values()))) == len(first)
    # A fresh process state: the choice comes from the file, no timing at all.
    backends.clear_autotune()
    monkeypatch.setattr(_autotune, "_timed_call", lambda *a, **k: pytest.fail("timed despite the cache"))
    with backends.flags(autotune_cache=str(path)):
        y = convbench.conv2d(x, w, b)
    assert backends.autotune_choices() == first
    assert_close(y, F.conv2d(x, w, b), torch.float64, "forward from cache")


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"format": 1, "entries": {"x": 5}}',
                                     '{"format": 99, "entries": {}}', ""])
def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, garbage):
    path = tmp_path / "tune.json"
    path.write_text(garbage)
    x, w, b = _layer()
    with backends.flags(autotune_cache=str(path)):
        y = convbench.conv2d(x, w, b)
    assert_close(y, F.conv2d(x, w, b), torch.float64, "forward")
    data = json.loads(path.read_text())
    assert data["format"] == 1 and any(data["entries"].values())


def test_entries_of_another_machine_are_not_used(tmp_path, monkeypatch):
    path = tmp_path / "tune.json"
    shape = [3, 8, 11, 11, 16, 3, 3, 9, 9, 1, 1, 0, 0, 1, 1, 1]
    key = json.dumps([0, 1, shape, backends.cpu_isa, _C.openmp_max_threads()])
    path.write_text(json.dumps({"format": 1, "entries": {"Other CPU | convbench 0.0": {key: [2, 1]}}}))
    with backends.flags(autotune_cache=str(path)):
        x, w, b = _layer()
        convbench.conv2d(x, w, b)
    data = json.loads(path.read_text())
    assert "Other CPU | convbench 0.0" in data["entries"]  # kept, not trusted
    assert len(data["entries"]) == 2


def test_flags_restore_and_type_checks():
    with backends.flags(autotune=False):
        assert backends.autotune is False
    assert backends.autotune is True
    with pytest.raises(TypeError, match="autotune must be True or False"):
        backends.autotune = 1
    with pytest.raises(TypeError, match="autotune_cache must be a path or None"):
        backends.autotune_cache = 3


@pytest.mark.parametrize("value, expect", [("1", "True"), ("0", "False")])
def test_environment_variable(value, expect):
    env = dict(os.environ, CONVBENCH_AUTOTUNE=value)
    code = "import convbench; print(convbench.backends.autotune)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == expect, out.stderr


def test_environment_variable_bad_value_fails_clearly():
    env = dict(os.environ, CONVBENCH_AUTOTUNE="maybe")
    out = subprocess.run([sys.executable, "-c", "import convbench"], env=env, capture_output=True,
                         text=True)
    assert out.returncode != 0 and "CONVBENCH_AUTOTUNE=maybe" in out.stderr


def test_cuda_tuning_times_synchronised_batches_per_gpu_model(monkeypatch):
    # The CUDA path without a GPU: kernels are asynchronous, so a candidate's
    # time must span a device synchronisation. Here "launching" only queues
    # work that the fake synchronisation then performs (sleeps): a tuner that
    # timed launches alone would see every candidate as equally fast.
    cost = {(1, 0): 400e-6, (3, 1): 300e-6, (3, 2): 60e-6, (5, 1): 200e-6,
            (5, 0): 250e-6}  # (the heuristic's algorithm with its own tiling)
    queued = []
    syncs = []
    clock = _FakeClock()
    monkeypatch.setattr(_autotune, "time", clock)

    def sync():
        syncs.append(1)
        clock.now += sum(queued)
        queued.clear()

    monkeypatch.setattr(_autotune._C, "conv2d_candidates",
                        lambda p, d, s, device=0: [c for c in cost if c != (5, 0)]
                        if device == 1 else [])
    monkeypatch.setattr(_autotune._C, "conv2d_choose_algo", lambda dev, p, d, s: 5)
    monkeypatch.setattr(_autotune, "_gpu_model", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(_autotune, "_cuda_sync", lambda index: sync)
    shape = (2, 3, 8, 8, 4, 3, 3, 6, 6, 1, 1, 0, 0, 1, 1, 1)
    tuner = _autotune.Tuner()
    tuner.enabled = True
    ran = []

    def run(a, v):
        ran.append((a, v))
        queued.append(cost[(a, v)])

    assert tuner.choose(0, 0, shape, run, device=1, device_index=1) == (3, 2)
    assert syncs and set(ran) == set(cost)  # the heuristic's own choice timed too
    assert list(tuner.choices()) == [(0, 0, shape, "cuda:Fake GPU 1", 0)]
    # Keyed by GPU model: another GPU tunes again, the same one does not.
    ran.clear()
    assert tuner.choose(0, 0, shape, run, device=1, device_index=1) == (3, 2) and not ran
    tuner.choose(0, 0, shape, run, device=1, device_index=2)
    assert ran and len(tuner.choices()) == 2
