"""The README's demo command works end to end (``make demo`` runs ``groundwork demo``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config


@pytest.mark.slow
def test_demo_records_caches_traces_and_reproduces(workspace: Config, tmp_path: Path) -> None:
    # Relative locations, as the defaults are (./.groundwork/...): reproduce and the
    # pipeline workers run in other directories and must still find this store.
    relative = {"GROUNDWORK_STORE": "sqlite:///gw/meta.db", "GROUNDWORK_ARTIFACTS": "gw/artifacts"}
    assert Config.from_env(relative) == workspace  # workspace's home is tmp_path/gw, the cwd is tmp_path
    port = _free_port()
    result = subprocess.run(
        [sys.executable, "-m", "groundwork", "demo", "--epochs", "2", "--port", str(port)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **relative}, cwd=tmp_path,
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
    # The pipeline's MLP is registered, promoted with a reason, traced to the raw data and served once.
    production = gw.get_model_version("digits@production", config=workspace)
    assert production.flavor == "pytorch" and production.onnx_digest
    from groundwork.core.registry import alias_history

    (move,) = alias_history("digits", "production", config=workspace)
    assert move.to_version == production.version and "accuracy on the held-out split" in (move.reason or "")
    graph = gw.lineage("digits@production", config=workspace)
    ingest = [n for n in graph.nodes.values() if n.kind == "run" and n.attrs.get("name", "").endswith("ingest")]
    assert "alias:digits@production" in graph.nodes and ingest, graph.tree()
    served = re.search(r"served prediction: digit (\d) \(true label (\d)\), model version (\d+)", out)
    assert served and int(served.group(3)) == production.version, out[-3000:]
    assert f"groundwork serve digits@production --host 127.0.0.1 --port {port}" in out
    assert re.search(r"server stopped \(pid \d+\)", out)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_on_a_taken_port_fails_before_doing_anything(workspace: Config, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "groundwork", "demo", "--port", str(port)],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"127.0.0.1:{port} is not available" in result.stderr and "Traceback" not in result.stderr
    assert gw.runs(config=workspace) == []  # nothing was trained or recorded
