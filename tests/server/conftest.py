"""Fixtures for the JSON API: a populated store, and the app called in-process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from _clients import local_client  # noqa: E402
from _ui_store import Recorded, populate  # noqa: E402

from groundwork.config import Config  # noqa: E402


@pytest.fixture(scope="session")
def recorded_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Recorded]:
    """One store with every kind of thing the UI shows (see ``_ui_store.populate``), shared read-only."""
    home = tmp_path_factory.mktemp("ui-store")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    return config, populate(config, home / "files")


@pytest.fixture(scope="session")
def recorded(recorded_store: tuple[Config, Recorded]) -> Recorded:
    return recorded_store[1]


@pytest.fixture
def client(recorded_store: tuple[Config, Recorded]) -> Iterator[TestClient]:
    """The app over the shared store (read-only tests)."""
    from groundwork.server.app import create_app

    with local_client(create_app(recorded_store[0])) as test_client:
        yield test_client


@pytest.fixture
def fresh_client(workspace: Config) -> Iterator[TestClient]:
    """The app over an empty store of this test's own (for tests that write)."""
    from groundwork.server.app import create_app

    with local_client(create_app(workspace)) as test_client:
        yield test_client
