"""`torchrun ... -m convbench.train` and our layers under DistributedDataParallel: 2 CPU processes
(gloo), tiny data. Every process is started with a timeout, so a hang fails instead of blocking."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import convbench

pytest.importorskip("matplotlib")  # convbench.train draws figures
import torch.distributed as dist  # noqa: E402

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from convbench.train import cli  # noqa: E402
from convbench.train import distributed as D  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "_dist_worker.py")
TIMEOUT = 180  # seconds for a whole group of processes (a loaded 2-core CI machine)
TINY = ["--no-progress", "--epochs", "1", "--subset", "40", "--batch-size", "20",
        "--backend", "convbench"]


pytestmark = pytest.mark.usefixtures("one_thread")  # (conftest.py)


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    # wherever this convbench was imported from (installed, or an in-place build)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(convbench.__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argvs, cwd):
    """Start one process per argv as ranks 0..n-1 of a group (as torchrun does), and as torchrun
    does, stop the others (SIGTERM) as soon as one fails. Returns (return codes, outputs)."""
    env, port, n = _env(), _free_port(), len(argvs)
    procs = []
    for rank, argv in enumerate(argvs):
        e = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(n),
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, *argv], env=e, cwd=cwd, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
            if time.monotonic() > deadline:
                raise AssertionError(f"processes still running after {TIMEOUT} s")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.wait() for p in procs], [p.stdout.read() for p in procs]


def trained(log):
    """The keys of the runs each rank started, from the workers' LOG.RANK files."""
    return [Path(f"{log}.{r}").read_text().split() if Path(f"{log}.{r}").exists() else []
            for r in range(2)]


def results(out, exp):
    return json.loads((Path(out) / exp / "results.json").read_text())


def _same(a, b):
    """Two summaries of one backend agree on everything but the timings."""
    drop = ("time_per_epoch", "total_time", "epoch_times")
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            if k not in drop:
                _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


def test_single_process_has_no_process_group(tmp_path, monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert not D.launched() and D.init("cpu") is D.SINGLE
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: nothing to share either
    assert not D.launched()


def test_assignment_is_balanced_deterministic_and_complete():
    costs = [5, 1, 1, 3, 2, 2]
    owner = D.assign(costs, 2)
    assert owner == D.assign(costs, 2)
    loads = [sum(c for c, r in zip(costs, owner) if r == k) for k in range(2)]
    assert sorted(loads) == [7, 7]
    assert D.choose_mode("auto", 3, D.World(0, 2)) == "runs"
    assert D.choose_mode("auto", 1, D.World(0, 2)) == "data"
    assert D.choose_mode("data", 9, D.World(0, 2)) == "data"


def test_ddp_with_convbench_layers_equals_one_process_on_the_global_batch(tmp_path):
    """Uneven shards (a global batch of 7 over 2 ranks, then 2), momentum, float64."""
    sys.path.insert(0, str(HERE))
    try:
        import _dist_worker
    finally:
        sys.path.remove(str(HERE))
    out = tmp_path / "params"
    rcs, logs = launch([[WORKER, "ddp", str(out)]] * 2, tmp_path)
    assert rcs == [0, 0], logs
    want = _dist_worker.reference()
    first = torch.load(f"{out}.0")
    for rank in range(2):
        got = torch.load(f"{out}.{rank}")
        assert [p.dtype for p in got] == [torch.float64] * len(want)
        for g, w, f in zip(got, want, first):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
            assert torch.equal(g, f)  # the ranks hold one model
    assert not all(torch.equal(w, p) for w, p in zip(want, _dist_worker.model().parameters()))


def test_runs_mode_trains_every_run_once_and_matches_a_serial_run(tmp_path):
    exp, args = "m124-cnn-lr", TINY  # 3 runs over 2 ranks
    assert cli.main([exp, *args, "--out", str(tmp_path / "serial")]) == 0
    log = tmp_path / "trained.log"
    argv = [WORKER, "cli", str(log), "0", exp, *args, "--out", str(tmp_path / "dist")]
    rcs, logs = launch([argv] * 2, tmp_path)
    assert rcs == [0, 0], logs
    by_rank = trained(log)
    assert all(by_rank)  # both ranks worked
    keys = by_rank[0] + by_rank[1]
    serial, dist_ = results(tmp_path / "serial", exp), results(tmp_path / "dist", exp)
    assert len(keys) == len(set(keys)) == 3  # every run, once
    assert len(list((tmp_path / "dist" / exp / "runs").glob("*.json"))) == 3
    d = dist_["distributed"]
    assert dist_["processes"] == 2 and d["mode"] == "runs" and d["backend"] == "gloo"
    assert d["trained_by_rank"] == {"0": by_rank[0], "1": by_rank[1]}
    assert serial["processes"] == 1 and "distributed" not in serial
    assert dist_["complete"] is True
    _same(serial["results"], dist_["results"])
    assert "processes: 2 (gloo, runs mode)" in logs[0]


def test_data_mode_matches_a_serial_run_on_the_global_batch(tmp_path):
    exp = "1rt720-ex2"  # one run: auto picks data mode
    args = [*TINY, "--batch-size", "16"]  # 40 samples: global batches 16, 16, 8
    assert cli.main([exp, *args, "--out", str(tmp_path / "serial")]) == 0
    argv = [WORKER, "cli", str(tmp_path / "log"), "0", exp, *args, "--out", str(tmp_path / "dist")]
    rcs, logs = launch([argv] * 2, tmp_path)
    assert rcs == [0, 0], logs
    serial, dist_ = results(tmp_path / "serial", exp), results(tmp_path / "dist", exp)
    assert dist_["distributed"]["mode"] == "data" and dist_["processes"] == 2
    assert dist_["distributed"]["trained_by_rank"] == {"all": ["cnn/convbench"]}
    a, b = serial["results"]["convbench"]["runs"][0], dist_["results"]["convbench"]["runs"][0]
    for k in ("train_loss_curve", "train_acc_curve", "test_loss_curve", "test_acc_curve"):
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-5), k
    run = json.loads(next((tmp_path / "dist" / exp / "runs").glob("*.json")).read_text())
    assert run["result"]["data_parallel"] == {"processes": 2, "backend": "gloo", "global_batch": 16}
    ser = json.loads(next((tmp_path / "serial" / exp / "runs").glob("*.json")).read_text())
    assert torch.allclose(torch.tensor(run["result"]["weights"]),
                          torch.tensor(ser["result"]["weights"]), rtol=1e-4, atol=1e-5)


def test_resume_after_a_killed_rank_loses_nothing_and_repeats_nothing(tmp_path):
    """Rank 1 dies (SIGKILL) after its first run; the launcher then stops rank 0 (which stalls
    after its first run, so that its second is surely unfinished). Each rank keeps its own --out
    (no shared file system); --resume trains only what no rank finished."""
    exp = "m124-cnn-lr"
    outs = [tmp_path / "out0", tmp_path / "out1"]
    log1, log2 = tmp_path / "first.log", tmp_path / "second.log"

    def argv(log, kill, out, *extra):
        return [WORKER, "cli", str(log), str(kill), exp, *TINY, "--dist-mode", "runs",
                "--out", str(out), *extra]

    rcs, logs = launch([argv(log1, "save:1", o) for o in outs], tmp_path)
    assert rcs[1] == -signal.SIGKILL and rcs[0] != 0, logs
    only_on_1 = {p.name for p in (outs[1] / exp / "runs").glob("*.json")}
    finished = only_on_1 | {p.name for p in (outs[0] / exp / "runs").glob("*.json")}
    assert len(only_on_1) == 1 and 1 <= len(finished) <= 2  # rank 1 saved its run, then died
    rcs, logs = launch([argv(log2, 0, o, "--resume") for o in outs], tmp_path)
    assert rcs == [0, 0], logs
    again = [k for ks in trained(log2) for k in ks]
    assert len(again) == len(set(again)) == 3 - len(finished)  # nothing trained twice
    assert len(list((outs[0] / exp / "runs").glob("*.json"))) == 3  # rank 0 holds every run
    assert "finished earlier on another rank" in logs[0]  # rank 1's run, copied to rank 0
    res = results(outs[0], exp)
    assert res["complete"] is True and len(res["results"]["convbench"]["runs"]) == 3
    assert cli.main([exp, *TINY, "--out", str(tmp_path / "serial")]) == 0
    _same(results(tmp_path / "serial", exp)["results"], res["results"])


def test_data_mode_resume_after_a_killed_rank(tmp_path):
    """Data mode: both ranks train each run; rank 1 dies as the second run starts (once rank 0
    has saved the first); --resume trains only the second, on both ranks, once."""
    exp, out = "1rt720-ex4", tmp_path / "out"  # 2 runs
    runs = out / exp / "runs"

    def argv(log, kill, *extra):
        return [WORKER, "cli", str(log), kill, exp, *TINY, "--dist-mode", "data",
                "--out", str(out), *extra]

    rcs, logs = launch([argv(tmp_path / "first", f"start:1:{runs}/*.json")] * 2, tmp_path)
    assert rcs[1] == -signal.SIGKILL and rcs[0] != 0, logs
    (done,) = runs.glob("*.json")
    before = done.read_bytes()
    rcs, logs = launch([argv(tmp_path / "second", "0", "--resume")] * 2, tmp_path)
    assert rcs == [0, 0], logs
    first, second = trained(tmp_path / "first"), trained(tmp_path / "second")
    assert second[0] == second[1] and len(second[0]) == 1  # the missing run, by both ranks
    assert second[0][0] != first[1][0] and first[1][0] in first[0]
    assert done.read_bytes() == before  # the finished run was kept, not redone
    res = results(out, exp)
    assert res["complete"] is True and len(res["results"]["convbench"]["runs"]) == 2
    assert res["distributed"]["trained_by_rank"] == {"all": second[0]}


def test_torchrun_quick_says_how_many_processes_ran(tmp_path):
    """The issue's acceptance command, on tiny data."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "convbench.train", "quick", "--quick", "--subset", "40", "--epochs", "1",
           "--no-progress", "--out", str(tmp_path)]
    r = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    res = results(tmp_path, "quick")
    assert res["processes"] == 2 and res["distributed"]["mode"] == "runs"
    assert res["complete"] is True and len(res["timing"]) == 4
    assert "processes: 2 (gloo, runs mode)" in r.stdout
