"""Which ``Host`` and ``Origin`` a serving process answers: the defence against DNS rebinding and foreign pages.

A page on any web site can make the browser send requests to ``127.0.0.1``; two
things stop it from using the answers:

- **Host.** A page on ``evil.example`` whose name is re-pointed at 127.0.0.1 (DNS
  rebinding) sends ``Host: evil.example``. Only loopback names (``localhost``,
  ``*.localhost``, ``127.x.y.z``, ``::1``), the address the server is bound to and the
  names given with ``--allow-host`` are answered. Bound to every interface (``0.0.0.0``,
  ``::``), any IP address is answered too: an address cannot be rebound, a name can.
  ``--allow-host '*'`` turns the check off (behind a proxy that checks names itself).
- **Origin.** A browser names the page that made a request in ``Origin``; a request
  whose ``Origin`` is not the server's own (``http://`` + its ``Host``) is refused,
  whatever its method. Clients that are not browsers send no ``Origin``.

Both refusals are 403 with the JSON error body. Requests without ``Host`` (HTTP/1.0
tools) are answered: a browser always sends one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from groundwork.errors import GroundworkError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_EVERY_INTERFACE = {"0.0.0.0", "::", ""}
_CACHE_SIZE = 256


class ForeignRequest(GroundworkError):
    """A request for a name this server does not answer to, or from another site's page."""

    headline = "Forbidden"
    http_status = 403


class HostPolicy:
    """Checks ``Host`` and ``Origin`` headers (raw bytes, as ASGI gives them); answers are cached."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        names = [_hostname(name) for name in allowed]
        self.any_host = "*" in names
        self.any_address = any(name in _EVERY_INTERFACE for name in names)
        self.names = frozenset(n for n in (*LOOPBACK_NAMES, *names) if n and n != "*" and n not in _EVERY_INTERFACE)
        self._hosts: dict[bytes, bool] = {}
        #: ``Host`` values already judged good: the server's fast path skips :meth:`check` for them
        self.accepted: set[bytes] = set()

    def describe(self) -> str:
        extra = " and any IP address" if self.any_address else ""
        return ", ".join(sorted(self.names)) + extra

    def check(self, host: bytes | None, origin: bytes | None) -> ForeignRequest | None:
        """None when the request may be answered, else the 403 to answer."""
        if self.any_host and origin is None:
            return None
        if host is not None and not self._host_ok(host):
            shown = host.decode("latin-1")[:100]
            return ForeignRequest(
                f"this server does not answer requests for host {shown!r} (it answers {self.describe()})",
                hint=f"use http://127.0.0.1, or start groundwork serve with --allow-host {_hostname(shown) or 'NAME'}",
            )
        if origin is not None:
            own = host is not None and origin.lower() in (b"http://" + host.lower(), b"https://" + host.lower())
            if not own and not (host is None and self._host_ok(origin.partition(b"://")[2])):
                shown = origin.decode("latin-1")[:100]
                return ForeignRequest(
                    f"requests from the page {shown!r} are refused: only pages of this server may call it",
                    hint="call the server from a program (no Origin header), or from its own /docs page",
                )
        return None

    def _host_ok(self, host: bytes) -> bool:
        known = self._hosts.get(host)
        if known is None:
            known = self._judge(_hostname(host.decode("latin-1")))
            if len(self._hosts) < _CACHE_SIZE:  # names an attacker invents must not grow memory
                self._hosts[host] = known
                if known:
                    self.accepted.add(host)
        return known

    def _judge(self, name: str) -> bool:
        if self.any_host or name in self.names or name.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.any_address


def _hostname(value: str) -> str:
    """``Host`` without its port, brackets and final dot, in lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        if port.isdigit() or not port:
            value = name
    return value.rstrip(".")
