"""Sweeps and gw.distributed on a local Ray (2 CPUs), inside a loopback-only network namespace.

Run with: unshare -n bash -c 'ip link set lo up && exec "$@"' _ .venv/bin/pytest -m ray tests/core/sweeps
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import groundwork as gw
from groundwork.config import Config

pytestmark = pytest.mark.ray


def logged(params: dict[str, Any]) -> float:
    import os

    import groundwork as gw

    gw.log({"pid": os.getpid()})
    return (params["x"] - 1.0) ** 2


def test_trials_run_as_ray_tasks(ray_session: Any, workspace: Config) -> None:
    import os

    result = gw.sweep(logged, {"x": gw.uniform(-3, 3)}, trials=6, parallel=2, executor="ray", seed=2,
                      config=workspace)
    trials = result.trials
    assert len(trials) == 6 and all(t.status == "finished" for t in trials)
    # The objective ran in Ray's worker processes and logged into each trial's run from there.
    pids = {int(t.metrics["pid"]) for t in trials}
    assert os.getpid() not in pids
    assert result.best_value == min(t.metrics["value"] for t in trials)


@pytest.mark.slow
def test_distributed_on_ray_train_matches_torchs_launcher(ray_session: Any, workspace: Config) -> None:
    import torch

    from groundwork.core.checkpoints import load_from

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_distributed import same_batch  # tests/core/test_distributed.py

    on_ray = gw.distributed(same_batch, workers=2, name="ray-train", config=workspace)
    run = gw.get_run(on_ray.run_id, config=workspace)
    assert on_ray.status == "finished" and run.tags["gw.distributed.launcher"] == "ray"
    local = gw.distributed(same_batch, workers=1, launcher="torch", name="one", config=workspace)
    a, b = load_from(on_ray.run_id, workspace), load_from(local.run_id, workspace)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=0), key
    assert [p.step for p in run.history("loss")] == list(range(20))


@pytest.mark.slow
def test_a_killed_ray_train_worker_restarts_from_the_last_checkpoint(
    ray_session: Any, workspace: Config, tmp_path: Path
) -> None:
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_distributed import epochs, kill_rank_1_in_epoch_2  # tests/core/test_distributed.py

    folder = tmp_path / "marks"
    folder.mkdir()
    killed: list[int] = []
    killer = threading.Thread(target=kill_rank_1_in_epoch_2, args=(folder, killed), daemon=True)
    killer.start()
    hit = gw.distributed(epochs, workers=2, name="ray-hit", params={"folder": str(folder)}, config=workspace)
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    run = gw.get_run(hit.run_id, config=workspace)
    assert run.tags["gw.distributed.launcher"] == "ray"
    assert hit.status == "finished" and hit.restarts == 1
    assert (folder / "rank0-epoch2-start1").exists() and not (folder / "rank0-epoch0-start1").exists()
    assert run.metrics["acc"] > 0.9
