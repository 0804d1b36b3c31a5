"""``groundwork infer`` on a registered model: a recorded run, and lineage from the output to the training data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config

torch = pytest.importorskip("torch")


def gw_cli(*args: str, config: Config) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_help_has_an_example() -> None:
    done = subprocess.run([sys.executable, "-m", "groundwork", "infer", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert done.returncode == 0 and "Example:" in done.stdout and "--window" in done.stdout


@pytest.mark.slow
def test_infer_a_registered_model_then_walk_lineage_to_its_training_data(workspace: Config, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = tmp_path / "train.npy"
    np.save(train, rng.normal(size=(4, 1, 16, 16, 16)).astype(np.float32))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(4, 2, 3, padding=1)).eval()
    with gw.start_run(name="train seg", config=workspace, capture_code=False) as run:
        run.log_input(train, name="train.npy")
        version = run.log_model(net, "seg", example=np.load(train)[:1])
        training_run = run.id
    gw.promote_model("seg", version.version, alias="production", config=workspace)
    np.save(tmp_path / "ct.npy", rng.normal(size=(1, 40, 36, 44)).astype(np.float32))

    done = gw_cli("infer", "seg@production", "--input", str(tmp_path / "ct.npy"), "--output",
                  str(tmp_path / "mask.zarr"), "--window", "16,16,16", "--output-type", "labels", "--json",
                  config=workspace)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["shape"] == [1, 40, 36, 44] and result["dtype"] == "uint8"
    assert result["model"]["name"] == "seg" and result["model"]["version"] == version.version
    run = gw.get_run(result["run_id"], config=workspace)
    assert run.status == "finished" and run.params["window"] == "16,16,16"
    assert run.metrics["voxels_per_s"] > 0 and run.metrics["progress"] == 1.0

    graph = json.loads(gw_cli("lineage", str(tmp_path / "mask.zarr"), "--json", config=workspace).stdout)
    runs = {n["ref"] for n in graph["nodes"] if n["type"] == "run"}
    names = {n["attrs"].get("name") for n in graph["nodes"] if n["type"] == "artifact"}
    assert {result["run_id"], training_run} <= runs
    assert "train.npy" in names and "ct.npy" in {Path(str(n)).name for n in names}

    again = gw_cli("infer", "seg@production", "--input", str(tmp_path / "ct.npy"), "--output",
                   str(tmp_path / "mask.zarr"), "--window", "16,16,16", config=workspace)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
