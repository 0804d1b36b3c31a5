"""JSON answers (orjson) and the small parsing helpers every router shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from groundwork.errors import Forbidden, GroundworkError, InvalidFilter, InvalidInput, error_body

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JSON(Response):
    """A JSON response serialized by orjson (NaN and infinities become ``null``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def ok(payload: Mapping[str, Any], status_code: int = 200, headers: Mapping[str, str] | None = None) -> JSON:
    """``{"ok": true, **payload}``."""
    return JSON({"ok": True, **payload}, status_code=status_code, headers=dict(headers or {}))


def error_response(error: GroundworkError) -> JSON:
    """The canonical error body; a filter error also says where (``column``, ``expression``)."""
    body = error_body(error)
    if isinstance(error, InvalidFilter):
        body["column"] = error.column
        body["expression"] = error.expression
    return JSON(body, status_code=error.http_status, headers=getattr(error, "headers", None))


def bounded_int(name: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``, else a 400 that names the parameter and the range."""
    if not low <= value <= high:
        raise InvalidInput(
            f"query parameter '{name}' must be between {low} and {high}, not {value}",
            hint=f"ask for at most {high} at a time and page with offset" if name == "limit" else None,
        )
    return value


def split_list(values: list[str] | None, *, name: str, limit: int, commas: bool = True) -> list[str]:
    """Repeated (and, with ``commas``, comma-separated) query values as one list, bounded, deduplicated.

    ``?run=a&run=b,c`` is ``["a", "b", "c"]``. Metric keys may hold commas, so they
    are passed with ``commas=False``: one key per repeated parameter.
    """
    out: list[str] = []
    for value in values or []:
        parts = value.split(",") if commas else [value]
        out.extend(part.strip() for part in parts if part.strip())
    if len(out) > limit:
        raise InvalidInput(f"too many values for '{name}' ({len(out)}; at most {limit})")
    seen: dict[str, None] = dict.fromkeys(out)
    return list(seen)


def check_same_origin(headers: Mapping[str, str], own_host: str | None) -> None:
    """Refuse a state-changing request that another web site could have sent from a user's browser.

    A write must be JSON (a cross-site form cannot send ``application/json`` without a
    CORS preflight, which this server never grants), and an ``Origin``, when the browser
    sends one, must be this server's.
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidInput(
            f"a write must send JSON (Content-Type: application/json), not {content_type or 'nothing'!r}"
        )
    origin = headers.get("origin")
    if origin and own_host:
        host = origin.split("://", 1)[-1].rstrip("/")
        if host != own_host:
            raise Forbidden(f"cross-origin write from {origin} refused", hint="use the groundwork UI or the CLI")
