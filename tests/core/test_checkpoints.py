"""run.checkpoint / run.last_checkpoint, and ``groundwork run --resume RUN`` after a kill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import groundwork as gw
from groundwork.config import Config
from groundwork.core.checkpoints import find_last, load_from
from groundwork.storage.stores import open_stores

SCRIPT = """
import os, groundwork as gw
run = gw.start_run()
state = run.last_checkpoint() or {"epoch": -1, "total": 0}
print("resumed at", state["epoch"] + 1, flush=True)
for epoch in range(state["epoch"] + 1, 5):
    state = {"epoch": epoch, "total": state["total"] + epoch}
    run.checkpoint(state)
    run.log({"total": state["total"]}, step=epoch)
    if epoch == 2 and os.environ.get("DIE_AT_2"):
        os._exit(9)  # killed: no cleanup at all
print("done", state["total"])
"""


def test_checkpoints_are_content_addressed_and_numbered(workspace: Config) -> None:
    with gw.start_run(name="ck", config=workspace) as run:
        assert run.last_checkpoint() is None
        first = run.checkpoint({"w": [1, 2, 3]})
        again = run.checkpoint({"w": [1, 2, 3]})
        run.checkpoint({"w": [4]})
        assert first.digest == again.digest  # the same bytes are stored once
        # torch.save where PyTorch is loaded (by an earlier test on this worker, say), else pickle
        suffix = "pt" if "torch" in sys.modules else "pkl"
        assert [first.name, again.name] == [f"checkpoints/000000.{suffix}", f"checkpoints/000001.{suffix}"]
        assert run.last_checkpoint() == {"w": [4]}
    outputs = gw.get_run(run.id, config=workspace).outputs
    assert [o.kind for o in outputs] == ["checkpoint"] * 3
    assert load_from(run.id, workspace) == {"w": [4]}
    found = find_last(open_stores(workspace).metadata, run.id)
    assert found is not None and found.number == 2


def test_torch_state_round_trips(workspace: Config) -> None:
    import torch

    net = torch.nn.Linear(3, 2)
    with gw.start_run(config=workspace) as run:
        run.checkpoint({"model": net.state_dict()})
        back = run.last_checkpoint()
    assert back["model"].keys() == net.state_dict().keys()
    assert all(torch.equal(back["model"][k], v) for k, v in net.state_dict().items())


def test_groundwork_run_resume_goes_on_from_the_last_checkpoint(workspace: Config, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {**os.environ, **workspace.child_environ()}
    died = subprocess.run([sys.executable, "-m", "groundwork", "run", "--name", "long", "--", sys.executable, "train.py"],
                          cwd=tmp_path, env={**env, "DIE_AT_2": "1"}, capture_output=True, text=True, timeout=300)
    assert died.returncode != 0
    crashed = gw.get_run("long", config=workspace)
    assert crashed.status == "failed" and load_from(crashed.id, workspace) == {"epoch": 2, "total": 3}

    resumed = subprocess.run([sys.executable, "-m", "groundwork", "run", "--resume", crashed.id[:10]],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at 3" in resumed.stdout and "done 10" in resumed.stdout
    (new,) = [r for r in gw.runs(filter="name = 'long'", config=workspace) if r.id != crashed.id]
    assert new.tags["gw.resumed_from"] == crashed.id
    assert new.command == crashed.command
    assert [p.step for p in new.history("total")] == [3, 4]


def test_resume_of_a_missing_run_is_one_line(workspace: Config, tmp_path: Path) -> None:
    env = {**os.environ, **workspace.child_environ()}
    result = subprocess.run([sys.executable, "-m", "groundwork", "run", "--resume", "nosuchrun"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        line for line in result.stderr.splitlines() if "no run with id" in line
    ]
    assert gw.runs(config=workspace) == []
