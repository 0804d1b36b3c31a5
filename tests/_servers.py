"""Real servers for tests: PostgreSQL and moto's S3, bound to 127.0.0.1 and stopped by PID.

Each is a context manager that yields a URL and stops the process it started
(and removes its temporary folder) however the block ends. Where a server
cannot be started at all on this machine (no binaries), they raise
:class:`ServerUnavailable`, whose ``reason`` the conftest turns into a skip.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


class ServerUnavailable(Exception):
    """This machine cannot run the server; ``reason`` says why (printed as the skip reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerFailed(RuntimeError):
    """The server was there but did not start; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def send(port: int, method: str, path: str, *, host: str | None = None, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    """One request to ``127.0.0.1:port`` over a real socket, naming ``host`` (default ``127.0.0.1:PORT``) in
    ``Host``; ``body`` is sent as JSON, ``raw`` as it is."""
    sent = {"Host": f"{HOST}:{port}" if host is None else host, **(headers or {})}
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        cookies = [v for k, v in response.getheaders() if k.lower() == "set-cookie"]
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(), cookies)
    finally:
        conn.close()


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Poll ``ready()`` until it is true; fail early if ``proc`` exits, or after START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise ServerFailed(f"{what} exited with status {proc.returncode}:\n{_log_tail(log)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerFailed(f"{what} did not answer within {START_TIMEOUT_S:.0f}s:\n{_log_tail(log)}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], signals: tuple[signal.Signals, ...]) -> None:
    """Stop ``proc`` (by its PID only): each signal in turn, waiting a while after each, then SIGKILL."""
    for sig in signals:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


# --- PostgreSQL ------------------------------------------------------------------
def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and postgres."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        version = bin_dir.parent.name
        if (bin_dir / "postgres").exists():
            candidates.append((float(version) if version.replace(".", "", 1).isdigit() else 0.0, bin_dir))
    if not candidates:
        raise ServerUnavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "install the Debian package 'postgresql' to run these tests"
        )
    return max(candidates)[1]


def _as_postgres_user() -> dict[str, object]:
    """Popen arguments that run the child as the ``postgres`` user when we are root.

    PostgreSQL refuses to run as root. Dropping privileges in the child itself
    (rather than through ``runuser``) makes the PID we hold the postmaster's own.
    """
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable("running as root and there is no 'postgres' system user to run PostgreSQL as") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": {
        "PATH": "/usr/bin:/bin", "HOME": entry.pw_dir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    }}


@contextlib.contextmanager
def postgres_server(user: str = "gw") -> Iterator[str]:
    """Start a throwaway PostgreSQL on 127.0.0.1 and yield ``postgresql+psycopg://gw@127.0.0.1:PORT/postgres``.

    The role ``user`` is the superuser; every connection from 127.0.0.1 is trusted
    (no password). Data lives in a temporary folder that is removed afterwards.
    """
    bin_dir = postgres_bin_dir()
    as_user = _as_postgres_user()
    tmp = Path(tempfile.mkdtemp(prefix="gw-postgres-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if "user" in as_user:
            os.chown(tmp, int(as_user["user"]), int(as_user["group"]))  # type: ignore[call-overload]
        data, log = tmp / "data", tmp / "postgres.log"
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            capture_output=True, cwd=tmp, **as_user,  # type: ignore[call-overload]
        )
        if init.returncode != 0:
            raise ServerFailed(f"initdb failed:\n{init.stdout.decode()}\n{init.stderr.decode()}")
        port = free_port()
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                 "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={tmp}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp, **as_user,  # type: ignore[call-overload]
            )
        assert proc is not None

        def accepts_connections() -> bool:
            result = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", HOST, "-p", str(port), "-U", user, "-d", "postgres"],
                capture_output=True,
            )
            return result.returncode == 0

        _wait_until(accepts_connections, proc, log, "postgres")
        yield f"postgresql+psycopg://{user}@{HOST}:{port}/postgres"
    finally:
        if proc is not None:
            # SIGINT: fast shutdown (disconnect clients); SIGQUIT: immediate shutdown.
            _stop(proc, (signal.SIGINT, signal.SIGQUIT))
        shutil.rmtree(tmp, ignore_errors=True)


# --- moto (S3) -------------------------------------------------------------------
def moto_server_executable() -> Path:
    """``moto_server`` from the virtual environment running the tests."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        found = shutil.which("moto_server")
        if found is None:
            raise ServerUnavailable("moto_server is not installed: pip install 'moto[server]'")
        exe = Path(found)
    return exe


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's standalone server on 127.0.0.1 and yield its endpoint, ``http://127.0.0.1:PORT``."""
    exe = moto_server_executable()
    tmp = Path(tempfile.mkdtemp(prefix="gw-moto-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        endpoint = f"http://{HOST}:{port}"
        log = tmp / "moto.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [str(exe), "-H", HOST, "-p", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp,
            )

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        _wait_until(answers, proc, log, "moto_server")
        yield endpoint
    finally:
        if proc is not None:
            _stop(proc, (signal.SIGTERM,))
        shutil.rmtree(tmp, ignore_errors=True)


def create_bucket(endpoint: str) -> str:
    """Create a fresh, uniquely named bucket on the S3 ``endpoint`` and return its name."""
    import uuid

    import boto3

    name = f"gw-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


# --- groundwork server (the team server) -----------------------------------------------
class GroundworkServer:
    """A real ``groundwork server`` process (``workers`` uvicorn workers) on 127.0.0.1.

    Started in its own session, so :meth:`kill` (``kill -9``) takes the supervisor and its
    workers at once, by process group; :meth:`start` again brings it back on the same port.
    """

    def __init__(self, store_url: str, artifacts_url: str, *, workers: int = 2, port: int | None = None,
                 log_dir: Path | None = None) -> None:
        self.store_url = store_url
        self.artifacts_url = artifacts_url
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = (log_dir or Path(tempfile.mkdtemp(prefix="gw-server-"))) / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GroundworkServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
        with open(self.log, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "groundwork", "server", "--store", self.store_url, "--artifacts",
                 self.artifacts_url, "--host", HOST, "--port", str(self.port), "--workers", str(self.workers)],
                stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        proc = self.proc

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1", timeout=5) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        _wait_until(answers, proc, self.log, "groundwork server")
        return self

    def kill(self) -> None:
        """``kill -9`` of the whole server (supervisor and workers), by its process group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            _stop(self.proc, (signal.SIGTERM,))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # a worker left behind by a supervisor that died

    def __enter__(self) -> GroundworkServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def team_token(store_url: str, project: str, role: str = "maintainer", user: str = "alice") -> str:
    """A fresh API token of ``user`` (made if needed) with ``role`` in ``project`` (made if needed), via the team store."""
    from groundwork.server import team as team_ops
    from groundwork.storage.stores import open_team_store

    team = open_team_store(store_url)
    operator = team_ops.operator()
    if team.get_user(user) is None:
        team_ops.add_user(team, operator, user, "password-of-" + user)
    if team.get_project(project) is None:
        team_ops.add_project(team, operator, project)
    team_ops.grant(team, operator, user, project, role)
    _row, token = team_ops.create_token(team, operator, user=user, project=project, role=role, name=f"test-{role}")
    return token.text
