"""``groundwork sweep`` over a command: trials are runs of it, ``show``, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config

TRAIN = """
import json, math, os
lr = float(os.environ["GROUNDWORK_PARAM_LR"])
width = int(os.environ["GROUNDWORK_PARAM_WIDTH"])
quality = 1 - abs(math.log10(lr) + 2) / 4 - (0.02 if width == 16 else 0)
for epoch in range(6):
    print(json.dumps({"val_acc": quality * (1 - 0.5 ** (epoch + 1)), "step": epoch}))
"""


def cli(config: Config, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture
def project(workspace: Config, tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "space.yaml").write_text("lr: loguniform(1e-4, 1e-1)\nwidth: choice([16, 32])\n")
    return tmp_path


@pytest.mark.slow
def test_a_command_sweep_records_each_trial_as_a_run_of_the_command(workspace: Config, project: Path) -> None:
    result = cli(workspace, "sweep", "--space", "space.yaml", "--trials", "6", "--parallel", "2",
                 "--metric", "val_acc", "--direction", "max", "--pruner", "median", "--seed", "1", "--json",
                 "--", sys.executable, "train.py", cwd=project)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["status"] == "finished" and len(info["rows"]) == 6
    assert info["command"] == [sys.executable, "train.py"]
    assert info["best"]["value"] == max(r["value"] for r in info["rows"] if r["status"] == "finished")
    trial = gw.get_run(info["best"]["id"], config=workspace)
    # A trial is a groundwork run of the command: its command, params, stdout and metric series.
    assert trial.kind == "trial" and trial.parent_id == info["id"]
    assert trial.command == [sys.executable, "train.py"]
    assert set(trial.params) == {"lr", "width"}
    assert [p.step for p in trial.history("val_acc")] == list(range(6))
    assert '"val_acc"' in trial.logs("stdout")

    # Any trial reproduces like any run: the same command, its params, the same metric.
    again = cli(workspace, "reproduce", trial.id[:12], cwd=project)
    assert again.returncode == 0, again.stderr
    (rerun,) = gw.runs(filter=f"tags.reproduces = '{trial.id}'", config=workspace)
    assert rerun.status == "finished" and rerun.metrics["val_acc"] == trial.metrics["val_acc"]

    shown = cli(workspace, "sweep", "show", info["id"][:10])
    assert shown.returncode == 0, shown.stderr
    assert f"best: trial {info['best']['number']}" in shown.stdout
    assert "val_acc" in shown.stdout and "lr" in shown.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--space", "nope.yaml", "--", "python", "train.py"], "space file 'nope.yaml' does not exist"),
        (["--space", "space.yaml", "--trials", "0", "--", "python", "train.py"], "trials must be a whole number"),
        (["--space", "space.yaml"], "no command given"),
        (["--space", "space.yaml", "--", "no-such-program-xyz"], "cannot find the command 'no-such-program-xyz'"),
        (["--space", "space.yaml", "--sampler", "bayes", "--", "python", "train.py"], "unknown sampler 'bayes'"),
        (["show", "0123456789abcdef"], "no run with id"),
    ],
)
def test_bad_input_is_one_clear_line(workspace: Config, project: Path, args: list[str], expected: str) -> None:
    result = cli(workspace, "sweep", *args, cwd=project)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert gw.runs(filter="kind = 'sweep'", config=workspace) == []


def test_bad_space_file_names_the_parameter(workspace: Config, project: Path) -> None:
    (project / "space.yaml").write_text("lr: loguniform(0, 1)\n")
    result = cli(workspace, "sweep", "--space", "space.yaml", "--", "python", "train.py", cwd=project)
    assert result.returncode == 1
    assert "Error: parameter 'lr': loguniform(0, 1) needs 0 < low < high" in result.stderr


def test_show_refuses_a_run_that_is_not_a_sweep(workspace: Config, project: Path) -> None:
    with gw.start_run(name="plain", config=workspace):
        pass
    result = cli(workspace, "sweep", "show", "plain", cwd=project)
    assert result.returncode == 1 and "Error: run 'plain' is a run, not a sweep" in result.stderr


def test_every_sweep_command_has_help_with_an_example_and_stays_light() -> None:
    code = (
        "import sys\n"
        "from groundwork.cli import main\n"
        "for args in (['sweep', '--help'], ['sweep', 'start', '--help'], ['sweep', 'resume', '--help'],\n"
        "             ['sweep', 'show', '--help']):\n"
        "    assert main(args) == 0, args\n"
        "print('HEAVY', [m for m in ('optuna', 'torch', 'ray') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Example:") == 4
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
