"""Changing a served model's route while it serves: ``GET``/``PUT /admin/models/NAME/route``.

    GROUNDWORK_SERVE_TOKEN=s3cret groundwork serve digits --route production=90,candidate=10
    curl -X PUT -H "Authorization: Bearer s3cret" --json '{"route": "production=50,candidate=50"}' \\
        http://127.0.0.1:8000/admin/models/digits/route

Three checks, in this order, each a JSON error: the client's address must be loopback
(403; the admin routes answer only this machine, whatever ``--host`` binds), the server
must have been started with a token (``GROUNDWORK_SERVE_TOKEN``, or
``ServeOptions(admin_token=...)``; 403 otherwise: runtime changes are off), and the
request must carry it as ``Authorization: Bearer TOKEN`` (401). The ``Host`` and
``Origin`` checks of every request (:mod:`.hosts`) come first, so a web page cannot
reach these routes either.

The ``PUT`` body is ``{"route": "production=50,candidate=50", "shadow": "candidate"}``
(``route`` may also be an object of weights); a field left out keeps its value,
``"shadow": null`` stops shadowing. What the new route names is loaded and warmed up
before it takes any request, so the change fails no request (see :mod:`.routing`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, MutableMapping
from typing import Any

from groundwork.engines.serve.routing import RouteSpec
from groundwork.errors import AuthError, Forbidden, GroundworkError, InvalidInput

#: The environment variable holding the admin routes' bearer token (unset: runtime changes are off).
ADMIN_TOKEN_ENV = "GROUNDWORK_SERVE_TOKEN"
ADMIN_PREFIX = "/admin/models/"
ROUTE_SUFFIX = "/route"
_FIELDS = ("route", "shadow")


def admin_refusal(scope: MutableMapping[str, Any], token: str | None) -> GroundworkError | None:
    """None when this request may use the admin routes, else the 403/401 to answer."""
    client = scope.get("client")
    if client and not _loopback(str(client[0])):
        return Forbidden(f"the admin routes answer only this machine, not {client[0]}",
                         hint="call them from the machine the server runs on, at http://127.0.0.1")
    if not token:
        return Forbidden("changing routes at runtime is off on this server",
                         hint=f"start groundwork serve with {ADMIN_TOKEN_ENV} set, and send it as a bearer token")
    given = b""
    for key, value in scope["headers"]:
        if key == b"authorization":
            given = value
            break
    scheme, _, credential = given.partition(b" ")
    if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), token.encode()):
        return AuthError("this admin route needs the server's token" if not given else "wrong admin token",
                         hint=f"send Authorization: Bearer ${ADMIN_TOKEN_ENV}")
    return None


def requested_route(document: Any, current: RouteSpec | None) -> RouteSpec:
    """The route a ``PUT`` body asks for: its fields over the ``current`` ones."""
    if not isinstance(document, Mapping):
        raise InvalidInput("the body must be a JSON object",
                           hint='send {"route": "production=50,candidate=50"} and/or {"shadow": "candidate"}')
    unknown = [str(k) for k in document if k not in _FIELDS]
    if unknown or not any(k in document for k in _FIELDS):
        said = f"unknown field {unknown[0]!r}" if unknown else "neither route nor shadow"
        raise InvalidInput(f"the body names {said}",
                           hint='send {"route": "production=50,candidate=50"} and/or {"shadow": "candidate"}')
    route: Any = document["route"] if "route" in document else (dict(current.weights) if current else None)
    if route is None:
        raise InvalidInput("a route cannot be removed, only changed",
                           hint='send all traffic to one target instead: {"route": "production=100"}')
    shadow = document.get("shadow", current.shadow if current else None)
    if shadow is not None and not isinstance(shadow, str):
        raise InvalidInput(f"shadow is an alias or version number as text, not {shadow!r:.40}")
    return RouteSpec.parse(route, shadow)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


__all__ = ["ADMIN_PREFIX", "ADMIN_TOKEN_ENV", "ROUTE_SUFFIX", "admin_refusal", "requested_route"]
