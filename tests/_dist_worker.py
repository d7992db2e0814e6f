"""One rank of the multi-process tests (test_train_distributed.py starts these as torchrun would:
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment).

  python _dist_worker.py ddp OUT            DDP with convbench layers, float64: params to OUT
  python _dist_worker.py cli LOG KILL ARGS  `python -m convbench.train ARGS`, appending the key of
                                            every run this rank trains to LOG.RANK. KILL:
      0               nothing
      save:K          rank 1 SIGKILLs itself once it has saved K runs, and rank 0 stalls then
                      (until the launcher stops it), so that some run is surely unfinished
      start:K:GLOB    rank 1 SIGKILLs itself on starting its (K+1)-th run, once GLOB matches K
                      files (data mode: rank 0 has saved the runs trained together)
"""
import os
import signal
import sys
import time

import torch
import torch.nn.functional as F

# a global batch of 7 splits 4/3 over two ranks; the last batch (2 of 9) splits 1/1
N, BATCH, STEPS = 9, 7, 3
TIMEOUT = 600


def model():
    import convbench.nn as cbnn
    torch.manual_seed(0)
    return torch.nn.Sequential(
        cbnn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), cbnn.MaxPool2d(2),
        cbnn.Conv2d(4, 3, 3, stride=2), torch.nn.Flatten(), torch.nn.Linear(3, 5)).double()


def data():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(N, 2, 8, 8, generator=g, dtype=torch.float64),
            torch.randint(0, 5, (N,), generator=g))


def batches():
    x, y = data()
    for step in range(STEPS):  # epochs of two batches, 7 then 2, in a fixed order
        s = 0 if step % 2 == 0 else BATCH
        yield x[s:s + BATCH], y[s:s + BATCH]


def reference():
    """One process, the whole global batch, the textbook mean loss."""
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches():
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return [p.detach() for p in m.parameters()]


def ddp(out):
    from convbench.train import distributed
    world = distributed.init("cpu")
    try:
        m = distributed.wrap(model(), world, torch.device("cpu"))
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for x, y in batches():
            part = distributed.shard(len(y), world)
            loss = (F.cross_entropy(m(x[part]), y[part], reduction="sum")
                    * distributed.loss_scale(len(y), world))
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.save([p.detach() for p in m.parameters()], f"{out}.{world.rank}")
    finally:
        distributed.finish(world)


def cli(log, kill, args):
    import glob
    from convbench.train import cli as cli_mod
    from convbench.train import results, runner
    rank = int(os.environ.get("RANK", "0"))
    how, k, pattern = (kill.split(":", 2) + ["", ""])[:3] if kill != "0" else ("", "0", "")
    k = int(k)
    saved, started = [], []

    def die():
        os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9`: no cleanup, no goodbye

    def note(keys):
        if how == "start" and rank == 1 and len(started) >= k:
            deadline = time.monotonic() + TIMEOUT
            while len(glob.glob(pattern)) < k and time.monotonic() < deadline:
                time.sleep(0.05)
            die()
        started.extend(keys)
        with open(f"{log}.{rank}", "a") as fh:
            fh.write("".join(f"{key}\n" for key in keys))

    real_save = results.RunStore.save

    def save(self, key, record):
        path = real_save(self, key, record)
        saved.append(key)
        if how == "save" and len(saved) >= k:
            if rank == 1:
                die()
            time.sleep(TIMEOUT)
        return path

    results.RunStore.save = save
    real_run, real_inter = runner.train_run, runner.train_interleaved

    def train_run(cfg, data, progress=None, **kw):
        note([cfg.key])
        return real_run(cfg, data, progress, **kw)

    def train_interleaved(jobs, progress=None, **kw):
        note([cfg.key for cfg, _ in jobs])
        return real_inter(jobs, progress, **kw)

    runner.train_run, runner.train_interleaved = train_run, train_interleaved
    return cli_mod.main(args)


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1]
    if what == "ddp":
        ddp(sys.argv[2])
    elif what == "cli":
        sys.exit(cli(sys.argv[2], sys.argv[3], sys.argv[4:]))
    else:
        raise SystemExit(f"unknown {what!r}")
