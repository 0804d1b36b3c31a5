"""Who may talk to a local server: a ``Host`` allow list, and a write token for state changes.

A browser keeps another web site from *reading* this server's answers, but not from
*sending* requests to it, and DNS rebinding (a domain that resolves to 127.0.0.1
after the page loaded) makes a foreign page same-origin with the server. So:

* every request, reads included, must name an allowed host in ``Host``: the
  loopback names (``127.0.0.1``, ``localhost``, ``[::1]``) and the address the
  server was told to listen on, on the port it listens on. A rebinding page sends
  its own domain and is refused with a 403 before any handler runs;
* every state change (any method but GET, HEAD and OPTIONS) must carry the header
  ``X-Groundwork-Token`` with this process's random token. The UI's page receives
  it inside ``index.html`` (which no other origin can read) and sends it back.

>>> guard = LocalGuard(hosts=["127.0.0.1"], port=5000)
>>> guard.host_allowed("127.0.0.1:5000"), guard.host_allowed("evil.example:5000")
(True, False)
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from groundwork.errors import Forbidden, GroundworkError, error_body

TOKEN_HEADER = "X-Groundwork-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = ("0.0.0.0", "::", "")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``("name", port)`` of a ``Host`` header (``[::1]:5000`` gives ``("::1", 5000)``); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":")
        if ":" in port_text:
            return None
    name = name.rstrip(".")
    if not name:
        return None
    if not port_text:
        return name, None
    if not port_text.isdigit() or len(port_text) > 5:
        return None
    return name, int(port_text)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class LocalGuard:
    """The allow list and the token of one server process.

    ``hosts`` are the names (besides the loopback ones) that may appear in ``Host``;
    ``port`` the port they must name (``None``: any, for an app not yet bound to a
    port). A wildcard listen address (``0.0.0.0``, ``::``) also admits any IP
    address literal: a rebinding page always sends a domain name, never an address.
    """

    def __init__(self, hosts: Iterable[str] = (), port: int | None = None, token: str | None = None) -> None:
        self.names: set[str] = set(LOOPBACK_NAMES)
        self.any_ip = False
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        for host in hosts:
            self.allow(host)

    def allow(self, host: str) -> None:
        """Admit ``host`` (a name or an address) in ``Host``."""
        name = host.strip().strip("[]").lower().rstrip(".")
        if name in _WILDCARDS:
            self.any_ip = True
        else:
            self.names.add(name)

    def host_allowed(self, header: str | None) -> bool:
        parsed = _split_host(header or "")
        if parsed is None:
            return False
        name, port = parsed
        if self.port is not None and port != self.port and not (port is None and self.port == 80):
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    def token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed_display(self) -> str:
        names = sorted(f"[{n}]" if ":" in n else n for n in self.names)
        where = ", ".join(names) + (" or an IP address" if self.any_ip else "")
        return where + (f" on port {self.port}" if self.port is not None else "")

    def check(self, method: str, headers: dict[str, str]) -> None:
        """Raise :class:`Forbidden` for a request this server must not answer."""
        host = headers.get("host")
        if not self.host_allowed(host):
            raise Forbidden(
                f"requests for the host {host or '(none)'!r} are refused: this server answers only to "
                f"{self.allowed_display()}",
                hint="open the URL groundwork ui printed; a web page that reached this server under another "
                "name may be a DNS-rebinding attack",
            )
        if method not in _SAFE_METHODS and not self.token_matches(headers.get(TOKEN_HEADER.lower())):
            raise Forbidden(
                f"a {method} needs this server's {TOKEN_HEADER} header",
                hint="use the groundwork UI, or the CLI (groundwork models promote); "
                "groundwork ui prints the token for scripts",
            )


class GuardMiddleware:
    """Pure ASGI middleware applying a :class:`LocalGuard` before any route or handler."""

    def __init__(self, app: ASGIApp, guard: LocalGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            self.guard.check(scope.get("method", "GET"), headers)
        except GroundworkError as error:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            from groundwork.server.responses import JSON

            await JSON(error_body(error), status_code=error.http_status)(scope, receive, send)
            return
        await self.app(scope, receive, send)
