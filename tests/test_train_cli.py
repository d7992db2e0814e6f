"""`python -m convbench.train` end to end on tiny slices of the embedded digits (a few steps)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import convbench

pytest.importorskip("matplotlib")  # convbench.train draws figures; not on the GPU machine
from convbench.train import cli, runner  # noqa: E402
from convbench.train.experiments import REGISTRY  # noqa: E402
from convbench.train.results import write_json_atomic  # noqa: E402



def _has_convbench_nn():
    try:
        import convbench.nn as cbnn
        return hasattr(cbnn, "Conv2d") and hasattr(cbnn, "MaxPool2d")
    except ImportError:
        return False


pytestmark = pytest.mark.usefixtures("one_thread")  # (conftest.py)


BACKENDS = "convbench,torch" if _has_convbench_nn() else "torch"
TINY = ["--no-progress", "--epochs", "1"]


def run(tmp_path, *args):
    return cli.main([*TINY, *args, "--out", str(tmp_path)])


def load(tmp_path, exp):
    return json.loads((tmp_path / exp / "results.json").read_text())


def test_quick_end_to_end_table_json_figures(tmp_path, capsys):
    assert run(tmp_path, "--subset", "128", "--backend", BACKENDS) == 0
    out = capsys.readouterr().out
    assert "s/epoch" in out and "1rt720_cnn" in out and "ee449_2021_cnn4" in out
    res = load(tmp_path, "quick")
    assert res["complete"] is True
    backends = BACKENDS.split(",")
    assert sorted(res["results"]) == sorted(backends)
    assert len(res["timing"]) == 2 * len(backends)
    for row in res["timing"]:
        assert 0 <= row["test_acc"] <= 100 and row["time_per_epoch"] > 0
        if row["backend"] == "torch":
            assert row["vs_torch"] == pytest.approx(1.0)
    assert len(list((tmp_path / "quick" / "runs").glob("*.json"))) == 2 * len(backends)
    for name in res["figures"]:
        p = tmp_path / "quick" / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    assert not list((tmp_path / "quick").rglob("*.tmp*"))


def test_seeded_runs_repeat_exactly_and_seed_matters(tmp_path):
    for sub, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert cli.main(["1rt720-ex2", "--subset", "200", "--backend", "torch", "--seed", seed,
                         "--out", str(tmp_path / sub), *TINY]) == 0
    runs = {s: load(tmp_path / s, "1rt720-ex2")["results"]["torch"]["runs"][0] for s in "abc"}
    for k in ("train_loss_curve", "test_acc_curve", "test_acc"):
        assert runs["a"][k] == runs["b"][k]
    assert runs["a"]["train_loss_curve"] != runs["c"]["train_loss_curve"]


def test_ee449_part3_keys_and_step_recording(tmp_path):
    assert run(tmp_path, "ee449-2021-part3", "--subset", "40", "--batch-size", "2", "--runs", "2",
               "--backend", "torch") == 0
    res = load(tmp_path, "ee449-2021-part3")
    nets = res["results"]["torch"]["networks"]
    assert [n["name"] for n in nets] == ["mlp1", "mlp2", "cnn3", "cnn4", "cnn5"]
    for n in nets:
        # 40 samples / batch 2 = 20 steps -> recorded at steps 10 and 20
        assert n["steps"] == [10, 20]
        for k in ("loss_curve", "train_acc_curve", "val_acc_curve"):
            assert len(n[k]) == 2
        assert n["test_acc"] == max(n["test_accs"]) and len(n["test_accs"]) == 2
    assert len(nets[2]["weights"]) == 16 and len(nets[2]["weights"][0][0]) == 3  # cnn3 conv1 16x1x3x3
    assert len(nets[0]["weights"]) == 64 and len(nets[0]["weights"][0]) == 784   # mlp1 FC-64


def test_ee449_part4_and_part5_keys(tmp_path):
    assert run(tmp_path, "ee449-2021-part4", "--subset", "20", "--batch-size", "2", "--backend", "torch") == 0
    nets = load(tmp_path, "ee449-2021-part4")["results"]["torch"]["networks"]
    run_file = json.loads(next((tmp_path / "ee449-2021-part4" / "runs").glob("cnn3_relu*.json")).read_text())
    assert "val_acc_curve" not in run_file["result"]  # part 4 records no validation accuracy
    for n in nets:
        for k in ("relu_loss_curve", "sigmoid_loss_curve", "relu_grad_curve", "sigmoid_grad_curve"):
            assert len(n[k]) == 1
        assert n["relu_grad_curve"][0] > 0
    assert run(tmp_path, "ee449-2021-part5", "--subset", "20", "--batch-size", "2", "--backend", "torch",
               "--epochs", "3") == 0
    s = load(tmp_path, "ee449-2021-part5")["results"]["torch"]
    for k in ("loss_curve_1", "loss_curve_01", "loss_curve_001", "val_acc_curve_1", "val_acc_curve_01",
              "val_acc_curve_001"):
        assert len(s[k]) == 3
    assert s["schedule_1_01_001"]["lrs"] == [0.1, 0.01, 0.001]  # report 003: one three-rate run
    assert [ch["lr"] for ch in s["schedule_1_01_001"]["lr_changes"]] == [0.01, 0.001]
    assert "adam_test_acc" in s["schedule_vs_adam"]
    assert (tmp_path / "ee449-2021-part5" / "schedule_vs_adam_torch.png").is_file()


def test_1rt720_ex6_confusion_matrix_and_misclassified(tmp_path):
    assert run(tmp_path, "1rt720-ex6", "--subset", "80", "--batch-size", "40", "--backend", "torch") == 0
    res = load(tmp_path, "1rt720-ex6")
    for r in res["results"]["torch"]["runs"]:
        cm = r["confusion_matrix"]
        n_test = sum(map(sum, cm))
        assert n_test == 20  # subset 80 -> test a quarter
        wrong = n_test - sum(cm[i][i] for i in range(10))
        assert len(r["misclassified"]) == min(10, wrong)
        assert all(m["label"] != m["pred"] for m in r["misclassified"])
        assert r["test_acc"] == pytest.approx(100.0 * (n_test - wrong) / n_test)
    assert (tmp_path / "1rt720-ex6" / "confusion_matrix_torch.png").is_file()
    assert (tmp_path / "1rt720-ex6" / "misclassified_torch.png").is_file()


def test_1rt720_ex1_numpy_scratch_mlp_learns_and_is_timed(tmp_path):
    # default --backend (convbench): the MLP has no conv, so its run is PyTorch's all the same
    assert cli.main(["1rt720-ex1", "--subset", "600", "--epochs", "3",
                     "--batch-size", "20", "--lr", "0.1",
                     "--out", str(tmp_path), "--no-progress"]) == 0
    res = load(tmp_path, "1rt720-ex1")
    scratch = res["results"]["numpy_scratch"]["runs"][0]
    assert scratch["train_loss_curve"][-1] < scratch["train_loss_curve"][0]
    assert scratch["test_acc"] > 50  # 10 classes: well above chance after 90 steps at lr 0.1
    torch_run = res["results"]["torch"]["runs"][0]
    assert torch_run["test_acc"] > 50
    row = [r for r in res["timing"] if r["backend"] == "numpy_scratch"][0]
    assert row["vs_torch"] is not None and row["vs_torch"] > 0


def test_resume_after_interruption_redoes_only_missing_runs(tmp_path, monkeypatch):
    real = runner.train_run
    calls = []

    def interrupted(cfg, data, progress=None, world=None):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(cfg.key)
        return real(cfg, data, progress, world)

    args = ["1rt720-ex3", "--subset", "64", "--batch-size", "32", "--backend", "torch"]
    monkeypatch.setattr(runner, "train_run", interrupted)
    assert run(tmp_path, *args) == 130
    runs_dir = tmp_path / "1rt720-ex3" / "runs"
    saved = sorted(runs_dir.glob("*.json"))
    assert len(saved) == 1
    first = saved[0].read_bytes()
    assert load(tmp_path, "1rt720-ex3")["complete"] is False

    calls.clear()

    def counting(cfg, data, progress=None, world=None):
        calls.append(cfg.key)
        return real(cfg, data, progress, world)

    monkeypatch.setattr(runner, "train_run", counting)
    assert run(tmp_path, *args, "--resume") == 0
    assert calls == ["cnn_pool_first_tanh/torch"]  # the finished run was not redone
    assert saved[0].read_bytes() == first
    res = load(tmp_path, "1rt720-ex3")
    assert res["complete"] is True and len(res["results"]["torch"]["runs"]) == 2
    # a changed configuration is not "finished": --resume with another lr reruns everything
    calls.clear()
    assert run(tmp_path, *args, "--resume", "--lr", "0.02") == 0
    assert len(calls) == 2


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "r.json"
    write_json_atomic(p, {"a": float("nan"), "b": (1, 2)})
    assert json.loads(p.read_text()) == {"a": None, "b": [1, 2]}
    with pytest.raises(TypeError):
        write_json_atomic(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": None, "b": [1, 2]}
    assert [x.name for x in tmp_path.iterdir()] == ["r.json"]


def test_help_lists_every_experiment_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in REGISTRY:
        assert name in text
    for name in ("ee449-part2", "ee449-part5", "1rt720-ex1", "1rt720-ex6", "m124-cnn-width", "quick"):
        assert name in REGISTRY
    assert cli.main(["no-such-experiment"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["quick", "--backend", "cudnn"])
    assert cli.main(["quick", "--epochs", "0"]) == 2


def test_missing_data_dir_files_give_a_clear_error(tmp_path, capsys):
    assert cli.main(["1rt720-ex2", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path),
                     "--no-progress"]) == 1
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path):
    # Wherever this convbench was imported from (the installed package or
    # an in-place build), not necessarily the source tree.
    env_path = str(Path(convbench.__file__).resolve().parent.parent)
    r = subprocess.run([sys.executable, "-m", "convbench.train", "list"], capture_output=True, text=True,
                       env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == list(REGISTRY)


def test_figures_on_stand_in_data_carry_a_footnote(tmp_path):
    from PIL import Image  # matplotlib depends on Pillow

    from convbench.train import figures as fig
    plain = fig.bars(["a", "b"], [1.0, 2.0], tmp_path / "plain.png", "t")
    with fig.footnote("STAND-IN DATA: digits, not CIFAR-10"):
        stamped = fig.bars(["a", "b"], [1.0, 2.0], tmp_path / "stamped.png", "t")
    again = fig.bars(["a", "b"], [1.0, 2.0], tmp_path / "again.png", "t")  # the block ended
    h = {p.name: Image.open(p).size[1] for p in (plain, stamped, again)}
    assert h["stamped.png"] > h["plain.png"] == h["again.png"]
    assert runner._data_stamp(runner.DataCache(None, False, 0, None)) is None  # nothing loaded


def test_backends_train_interleaved_epoch_by_epoch_with_unchanged_results(monkeypatch):
    """Runs differing only in backend alternate epochs (fair timing under shared load) and give
    exactly what each gives trained alone."""
    from convbench import data as D
    from convbench.train import loop
    from convbench.train.config import RunConfig
    bundle = D.load("mnist", limit=60)
    a = RunConfig(key="a", model="1rt720/cnn", data="mnist", backend="torch", epochs=3, batch_size=20,
                  record="epochs")
    b = a.with_(key="b", lr=0.05)  # another run, so a mix-up between the two would show
    alone = [loop.train_run(a, bundle), loop.train_run(b, bundle)]
    seen, real = [], loop.train_epochs

    def logged(cfg, data, progress=None, world=None):  # re-yields each epoch, noting whose it was
        gen = real(cfg, data, progress, world)
        while True:
            try:
                e = next(gen)
            except StopIteration as done:
                return done.value
            seen.append((cfg.key, e))
            yield e

    monkeypatch.setattr(loop, "train_epochs", logged)
    both = loop.train_interleaved([(a, bundle), (b, bundle)])
    assert seen == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    for x, y in zip(both, alone):
        assert x["key"] == y["key"] and x["epochs"]["train_loss"] == y["epochs"]["train_loss"]
        assert x["test_acc"] == y["test_acc"] and x["weights"] == y["weights"]


def test_busy_machine_note(monkeypatch):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert "load 5.0 on 2 cores" in cli.busy_note(None) and "--threads 1" in cli.busy_note(None)
    assert "--threads 1" not in cli.busy_note(1)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert cli.busy_note(None) is None


def test_numpy_backend_trains_like_torch_end_to_end(tmp_path):
    """--backend numpy (convs and pools through the NumPy reference) follows torch's training."""
    assert run(tmp_path, "1rt720-ex2", "--subset", "48", "--batch-size", "16", "--epochs", "2",
               "--backend", "numpy,torch") == 0
    res = load(tmp_path, "1rt720-ex2")["results"]
    ours, ref = res["numpy"]["runs"][0], res["torch"]["runs"][0]
    # float32 throughout; 6 SGD steps cannot amplify rounding differences past 1e-4
    assert ours["train_loss_curve"] == pytest.approx(ref["train_loss_curve"], rel=1e-4)
    assert ours["test_loss_curve"] == pytest.approx(ref["test_loss_curve"], rel=1e-4)


def test_wide_mlp_results_stay_small_and_readable(tmp_path):
    """M124's 3072-512-... MLPs: no 1.5M-float weight dump in every run file (was ~40 MB each)."""
    assert run(tmp_path, "m124-mlp-width", "--subset", "20", "--batch-size", "10", "--backend", "torch") == 0
    d = tmp_path / "m124-mlp-width"
    for p in [d / "results.json", *(d / "runs").glob("*.json")]:
        assert p.stat().st_size < 200_000, p
        assert p.stat().st_mode & 0o044 == 0o044  # group/other may read the results
    runs = load(tmp_path, "m124-mlp-width")["results"]["torch"]["runs"]
    assert [r["weights"] for r in runs] == [None, None]


def test_autotune_flag_tunes_records_and_resets(tmp_path, capsys):
    import convbench
    cache = tmp_path / "tune.json"
    try:
        assert cli.main(["1rt720-ex2", "--subset", "100", "--backend", "convbench", "--autotune",
                         "--autotune-cache", str(cache), "--out", str(tmp_path), *TINY]) == 0
        assert convbench.backends.autotune is True
        assert load(tmp_path, "1rt720-ex2")["options"]["autotune"] is True
        # every conv layer of the CNN tuned in each pass, the choices kept in the file
        assert len(convbench.backends.autotune_choices()) >= 3
        assert json.loads(cache.read_text())["format"] == 1
    finally:
        convbench.backends.autotune = False
        convbench.backends.autotune_cache = None
        convbench.backends.clear_autotune()
    assert cli.main(["quick", "--autotune-cache", str(cache)]) == 2
    assert "--autotune-cache needs --autotune" in capsys.readouterr().err
