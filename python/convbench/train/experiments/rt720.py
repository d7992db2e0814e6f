"""Deep Learning 1RT720 hand-in 2 experiments (spec section 2, report 002), MNIST."""
from __future__ import annotations

from dataclasses import replace

from .. import figures as fig
from ..config import RunConfig
from ..numpy_mlp import BACKEND as NUMPY_SCRATCH
from .base import Experiment, per_backend, register

DATA = "mnist"


def _run(o, key, model, optimizer, lr, epochs, betas=(0.9, 0.999), confusion=False, sweeps=False):
    return per_backend(o, RunConfig(
        key=key, model=f"1rt720/{model}", data=DATA, optimizer=optimizer,
        lr=lr if sweeps else o.learning_rate(lr), betas=betas, epochs=o.n_epochs(epochs),
        batch_size=o.batch(128), seed=o.seed, record="epochs", confusion=confusion,
        tags={"name": key}))


def _summarize(records, o):
    out = []
    for r in records:
        e = r["epochs"]
        out.append({"name": r["tags"]["name"], "model": r["model"], "test_acc": r["test_acc"],
                    "train_loss_curve": e["train_loss"], "train_acc_curve": e["train_acc"],
                    "test_loss_curve": e.get("test_loss", []), "test_acc_curve": e.get("test_acc", []),
                    "time_per_epoch": r["time_per_epoch"], "total_time": r["total_time"],
                    **({"confusion_matrix": r["confusion_matrix"], "misclassified": r["misclassified"]}
                       if "confusion_matrix" in r else {})})
    return {"runs": out}


def _subtitle(run, cfg_by_name):
    c = cfg_by_name.get(run["name"], {})
    return (f"batch size {c.get('batch_size', '?')} | learning rate {c.get('lr', '?')} | "
            f"epochs {len(run['train_loss_curve'])} | training time {run['total_time']:.0f} s")


def _figures(title):
    def figures(summaries, ctx):
        paths = []
        cfgs = ctx.configs
        for backend, s in summaries.items():
            for run in s["runs"]:
                rec = {"epochs": {"train_loss": run["train_loss_curve"], "train_acc": run["train_acc_curve"],
                                  "test_loss": run["test_loss_curve"], "test_acc": run["test_acc_curve"]}}
                paths.append(fig.epoch_curves(
                    rec, ctx.out_dir / f"curves_{run['name']}_{backend}.png",
                    f"{title}: {run['name']} ({backend}), test accuracy {run['test_acc']:.2f}%",
                    _subtitle(run, cfgs)))
            with_cm = [r for r in s["runs"] if "confusion_matrix" in r]
            if with_cm:
                best = max(with_cm, key=lambda r: r["test_acc"])
                classes = ctx.data(DATA).class_names
                paths.append(fig.confusion(best["confusion_matrix"], classes,
                                           ctx.out_dir / f"confusion_matrix_{backend}.png",
                                           f"{best['name']} on the test set ({backend})"))
                paths.append(fig.misclassified(best["misclassified"], classes,
                                               ctx.out_dir / f"misclassified_{backend}.png",
                                               f"10 misclassified test digits, {best['name']} ({backend})"))
        return paths
    return figures


def _exp(name, title, help_, runs, sweeps=False, confusion=False):
    """runs: a plan function (Ex 1), or the plan's (key, model, optimizer, lr, epochs[, betas])
    rows. sweeps: the rows' learning rates stand (--lr is ignored); confusion: every run records
    a confusion matrix and misclassified digits."""
    plan = runs if callable(runs) else (
        lambda o: [c for row in runs for c in _run(o, *row, confusion=confusion, sweeps=sweeps)])
    register(Experiment(name, f"1RT720 {title}", help_, plan, _summarize, _figures(f"1RT720 {title}"),
                        sweeps_lr=sweeps))


def _ex1(o):
    # The MLP has no conv or pool layer, so every backend would run the same PyTorch code: one
    # PyTorch run, whatever --backend says, timed against the NumPy one.
    cfgs = _run(replace(o, backends=("torch",)), "mlp_pytorch", "mlp", "sgd", 0.01, 150)
    # the from-scratch NumPy MLP (train/numpy_mlp.py), the report's point of comparison
    cfgs.append(RunConfig(key="mlp_numpy_scratch", model="1rt720/mlp", data=DATA,
                          backend=NUMPY_SCRATCH, optimizer="sgd", lr=o.learning_rate(0.01),
                          epochs=o.n_epochs(150), batch_size=o.batch(128), seed=o.seed,
                          record="epochs", tags={"name": "mlp_numpy_scratch", "base": "mlp_pytorch"}))
    return cfgs


_exp("1rt720-ex1", "Ex 1: MLP, NumPy vs PyTorch",
     "MLP 784-50-50-10 (ReLU), SGD lr 0.01, batch 128, 150 epochs, in PyTorch and from scratch "
     "in NumPy (forward, backward and SGD written out); compares time per epoch (the report: "
     "NumPy 139 s, PyTorch CPU 199 s for 150 epochs). The MLP has no conv layer, so --backend "
     "does not apply; for the conv nets, --backend numpy trains through the NumPy reference.", _ex1)
_exp("1rt720-ex2", "Ex 2: CNN",
     "CNN [C3x3x8 p1, ReLU, pool, C3x3x16 p1, ReLU, pool, C3x3x32 p1, ReLU] + FC-10 (21,578 "
     "parameters), SGD lr 0.01, batch 128, 100 epochs; the report reaches > 98%.",
     [("cnn", "cnn", "sgd", 0.01, 100)])
_exp("1rt720-ex3", "Ex 3: pool before activation, and tanh",
     "Ex 2's CNN with max-pool before the activation (3), and the same with tanh (3b); SGD lr 0.01, "
     "batch 128, 100 epochs.",
     [("cnn_pool_first", "cnn_pool_first", "sgd", 0.01, 100),
      ("cnn_pool_first_tanh", "cnn_pool_first_tanh", "sgd", 0.01, 100)])
_exp("1rt720-ex4", "Ex 4: Adam",
     "Ex 2's CNN with Adam at lr 0.001 (the report's choice) and 0.01 (which oscillates), batch "
     "128, 100 epochs. --lr is ignored here.",
     [("cnn_adam_0.001", "cnn", "adam", 0.001, 100), ("cnn_adam_0.01", "cnn", "adam", 0.01, 100)],
     sweeps=True)
_exp("1rt720-ex5", "Ex 5: residual connections",
     "Ex 2's CNN deepened by 9 extra 3x3 convs (3 each at 8, 16, 32 channels) as pre-activation "
     "residual blocks, against the same deep network without the residual connections (which "
     "fails to train with SGD); SGD lr 0.01, batch 128, 50 epochs.",
     [("deep_residual", "deep_residual", "sgd", 0.01, 50),
      ("deep_plain", "deep_plain", "sgd", 0.01, 50)])
_exp("1rt720-ex6", "Ex 6: variations, confusion matrix, misclassified digits",
     "6a residual + BatchNorm, SGD lr 0.025, 50 epochs (report: 99.18%); 6b Ex 2's CNN with Adam "
     "lr 0.0005, betas (0.85, 0.95), 35 epochs; 6c residual + BatchNorm with Adam lr 0.001, 25 "
     "epochs; batch 128. Confusion matrix on the test set and 10 misclassified digits of the best "
     "model. --lr is ignored here.",
     [("6a_residual_bn_sgd", "deep_residual_bn", "sgd", 0.025, 50),
      ("6b_cnn_adam_betas", "cnn", "adam", 0.0005, 35, (0.85, 0.95)),
      ("6c_residual_bn_adam", "deep_residual_bn", "adam", 0.001, 25)],
     sweeps=True, confusion=True)
