"""Usage errors print the short usage message and exit 2, never an internal error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer

import groundwork
from groundwork.cli import app, main


def _commands(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command of the CLI, as its argv prefix."""
    children = getattr(command, "commands", None)
    if not children:
        yield path
        return
    for name, child in sorted(children.items()):
        if getattr(child, "hidden", False):
            continue
        yield from _commands(child, (*path, name))


ALL_COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command_group() -> None:
    heads = {path[0] for path in ALL_COMMANDS}
    assert {"run", "runs", "show", "models", "pipeline", "serve", "ui", "reproduce"} <= heads
    assert ("models", "promote") in ALL_COMMANDS


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_answers_a_bad_option_with_usage_and_exit_2(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*path, "--no-such-option-anywhere"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "No such option: --no-such-option-anywhere" in err
    assert f"Usage: groundwork {' '.join(path)}" in err
    assert "Internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "--no-such-option"], "No such option: --no-such-option"),
        (["show"], "Missing argument 'RUN'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["models", "promote"], "Missing argument"),
    ],
)
def test_usage_errors_from_the_installed_command(argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "groundwork", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Usage: groundwork" in done.stderr
    assert "Traceback" not in done.stderr and "Internal error" not in done.stderr


def test_version_prints_the_version() -> None:
    done = subprocess.run([sys.executable, "-m", "groundwork", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"groundwork {groundwork.__version__}"


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([])
    captured = capsys.readouterr()
    assert code == 2
    assert "Usage: groundwork" in captured.out + captured.err
    assert "Internal error" not in captured.err
