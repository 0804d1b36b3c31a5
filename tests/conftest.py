"""Shared fixtures. Sections: isolation, PostgreSQL, S3 (moto), backend parametrization.

Real servers are started once per session (``tests/_servers.py``), bound to
127.0.0.1 and stopped by PID; each test gets a fresh database or bucket on them.
Where PostgreSQL cannot run on this machine its tests are skipped with the reason.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _servers import (  # noqa: E402
    GroundworkServer,
    ServerUnavailable,
    create_bucket,
    moto_server,
    postgres_server,
)


# --- xdist groups ----------------------------------------------------------------------
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` honour ``xdist_group`` marks under pytest 9.

    pytest-xdist 3.8 puts a test in its group by setting ``item._nodeid``, which pytest 9 no
    longer reads (a node's id is ``item._id``): every group was silently ignored and its tests
    ran on both workers at once (two docs pages serving on one documented port, for one).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # an older pytest: xdist's own suffix works there
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")


# --- isolation -----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolate_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's GROUNDWORK_* settings, nor writes to their cache folder."""
    for name in list(os.environ):
        if name.startswith("GROUNDWORK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GROUNDWORK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "groundwork-cache"))


# --- PostgreSQL ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One real PostgreSQL per session: ``postgresql+psycopg://gw@127.0.0.1:PORT/postgres``."""
    try:
        server = postgres_server()
        url = server.__enter__()
    except ServerUnavailable as unavailable:
        pytest.skip(unavailable.reason)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg wants it (no ``+psycopg``)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards), as a SQLAlchemy URL."""
    import psycopg

    name = f"gw_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(postgres_server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(_libpq(postgres_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- S3 (moto) -----------------------------------------------------------------------
_AWS_SESSION_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Unset for the session so the developer's AWS setup cannot leak in.
_AWS_SESSION_UNSET = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                      "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto S3 server per session (``http://127.0.0.1:PORT``), with dummy AWS credentials set.

    The AWS_* variables are set in ``os.environ`` for the session and restored after.
    """
    aws_home = tmp_path_factory.mktemp("aws")
    changes: dict[str, str | None] = {name: None for name in _AWS_SESSION_UNSET}
    changes.update(_AWS_SESSION_ENV)
    changes["AWS_CONFIG_FILE"] = str(aws_home / "config")
    changes["AWS_SHARED_CREDENTIALS_FILE"] = str(aws_home / "credentials")
    saved = {name: os.environ.get(name) for name in changes}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        with moto_server() as endpoint:
            yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """``s3://<fresh bucket>/artifacts?endpoint_url=http://127.0.0.1:PORT``.

    The endpoint travels in the URL (not AWS_ENDPOINT_URL), so the string alone is
    a complete GROUNDWORK_ARTIFACTS value, also for child processes.
    """
    return f"s3://{create_bucket(s3_endpoint)}/artifacts?endpoint_url={s3_endpoint}"


# --- backend parametrization ---------------------------------------------------------
@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty artifact/blob store URL on every backend: a local folder, then S3 (moto)."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_url"))
    return str(tmp_path / "artifacts")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty metadata store URL on every backend: a SQLite file, then PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'meta.db'}"


# --- the team server (groundwork server) ------------------------------------------------
@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroundworkServer]:
    """One real ``groundwork server`` per session (2 workers, SQLite and a folder, 127.0.0.1).

    Tests keep apart by project: make one with a token through ``_servers.team_token``.
    """
    home = tmp_path_factory.mktemp("team-server")
    with GroundworkServer(f"sqlite:///{home / 'meta.db'}", str(home / "artifacts"), log_dir=home) as server:
        yield server
