"""``groundwork pipeline run``, ``lineage`` and ``reproduce`` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.cli import main
from groundwork.config import Config

PIPE = """
    import groundwork as gw


    @gw.step
    def numbers(n: int = 3) -> list:
        return list(range(n))


    @gw.step
    def total(values: list, scale: float = 1.0) -> float:
        gw.log({"total": sum(values) * scale})
        return sum(values) * scale


    class Opaque:
        pass


    @gw.step
    def opaque() -> "Opaque":
        return Opaque()


    @gw.step
    def explode(values: list) -> int:
        raise ZeroDivisionError("no data to divide")


    @gw.pipeline
    def flow(n: int = 3, scale: float = 1.0):
        return total(numbers(n=n), scale=scale)


    @gw.pipeline
    def unstorable():
        return opaque()


    @gw.pipeline
    def failing():
        return explode(numbers())


    @gw.pipeline
    def looping():
        a = numbers()
        b = total(a)
        a.after(b)
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    monkeypatch.setenv("GROUNDWORK_STORE", config.store_url)
    monkeypatch.setenv("GROUNDWORK_ARTIFACTS", config.artifacts_url)
    monkeypatch.chdir(tmp_path)
    return config


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "pipe.py"
    path.write_text(textwrap.dedent(PIPE))
    yield str(path)
    sys.modules.pop("pipe", None)


def gw_cli(*args: str, config: Config, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **config.child_environ(), **(env or {})}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=environ,
                          timeout=300)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def test_run_twice_second_is_fully_cached_and_says_so(workspace: Config, pipe: str) -> None:
    first = gw_cli("pipeline", "run", f"{pipe}:flow", "--param", "n=4", "--param", "scale=2", config=workspace)
    assert first.returncode == 0, first.stderr
    assert "pipeline flow finished" in first.stderr and "2 steps, 2 ran" in first.stderr
    second = gw_cli("pipeline", "run", f"{pipe}:flow", "--param", "n=4", "--param", "scale=2", config=workspace)
    assert second.returncode == 0, second.stderr
    assert "2 cached (fully cached: nothing recomputed)" in second.stderr
    assert "≡ total" in second.stderr and "reused" in second.stderr
    as_json = gw_cli("pipeline", "run", f"{pipe}:flow", "--param", "n=4", "--param", "scale=2", "--json",
                     config=workspace)
    report = json.loads(as_json.stdout)
    assert report["fully_cached"] is True and [s["status"] for s in report["steps"]] == ["cached", "cached"]
    run = gw.get_run(report["run_id"], config=workspace)
    assert run.kind == "pipeline" and run.params == {"n": 4, "scale": 2.0}


def test_no_cache_and_params_are_typed(workspace: Config, pipe: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", f"{pipe}:flow", "--param", "n=2", "--executor", "inline"]) == 0
    assert main(["pipeline", "run", f"{pipe}:flow", "--param", "n=2", "--executor", "inline", "--no-cache"]) == 0
    assert "2 steps, 2 ran" in capsys.readouterr().err
    assert main(["pipeline", "run", f"{pipe}:flow", "--param", "n=two"]) == 1
    assert one_error_line(capsys.readouterr().err) == "Error: --param n='two' is not a valid int"
    assert main(["pipeline", "run", f"{pipe}:flow", "--param", "epochs=2"]) == 1
    assert one_error_line(capsys.readouterr().err) == "Error: pipeline 'flow' has no parameter 'epochs' (it accepts: n, scale)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no_such_module:flow"], "Error: cannot import module 'no_such_module': no module named 'no_such_module'"),
        (["{pipe}:missing"], "has no attribute 'missing' (pipelines in"),
        (["{pipe}:flow", "--executor", "nope"], "Error: unknown executor 'nope' (choose one of: inline, local, ray)"),
        (["{pipe}:looping"], "Error: pipeline 'looping' has a cycle:"),
        (["{pipe}:unstorable", "--executor", "inline"],
         "step 'opaque' returned a Opaque (pipe.Opaque), which groundwork cannot store"),
    ],
)
def test_bad_input_is_one_clear_line(
    workspace: Config, pipe: str, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    argv = ["pipeline", "run", *[a.replace("{pipe}", pipe) for a in args]]
    assert main(argv) == 1
    assert expected in one_error_line(capsys.readouterr().err)


def test_unreachable_ray_is_one_clear_line(workspace: Config, pipe: str) -> None:
    pytest.importorskip("ray")
    done = gw_cli("pipeline", "run", f"{pipe}:flow", "--executor", "ray", "--no-cache", config=workspace,
                  env={"GROUNDWORK_RAY_ADDRESS": "127.0.0.1:9"})
    assert done.returncode == 1
    assert one_error_line(done.stderr).startswith("Error: cannot reach Ray at 127.0.0.1:9")


def test_failing_step_prints_its_traceback_then_one_error(
    workspace: Config, pipe: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipeline", "run", f"{pipe}:failing", "--executor", "inline"]) == 1
    err = capsys.readouterr().err
    assert "step explode failed:" in err
    assert 'raise ZeroDivisionError("no data to divide")' in err
    assert err.strip().splitlines()[-1].startswith(
        "Error: pipeline 'failing' failed: step 'explode' raised ZeroDivisionError: no data to divide"
    )


def test_lineage_tree_json_dot_and_descendants(workspace: Config, pipe: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", f"{pipe}:flow", "--executor", "inline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    total = next(s for s in report["steps"] if s["name"] == "total")
    numbers = next(s for s in report["steps"] if s["name"] == "numbers")

    assert main(["lineage", total["outputs"]["output"]["digest"][:12]]) == 0
    out = capsys.readouterr().out
    assert "made by step total" in out and "made by step numbers" in out and "ancestry: 2 runs" in out

    assert main(["lineage", numbers["run_id"], "--descendants", "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph["direction"] == "down"
    assert {n["attrs"].get("name") for n in graph["nodes"] if n["type"] == "run"} == {"numbers", "total"}

    assert main(["lineage", report["run_id"], "--dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph lineage {")

    assert main(["lineage", "x", "--dot", "--json"]) == 1
    assert one_error_line(capsys.readouterr().err) == "Error: use just one of --json and --dot"
    assert main(["lineage", "nothing-like-this"]) == 1
    assert "Error: no run, artifact or file matches 'nothing-like-this'" in one_error_line(capsys.readouterr().err)


def test_reproduce_exit_codes(workspace: Config, pipe: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", f"{pipe}:flow", "--executor", "inline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    total = next(s for s in report["steps"] if s["name"] == "total")
    assert main(["reproduce", total["run_id"], "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly: 1 output identical" in out
    assert "no git commit was recorded" in out
    assert main(["reproduce", "no-such-run"]) == 1
    assert "Error: no run with id, id prefix or name 'no-such-run'" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", [["pipeline", "run"], ["lineage"], ["reproduce"]])
def test_help_has_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert "Example:" in capsys.readouterr().out
