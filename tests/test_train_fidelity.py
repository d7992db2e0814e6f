"""The experiments run as the five reports ran them (issue 11, items 1-8), at tiny scale."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")  # convbench.train draws figures; not on the GPU machine
from convbench import data as D  # noqa: E402
from convbench import models  # noqa: E402
from convbench.train import cli, loop  # noqa: E402
from convbench.train import figures as fig  # noqa: E402
from convbench.train.config import RunConfig  # noqa: E402
from convbench.train.experiments import REGISTRY, Options  # noqa: E402
from convbench.train.schedule import scaled_switches  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # (conftest.py)


TINY = ["--no-progress", "--backend", "torch", "--epochs", "1"]


def _load(out, exp):
    return json.loads((out / exp / "results.json").read_text())


def _by_key(cfgs):
    return {c.key.rsplit("/", 1)[0]: c for c in cfgs}


# ---- 1. part 5 trains each report's own network ------------------------------------------------

@pytest.mark.parametrize("exp,net", [("ee449-part5", "ee449/cnn_3"),        # report 000
                                     ("ee449-color-part5", "ee449_color/cnn_4"),  # report 001
                                     ("ee449-2021-part5", "ee449_2021/mlp2")])    # report 003
def test_part5_trains_the_reports_network(exp, net):
    cfgs = REGISTRY[exp].plan(Options(backends=("torch",)))
    assert {c.model for c in cfgs} == {net}


def test_part5_network_option_and_its_check(tmp_path, capsys):
    cfgs = REGISTRY["ee449-part5"].plan(Options(network="cnn_5"))
    assert {c.model for c in cfgs} == {"ee449/cnn_5"}
    with pytest.raises(ValueError, match="cnn_9"):
        REGISTRY["ee449-part5"].plan(Options(network="cnn_9"))
    assert cli.main(["ee449-part5", "--network", "cnn_9", "--out", str(tmp_path), *TINY]) == 1
    assert "--network 'cnn_9'" in capsys.readouterr().err


# ---- 2. fixed switch points, per report; the plateau rule kept as an option -----------------------

def test_part5_schedules_are_each_reports_switch_points():
    full = Options(backends=("torch",))
    s000 = _by_key(REGISTRY["ee449-part5"].plan(full))
    # 000, Figs. 24-26: 0.1 for 10 epochs, then 0.01 to 30; the other run 0.001 after epoch 15
    assert (s000["schedule_1_01"].lr_schedule, s000["schedule_1_01"].lr_switch) == ((0.1, 0.01), (10,))
    assert s000["schedule_1_01_001"].lr_switch == (10, 15)
    assert s000["schedule_1_01"].epochs == s000["schedule_1_01_001"].epochs == 30
    assert s000["schedule_1_01"].lr_switch_unit == "epoch"
    # 001: global steps 5000 and 10000 over 30 epochs of 900 steps
    s001 = _by_key(REGISTRY["ee449-color-part5"].plan(full))
    c = s001["schedule_1_01_001"]
    assert (c.lr_switch, c.lr_switch_unit, c.epochs, c.lr_switch_of) == ((5000, 10000), "step", 30, 27000)
    assert s001["schedule_1_01"].lr_switch == (5000,)
    # 003: one run, 24 epochs at 0.1, 3 at 0.01, 13 at 0.001
    s003 = _by_key(REGISTRY["ee449-2021-part5"].plan(full))
    c = s003["schedule_1_01_001"]
    assert (c.lr_schedule, c.lr_switch, c.epochs) == ((0.1, 0.01, 0.001), (24, 27), 40)
    assert "schedule_1_01" not in s003
    # --schedule plateau: the spec's rule, no fixed points
    plateau = _by_key(REGISTRY["ee449-part5"].plan(Options(schedule="plateau")))
    assert plateau["schedule_1_01_001"].lr_switch == () and plateau["schedule_1_01_001"].epochs == 30


def test_switch_points_exact_at_full_scale_and_scaled_for_short_runs():
    assert scaled_switches((10, 15), 30, 30) == [10, 15]
    assert scaled_switches((5000, 10000), 27000, 27000) == [5000, 10000]
    assert scaled_switches((10, 15), 30, 3) == [1, 2]          # every rate still reached
    assert scaled_switches((24, 27), 40, 2) == [1, 2]  # crowded: kept increasing
    assert scaled_switches((5000, 10000), 27000, 54) == [10, 20]


@pytest.mark.parametrize("unit,points,of", [("epoch", (2, 3), 4), ("step", (5, 11), 16)])
def test_loop_switches_the_rate_exactly_there(unit, points, of):
    bundle = D.load("mnist5", limit=16)  # 16 train / batch 4 = 4 steps per epoch
    cfg = RunConfig(key="s", model="ee449_2021/mlp2", data="mnist5", backend="torch", lr=0.1,
                    lr_schedule=(0.1, 0.01, 0.001), lr_switch=points, lr_switch_unit=unit,
                    lr_switch_of=of, epochs=4, batch_size=4, record_every=1)
    rec = loop.train_run(cfg, bundle)
    assert [c["step"] for c in rec["lr_changes"]] == [p * (4 if unit == "epoch" else 1) for p in points]
    assert [c["lr"] for c in rec["lr_changes"]] == [0.01, 0.001]
    expected = {"epoch": [0.1, 0.1, 0.01, 0.001], "step": [0.1, 0.1, 0.01, 0.001]}[unit]
    assert rec["epochs"]["lr"] == expected  # the rate each epoch started with
    assert rec["lr_switch"]["rule"] == "fixed"


def test_part5_schedule_figure_shows_loss_and_accuracy(tmp_path):
    assert cli.main(["ee449-2021-part5", "--subset", "20", "--batch-size", "2", "--epochs", "3",
                     "--runs", "1", "--out", str(tmp_path), "--no-progress", "--backend", "torch"]) == 0
    s = _load(tmp_path, "ee449-2021-part5")["results"]["torch"]
    sched = s["schedule_1_01_001"]
    assert [c["lr"] for c in sched["lr_changes"]] == [0.01, 0.001]
    assert sched["report_switch_points"] == [24, 27] and "0.1 until epoch" in sched["rule"]
    assert len(sched["loss_curve"]) == len(sched["val_acc_curve"]) == 3
    from PIL import Image
    w, h = Image.open(tmp_path / "ee449-2021-part5" / "schedule_vs_adam_torch.png").size
    assert w > 1.8 * h  # two panels side by side: loss and validation accuracy


# ---- 3. compared with part 3's Adam run: reused when there, else trained as part 3 does ----------

def test_part5_reuses_part3_adam_runs_or_trains_them_and_says_which(tmp_path, capsys):
    common = ["--subset", "20", "--batch-size", "10", "--runs", "2", *TINY]
    assert cli.main(["ee449-2021-part5", *common, "--out", str(tmp_path)]) == 0
    s = _load(tmp_path, "ee449-2021-part5")["results"]["torch"]
    assert s["adam"]["source"].startswith("trained here as part 3 defines it")
    assert len(s["adam"]["test_accs"]) == 2  # part 3's runs, the best kept
    assert s["adam"]["test_acc"] == max(s["adam"]["test_accs"])
    assert "trained here" in capsys.readouterr().out

    fresh = tmp_path / "again"
    assert cli.main(["ee449-2021-part3", *common, "--out", str(fresh)]) == 0
    part3 = {n["name"]: n for n in _load(fresh, "ee449-2021-part3")["results"]["torch"]["networks"]}
    capsys.readouterr()
    assert cli.main(["ee449-2021-part5", *common, "--out", str(fresh)]) == 0
    out = capsys.readouterr().out
    s = _load(fresh, "ee449-2021-part5")["results"]["torch"]
    assert s["adam"]["source"].startswith("part 3's results reused")
    assert "part 3's results reused" in out and "reusing" in out
    assert s["adam"]["test_acc"] == part3["mlp2"]["test_acc"]  # the best of part 3's runs
    assert sorted(s["adam"]["test_accs"]) == sorted(part3["mlp2"]["test_accs"])
    assert s["schedule_vs_adam"]["adam_source"] == s["adam"]["source"]
    # nothing of part 3 was trained again: part 5's own run files hold only its SGD runs
    own = {p.name for p in (fresh / "ee449-2021-part5" / "runs").glob("*.json")}
    assert not any(n.startswith("mlp2_run") for n in own)


# ---- 4. initial weights recorded and drawn beside the final ones (report 000) -----------------------

def test_part3_records_initial_weights_and_draws_them_beside_the_final(tmp_path):
    assert cli.main(["ee449-2021-part3", "--subset", "20", "--batch-size", "10", "--runs", "1",
                     "--out", str(tmp_path), *TINY]) == 0
    nets = {n["name"]: n for n in _load(tmp_path, "ee449-2021-part3")["results"]["torch"]["networks"]}
    cnn3 = nets["cnn3"]
    torch.manual_seed(0)  # run 0's seed: the weights the network started from
    m = models.build("ee449_2021/cnn3", backend="torch", in_channels=1, image_size=28, num_classes=5)
    assert cnn3["initial_weights"] == m.first_layer_weight().detach().tolist()
    assert cnn3["initial_weights"] != cnn3["weights"]
    from PIL import Image
    d = tmp_path / "ee449-2021-part3"
    both = Image.open(d / "weights_cnn3_torch.png").size
    alone = Image.open(fig.weight_grid(cnn3["weights"], (1, 28, 28), tmp_path / "alone.png", "t")).size
    assert both[0] > 1.6 * alone[0]  # two grids side by side


# ---- 8. smaller ones ------------------------------------------------------------------------

def test_loss_and_training_accuracy_are_the_batch_at_that_step():
    bundle = D.load("mnist5", limit=24)
    every1 = RunConfig(key="a", model="ee449_2021/mlp2", data="mnist5", backend="torch",
                       optimizer="adam", epochs=1, batch_size=4, record_every=1, record_val=False)
    every2 = every1.with_(record_every=2)
    a, b = loop.train_run(every1, bundle), loop.train_run(every2, bundle)
    assert b["steps"] == [2, 4, 6]
    assert b["loss_curve"] == a["loss_curve"][1::2]  # not a mean over the steps since the last
    assert b["train_acc_curve"] == a["train_acc_curve"][1::2]
    assert all(v in (0.0, 25.0, 50.0, 75.0, 100.0) for v in a["train_acc_curve"])  # one batch of 4


def test_colour_weights_drawn_as_rgb_and_merged_where_the_report_merged():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    imgs, rgb = fig.weight_images(w, (3, 32, 32))
    assert rgb and imgs.shape == (4, 3, 3, 3) and imgs.min() == 0 and imgs.max() == 1
    np.testing.assert_allclose(imgs[1, :, :, 2], (w[1, 2] - w[1].min()) / (w[1].max() - w[1].min()))
    merged, rgb = fig.weight_images(w, (3, 32, 32), rgb=False)  # M124 merged the channels
    assert not rgb and merged.shape == (4, 3, 3)
    gray, rgb = fig.weight_images(np.ones((2, 1 * 5 * 5)), (1, 5, 5))  # an MLP on gray input
    assert not rgb and gray.shape == (2, 5, 5)


# ---- 5. the data actually used, and its size, on every figure and results file --------------------

def _footnote_of(monkeypatch):
    """Records the footnote in force at each figure save."""
    seen = {}
    real = fig._save

    def spy(f, path):
        text = fig._FOOTNOTE() if callable(fig._FOOTNOTE) else fig._FOOTNOTE
        seen[Path(path).name] = text
        return real(f, path)
    monkeypatch.setattr(fig, "_save", spy)
    return seen


def test_every_figure_and_results_file_names_the_data_and_its_size(tmp_path, monkeypatch):
    seen = _footnote_of(monkeypatch)
    assert cli.main(["ee449-2021-part4", "--subset", "20", "--batch-size", "10",
                     "--out", str(tmp_path), *TINY]) == 0
    res = _load(tmp_path, "ee449-2021-part4")
    desc = res["data"][0]
    assert "embedded mnist_5k" in desc and "5,000 of MNIST's 70,000" in desc
    assert "20 train/" in desc and "digits 0-4 standing in for the report's 5 classes" in desc
    assert seen and all(t and f"DATA: {desc}" in t for t in seen.values())
    run_file = json.loads(next((tmp_path / "ee449-2021-part4" / "runs").glob("*.json")).read_text())
    assert run_file["config"]["data"] == desc
    # stand-in CIFAR: named and marked
    seen.clear()
    assert cli.main(["ee449-part4", "--subset", "20", "--batch-size", "10",
                     "--out", str(tmp_path), *TINY]) == 0
    assert all("STAND-IN DATA" in t and "DATA: cifar10_gray_full: embedded" in t for t in seen.values())
    # a custom experiment (part 2) too
    seen.clear()
    assert cli.main(["ee449-part2", "--out", str(tmp_path), "--no-progress"]) == 0
    res = _load(tmp_path, "ee449-part2")
    assert any("digit 7" in d for d in res["data"]) and any("RANDOM" in d for d in res["data"])
    assert seen and all("RANDOM" in t and "digit 7" in t for t in seen.values())


def _fashion(root, n_train=100, n_test=50):
    import gzip
    import struct
    d = root / "FashionMNIST" / "raw"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, arr in {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                      "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
                      "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
                      "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8)}.items():
        head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
        (d / (name + ".gz")).write_bytes(gzip.compress(head + arr.tobytes()))


def test_2021_edition_uses_fashion_mnist_classes_when_the_user_has_them(tmp_path):
    _fashion(tmp_path)
    b = D.load("mnist5", data_dir=tmp_path)
    assert b.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    assert "Fashion-MNIST files under" in b.describe() and "classes 0-4 (T-shirt/top" in b.describe()
    assert len(b.train) + len(b.val) == 50 and int(b.test.y.max()) == 4
    with pytest.raises(FileNotFoundError, match="MNIST not found"):  # the 10-class sets want MNIST
        D.load("mnist", data_dir=tmp_path)


# ---- 7. part 2: the assignment's files when given, else digit 7 and random kernels said so --------

def test_part2_uses_the_assignments_files_when_given(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    samples, kernel = rng.random((3, 1, 10, 10)), rng.standard_normal((2, 1, 4, 4))
    np.save(data / "samples_7.npy", samples)
    np.save(data / "kernel.npy", kernel)
    assert cli.main(["ee449-part2", "--data-dir", str(data), "--out", str(tmp_path), "--no-progress"]) == 0
    res = _load(tmp_path, "ee449-part2")["results"]
    assert res["kernels_random"] is False and "kernel.npy" in res["kernel_source"]
    assert res["output_shape"] == [3, 2, 7, 7] and res["agrees_with_torch"]
    assert res["labels"] == ["7"] * 3

    assert cli.main(["ee449-part2", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    res = _load(tmp_path / "b", "ee449-part2")["results"]
    assert res["kernels_random"] is True and res["kernel_source"].startswith("RANDOM")
    assert res["labels"] == ["7"] * 5 and res["input_shape"] == [5, 1, 28, 28]


# ---- 8. smaller ones, continued -------------------------------------------------------------

def test_part4_trains_on_all_training_images_where_the_report_did():
    plans = {e: REGISTRY[f"{e}-part4"].plan(Options(backends=("torch",))) for e in
             ("ee449", "ee449-color", "ee449-2021")}
    assert {c.data for c in plans["ee449"]} == {"cifar10_gray_full"}    # report 000: 50,000
    assert {c.data for c in plans["ee449-color"]} == {"cifar10_color_full"}  # report 001: 50,000
    assert {c.data for c in plans["ee449-2021"]} == {"mnist5"}  # report 003 kept its split
    full, split = D.load("cifar10_gray_full"), D.load("cifar10_gray")
    assert full.val is None and len(full.train) == len(split.train) + len(split.val)
    assert torch.equal(full.test.x, split.test.x) and full.input_shape == (1, 32, 32)


def test_part3_draws_test_vs_training_accuracy(tmp_path, monkeypatch):
    drawn = {}
    real = fig.points

    def spy(labels, x, y, path, *a, **k):
        drawn.update(labels=labels, x=x, y=y)
        return real(labels, x, y, path, *a, **k)
    monkeypatch.setattr(fig, "points", spy)
    assert cli.main(["ee449-2021-part3", "--subset", "20", "--batch-size", "10", "--runs", "1",
                     "--out", str(tmp_path), *TINY]) == 0
    nets = _load(tmp_path, "ee449-2021-part3")["results"]["torch"]["networks"]
    assert drawn["labels"] == [n["name"] for n in nets]
    assert drawn["y"] == [n["test_acc"] for n in nets] and drawn["x"] == [n["train_acc"] for n in nets]
    assert (tmp_path / "ee449-2021-part3" / "test_vs_train_torch.png").is_file()


def test_1rt720_legends_carry_final_values(monkeypatch, tmp_path):
    legends = []
    real = fig._save

    def spy(f, path):
        legends.extend(t.get_text() for ax in f.axes if ax.get_legend() for t in ax.get_legend().get_texts())
        return real(f, path)
    monkeypatch.setattr(fig, "_save", spy)
    rec = {"epochs": {"train_loss": [1.0, 0.5], "test_loss": [1.1, 0.61234], "train_acc": [50.0, 90.0],
                      "test_acc": [48.0, 88.5]}}
    fig.epoch_curves(rec, tmp_path / "c.png", "t", "s")
    assert legends == ["train (final 0.5000)", "test (final 0.6123)", "train (final 90.00%)",
                       "test (final 88.50%)"]


def test_m124_prints_each_model_with_parameter_counts(tmp_path):
    assert cli.main(["m124-cnn-width", "--subset", "20", "--batch-size", "10", "--out", str(tmp_path),
                     *TINY]) == 0
    text = (tmp_path / "m124-cnn-width" / "models.txt").read_text()
    runs = _load(tmp_path, "m124-cnn-width")["results"]["torch"]["runs"]
    for r in runs:
        assert r["model"] in text and f"total: {r['n_params']:,} parameters" in text
    assert "Layer: features.0.weight | Size: [64, 3, 3, 3] | 1,728 parameters" in text  # report 004's Model 3


def test_help_says_which_report_each_default_follows(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name, exp in REGISTRY.items():
        if name.startswith("ee449"):
            assert "report 00" in exp.title + exp.help, name
    assert "cnn_3 for ee449 as report 000" in text and "cnn_4 for ee449-color as report 001" in text
    assert "after epochs 10 and 15 of 30" in text and "after steps 5000 and 10000" in text
    assert "24 and 27 of 40" in text and "'plateau'" in text
    assert "reused from OUT/ee449-part3" in text and "Fashion-MNIST" in text
    assert "all 50,000 training images, as the report did" in text
