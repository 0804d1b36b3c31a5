"""The audit log of a team server: every state change, who made it, from where, and when.

Every route that changes state calls :func:`audit` once it succeeded::

    audit(principal, "model.alias", target="digits@production", details={"version": 3})

Actions are dotted, noun first (``run.create``, ``model.alias``, ``blob.upload``,
``user.add``, ``token.revoke``, ``auth.login_failed``); ``groundwork audit --action
registry`` matches every ``registry.*``. The team app's middleware hands each request
its team store, so :func:`audit` needs only the principal. In the single-user viewer
(``groundwork ui``, no users) it records nothing: there the alias history says who moved
an alias.

Read it with ``groundwork audit`` (through the server with an admin token, or on the
store directly), ``GET /api/v1/audit``, or the web UI's Audit page.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from groundwork.errors import Forbidden, InvalidInput
from groundwork.server.auth import Principal, Role, require
from groundwork.server.responses import JSON, bounded_int, ok
from groundwork.storage.records import AuditEntry

if TYPE_CHECKING:
    from groundwork.storage.stores import TeamStore

_current: contextvars.ContextVar[TeamStore | None] = contextvars.ContextVar("groundwork_team_store", default=None)

MAX_LIMIT = 1000


def audit(principal: Principal, action: str, target: str | None = None, details: Mapping[str, Any] | None = None) -> None:
    """Record that ``principal`` did ``action`` to ``target`` (with ``details``), now, in this request's team store."""
    team = _current.get()
    if team is None:
        return
    record(team, principal, action, target, details)


def record(
    team: TeamStore, principal: Principal | None, action: str, target: str | None = None,
    details: Mapping[str, Any] | None = None, *, actor: str | None = None, address: str | None = None,
    project: str | None = None,
) -> int:
    """Write one entry to ``team`` (outside a request: the CLI's admin commands; failed logins, with ``actor``).

    ``project`` defaults to the principal's; ``""`` records a server-wide change (users), no project.
    """
    entry = AuditEntry(
        at=time.time(),
        actor=actor or (principal.user if principal else "unknown"),
        action=action,
        project=(project if project is not None else (principal.project if principal else None)) or None,
        target=target,
        token_id=principal.token_id if principal else None,
        address=address or (principal.address if principal else None),
        details=dict(details or {}),
    )
    return team.add_audit(entry)


class AuditScope:
    """Pure ASGI middleware: requests of the team app see its team store (for :func:`audit`)."""

    def __init__(self, app: ASGIApp, team: TeamStore) -> None:
        self.app = app
        self.team = team

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _current.set(self.team)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


# -- reading it ---------------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``1h``, ``90d`` or ``2w``."""
    match = _DURATION.match(text.lower())
    if not match:
        raise InvalidInput(f"cannot read the duration {text!r}", hint="use a number and a unit: 30m, 1h, 7d, 90d, 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time: ``1h`` (ago), an ISO date or time (``2026-01-31``, ``2026-01-31T12:00``), or UNIX seconds."""
    text = text.strip()
    if _DURATION.match(text.lower()):
        return (now if now is not None else time.time()) - parse_duration(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidInput(f"cannot read the time {text!r}",
                           hint="use a duration (1h, 7d), an ISO date (2026-01-31) or UNIX seconds") from None


router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Audit log entries, newest first (a project's admin: that project; a server admin: any)")
def list_audit(
    principal: Annotated[Principal, Depends(require(Role.admin))],
    project: Annotated[str | None, Query(description="Only this project (a server admin may name any; default: all).")] = None,
    since: Annotated[str | None, Query(description="From this time on: 1h, 7d, an ISO date, or UNIX seconds.")] = None,
    actor: Annotated[str | None, Query(description="Only what this user did.")] = None,
    action: Annotated[str | None, Query(description="An action (model.alias) or a prefix (model).")] = None,
    before: Annotated[int | None, Query(description="Entries older than this id (the next page).")] = None,
    limit: Annotated[int, Query(description=f"Entries (1..{MAX_LIMIT}).")] = 100,
) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    if before is not None:
        bounded_int("before", before, 1, 2**63 - 1)
    if not principal.server_admin:
        if project is not None and project != principal.project:
            raise Forbidden(f"only a server admin may read the audit log of another project than {principal.project!r}")
        project = principal.project
    team = _current.get()
    if team is None:
        return ok({"entries": [], "more": False})
    entries = team.audit_entries(project=project, since=parse_since(since) if since else None, actor=actor,
                                 action=action, before_id=before, limit=limit)
    return ok({"entries": [e.to_dict() for e in entries], "more": len(entries) == limit,
               "next": entries[-1].id if len(entries) == limit else None})


__all__ = ["AuditScope", "audit", "parse_duration", "parse_since", "record", "router"]
