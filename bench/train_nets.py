"""The homework CNNs the training-step suite times, their optimizers (the
spec's), and the extra_info of their rows (tests/test_report.py builds its
training rows with row_info too, so the report is tested on these rows).

Importable without pytest."""
from __future__ import annotations

import torch

import layers
import rowinfo

# The seven CNNs of issue 9 with the spec's optimizers: EE449 Part 3 trains
# with Adam (defaults; the 2021 edition at lr 0.01), 1RT720 Ex 2 and the M124
# LeNet with plain SGD at lr 0.01, M124's 64/128-channel width run with SGD
# lr 0.1, momentum 0.9.
MODELS = {
    "ee449/cnn_3": ("adam", {}),
    "ee449/cnn_4": ("adam", {}),
    "ee449/cnn_5": ("adam", {}),
    "ee449_2021/cnn4": ("adam", {"lr": 0.01}),
    "1rt720/cnn": ("sgd", {"lr": 0.01}),
    "m124/cnn": ("sgd", {"lr": 0.01}),
    "m124/cnn_64_128": ("sgd", {"lr": 0.1, "momentum": 0.9}),
}


def optimizer(name: str, params) -> torch.optim.Optimizer:
    kind, kwargs = MODELS[name]
    return (torch.optim.Adam if kind == "adam" else torch.optim.SGD)(params, **kwargs)


def row_info(name: str, impl: str, device: str) -> dict:
    """The extra_info of a training-step row."""
    from convbench import models

    convs = [e for e in layers.layers_of_model(name) if isinstance(e, layers.ConvLayer)]
    return rowinfo.model("train", name, "homework", impl, device, convs,
                         models.spec(name).batch_size, optimizer=MODELS[name][0])
