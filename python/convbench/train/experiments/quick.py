"""The default experiment: two homework CNNs, our kernels against PyTorch's, on the embedded digits."""
from __future__ import annotations

from .. import figures as fig
from ..config import RunConfig
from .base import Experiment, per_backend, register

QUICK_EPOCHS = 3
RUNS = (
    # (name, model, data recipe, optimizer, lr, batch)
    ("1rt720_cnn", "1rt720/cnn", "mnist", "adam", 0.001, 128),      # 1RT720 Ex 4 settings
    ("ee449_2021_cnn4", "ee449_2021/cnn4", "mnist5", "adam", 0.01, 50),  # EE449 2021 part 3 settings
)


def plan(o):
    cfgs = []
    for name, model, recipe, optim, lr, batch in RUNS:
        cfgs += per_backend(o, RunConfig(
            key=name, model=model, data=recipe, optimizer=optim, lr=o.learning_rate(lr),
            epochs=o.epochs or QUICK_EPOCHS, batch_size=o.batch(batch), seed=o.seed, record="epochs",
            tags={"name": name}))
    return cfgs


def summarize(records, o):
    return {"runs": [{"name": r["tags"]["name"], "model": r["model"], "test_acc": r["test_acc"],
                      "time_per_epoch": r["time_per_epoch"], "epoch_times": r["epoch_times"],
                      "test_acc_curve": r["epochs"].get("test_acc", []),
                      "train_loss_curve": r["epochs"]["train_loss"]} for r in records]}


def figures(summaries, ctx):
    names = [n for n, *_ in RUNS]
    backends = list(summaries)
    paths = []
    for what, key, ylabel in (("test accuracy", "test_acc_curve", "accuracy (%)"),
                              ("training loss", "train_loss_curve", "loss")):
        panels = []
        for n in names:
            series = []
            for b in backends:
                for r in summaries[b]["runs"]:
                    if r["name"] == n:
                        series.append((b, list(range(1, len(r[key]) + 1)), r[key]))
            panels.append((n, series))
        paths.append(fig.panels(panels, ctx.out_dir / f"{key.replace('_curve', '')}.png",
                                f"{what} per epoch, by backend", xlabel="epoch",
                                ylabels=[ylabel] * len(panels)))
    times = {b: [next((r["time_per_epoch"] for r in summaries[b]["runs"] if r["name"] == n), None)
                 for n in names] for b in backends}
    paths.append(fig.grouped_bars(names, times, ctx.out_dir / "time_per_epoch.png",
                                  "training time per epoch (min over epochs)", "seconds"))
    return paths


register(Experiment(
    "quick", "Quick comparison (default)",
    "The 1RT720 CNN (Adam lr 0.001, batch 128) and the EE449 2021 cnn4 (Adam lr 0.01, batch 50, "
    f"digits 0-4 in [-1,1]) for {QUICK_EPOCHS} epochs on our kernels (convbench) and on PyTorch's "
    "(torch), same seed and initial weights, the two backends trained interleaved epoch by epoch "
    "so that both see the same machine load; prints accuracy, time per epoch per backend and the "
    "speed ratio, and draws the curves. Uses the embedded digits unless --data-dir is given.",
    plan, summarize, figures))
