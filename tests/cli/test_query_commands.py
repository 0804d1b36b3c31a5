"""``groundwork runs``, ``show`` and ``compare``, and every kind of bad input issue #2 lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config


def gw_cli(*args: str, config: Config | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(config.child_environ() if config else {}), **(env or {})}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=environ, timeout=300)


@pytest.fixture
def three_runs(workspace: Config) -> list[str]:
    ids = []
    for lr, acc in ((0.1, 0.80), (0.01, 0.95), (0.01, 0.91)):
        with gw.start_run(name=f"lr{lr}-acc{acc}", params={"lr": lr, "opt": "adam"}, config=workspace) as run:
            run.log({"acc": acc, "loss": 1 - acc}, step=0)
        ids.append(run.id)
    return ids


def assert_one_clear_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.stderr
    assert expected in error_lines[0], result.stderr


def test_runs_filter_order_and_json(workspace: Config, three_runs: list[str]) -> None:
    result = gw_cli("runs", "--filter", "metrics.acc > 0.9 and params.lr = 0.01", "--order-by", "-metrics.acc", "--json", config=workspace)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["id"] for r in data] == [three_runs[1], three_runs[2]]
    assert data[0]["metrics"]["acc"] == 0.95 and data[0]["params"]["lr"] == 0.01
    table = gw_cli("runs", config=workspace)
    assert table.returncode == 0 and "3 runs" in table.stdout and "metrics.acc" in table.stdout


def test_show_by_prefix_and_name(workspace: Config, three_runs: list[str]) -> None:
    by_prefix = gw_cli("show", three_runs[0][:8], "--json", config=workspace)
    assert by_prefix.returncode == 0, by_prefix.stderr
    data = json.loads(by_prefix.stdout)
    assert data["id"] == three_runs[0] and data["environment"]["python"]["version"]
    assert data["metric_history_lengths"] == {"acc": 1, "loss": 1}
    by_name = gw_cli("show", "lr0.01-acc0.95", config=workspace)
    assert by_name.returncode == 0 and three_runs[1] in by_name.stdout and "finished" in by_name.stdout


def test_compare_highlights_differences(workspace: Config, three_runs: list[str]) -> None:
    result = gw_cli("compare", three_runs[0], three_runs[1], "--json", config=workspace)
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["params.lr"]["differs"] is True and rows["params.lr"]["values"] == [0.1, 0.01]
    assert rows["params.opt"]["differs"] is False
    assert rows["metrics.acc"]["values"] == [0.8, 0.95]
    table = gw_cli("compare", three_runs[0], three_runs[1], config=workspace)
    assert table.returncode == 0 and "params.lr" in table.stdout


def test_unknown_run_id(workspace: Config, three_runs: list[str]) -> None:
    assert_one_clear_error(gw_cli("show", "doesnotexist", config=workspace), "no run with id, id prefix or name 'doesnotexist'")


def test_ambiguous_prefix(workspace: Config) -> None:
    store_path = workspace.store_url.removeprefix("sqlite:///")
    from groundwork.storage.metadata import SqlMetadataStore

    store = SqlMetadataStore(workspace.store_url)
    for suffix in "12":
        store.create_run({"id": "beef" + suffix * 28, "name": "x", "kind": "run", "status": "finished", "created_at": 1.0})
    assert Path(store_path).exists()
    assert_one_clear_error(gw_cli("show", "beef", config=workspace), "run prefix 'beef' matches 2 runs")


def test_filter_syntax_error_points_at_the_column(workspace: Config, three_runs: list[str]) -> None:
    result = gw_cli("runs", "--filter", "metrics.acc > and params.lr = 1", config=workspace)
    assert_one_clear_error(result, "column 15")
    assert "^" in result.stderr  # the caret under the offending column


def test_unwritable_store_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = gw_cli("runs", env={"GROUNDWORK_STORE": f"sqlite:///{blocker}/meta.db"})
    assert_one_clear_error(result, "cannot write the metadata store")


def test_store_url_with_unknown_scheme() -> None:
    result = gw_cli("runs", env={"GROUNDWORK_STORE": "oracle://db.example/meta"})
    assert_one_clear_error(result, "unknown metadata store scheme 'oracle://'")


def test_corrupted_artifact_blob(workspace: Config, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"precious weights" * 100)
    with gw.start_run(name="with-artifact", config=workspace) as run:
        info = run.log_artifact(source)
    blobs = [p for p in Path(workspace.artifacts_url).rglob(info.digest)]
    assert len(blobs) == 1
    os.chmod(blobs[0], 0o644)
    blobs[0].write_bytes(b"bit rot")
    result = gw_cli("artifacts", "get", info.digest, str(tmp_path / "restored.bin"), config=workspace)
    assert_one_clear_error(result, "corrupted")
    assert not (tmp_path / "restored.bin").exists()


def test_artifacts_get_refuses_an_existing_destination_unless_force(workspace: Config, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.txt").write_text("v1\n")
    (tmp_path / "model" / "extra.txt").write_text("from v1 only\n")
    (tmp_path / "weights.bin").write_bytes(b"new weights")
    with gw.start_run(name="outputs", config=workspace) as run:
        folder = run.log_artifact(tmp_path / "model", name="model")
        file = run.log_artifact(tmp_path / "weights.bin", name="weights.bin")
    (tmp_path / "model" / "w.txt").write_text("v2, mine\n")
    (tmp_path / "model" / "extra.txt").unlink()
    (tmp_path / "weights.bin").write_bytes(b"my own weights")
    for ref, dest in (("outputs:model", tmp_path / "model"), ("outputs:weights.bin", tmp_path / "weights.bin")):
        assert_one_clear_error(gw_cli("artifacts", "get", ref, str(dest), config=workspace), "already exists")
    assert (tmp_path / "model" / "w.txt").read_text() == "v2, mine\n"
    assert (tmp_path / "weights.bin").read_bytes() == b"my own weights"
    assert "--force" in gw_cli("artifacts", "get", "--help").stdout
    # A folder for a folder, a file for a file: replaced whole.
    result = gw_cli("artifacts", "get", "outputs:model", str(tmp_path / "model"), "--force", config=workspace)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["extra.txt", "w.txt"]
    assert (tmp_path / "model" / "w.txt").read_text() == "v1\n"
    result = gw_cli("artifacts", "get", file.digest, str(tmp_path / "weights.bin"), "--force", config=workspace)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "weights.bin").read_bytes() == b"new weights"
    # Never a folder over a file or the other way round.
    assert_one_clear_error(gw_cli("artifacts", "get", folder.digest, str(tmp_path / "weights.bin"), "--force",
                                  config=workspace), "is a file")
    assert (tmp_path / "weights.bin").read_bytes() == b"new weights"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".gw-tmp-")]


def test_run_with_no_command(workspace: Config) -> None:
    assert_one_clear_error(gw_cli("run", "--name", "x", config=workspace), "no command given")


def test_every_command_has_help_with_an_example() -> None:
    import typer

    from groundwork.cli import app

    group = typer.main.get_command(app)
    for name, _command in group.commands.items():  # type: ignore[attr-defined]
        result = gw_cli(name, "--help")
        assert result.returncode == 0, name
        assert "Example" in result.stdout, f"groundwork {name} --help has no example"
