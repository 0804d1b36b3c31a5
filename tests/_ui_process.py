"""A real ``groundwork ui`` process on a free 127.0.0.1 port, and raw HTTP to it with any ``Host``."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _servers import _stop
from groundwork.config import Config


@dataclass
class UIProcess:
    port: int
    token: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(ui: UIProcess, method: str, path: str, *, host: str | None = None, body: Any = None,
            headers: dict[str, str] | None = None) -> Answer:
    """One request to ``ui`` over a real socket, naming ``host`` (default ``127.0.0.1:PORT``) in ``Host``."""
    sent = {"Host": f"127.0.0.1:{ui.port}" if host is None else host, **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=60)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def _answers(first_line: str) -> bool:
    url = first_line.split(" at ", 1)[1].split()[0]
    try:
        with urllib.request.urlopen(url + "/api/v1", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def ui_process(config: Config, home: Path) -> Iterator[UIProcess]:
    """``groundwork ui --port 0`` over ``config``'s stores; stopped (by PID) when the block ends."""
    log = home / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "groundwork", "ui", "--host", "127.0.0.1", "--port", "0",
             "--store", config.store_url, "--artifacts", config.artifacts_url],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            lines = log.read_text(errors="replace").splitlines()
            if lines and "groundwork UI at http://127.0.0.1:" in lines[0] and _answers(lines[0]):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"groundwork ui did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        port = int(lines[0].split("http://127.0.0.1:", 1)[1].split()[0].rstrip("/"))
        lines = log.read_text(errors="replace").splitlines()
        token = lines[1].rsplit(": ", 1)[1].strip() if len(lines) > 1 and "X-Groundwork-Token: " in lines[1] else ""
        yield UIProcess(port, token, log)
    finally:
        _stop(proc, (signal.SIGINT,))
