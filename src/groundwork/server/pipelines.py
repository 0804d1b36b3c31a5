"""``/api/v1/pipelines``: pipeline runs, and each one's DAG with every step's state.

A pipeline run is a run of kind ``pipeline``; its steps are child runs of kind
``step``, named after their node. The DAG is the pipeline's own ``pipeline.json``
output (kind ``pipeline``, see docs/pipelines.md): its ``nodes`` and ``edges``, each
node coloured by the state of the step run with its name: ``ran`` (finished),
``cached``, ``failed``, ``running``, ``crashed``, or, with no run, ``skipped`` (after a
failure) or ``pending`` (the pipeline is still running). Runs recorded without a
``pipeline.json`` get a DAG from their data: step B follows step A when B read an
artifact A wrote.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from groundwork.errors import GroundworkError
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, bounded_int, ok
from groundwork.server.runs import _summary
from groundwork.storage.records import RunRow

router = APIRouter(tags=["pipelines"])
Context = Annotated[ServerContext, Depends(get_context)]

MAX_LIMIT = 500
MAX_STEPS = 2000
_PIPELINES = "kind = 'pipeline'"


@router.get("/pipelines", summary="Pipeline runs, newest first, with their steps counted by state")
def list_pipelines(ctx: Context, limit: int = 50, offset: int = 0) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    bounded_int("offset", offset, 0, 10_000_000)
    store = ctx.store
    rows = store.search_runs(_PIPELINES, limit=limit, offset=offset)
    counts = store.child_counts([r.id for r in rows])
    total = ctx.counts.get_or_compute(("pipelines", store.url), lambda: store.count_runs(_PIPELINES))
    out = []
    for row in rows:
        data = _summary(row, None)
        data["steps"] = counts[row.id]
        out.append(data)
    return ok({"pipelines": out, "total": total, "offset": offset, "limit": limit})


@router.get("/pipelines/{ref}", summary="One pipeline run: its DAG, and every step's run and state")
def get_pipeline(ctx: Context, ref: str) -> JSON:
    store = ctx.store
    run = store.get_run(store.resolve_run(ref))
    steps = store.child_runs(run.id, limit=MAX_STEPS)
    return ok({"pipeline": _summary(run, None), "dag": _dag(ctx, run, steps)})


def _state(row: RunRow | None, pipeline_status: str) -> str:
    if row is None:
        return "pending" if pipeline_status == "running" else "skipped"
    return {"finished": "ran"}.get(row.status, row.status)


def _node(name: str, row: RunRow | None, pipeline_status: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "label": name, "run_id": row.id if row else None, "status": row.status if row else None,
            "state": _state(row, pipeline_status), "duration": _summary(row, None)["duration"] if row else None,
            "cached_from": row.cached_from if row else None, **extra}


def _graph_document(ctx: ServerContext, run_id: str) -> dict[str, Any] | None:
    """The pipeline's ``pipeline.json`` (None when it has none, or it cannot be read)."""
    links = [a for a in ctx.store.run_artifacts(run_id, "output") if a.kind == "pipeline"]
    if not links:
        return None
    try:
        document = json.loads(ctx.artifacts.get_bytes(links[0].digest))
    except (GroundworkError, ValueError):
        return None
    return document if isinstance(document, dict) and isinstance(document.get("nodes"), list) else None


def _dag(ctx: ServerContext, pipeline: RunRow, steps: list[RunRow]) -> dict[str, Any]:
    by_name: dict[str, RunRow] = {}
    for row in steps:
        by_name[row.name] = row  # a later attempt of the same node wins
    document = _graph_document(ctx, pipeline.id)
    if document is None:
        return _dag_from_data(ctx, pipeline, by_name)
    nodes = []
    for spec in document["nodes"]:
        name = str(spec.get("name"))
        nodes.append(_node(name, by_name.get(name), pipeline.status, step=spec.get("step"),
                           function=spec.get("function"), outputs=spec.get("outputs", []), cache=spec.get("cache", True)))
    edges = [{"source": str(e.get("from")), "target": str(e.get("to"))} for e in document.get("edges", [])]
    return {"nodes": nodes, "edges": edges, "source": "pipeline.json", "pipeline": document.get("pipeline"),
            "ref": document.get("ref"), "params": document.get("params", {})}


def _dag_from_data(ctx: ServerContext, pipeline: RunRow, by_step: dict[str, RunRow]) -> dict[str, Any]:
    """Nodes (one per step name) and edges (artifact flow between steps), for runs without pipeline.json."""
    producers: dict[str, str] = {}
    inputs: dict[str, list[str]] = {}
    name_of = {row.id: name for name, row in by_step.items()}
    for run_id, links in ctx.pipelines.links_for_runs(list(name_of)).items():
        for link in links:
            if link.direction == "output":
                producers.setdefault(link.digest, name_of[run_id])
            else:
                inputs.setdefault(name_of[run_id], []).append(link.digest)
    edges = set()
    for consumer, digests in inputs.items():
        for digest in digests:
            producer = producers.get(digest)
            if producer and producer != consumer:
                edges.add((producer, consumer))
    nodes = [_node(name, row, pipeline.status) for name, row in by_step.items()]
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in sorted(edges)], "source": "artifacts"}
