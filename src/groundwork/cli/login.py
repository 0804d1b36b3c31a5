"""``groundwork login URL``: check a token against a team server and keep it for every later command.

The token is saved in ``$XDG_CONFIG_HOME/groundwork/credentials.json`` (or
``~/.config/groundwork/credentials.json``), readable by its owner only (0600, in a 0700
folder), written atomically, under the server's URL::

    {"servers": {"https://gw.example.com": {"token": "gw_...", "project": "vision", "user": "ann"}}}

With ``GROUNDWORK_SERVER=https://gw.example.com`` set (and no ``GROUNDWORK_TOKEN``), the SDK
and every command read it from there (:mod:`groundwork.storage.http`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from groundwork.cli._app import JsonOption, app, console
from groundwork.cli.runs import print_json
from groundwork.errors import AuthError, ConfigError, InvalidInput


def _read_token(given: str | None) -> str:
    if given:
        return given.strip()
    if sys.stdin.isatty():
        value: str = typer.prompt("Token (groundwork server tokens create, or the web UI's Tokens page)",
                                  hide_input=True)
        return value.strip()
    line = sys.stdin.readline().strip()
    if not line:
        raise InvalidInput("no token given", hint="pass --token, type it at the prompt, or pipe it on stdin")
    return line


def check_token(url: str, token: str) -> dict[str, Any]:
    """``GET /api/v1/auth/me`` with ``token``: who it is (user, project, role), or one clear error."""
    import httpx

    try:
        response = httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the groundwork server at {url}: {type(exc).__name__}",
                          hint="check the URL and that the server runs (groundwork server)") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict) and body.get("ok"):
        return body
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code in (401, 403):
        raise AuthError(f"the server at {url} refused this token: {message or response.status_code}",
                        hint="ask an admin for a new one: groundwork server tokens create")
    raise ConfigError(f"{url} did not answer like a groundwork server (HTTP {response.status_code})",
                      hint="give the server's base URL, e.g. https://groundwork.example.com")


def save_credentials(url: str, entry: dict[str, str]) -> Path:
    """Add ``entry`` for ``url`` to the credentials file (0600, atomically; other servers' entries kept)."""
    from groundwork.storage.http import credentials_path

    path = credentials_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict) and isinstance(loaded.get("servers"), dict):
                data = loaded
        data.setdefault("servers", {})[url] = entry
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot save the token in {path}: {getattr(exc, 'strerror', None) or exc}",
                          hint="set XDG_CONFIG_HOME to a writable folder, or use GROUNDWORK_TOKEN instead") from None
    return path


@app.command(
    "login",
    epilog=(
        "Example:  groundwork login https://groundwork.example.com   (asks for the token)\n\n"
        "Example:  echo \"$GW_TOKEN\" | groundwork login https://groundwork.example.com\n\n"
        "Then:  export GROUNDWORK_SERVER=https://groundwork.example.com   and every command goes through the server."
    ),
)
def login_command(
    url: Annotated[str, typer.Argument(help="The team server's URL, e.g. https://groundwork.example.com")],
    token: Annotated[str | None, typer.Option("--token", help="The token (else asked for, or read from stdin).",
                                              show_default=False)] = None,
    json_out: JsonOption = False,
) -> None:
    """Check a token against a team server and save it for later commands (mode 0600)."""
    from groundwork.storage.http import check_transport

    server = check_transport(url)
    text = _read_token(token)
    who = check_token(server, text)
    path = save_credentials(server, {"token": text, "project": str(who.get("project")), "user": str(who.get("user"))})
    if json_out:
        print_json({"server": server, "user": who.get("user"), "project": who.get("project"), "role": who.get("role"),
                    "credentials": str(path)})
        return
    console.print(f"Logged in to {server} as {who.get('user')} in project {who.get('project')} "
                  f"({who.get('role')}). Token saved in {path}.", highlight=False)
    console.print(f"Use it:  export GROUNDWORK_SERVER={server}", highlight=False)
