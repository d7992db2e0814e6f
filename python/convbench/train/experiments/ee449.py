"""EE449 Homework 1 experiments (spec section 1): parts 3, 4, 5 for the three editions."""
from __future__ import annotations

from collections import defaultdict

from .. import figures as fig
from ..config import RunConfig
from .base import Experiment, mean_curves, per_backend, register

# edition: (model family, data recipe, networks, Adam lr, part-5 network, what)
EDITIONS = {
    "ee449": ("ee449", "cifar10_gray", ("mlp_1", "mlp_2", "cnn_3", "cnn_4", "cnn_5"), 1e-3, "cnn_4",
              "CIFAR-10 grayscale edition (report 000)"),
    "ee449-color": ("ee449_color", "cifar10_color", ("mlp_1", "mlp_2", "cnn_3", "cnn_4", "cnn_5"), 1e-3,
                    "cnn_4", "CIFAR-10 colour edition (report 001)"),
    "ee449-2021": ("ee449_2021", "mnist5", ("mlp1", "mlp2", "cnn3", "cnn4", "cnn5"), 1e-2, "mlp2",
                   "2021 edition, 5-class 28x28 (MNIST 0-4; report 003)"),
}
LRS = (0.1, 0.01, 0.001)
LR_TAGS = {0.1: "1", 0.01: "01", 0.001: "001"}


def _by(records, tag):
    groups = defaultdict(list)
    for r in records:
        groups[r["tags"][tag]].append(r)
    return groups


# ---- part 3: architectures -----------------------------------------------------------------

def _part3(prefix, family, recipe, nets, adam_lr, what):
    def plan(o):
        cfgs = []
        for net in nets:
            for r in range(o.n_runs(10)):
                cfgs += per_backend(o, RunConfig(
                    key=f"{net}/run{r}", model=f"{family}/{net}", data=recipe, optimizer="adam",
                    lr=o.learning_rate(adam_lr), epochs=o.n_epochs(15), batch_size=o.batch(50),
                    seed=o.seed + r, record="steps", tags={"net": net, "run": r}))
        return cfgs

    def summarize(records, o):
        out = []
        for net, rs in _by(records, "net").items():
            best = max(rs, key=lambda r: r["test_acc"])
            out.append({
                "name": net,
                "loss_curve": mean_curves([r["loss_curve"] for r in rs]),
                "train_acc_curve": mean_curves([r["train_acc_curve"] for r in rs]),
                "val_acc_curve": mean_curves([r["val_acc_curve"] for r in rs]),
                "test_acc": best["test_acc"],
                "weights": best["weights"],
                "steps": best["steps"],
                "test_accs": [r["test_acc"] for r in rs],
                "time_per_epoch": min(r["time_per_epoch"] for r in rs),
            })
        return {"networks": out}

    def figures(summaries, ctx):
        paths = []
        for backend, s in summaries.items():
            nets_ = s["networks"]
            d = ctx.out_dir
            paths.append(fig.lines([(n["name"], n["steps"][:len(n["loss_curve"])], n["loss_curve"])
                                    for n in nets_], d / f"loss_curves_{backend}.png",
                                   f"{prefix} part 3 training loss ({backend})", ylabel="loss"))
            paths.append(fig.panels(
                [(n["name"], [("train", n["steps"][:len(n["train_acc_curve"])], n["train_acc_curve"]),
                              ("validation", n["steps"][:len(n["val_acc_curve"])], n["val_acc_curve"])])
                 for n in nets_], d / f"accuracy_curves_{backend}.png",
                f"{prefix} part 3 accuracy (mean over runs, {backend})", ylabels=["accuracy (%)"] * 5,
                ncols=3))
            paths.append(fig.bars([n["name"] for n in nets_], [n["test_acc"] for n in nets_],
                                  d / f"test_accuracy_{backend}.png",
                                  f"{prefix} part 3 best test accuracy ({backend})", "accuracy (%)"))
            paths.append(fig.scatter_val_train([(n["name"], n["train_acc_curve"], n["val_acc_curve"])
                                                for n in nets_], d / f"val_vs_train_{backend}.png",
                                               f"{prefix} validation vs training accuracy ({backend})"))
            data = ctx.data(recipe)
            for n in nets_:
                paths.append(fig.weight_grid(n["weights"], data.input_shape,
                                             d / f"weights_{n['name']}_{backend}.png",
                                             f"{n['name']}: first-layer weights (best run, {backend})"))
        return paths

    return Experiment(
        f"{prefix}-part3", f"EE449 part 3: architectures, {what}",
        f"Trains {', '.join(nets)} with Adam (lr {adam_lr:g}), batch 50, 15 epochs, 10 runs each; "
        "every 10 steps records training loss, training accuracy and validation accuracy; keeps the "
        "best run's test accuracy and first-layer weights. JSON keys name, loss_curve, "
        "train_acc_curve, val_acc_curve, test_acc, weights. Figures: loss and accuracy curves, "
        "test-accuracy bars, validation-vs-training accuracy, first-layer weight grids.",
        plan, summarize, figures)


# ---- part 4: activations ---------------------------------------------------------------------

def _part4(prefix, family, recipe, nets, what):
    def plan(o):
        cfgs = []
        for net in nets:
            for act in ("relu", "sigmoid"):
                cfgs += per_backend(o, RunConfig(
                    key=f"{net}/{act}", model=f"{family}/{net}", data=recipe, activation=act,
                    optimizer="sgd", lr=o.learning_rate(0.01), epochs=o.n_epochs(15),
                    batch_size=o.batch(50), seed=o.seed, record="steps", grad_norm=True,
                    record_val=False, tags={"net": net, "act": act}))
        return cfgs

    def summarize(records, o):
        out = []
        for net, rs in _by(records, "net").items():
            entry = {"name": net}
            for r in rs:
                a = r["tags"]["act"]
                entry[f"{a}_loss_curve"] = r["loss_curve"]
                entry[f"{a}_grad_curve"] = r["grad_curve"]
                entry[f"{a}_test_acc"] = r["test_acc"]
                entry["steps"] = r["steps"]
            out.append(entry)
        return {"networks": out}

    def figures(summaries, ctx):
        paths = []
        for backend, s in summaries.items():
            for what_, key, logy in (("loss", "loss_curve", False), ("gradient", "grad_curve", True)):
                panels = [(n["name"], [(a, n["steps"][:len(n.get(f"{a}_{key}", []))], n.get(f"{a}_{key}", []))
                                       for a in ("relu", "sigmoid") if f"{a}_{key}" in n])
                          for n in s["networks"]]
                p = fig.panels(panels, ctx.out_dir / f"{what_}_relu_vs_sigmoid_{backend}.png",
                               f"{prefix} part 4: {what_} with ReLU vs Sigmoid ({backend})",
                               ylabels=[("|dL/dW1|_F" if logy else "loss")] * len(panels), ncols=3,
                               logy=logy)
                paths.append(p)
        return paths

    return Experiment(
        f"{prefix}-part4", f"EE449 part 4: ReLU vs Sigmoid, {what}",
        f"Trains {', '.join(nets)} with every activation ReLU and then Sigmoid, SGD lr 0.01, "
        "momentum 0, batch 50, 15 epochs; every 10 steps records training loss and the Frobenius "
        "norm of the first layer's weight gradient. Keys relu_loss_curve, sigmoid_loss_curve, "
        "relu_grad_curve, sigmoid_grad_curve (expect vanishing sigmoid gradients in the deep CNNs).",
        plan, summarize, figures)


# ---- part 5: learning rate and schedule --------------------------------------------------------

def _part5(prefix, family, recipe, net, adam_lr, what):
    schedules = {"schedule_1_01": (0.1, 0.01), "schedule_1_01_001": (0.1, 0.01, 0.001)}

    def plan(o):
        base = dict(model=f"{family}/{net}", data=recipe, batch_size=o.batch(50), seed=o.seed,
                    record="steps")
        cfgs = []
        for lr in LRS:
            cfgs += per_backend(o, RunConfig(key=f"lr_{LR_TAGS[lr]}", optimizer="sgd", lr=lr,
                                             epochs=o.n_epochs(20), tags={"kind": "lr", "lr": lr}, **base))
        for name, lrs in schedules.items():
            cfgs += per_backend(o, RunConfig(key=name, optimizer="sgd", lr=lrs[0], lr_schedule=lrs,
                                             epochs=o.n_epochs(30), tags={"kind": "schedule", "lrs": lrs},
                                             **base))
        cfgs += per_backend(o, RunConfig(key="adam", optimizer="adam", lr=adam_lr,
                                         epochs=o.n_epochs(30), tags={"kind": "adam"}, **base))
        return cfgs

    def summarize(records, o):
        out = {"name": net}
        for r in records:
            t = r["tags"]
            if t["kind"] == "lr":
                tag = LR_TAGS[t["lr"]]
                out[f"loss_curve_{tag}"] = r["loss_curve"]
                out[f"val_acc_curve_{tag}"] = r["val_acc_curve"]
                out[f"test_acc_{tag}"] = r["test_acc"]
                out["steps"] = r["steps"]
            else:
                out[r["key"].split("/")[0]] = {
                    "lrs": list(t.get("lrs", [adam_lr])), "loss_curve": r["loss_curve"],
                    "val_acc_curve": r["val_acc_curve"], "steps": r["steps"],
                    "test_acc": r["test_acc"], "lr_changes": r.get("lr_changes", [])}
        sched = [out[k]["test_acc"] for k in schedules if k in out]
        if sched and "adam" in out:
            out["schedule_vs_adam"] = {"best_schedule_test_acc": max(sched),
                                       "adam_test_acc": out["adam"]["test_acc"]}
        return out

    def figures(summaries, ctx):
        paths = []
        for backend, s in summaries.items():
            st = s.get("steps", [])
            for what_, key in (("loss", "loss_curve"), ("val_acc", "val_acc_curve")):
                series = [(f"lr {lr:g}", st[:len(s[f'{key}_{LR_TAGS[lr]}'])], s[f"{key}_{LR_TAGS[lr]}"])
                          for lr in LRS if f"{key}_{LR_TAGS[lr]}" in s]
                paths.append(fig.lines(series, ctx.out_dir / f"lr_{what_}_{backend}.png",
                                       f"{prefix} part 5: {net}, SGD learning rates ({backend})",
                                       ylabel="loss" if what_ == "loss" else "validation accuracy (%)"))
            series, marks = [], []
            for k in list(schedules) + ["adam"]:
                if k in s:
                    series.append((f"{k} (test {s[k]['test_acc']:.1f}%)", s[k]["steps"][:len(s[k]["val_acc_curve"])],
                                   s[k]["val_acc_curve"]))
                    marks += [(c["step"], f"{k}: lr -> {c['lr']:g} (epoch {c['epoch']})")
                              for c in s[k].get("lr_changes", [])]
            paths.append(fig.lines(series, ctx.out_dir / f"schedule_vs_adam_{backend}.png",
                                   f"{prefix} part 5: lr schedule vs Adam, {net} ({backend})",
                                   ylabel="validation accuracy (%)", marks=marks))
        return paths

    return Experiment(
        f"{prefix}-part5", f"EE449 part 5: learning rate and schedule, {what}",
        f"{net} with SGD (momentum 0) at lr 0.1, 0.01, 0.001 for 20 epochs, recording loss and "
        "validation accuracy every 10 steps (keys loss_curve_1/_01/_001, val_acc_curve_1/_01/_001); "
        "then a schedule starting at lr 0.1 that drops to 0.01 (and, second run, to 0.001) whenever "
        "the end-of-epoch validation accuracy stops improving, 30 epochs; compared with Adam "
        f"(lr {adam_lr:g}) over the same 30 epochs on test accuracy. --lr is ignored here.",
        plan, summarize, figures, sweeps_lr=True)


for _prefix, (_fam, _recipe, _nets, _adam, _p5, _what) in EDITIONS.items():
    register(_part3(_prefix, _fam, _recipe, _nets, _adam, _what))
    register(_part4(_prefix, _fam, _recipe, _nets, _what))
    register(_part5(_prefix, _fam, _recipe, _p5, _adam, _what))
