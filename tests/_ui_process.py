"""A real ``groundwork ui`` process on a free 127.0.0.1 port, and raw HTTP to it with any ``Host``."""

from __future__ import annotations

import contextlib
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

from _servers import Answer, _stop, send
from groundwork.config import Config


@dataclass
class UIProcess:
    port: int
    token: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request(ui: UIProcess, method: str, path: str, *, host: str | None = None, body: Any = None,
            headers: dict[str, str] | None = None) -> Answer:
    """One request to ``ui`` over a real socket, naming ``host`` (default ``127.0.0.1:PORT``) in ``Host``."""
    return send(ui.port, method, path, host=host, body=body, headers=headers)


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
