"""Shared fixtures for recording runs (loaded as a plugin: ``-p tests.fixtures`` in pyproject)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from groundwork.config import Config


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """A fresh embedded setup: SQLite store and artifact folder under tmp_path.

    The environment variables are set too, so child processes (``groundwork run``,
    SDK scripts) use the same store. The working directory is tmp_path.
    """
    home = tmp_path / "gw"
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    for key, value in config.child_environ().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GROUNDWORK_RUN_ID", raising=False)
    monkeypatch.delenv("GROUNDWORK_SEED", raising=False)
    monkeypatch.chdir(tmp_path)
    yield config
    from groundwork.core import tracking

    tracking._end_all("finished")  # a test that forgot run.end() must not leak a running run
