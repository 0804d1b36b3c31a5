"""Serving registered models over HTTP: one ASGI app on uvicorn, dynamic batching, alias hot-swap.

    groundwork serve digits@production --port 8000 --workers 2

    from groundwork.engines.serve import ServeOptions, background_server
    with background_server(["digits@production"], config=config) as url:
        httpx.post(f"{url}/v1/models/digits/predict", json={"inputs": rows})

Modules: :mod:`.app` (the ASGI app and its raw predict path), :mod:`.batching`
(the dynamic batcher), :mod:`.validation` (signature checks and the 4xx answers),
:mod:`.metrics` (Prometheus), :mod:`.watcher` (alias polling and hot-swap),
:mod:`.sampling` (stored prediction samples), :mod:`.openapi` (``/docs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from groundwork.config import Config
from groundwork.engines.serve.app import ServeOptions, ServingApp
from groundwork.errors import InvalidInput

#: How ``--workers N`` hands the served references and options to each worker process.
WORKER_ENV = "GROUNDWORK_SERVE_SPEC"


def uvicorn_settings(log_level: str = "warning") -> dict[str, Any]:
    """What every groundwork server runs uvicorn with: uvloop, httptools, no access log."""
    return {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        "server_header": False,
        "date_header": False,
    }


def run_server(
    refs: Sequence[str],
    *,
    config: Config,
    options: ServeOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
    on_ready: Any = None,
) -> None:
    """Serve ``refs`` until interrupted (blocking). ``workers > 1`` starts that many processes on one port."""
    import uvicorn

    options = options or ServeOptions()
    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, not {workers}")
    if workers == 1:
        app = ServingApp(refs, config=config, options=options)
        if on_ready is not None:
            on_ready(app)
        uvicorn.run(app, host=host, port=port, **uvicorn_settings(log_level))
        return
    # Check the references here, so a typo is one clear error instead of N crashing workers.
    from groundwork.core.registry import get_model_version

    for ref in refs:
        get_model_version(ref, config=config)
    spec = {"refs": list(refs), "config": dataclasses.asdict(config), "options": dataclasses.asdict(options)}
    metrics_dir = tempfile.mkdtemp(prefix="gw-serve-metrics-")
    previous = {k: os.environ.get(k) for k in (WORKER_ENV, "PROMETHEUS_MULTIPROC_DIR")}
    os.environ[WORKER_ENV] = json.dumps(spec)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        if on_ready is not None:
            on_ready(None)
        uvicorn.run("groundwork.engines.serve:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, **uvicorn_settings(log_level))
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)


def app_from_environment() -> ServingApp:
    """The app of one ``--workers`` process, built from what :func:`run_server` put in the environment."""
    raw = os.environ.get(WORKER_ENV)
    if not raw:
        raise RuntimeError(f"{WORKER_ENV} is not set: start workers through groundwork serve --workers N")
    spec = json.loads(raw)
    return ServingApp(spec["refs"], config=Config(**spec["config"]), options=ServeOptions(**spec["options"]))


@contextlib.contextmanager
def background_server(
    refs: Sequence[str],
    *,
    config: Config,
    options: ServeOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve ``refs`` from a thread of this process while the block runs; yields the base URL.

    ``port=0`` picks a free port. Used by ``groundwork demo`` and the tests.
    """
    import uvicorn

    app = ServingApp(refs, config=config, options=options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=bound_port, **uvicorn_settings()))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gw-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the model server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def predict_example_over_http(ref: str, *, config: Config, options: ServeOptions | None = None) -> dict[str, Any]:
    """Serve ``ref`` briefly and POST its stored example rows: what ``groundwork demo`` shows.

    Returns ``{"url": ..., "request": {"inputs": rows}, "response": {"outputs": ..., "model_version": N}}``.
    """
    import httpx

    from groundwork.core.registry import ModelRef, get_model_version
    from groundwork.engines.flavors import input_example

    version = get_model_version(ref, config=config)
    rows = input_example(version, config=config)
    if rows is None:
        raise InvalidInput(f"{version.ref} was logged without an example", hint="log it with example=rows")
    name = ModelRef.parse(ref).name
    with background_server([ref], config=config, options=options) as url:
        endpoint = f"{url}/v1/models/{name}/predict"
        response = httpx.post(endpoint, json={"inputs": rows}, timeout=60)
    return {"url": endpoint, "request": {"inputs": rows}, "response": response.json(), "status": response.status_code}


__all__ = ["ServeOptions", "ServingApp", "app_from_environment", "background_server", "predict_example_over_http",
           "run_server"]
