"""EE449 Homework 1 experiments (spec section 1): parts 3, 4, 5 for the three editions."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from .. import figures as fig
from ..config import RunConfig
from ..schedule import describe
from .base import Experiment, mean_curves, per_backend, register

# edition: (model family, data recipe, networks, Adam lr, part-5 network, what); the part-5
# network is the one each report trained there (000: its cnn_3_sch_01; 001: cnn4; 003: mlp2)
EDITIONS = {
    "ee449": ("ee449", "cifar10_gray", ("mlp_1", "mlp_2", "cnn_3", "cnn_4", "cnn_5"), 1e-3, "cnn_3",
              "CIFAR-10 grayscale edition (report 000)"),
    "ee449-color": ("ee449_color", "cifar10_color", ("mlp_1", "mlp_2", "cnn_3", "cnn_4", "cnn_5"), 1e-3,
                    "cnn_4", "CIFAR-10 colour edition (report 001)"),
    "ee449-2021": ("ee449_2021", "mnist5", ("mlp1", "mlp2", "cnn3", "cnn4", "cnn5"), 1e-2, "mlp2",
                   "2021 edition, 5-class 28x28 (Fashion-MNIST or MNIST classes 0-4; report 003)"),
}
LRS = (0.1, 0.01, 0.001)
LR_TAGS = {0.1: "1", 0.01: "01", 0.001: "001"}
CIFAR_STEPS_PER_EPOCH = 900  # 45,000 training images / batch 50
# Part 4 of reports 000 and 001 trained on all 50,000 training images (it records no validation
# accuracy); report 003 kept its split.
PART4_RECIPE = {"ee449": "cifar10_gray_full", "ee449-color": "cifar10_color_full"}

# Each report's schedule runs: name -> (rates, fixed switch points, their unit, run length in
# epochs). 000 (Figs. 24-26): 0.1 for 10 epochs then 0.01 to 30; the second run also drops to
# 0.001 after epoch 15. 001 (its code): global steps 5000 and 10000 of 30 epochs. 003 (its
# notebook): one run, 24 epochs at 0.1, 3 at 0.01, 13 at 0.001.
SCHEDULES = {
    "ee449": {"schedule_1_01": (LRS[:2], (10,), "epoch", 30),
              "schedule_1_01_001": (LRS, (10, 15), "epoch", 30)},
    "ee449-color": {"schedule_1_01": (LRS[:2], (5000,), "step", 30),
                    "schedule_1_01_001": (LRS, (5000, 10000), "step", 30)},
    "ee449-2021": {"schedule_1_01_001": (LRS, (24, 27), "epoch", 40)},
}


def _by(records, tag):
    groups = defaultdict(list)
    for r in records:
        groups[r["tags"][tag]].append(r)
    return groups


# ---- part 3: architectures -----------------------------------------------------------------

def _part3_runs(o, family, recipe, net, adam_lr, **tags):
    """Part 3's runs of one network, exactly as part 3 plans them (part 5 reuses them)."""
    cfgs = []
    for r in range(o.n_runs(10)):
        cfgs += per_backend(o, RunConfig(
            key=f"{net}/run{r}", model=f"{family}/{net}", data=recipe, optimizer="adam",
            lr=o.learning_rate(adam_lr), epochs=o.n_epochs(15), batch_size=o.batch(50),
            seed=o.seed + r, record="steps", keep_initial_weights=True,
            tags={"net": net, "run": r, **tags}))
    return cfgs


def _part3(prefix, family, recipe, nets, adam_lr, what):
    def plan(o):
        return [c for net in nets for c in _part3_runs(o, family, recipe, net, adam_lr)]

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
                "initial_weights": best.get("initial_weights"),
                "steps": best["steps"],
                "test_accs": [r["test_acc"] for r in rs],
                # the best run's training accuracy over its last epoch (report 001's
                # test-vs-training accuracy figure)
                "train_acc": best["epochs"]["train_acc"][-1],
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
            paths.append(fig.points([n["name"] for n in nets_], [n["train_acc"] for n in nets_],
                                    [n["test_acc"] for n in nets_], d / f"test_vs_train_{backend}.png",
                                    f"{prefix} test vs training accuracy, best runs ({backend})",
                                    "training accuracy, last epoch (%)", "test accuracy (%)"))
            paths.append(fig.scatter_val_train([(n["name"], n["train_acc_curve"], n["val_acc_curve"])
                                                for n in nets_], d / f"val_vs_train_{backend}.png",
                                               f"{prefix} validation vs training accuracy ({backend})"))
            data = ctx.data(recipe)
            for n in nets_:  # report 000 (Figs. 3-16): initial weights beside the final ones
                paths.append(fig.weight_grid(n["weights"], data.input_shape,
                                             d / f"weights_{n['name']}_{backend}.png",
                                             f"{n['name']}: first-layer weights (best run, {backend})",
                                             initial=n.get("initial_weights")))
        return paths

    return Experiment(
        f"{prefix}-part3", f"EE449 part 3: architectures, {what}",
        f"Trains {', '.join(nets)} with Adam (lr {adam_lr:g}), batch 50, 15 epochs, 10 runs each "
        "(the spec; reports 000 and 003 did 10, report 001 one: --runs 1); every 10 steps records "
        "training loss and training accuracy of that step's batch (as the reports) and "
        "validation accuracy; keeps the best run's test accuracy and first-layer weights, before "
        "and after training. JSON keys name, loss_curve, train_acc_curve, val_acc_curve, "
        "test_acc, weights (and initial_weights). Figures: loss and accuracy curves, "
        "test-accuracy bars, validation-vs-training accuracy, test-vs-training accuracy "
        "(report 001), first-layer weights initial beside final (report 000; colour input in "
        "RGB as report 001).",
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
        "relu_grad_curve, sigmoid_grad_curve (expect vanishing sigmoid gradients in the deep CNNs). "
        + ("Trains on all 50,000 training images, as the report did." if recipe.endswith("_full")
           else "Trains on the 90% left after the validation split, as the report did."),
        plan, summarize, figures)


# ---- part 5: learning rate and schedule --------------------------------------------------------

def _part5(prefix, family, recipe, nets, default_net, adam_lr, what):
    report_schedules = SCHEDULES[prefix]

    def network(o):
        net = getattr(o, "network", None) or default_net
        if net not in nets:
            raise ValueError(f"--network {net!r}: {prefix} has {', '.join(nets)}")
        return net

    def schedules(o):
        """name -> (rates, switch points, unit, spec epochs); the plateau rule has no points."""
        if getattr(o, "schedule", "report") == "plateau":  # the spec's rule, to 30 epochs
            return {"schedule_1_01": (LRS[:2], (), "epoch", 30),
                    "schedule_1_01_001": (LRS, (), "epoch", 30)}
        return report_schedules

    def plan(o):
        net = network(o)
        base = dict(model=f"{family}/{net}", data=recipe, batch_size=o.batch(50), seed=o.seed,
                    record="steps")
        cfgs = []
        for lr in LRS:
            cfgs += per_backend(o, RunConfig(key=f"lr_{LR_TAGS[lr]}", optimizer="sgd", lr=lr,
                                             epochs=o.n_epochs(20), tags={"kind": "lr", "lr": lr}, **base))
        for name, (lrs, points, unit, spec_epochs) in schedules(o).items():
            per = CIFAR_STEPS_PER_EPOCH if unit == "step" else 1
            cfgs += per_backend(o, RunConfig(
                key=name, optimizer="sgd", lr=lrs[0], lr_schedule=lrs, lr_switch=points,
                lr_switch_unit=unit, lr_switch_of=spec_epochs * per if points else 0,
                epochs=o.n_epochs(spec_epochs), tags={"kind": "schedule", "lrs": lrs}, **base))
        # The reports compare with part 3's Adam run (best of its runs, 15 epochs): the very runs
        # part 3 plans, reused from its directory when they are there (runner: reuse_from).
        cfgs += _part3_runs(replace(o, lr=None), family, recipe, net, adam_lr, kind="adam",
                            reuse_from=f"{prefix}-part3")
        return cfgs

    def summarize(records, o):
        net = network(o)
        out = {"name": net}
        adam = []
        for r in records:
            t = r["tags"]
            if t["kind"] == "lr":
                tag = LR_TAGS[t["lr"]]
                out[f"loss_curve_{tag}"] = r["loss_curve"]
                out[f"val_acc_curve_{tag}"] = r["val_acc_curve"]
                out[f"test_acc_{tag}"] = r["test_acc"]
                out["steps"] = r["steps"]
            elif t["kind"] == "adam":
                adam.append(r)
            else:
                sw = r.get("lr_switch", {})
                out[r["key"].split("/")[0]] = {
                    "lrs": list(t["lrs"]), "loss_curve": r["loss_curve"],
                    "val_acc_curve": r["val_acc_curve"], "steps": r["steps"],
                    "test_acc": r["test_acc"], "lr_changes": r.get("lr_changes", []),
                    "rule": describe(t["lrs"], sw.get("points", []), sw.get("unit", "epoch")),
                    "report_switch_points": sw.get("report_points", [])}
        if adam:
            best = max(adam, key=lambda r: r["test_acc"])
            reused = [r for r in adam if r.get("reused_from")]
            source = (f"part 3's results reused from {prefix}-part3/runs ({len(reused)} of "
                      f"{len(adam)} runs; the rest trained here as part 3 defines them)" if reused else
                      f"trained here as part 3 defines it ({len(adam)} run(s); {prefix}-part3 "
                      "held no matching finished runs in the output folder)")
            out["adam"] = {"lrs": [adam_lr], "loss_curve": best["loss_curve"],
                           "val_acc_curve": best["val_acc_curve"], "steps": best["steps"],
                           "test_acc": best["test_acc"], "run": best["tags"]["run"],
                           "test_accs": [r["test_acc"] for r in adam], "source": source}
            out["adam_source"] = source
        sched = [out[k]["test_acc"] for k in SCHEDULES_ALL if k in out]
        if sched and "adam" in out:
            out["schedule_vs_adam"] = {"best_schedule_test_acc": max(sched),
                                       "adam_test_acc": out["adam"]["test_acc"],
                                       "adam_source": out["adam_source"]}
        return out

    def figures(summaries, ctx):
        paths = []
        net = network(ctx.options)
        for backend, s in summaries.items():
            st = s.get("steps", [])
            for what_, key in (("loss", "loss_curve"), ("val_acc", "val_acc_curve")):
                series = [(f"lr {lr:g}", st[:len(s[f'{key}_{LR_TAGS[lr]}'])], s[f"{key}_{LR_TAGS[lr]}"])
                          for lr in LRS if f"{key}_{LR_TAGS[lr]}" in s]
                paths.append(fig.lines(series, ctx.out_dir / f"lr_{what_}_{backend}.png",
                                       f"{prefix} part 5: {net}, SGD learning rates ({backend})",
                                       ylabel="loss" if what_ == "loss" else "validation accuracy (%)"))
            # the reports' schedule figures show loss and validation accuracy side by side
            loss, acc, marks = [], [], []
            for k in list(SCHEDULES_ALL) + ["adam"]:
                if k in s:
                    r = s[k]
                    label = (f"{k} (test {r['test_acc']:.1f}%)" if k != "adam" else
                             f"part 3 Adam, best of {len(r['test_accs'])} (test {r['test_acc']:.1f}%)")
                    loss.append((label, r["steps"][:len(r["loss_curve"])], r["loss_curve"]))
                    acc.append((label, r["steps"][:len(r["val_acc_curve"])], r["val_acc_curve"]))
                    marks += [(c["step"], f"{k}: lr -> {c['lr']:g} (epoch {c['epoch']:g})")
                              for c in r.get("lr_changes", [])]
            paths.append(fig.panels([("training loss", loss), ("validation accuracy", acc)],
                                    ctx.out_dir / f"schedule_vs_adam_{backend}.png",
                                    f"{prefix} part 5: lr schedule vs part 3's Adam run, {net} ({backend})",
                                    ylabels=["loss", "validation accuracy (%)"], marks=marks))
        return paths

    rules = "; ".join(f"{k}: {describe(lrs, pts, unit)}" for k, (lrs, pts, unit, _) in report_schedules.items())
    epochs = next(iter(report_schedules.values()))[3]
    return Experiment(
        f"{prefix}-part5", f"EE449 part 5: learning rate and schedule, {what}",
        f"{default_net} by default (the report's network; --network picks another of "
        f"{', '.join(nets)}) with SGD (momentum 0) at lr 0.1, 0.01, 0.001 for 20 epochs, recording "
        "loss and validation accuracy every 10 steps (keys loss_curve_1/_01/_001, "
        f"val_acc_curve_1/_01/_001); then the report's schedule over {epochs} epochs ({rules}; "
        "scaled to shorter runs; --schedule plateau: the spec's plateau rule instead), "
        f"compared with part 3's Adam run (lr {adam_lr:g}, 15 epochs, best of its runs), reused "
        f"from OUT/{prefix}-part3 when that holds the same runs, else trained here as part 3 "
        "does. --lr is ignored here.",
        plan, summarize, figures, sweeps_lr=True, uses_network=True)


SCHEDULES_ALL = ("schedule_1_01", "schedule_1_01_001")

for _prefix, (_fam, _recipe, _nets, _adam, _p5, _what) in EDITIONS.items():
    register(_part3(_prefix, _fam, _recipe, _nets, _adam, _what))
    register(_part4(_prefix, _fam, PART4_RECIPE.get(_prefix, _recipe), _nets, _what))
    register(_part5(_prefix, _fam, _recipe, _nets, _p5, _adam, _what))
