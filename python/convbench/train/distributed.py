"""`torchrun ... -m convbench.train`: the process group, and the two ways of sharing an experiment.

Two modes (chosen per experiment, --dist-mode):
  runs  the experiment's independent runs are dealt out to the ranks; each rank trains its runs
        exactly as a single process would (same seeds, same batches), saves each one as it
        finishes, and rank 0 collects them, writes results.json and draws the figures.
  data  every run is trained by all ranks together under DistributedDataParallel: each global
        batch (the spec's batch size, shuffled as a single process shuffles it) is split across
        the ranks, so the learning rate and batch size stay the spec's; metrics are summed over
        the ranks.

Plain `python -m convbench.train` never comes here: `init` returns SINGLE unless torchrun (or
anything setting RANK / WORLD_SIZE > 1) launched the process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, List, Optional, Sequence

import torch

MODES = ("auto", "runs", "data")

# The coordination group carries Python objects and the waits between ranks. In runs mode a rank
# that has finished its share waits there for the slowest rank, which may take as long as a whole
# experiment (days on CPU), hence the long timeout; a rank that dies is noticed by torchrun, which
# then stops the others, so nothing waits this long in practice.
COORD_TIMEOUT = timedelta(days=7)


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None   # "gloo" | "nccl" when a process group is up
    coord: Any = field(default=None, repr=False)  # gloo group for objects, metrics and waits

    @property
    def active(self) -> bool:
        return self.size > 1

    def describe(self) -> dict:
        return {"processes": self.size, "backend": self.backend}

    # ---- collectives on the coordination group (all no-ops in a single process) ----------------

    def all_gather(self, obj) -> list:
        if not self.active:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.size
        dist.all_gather_object(out, obj, group=self.coord)
        return out

    def gather(self, obj, dst: int = 0) -> Optional[list]:
        """Every rank's obj on rank dst (None elsewhere): run records go to rank 0 only, since a
        record may hold first-layer weights (megabytes)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.size if self.rank == dst else None
        dist.gather_object(obj, out, dst=dst, group=self.coord)
        return out

    def broadcast(self, obj, src: int = 0):
        if not self.active:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=src, group=self.coord)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist
            dist.barrier(group=self.coord)

    def sum(self, values: Sequence[float]) -> List[float]:
        """Element-wise sum over the ranks (float64, on the CPU: these are counts and loss sums)."""
        if not self.active:
            return list(values)
        import torch.distributed as dist
        t = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.coord)
        return t.tolist()

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, CPU tensors only: with
        per-rank BatchNorm the ranks' running statistics drift apart between DDP's broadcasts,
        and every rank must evaluate the same network."""
        if self.active:
            import torch.distributed as dist
            for b in model.buffers():
                if b.device.type == "cpu":
                    dist.broadcast(b, src=0, group=self.coord)

    def max(self, values: Sequence[float]) -> List[float]:
        if not self.active or not values:
            return list(values)
        import torch.distributed as dist
        t = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.coord)
        return t.tolist()


SINGLE = World()


def launched() -> bool:
    """True under torchrun with more than one process (torchrun sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "cpu") -> World:
    """Join the process group torchrun describes in the environment: gloo on the CPU, NCCL on
    CUDA with one GPU per process (LOCAL_RANK picks it). SINGLE when not launched by torchrun."""
    if not launched():
        return SINGLE
    import torch.distributed as dist
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        n = torch.cuda.device_count()
        if local >= n:
            raise RuntimeError(f"LOCAL_RANK {local} but this node has {n} CUDA device(s): start "
                               f"at most {n} processes per node (--nproc-per-node)")
        torch.cuda.set_device(local)  # "cuda" then means this process's GPU everywhere
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo")
    coord = dist.new_group(backend="gloo", timeout=COORD_TIMEOUT)
    return World(rank, size, local, dist.get_backend(), coord)


def finish(world: World) -> None:
    if world.active:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def choose_mode(requested: str, n_units: int, world: World) -> str:
    """auto: runs when the experiment has at least one independent unit of work (a run, or the
    backends of one run trained interleaved) per process, data otherwise (e.g. 1RT720 Ex 2's one
    long run)."""
    if requested not in MODES:
        raise ValueError(f"--dist-mode {requested!r}: expected one of {', '.join(MODES)}")
    if requested != "auto":
        return requested
    return "runs" if n_units >= world.size else "data"


def assign(costs: Sequence[float], size: int) -> List[int]:
    """The rank of each unit of work: longest first, each to the least-loaded rank (ties to the
    lower rank), so every rank computes the same assignment from the same list."""
    load = [0.0] * size
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(size), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += costs[i]
    return owner


# ---- data mode: the pieces of one training step ----------------------------------------------

def shard(n: int, world: World) -> torch.Tensor:
    """This rank's positions in a global batch of n: DistributedSampler's rank::world rule, but
    applied to each global batch of the single-process shuffle rather than to the epoch. The
    batches then hold the same samples as a single-process run, and nothing is padded
    (DistributedSampler repeats samples to even out the last batch, counting them twice)."""
    return torch.arange(world.rank, n, world.size)


def loss_scale(n_global: int, world: World) -> float:
    """Each rank's loss is its summed per-sample loss times this. DDP averages the gradients over
    the ranks, so the result is the gradient of the mean loss over the whole global batch, as one
    process computes it, however unevenly the batch splits."""
    return world.size / n_global


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around a model (our Conv2d / MaxPool2d are ordinary nn.Modules with
    ordinary parameters, so DDP needs nothing special). On CUDA, BatchNorm becomes SyncBatchNorm
    (statistics of the global batch); SyncBatchNorm has no CPU implementation, so on the CPU each
    rank normalises with its own part of the batch (recorded in the results)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DDP(model, device_ids=[device.index if device.index is not None
                                      else torch.cuda.current_device()])
    return DDP(model)


def has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
