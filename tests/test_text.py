"""The words groundwork prints: counts agree with their nouns, version spans read naturally."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from groundwork._text import number_span, plural


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "step") == "1 step"
    assert plural(0, "step") == "0 steps"
    assert plural(2, "file") == "2 files"
    assert plural(12_000, "point") == "12,000 points"
    assert plural(2, "entry", "entries") == "2 entries"


@pytest.mark.parametrize(
    ("numbers", "text"),
    [([], "none"), ([1], "1"), ([1, 2, 3], "1..3"), ([1, 3], "1, 3"), (list(range(1, 40, 2)), "1..39 (20 versions)")],
)
def test_number_span(numbers: list[int], text: str) -> None:
    assert number_span(numbers) == text


def test_a_run_started_from_stdin_gets_a_readable_default_name(tmp_path: Path) -> None:
    script = (
        "import groundwork as gw\n"
        "with gw.start_run() as run:\n"
        "    print(run.name)\n"
    )
    env = {"GROUNDWORK_STORE": f"sqlite:///{tmp_path}/meta.db", "GROUNDWORK_ARTIFACTS": str(tmp_path / "a"),
           "PATH": "/usr/bin:/bin"}
    for argv in ([sys.executable, "-"], [sys.executable, "-c", script]):
        done = subprocess.run(argv, input=script if argv[-1] == "-" else None, capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        name = done.stdout.strip()
        assert not name.startswith("-"), name
        assert name.startswith("run-"), name
