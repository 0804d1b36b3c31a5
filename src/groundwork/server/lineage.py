"""``/api/v1/lineage``: the graph around a run, an artifact or a model version.

The graph is ``groundwork.core.lineage``'s, the one ``groundwork lineage`` prints:
``direction=up`` is the ancestry (what the CLI shows by default), ``down`` the
descendants (``--descendants``), ``both`` their union (the UI's default: the
neighbourhood of the target). Nodes keep the core's ids (``run:…``, ``artifact:…``,
``model:name/3``, ``alias:name@production``) and ``attrs``, with a short ``label``
and a ``ref`` the UI can link to added.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

import groundwork.core.registry  # noqa: F401  (registers model versions and aliases as lineage nodes)
from groundwork.core.lineage import LineageGraph, TargetNotFound, lineage
from groundwork.core.registry import ModelRef
from groundwork.errors import InvalidInput, RunNotFound
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, bounded_int, ok

router = APIRouter(tags=["lineage"])
Context = Annotated[ServerContext, Depends(get_context)]

MAX_NODES = 500
MAX_DEPTH = 50
MAX_REF = 500
DIRECTIONS = ("up", "down", "both")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_VERSION_REF = re.compile(r"^.+/\d+$")


def graph_dict(graphs: list[LineageGraph]) -> dict[str, Any]:
    """One UI graph from one or two core graphs (ancestry and descendants share the root)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    for graph in graphs:
        for node in graph.nodes.values():
            nodes.setdefault(node.id, node.to_dict())
        for edge in graph.edges:
            edges.setdefault((edge.source, edge.target, edge.relation), edge.to_dict())
    return {"root": graphs[0].root.id, "nodes": list(nodes.values()), "edges": list(edges.values()),
            "truncated": any(g.truncated for g in graphs), "direction": graphs[0].direction if len(graphs) == 1 else "both"}


@router.get("/lineage", summary="The lineage graph around a run, an artifact or a model version")
def get_lineage(
    ctx: Context,
    ref: Annotated[str, Query(description="Run id/prefix/name, artifact digest/prefix, or model ref (name@alias, name/3).")],
    direction: Annotated[str, Query(description="up (ancestry, as `groundwork lineage`), down (descendants) or both.")] = "both",
    depth: Annotated[int | None, Query(description=f"Hops from the target (1..{MAX_DEPTH}; default: all).")] = None,
    type: Annotated[str | None, Query(description="model: read a bare name as a model (its newest version).")] = None,
) -> JSON:
    if direction not in DIRECTIONS:
        raise InvalidInput(f"direction must be up, down or both, not {direction!r}")
    if depth is not None:
        bounded_int("depth", depth, 1, MAX_DEPTH)
    if type not in (None, "", "run", "artifact", "model"):
        raise InvalidInput(f"type must be run, artifact or model, not {type!r}")
    target = server_target(ctx, ref, model=type == "model")
    graphs = []
    if direction in ("up", "both"):
        graphs.append(lineage(target, depth=depth, config=ctx.config, max_nodes=MAX_NODES))
    if direction in ("down", "both"):
        graphs.append(lineage(target, descendants=True, depth=depth, config=ctx.config, max_nodes=MAX_NODES))
    return ok({"graph": graph_dict(graphs)})


def server_target(ctx: ServerContext, ref: str, *, model: bool = False) -> str:
    """``ref`` as a target the core resolves without touching the server's own files.

    ``groundwork lineage`` also accepts a file path (it digests the file); over HTTP that
    would let a caller make the server read any file it can (``/dev/zero`` never ends).
    So the API takes model refs, digests, and run ids, prefixes and names only.
    """
    text = ref.strip()
    if not text:
        raise InvalidInput("empty lineage target", hint="give a run id or name, an artifact digest, or name@alias")
    if len(text) > MAX_REF:
        raise InvalidInput(f"lineage target too long ({len(text)} characters; at most {MAX_REF})")
    if text.startswith("model:"):
        ModelRef.parse(text[len("model:"):])  # a 400 that says how to write one
        return text
    if model or "@" in text or _VERSION_REF.match(text):
        try:
            ModelRef.parse(text)
        except InvalidInput:
            if model:
                raise
        else:
            return f"model:{text}"
    digest = text.lower().removeprefix("sha256:")
    if _HEX.match(digest):
        if ctx.store.find_artifacts(digest):
            return text
        try:
            ctx.store.resolve_run(text)
        except RunNotFound:
            raise TargetNotFound(
                f"no run or artifact matches {text!r}",
                hint="give a run id, id prefix or name, an artifact digest or prefix, or name@alias",
            ) from None
        return text
    try:
        return ctx.store.resolve_run(text)
    except RunNotFound:
        raise TargetNotFound(
            f"no run, artifact or model matches {text!r}",
            hint="give a run id, id prefix or name, an artifact digest or prefix, or a model as name@alias or name/3",
        ) from None
