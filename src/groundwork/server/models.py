"""``/api/v1/models``: registered models, versions, aliases and alias history; promote a version."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from groundwork.core import registry
from groundwork.core.exports import list_exports
from groundwork.server.audit import audit
from groundwork.server.auth import Principal, Role, require, team_store
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, check_same_origin, ok

router = APIRouter(tags=["models"])
Context = Annotated[ServerContext, Depends(get_context)]
#: Moving aliases needs the maintainer role on a team server (the single-user viewer: its process token).
Maintainer = Annotated[Principal, Depends(require(Role.maintainer))]


#: The largest version number a store can hold (PostgreSQL's INTEGER).
MAX_VERSION = 2**31 - 1


class PromoteBody(BaseModel):
    """Point an alias at a version; ``reason`` is kept in the alias history."""

    version: int = Field(ge=1, le=MAX_VERSION)
    reason: str | None = Field(default=None, max_length=2000)


class RemoveBody(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


@router.get("/models", summary="Every registered model with its newest version and aliases")
def list_models(ctx: Context) -> JSON:
    return ok({"models": [m.to_dict() for m in registry.list_models(config=ctx.config)]})


@router.get("/models/{name}", summary="A model: its versions (with the runs that made them), aliases and history")
def get_model(ctx: Context, name: str) -> JSON:
    versions = registry.model_versions(name, config=ctx.config)
    history = registry.alias_history(name, config=ctx.config)
    store = ctx.store
    made_by = {r.id: r for r in store.get_runs([v.run_id for v in versions if v.run_id])}
    out = []
    for version in reversed(versions):  # newest first
        data = version.to_dict()
        run = made_by.get(version.run_id or "")
        data["run"] = (
            {"id": run.id, "name": run.name, "status": run.status, "metrics": run.metrics, "params": run.params}
            if run
            else None
        )
        out.append(data)
    aliases: dict[str, int] = {}
    for version in versions:
        for alias in version.aliases:
            aliases[alias] = version.version
    summary = next((m for m in registry.list_models(config=ctx.config) if m.name == name), None)
    return ok(
        {
            "model": summary.to_dict() if summary else {"name": name},
            "versions": out,
            "aliases": dict(sorted(aliases.items())),
            "history": [dataclasses.asdict(h) for h in history],
            "exports": [e.to_dict() for e in list_exports(name, config=ctx.config, all_versions=True)] if versions else [],
        }
    )


def _who(request: Request, principal: Principal) -> str:
    """Who asked, as the alias history records it: the user on a team server, else the UI and the client's address."""
    if team_store(request) is not None:
        return principal.user
    client = request.client.host if request.client else "unknown"
    return f"ui@{client}"


@router.post("/models/{name}/aliases/{alias}", summary="Promote: point an alias at a version (recorded in history)")
def promote(ctx: Context, request: Request, principal: Maintainer, name: str, alias: str, body: PromoteBody) -> JSON:
    check_same_origin(request.headers, request.headers.get("host"))
    move = registry.promote(name, body.version, alias, reason=body.reason, who=_who(request, principal),
                            config=ctx.config)
    audit(principal, "model.alias", f"{name}@{alias}", {"version": body.version, "previous": move.from_version,
                                                        "reason": body.reason})
    return ok({"move": dataclasses.asdict(move), "aliases": registry.registry_store(ctx.config).aliases(name)})


@router.delete("/models/{name}/aliases/{alias}", summary="Remove an alias (recorded in history)")
def remove_alias(ctx: Context, request: Request, principal: Maintainer, name: str, alias: str,
                 body: RemoveBody | None = None) -> JSON:
    if body is not None:
        check_same_origin(request.headers, request.headers.get("host"))
    elif request.headers.get("origin"):
        check_same_origin({"content-type": "application/json", **request.headers}, request.headers.get("host"))
    previous = registry.remove_alias(name, alias, reason=body.reason if body else None, who=_who(request, principal),
                                     config=ctx.config)
    audit(principal, "model.alias.remove", f"{name}@{alias}", {"previous": previous,
                                                               "reason": body.reason if body else None})
    return ok({"removed": alias, "was": previous, "aliases": registry.registry_store(ctx.config).aliases(name)})
