"""Serving registered models over HTTP: one ASGI app on uvicorn, dynamic batching, alias hot-swap.

    groundwork serve digits@production --port 8000 --workers 2

    from groundwork.engines.serve import ServeOptions, background_server
    with background_server(["digits@production"], config=config) as url:
        httpx.post(f"{url}/v1/models/digits/predict", json={"inputs": rows})

Modules: :mod:`.app` (the ASGI app and its raw predict path), :mod:`.batching`
(the dynamic batcher), :mod:`.validation` (signature checks and the 4xx answers),
:mod:`.hosts` (``Host`` and ``Origin`` checks), :mod:`.limits` (open files, connection
cap, header and body timeouts), :mod:`.metrics` (Prometheus), :mod:`.watcher` (alias
polling and hot-swap), :mod:`.routing` (traffic split between versions, shadow traffic),
:mod:`.admin` (changing a route at runtime), :mod:`.openapi` (``/docs``, with the vendored
Swagger UI in ``static/``). Every request is logged by :mod:`groundwork.engines.monitor.log`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from groundwork.config import Config
from groundwork.engines.serve.app import ServeOptions, ServingApp
from groundwork.errors import GroundworkError, InvalidInput

#: How ``--workers N`` hands the served references and options to each worker process.
WORKER_ENV = "GROUNDWORK_SERVE_SPEC"


def uvicorn_settings(options: ServeOptions, log_level: str = "warning") -> dict[str, Any]:
    """What every serving process runs uvicorn with: uvloop, httptools guarded by :mod:`.limits`, no access log."""
    from groundwork.engines.serve.limits import GuardedHttpToolsProtocol

    return {
        "loop": "uvloop",
        "http": GuardedHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "backlog": 4096,
        "timeout_keep_alive": options.timeout_keep_alive_s,
        "server_header": False,
        "date_header": False,
    }


def _protected(options: ServeOptions, host: str) -> ServeOptions:
    """``options`` for a process bound to ``host``: that name allowed in ``Host``, a cap that fits its open files."""
    from groundwork.engines.serve.limits import connection_cap, raise_open_file_limit

    open_files = raise_open_file_limit()
    cap = connection_cap(options.limit_concurrency, open_files)
    if cap < options.limit_concurrency:
        print(f"groundwork serve: --limit-concurrency lowered to {cap}: this process may open {open_files} files "
              "(raise them with ulimit -n)", file=sys.stderr, flush=True)
    return dataclasses.replace(options, allowed_hosts=(*options.allowed_hosts, host), limit_concurrency=cap)


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
    """Serve ``refs`` until interrupted (blocking). ``workers > 1`` starts that many processes on one port.

    Raises the process's open-file limit to its hard limit first (workers inherit it).
    """
    import uvicorn

    options = options or ServeOptions()
    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, not {workers}")
    options = _protected(options, host)
    if workers == 1:
        app = ServingApp(refs, config=config, options=options)
        if on_ready is not None:
            on_ready(app)
        uvicorn.run(app, host=host, port=port, **uvicorn_settings(options, log_level))
        return
    # Check the references here, so a typo is one clear error instead of N crashing workers.
    from groundwork.core.registry import ModelRef, get_model_version
    from groundwork.engines.serve.routing import resolve_target, startup_spec

    for ref in refs:
        get_model_version(ref, config=config)
    route = startup_spec([ModelRef.parse(r) for r in refs], options.route, options.shadow)
    if route is not None:
        for label in route.labels():
            resolve_target(ModelRef.parse(refs[0]).name, label, route, config)
    metrics_dir = tempfile.mkdtemp(prefix="gw-serve-metrics-")
    # The workers share this folder: Prometheus values, and a route changed in one worker (see .routing).
    options = dataclasses.replace(options, state_dir=metrics_dir)
    spec = {"refs": list(refs), "config": dataclasses.asdict(config), "options": dataclasses.asdict(options)}
    previous = {k: os.environ.get(k) for k in (WORKER_ENV, "PROMETHEUS_MULTIPROC_DIR")}
    os.environ[WORKER_ENV] = json.dumps(spec)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        if on_ready is not None:
            on_ready(None)
        uvicorn.run("groundwork.engines.serve:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, **uvicorn_settings(options, log_level))
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

    ``port=0`` picks a free port. (For a separate ``groundwork serve`` process, see
    :func:`serve_subprocess`.) The connection limits and timeouts of ``options`` apply;
    this process's open-file limit is left as it is.
    """
    import uvicorn

    options = options or ServeOptions()
    options = dataclasses.replace(options, allowed_hosts=(*options.allowed_hosts, host))
    app = ServingApp(refs, config=config, options=options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=bound_port, **uvicorn_settings(options)))
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


class ServerNotStarted(GroundworkError):
    """A ``groundwork serve`` process exited, or never answered ``/readyz``."""

    headline = "Model server did not start"


def claim_port(port: int | None = None) -> int:
    """``port`` if nothing listens on 127.0.0.1:``port`` yet (a free port when None), else :class:`ServerNotStarted`."""
    if port is not None and not 0 < port < 65536:
        raise ServerNotStarted(f"port {port} is not a TCP port (1-65535)")
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port or 0))
        except OSError as exc:
            raise ServerNotStarted(f"127.0.0.1:{port} is not available ({exc.strerror})",
                                   hint="choose another --port, or leave it out for a free one") from None
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_subprocess(
    refs: Sequence[str],
    *,
    config: Config,
    log_path: str | os.PathLike[str],
    flags: Sequence[str] = (),
    ready_timeout_s: float = 120.0,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``groundwork serve REFS`` as a child on 127.0.0.1:``port`` (a free one by default) while the block runs.

    Yields ``(base_url, process)`` once ``/readyz`` answers 200; raises
    :class:`ServerNotStarted` with the end of the server's log if it exits first or
    times out. Stops the child by PID afterwards (SIGTERM, then SIGKILL). Used by
    ``groundwork demo`` and the serving tests.
    """
    import httpx

    port = claim_port(port)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "groundwork", "serve", *refs, "--host", "127.0.0.1", "--port", str(port), *flags]
    env = {**os.environ, **config.child_environ(), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log_tail() -> str:
        with open(log_path, "rb") as fh:
            return fh.read().decode(errors="replace").strip()[-3000:]

    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerNotStarted(f"groundwork serve exited with {proc.returncode}:\n{log_tail()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerNotStarted(
                    f"groundwork serve did not become ready within {ready_timeout_s:g} s:\n{log_tail()}"
                )
            time.sleep(0.1)
        yield url, proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        proc.wait()


__all__ = ["ServeOptions", "ServerNotStarted", "ServingApp", "app_from_environment", "background_server", "claim_port",
           "run_server", "serve_subprocess"]
