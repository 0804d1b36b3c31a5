"""Fixtures for the JSON API: a populated store, and the app called in-process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def team_world(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real ``groundwork server`` (2 workers) on a PostgreSQL database of its own, with people in every role."""
    import uuid

    import psycopg
    from _team_world import World, populate

    from _servers import GroundworkServer

    name = f"gw_team_{uuid.uuid4().hex[:12]}"
    admin_url = postgres_server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store_url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("team-world")
    tokens, run_id, digest, victim, config = populate(store_url, home)
    with GroundworkServer(store_url, config.artifacts_url, workers=2, log_dir=home) as server:
        yield World(server.url, server.port, server.log, config, tokens, run_id, digest, victim)
