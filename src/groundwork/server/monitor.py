"""``/api/v1/monitor``: the models with a prediction log, and the monitoring report of one (drift over time too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from groundwork.core import registry
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, ok

router = APIRouter(tags=["monitor"])
Context = Annotated[ServerContext, Depends(get_context)]


@router.get("/monitor", summary="Models with a prediction log: their closed segments and aliases")
def list_monitored(ctx: Context) -> JSON:
    logged = ctx.stores.monitor.monitored_models()
    aliases = ctx.registry.all_aliases()
    return ok({"models": [{"name": name, "segments": n, "aliases": aliases.get(name, {})} for name, n in logged.items()]})


@router.get("/monitor/{target}", summary="Drift, latency, errors and throughput of NAME@ALIAS, NAME/VERSION or NAME, "
            "per segment too")
def monitor_target(
    ctx: Context,
    target: str,
    since: Annotated[str | None, Query(max_length=64, description="30m, 1h, 2d, or a date")] = None,
    reference: Annotated[str | None, Query(max_length=128, description="an artifact digest (prefix) to compare with")
                         ] = None,
) -> JSON:
    from groundwork.engines.monitor.report import monitor_report

    # A digest only: the UI never reads a file of the server's machine by a path a page sends.
    report = monitor_report(target, since=since, reference=reference, series=True, config=ctx.config,
                            reference_files=False)
    versions = registry.registry_store(ctx.config).aliases(report.model)
    return ok({"report": report.to_dict(), "aliases": versions})
