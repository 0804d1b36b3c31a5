"""A real team server for artifact-byte tests: uvicorn on 127.0.0.1 (in a thread or its own process),
members and tokens made through the team operations, and a TCP proxy that can cut connections.

The proxy is a real relay between a client and the server (no mock): it counts the bytes that
pass each way and, when told, closes both sides once a number of bytes went through, the way a
dropped network connection looks to both ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _servers import HOST, free_port
from groundwork.config import Config


@dataclass
class TeamServer:
    """A running team server: its URL, config, and a way to make tokens."""

    url: str
    config: Config
    pid: int | None = None
    _tokens: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def token(self, user: str, project: str, role: str) -> str:
        """A fresh API token of ``user`` (made a member of ``project`` with ``role``)."""
        from groundwork.server import team as ops
        from groundwork.storage.stores import open_team_store

        key = (user, project, role)
        if key not in self._tokens:
            store = open_team_store(self.config.store_url)
            by = ops.operator()
            if store.get_user(user) is None:
                ops.add_user(store, by, user, None)
            if store.get_project(project) is None:
                ops.add_project(store, by, project)
            ops.grant(store, by, user, project, role)
            _, made = ops.create_token(store, by, user=user, project=project, role=role, name=f"test-{role}")
            self._tokens[key] = made.text
        return self._tokens[key]


def _wait_for(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the team server exited with status {proc.returncode}")
        try:
            httpx.get(url + "/api/v1", timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"the team server at {url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def team_server_thread(config: Config) -> Iterator[TeamServer]:
    """The team app (``create_app(config, team=True)``) served by uvicorn in a thread of this process."""
    import uvicorn

    from groundwork.server.app import create_app

    port = free_port()
    app = create_app(config, ui=False, team=True)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="team-server", daemon=True)
    thread.start()
    url = f"http://{HOST}:{port}"
    try:
        _wait_for(url)
        yield TeamServer(url, config)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


_SERVE = (
    "import sys, uvicorn\n"
    "from groundwork.config import Config\n"
    "from groundwork.server.app import create_app\n"
    "uvicorn.run(create_app(Config.from_env(), ui=False, team=True), host=sys.argv[1], port=int(sys.argv[2]),"
    " log_level='warning')\n"
)


@contextlib.contextmanager
def team_server_process(config: Config, env: dict[str, str] | None = None) -> Iterator[TeamServer]:
    """The team app in a process of its own (one uvicorn worker), stopped by its PID."""
    port = free_port()
    child_env = {**os.environ, "GROUNDWORK_STORE": config.store_url, "GROUNDWORK_ARTIFACTS": config.artifacts_url,
                 **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, HOST, str(port)], env=child_env)
    url = f"http://{HOST}:{port}"
    try:
        _wait_for(url, proc)
        yield TeamServer(url, config, pid=proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


class CuttingProxy:
    """A TCP relay on 127.0.0.1 to ``upstream``; ``cut_after(up=N)`` or ``cut_after(down=N)`` drops every
    open connection once N more bytes went that way (once). ``up`` counts client-to-server bytes."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.split("://", 1)[-1].partition(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server((HOST, 0))
        self.url = f"http://{HOST}:{self.listener.getsockname()[1]}"
        self.up = 0
        self.down = 0
        self.cuts = 0
        self._limit: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, *, up: int | None = None, down: int | None = None) -> None:
        with self._lock:
            self._limit = ("up", self.up + up) if up is not None else ("down", self.down + (down or 0))

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket, direction: str) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if direction == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    total = self.up if direction == "up" else self.down
                    cut = self._limit is not None and self._limit[0] == direction and total >= self._limit[1]
                    if cut:
                        self._limit = None
                if cut:
                    self.cuts += 1
                    self._drop_all()
                    return
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):  # a reset, at once (a plain close waits for a blocked recv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._drop_all()


def sparse_file(path: Path, size: int, *, seed: int = 7) -> Path:
    """A file of ``size`` bytes that is mostly holes, with a little random data every 64 MiB (so it
    is not all zeros), written without holding more than a few KiB."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.truncate(size)
        for offset in range(0, size, 64 * 1024 * 1024):
            out.seek(offset)
            out.write(rng.randbytes(min(4096, size - offset)))
    return path
