"""The README's demo command works end to end (``make demo`` runs ``groundwork demo``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import groundwork as gw
from groundwork.config import Config


@pytest.mark.slow
def test_demo_records_caches_traces_and_reproduces(workspace: Config) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "groundwork", "demo", "--epochs", "2"],
        capture_output=True, text=True, timeout=900, env={**os.environ, **workspace.child_environ()},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout + result.stderr  # progress displays go to stderr
    assert "fully cached: nothing recomputed" in out
    assert "reproduced exactly" in out
    assert "ancestry:" in out
    pipelines = gw.runs(filter="kind = 'pipeline'", config=workspace)
    assert len(pipelines) == 2
    steps = gw.runs(filter="kind = 'step'", limit=100, config=workspace)
    assert {s.status for s in steps} == {"finished", "cached"}
    assert gw.get_run("digits-mlp", config=workspace).metrics["acc"] > 0.5
