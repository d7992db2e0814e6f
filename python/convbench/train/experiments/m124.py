"""M124 coursework 4 experiments (spec section 3, report 004): CIFAR-10 colour, SGD sweeps."""
from __future__ import annotations

from ... import models
from .. import figures as fig
from ..config import RunConfig
from .base import Experiment, per_backend, register

DATA = "cifar10"


def _sweep(o, model, settings):
    """settings: list of (lr, momentum, epochs)."""
    cfgs = []
    for lr, mom, epochs in settings:
        name = f"{model}_lr{lr:g}_m{mom:g}"
        cfgs += per_backend(o, RunConfig(
            key=name, model=f"m124/{model}", data=DATA, optimizer="sgd", lr=lr, momentum=mom,
            epochs=o.n_epochs(epochs), batch_size=o.batch(64), seed=o.seed, record="epochs",
            tags={"name": name, "net": model, "lr": lr, "momentum": mom}))
    return cfgs


def _summarize(records, o):
    return {"runs": [{
        "name": r["tags"]["name"], "model": r["model"], "lr": r["tags"]["lr"],
        "momentum": r["tags"]["momentum"], "test_acc": r["test_acc"], "test_loss": r["test_loss"],
        "train_loss_curve": r["epochs"]["train_loss"], "train_acc_curve": r["epochs"]["train_acc"],
        "test_loss_curve": r["epochs"].get("test_loss", []), "test_acc_curve": r["epochs"].get("test_acc", []),
        "time_per_epoch": r["time_per_epoch"], "total_time": r["total_time"], "n_params": r["n_params"],
        "weights": r["weights"]} for r in records]}


def printout(model_name, input_shape, backend="torch") -> str:
    """The model as the report printed its Model 3: the module tree, then each parameter's name,
    shape and count, and the total."""
    c, h, _ = input_shape
    m = models.build(model_name, backend=backend, in_channels=c, image_size=h)
    lines = [f"{model_name}", repr(m)]
    lines += [f"Layer: {n} | Size: {list(p.shape)} | {p.numel():,} parameters"
              for n, p in m.named_parameters()]
    lines.append(f"total: {sum(p.numel() for p in m.parameters()):,} parameters")
    return "\n".join(lines)


def _figures(title, filters):
    def figures(summaries, ctx):
        paths = []
        shape = ctx.data(DATA).input_shape
        names = dict.fromkeys(r["model"] for s in summaries.values() for r in s["runs"])
        text = "\n\n".join(printout(n, shape) for n in names)  # report 004: structure and counts
        (ctx.out_dir / "models.txt").write_text(text + "\n")
        for backend, s in summaries.items():
            runs = s["runs"]
            panels = [(what, [(r["name"], list(range(1, len(r[key]) + 1)), r[key]) for r in runs])
                      for what, key in (("training loss", "train_loss_curve"), ("test loss", "test_loss_curve"),
                                        ("training accuracy", "train_acc_curve"), ("test accuracy", "test_acc_curve"))]
            paths.append(fig.panels(panels, ctx.out_dir / f"curves_{backend}.png", f"{title} ({backend})",
                                    xlabel="epoch", ylabels=["loss", "loss", "accuracy (%)", "accuracy (%)"]))
            paths.append(fig.bars([r["name"] for r in runs], [r["test_acc"] for r in runs],
                                  ctx.out_dir / f"test_accuracy_{backend}.png", f"{title}: test accuracy ({backend})",
                                  "accuracy (%)"))
            if filters:
                best = max((r for r in runs if r["weights"] is not None), key=lambda r: r["test_acc"])
                paths.append(fig.weight_grid(best["weights"], ctx.data(DATA).input_shape,
                                             ctx.out_dir / f"first_conv_filters_{backend}.png",
                                             f"{best['name']}: first conv layer filters ({backend})",
                                             rgb=False))  # the report merged the channels
        return paths
    return figures


def _exp(name, title, help_, plan, filters=False):
    register(Experiment(name, f"M124 {title}", help_ + " Batch 64. models.txt prints each model "
                        "with its parameter counts, as the report did. --lr is ignored here.", plan,
                        _summarize, _figures(f"M124 {title}", filters), sweeps_lr=True))


_exp("m124-mlp-lr", "fully connected, learning rates",
     "FC 3072-512-512-256-10 (ReLU), SGD momentum 0 at lr 0.001, 0.005, 0.1, 40 epochs.",
     lambda o: _sweep(o, "mlp", [(0.001, 0, 40), (0.005, 0, 40), (0.1, 0, 40)]))
_exp("m124-mlp-momentum", "fully connected, momentum",
     "FC 3072-512-512-256-10, SGD lr 0.005 with momentum 0.2 and 0.5, 20 epochs.",
     lambda o: _sweep(o, "mlp", [(0.005, 0.2, 20), (0.005, 0.5, 20)]))
_exp("m124-mlp-width", "fully connected, widths",
     "FC 3072-512-512-512-10 and 3072-256-256-256-10, SGD lr 0.005, momentum 0.9, 10 epochs.",
     lambda o: _sweep(o, "mlp_wide", [(0.005, 0.9, 10)]) + _sweep(o, "mlp_narrow", [(0.005, 0.9, 10)]))
_exp("m124-cnn-lr", "LeNet-style CNN, learning rates",
     "[C3x3x16, ReLU, pool, C3x3x32, ReLU, pool] -> FC 512-256-10, SGD momentum 0 at lr 0.001, "
     "0.01, 0.1, 40 epochs.",
     lambda o: _sweep(o, "cnn", [(0.001, 0, 40), (0.01, 0, 40), (0.1, 0, 40)]), filters=True)
_exp("m124-cnn-momentum", "LeNet-style CNN, momentum",
     "The LeNet-style CNN, SGD lr 0.1 with momentum 0.2 and 0.5, 40 epochs.",
     lambda o: _sweep(o, "cnn", [(0.1, 0.2, 40), (0.1, 0.5, 40)]), filters=True)
_exp("m124-cnn-width", "LeNet-style CNN, widths",
     "Channels 32/64 and 64/128 (FC 512-256), and 64/128 with FC 512-512 (the report's best, about "
     "75%), SGD lr 0.1, momentum 0.9, 20 epochs; figure of the best model's first conv filters.",
     lambda o: _sweep(o, "cnn_32_64", [(0.1, 0.9, 20)]) + _sweep(o, "cnn_64_128", [(0.1, 0.9, 20)])
     + _sweep(o, "cnn_64_128_fc512", [(0.1, 0.9, 20)]), filters=True)
