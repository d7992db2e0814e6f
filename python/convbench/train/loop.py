"""One training run: build the network, train it, record what the spec records, time the epochs.

Timing: `epoch_times` is the wall time of the training steps of each epoch (forward, backward,
optimiser step), with the recording evaluations excluded so that backends are compared on training
work alone; `epoch_wall` includes everything.

Data-parallel (torchrun, data mode; see distributed.py): given an active World, each rank trains
on its part of every global batch under DistributedDataParallel, and the recorded metrics are
those of the whole global batch / split, summed over the ranks. Without one, nothing changes.
"""
from __future__ import annotations

import time
from typing import Optional

import torch
import torch.nn.functional as F

from .. import models
from ..data import DataBundle, batches
from .config import RunConfig
from .distributed import World, has_batch_norm, loss_scale, shard, wrap
from .schedule import scaled_switches

EVAL_BATCH = 1000
WEIGHTS_LIMIT = 200_000  # EE449's widest first layer (mlp_1, colour) has 98,304


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_optimizer(cfg: RunConfig, params, lr: float):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected 'sgd' or 'adam'")


@torch.no_grad()
def evaluate(model, split, device, confusion_classes: Optional[int] = None,
             world: Optional[World] = None):
    """(mean loss, accuracy %, confusion matrix or None, predictions) over a whole split. With an
    active `world` (data mode) each rank evaluates every world.size-th sample and the sums are
    added up over the ranks; predictions are then gathered only for a confusion matrix."""
    if world is not None and world.active:
        return _evaluate_sharded(model, split, device, confusion_classes, world)
    loss_sum, correct, pred = _eval_batches(model, batches(split, EVAL_BATCH), device)
    n = max(len(split), 1)
    return loss_sum / n, 100.0 * correct / n, _confusion(split.y, pred, confusion_classes), pred


def _evaluate_sharded(model, split, device, confusion_classes, world):
    # `model` is the bare module, never the DDP wrapper: DDP's forward broadcasts buffers, a
    # collective that ranks holding different numbers of evaluation batches would deadlock on.
    world.sync_buffers(model)
    idx = shard(len(split), world)
    mine = (idx[s:s + EVAL_BATCH] for s in range(0, len(idx), EVAL_BATCH))
    loss_sum, correct, mine_pred = _eval_batches(model, ((split.x[i], split.y[i]) for i in mine),
                                                 device)
    loss_sum, correct = world.sum([loss_sum, correct])
    n = max(len(split), 1)
    pred = torch.zeros(0, dtype=torch.long)
    if confusion_classes:  # predictions gathered back into sample order
        pred = torch.zeros(len(split), dtype=torch.long)
        for r, part in enumerate(world.all_gather(mine_pred)):
            pred[r::world.size] = part
    return loss_sum / n, 100.0 * correct / n, _confusion(split.y, pred, confusion_classes), pred


def _eval_batches(model, pairs, device):
    """(summed loss, correct count, predictions) of `model` in eval mode over (x, y) batches."""
    was_training = model.training
    model.eval()
    loss_sum, correct, preds = 0.0, 0, []
    for x, y in pairs:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
        p = out.argmax(1)
        correct += int((p == y).sum())
        preds.append(p.cpu())
    model.train(was_training)
    return loss_sum, correct, torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def _confusion(y, pred, classes):
    """classes x classes counts of (label, prediction), or None without classes."""
    if not classes:
        return None
    cm = torch.zeros(classes, classes, dtype=torch.long)
    cm.index_put_((y, pred), torch.ones_like(pred), accumulate=True)
    return cm


def train_run(cfg: RunConfig, data: DataBundle, progress=None,
              world: Optional[World] = None) -> dict:
    """Train one network per cfg on data; returns a JSON-ready record. `progress(n)` (optional) is
    called after every training step (the CLI passes a tqdm bar's update). An active `world`
    trains it data-parallel over all ranks (see distributed.py); every rank returns the record."""
    return train_interleaved([(cfg, data)], progress, world)[0]


def train_interleaved(jobs, progress=None, world: Optional[World] = None) -> list:
    """Train several (cfg, data) runs in lockstep, one epoch of each in turn (the order reversed
    every epoch), so that runs differing only in backend see the same machine load: on a shared
    machine their time-per-epoch ratio is then fair. Returns their records, in order."""
    gens = [train_epochs(cfg, data, progress, world) for cfg, data in jobs]
    records, running = [None] * len(gens), set(range(len(gens)))
    order = list(range(len(gens)))
    while running:
        for i in order:
            if i in running:
                try:
                    next(gens[i])
                except StopIteration as done:
                    records[i] = done.value
                    running.discard(i)
        order.reverse()
    return records


def train_epochs(cfg: RunConfig, data: DataBundle, progress=None, world: Optional[World] = None):
    """Generator: each next() trains one more epoch; its return value (StopIteration.value) is
    the run's record."""
    run = _Training(cfg, data, world)
    for epoch in range(cfg.epochs):
        run.start_epoch()
        for x, y in batches(data.train, cfg.batch_size, shuffle=True, generator=run.gen):
            run.train_step(x, y)
            if progress is not None:
                progress(1)
        run.end_epoch(epoch)
        yield epoch
    return run.record()


class _Training:
    """One run's state, in the phases train_epochs drives: setup (here), each
    training step, the end of each epoch (the epoch's metrics, the learning-rate
    rule) and the final record."""

    def __init__(self, cfg: RunConfig, data: DataBundle, world: Optional[World]):
        self.cfg, self.data = cfg, data
        self.ddp = world is not None and world.active
        self.world = world if self.ddp else None
        self.device = device = torch.device(cfg.device)
        c, h, w = data.input_shape
        torch.manual_seed(cfg.seed)  # same seed -> same initial weights on every backend
        self.net = models.build(cfg.model, backend=cfg.backend, activation=cfg.activation,
                                in_channels=c, image_size=h if h == w else None,
                                num_classes=data.num_classes, algo=cfg.algo).to(device)
        # The bare network (self.net) is evaluated and recorded; self.model trains.
        self.model = wrap(self.net, world, device) if self.ddp else self.net
        self.first = self.net.first_layer_weight()
        self.keep_weights = self.first.numel() <= WEIGHTS_LIMIT
        self.initial = (self.first.detach().cpu().tolist()
                        if cfg.keep_initial_weights and self.keep_weights else None)
        self.lrs = list(cfg.lr_schedule) or [cfg.lr]
        self.lr_index = 0
        self.opt = make_optimizer(cfg, self.model.parameters(), self.lrs[0])
        self.gen = torch.Generator().manual_seed(cfg.seed)  # shuffling, identical across backends
        self.steps_per_epoch = -(-len(data.train) // cfg.batch_size)
        run_length = cfg.epochs * (self.steps_per_epoch if cfg.lr_switch_unit == "step" else 1)
        self.switches = scaled_switches(cfg.lr_switch, cfg.lr_switch_of, run_length)
        self.curves = {k: [] for k in ("steps", "loss", "train_acc", "val_acc", "grad")}
        self.ep = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "val_acc",
                                   "lr")}
        self.epoch_times, self.epoch_wall, self.lr_changes = [], [], []
        self.best_val, self.step = -1.0, 0
        self.eval_split = data.val if data.val is not None else data.test
        self.model.train()

    def next_lr(self, epoch_done) -> None:
        self.lr_index += 1
        for g in self.opt.param_groups:
            g["lr"] = self.lrs[self.lr_index]
        self.lr_changes.append({"epoch": epoch_done, "step": self.step,
                                "lr": self.lrs[self.lr_index]})

    def start_epoch(self) -> None:
        self.t_epoch, self.t_train = time.perf_counter(), 0.0
        self.ep["lr"].append(self.lrs[self.lr_index])  # the rate the epoch starts with
        self.e_loss, self.e_correct, self.e_n = 0.0, 0, 0

    def train_step(self, x, y) -> None:
        cfg, world, device = self.cfg, self.world, self.device
        weight = 1.0
        if self.ddp:  # this rank's part of the global batch (the same batches as one process)
            n_global, part = len(y), shard(len(y), world)
            if len(part) == 0:  # a last batch smaller than the world: take part, weigh 0
                part, weight = part.new_zeros(1), 0.0
            x, y = x[part], y[part]
        x, y = x.to(device), y.to(device)
        _sync(device)
        t0 = time.perf_counter()
        out = self.model(x)
        if self.ddp:
            loss_sum = F.cross_entropy(out, y, reduction="sum") * weight
            loss = loss_sum * loss_scale(n_global, world)
        else:
            loss = F.cross_entropy(out, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        record_now = cfg.record == "steps" and (self.step + 1) % cfg.record_every == 0
        gnorm = float(self.first.grad.norm()) if (record_now and cfg.grad_norm) else None
        self.opt.step()
        _sync(device)
        self.t_train += time.perf_counter() - t0
        self.step += 1
        if self.ddp:  # sums over this rank's part; the global batch's mean when recorded
            lsum = float(loss_sum.detach())
            corr = int((out.argmax(1) == y).sum()) if weight else 0
            self.e_loss += lsum
            self.e_correct += corr
            self.e_n += int(len(y) * weight)
            if record_now:
                lsum, corr = world.sum([lsum, corr])
                lv, n = lsum / n_global, n_global
        else:
            lv, corr, n = float(loss.detach()), int((out.argmax(1) == y).sum()), len(y)
            self.e_loss += lv * n
            self.e_correct += corr
            self.e_n += n
        if record_now:  # the batch of this step, as the reports recorded it; val acc: whole split
            self._record_step(lv, corr, n, gnorm)
        if (cfg.lr_switch_unit == "step" and self.lr_index < len(self.switches)
                and self.step == self.switches[self.lr_index]):  # report 001: a fixed global step
            self.next_lr(round(self.step / self.steps_per_epoch, 2))  # epochs done, fractional

    def _record_step(self, loss, correct, n, gnorm) -> None:
        c = self.curves
        c["steps"].append(self.step)
        c["loss"].append(loss)
        c["train_acc"].append(100.0 * correct / n)
        if self.cfg.record_val:
            c["val_acc"].append(evaluate(self.net, self.eval_split, self.device,
                                         world=self.world)[1])
        if gnorm is not None:
            c["grad"].append(gnorm)

    def end_epoch(self, epoch: int) -> None:
        cfg, ep, world = self.cfg, self.ep, self.world
        self.epoch_times.append(self.t_train)
        e_loss, e_correct, e_n = self.e_loss, self.e_correct, self.e_n
        if self.ddp:
            e_loss, e_correct, e_n = world.sum([e_loss, e_correct, e_n])
        ep["train_loss"].append(e_loss / max(e_n, 1))
        ep["train_acc"].append(100.0 * e_correct / max(e_n, 1))
        if cfg.record == "epochs":
            tl, ta, _, _ = evaluate(self.net, self.data.test, self.device, world=world)
            ep["test_loss"].append(tl)
            ep["test_acc"].append(ta)
        if len(self.lrs) > 1:
            self._lr_rule(epoch)
        self.epoch_wall.append(time.perf_counter() - self.t_epoch)

    def _lr_rule(self, epoch: int) -> None:
        va = evaluate(self.net, self.eval_split, self.device, world=self.world)[1]
        self.ep["val_acc"].append(va)
        if self.cfg.lr_switch:  # a report's fixed points (000, 003: after a given epoch)
            if (self.cfg.lr_switch_unit == "epoch" and self.lr_index < len(self.switches)
                    and epoch + 1 == self.switches[self.lr_index]):
                self.next_lr(epoch + 1)
        elif va <= self.best_val and self.lr_index + 1 < len(self.lrs):
            self.next_lr(epoch + 1)  # plateau rule: val acc stopped improving
        self.best_val = max(self.best_val, va)

    def record(self) -> dict:
        cfg, data, net, world = self.cfg, self.data, self.net, self.world
        test_loss, test_acc, cm, pred = evaluate(net, data.test, self.device,
                                                 data.num_classes if cfg.confusion else None,
                                                 world)
        epoch_times, epoch_wall = self.epoch_times, self.epoch_wall
        if self.ddp:  # a step takes as long as its slowest rank
            epoch_times, epoch_wall = world.max(epoch_times), world.max(epoch_wall)
        first = self.first
        rec = {
            "key": cfg.key, "model": cfg.model, "backend": cfg.backend, "tags": dict(cfg.tags),
            "test_acc": test_acc, "test_loss": test_loss,
            "epoch_times": epoch_times, "epoch_wall": epoch_wall,
            "time_per_epoch": min(epoch_times) if epoch_times else None,
            "total_time": sum(epoch_wall),
            "epochs": {k: v for k, v in self.ep.items() if v},
            "n_params": sum(p.numel() for p in net.parameters()),
            # first-layer weights for the weight-grid figures; a wide MLP's (M124: 512x3072)
            # would make every run file tens of MB and no figure draws it
            "weights": first.detach().cpu().tolist() if self.keep_weights else None,
            "weights_shape": list(first.shape),
        }
        if self.initial is not None:
            rec["initial_weights"] = self.initial
        if self.ddp:
            rec["data_parallel"] = {"processes": world.size, "backend": world.backend,
                                    "global_batch": cfg.batch_size}
            if has_batch_norm(net) and self.device.type != "cuda":
                rec["data_parallel"]["batch_norm"] = "per rank (no SyncBatchNorm on the CPU)"
        if len(self.lrs) > 1:
            rec["lr_switch"] = {"unit": cfg.lr_switch_unit, "points": self.switches,
                                "report_points": list(cfg.lr_switch),
                                "rule": "fixed" if cfg.lr_switch else "plateau"}
        if cfg.record == "steps":
            c = self.curves
            rec.update(steps=c["steps"], loss_curve=c["loss"], train_acc_curve=c["train_acc"])
            if cfg.record_val:
                rec["val_acc_curve"] = c["val_acc"]
            if cfg.grad_norm:
                rec["grad_curve"] = c["grad"]
        if self.lr_changes:
            rec["lr_changes"] = self.lr_changes
        if cm is not None:
            wrong = torch.nonzero(pred != data.test.y).flatten()[:10]
            rec["confusion_matrix"] = cm.tolist()
            rec["misclassified"] = [{"index": int(i), "label": int(data.test.y[i]),
                                     "pred": int(pred[i]), "image": data.test.x[i].tolist()}
                                    for i in wrong]
        return rec
