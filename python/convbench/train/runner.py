"""Runs an experiment: plan -> runs (skipping finished ones on --resume) -> summary -> figures.

Every finished run is written to <out>/<experiment>/runs/ the moment it finishes, and results.json
is rewritten (atomically) after each run, so an interrupted experiment loses at most the run in
progress; --resume then redoes only what is missing.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

from .. import data as D
from . import figures as fig
from .distributed import SINGLE, World, assign, choose_mode
from .experiments import Context, Experiment, Options
from .loop import train_interleaved, train_run
from .numpy_mlp import train_numpy_mlp, trains_with_numpy
from .results import RunStore, write_json_atomic

try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are a nicety, not a requirement
    tqdm = None


class DataCache:
    def __init__(self, data_dir, download, seed, limit, quiet=False):
        self.kw = dict(data_dir=data_dir, download=download, seed=seed, limit=limit)
        self.cache = {}
        self.notes = []
        self.quiet = quiet  # under torchrun only rank 0 prints the notes

    def __call__(self, recipe):
        if recipe not in self.cache:
            b = D.load(recipe, **self.kw)
            self.cache[recipe] = b
            if b.note and b.note not in self.notes:
                self.notes.append(b.note)
                if not self.quiet:
                    print(b.note, flush=True)
        return self.cache[recipe]


def _steps(cfg, data):
    return cfg.epochs * math.ceil(len(data.train) / cfg.batch_size)


def run_experiment(exp: Experiment, opts: Options, out_dir, data: DataCache, resume=False,
                   progress=True, log=print, world: World = SINGLE,
                   dist_mode="auto") -> Optional[dict]:
    """Plan, train what is not finished, summarise, draw. Under torchrun (an active `world`) every
    rank calls this; rank 0 returns the summary, the other ranks None (see distributed.py)."""
    out = Path(out_dir) / exp.name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out, opts, data)
    header = {"experiment": exp.name, "title": exp.title, "description": exp.help,
              "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(opts).items()},
              "processes": world.size}
    if exp.custom is not None:
        return _run_custom(exp, ctx, header, data, world)

    cfgs = exp.plan(opts)
    keys = [c.key for c in cfgs]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{exp.name}: duplicate run keys in the plan")
    store = RunStore(out)
    ctx.configs = {c.tags.get("name", c.key): c.to_dict() for c in cfgs}
    if world.active and world.local_rank == 0:  # one download per node, before the others read
        for cfg in cfgs:
            data(cfg.data)
    world.barrier()
    quiet = log if world.rank == 0 else (lambda *a, **k: None)  # rank 0 speaks for all ranks
    results, saved, pending = _finished_and_pending(cfgs, data, store, out, resume, quiet)
    mode = None
    if world.active:
        mode = choose_mode(dist_mode, len(_lockstep_groups([(i, c) for i, c in enumerate(cfgs)])),
                           world)
        pending = _merge_finished(world, store, cfgs, results, saved, pending, quiet)
        header["distributed"] = {**world.describe(), "mode": mode}
        if mode == "data":
            log = quiet  # every rank holds the same records
    groups = _lockstep_groups(pending)
    if mode == "runs":  # whole groups to ranks; each rank trains its own alone
        owner = assign([sum(_steps(c, b) for _, c, b, _ in g) for g in groups], world.size)
        mine = [g for g, r in zip(groups, owner) if r == world.rank]
        local = SINGLE
    else:  # data mode: every rank trains every group; serial: this process trains everything
        mine, local = groups, world
    trained_by = {}
    for group in mine:
        solo = local.active and not _data_parallel(group)  # NumPy-scratch MLP: rank 0 alone
        if solo and world.rank != 0:
            world.barrier()  # wait on the coordination group (long timeout), not in DDP's setup
            continue
        bar = None
        if progress and tqdm is not None and world.rank == 0:
            first = group[0][1]
            desc = (first.key if len(group) == 1 else
                    f"{first.tags['base']} ({', '.join(c.backend for _, c, _, _ in group)}, interleaved)")
            bar = tqdm(total=sum(_steps(c, b) for _, c, b, _ in group),
                       desc=f"[{group[-1][0] + 1}/{len(cfgs)}] {desc}", unit="step", leave=False,
                       dynamic_ncols=True)
        update = bar.update if bar else None
        try:
            outs = _train_group(group, update, SINGLE if solo else local)
        finally:
            if bar is not None:
                bar.close()
        for (i, cfg, _, identity), result in zip(group, outs):
            if mode == "runs" or world.rank == 0:  # data mode: one record, written by rank 0
                store.save(cfg.key, {"config": identity, "result": result})
            results[i] = result
            trained_by[i] = world.rank if (mode == "runs" or solo) else "all"
            log(f"[{i + 1}/{len(cfgs)}] {cfg.key}: test accuracy {result['test_acc']:.2f}%, "
                f"{result['time_per_epoch']:.3f} s/epoch")
        if world.rank == 0:
            _write_summary(exp, opts, ctx, header, [r for r in results if r is not None],
                           final=False)
        if solo:
            world.barrier()
    if world.active:
        if not _gather_on_rank0(world, mode, exp, cfgs, store, pending, results, trained_by,
                                header):
            return None
    records = results
    summary = _write_summary(exp, opts, ctx, header, records, final=True)
    if exp.figures is not None:
        with fig.footnote(_data_stamp(data)):
            paths = exp.figures(summary["results"], ctx)
        summary["figures"] = [str(Path(p).name) for p in paths]
        write_json_atomic(out / "results.json", summary)
    return summary


def _run_custom(exp, ctx, header, data, world):
    """A NumPy-only experiment (no network to train): rank 0 runs it alone."""
    out = ctx.out_dir
    if world.rank != 0:  # NumPy-only experiments: nothing to share, rank 0 runs them alone
        return None
    if world.active:
        header["distributed"] = {**world.describe(), "mode": "none",
                                 "note": "trains no network: rank 0 ran it alone"}
    t0, started = time.perf_counter(), time.time() - 1  # -1: coarse file-system timestamps
    with fig.footnote(lambda: _data_stamp(data)):  # asked at each save: data loads as it goes
        res = exp.custom(ctx)
    summary = {**header, "results": res, "wall_s": time.perf_counter() - t0,
               "data": res.get("data") or _described(data),
               "notes": data.notes,  # the figures it drew (those written since it started)
               "figures": sorted(p.name for p in out.glob("*.png") if p.stat().st_mtime >= started)}
    write_json_atomic(out / "results.json", summary)
    return summary


def _finished_and_pending(cfgs, data, store, out, resume, quiet):
    """(results, saved, pending) before training: the runs finished earlier (--resume) or
    reused from another experiment, and those still to train, as (index, cfg, data, identity)."""
    results = [None] * len(cfgs)  # records in plan order (summaries keep the spec's order)
    pending, saved = [], {}  # saved: index -> its run file's content (to copy onto rank 0)
    for i, cfg in enumerate(cfgs):
        bundle = data(cfg.data)  # all data first: a missing file fails before any training
        identity = {**cfg.identity(), "data": bundle.describe()}
        rec = store.load(cfg.key, identity) if resume else None
        if rec is not None:
            quiet(f"[{i + 1}/{len(cfgs)}] {cfg.key}: finished earlier, reusing (--resume)")
            results[i] = rec["result"]
            saved[i] = rec
        elif cfg.tags.get("reuse_from"):  # another experiment's run (EE449 part 5: part 3's Adam)
            other = RunStore(out.parent / cfg.tags["reuse_from"])
            rec = other.load(cfg.key, identity)
            if rec is not None:
                quiet(f"[{i + 1}/{len(cfgs)}] {cfg.key}: reusing {other.path(cfg.key)}")
                results[i] = {**rec["result"], "tags": dict(cfg.tags),
                              "reused_from": str(other.path(cfg.key))}
            else:
                quiet(f"[{i + 1}/{len(cfgs)}] {cfg.key}: not in {other.runs_dir} with this "
                    f"configuration; training it here as {cfg.tags['reuse_from']} defines it")
                pending.append((i, cfg, bundle, identity))
        else:
            pending.append((i, cfg, bundle, identity))
    return results, saved, pending


def _gather_on_rank0(world, mode, exp, cfgs, store, pending, results, trained_by, header):
    """Under torchrun: every rank's runs to rank 0, which saves them (its run files are then
    complete whether or not the ranks share a file system) and notes who trained what. False
    on the other ranks (they return nothing)."""
    identity_of = {i: ident for i, _, _, ident in pending}
    sent = ({i: (results[i], cfgs[i].key, identity_of[i]) for i in trained_by}
            if mode == "runs" and world.rank != 0 else {})
    got = world.gather({"trained": sent, "by": trained_by})
    if world.rank != 0:
        return False
    who = {}
    for part in got:
        for i, (result, key, ident) in part["trained"].items():
            results[i] = result
            if store.load(key, ident) is None:
                store.save(key, {"config": ident, "result": result})
        who.update(part["by"])  # "all": trained data-parallel by every rank
    by_rank = defaultdict(list)
    for i in sorted(who):
        by_rank[str(who[i])].append(cfgs[i].key)
    header["distributed"]["trained_by_rank"] = dict(sorted(by_rank.items()))
    missing = [cfgs[i].key for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{exp.name}: runs lost between the ranks: {', '.join(missing)}")
    return True


def _merge_finished(world, store, cfgs, results, saved, pending, log):
    """--resume under torchrun: the runs any rank finds finished count as finished for all (each
    rank may keep its own --out when the ranks share no file system); rank 0 receives the records
    it lacks and saves them. Returns what is still pending, the same list on every rank."""
    done = [i for i, r in enumerate(results) if r is not None]
    everyone = world.all_gather(done)
    on_rank0 = set(everyone[0])
    extra = world.gather({i: (results[i], saved.get(i)) for i in done if i not in on_rank0})
    if world.rank == 0:
        for part in extra[1:]:
            for i, (result, rec) in part.items():
                if results[i] is None:
                    results[i] = result
                    if rec is not None:  # a run file (not a run reused from another experiment)
                        store.save(cfgs[i].key, rec)
                    log(f"[{i + 1}/{len(cfgs)}] {cfgs[i].key}: finished earlier on another "
                        "rank, reusing (--resume)")
    finished = set().union(*map(set, everyone))
    return [p for p in pending if p[0] not in finished]


def _lockstep_groups(pending):
    """Consecutive pending runs of one configuration on several backends (per_backend's "base"
    tag) train together, interleaved epoch by epoch; everything else alone."""
    groups = []
    for item in pending:
        i, cfg = item[0], item[1]
        prev = groups[-1][-1] if groups else None
        if (prev is not None and prev[0] == i - 1 and "base" in cfg.tags
                and prev[1].tags.get("base") == cfg.tags["base"]
                and not trains_with_numpy(cfg) and not trains_with_numpy(prev[1])):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _data_parallel(group):
    """Whether a group can train under DDP: everything but the NumPy-scratch MLP."""
    return not any(trains_with_numpy(cfg) for _, cfg, _, _ in group)


def _train_group(group, update, world=SINGLE):
    if len(group) > 1:
        jobs = [(cfg, bundle) for _, cfg, bundle, _ in group]
        return train_interleaved(jobs, progress=update, world=world)
    _, cfg, bundle, _ = group[0]
    if trains_with_numpy(cfg):
        result = train_numpy_mlp(bundle, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                                 seed=cfg.seed, progress=update, key=cfg.key)
        result["tags"] = dict(cfg.tags)
        return [result]
    return [train_run(cfg, bundle, progress=update, world=world)]


def _described(data):
    return sorted({b.describe() for b in data.cache.values()})


def _data_stamp(data):
    """The figure footnote: the data actually used and its size, on real data too (a subset or
    the embedded digits is easily mistaken for the full set), then any stand-in note."""
    lines = [f"DATA: {d}" for d in _described(data)]
    text = " ".join(n[len("NOTE: "):] if n.startswith("NOTE: ") else n for n in data.notes)
    if text:
        lines.append(f"STAND-IN DATA: {text}")
    return "\n".join(lines) or None


def timing_rows(records):
    """One row per run: accuracy and time per epoch, with the ratio to the torch run of the same
    configuration (ours / torch: > 1 means slower than PyTorch)."""
    torch_time = {r["tags"].get("base", r["key"]): r["time_per_epoch"] for r in records
                  if r["backend"] == "torch"}
    rows = []
    for r in records:
        base = r["tags"].get("base", r["key"])
        ref = torch_time.get(base)
        rows.append({"run": r["tags"].get("name", base), "model": r["model"], "backend": r["backend"],
                     "test_acc": r["test_acc"], "time_per_epoch": r["time_per_epoch"],
                     "vs_torch": (r["time_per_epoch"] / ref) if ref else None})
    return rows


def _write_summary(exp, opts, ctx, header, records, final):
    by_backend = defaultdict(list)
    for r in records:
        by_backend[r["backend"]].append(r)
    summary = {**header, "complete": final, "data": _described(ctx.data),
               "notes": ctx.data.notes,
               "results": {b: exp.summarize(rs, opts) for b, rs in by_backend.items()},
               "timing": timing_rows(records)}
    write_json_atomic(ctx.out_dir / "results.json", summary)
    return summary


def format_table(rows) -> str:
    head = f"{'run':<28} {'backend':<14} {'test acc %':>10} {'s/epoch':>9} {'vs torch':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = "" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}x"
        lines.append(f"{r['run'][:28]:<28} {r['backend']:<14} {r['test_acc']:>10.2f} "
                     f"{r['time_per_epoch']:>9.3f} {ratio:>9}")
    return "\n".join(lines)
