"""Fixtures for serving tests: a registry with models of every flavor, and real ``groundwork serve`` processes.

``served(*refs, *flags)`` starts ``python -m groundwork serve`` on a free 127.0.0.1 port,
waits until ``/readyz`` answers 200 (failing early, with the server's log, if it exits),
and stops it by PID (SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.engines.serve import serve_subprocess

START_TIMEOUT_S = 120.0


@dataclass
class Registry:
    config: Config
    x: np.ndarray
    home: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """digits (sklearn LR, ONNX form) v1 promoted to production; mlp (PyTorch); table (DataFrame tree); raw (.onnx)."""
    import pandas as pd
    import torch
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeRegressor

    home = tmp_path_factory.mktemp("serve")
    config = Config(store_url=f"sqlite:///{home / 'meta.db'}", artifacts_url=str(home / "artifacts"))
    x, y = load_digits(return_X_y=True)
    lr = LogisticRegression(max_iter=2000).fit(x, y)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 4})
    tree = DecisionTreeRegressor(random_state=0).fit(frame, frame["a"] - frame["b"])
    onnx_path = home / "lr.onnx"
    onnx_path.write_bytes(to_onnx(lr, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        run.log_model(lr, "digits", example=x[:5])
        run.log_model(mlp, "mlp", example=x[:4].astype(np.float32))
        run.log_model(tree, "table", example=frame.head(3))
        run.log_model(str(onnx_path), "raw", example=x[:3].astype(np.float32))
    gw.promote_model("digits", 1, alias="production", config=config)
    return Registry(config, x, home)


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log
        self.client = httpx.Client(base_url=url, timeout=60)

    def predict(self, name: str, body: Any, content_type: str = "application/json") -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return self.client.post(f"/v1/models/{name}/predict", content=body, headers={"content-type": content_type})
        return self.client.post(f"/v1/models/{name}/predict", json=body)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve_process(config: Config, refs: tuple[str, ...], flags: tuple[str, ...], log_dir: Path) -> Iterator[Server]:
    log = log_dir / f"serve-{len(list(log_dir.glob('serve-*.log')))}.log"
    with serve_subprocess(refs, config=config, log_path=log, flags=flags, ready_timeout_s=START_TIMEOUT_S) as (
        url,
        proc,
    ):
        server = Server(url, proc, log)
        try:
            yield server
        finally:
            server.client.close()


@pytest.fixture
def served(registry: Registry, tmp_path: Path) -> Iterator[Callable[..., contextlib.AbstractContextManager[Server]]]:
    def start(*refs: str, flags: tuple[str, ...] = ()) -> contextlib.AbstractContextManager[Server]:
        return serve_process(registry.config, refs, flags, tmp_path)

    yield start


class Load:
    """``clients`` threads posting two-row requests to ``/v1/models/MODEL/predict`` without pause.

    ``seen[i]`` holds the ``model_version`` of client i's answers in order; any answer other
    than 200 (or a connection error) goes to ``failures``. Stops when the block ends.
    """

    def __init__(self, url: str, model: str, x: np.ndarray, clients: int = 8) -> None:
        self.url, self.model, self.x = url, model, x
        self.failures: list[str] = []
        self.seen: list[list[int]] = [[] for _ in range(clients)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def count(self) -> int:
        return sum(map(len, self.seen))

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            i = 0
            while not self._stop.is_set():
                start = (index * 7 + i) % 1700
                try:
                    response = http.post(f"/v1/models/{self.model}/predict",
                                         json={"inputs": self.x[start:start + 2].tolist()})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text}")
                else:
                    self.seen[index].append(response.json()["model_version"])
                i += 1


def metric(text: str, name: str) -> float:
    """The value of the series ``name`` (labels included, as exposed) in a /metrics text."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == name:
            return float(value)
    raise AssertionError(f"{name} not in /metrics:\n{text}")
