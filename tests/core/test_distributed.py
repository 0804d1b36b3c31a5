"""gw.distributed on torch's own launcher (real gloo; launcher="torch" even where a Ray runs): data-parallel equals one worker, a killed worker restarts.

The process group listens on loopback; like Ray, run these inside the loopback-only network
namespace (``make test`` does).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.checkpoints import load_from
from groundwork.core.distributed import DistributedFailed
from groundwork.errors import InvalidInput

torch = pytest.importorskip("torch")


def same_batch(ctx: Any) -> None:
    """20 SGD steps on one global batch of 64, split over the ranks (DDP averages the gradients)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    data = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=data, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=data)
    for step in range(20):
        loss = F.cross_entropy(model(ctx.shard(x)), ctx.shard(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.log({"loss": loss.item()}, step=step)
    ctx.checkpoint(net.state_dict())


@pytest.mark.slow
def test_two_workers_reach_the_weights_of_one(workspace: Config) -> None:
    one = gw.distributed(same_batch, workers=1, name="one", launcher="torch", config=workspace)
    two = gw.distributed(same_batch, workers=2, name="two", launcher="torch", config=workspace)
    assert one.status == two.status == "finished" and two.restarts == 0
    a, b = load_from(one.run_id, workspace), load_from(two.run_id, workspace)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=0), key
    run = gw.get_run(two.run_id, config=workspace)
    assert run.tags["gw.distributed.workers"] == "2" and run.tags["gw.distributed.launcher"] == "torch"
    # One run: rank 0 logged the loss averaged over both ranks, once per step.
    assert [p.step for p in run.history("loss")] == list(range(20))
    assert [o.kind for o in run.outputs] == ["checkpoint"]


def epochs(ctx: Any) -> float:
    """Train a digits-like problem for 6 epochs, checkpointing each; rank files let the test kill a worker."""
    import os
    import time

    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    folder = ctx.params["folder"]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    data = torch.Generator().manual_seed(2)
    centers = torch.randn(4, 16, generator=data) * 2
    y = torch.randint(0, 4, (512,), generator=data)
    x = centers[y] + torch.randn(512, 16, generator=data)
    first = 0
    state = ctx.last_checkpoint()
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first = state["epoch"] + 1
    for epoch in range(first, 6):
        with open(os.path.join(folder, f"rank{ctx.rank}-epoch{epoch}-start{ctx.restarts if ctx.rank == 0 else 'x'}"), "w") as f:
            f.write(str(os.getpid()))
        order = torch.randperm(512, generator=torch.Generator().manual_seed(epoch))
        for batch in order.split(64):
            loss = F.cross_entropy(model(ctx.shard(x[batch])), ctx.shard(y[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            time.sleep(0.05)
        ctx.checkpoint({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch})
    accuracy = float((net(x).argmax(1) == y).float().mean())
    ctx.log({"acc": accuracy})
    return accuracy


def kill_rank_1_in_epoch_2(folder: Path, killed: list[int]) -> None:
    """Wait for rank 1 to start epoch 2, then SIGKILL it mid-epoch (by its PID)."""
    deadline = time.monotonic() + 300
    mark = folder / "rank1-epoch2-startx"
    while time.monotonic() < deadline and not mark.exists():
        time.sleep(0.05)
    time.sleep(0.1)  # mid-epoch
    if mark.exists():
        pid = int(mark.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


@pytest.mark.slow
def test_a_killed_worker_restarts_from_the_last_checkpoint(workspace: Config, tmp_path: Path) -> None:
    folder = tmp_path / "marks"
    folder.mkdir()
    killed: list[int] = []
    killer = threading.Thread(target=kill_rank_1_in_epoch_2, args=(folder, killed), daemon=True)
    killer.start()
    hit = gw.distributed(epochs, workers=2, name="hit", launcher="torch", params={"folder": str(folder)},
                         config=workspace)
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    assert hit.status == "finished" and hit.restarts == 1
    run = gw.get_run(hit.run_id, config=workspace)
    assert run.tags["gw.distributed.restarts"] == "1"
    assert [p.value for p in run.history("restarts")] == [0.0, 1.0]
    # The restart went on from the epoch-1 checkpoint, not from scratch.
    assert (folder / "rank0-epoch2-start1").exists() and not (folder / "rank0-epoch0-start1").exists()

    for mark in folder.iterdir():
        mark.unlink()
    clean = gw.distributed(epochs, workers=2, name="clean", launcher="torch", params={"folder": str(folder)},
                           config=workspace)
    assert clean.restarts == 0
    assert abs(run.metrics["acc"] - gw.get_run(clean.run_id, config=workspace).metrics["acc"]) < 0.02


def test_bad_arguments_are_one_line(workspace: Config) -> None:
    with pytest.raises(InvalidInput, match="workers must be a whole number"):
        gw.distributed(same_batch, workers=0, config=workspace)
    with pytest.raises(InvalidInput, match="unknown backend 'mpi'"):
        gw.distributed(same_batch, backend="mpi", config=workspace)
    with pytest.raises(InvalidInput, match="must be callable"):
        gw.distributed("train.py", config=workspace)  # type: ignore[arg-type]
    assert gw.runs(config=workspace) == []


def broken(ctx: Any) -> None:
    raise RuntimeError("no data")


@pytest.mark.slow
def test_a_train_fn_that_raises_fails_the_run_with_one_line(workspace: Config) -> None:
    with pytest.raises(DistributedFailed) as caught:
        gw.distributed(broken, workers=2, max_restarts=0, name="broken", launcher="torch", config=workspace)
    assert "\n" not in caught.value.one_line()
    assert gw.get_run("broken", config=workspace).status == "failed"
