"""``groundwork models list|show|promote|unalias|history``, ``predict`` and ``serve``'s refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config


def gw_cli(*args: str, config: Config, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=300)


def one_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


@pytest.fixture
def two_versions(workspace: Config) -> Any:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    with gw.start_run(name="train", config=workspace, capture_code=False) as run:
        run.log_model(model, "digits", example=x[:5])
        run.log_model(model, "digits", example=x[:5])
    return model, x


def test_promote_show_list_and_history(workspace: Config, two_versions: Any) -> None:
    result = gw_cli("models", "promote", "digits", "1", "--alias", "production", "--reason", "first", config=workspace)
    assert result.returncode == 0 and "digits@production -> version 1" in result.stdout
    result = gw_cli("models", "promote", "digits", "2", "--alias", "production", "--reason", "retrained",
                    config=workspace)
    assert "-> version 2 (was 1)" in result.stdout
    listing = json.loads(gw_cli("models", "list", "--json", config=workspace).stdout)
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listing] == [("digits", 2, {"production": 2})]
    table = gw_cli("models", "list", config=workspace).stdout
    assert "digits" in table and "production -> 2" in table
    shown = json.loads(gw_cli("models", "show", "digits", "--json", config=workspace).stdout)
    assert [(v["version"], v["aliases"], v["flavor"]) for v in shown["versions"]] == [
        (1, [], "sklearn"), (2, ["production"], "sklearn")]
    one = json.loads(gw_cli("models", "show", "digits@production", "--json", config=workspace).stdout)
    assert one["version"] == 2 and one["onnx_digest"] and one["signature"]["inputs"][0]["shape"] == [-1, 64]
    text = gw_cli("models", "show", "digits/1", config=workspace).stdout
    assert "float64[N, 64] -> int64[N]" in text and "skl2onnx" in text
    history = json.loads(gw_cli("models", "history", "digits", "--json", config=workspace).stdout)
    assert [(h["from_version"], h["to_version"], h["reason"]) for h in history] == [(1, 2, "retrained"), (None, 1, "first")]
    assert all(h["who"] for h in history)
    table = gw_cli("models", "history", "digits", config=workspace).stdout
    assert "retrained" in table and "production" in table
    result = gw_cli("models", "unalias", "digits", "--alias", "production", config=workspace)
    assert "removed (it pointed at version 2)" in result.stdout


def test_lineage_of_an_alias_in_a_fresh_process(workspace: Config, two_versions: Any) -> None:
    """``groundwork lineage digits@production`` walks alias -> version -> its artifact -> the run that made it."""
    gw.promote_model("digits", 2, alias="production", reason="retrained", config=workspace)
    run_id = gw.get_model_version("digits/2", config=workspace).run_id
    graph = json.loads(gw_cli("lineage", "digits@production", "--json", config=workspace).stdout)
    ids = {n["id"] for n in graph["nodes"]}
    assert {"alias:digits@production", "model:digits/2", f"run:{run_id}"} <= ids
    text = gw_cli("lineage", "digits@production", config=workspace)
    assert text.returncode == 0 and "alias digits@production -> version 2" in text.stdout
    one_error(gw_cli("lineage", "digits@staging", config=workspace), "has no alias 'staging'")


def test_models_errors_are_one_clear_line(workspace: Config, two_versions: Any) -> None:
    one_error(gw_cli("models", "show", "digts", config=workspace), "no model named 'digts' (did you mean 'digits'?")
    one_error(gw_cli("models", "promote", "digits", "9", config=workspace), "has no version 9 (versions: 1..2)")
    one_error(gw_cli("models", "promote", "digits", "1", "--alias", "9x", config=workspace), "not a valid alias")
    one_error(gw_cli("models", "show", "digits@staging", config=workspace), "has no alias 'staging'")
    one_error(gw_cli("models", "history", "nope", config=workspace), "no model named 'nope'")
    one_error(gw_cli("serve", "digits@staging", "--port", "8999", config=workspace), "has no alias 'staging'")
    one_error(gw_cli("serve", "digits", "digits/1", config=workspace), "named more than once")
    one_error(gw_cli("serve", "digits", "--max-batch-size", "0", config=workspace), "--max-batch-size must be at least 1")
    assert "No models yet" not in gw_cli("models", "list", config=workspace).stdout


def test_empty_registry(workspace: Config) -> None:
    assert "No models yet" in gw_cli("models", "list", config=workspace).stdout
    assert json.loads(gw_cli("models", "list", "--json", config=workspace).stdout) == []


def test_predict_in_process_and_bad_input(workspace: Config, two_versions: Any, tmp_path: Path) -> None:
    model, x = two_versions
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"inputs": x[:4].tolist()}))
    result = gw_cli("predict", "digits/1", "--input", str(rows), config=workspace)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"outputs": model.predict(x[:4]).tolist(), "model_version": 1}
    result = gw_cli("predict", "digits", "--input", "-", config=workspace, stdin=json.dumps(x[:2].tolist()))
    assert json.loads(result.stdout)["outputs"] == model.predict(x[:2]).tolist()
    one_error(gw_cli("predict", "digits", "--input", "-", config=workspace, stdin="[[1, 2]]"),
              "each row must have 64 values")
    one_error(gw_cli("predict", "digits", "--input", str(tmp_path / "none.json"), config=workspace),
              "no such input file")
    one_error(gw_cli("predict", "digits", "--input", "-", config=workspace, stdin="{oops"), "stdin is not valid JSON")


def test_predict_against_a_server(workspace: Config, two_versions: Any) -> None:
    from groundwork.engines.serve import background_server

    model, x = two_versions
    with background_server(["digits"], config=workspace) as url:
        result = gw_cli("predict", "digits", "--url", url, "--input", "-", config=workspace,
                        stdin=json.dumps(np.asarray(x[:3]).tolist()))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"outputs": model.predict(x[:3]).tolist(), "model_version": 2}
        one_error(gw_cli("predict", "digits", "--url", url, "--input", "-", config=workspace, stdin="[[1]]"),
                  "each row must have 64 values")
