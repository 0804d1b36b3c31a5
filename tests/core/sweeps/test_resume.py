"""kill -9 of a sweep's process, then ``groundwork sweep resume``: no trial lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config

SCRIPT = """
    import sys, time
    import groundwork as gw

    def objective(params):
        time.sleep(0.4)
        return (params["x"] - 1) ** 2 + params["k"]

    if __name__ == "__main__":
        result = gw.sweep(objective, {"x": gw.uniform(-3, 3), "k": gw.choice([0, 1, 2])},
                          trials=TRIALS, parallel=2, seed=7, name="killed")
        print("best", result.best_value)
"""


def cli(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def trials_of(config: Config) -> list[gw.Run]:
    (sweep,) = gw.runs(filter="kind = 'sweep'", config=config)
    return sweep.children()


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_repeats_nothing(workspace: Config, tmp_path: Path) -> None:
    trials = 10
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("TRIALS", str(trials)))
    env = {**os.environ, **workspace.child_environ()}
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before it was killed: {process.stderr.read().decode() if process.stderr else ''}")
        found = gw.runs(filter="kind = 'trial' and status = 'finished'", config=workspace)
        if len(found) >= 4:
            break
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    before = trials_of(workspace)
    crashed = [t for t in before if t.status == "crashed"]
    assert crashed, [t.status for t in before]  # the trials in flight are seen as cut short
    finished_before = {t.id: t.params for t in before if t.status == "finished"}
    assert gw.runs(filter="kind = 'sweep'", config=workspace)[0].status == "crashed"

    sweep_id = gw.runs(filter="kind = 'sweep'", config=workspace)[0].id
    resumed = cli(workspace, "sweep", "resume", sweep_id[:8], "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["id"] == sweep_id and summary["status"] == "finished"

    after = trials_of(workspace)
    counted = [t for t in after if t.status != "crashed"]
    assert len(counted) == trials  # exactly the trials asked for, none lost
    numbers = Counter(int(t.tags["gw.trial"]) for t in after)
    assert all(n == 1 for n in numbers.values())  # no number used twice
    # Finished trials were kept, not run again.
    assert {t.id: t.params for t in after if t.id in finished_before} == finished_before
    # Each interrupted trial ran again exactly once, with the same params.
    retries = [t for t in after if "optuna.user.gw.retry_of" in t.tags]
    assert sorted(json.loads(t.tags["optuna.user.gw.retry_of"]) for t in retries) == sorted(t.id for t in crashed)
    by_id = {t.id: t for t in after}
    for retry in retries:
        assert retry.params == by_id[json.loads(retry.tags["optuna.user.gw.retry_of"])].params
    # The sampler saw every earlier result: the resumed sweep's trials are fresh draws.
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(params)) == len(params)
    assert summary["counts"] == {"crashed": len(crashed), "finished": trials}
