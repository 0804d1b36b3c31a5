"""``groundwork ui``: the web UI (and its JSON API) on a local port."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Annotated

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, console, err_console, make_config
from groundwork.errors import ConfigError


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error that says what to do (port taken, bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"cannot resolve the host {host!r}", hint="use an address such as 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use", hint="pick another with --port, e.g. --port 5001") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"not allowed to listen on {host}:{port}", hint="use a port above 1024") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(
    "ui",
    epilog=(
        "Example:  groundwork ui --port 5000   then open http://127.0.0.1:5000\n\n"
        "Example:  groundwork ui --store sqlite:///team/meta.db --artifacts team/artifacts --port 0   (any free port)"
    ),
)
def ui_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Keep 127.0.0.1 unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).", min=0, max=65535)] = 5000,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Browse, filter and compare runs, charts, lineage, models and pipelines in the browser.

    The store must exist: a viewer never creates one. Only requests addressed to this
    machine's loopback names or to --host are answered, and writes need the token
    printed at start (the UI's own pages carry it).
    """
    import uvicorn

    from groundwork.server.app import create_app
    from groundwork.server.security import TOKEN_HEADER
    from groundwork.storage.stores import open_stores

    config = make_config(store, artifacts)
    # Opened (and migrated) now, never created: a bad URL or a missing store fails here, not on first request.
    metadata = open_stores(config, create=False).metadata
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    application = create_app(config, hosts=[host], port=bound_port)
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    console.print(f"groundwork UI at [bold]http://{shown_host}:{bound_port}[/]  (store: {metadata.display_url}; Ctrl-C stops)", highlight=False)
    console.print(f"API writes from scripts need the header {TOKEN_HEADER}: {application.state.guard.token}", highlight=False)
    if not _is_loopback(host):
        err_console.print(
            f"[yellow]Warning:[/] listening on {host}: anyone who can reach this machine can read every run and move model aliases.",
            highlight=False,
        )
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    raise typer.Exit(0)
